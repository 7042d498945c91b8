//! Materialised KPI tables: each `kpi` view computed once per snapshot, stored as Parquet
//! beside it, and served in place of the view.
//!
//! A snapshot never changes and every view is computed as of its `taken_at`, so a view's
//! rows change only with the snapshot, the tenant's settings and calendars, or this build.
//! The tables live under `<snapshot>/kpi/<fingerprint>/<build>/<view>/part-00000.parquet`,
//! where the fingerprint hashes all of those, and `materialised.json`, written last, marks a
//! build complete. A build whose files went missing is not repaired in place: a new build
//! folder is written, so files a serving catalog reads are never rewritten under it. A settings change gets a new fingerprint and a rebuild; retention removes the
//! folders together with their snapshot. Views are built in dependency order, each from the
//! tables already stored, so `calls_daily` sums the stored `call_facts` instead of redoing
//! the callback join.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::CatalogProvider;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KpiError, VIEWS, ViewParams, fill, one_line};
use crate::catalog::conform_batch;
use crate::catalog::snapshot_table::SnapshotTable;
use crate::snapshot::{SnapshotError, Store};

/// Bumped when the stored layout changes, so older folders are ignored.
const LAYOUT_VERSION: u32 = 1;
const MARKER: &str = "materialised.json";
const FILE: &str = "part-00000.parquet";
/// The order a stored view's rows are written in (the others keep the engine's order).
const STORED_ORDER: &[(&str, &str)] = &[("call_facts", "day, started_at"), ("deal_facts", "created_at"), ("lead_facts", "created_at"), ("task_facts", "created_at")];

/// Whether a missing set of tables is computed, or the views are left to compute per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialise {
    /// Compute and store the tables when they are missing (the server, `refresh`).
    Build,
    /// Use stored tables when present; otherwise keep the views (one-off `query`).
    UseStored,
}

/// What [`materialise`] did.
#[derive(Debug, Clone)]
pub struct MaterialiseReport {
    pub fingerprint: String,
    /// `true` when the tables were computed now, `false` when stored ones were used.
    pub built: bool,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    layout_version: u32,
    fingerprint: String,
    views: BTreeMap<String, StoredView>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredView {
    rows: u64,
    bytes: u64,
}

/// The fingerprint of everything a view's rows depend on besides the snapshot: this build,
/// the filled SQL of every view (settings, zone, `taken_at`, default calendar) and the
/// calendar definitions (`calendars`: the tenant's file, or empty for the built-in ones).
///
/// # Errors
/// A view's placeholders cannot be filled.
pub fn fingerprint(params: &ViewParams, calendars: &[u8]) -> Result<String, KpiError> {
    let mut hash = Sha256::new();
    hash.update(format!("salespulse {} kpi layout {LAYOUT_VERSION}\0", env!("CARGO_PKG_VERSION")));
    for (name, sql) in VIEWS {
        let body = fill(sql, params).map_err(|e| KpiError { view: (*name).into(), message: e.to_string() })?;
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(body.as_bytes());
        hash.update([0]);
    }
    hash.update(calendars);
    Ok(hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Replaces every view of the tenant's `kpi` schema by its stored table, computing and
/// storing the tables first when they are missing and `mode` is [`Materialise::Build`].
/// Returns `None` when nothing is stored and `mode` is [`Materialise::UseStored`].
///
/// `ctx` is the tenant-only session the views were registered in. On failure the views not
/// yet replaced stay views, which give the same rows, only slower.
///
/// # Errors
/// A view fails to run, or its table cannot be stored.
pub async fn materialise(
    ctx: &SessionContext,
    catalog: &Arc<dyn CatalogProvider>,
    store: &Store,
    params: &ViewParams,
    snapshot_id: &str,
    fingerprint: &str,
    mode: Materialise,
) -> Result<Option<MaterialiseReport>, KpiError> {
    let started = Instant::now();
    let tenant = params.tenant.as_str();
    let sets = store.kpi_dir(tenant, snapshot_id, fingerprint);
    // Each build goes into its own folder, and stored files are never rewritten in place:
    // a catalog still serving an older build keeps reading intact files.
    let builds = build_folders(store, &sets).await;
    let mut found = None;
    for dir in builds.iter().rev() {
        if let Some(marker) = read_marker(store, dir, fingerprint).await {
            found = Some((dir.clone(), marker));
            break;
        }
    }
    if let Some((dir, marker)) = found {
        for (name, _) in VIEWS {
            let schema = view_schema(ctx, tenant, name).await?;
            register(ctx, catalog, store, &dir, name, schema).await?;
        }
        let rows = marker.views.values().map(|v| v.rows).sum();
        let bytes = marker.views.values().map(|v| v.bytes).sum();
        return Ok(Some(MaterialiseReport { fingerprint: fingerprint.into(), built: false, rows, bytes, seconds: started.elapsed().as_secs_f64() }));
    }
    if mode == Materialise::UseStored {
        return Ok(None);
    }
    let dir = sets.join(chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string());
    let mut views = BTreeMap::new();
    for (name, sql) in VIEWS {
        let view_started = Instant::now();
        let failed = |message: String| KpiError { view: (*name).into(), message };
        // The live view's schema is the contract; the stored table keeps it exactly.
        let schema = view_schema(ctx, tenant, name).await?;
        let body = fill(sql, params).map_err(|e| failed(e.to_string()))?;
        // Row-level views are stored in the order dashboards filter them by, so a month's
        // query reads only that month's row groups.
        let body = match STORED_ORDER.iter().find(|(view, _)| view == name) {
            Some((_, order)) => format!("SELECT * FROM ({body}) AS v ORDER BY {order}"),
            None => body,
        };
        let frame = ctx.sql(&body).await.map_err(|e| failed(one_line(&e.strip_backtrace())))?;
        let stream = frame.execute_stream().await.map_err(|e| failed(one_line(&e.strip_backtrace())))?;
        let target = Arc::clone(&schema);
        let batches = stream.map(move |batch| {
            let batch = batch.map_err(|e| SnapshotError::Source(one_line(&e.strip_backtrace())))?;
            conform_batch(&target, &batch).map_err(|e| SnapshotError::Source(e.to_string()))
        });
        let path = dir.clone().join(*name).join(FILE);
        let (rows, bytes) = store.write_parquet(&path, Arc::clone(&schema), batches).await.map_err(|e| failed(e.to_string()))?;
        register(ctx, catalog, store, &dir, name, schema).await?;
        tracing::debug!(tenant, view = name, rows, seconds = view_started.elapsed().as_secs_f64(), "kpi table stored");
        views.insert((*name).to_string(), StoredView { rows, bytes });
    }
    let rows = views.values().map(|v| v.rows).sum();
    let bytes = views.values().map(|v| v.bytes).sum();
    let marker = Marker { layout_version: LAYOUT_VERSION, fingerprint: fingerprint.into(), views };
    let path = dir.join(MARKER);
    let json = serde_json::to_vec_pretty(&marker).map_err(|e| KpiError { view: "*".into(), message: e.to_string() })?;
    store
        .object_store()
        .put(&path, PutPayload::from(json))
        .await
        .map_err(|e| KpiError { view: "*".into(), message: format!("writing {path}: {e}") })?;
    Ok(Some(MaterialiseReport { fingerprint: fingerprint.into(), built: true, rows, bytes, seconds: started.elapsed().as_secs_f64() }))
}

/// The build folders of a fingerprint, oldest first (their names sort by build time).
async fn build_folders(store: &Store, sets: &object_store::path::Path) -> Vec<object_store::path::Path> {
    match store.object_store().list_with_delimiter(Some(sets)).await {
        Ok(listing) => {
            let mut dirs = listing.common_prefixes;
            dirs.sort();
            dirs
        }
        Err(_) => Vec::new(),
    }
}

/// The marker of a complete set, when it is there, readable, and names every view.
async fn read_marker(store: &Store, dir: &object_store::path::Path, fingerprint: &str) -> Option<Marker> {
    let path = dir.clone().join(MARKER);
    let bytes = store.object_store().get(&path).await.ok()?.bytes().await.ok()?;
    let marker: Marker = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("{path} is not readable ({e}); the KPI tables are built again");
            return None;
        }
    };
    let complete = marker.layout_version == LAYOUT_VERSION
        && marker.fingerprint == fingerprint
        && VIEWS.iter().all(|(name, _)| marker.views.contains_key(*name));
    if !complete {
        return None;
    }
    // Every file must still be there; a missing one means the set is rebuilt.
    for (name, _) in VIEWS {
        if store.object_store().head(&dir.clone().join(*name).join(FILE)).await.is_err() {
            tracing::warn!("{dir}/{name}/{FILE} is missing; the KPI tables are built again");
            return None;
        }
    }
    Some(marker)
}

async fn view_schema(ctx: &SessionContext, tenant: &str, name: &str) -> Result<arrow::datatypes::SchemaRef, KpiError> {
    let frame = ctx
        .table(format!("\"{tenant}\".kpi.{name}"))
        .await
        .map_err(|e| KpiError { view: name.into(), message: one_line(&e.strip_backtrace()) })?;
    Ok(Arc::new(frame.schema().as_arrow().clone()))
}

/// Puts a table over the stored file in place of the view `name`: that file, by name (a
/// file deleted from under the server is an error, never an empty table), with its
/// statistics read once here.
async fn register(
    ctx: &SessionContext,
    catalog: &Arc<dyn CatalogProvider>,
    store: &Store,
    dir: &object_store::path::Path,
    name: &str,
    schema: arrow::datatypes::SchemaRef,
) -> Result<(), KpiError> {
    let failed = |e: datafusion::error::DataFusionError| KpiError { view: name.into(), message: one_line(&e.strip_backtrace()) };
    let path = dir.clone().join(name).join(FILE);
    let meta = store.object_store().head(&path).await.map_err(|e| KpiError { view: name.into(), message: format!("reading {path}: {e}") })?;
    let store_url = ObjectStoreUrl::parse(store.base_url().as_str()).map_err(failed)?;
    let table = SnapshotTable::load(&ctx.state(), store_url, schema, vec![meta], false).await.map_err(failed)?;
    let kpi = catalog.schema("kpi").ok_or_else(|| KpiError { view: name.into(), message: "the tenant has no kpi schema".into() })?;
    kpi.deregister_table(name).map_err(failed)?;
    kpi.register_table(name.to_string(), Arc::new(table)).map_err(failed)?;
    Ok(())
}
