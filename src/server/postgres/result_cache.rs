//! The server's result cache ([`crate::server::cache`]) on the PostgreSQL front end: the
//! same cache, rules and limits as Flight SQL's, keyed on what a PostgreSQL connection plans
//! with.
//!
//! - **Key.** The text actually planned (after this front end's rewrites), the bound
//!   parameters as the client sent them (their formats, declared types and bytes; a simple
//!   query has none, and simple and extended queries never share an entry), the tenant the
//!   connection logged into (names without a catalog resolve in it), the connection's
//!   `search_path` and `TimeZone` (they change how names resolve and what timestamps
//!   become), a `postgres` marker (this front end rewrites and types queries its own way,
//!   so its batches are never mixed with Flight SQL's), the user's tenants, and the
//!   snapshot id of every tenant the user may read, read before the statement was planned:
//!   before a simple query's context is built, or before Parse plans a prepared statement
//!   (whose plan keeps reading the snapshot it was planned on, Execute after Execute).
//! - **Arrow batches are kept**, not wire rows: each request encodes them in its own result
//!   formats (text or binary, per column) and its `DateStyle`, `IntervalStyle`,
//!   `extra_float_digits` and `bytea_output`, so none of those is in the key.
//! - **Only queries** (`SELECT`, `WITH`, `VALUES`): never `SET`, `SHOW`, `EXPLAIN`, `COPY`,
//!   cursors (`DECLARE`, `FETCH`), transactions or `DISCARD`; never a query the planned tree
//!   shows reading `system`, `information_schema` or `pg_catalog` (wherever the
//!   `search_path` resolves its names) or calling a volatile function; never a prepared
//!   statement whose `search_path` or `TimeZone` changed between Parse and Execute.
//! - **Kept only when read to its end**: the batches pass a [`Recorder`] before they are
//!   encoded, and it keeps them only once the last row went out. A result that failed,
//!   that a limit stopped (rows, bytes, time: the row stream then ends early), or that a
//!   client left in a portal suspended by an Execute with a row count is never kept.
//! - **A hit** passes the login and the statement filter as any query does (a connection
//!   runs nothing before its login, and the key holds the user's tenants), takes no slot,
//!   and counts in the metrics and `system.queries` as cached.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::{Stream, StreamExt};

use super::errors::query_error;
use super::login::Login;
use super::statements::DfStatement;
use crate::catalog::QueryError;
use crate::server::cache::{CacheKey, CachedResult, Recorder, ResultCache, plan_is_cacheable_in};

/// The protocol marker of this front end's keys.
const PROFILE: &str = "postgres";

/// What a statement is planned with, read before it is planned: the snapshot id of every
/// tenant the user may read, and the connection settings planning reads
/// ([`super::search_path::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlanningView {
    /// (tenant, snapshot id), in tenant order.
    snapshots: Vec<(String, Option<String>)>,
    settings: PlanningSettings,
}

/// The connection settings that change a plan: where names resolve and the time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlanningSettings {
    search_path: Option<String>,
    time_zone: Option<String>,
}

impl PlanningSettings {
    /// `client`'s settings, read from where [`super::statements::Queries::query_context`]
    /// reads them.
    fn of(client: &dyn ClientInfo) -> PlanningSettings {
        let metadata = client.metadata();
        PlanningSettings { search_path: metadata.get("search_path").cloned(), time_zone: metadata.get("timezone").cloned() }
    }
}

impl PlanningView {
    /// The view of a connection whose user may read the tenants of `snapshots`.
    pub(super) fn new(snapshots: Vec<(String, Option<String>)>, client: &dyn ClientInfo) -> PlanningView {
        PlanningView { snapshots, settings: PlanningSettings::of(client) }
    }

    /// Whether `client`'s settings are still those this view was read with.
    pub(super) fn settings_match(&self, client: &dyn ClientInfo) -> bool {
        self.settings == PlanningSettings::of(client)
    }
}

/// A prepared statement of the connection with the view it was planned on.
#[derive(Debug)]
pub(super) struct PlannedStatement {
    statement: Weak<StoredStatement<DfStatement>>,
    view: PlanningView,
}

impl PlannedStatement {
    pub(super) fn new(statement: &Arc<StoredStatement<DfStatement>>, view: PlanningView) -> PlannedStatement {
        PlannedStatement { statement: Arc::downgrade(statement), view }
    }

    /// The view `statement` was planned on, if this is its record (a name parsed again is
    /// another statement: a portal bound before keeps the old one).
    pub(super) fn view_of(&self, statement: &Arc<StoredStatement<DfStatement>>) -> Option<&PlanningView> {
        std::ptr::eq(self.statement.as_ptr(), Arc::as_ptr(statement)).then_some(&self.view)
    }
}

/// The cache key of `sql` (the text planned) with `parameters` for `login`'s connection,
/// planned on `view`; `None` when the cache is off or the text shows a result that changes
/// without a refresh.
pub(super) fn key(cache: &ResultCache, login: &Login, view: &PlanningView, sql: &str, parameters: &str) -> Option<String> {
    // Debug-quoted: a setting's value cannot reach into the key's other fields.
    let profile = format!("{PROFILE} search_path={:?} time_zone={:?}", view.settings.search_path, view.settings.time_zone);
    let key = cache.key(&CacheKey { sql, parameters, profile: &profile, tenants: login.principal.tenants.as_deref(), snapshots: &view.snapshots })?;
    Some(format!("{}\u{1f}{key}", login.tenant))
}

/// The key text of a simple query's statement: it has no parameters.
pub(super) const SIMPLE_PARAMETERS: &str = "simple";

/// The key text of an extended-protocol portal's parameters, as the client bound them:
/// formats, the types declared at Parse (they type the plan) and the bytes.
pub(super) fn portal_parameters(portal: &Portal<DfStatement>) -> String {
    format!("extended {:?} {:?} {:?}", portal.parameter_format, portal.statement.parameter_types, portal.parameters)
}

/// The default schema of `ctx`: where its names without a schema resolve.
pub(super) fn default_schema(ctx: &SessionContext) -> String {
    ctx.state().config_options().catalog.default_schema.clone()
}

/// A cached result's rows, encoded for this request in `format` with `options`.
pub(super) fn replay(hit: &CachedResult, format: &Format, options: Arc<FormatOptions>) -> PgWireResult<QueryResponse> {
    let batches = futures::stream::iter(hit.batches.clone().into_iter().map(Ok));
    encode(&hit.schema, batches, format, options)
}

/// Runs `df` and encodes its rows in `format` as they are read; its batches are kept in
/// `cache` under `key` once the last row went out (see the module docs).
///
/// `following` is the catalog and the tenants the asking user reads: a plan whose snapshot
/// was deleted before any row went out runs once more on the current one
/// (`crate::server::snapshot_gone`).
pub(super) async fn recorded(df: DataFrame, format: &Format, options: Arc<FormatOptions>, cache: Arc<ResultCache>, key: Option<String>, following: Following) -> PgWireResult<QueryResponse> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = crate::server::snapshot_gone::execute_following(df, following.catalog, following.tenants).await.map_err(engine_error)?;
    let recorder = Arc::new(Recorder::new(cache, key, Arc::clone(&schema)));
    let seen = Arc::clone(&recorder);
    let batches = batches.map(move |batch| {
        seen.record(batch.as_ref().ok());
        batch.map_err(engine_error)
    });
    // Polled only after the rows of the last batch were taken: a consumer that stopped
    // earlier (a limit, an error, a suspended portal, a client gone) never gets here.
    let read_to_end = futures::stream::once(async move {
        recorder.finish();
    })
    .filter_map(|()| async { None });
    encode(&schema, batches.chain(read_to_end), format, options)
}

/// What a query runs on again when its snapshot is gone: the catalog, and the tenants the
/// user reads.
#[derive(Debug, Clone)]
pub(super) struct Following {
    pub(super) catalog: Arc<crate::catalog::Catalog>,
    pub(super) tenants: Vec<String>,
}

/// The `DataRow`s of `batches` in `format`, encoded batch by batch as they are read.
fn encode(
    schema: &Schema,
    batches: impl Stream<Item = PgWireResult<RecordBatch>> + Send + 'static,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(arrow_schema_to_pg_fields(schema, format, Some(options))?);
    let row_fields = Arc::clone(&fields);
    let rows = batches.flat_map(move |batch| {
        let encoded: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
            Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        futures::stream::iter(encoded)
    });
    Ok(QueryResponse::new(fields, rows))
}

/// An engine error as the client sees it.
fn engine_error(e: DataFusionError) -> PgWireError {
    query_error(&QueryError::from_datafusion(e, None))
}

/// The last hook of an Execute whose query may be kept: it runs the query as
/// datafusion-postgres would (its parameters bound, optimised, executed), but from the
/// Arrow batches, so they can be recorded. datafusion-postgres decodes the parameters and
/// runs the hooks before it (the statement filter, an aborted transaction's refusal).
#[derive(Debug)]
pub(super) struct RecordedExecution {
    /// The portal's result column formats.
    format: Format,
    cache: Arc<ResultCache>,
    key: String,
    following: Following,
}

impl RecordedExecution {
    pub(super) fn new(format: Format, cache: Arc<ResultCache>, key: String, following: Following) -> RecordedExecution {
        RecordedExecution { format, cache, key, following }
    }

    async fn run(&self, plan: &LogicalPlan, params: &ParamValues, ctx: &SessionContext, options: Arc<FormatOptions>) -> PgWireResult<Response> {
        let bound = plan.clone().replace_params_with_values(params).map_err(engine_error)?;
        let optimised = ctx.state().optimize(&bound).map_err(engine_error)?;
        // Whether a result may be shared is decided on the plan, not the text.
        let key = plan_is_cacheable_in(&optimised, &default_schema(ctx)).then(|| self.key.clone());
        let df = ctx.execute_logical_plan(optimised).await.map_err(engine_error)?;
        recorded(df, &self.format, options, Arc::clone(&self.cache), key, self.following.clone()).await.map(Response::Query)
    }
}

#[async_trait]
impl QueryHook for RecordedExecution {
    async fn handle_simple_query(&self, _statement: &Statement, _ctx: &SessionContext, _client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        None
    }

    async fn handle_extended_parse_query(&self, _statement: &Statement, _ctx: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        Some(self.run(plan, params, ctx, options).await)
    }
}

#[cfg(test)]
mod tests {
    use salespulse_config::auth::Principal;

    use super::*;

    fn view(search_path: Option<&str>, time_zone: Option<&str>, snapshot: &str) -> PlanningView {
        PlanningView {
            snapshots: vec![("acme".to_string(), Some(snapshot.to_string()))],
            settings: PlanningSettings { search_path: search_path.map(str::to_string), time_zone: time_zone.map(str::to_string) },
        }
    }

    fn login(tenant: &str) -> Login {
        Login { principal: Principal::anonymous(), tenant: tenant.to_string() }
    }

    #[test]
    fn keys_hold_what_a_connection_plans_with_and_never_match_flight_sql() {
        let cache = ResultCache::new(1 << 20);
        let sql = "SELECT count(*) FROM crm.calls";
        let base = key(&cache, &login("acme"), &view(None, None, "s1"), sql, SIMPLE_PARAMETERS).unwrap();
        assert_eq!(key(&cache, &login("acme"), &view(None, None, "s1"), sql, SIMPLE_PARAMETERS), Some(base.clone()));
        let others = [
            key(&cache, &login("beta"), &view(None, None, "s1"), sql, SIMPLE_PARAMETERS),
            key(&cache, &login("acme"), &view(Some("kpi"), None, "s1"), sql, SIMPLE_PARAMETERS),
            key(&cache, &login("acme"), &view(None, Some("Europe/Moscow"), "s1"), sql, SIMPLE_PARAMETERS),
            key(&cache, &login("acme"), &view(None, None, "s2"), sql, SIMPLE_PARAMETERS),
            key(&cache, &login("acme"), &view(None, None, "s1"), sql, "extended UnifiedText [] []"),
        ];
        for other in others {
            assert_ne!(other.unwrap(), base);
        }
        // A value set by a client cannot reach into the key's other fields.
        let forged = view(Some("crm\u{1f}x"), None, "s1");
        assert!(!key(&cache, &login("acme"), &forged, sql, SIMPLE_PARAMETERS).unwrap().contains("crm\u{1f}x"));
        // Flight SQL's key of the same text, tenant and snapshots.
        let snapshots = view(None, None, "s1").snapshots;
        let flight = cache.key(&CacheKey { sql, parameters: SIMPLE_PARAMETERS, profile: "standard", tenants: None, snapshots: &snapshots }).map(|k| format!("acme\u{1f}{k}"));
        assert_ne!(flight, Some(base));
        assert_eq!(key(&ResultCache::new(0), &login("acme"), &view(None, None, "s1"), sql, SIMPLE_PARAMETERS), None, "result_cache = 0: off");
    }
}
