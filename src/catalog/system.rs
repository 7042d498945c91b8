//! The `system` schema of a tenant: what is loaded, how the tenant is set up, and its
//! refresh attempts.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session};
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::TenantInfo;
use crate::scheduler::RefreshLog;
use crate::snapshot::Manifest;

pub(super) fn schema(info: &TenantInfo, snapshots: &[Manifest], served: Option<&Manifest>, refreshes: &Arc<RefreshLog>) -> Arc<MemorySchemaProvider> {
    let schema = MemorySchemaProvider::new();
    let _ = schema.register_table("refreshes".to_string(), Arc::new(RefreshesTable { tenant: info.name.clone(), log: Arc::clone(refreshes) }));
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

/// `system.refreshes`: the tenant's refresh attempts in this process, read at query time.
#[derive(Debug)]
struct RefreshesTable {
    tenant: String,
    log: Arc<RefreshLog>,
}

fn refreshes_schema() -> SchemaRef {
    let at = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("started_at", at(), false),
        Field::new("finished_at", at(), false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("triggered_by", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("requests", DataType::Int64, true),
        Field::new("snapshot_id", DataType::Utf8, true),
    ]))
}

impl RefreshesTable {
    fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let records = self.log.records(Some(&self.tenant));
        let time = |f: &dyn Fn(&crate::scheduler::RefreshRecord) -> i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(f)).with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            time(&|r| r.started_at.timestamp_micros()),
            time(&|r| r.finished_at.timestamp_micros()),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.outcome.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.trigger))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.error.as_deref()))),
            Arc::new(Int64Array::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.rows as i64)))),
            Arc::new(Int64Array::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.requests as i64)))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.snapshot_id.as_str())))),
        ];
        Ok(RecordBatch::try_new(refreshes_schema(), columns)?)
    }
}

#[async_trait::async_trait]
impl TableProvider for RefreshesTable {
    fn schema(&self) -> SchemaRef {
        refreshes_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let table = MemTable::try_new(refreshes_schema(), vec![vec![self.batch()?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
