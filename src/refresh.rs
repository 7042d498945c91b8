//! One refresh of a tenant: pull its source (and `inputs` folder) and write a snapshot; a
//! running server picks it up with `Catalog::load_tenant`. Schedules and single-flight per
//! tenant come with the scheduler.

use std::time::Instant;

use futures::stream;

use crate::config::{SourceConfig, TenantConfig};
use crate::connectors::{ConnectorError, Pull, Source, merge_inputs};
use crate::model::Table;
use crate::snapshot::{SnapshotError, Store, WriteOptions, WriteReport};

/// A refresh failure; nothing stored is changed by a failed refresh.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("tenant {tenant}: {source}")]
    Connector { tenant: String, source: ConnectorError },
    #[error("tenant {tenant}: {source}")]
    Snapshot { tenant: String, source: SnapshotError },
    #[error("tenant {tenant}: the import task failed: {message}")]
    Task { tenant: String, message: String },
}

/// What a refresh did, for progress output and logs.
#[derive(Debug)]
pub struct RefreshReport {
    pub report: WriteReport,
    /// Whole refresh, pull and snapshot write.
    pub seconds: f64,
    /// The snapshot write alone (sort, encode, commit).
    pub write_seconds: f64,
    pub inputs_replaced: Vec<Table>,
}

/// The connector of a tenant's configured source.
pub fn source_of(tenant: &TenantConfig) -> Source {
    match &tenant.source {
        SourceConfig::Demo { scale, seed } => Source::Demo { scale: *scale, seed: *seed, as_of: None },
        SourceConfig::Files { path, exported_at } => Source::Files { path: path.clone(), exported_at: *exported_at },
        other => Source::Unavailable { kind: other.kind() },
    }
}

/// Pulls the source and writes a snapshot of it.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_tenant(store: &Store, tenant: &TenantConfig, source: Source, keep_snapshots: usize) -> Result<RefreshReport, RefreshError> {
    let started = Instant::now();
    let name = tenant.name.clone();
    let timezone = tenant.timezone;
    let inputs = tenant.inputs.clone();
    let pulled = tokio::task::spawn_blocking(move || -> Result<(Pull, Vec<Table>), ConnectorError> {
        let mut pull = source.pull(timezone)?;
        let replaced = match &inputs {
            Some(folder) => merge_inputs(&mut pull, folder, timezone)?,
            None => Vec::new(),
        };
        Ok((pull, replaced))
    })
    .await
    .map_err(|e| RefreshError::Task { tenant: name.clone(), message: e.to_string() })?;
    let (pull, inputs_replaced) = pulled.map_err(|source| RefreshError::Connector { tenant: name.clone(), source })?;
    let options = WriteOptions {
        tenant: name.clone(),
        taken_at: pull.taken_at,
        source: pull.source_label,
        sync_cursors: Default::default(),
        keep_snapshots,
    };
    let tables = stream::iter(pull.dataset.tables.into_iter().map(Ok));
    let write_started = Instant::now();
    let report = store
        .write_snapshot(&options, tables)
        .await
        .map_err(|source| RefreshError::Snapshot { tenant: name.clone(), source })?;
    Ok(RefreshReport { report, seconds: started.elapsed().as_secs_f64(), write_seconds: write_started.elapsed().as_secs_f64(), inputs_replaced })
}
