//! The `system` schema of a tenant: what is loaded and how the tenant is set up.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;

use super::TenantInfo;
use crate::snapshot::Manifest;

pub(super) fn schema(info: &TenantInfo, snapshots: &[Manifest], served: Option<&Manifest>) -> Arc<MemorySchemaProvider> {
    let schema = MemorySchemaProvider::new();
    let tables: [(&str, Option<RecordBatch>); 3] = [
        ("snapshots", snapshots_batch(snapshots, served)),
        ("tables", tables_batch(served)),
        ("settings", settings_batch(info)),
    ];
    for (name, batch) in tables {
        if let Some(batch) = batch {
            if let Ok(table) = MemTable::try_new(batch.schema(), vec![vec![batch]]) {
                let _ = schema.register_table(name.to_string(), Arc::new(table));
            }
        }
    }
    Arc::new(schema)
}

fn snapshots_batch(snapshots: &[Manifest], served: Option<&Manifest>) -> Option<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("snapshot_id", DataType::Utf8, false),
        Field::new("taken_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("source", DataType::Utf8, false),
        Field::new("schema_version", DataType::Int64, false),
        Field::new("is_current", DataType::Boolean, false),
        Field::new("total_rows", DataType::Int64, false),
    ]));
    let served_id = served.map(|m| m.snapshot_id.as_str());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(snapshots.iter().map(|m| m.snapshot_id.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(snapshots.iter().map(|m| m.taken_at.timestamp_micros())).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(snapshots.iter().map(|m| m.source.as_str()))),
        Arc::new(Int64Array::from_iter_values(snapshots.iter().map(|m| i64::from(m.schema_version)))),
        Arc::new(BooleanArray::from_iter(snapshots.iter().map(|m| Some(Some(m.snapshot_id.as_str()) == served_id)))),
        Arc::new(Int64Array::from_iter_values(snapshots.iter().map(|m| m.total_rows() as i64))),
    ];
    RecordBatch::try_new(schema, columns).ok()
}

fn tables_batch(served: Option<&Manifest>) -> Option<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
    ]));
    let entries: Vec<(&String, i64, i64)> = served
        .map(|m| m.tables.iter().map(|(n, e)| (n, e.rows as i64, e.bytes as i64)).collect())
        .unwrap_or_default();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.0.as_str()))),
        Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.1))),
        Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.2))),
    ];
    RecordBatch::try_new(schema, columns).ok()
}

fn settings_batch(info: &TenantInfo) -> Option<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    let mut rows: Vec<(String, String)> = vec![("timezone".into(), info.timezone.name().into())];
    rows.extend(info.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
    ];
    RecordBatch::try_new(schema, columns).ok()
}
