//! Running a logged-in connection's statements, simple and extended, under the same rules as
//! Flight SQL:
//!
//! 1. the text's length and expression depth ([`TextLimits`]) before it is parsed;
//! 2. the statement filter and the client settings ([`super::settings`]);
//! 3. one slot per query (a simple query's statements share it, and its deadline and result
//!    caps), taken before planning; planning runs under the deadline in a task of its own;
//! 4. the read-only check on the *planned* statement, `EXPLAIN` and subqueries included
//!    ([`check_read_only`]), on the simple path, at Parse and again at Execute;
//! 5. rows stream under the slot's deadline and caps; the slot is watched so that a client
//!    that stops reading loses it ([`crate::server::limits::Admission::watch`]);
//! 6. every statement is audited (`system.queries`) and counted in the metrics;
//! 7. a query answered before is answered from the result cache, without a slot, and its
//!    new results are kept once read to their end ([`super::result_cache`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{CopyResponse, QueryResponse, Response};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::DfSessionService;
use datafusion::arrow::array::RecordBatch;
use futures::{Sink, SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::coercion;
use super::parser::TenantParser;
use super::copy;
use super::result_cache::{self, PlannedStatement, PlanningView, RecordedExecution};
use super::rewrite;
use super::search_path;
use super::login::Login;
use super::settings::{self, query_hooks};
use super::Shared;
use super::errors::{limit_error, parse_error, pg_message, query_error, refusal_error, user_error};
use crate::history::queries::Protocol;
use crate::catalog::{QueryError, TextLimits, check_read_only, planning_error};
use crate::server::cache::{CachedResult, plan_is_cacheable_in};
use crate::server::execution::{self, Audit};
use crate::server::limits::Admission;

pub(super) type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// Sessions (each with its own `pg_catalog`) by who asks for what, with the snapshots each
/// was built on.
pub(super) type SessionCache = HashMap<SessionKey, CachedSession>;

/// Who a cached session is for: its tenant, the tenants its user may read (`*` for all),
/// and the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SessionKey {
    tenant: String,
    allowed: String,
    user: String,
}

/// A connection session kept for reuse while the snapshots it was built on are served.
pub(super) struct CachedSession {
    /// (tenant, snapshot id) of the visible tenants when it was built, in tenant order.
    built_on: Vec<(String, Option<String>)>,
    session: Arc<SessionContext>,
}

/// One connection's query handling.
pub(super) struct Queries {
    pub(super) shared: Arc<Shared>,
    pub(super) login: Arc<OnceLock<Login>>,
    pub(super) parser: Arc<TenantParser>,
    pub(super) sql_parser: Arc<PostgresCompatibilityParser>,
    /// Cancelled when a query of this connection overran its deadline unread.
    pub(super) overrun: CancellationToken,
    /// Names of the prepared statements and portals the connection keeps.
    pub(super) kept: Mutex<(HashSet<String>, HashSet<String>)>,
    /// Names of the cursors open on the connection.
    pub(super) cursors: Arc<Mutex<HashMap<String, datafusion::common::DFSchemaRef>>>,
    /// The prepared statements by name, with what each was planned on (the result cache's
    /// key of their Executes).
    pub(super) planned: Mutex<HashMap<String, PlannedStatement>>,
}

impl Queries {
    pub(super) fn new(shared: Arc<Shared>, login: Arc<OnceLock<Login>>, overrun: CancellationToken) -> Arc<Queries> {
        Arc::new_cyclic(|weak| Queries {
            parser: Arc::new(TenantParser { template: Arc::clone(&shared.template), queries: weak.clone() }),
            sql_parser: Arc::clone(&shared.sql_parser),
            shared,
            login,
            overrun,
            kept: Mutex::new((HashSet::new(), HashSet::new())),
            cursors: Arc::default(),
            planned: Mutex::new(HashMap::new()),
        })
    }

    /// The error a connection is closed with when its query overran.
    pub(super) fn overrun_error(&self) -> PgWireError {
        let seconds = self.shared.limits().query_timeout.as_secs();
        user_error(
            "FATAL",
            "57014",
            format!("the query ran longer than {seconds} s, the limit (limits.query_timeout_seconds), without its result being read; the connection is closed"),
        )
    }

    pub(super) fn login(&self) -> PgWireResult<&Login> {
        self.login.get().ok_or_else(|| user_error("FATAL", "28000", "the connection has not logged in".into()))
    }

    pub(super) fn text_limits(&self) -> TextLimits {
        TextLimits::of(self.shared.limits())
    }

    /// (tenant, snapshot id) of every tenant the connection's user may read, in tenant order.
    pub(super) fn visible_snapshots(&self) -> PgWireResult<Vec<(String, Option<String>)>> {
        let principal = &self.login()?.principal;
        let catalog = &self.shared.catalog;
        Ok(catalog
            .tenant_names()
            .into_iter()
            .filter(|t| principal.may_read(t))
            .map(|t| {
                let id = catalog.tenant(&t).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
                (t, id)
            })
            .collect())
    }

    /// What the next statement of `client` will be planned on, read before it is planned
    /// (the result cache's key: see [`super::result_cache`]).
    pub(super) fn planning_view(&self, client: &dyn ClientInfo) -> PgWireResult<PlanningView> {
        Ok(PlanningView::new(self.visible_snapshots()?, client))
    }

    /// The connection's session, rebuilt when any visible tenant's snapshot changed.
    pub(super) fn session(&self) -> PgWireResult<Arc<SessionContext>> {
        let login = self.login()?;
        let principal = &login.principal;
        let catalog = &self.shared.catalog;
        let snapshots = self.visible_snapshots()?;
        let allowed_text = principal.tenants.as_ref().map_or_else(|| "*".to_string(), |t| t.join(","));
        let key = SessionKey { tenant: login.tenant.clone(), allowed: allowed_text, user: principal.user.clone() };
        let mut sessions = self.shared.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = sessions.get(&key)
            && cached.built_on == snapshots
        {
            return Ok(Arc::clone(&cached.session));
        }
        let ctx = catalog.session_for(Some(&login.tenant), principal.tenants.as_deref(), &principal.user);
        // The session's catalogs are its own layers over the shared ones, so this
        // `pg_catalog` (which lists the session's tenants) is the session's alone.
        setup_pg_catalog(&ctx, &login.tenant, EmptyContextProvider)
            .map_err(|e| user_error("ERROR", "XX000", format!("building the PostgreSQL catalog failed: {e}")))?;
        super::server_info::install(&ctx);
        super::pg_functions::install(&ctx);
        search_path::install_default(&ctx);
        coercion::install(&ctx);
        super::server_info::pg_settings_table()
            .and_then(|pg_settings| super::catalog_overlay::install(&ctx, pg_settings))
            .map_err(|e| user_error("ERROR", "XX000", format!("building the PostgreSQL catalog failed: {e}")))?;
        let session = Arc::new(ctx);
        sessions.insert(key, CachedSession { built_on: snapshots, session: Arc::clone(&session) });
        Ok(session)
    }

    /// The context one query runs on: the connection's session with a memory pool of the
    /// query's own (`limits.query_memory` is per query, as on Flight SQL).
    pub(super) fn query_context(&self, client: &dyn ClientInfo) -> PgWireResult<Arc<SessionContext>> {
        let session = self.session()?;
        Ok(Arc::new(search_path::apply(self.shared.catalog.with_own_memory(&session), client.metadata().get("search_path").map(String::as_str), client.metadata().get("timezone").map(String::as_str))))
    }

    /// The connection's session with its `search_path` applied, for planning.
    pub(super) fn planning_context(&self, client: &dyn ClientInfo) -> PgWireResult<Arc<SessionContext>> {
        let session = self.session()?;
        Ok(Arc::new(search_path::apply((*session).clone(), client.metadata().get("search_path").map(String::as_str), client.metadata().get("timezone").map(String::as_str))))
    }

    /// The hooks of this connection's statements (settings, cursors, the statement filter).
    pub(super) fn hooks(&self) -> PgWireResult<Vec<Arc<dyn datafusion_postgres::QueryHook>>> {
        let user = self.login()?.principal.user.clone();
        Ok(query_hooks(settings::HookContext { shared: Arc::clone(&self.shared), user, overrun: self.overrun.clone(), cursors: Arc::clone(&self.cursors) }))
    }

    pub(super) fn service(&self, ctx: Arc<SessionContext>) -> PgWireResult<DfSessionService> {
        Ok(DfSessionService::new_with_hooks(ctx, self.hooks()?))
    }

    /// The service of an Execute whose query result may be kept: the hooks, then
    /// `recording`, which runs the query from its Arrow batches.
    fn recording_service(&self, ctx: Arc<SessionContext>, recording: RecordedExecution) -> PgWireResult<DfSessionService> {
        let mut hooks = self.hooks()?;
        hooks.push(Arc::new(recording));
        Ok(DfSessionService::new_with_hooks(ctx, hooks))
    }

    /// The result cache key of one statement of a simple query planned on `view`: queries
    /// only, keyed on the text that is planned.
    fn simple_key(&self, statement: &Statement, view: &PlanningView) -> Option<String> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let login = self.login().ok()?;
        result_cache::key(&self.shared.cache, login, view, &statement.to_string(), result_cache::SIMPLE_PARAMETERS)
    }

    /// The result cache key of an Execute of `portal`: queries only, on the view their
    /// statement was planned on at Parse, with the parameters as bound.
    fn extended_key(&self, client: &dyn ClientInfo, portal: &Portal<DfStatement>) -> Option<String> {
        let (sql, Some((Statement::Query(_), _))) = &portal.statement.statement else { return None };
        // An aborted transaction refuses every query: the hooks say so, not the cache.
        if client.transaction_status() == TransactionStatus::Error {
            return None;
        }
        let view = {
            let planned = self.planned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            planned.get(&portal.statement.id)?.view_of(&portal.statement)?.clone()
        };
        // A `search_path` or `TimeZone` set since Parse: this Execute's context is not the
        // one the plan was made for, so its result is not shared.
        if !view.settings_match(client) {
            return None;
        }
        let login = self.login().ok()?;
        result_cache::key(&self.shared.cache, login, &view, sql, &result_cache::portal_parameters(portal))
    }

    /// `hit`'s rows encoded in `format`, the statement audited as answered from the cache.
    fn answer_cached(&self, hit: &CachedResult, format: &Format, options: Arc<FormatOptions>, audit: &Audit) -> PgWireResult<QueryResponse> {
        let rows = result_cache::replay(hit, format, options)?;
        audit.clone().cached().finished(hit.rows());
        Ok(rows)
    }

    /// A slot for the connection's user, watched for overruns.
    pub(super) async fn admit(&self) -> PgWireResult<Admission> {
        let user = self.login()?.principal.user.clone();
        execution::admit(&self.shared.gate, &user, &self.overrun).await.map_err(|e| limit_error(&e))
    }

    pub(super) fn audit(&self, sql: &str) -> Audit {
        let login = self.login.get();
        let user = login.map(|l| l.principal.user.clone()).unwrap_or_default();
        Audit::start(&self.shared.catalog.logs().queries, &user, Protocol::Postgres, login.map(|l| l.tenant.clone()), sql)
    }

    /// A query refused or failed before it streamed.
    pub(super) fn refused(&self, audit: &Audit, e: &PgWireError) {
        self.shared.stats.observe(Protocol::Postgres, audit.started(), false, false);
        audit.failed(&pg_message(e));
    }

    /// Plans `statement` under `admission`'s deadline in a task of its own (a panic in the
    /// planner is an error for this query), then checks the plan is read-only.
    pub(super) async fn plan(&self, ctx: &Arc<SessionContext>, statement: Statement, admission: &Admission) -> PgWireResult<LogicalPlan> {
        let state = ctx.state();
        let hint = self.missing_hint();
        let planning = async move {
            let plan = state
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(statement)))
                .await
                .and_then(|plan| state.optimize(&plan))
                .map_err(|e| planning_error(e, &|| hint.clone()))?;
            check_read_only(&plan)?;
            Ok(plan)
        };
        execution::plan_within(admission, planning).await.map_err(|e| refusal_error(&e))
    }

    /// What a query of this connection runs on again when its snapshot is gone.
    pub(super) fn following(&self) -> PgWireResult<result_cache::Following> {
        let principal = &self.login()?.principal;
        let catalog = Arc::clone(&self.shared.catalog);
        let tenants = catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)).collect();
        Ok(result_cache::Following { catalog, tenants })
    }

    /// What a "table not found" error may add: only the asking user's tenants' problems.
    pub(super) fn missing_hint(&self) -> Option<String> {
        let login = self.login.get()?;
        self.shared.catalog.missing_snapshot_hint_for(&login.principal)
    }

    /// Runs one planned query statement of a simple query: its rows, as text, under
    /// `admission`; kept in the result cache under `key` once read to their end, unless the
    /// plan reads what changes without a refresh.
    pub(super) async fn run(&self, ctx: &Arc<SessionContext>, plan: LogicalPlan, options: Arc<FormatOptions>, admission: Admission, audit: Audit, key: Option<String>) -> PgWireResult<QueryResponse> {
        // Whether a result may be shared is decided on the plan, not the text.
        let key = key.filter(|_| plan_is_cacheable_in(&plan, &result_cache::default_schema(ctx)));
        let df = ctx.execute_logical_plan(plan).await.map_err(|e| query_error(&QueryError::from_datafusion(e, None)))?;
        let mut response = result_cache::recorded(df, &Format::UnifiedText, options, Arc::clone(&self.shared.cache), key, self.following()?).await?;
        limit_rows(&mut response, admission, audit);
        Ok(response)
    }

    /// Runs one planned `COPY … TO STDOUT`: its rows under `admission`, as `CopyData`.
    pub(super) async fn export(&self, ctx: &Arc<SessionContext>, plan: LogicalPlan, format: &copy::CopyFormat, admission: Admission, audit: Audit) -> PgWireResult<CopyResponse> {
        let df = ctx.execute_logical_plan(plan).await.map_err(|e| query_error(&QueryError::from_datafusion(e, None)))?;
        let schema = df.schema().as_arrow().clone();
        let following = self.following()?;
        let batches = crate::server::snapshot_gone::execute_following(df, following.catalog, following.tenants)
            .await
            .map_err(|e| query_error(&QueryError::from_datafusion(e, None)))?;
        let batches = batches.map(|batch| batch.map_err(|e| query_error(&QueryError::from_datafusion(e, None))));
        let batches = execution::limited(batches, admission, |b: &RecordBatch| (b.num_rows() as u64, execution::result_bytes(b) as u64), |e| limit_error(&e), pg_message, audit);
        let (code, columns, rows) = copy::encode(&schema, batches, format)?;
        Ok(CopyResponse::new(code, columns, rows))
    }

    /// Refuses a new prepared statement or portal name past the connection's limit.
    pub(super) fn keep(&self, statement: bool, name: &str) -> PgWireResult<()> {
        let max = self.shared.limits().max_prepared_per_connection;
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let set = if statement { &mut kept.0 } else { &mut kept.1 };
        if !set.contains(name) && set.len() >= max {
            return Err(user_error(
                "ERROR",
                "54000",
                format!(
                    "this connection keeps {max} prepared statements or portals, the limit (limits.max_prepared_per_connection); close ones it no longer needs (Close, DEALLOCATE)"
                ),
            ));
        }
        set.insert(name.to_string());
        Ok(())
    }
}

/// Puts a result's rows under the query's slot, deadline and size limits.
fn limit_rows(response: &mut QueryResponse, admission: Admission, audit: Audit) {
    let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
    let limited = execution::limited(rows, admission, |row: &DataRow| (1, row.data.len() as u64), |e| limit_error(&e), pg_message, audit);
    *response.data_rows() = Box::pin(limited);
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.login()?;
        let audit = self.audit(query);
        let statements = self
            .text_limits()
            .check(query)
            .map_err(|e| query_error(&e))
            .and_then(|()| {
                let protected = rewrite::protect_subqueries(query);
                self.sql_parser.parse(protected.as_deref().unwrap_or(query)).map_err(|e| parse_error(query, e))
            })
            .map(|statements| statements.into_iter().map(rewrite::rewrite).collect::<Vec<_>>())
            .and_then(|statements| {
                let max = self.shared.limits().max_statements_per_query;
                if statements.len() > max {
                    return Err(query_error(&QueryError::TooManyStatements { count: statements.len(), max }));
                }
                Ok(statements)
            })
            .inspect_err(|e| self.refused(&audit, e))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        // Read before the context is built: the snapshots its plans read are these or newer.
        let view = self.planning_view(&*client).inspect_err(|e| self.refused(&audit, e))?;
        let ctx = self.query_context(&*client).inspect_err(|e| self.refused(&audit, e))?;
        let hooks = self.hooks()?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        // One slot for the whole query, taken when a statement first needs to run.
        let mut admission: Option<Admission> = None;
        let mut responses = Vec::with_capacity(statements.len());
        let single = statements.len() == 1;
        'statements: for statement in statements {
            let text = if single { query.to_string() } else { statement.to_string() };
            let audit = if single { audit.clone() } else { self.audit(&text) };
            for hook in &hooks {
                if let Some(result) = hook.handle_simple_query(&statement, &ctx, client).await {
                    match result {
                        Ok(response) => {
                            audit.finished(0);
                            responses.push(response);
                            continue 'statements;
                        }
                        Err(e) => {
                            self.refused(&audit, &e);
                            responses.push(Response::Error(Box::new(e.into())));
                            break 'statements;
                        }
                    }
                }
            }
            let key = self.simple_key(&statement, &view);
            // The response, and whether the cache gave it.
            let ran = async {
                if let Some(hit) = key.as_deref().and_then(|k| self.shared.cache.get(k)) {
                    return self.answer_cached(&hit, &Format::UnifiedText, Arc::clone(&options), &audit).map(|rows| (Response::Query(rows), true));
                }
                let export = copy::export_of(&statement).transpose()?;
                let admitted = match &admission {
                    Some(a) => a.clone(),
                    None => admission.insert(self.admit().await?).clone(),
                };
                if let Some(export) = export {
                    let plan = self.plan(&ctx, copy::statement_of(&export), &admitted).await?;
                    return self.export(&ctx, plan, &export.format, admitted, audit.clone()).await.map(|copied| (Response::CopyOut(copied), false));
                }
                let plan = self.plan(&ctx, statement, &admitted).await?;
                self.run(&ctx, plan, Arc::clone(&options), admitted, audit.clone(), key).await.map(|rows| (Response::Query(rows), false))
            }
            .await;
            match ran {
                Ok((response, cached)) => {
                    self.shared.stats.observe(Protocol::Postgres, audit.started(), true, cached);
                    responses.push(response);
                }
                Err(e) => {
                    self.refused(&audit, &e);
                    if single {
                        return Err(e);
                    }
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = DfStatement;
    type QueryParser = TenantParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.login()?;
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
        self.keep(true, &name)?;
        // Read before Parse plans: the snapshots the plan reads are these or newer.
        let view = self.planning_view(&*client)?;
        let parser = self.query_parser();
        match StoredStatement::parse(client, &message, parser).await? {
            Some(stmt) => {
                let stmt = Arc::new(stmt);
                self.planned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, PlannedStatement::new(&stmt, view));
                client.portal_store().put_statement(stmt);
            }
            None => client.portal_store().put_empty_statement(&name),
        }
        client.send(PgWireBackendMessage::ParseComplete(ParseComplete::new())).await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.login()?;
        let statement_name = message.statement_name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
        let portal_name = message.portal_name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
        self.keep(false, &portal_name)?;
        // pgwire's own Bind, which cannot be called from an override.
        match client.portal_store().get_statement(&statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(user_error(
                        "ERROR",
                        "08P01",
                        format!("bind message supplies {} parameters, but prepared statement {statement_name:?} requires 0", message.parameters.len()),
                    ));
                }
                client.portal_store().put_empty_portal(&portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name)),
        }
        client.send(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
        {
            let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match message.target_type {
                TARGET_TYPE_BYTE_STATEMENT => kept.0.remove(&name),
                _ => kept.1.remove(&name),
            };
        }
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            self.planned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&name);
        }
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => client.portal_store().rm_statement(&name),
            TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(&name),
            _ => {}
        }
        client.send(PgWireBackendMessage::CloseComplete(CloseComplete::new())).await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.login()?;
        let audit = self.audit(&portal.statement.statement.0);
        // Checked at Parse already; checked again since this is what runs.
        if let (_, Some((_, plan))) = &portal.statement.statement {
            check_read_only(plan).map_err(|e| query_error(&e)).inspect_err(|e| self.refused(&audit, e))?;
        }
        let key = self.extended_key(&*client, portal);
        if let Some(hit) = key.as_deref().and_then(|k| self.shared.cache.get(k)) {
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            let rows = self.answer_cached(&hit, &portal.result_column_format, options, &audit).inspect_err(|e| self.refused(&audit, e))?;
            self.shared.stats.observe(Protocol::Postgres, audit.started(), true, true);
            return Ok(Response::Query(rows));
        }
        let admission = self.admit().await.inspect_err(|e| self.refused(&audit, e))?;
        let ctx = self.query_context(&*client).inspect_err(|e| self.refused(&audit, e))?;
        if let (_, Some((statement, plan))) = &portal.statement.statement
            && let Some(export) = copy::export_of(statement)
        {
            let exported = match export {
                Ok(export) => self.export(&ctx, plan.clone(), &export.format, admission, audit.clone()).await,
                Err(e) => Err(e),
            };
            self.shared.stats.observe(Protocol::Postgres, audit.started(), exported.is_ok(), false);
            return exported.map(Response::CopyOut).inspect_err(|e| audit.failed(&pg_message(e)));
        }
        let service = match key {
            Some(key) => self.recording_service(ctx, RecordedExecution::new(portal.result_column_format.clone(), Arc::clone(&self.shared.cache), key, self.following()?))?,
            None => self.service(ctx)?,
        };
        let deadline = admission.deadline();
        let result = match tokio::time::timeout_at(deadline, <DfSessionService as ExtendedQueryHandler>::do_query(&service, client, portal, max_rows)).await {
            Ok(result) => result,
            Err(_) => Err(limit_error(&admission.timeout_error())),
        };
        self.shared.stats.observe(Protocol::Postgres, audit.started(), result.is_ok(), false);
        match result {
            Ok(Response::Query(mut rows)) => {
                limit_rows(&mut rows, admission, audit);
                Ok(Response::Query(rows))
            }
            Ok(Response::Error(info)) => {
                audit.failed(&info.message);
                Ok(Response::Error(info))
            }
            Ok(other) => {
                audit.finished(0);
                Ok(other)
            }
            Err(e) => {
                audit.failed(&pg_message(&e));
                Err(e)
            }
        }
    }
}

/// A DECLARE'd cursor's query, planned and checked like any other, its rows under a slot of
/// their own until the cursor is closed or read to its end.
pub(super) async fn declare_cursor(shared: &Arc<Shared>, ctx: &SessionContext, user: &str, overrun: &CancellationToken, query: &str) -> PgWireResult<(QueryResponse, datafusion::common::DFSchemaRef)> {
    TextLimits::of(shared.limits()).check(query).map_err(|e| query_error(&e))?;
    // A cursor left open past the deadline costs the connection, as an unread result does.
    let admission = execution::admit(&shared.gate, user, overrun).await.map_err(|e| limit_error(&e))?;
    let state = ctx.state();
    let sql = query.to_string();
    let planning = async move {
        let plan = state.create_logical_plan(&sql).await.map_err(|e| planning_error(e, &|| None))?;
        check_read_only(&plan)?;
        Ok(plan)
    };
    let plan = execution::plan_within(&admission, planning).await.map_err(|e| refusal_error(&e))?;
    let schema = Arc::clone(plan.schema());
    let df = ctx.execute_logical_plan(plan).await.map_err(|e| query_error(&QueryError::from_datafusion(e, None)))?;
    let mut response = df::encode_dataframe(df, &Format::UnifiedText, None).await?;
    let audit = Audit::start(&shared.catalog.logs().queries, user, Protocol::Postgres, None, &format!("DECLARE CURSOR FOR {query}"));
    limit_rows(&mut response, admission, audit);
    Ok((response, schema))
}
