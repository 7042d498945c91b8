//! One refresh of a tenant: take its lease, pull its source (and `inputs` folder), write a
//! snapshot, build its KPI tables, commit, and swap it into the serving catalog. A CRM
//! connector builds on the current snapshot (its rows and the manifest's cursors) for an
//! incremental pull. Schedules and single-flight per process come with the scheduler; the
//! lease (`snapshot::Lease`) makes it one refresh per tenant across every process on the
//! store, and other servers follow the commit (`follow`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream};
use futures::StreamExt;

use salespulse_config::config::{SourceConfig, TenantConfig};
use chrono::Utc;

use crate::connectors::progress::{ProgressHandle, silent};
use crate::connectors::sync::{Previous, SyncReport};
use crate::connectors::{ConnectorError, Source, Streamed, TokenHome, connector_for, merge_inputs};
use crate::model::{Dataset, Table};
use crate::catalog::{Catalog, TenantState};
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
    #[error("tenant {tenant}: the new snapshot was written but does not load, so it was not made current: {source}")]
    Load { tenant: String, source: crate::catalog::CatalogError },
}

impl RefreshError {
    /// Whether the refresh did not start because another process refreshes the tenant now.
    pub fn is_held_elsewhere(&self) -> bool {
        matches!(self, RefreshError::Snapshot { source: SnapshotError::LeaseHeld { .. }, .. })
    }
}

/// How a refresh keeps snapshots and shares its tenant with other processes
/// (`[storage]` and `server.replica`).
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    pub keep_snapshots: usize,
    /// A replaced snapshot is kept at least this long (`storage.retention_grace_seconds`).
    pub retention_grace: Duration,
    /// This process's name, written in the tenant's lease.
    pub holder: String,
    /// The lease's length (`storage.lease_seconds`).
    pub lease: Duration,
    /// OAuth tokens live in the store (`storage.oauth_tokens = "store"`).
    pub tokens_in_store: bool,
}

impl RefreshOptions {
    /// The options of the configuration's `[storage]` for the process named `replica`.
    pub fn of(storage: &salespulse_config::config::StorageConfig, replica: &str) -> RefreshOptions {
        RefreshOptions {
            keep_snapshots: storage.keep_snapshots,
            retention_grace: storage.retention_grace,
            holder: replica.to_string(),
            lease: storage.lease,
            tokens_in_store: storage.oauth_tokens_in_store,
        }
    }

    /// One process alone on its store (the demo, tests): keep `keep` snapshots, delete older
    /// ones at once, a 60 s lease held by `local`.
    pub fn alone(keep: usize) -> RefreshOptions {
        RefreshOptions { keep_snapshots: keep, retention_grace: Duration::ZERO, holder: "local".into(), lease: Duration::from_secs(60), tokens_in_store: false }
    }
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
    /// What the catalog serves now, when the refresh built the KPI tables and swapped the
    /// snapshot into one (its `problem` says what did not build).
    pub served: Option<Arc<TenantState>>,
}

impl RefreshReport {
    /// What `system.refreshes` shows of this refresh.
    pub fn summary(&self) -> crate::history::refreshes::RefreshSummary {
        let manifest = &self.report.manifest;
        let sync = self.sync.as_ref();
        crate::history::refreshes::RefreshSummary {
            snapshot_id: manifest.snapshot_id.clone(),
            rows: manifest.total_rows(),
            requests: sync.map_or(0, |s| s.requests),
            answers: sync.map(|s| s.answers.clone()).unwrap_or_default(),
            retries: sync.map_or(0, |s| s.retries),
        }
    }
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

/// Pulls the source and writes a snapshot of it, without building its KPI tables, as the
/// only process on the store.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_tenant(store: &Store, tenant: &TenantConfig, source: Source, keep_snapshots: usize) -> Result<RefreshReport, RefreshError> {
    refresh_tenant_with(store, tenant, source, &RefreshOptions::alone(keep_snapshots), silent(), None).await
}

/// [`refresh_tenant`], telling `progress` of every CRM list as it is read.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_tenant_with_progress(store: &Store, tenant: &TenantConfig, source: Source, keep_snapshots: usize, progress: ProgressHandle) -> Result<RefreshReport, RefreshError> {
    refresh_tenant_with(store, tenant, source, &RefreshOptions::alone(keep_snapshots), progress, None).await
}

/// A refresh under the tenant's lease: pull, write the tables, build the KPI tables into
/// the new snapshot (with `catalog`), commit it, and swap it into `catalog`. A refresh whose
/// lease is lost stops where it is and commits nothing.
///
/// # Errors
/// See [`RefreshError`]; [`RefreshError::is_held_elsewhere`] when another process holds the
/// lease.
pub async fn refresh_tenant_with(store: &Store, tenant: &TenantConfig, source: Source, options: &RefreshOptions, progress: ProgressHandle, catalog: Option<&Catalog>) -> Result<RefreshReport, RefreshError> {
    let name = tenant.name.clone();
    let snapshot_error = |source: SnapshotError| RefreshError::Snapshot { tenant: name.clone(), source };
    let lease = store.acquire_lease(&name, &options.holder, options.lease).await.map_err(snapshot_error)?;
    let result = under_lease(store, tenant, source, options, progress, catalog, &lease).await;
    lease.release().await;
    result
}

/// The refresh once the lease is held. The pull, the write and the KPI build stop as soon
/// as the lease is lost (another process may pull the same CRM from then on). The commit
/// is not cut short: it starts only after the lease was confirmed, and the compare-and-swap
/// of `CURRENT` against the version read when the lease was taken refuses it if anyone
/// committed since.
async fn under_lease(
    store: &Store,
    tenant: &TenantConfig,
    source: Source,
    options: &RefreshOptions,
    progress: ProgressHandle,
    catalog: Option<&Catalog>,
    lease: &crate::snapshot::Lease,
) -> Result<RefreshReport, RefreshError> {
    let started = Instant::now();
    let name = tenant.name.clone();
    let snapshot_error = |source: SnapshotError| RefreshError::Snapshot { tenant: name.clone(), source };
    let base = store.current_version(&name).await.map_err(snapshot_error)?;
    let lost = lease.lost();
    let prepared = tokio::select! {
        done = pull_and_prepare(store, tenant, source, options, progress, catalog) => done?,
        () = lost.cancelled() => return Err(snapshot_error(SnapshotError::LeaseLost {
            tenant: name.clone(),
            reason: "it could not be renewed in time or another process took it over".into(),
        })),
    };
    let Prepared { mut written, write_options, state, write_seconds, streamed, inputs_replaced, sync } = prepared;
    written.base = base;
    lease.confirm().await.map_err(snapshot_error)?;
    let report = store.commit_snapshot(written, &write_options).await.map_err(snapshot_error)?;
    if let (Some(catalog), Some(state)) = (catalog, &state) {
        catalog.install(&name, Arc::clone(state)).await.map_err(|source| RefreshError::Load { tenant: name.clone(), source })?;
    }
    Ok(RefreshReport { report, seconds: started.elapsed().as_secs_f64(), write_seconds, streamed, inputs_replaced, sync, served: state })
}

/// A snapshot written and its KPI tables built, not committed yet.
struct Prepared {
    written: crate::snapshot::Uncommitted,
    write_options: WriteOptions,
    state: Option<Arc<TenantState>>,
    write_seconds: f64,
    streamed: bool,
    inputs_replaced: Vec<Table>,
    sync: Option<SyncReport>,
}

async fn pull_and_prepare(store: &Store, tenant: &TenantConfig, source: Source, options: &RefreshOptions, progress: ProgressHandle, catalog: Option<&Catalog>) -> Result<Prepared, RefreshError> {
    let name = tenant.name.clone();
    let connector_error = |source: ConnectorError| RefreshError::Connector { tenant: name.clone(), source };
    let snapshot_error = |source: SnapshotError| RefreshError::Snapshot { tenant: name.clone(), source };
    // Tokens in the store are read and written under the lease this refresh holds.
    let connector = connector_for(source, tenant.timezone, token_home(store, &name, options.tokens_in_store));
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
    let write_options = WriteOptions {
        tenant: name.clone(),
        taken_at: pull.taken_at,
        source: pull.source_label,
        sync_cursors: pull.cursors,
        keep_snapshots: options.keep_snapshots,
        retention_grace: options.retention_grace,
    };
    let streamed = pull.streamed.take();
    let overlapped = streamed.is_some();
    let tables = tables_to_write(std::mem::take(&mut pull.dataset), streamed);
    // The write (and a source that streams, the demo, generating meanwhile) hands large
    // batches to the writer's threads, which free them: purged at once, not kept by the
    // allocator (`demo --scale 10` peaked at 1.0–1.06 GB with mimalloc's delay, 0.8 GB
    // without; src/memory.rs). Not during a CRM's pull, which is long and waits on the
    // network: queries served meanwhile would be slower all that time.
    let purging = crate::memory::while_building();
    let write_started = Instant::now();
    let written = store.write_tables(&write_options, tables).await.map_err(snapshot_error)?;
    drop(purging);
    let write_seconds = write_started.elapsed().as_secs_f64();
    // The KPI tables go into the snapshot before it is committed: every server that follows
    // the commit finds them and none builds them again.
    let state = match catalog {
        Some(catalog) => Some(catalog.prepare(&name, &written.manifest).await.map_err(|source| RefreshError::Load { tenant: name.clone(), source })?),
        None => None,
    };
    Ok(Prepared { written, write_options, state, write_seconds, streamed: overlapped, inputs_replaced, sync })
}

/// Where a tenant's OAuth tokens live: its token file, or `<root>/<tenant>/oauth-tokens.json`
/// in the store when `in_store` (`storage.oauth_tokens = "store"`).
pub fn token_home(store: &Store, tenant: &str, in_store: bool) -> TokenHome {
    if !in_store {
        return TokenHome::Files;
    }
    let path = store.oauth_tokens_path(tenant);
    TokenHome::Store { store: store.object_store(), display: format!("{}/{tenant}/oauth-tokens.json", store.display().trim_end_matches('/')), path }
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
/// build its KPI tables, commit, and swap it into `catalog`, so queries move to it
/// atomically while the ones already running finish on the old one.
pub fn serving_refresh(store: Store, catalog: Arc<Catalog>, tenants: Vec<TenantConfig>, options: RefreshOptions) -> RefreshFn {
    let tenants = Arc::new(tenants);
    let options = Arc::new(options);
    Arc::new(move |name: String| {
        let (store, catalog, tenants, options) = (store.clone(), Arc::clone(&catalog), Arc::clone(&tenants), Arc::clone(&options));
        Box::pin(async move {
            let tenant = tenants.iter().find(|t| t.name == name).ok_or_else(|| RefreshError::UnknownTenant { tenant: name.clone() })?;
            let report = refresh_tenant_with(&store, tenant, source_of(tenant), &options, silent(), Some(&catalog)).await?;
            if let Some(problem) = report.served.as_ref().and_then(|s| s.problem.as_ref()) {
                tracing::warn!(tenant = %name, "{problem}");
            }
            Ok(report.summary())
        })
    })
}
