//! One refresh of a tenant: pull its source (and `inputs` folder) and write a snapshot; a
//! running server picks it up with `Catalog::load_tenant`. A CRM connector builds on the
//! current snapshot (its rows and the manifest's cursors) for an incremental pull.
//! Schedules and single-flight per tenant come with the scheduler.

use std::time::Instant;

use futures::stream::{self, BoxStream};
use futures::StreamExt;

use salespulse_config::config::{SourceConfig, TenantConfig};
use chrono::Utc;

use crate::connectors::progress::{ProgressHandle, silent};
use crate::connectors::sync::{Previous, SyncReport};
use crate::connectors::{ConnectorError, Source, Streamed, connector_for, merge_inputs};
use crate::model::{Dataset, Table};
use crate::snapshot::{SnapshotError, Store, TableRows, WriteOptions, WriteReport};

/// A refresh failure; nothing stored is changed by a failed refresh.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("tenant {tenant}: {source}")]
    Connector { tenant: String, source: ConnectorError },
    #[error("tenant {tenant}: {source}")]
    Snapshot { tenant: String, source: SnapshotError },
    #[error("tenant {tenant}: the import task failed: {source}")]
    Task { tenant: String, source: tokio::task::JoinError },
    #[error("no tenant '{tenant}' is configured")]
    UnknownTenant { tenant: String },
    #[error("tenant {tenant}: the new snapshot was written but does not load: {source}")]
    Load { tenant: String, source: crate::catalog::CatalogError },
}

/// The refresh of one tenant as the scheduler runs it, by tenant name: [`serving_refresh`]
/// writes a snapshot and reloads the catalog; tests script their own.
pub type RefreshFn = std::sync::Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<crate::history::refreshes::RefreshSummary, RefreshError>> + Send>> + Send + Sync,
>;

/// What a refresh did, for progress output and logs.
#[derive(Debug)]
pub struct RefreshReport {
    pub report: WriteReport,
    /// Whole refresh, pull and snapshot write.
    pub seconds: f64,
    /// The snapshot write (sort, encode, commit); for a source that streams tables to the
    /// writer (the demo), the write runs while the source still makes rows, and this is
    /// both.
    pub write_seconds: f64,
    /// Whether the source streamed tables to the writer (see `write_seconds`).
    pub streamed: bool,
    pub inputs_replaced: Vec<Table>,
    /// What a CRM connector's sync did (requests, retries, records).
    pub sync: Option<SyncReport>,
}

/// The connector of a tenant's configured source.
pub fn source_of(tenant: &TenantConfig) -> Source {
    match &tenant.source {
        SourceConfig::Demo { scale, seed } => Source::Demo { scale: *scale, seed: *seed, as_of: None },
        SourceConfig::Files { path, exported_at } => Source::Files { path: path.clone(), exported_at: *exported_at },
        SourceConfig::Bitrix24(config) => Source::Bitrix24(config.clone()),
        SourceConfig::AmoCrm(config) => Source::AmoCrm(config.clone()),
    }
}

/// Pulls the source and writes a snapshot of it.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_tenant(store: &Store, tenant: &TenantConfig, source: Source, keep_snapshots: usize) -> Result<RefreshReport, RefreshError> {
    refresh_tenant_with_progress(store, tenant, source, keep_snapshots, silent()).await
}

/// [`refresh_tenant`], telling `progress` of every CRM list as it is read.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_tenant_with_progress(store: &Store, tenant: &TenantConfig, source: Source, keep_snapshots: usize, progress: ProgressHandle) -> Result<RefreshReport, RefreshError> {
    let started = Instant::now();
    let name = tenant.name.clone();
    let connector_error = |source: ConnectorError| RefreshError::Connector { tenant: name.clone(), source };
    let connector = connector_for(source, tenant.timezone);
    // A connector that builds on the previous snapshot reads it first (unreadable: full).
    let tables_read = connector.builds_on();
    let previous = if tables_read.is_empty() { None } else { previous_snapshot(store, &name, tables_read).await };
    let mut pull = connector.pull(previous, Utc::now(), progress).await.map_err(connector_error)?;
    let inputs_replaced = match tenant.inputs.as_deref() {
        Some(folder) => {
            let (folder, timezone) = (folder.to_path_buf(), tenant.timezone);
            let (merged, replaced) = tokio::task::spawn_blocking(move || merge_inputs(&mut pull, &folder, timezone).map(|r| (pull, r)))
                .await
                .map_err(|e| RefreshError::Task { tenant: name.clone(), source: e })?
                .map_err(connector_error)?;
            pull = merged;
            replaced
        }
        None => Vec::new(),
    };
    let sync = pull.sync.take();
    let options = WriteOptions {
        tenant: name.clone(),
        taken_at: pull.taken_at,
        source: pull.source_label,
        sync_cursors: pull.cursors,
        keep_snapshots,
    };
    let streamed = pull.streamed.take();
    let overlapped = streamed.is_some();
    let tables = tables_to_write(std::mem::take(&mut pull.dataset), streamed);
    let write_started = Instant::now();
    let report = store
        .write_snapshot(&options, tables)
        .await
        .map_err(|source| RefreshError::Snapshot { tenant: name.clone(), source })?;
    Ok(RefreshReport { report, seconds: started.elapsed().as_secs_f64(), write_seconds: write_started.elapsed().as_secs_f64(), streamed: overlapped, inputs_replaced, sync })
}

/// What the writer writes: a source's streamed tables first (written while it makes the
/// rest), then its other tables, where `dataset` (the pull's own tables, with the inputs
/// merged in) takes the place of the same tables of the rest.
fn tables_to_write(dataset: Dataset, streamed: Option<Streamed>) -> BoxStream<'static, Result<(Table, TableRows), SnapshotError>> {
    let whole = |dataset: Dataset| stream::iter(dataset.tables.into_iter().map(|(table, batches)| Ok((table, TableRows::Whole(batches)))));
    let Some(streamed) = streamed else {
        return whole(dataset).boxed();
    };
    let sorted = stream::iter(streamed.sorted.into_iter().map(|(table, rows)| Ok((table, TableRows::Sorted(rows)))));
    let rest = stream::once(async move {
        match streamed.rest.await {
            Ok(mut rest) => {
                rest.tables.extend(dataset.tables);
                whole(rest).left_stream()
            }
            Err(e) => stream::iter([Err(e)]).right_stream(),
        }
    })
    .flatten();
    sorted.chain(rest).boxed()
}

/// The current snapshot's rows and cursors, when it was written by a CRM connector (an
/// incremental pull builds on it). Unreadable means a full pull.
async fn previous_snapshot(store: &Store, tenant: &str, tables_read: &[Table]) -> Option<Previous> {
    let manifest = store.current_manifest(tenant).await.ok()?;
    if manifest.sync_cursors.is_empty() {
        return None;
    }
    let mut tables = std::collections::BTreeMap::new();
    for table in tables_read {
        match store.read_table(&manifest, *table).await {
            Ok(batches) => {
                tables.insert(*table, batches);
            }
            Err(e) => {
                tracing::warn!(tenant, "{e}; this refresh is a full sync");
                return None;
            }
        }
    }
    Some(Previous { cursors: manifest.sync_cursors, tables })
}

/// The refresh a server runs (scheduled or asked for over HTTP): pull, write a snapshot,
/// then load it into `catalog` (KPI tables built), so queries move to it atomically while
/// the ones already running finish on the old one.
pub fn serving_refresh(store: Store, catalog: std::sync::Arc<crate::catalog::Catalog>, tenants: Vec<TenantConfig>, keep_snapshots: usize) -> RefreshFn {
    let tenants = std::sync::Arc::new(tenants);
    std::sync::Arc::new(move |name: String| {
        let (store, catalog, tenants) = (store.clone(), std::sync::Arc::clone(&catalog), std::sync::Arc::clone(&tenants));
        Box::pin(async move {
            let tenant = tenants.iter().find(|t| t.name == name).ok_or_else(|| RefreshError::UnknownTenant { tenant: name.clone() })?;
            let report = refresh_tenant(&store, tenant, source_of(tenant), keep_snapshots).await?;
            let state = catalog.load_tenant(&name).await.map_err(|source| RefreshError::Load { tenant: name.clone(), source })?;
            if let Some(problem) = &state.problem {
                tracing::warn!(tenant = %name, "{problem}");
            }
            let manifest = &report.report.manifest;
            let sync = report.sync.as_ref();
            Ok(crate::history::refreshes::RefreshSummary {
                snapshot_id: manifest.snapshot_id.clone(),
                rows: manifest.total_rows(),
                requests: sync.map_or(0, |s| s.requests),
                answers: sync.map(|s| s.answers.clone()).unwrap_or_default(),
                retries: sync.map_or(0, |s| s.retries),
            })
        })
    })
}
