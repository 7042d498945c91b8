//! The `system` schema of a tenant: what is loaded, how the tenant is set up, its refresh
//! attempts, and the queries of the user who asks (`system.queries`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session};
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::TenantInfo;
use crate::history::refreshes::{RefreshRecord, STORED_PER_TENANT};
use crate::history::{Logs, QueryLog, RefreshLog};
use crate::snapshot::{Manifest, Store};

datafusion::common::extensions_options! {
    /// Who a session belongs to, set by the server when it builds the session (`SET` of it
    /// is refused like every engine option).
    pub struct SessionUser {
        /// The user name; empty for sessions without users (no `[[users]]`, the CLI).
        pub name: String, default = String::new()
    }
}

impl datafusion::common::config::ConfigExtension for SessionUser {
    const PREFIX: &'static str = "salespulse_session";
}

impl SessionUser {
    pub(super) fn named(user: &str) -> SessionUser {
        SessionUser { name: user.to_string() }
    }
}

pub(super) fn schema(info: &TenantInfo, snapshots: &[Manifest], served: Option<&Manifest>, logs: &Logs, stored: &Arc<StoredRefreshes>) -> Arc<MemorySchemaProvider> {
    let schema = MemorySchemaProvider::new();
    let refreshes: &Arc<RefreshLog> = &logs.refreshes;
    let refreshes = RefreshesTable { tenant: info.name.clone(), log: Arc::clone(refreshes), stored: Arc::clone(stored) };
    let _ = schema.register_table("refreshes".to_string(), Arc::new(refreshes));
    let _ = schema.register_table("queries".to_string(), Arc::new(QueriesTable { log: Arc::clone(&logs.queries) }));
    let tables: [(&str, Option<RecordBatch>); 3] = [
        ("snapshots", snapshots_batch(snapshots, served)),
        ("tables", tables_batch(served)),
        ("settings", settings_batch(info)),
    ];
    for (name, batch) in tables {
        if let Some(batch) = batch
            && let Ok(table) = MemTable::try_new(batch.schema(), vec![vec![batch]])
        {
            let _ = schema.register_table(name.to_string(), Arc::new(table));
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

/// `system.refreshes`: the tenant's refresh attempts, read at query time: those every
/// process stored beside the snapshots (the fleet's refreshers, cron runs, earlier runs of
/// this server), with this process's own that are not stored (a store that refused the
/// write).
#[derive(Debug)]
struct RefreshesTable {
    tenant: String,
    log: Arc<RefreshLog>,
    stored: Arc<StoredRefreshes>,
}

/// How long a listing of the stored attempts answers `system.refreshes` before the store is
/// listed again: a statement naming the table many times, or many users asking at once,
/// cost one listing (and only the attempts not read before) per tenant and interval.
const LISTING_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The stored refresh attempts read so far, per tenant (shared by every catalog build).
#[derive(Debug)]
pub(super) struct StoredRefreshes {
    store: Store,
    tenants: tokio::sync::Mutex<std::collections::HashMap<String, Listed>>,
}

#[derive(Debug, Default)]
struct Listed {
    at: Option<std::time::Instant>,
    /// By object name (the names sort by time; objects are never rewritten).
    records: std::collections::BTreeMap<String, RefreshRecord>,
}

impl StoredRefreshes {
    pub(super) fn new(store: Store) -> StoredRefreshes {
        StoredRefreshes { store, tenants: Default::default() }
    }

    /// The newest stored attempts of `tenant`, oldest first: listed at most every
    /// [`LISTING_LIFETIME`], each object read once.
    async fn records(&self, tenant: &str) -> Result<Vec<RefreshRecord>, crate::snapshot::SnapshotError> {
        let mut tenants = self.tenants.lock().await;
        let listed = tenants.entry(tenant.to_string()).or_default();
        if listed.at.is_none_or(|at| at.elapsed() > LISTING_LIFETIME) {
            let names = self.store.refresh_names(tenant).await?;
            let newest = &names[names.len().saturating_sub(STORED_PER_TENANT)..];
            listed.records.retain(|name, _| newest.binary_search(name).is_ok());
            let unread: Vec<String> = newest.iter().filter(|n| !listed.records.contains_key(*n)).cloned().collect();
            let objects = self.store.read_refreshes(tenant, &unread).await?;
            for (name, object) in unread.into_iter().zip(objects) {
                if let Some(record) = RefreshRecord::from_json(&object) {
                    listed.records.insert(name, record);
                }
            }
            listed.at = Some(std::time::Instant::now());
        }
        Ok(listed.records.values().cloned().collect())
    }
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
        Field::new("replica", DataType::Utf8, false),
    ]))
}

impl RefreshesTable {
    /// The stored attempts and this process's, oldest first, each once.
    async fn records(&self) -> Vec<RefreshRecord> {
        let stored = match self.stored.records(&self.tenant).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, "reading the stored refresh attempts: {e}; system.refreshes shows this process's only");
                Vec::new()
            }
        };
        let mut records: Vec<RefreshRecord> = stored;
        for own in self.log.records(Some(&self.tenant)) {
            if !records.iter().any(|r| r.started_at == own.started_at && r.replica == own.replica && r.finished_at == own.finished_at) {
                records.push(own);
            }
        }
        records.sort_by_key(|r| r.finished_at);
        records
    }

    fn batch(&self, records: &[RefreshRecord]) -> datafusion::error::Result<RecordBatch> {
        let time = |f: &dyn Fn(&RefreshRecord) -> i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(f)).with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            time(&|r| r.started_at.timestamp_micros()),
            time(&|r| r.finished_at.timestamp_micros()),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.outcome.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.trigger.as_str()))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.error.as_deref()))),
            Arc::new(Int64Array::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.rows as i64)))),
            Arc::new(Int64Array::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.requests as i64)))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.summary.as_ref().map(|s| s.snapshot_id.as_str())))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.replica.as_str()))),
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
        let records = self.records().await;
        let table = MemTable::try_new(refreshes_schema(), vec![vec![self.batch(&records)?]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// `system.queries`: the asking user's queries in this process (every tenant), read at query
/// time, with the process's replica name. Another user's queries are never in it.
#[derive(Debug)]
struct QueriesTable {
    log: Arc<QueryLog>,
}

fn queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("started_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("user_name", DataType::Utf8, false),
        Field::new("protocol", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, true),
        Field::new("sql", DataType::Utf8, false),
        Field::new("duration_ms", DataType::Float64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("cached", DataType::Boolean, false),
        Field::new("replica", DataType::Utf8, false),
    ]))
}

impl QueriesTable {
    fn batch(&self, user: &str) -> datafusion::error::Result<RecordBatch> {
        let records = self.log.records_of(user);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.started_at.timestamp_micros())).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.user.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.protocol.as_str()))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.tenant.as_deref()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.sql.as_str()))),
            Arc::new(arrow::array::Float64Array::from_iter_values(records.iter().map(|r| r.seconds * 1000.0))),
            Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.rows as i64))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.outcome.as_str()))),
            Arc::new(StringArray::from_iter(records.iter().map(|r| r.error.as_deref()))),
            Arc::new(BooleanArray::from_iter(records.iter().map(|r| Some(r.cached)))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(self.log.replica(), records.len()))),
        ];
        Ok(RecordBatch::try_new(queries_schema(), columns)?)
    }
}

#[async_trait::async_trait]
impl TableProvider for QueriesTable {
    fn schema(&self) -> SchemaRef {
        queries_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let user = state.config().options().extensions.get::<SessionUser>().map(|u| u.name.clone()).unwrap_or_default();
        let table = MemTable::try_new(queries_schema(), vec![vec![self.batch(&user)?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
