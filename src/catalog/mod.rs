//! Stage 4 of the pipeline: the DataFusion catalogs that SQL runs against.
//!
//! One catalog per tenant, with schemas `crm` (the current snapshot's Parquet files, as its
//! manifest lists them: [`snapshot_table`]), `kpi` (the docs/metrics.md views, replaced by their materialised tables once
//! stored: see [`kpi::materialise`]) and `system`
//! (`snapshots`, `tables`, `settings`). Each tenant's catalog sits behind an `ArcSwap`:
//! [`Catalog::load_tenant`] builds the new one aside and swaps it in one step, and a query
//! that started before the swap keeps the `Arc` of the old one and finishes on it.
//!
//! Fed by `snapshot`; used by `server` and the `query` command.

pub mod kpi;
mod query;
mod output_order;
mod query_memory;
mod shift_window;
mod snapshot_table;
mod system;

pub use query::{QueryError, TextLimits, check_read_only, client_type, conform_batch, expression_depth, grafana_type, parameter_types, plan_query, plan_query_with, planning_error};

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono_tz::Tz;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

use salespulse_udfs::{Absence, CalendarRegistry, SalesOptions};

use crate::model::Table;
use crate::history::Logs;
use crate::snapshot::{Manifest, SnapshotError, Store};
use snapshot_table::SnapshotTable;

/// What the catalog needs to know about a tenant besides its snapshots.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub name: String,
    pub timezone: Tz,
    /// Effective settings, shown in `system.settings` (never secrets).
    pub settings: BTreeMap<String, String>,
    /// The tenant's calendar file (docs/udfs.md §3); the built-in calendars when `None`.
    pub calendars: Option<std::path::PathBuf>,
}

/// A failure to build a tenant's catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("registering table {table} of tenant {tenant}: {source}")]
    Register { tenant: String, table: &'static str, source: datafusion::error::DataFusionError },
    #[error("unknown tenant '{0}'")]
    UnknownTenant(String),
}

/// What one tenant serves right now.
#[derive(Debug)]
pub struct TenantState {
    pub info: TenantInfo,
    /// The snapshot behind `crm`; `None` when the tenant has none that loads.
    pub manifest: Option<Manifest>,
    /// Why the tenant serves no snapshot, or an older one than `CURRENT` names.
    pub problem: Option<String>,
    /// The working-time calendars, with the absences of the served snapshot.
    pub calendars: Arc<CalendarRegistry>,
    catalog: Arc<dyn CatalogProvider>,
}

/// Every tenant's catalog, hot-swappable.
#[derive(Debug)]
pub struct Catalog {
    store: Store,
    runtimes: query_memory::QueryRuntimes,
    /// The KPI build's runtime: a memory budget of its own, spilling to disk beyond it.
    kpi_runtime: Arc<RuntimeEnv>,
    tenants: BTreeMap<String, ArcSwap<TenantState>>,
    /// One load of a tenant at a time (a follow and a refresh's install), so the state
    /// swapped in last is the one built from the newest `CURRENT`.
    loading: BTreeMap<String, tokio::sync::Mutex<()>>,
    /// Calendars for sessions without a tenant (functions only).
    fallback_calendars: Arc<CalendarRegistry>,
    materialise: kpi::Materialise,
    /// The refresh attempts and queries of this process, for `system.refreshes` and
    /// `system.queries`.
    logs: Logs,
    /// Every process's refresh attempts, as read from the store for `system.refreshes`.
    stored_refreshes: Arc<system::StoredRefreshes>,
}

impl Catalog {
    /// A catalog for these tenants, each serving nothing until [`Catalog::load_tenant`].
    pub fn new(store: Store, tenants: Vec<TenantInfo>) -> Catalog {
        let runtime = Arc::new(RuntimeEnv::default());
        runtime.register_object_store(store.base_url(), store.object_store());
        let logs = Logs::default();
        let stored_refreshes = Arc::new(system::StoredRefreshes::new(store.clone()));
        let tenants: BTreeMap<String, ArcSwap<TenantState>> = tenants
            .into_iter()
            .map(|info| {
                let state = TenantState {
                    problem: Some(format!("tenant {} has not been loaded yet", info.name)),
                    catalog: empty_catalog(&info, &[], None, &logs, &stored_refreshes),
                    manifest: None,
                    calendars: Arc::new(CalendarRegistry::builtin()),
                    info,
                };
                (state.info.name.clone(), ArcSwap::from_pointee(state))
            })
            .collect();
        let kpi_runtime = query_memory::kpi_build_runtime(&runtime);
        let loading = tenants.keys().map(|name: &String| (name.clone(), tokio::sync::Mutex::new(()))).collect();
        Catalog {
            store,
            loading,
            kpi_runtime,
            runtimes: query_memory::QueryRuntimes::new(runtime),
            tenants,
            fallback_calendars: Arc::new(CalendarRegistry::builtin()),
            materialise: kpi::Materialise::Build,
            logs,
            stored_refreshes,
        }
    }

    /// Gives every served session its own memory pool of `bytes` (`limits.query_memory`),
    /// without spill files; `None` shares one unbounded pool.
    pub fn with_query_memory(mut self, bytes: Option<usize>) -> Catalog {
        self.runtimes = self.runtimes.with_limit(bytes);
        self
    }

    /// `ctx` with a memory pool of its own (`limits.query_memory`), for one query of a
    /// session that outlives it (a PostgreSQL connection's cached session): the query's
    /// catalogs, functions and options are the session's, its memory budget is not shared.
    /// Without a limit, the shared runtime is kept.
    pub fn with_own_memory(&self, ctx: &SessionContext) -> SessionContext {
        let runtime = self.runtimes.for_session();
        if Arc::ptr_eq(&runtime, self.runtimes.shared()) {
            return ctx.clone();
        }
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state()).with_runtime_env(runtime).build();
        SessionContext::new_with_state(state)
    }

    /// The refreshes and queries of this process that `system.refreshes` and
    /// `system.queries` show: the scheduler and the front ends write to them.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Names this process in `system.queries` (`server.replica`).
    pub fn with_replica(self, name: &str) -> Catalog {
        self.logs.queries.set_replica(name);
        self
    }

    /// Whether loading a tenant computes its missing KPI tables (the default) or only uses
    /// stored ones.
    pub fn with_materialise(mut self, mode: kpi::Materialise) -> Catalog {
        self.materialise = mode;
        self
    }

    /// Uses these calendars in sessions that have no tenant.
    pub fn with_fallback_calendars(mut self, calendars: Arc<CalendarRegistry>) -> Catalog {
        self.fallback_calendars = calendars;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tenant names, sorted.
    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants.keys().cloned().collect()
    }

    /// The state a tenant serves now.
    pub fn tenant(&self, name: &str) -> Option<Arc<TenantState>> {
        self.tenants.get(name).map(ArcSwap::load_full)
    }

    /// A table as the tenant `catalog_name` serves it now (`crm`, `kpi` or `system`), for a
    /// plan made on an older snapshot to run on the current one.
    pub async fn current_table(&self, catalog_name: &str, schema: &str, table: &str) -> Option<Arc<dyn datafusion::datasource::TableProvider>> {
        let state = self.tenant(catalog_name)?;
        state.catalog.schema(schema)?.table(table).await.ok().flatten()
    }

    /// Loads (or reloads) a tenant's current snapshot and swaps it in, building its missing
    /// KPI tables unless the catalog was made [`kpi::Materialise::UseStored`].
    ///
    /// A current snapshot that fails to load (a missing or corrupt file) is reported in the
    /// returned state's `problem` and the newest older snapshot that loads is served instead;
    /// nothing stored is changed.
    ///
    /// # Errors
    /// Only an unknown tenant name; storage problems end up in `problem`.
    pub async fn load_tenant(&self, name: &str) -> Result<Arc<TenantState>, CatalogError> {
        self.load_tenant_with(name, self.materialise).await
    }

    /// [`Catalog::load_tenant`] for a snapshot another process committed: its writer built
    /// the KPI tables, so they are only looked up (when missing, the views compute per
    /// query); every replica of a fleet loading a snapshot never builds them again.
    ///
    /// # Errors
    /// As [`Catalog::load_tenant`].
    ///
    /// A follow never makes things worse: when the snapshot `CURRENT` names does not load
    /// (a file not readable yet, the store throttling), the state served stays, and the
    /// returned state is that one.
    pub async fn follow_tenant(&self, name: &str) -> Result<Arc<TenantState>, CatalogError> {
        let (slot, lock) = self.slot(name)?;
        let _loading = lock.lock().await;
        let old = slot.load_full();
        let (state, serves_current) = self.build_state(old.info.clone(), kpi::Materialise::UseStored).await;
        if !serves_current && old.manifest.is_some() {
            tracing::warn!(tenant = name, problem = state.problem.as_deref().unwrap_or(""), "the snapshot CURRENT names did not load; the served one stays");
            return Ok(old);
        }
        let state = Arc::new(state);
        slot.store(Arc::clone(&state));
        Ok(state)
    }

    async fn load_tenant_with(&self, name: &str, mode: kpi::Materialise) -> Result<Arc<TenantState>, CatalogError> {
        let (slot, lock) = self.slot(name)?;
        let _loading = lock.lock().await;
        let info = slot.load().info.clone();
        let state = Arc::new(self.build_state(info, mode).await.0);
        slot.store(Arc::clone(&state));
        Ok(state)
    }

    fn slot(&self, name: &str) -> Result<(&ArcSwap<TenantState>, &tokio::sync::Mutex<()>), CatalogError> {
        match (self.tenants.get(name), self.loading.get(name)) {
            (Some(slot), Some(lock)) => Ok((slot, lock)),
            _ => Err(CatalogError::UnknownTenant(name.into())),
        }
    }

    /// Builds a tenant's state for a snapshot that is written but not committed yet,
    /// building and storing its KPI tables in the snapshot's folder, so that every process
    /// that loads the snapshot once it is committed finds them. Nothing is swapped in:
    /// [`Catalog::install`] does that after the commit.
    ///
    /// # Errors
    /// An unknown tenant, or the snapshot's files do not load.
    pub async fn prepare(&self, name: &str, manifest: &Manifest) -> Result<Arc<TenantState>, CatalogError> {
        let (slot, _) = self.slot(name)?;
        let info = slot.load().info.clone();
        let mut snapshots = self.store.list_snapshots(&info.name).await.unwrap_or_default();
        if !snapshots.iter().any(|m| m.snapshot_id == manifest.snapshot_id) {
            snapshots.push(manifest.clone());
        }
        let catalog = self.try_build(&info, manifest, &snapshots).await?;
        let (calendars, problem) = tenant_calendars(&info, &catalog).await;
        let problem = join_problems(problem, self.kpi_views(&info, manifest, &catalog, &calendars, kpi::Materialise::Build).await);
        Ok(Arc::new(TenantState { info, manifest: Some(manifest.clone()), problem, calendars, catalog }))
    }

    /// Swaps in a state made by [`Catalog::prepare`] once its snapshot is committed, after
    /// any load of the tenant in progress.
    ///
    /// # Errors
    /// An unknown tenant.
    pub async fn install(&self, name: &str, state: Arc<TenantState>) -> Result<(), CatalogError> {
        let (slot, lock) = self.slot(name)?;
        let _loading = lock.lock().await;
        // A follow that ran meanwhile may have loaded a newer snapshot (ids sort by time).
        let served = slot.load().manifest.as_ref().map(|m| m.snapshot_id.clone());
        let installing = state.manifest.as_ref().map(|m| m.snapshot_id.clone());
        if served.is_some() && served > installing {
            return Ok(());
        }
        slot.store(state);
        Ok(())
    }

    /// The state of `info`'s tenant from its current snapshot, and whether it serves that
    /// one (not an older one it fell back to, nor nothing).
    async fn build_state(&self, info: TenantInfo, mode: kpi::Materialise) -> (TenantState, bool) {
        let snapshots = self.store.list_snapshots(&info.name).await.unwrap_or_default();
        let current = match self.store.current_manifest(&info.name).await {
            Ok(m) => match self.try_build(&info, &m, &snapshots).await {
                Ok(catalog) => {
                    let (calendars, problem) = tenant_calendars(&info, &catalog).await;
                    let problem = join_problems(problem, self.kpi_views(&info, &m, &catalog, &calendars, mode).await);
                    return (TenantState { info, manifest: Some(m), problem, calendars, catalog }, true);
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        // Fall back to the newest older snapshot that loads (never a newer one: a write
        // that stopped before its commit).
        let current_id = self.store.current_id(&info.name).await.ok().flatten();
        let older = |m: &&Manifest| current_id.as_ref().is_none_or(|c| &m.snapshot_id < c);
        for m in snapshots.iter().rev().filter(older) {
            if let Ok(catalog) = self.try_build(&info, m, &snapshots).await {
                let problem = format!("{current}; serving the previous snapshot {} instead", m.snapshot_id);
                tracing::error!(tenant = %info.name, "{problem}");
                let (calendars, _) = tenant_calendars(&info, &catalog).await;
                let problem = join_problems(Some(problem), self.kpi_views(&info, m, &catalog, &calendars, mode).await);
                return (TenantState { info, manifest: Some(m.clone()), problem, calendars, catalog }, false);
            }
        }
        tracing::warn!(tenant = %info.name, "{current}");
        let catalog = empty_catalog(&info, &snapshots, None, &self.logs, &self.stored_refreshes);
        let (calendars, _) = tenant_calendars(&info, &catalog).await;
        (TenantState { catalog, info, manifest: None, problem: Some(current), calendars }, false)
    }

    async fn try_build(&self, info: &TenantInfo, manifest: &Manifest, snapshots: &[Manifest]) -> Result<Arc<dyn CatalogProvider>, CatalogError> {
        let mut files = self.store.verify(manifest).await?;
        let crm = MemorySchemaProvider::new();
        let state = SessionContext::new_with_config_rt(SessionConfig::new(), Arc::clone(self.runtimes.shared())).state();
        let store_url = ObjectStoreUrl::parse(self.store.base_url().as_str())
            .map_err(|source| CatalogError::Register { tenant: info.name.clone(), table: "crm", source })?;
        for table in Table::ALL {
            let register = |source| CatalogError::Register { tenant: info.name.clone(), table: table.name(), source };
            // A table the manifest does not list is empty in this snapshot (written before
            // the table existed); a listed file that is missing failed `verify` above.
            let table_files = files.remove(table).unwrap_or_default();
            let provider = SnapshotTable::load(&state, store_url.clone(), table.schema(), table_files, true).await.map_err(register)?;
            crm.register_table(table.name().to_string(), Arc::new(provider)).map_err(register)?;
        }
        Ok(empty_catalog(info, snapshots, Some((manifest, Arc::new(crm))), &self.logs, &self.stored_refreshes))
    }

    /// A session that sees every tenant's current catalog, with the UDFs registered.
    /// `default_tenant` becomes the default catalog (with `crm` as default schema), so
    /// `SELECT * FROM calls` and `FROM crm.calls` both work.
    pub fn session(&self, default_tenant: Option<&str>) -> SessionContext {
        self.session_for(default_tenant, None, "")
    }

    /// A session of `user` holding only the tenants in `allowed` (all when `None`): another
    /// tenant's tables cannot be named, listed or reached through `information_schema`, and
    /// `system.queries` shows `user`'s queries.
    pub fn session_for(&self, default_tenant: Option<&str>, allowed: Option<&[String]>, user: &str) -> SessionContext {
        let visible = |name: &str| allowed.is_none_or(|list| list.iter().any(|t| t == name));
        let default = default_tenant
            .filter(|d| visible(d))
            .map(str::to_string)
            .or_else(|| self.tenants.keys().find(|n| visible(n)).cloned());
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(default.is_none());
        if let Some(d) = &default {
            config = config.with_default_catalog_and_schema(d, "crm");
        }
        let options = config.options_mut();
        options.execution.parquet.schema_force_view_types = false;
        options.sql_parser.map_string_types_to_utf8view = false;
        options.execution.time_zone = Some("UTC".into());
        let threshold = default
            .as_ref()
            .and_then(|d| self.tenants.get(d))
            .and_then(|s| s.load().info.settings.get("calls.success_threshold_seconds").and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(60);
        let config = config.with_option_extension(SalesOptions::with_call_threshold(threshold)).with_option_extension(system::SessionUser::named(user));
        let ctx = output_order::session_context(config, self.runtimes.for_session());
        let mut calendars = Arc::clone(&self.fallback_calendars);
        for (name, slot) in self.tenants.iter().filter(|(n, _)| visible(n)) {
            let state = slot.load();
            // A layer of the session's own over the shared catalog: what a session registers
            // (the PostgreSQL front end's `pg_catalog`, listing that user's tenants) stays in
            // that session.
            ctx.register_catalog(name, Arc::new(SessionCatalog::over(Arc::clone(&state.catalog))));
            if Some(name) == default.as_ref() {
                calendars = Arc::clone(&state.calendars);
            }
        }
        // Working-time functions use the default tenant's calendars and absences.
        salespulse_udfs::register_all(&ctx, calendars);
        ctx
    }

    /// A hint for an error about a missing table: which tenants serve no snapshot. Only for
    /// the operator (the CLI): it names every tenant and storage paths.
    pub fn missing_snapshot_hint(&self) -> Option<String> {
        let problems: Vec<String> =
            self.tenants.values().filter_map(|s| s.load().problem.clone()).collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// The same hint for a user of the server: only the tenants `principal` may read, and
    /// without storage paths (`tenant acme serves no snapshot yet`).
    pub fn missing_snapshot_hint_for(&self, principal: &salespulse_config::auth::Principal) -> Option<String> {
        let problems: Vec<String> = self
            .tenants
            .iter()
            .filter(|(name, _)| principal.may_read(name))
            .filter(|(_, s)| s.load().problem.is_some())
            .map(|(name, _)| format!("tenant {name} has no current snapshot; see GET /health for why"))
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Builds the `kpi` views of a served snapshot and puts their materialised tables in
    /// their place; a failure is the tenant's problem (the `crm` tables still serve, and
    /// views not materialised still answer, only slower).
    async fn kpi_views(&self, info: &TenantInfo, manifest: &Manifest, catalog: &Arc<dyn CatalogProvider>, calendars: &Arc<CalendarRegistry>, mode: kpi::Materialise) -> Option<String> {
        let params = kpi::ViewParams {
            tenant: info.name.clone(),
            timezone: info.timezone.name().to_string(),
            taken_at: manifest.taken_at,
            calendar: calendars.default_calendar().to_string(),
            settings: info.settings.clone(),
        };
        // Declared first, dropped last: everything the build holds is freed before it ends.
        let _purging = crate::memory::while_building();
        let build_catalog = canonical_strings(catalog).await;
        let ctx = kpi::tenant_session(&build_catalog, Arc::clone(calendars), &params, Arc::clone(&self.kpi_runtime));
        if let Err(e) = kpi::register_views(&ctx, &params).await {
            tracing::error!(tenant = %info.name, "{e}");
            return Some(format!("the KPI views could not be built: {e}"));
        }
        // The calendar definitions are part of what the rows depend on.
        let calendar_source = info.calendars.as_ref().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        let stored = match kpi::fingerprint(&params, &calendar_source) {
            Ok(fp) => kpi::materialise(&ctx, catalog, &self.store, &params, &manifest.snapshot_id, &fp, mode).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(Some(r)) if r.built => {
                tracing::info!(tenant = %info.name, fingerprint = %r.fingerprint, rows = r.rows, bytes = r.bytes, seconds = r.seconds, "kpi tables materialised");
                None
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(tenant = %info.name, "materialising the KPI tables: {e}; the views compute per query");
                Some(format!("the KPI tables could not be materialised ({e}); the views compute per query"))
            }
        }
    }
}

fn join_problems(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// `catalog` as the KPI build reads it: the same schemas (views and tables it registers land
/// in the served `kpi` schema), with the `crm` tables' strings in the canonical `Utf8`
/// (`snapshot_table`).
async fn canonical_strings(catalog: &Arc<dyn CatalogProvider>) -> Arc<dyn CatalogProvider> {
    let build = MemoryCatalogProvider::new();
    for name in catalog.schema_names() {
        let Some(schema) = catalog.schema(&name) else { continue };
        if name != "crm" {
            let _ = build.register_schema(&name, schema);
            continue;
        }
        let crm = MemorySchemaProvider::new();
        for table_name in schema.table_names() {
            let Ok(Some(provider)) = schema.table(&table_name).await else { continue };
            let canonical: Arc<dyn datafusion::catalog::TableProvider> = match provider.downcast_ref::<SnapshotTable>() {
                Some(served) => Arc::new(served.canonical()),
                None => provider,
            };
            let _ = crm.register_table(table_name, canonical);
        }
        let _ = build.register_schema(&name, Arc::new(crm));
    }
    Arc::new(build)
}

fn empty_catalog(info: &TenantInfo, snapshots: &[Manifest], served: Option<(&Manifest, Arc<MemorySchemaProvider>)>, logs: &Logs, stored: &Arc<system::StoredRefreshes>) -> Arc<dyn CatalogProvider> {
    let catalog = MemoryCatalogProvider::new();
    let (manifest, crm) = match served {
        Some((m, crm)) => (Some(m), crm),
        None => (None, Arc::new(MemorySchemaProvider::new())),
    };
    let system = system::schema(info, snapshots, manifest, logs, stored);
    // Registering a schema in a fresh in-memory catalog cannot fail.
    let _ = catalog.register_schema("crm", crm);
    let _ = catalog.register_schema("kpi", Arc::new(MemorySchemaProvider::new()));
    let _ = catalog.register_schema("system", system);
    Arc::new(catalog)
}

/// The tenant's calendars (its file or the built-in ones, defaulting to the calendar of its
/// zone) with the absences of its `crm.absences` table. A calendar file that fails to load
/// is reported as the tenant's problem and the built-in calendars are used.
async fn tenant_calendars(info: &TenantInfo, catalog: &Arc<dyn CatalogProvider>) -> (Arc<CalendarRegistry>, Option<String>) {
    let (registry, problem) = match &info.calendars {
        Some(path) => match CalendarRegistry::from_file(path) {
            Ok(r) => (r, None),
            Err(e) => {
                tracing::error!(tenant = %info.name, "{e}; using the built-in calendars");
                (CalendarRegistry::builtin(), Some(format!("{e}; using the built-in calendars")))
            }
        },
        None => (CalendarRegistry::builtin(), None),
    };
    let absences = match read_absences(catalog).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(tenant = %info.name, "reading crm.absences for the calendars: {e}");
            Vec::new()
        }
    };
    (Arc::new(registry.with_default_for_zone(info.timezone).with_absences(absences)), problem)
}

async fn read_absences(catalog: &Arc<dyn CatalogProvider>) -> datafusion::error::Result<Vec<Absence>> {
    use arrow::array::{Array, AsArray};
    let Some(crm) = catalog.schema("crm") else { return Ok(Vec::new()) };
    let Some(table) = crm.table("absences").await? else { return Ok(Vec::new()) };
    let batches = SessionContext::new().read_table(table)?.select_columns(&["manager_id", "starts_on", "ends_on"])?.collect().await?;
    let mut out = Vec::new();
    for b in batches {
        // The engine reads strings as views (`snapshot_table`).
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let from = b.column(1).as_primitive::<arrow::datatypes::Date32Type>();
        let to = b.column(2).as_primitive::<arrow::datatypes::Date32Type>();
        for i in 0..b.num_rows() {
            if ids.is_null(i) || from.is_null(i) || to.is_null(i) {
                continue;
            }
            let (Some(f), Some(t)) = (days_to_date(from.value(i)), days_to_date(to.value(i))) else { continue };
            if t >= f {
                out.push(Absence::Days { employee: ids.value(i).to_string(), from: f, to: t });
            }
        }
    }
    Ok(out)
}

fn days_to_date(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
}

/// A session's view of a shared tenant catalog: schemas registered in the session are kept
/// here, in front of the shared ones, and never reach the shared catalog.
#[derive(Debug)]
struct SessionCatalog {
    shared: Arc<dyn CatalogProvider>,
    own: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn datafusion::catalog::SchemaProvider>>>,
}

impl SessionCatalog {
    fn over(shared: Arc<dyn CatalogProvider>) -> SessionCatalog {
        SessionCatalog { shared, own: Default::default() }
    }
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.schema_names();
        let own = self.own.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        names.extend(own.keys().filter(|k| !names.contains(k)).cloned().collect::<Vec<_>>());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn datafusion::catalog::SchemaProvider>> {
        let own = self.own.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        own.get(name).cloned().or_else(|| self.shared.schema(name))
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn datafusion::catalog::SchemaProvider>) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::SchemaProvider>>> {
        let mut own = self.own.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(own.insert(name.to_string(), schema))
    }
}
