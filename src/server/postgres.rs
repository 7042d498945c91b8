//! The PostgreSQL wire front end, for Grafana's PostgreSQL datasource, Metabase, Power BI,
//! DBeaver and psql.
//!
//! The protocol, the `pg_catalog` emulation (psql `\dt`, `\d`; the catalog queries BI tools
//! send on connect) and the Arrow → PostgreSQL encoding come from `datafusion-postgres`.
//! This module adds what a shared, multi-tenant server needs around it:
//!
//! - Password authentication (cleartext over the connection, so configure TLS off loopback)
//!   against the `[[users]]` of the config, the same accounts as Flight SQL. Without users,
//!   any user name and no password are accepted.
//! - The database name selects the tenant. `postgres`, the user's own name or no name mean
//!   the first tenant the user may read; a tenant the user may not read does not exist.
//! - Each connection queries a session holding only its user's tenants, rebuilt when a new
//!   snapshot lands, and a statement filter keeps SQL read-only: SELECT, EXPLAIN, SHOW,
//!   client `SET`s, transactions and cursors pass; DDL, DML, `COPY` and `SET` of engine
//!   options are refused with a message saying so.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::server::query_stats::QueryStats;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::{QueryLog, QueryOutcome, QueryRecord};
use crate::catalog::Catalog;
use crate::server::auth::{AuthError, Authenticator, Principal};
use crate::server::limits::{Admission, LimitError, Limited, QueryGate, StreamEnd};

/// Connection metadata keys where the startup handler leaves the resolved identity.
const TENANT_KEY: &str = "salespulse.tenant";
const ALLOWED_KEY: &str = "salespulse.allowed";

type DfStatement = (String, Option<(Statement, LogicalPlan)>);

fn user_error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.to_string(), code.to_string(), message)))
}

/// The PostgreSQL server's handlers.
pub struct PostgresFrontend {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
}

impl Debug for PostgresFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFrontend").finish_non_exhaustive()
    }
}

impl PostgresFrontend {
    pub fn new(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize) -> PostgresFrontend {
        Self::with_stats(catalog, auth, max_sql_bytes, Arc::new(QueryStats::default()))
    }

    /// A front end that records every query in `stats` (to the first response: rows stream
    /// after).
    pub fn with_stats(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize, stats: Arc<QueryStats>) -> PostgresFrontend {
        let gate = Arc::new(QueryGate::new(crate::config::Limits { max_sql_bytes, ..Default::default() }));
        Self::with_gate(catalog, auth, stats, gate)
    }

    /// A front end whose queries run under `gate`'s slots and limits (shared with Flight
    /// SQL), recorded in `stats` and the audit log.
    pub fn with_gate(catalog: Arc<Catalog>, auth: Arc<Authenticator>, stats: Arc<QueryStats>, gate: Arc<QueryGate>) -> PostgresFrontend {
        let max_sql_bytes = gate.limits().max_sql_bytes;
        let template = DfSessionService::new_with_hooks(Arc::new(SessionContext::new()), Vec::new()).query_parser();
        let startup =
            Arc::new(Startup { catalog: Arc::clone(&catalog), auth, parameters: DefaultServerParameterProvider::default(), require_tls: false });
        // The parser parses against the connection's session, so it points back at the
        // session cache of the handler that hands it out.
        let queries = Arc::new_cyclic(|weak| Queries {
            catalog,
            max_sql_bytes,
            stats,
            gate,
            sessions: Mutex::new(HashMap::new()),
            parser: Arc::new(TenantParser { template, queries: weak.clone() }),
        });
        PostgresFrontend { startup, queries }
    }

    /// The same front end refusing every connection that did not negotiate TLS (what
    /// [`serve_postgres`] makes of it when a certificate is configured): passwords and
    /// results never travel in clear text, whatever `sslmode` a client picks.
    #[must_use]
    pub fn requiring_tls(self) -> PostgresFrontend {
        let startup = Arc::new(Startup {
            catalog: Arc::clone(&self.startup.catalog),
            auth: Arc::clone(&self.startup.auth),
            parameters: DefaultServerParameterProvider::default(),
            require_tls: true,
        });
        PostgresFrontend { startup, queries: self.queries }
    }
}

impl PgWireServerHandlers for PostgresFrontend {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// Authentication and tenant choice at connection start.
struct Startup {
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    parameters: DefaultServerParameterProvider,
    /// Refuse connections without TLS (a certificate is configured).
    require_tls: bool,
}

impl Startup {
    /// The tenant a connection's database name selects for `principal`.
    fn tenant_for(&self, database: Option<&str>, principal: &Principal) -> PgWireResult<String> {
        let allowed: Vec<String> = self.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)).collect();
        match database {
            Some(db) if allowed.iter().any(|t| t == db) => Ok(db.to_string()),
            None | Some("" | "postgres") => allowed.first().cloned().ok_or_else(|| no_tenant(principal)),
            // psql and libpq default the database to the user name.
            Some(db) if db == principal.user => allowed.first().cloned().ok_or_else(|| no_tenant(principal)),
            Some(db) => Err(user_error(
                "FATAL",
                "3D000",
                format!("database \"{db}\" does not exist; the databases (tenants) you may read are: {}", allowed.join(", ")),
            )),
        }
    }

    fn accept<C: ClientInfo>(&self, client: &mut C, principal: &Principal) -> PgWireResult<()> {
        let database = client.metadata().get(METADATA_DATABASE).cloned();
        let tenant = self.tenant_for(database.as_deref(), principal)?;
        let allowed = principal.tenants.as_ref().map_or_else(|| "*".to_string(), |t| t.join(","));
        client.metadata_mut().insert(TENANT_KEY.into(), tenant);
        client.metadata_mut().insert(ALLOWED_KEY.into(), allowed);
        Ok(())
    }
}

fn no_tenant(principal: &Principal) -> PgWireError {
    user_error("FATAL", "3D000", format!("user \"{}\" may read no tenant of this server", principal.user))
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.require_tls && !client.is_secure() {
                    tracing::info!(peer = %client.socket_addr(), "PostgreSQL connection without TLS refused");
                    return Err(user_error(
                        "FATAL",
                        "28000",
                        "this server accepts only TLS connections (server.tls_cert is set): connect with sslmode=require (or verify-full with the server's CA)".into(),
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.enabled() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
                } else {
                    self.accept(client, &Principal::anonymous())?;
                    finish_authentication(client, &self.parameters).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let password = message.into_password()?.password;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let auth = Arc::clone(&self.auth);
                let peer = client.socket_addr().ip();
                let checked = {
                    let user = user.clone();
                    tokio::task::spawn_blocking(move || auth.check_password(&user, &password, Some(peer))).await
                };
                match checked {
                    Ok(Ok(principal)) => {
                        self.accept(client, &principal)?;
                        finish_authentication(client, &self.parameters).await?;
                    }
                    Ok(Err(AuthError::Throttled { seconds })) => {
                        return Err(user_error("FATAL", "28P01", format!("too many failed logins from this address; try again in {seconds} s")));
                    }
                    Ok(Err(_)) => {
                        return Err(user_error("FATAL", "28P01", format!("password authentication failed for user \"{user}\"")));
                    }
                    Err(e) => return Err(user_error("FATAL", "XX000", format!("checking the password failed: {e}"))),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sessions by (tenant, allowed tenants); each remembers the snapshots it was built on.
/// A connection's session: its context (with `pg_catalog`) and the service over it.
#[derive(Clone)]
struct PgSession {
    ctx: Arc<SessionContext>,
    service: Arc<DfSessionService>,
}

type SessionCache = HashMap<(String, String, String), (Vec<Option<String>>, PgSession)>;

/// Query handling: picks the connection's session and delegates to `datafusion-postgres`.
struct Queries {
    catalog: Arc<Catalog>,
    max_sql_bytes: usize,
    stats: Arc<QueryStats>,
    gate: Arc<QueryGate>,
    sessions: Mutex<SessionCache>,
    parser: Arc<TenantParser>,
}

impl Queries {
    /// The session of a connection (its context and the service that parses its statements),
    /// rebuilt when any visible tenant's snapshot changed.
    fn session<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<PgSession> {
        let tenant = client
            .metadata()
            .get(TENANT_KEY)
            .cloned()
            .ok_or_else(|| user_error("FATAL", "08P01", "the connection has not logged in".into()))?;
        let allowed_text = client.metadata().get(ALLOWED_KEY).cloned().unwrap_or_else(|| "*".into());
        let allowed: Option<Vec<String>> = (allowed_text != "*").then(|| allowed_text.split(',').map(str::to_string).collect());
        let visible: Vec<String> =
            self.catalog.tenant_names().into_iter().filter(|t| allowed.as_ref().is_none_or(|a| a.contains(t))).collect();
        let snapshots: Vec<Option<String>> = visible
            .iter()
            .map(|t| self.catalog.tenant(t).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone())))
            .collect();
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let key = (tenant.clone(), allowed_text, user.clone());
        let mut sessions = self.sessions.lock().map_err(|_| user_error("ERROR", "XX000", "the session cache is unavailable".into()))?;
        if let Some((built_on, session)) = sessions.get(&key)
            && *built_on == snapshots
        {
            return Ok(session.clone());
        }
        let ctx = self.catalog.session_for(Some(&tenant), allowed.as_deref(), &user);
        setup_pg_catalog(&ctx, &tenant, EmptyContextProvider)
            .map_err(|e| user_error("ERROR", "XX000", format!("building the PostgreSQL catalog failed: {e}")))?;
        let ctx = Arc::new(ctx);
        let session = PgSession { service: Arc::new(DfSessionService::new_with_hooks(Arc::clone(&ctx), query_hooks())), ctx };
        sessions.insert(key, (snapshots, session.clone()));
        Ok(session)
    }

    /// The service one query of the connection runs on: the connection's session with a
    /// memory pool of the query's own (`limits.query_memory` is per query, as on Flight SQL).
    fn query_service<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<DfSessionService>> {
        let session = self.session(client)?;
        let ctx = self.catalog.with_own_memory(&session.ctx);
        Ok(Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), query_hooks())))
    }

    fn check_length(&self, sql: &str) -> PgWireResult<()> {
        if sql.len() > self.max_sql_bytes {
            return Err(user_error(
                "ERROR",
                "54000",
                format!("the query is {} bytes long; the limit is {} bytes (limits.max_sql_bytes)", sql.len(), self.max_sql_bytes),
            ));
        }
        Ok(())
    }
}

impl Queries {
    /// The connection's session and a slot for its user; a refusal is counted and audited.
    async fn ready<C: ClientInfo + ?Sized>(&self, client: &C, started: std::time::Instant, audit: &PgAudit) -> PgWireResult<(Arc<DfSessionService>, Admission)> {
        let ready = async { Ok::<_, PgWireError>((self.query_service(client)?, self.admit(client).await?)) };
        ready.await.inspect_err(|e| self.refused(started, audit, e))
    }

    /// A query refused before it ran.
    fn refused(&self, started: std::time::Instant, audit: &PgAudit, e: &PgWireError) {
        self.stats.observe("postgres", started, false, false);
        audit.failed(e);
    }

    /// A slot for the connection's user.
    async fn admit<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Admission> {
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        self.gate.admit(&user).await.map_err(|e| limit_error(&e))
    }

    fn audit_of<C: ClientInfo + ?Sized>(&self, client: &C, sql: &str) -> PgAudit {
        PgAudit {
            log: Arc::clone(self.catalog.query_log()),
            user: client.metadata().get(METADATA_USER).cloned().unwrap_or_default(),
            tenant: client.metadata().get(TENANT_KEY).cloned(),
            sql: sql.to_string(),
            started_at: chrono::Utc::now(),
            started: std::time::Instant::now(),
        }
    }
}

/// One PostgreSQL query, for the audit log.
#[derive(Debug, Clone)]
struct PgAudit {
    log: Arc<QueryLog>,
    user: String,
    tenant: Option<String>,
    sql: String,
    started_at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl PgAudit {
    fn record(&self, end: StreamEnd) {
        let outcome = match (&end.error, end.cancelled) {
            (Some(_), _) => QueryOutcome::Failed,
            (None, true) => QueryOutcome::Cancelled,
            (None, false) => QueryOutcome::Ok,
        };
        self.log.record(QueryRecord {
            started_at: self.started_at,
            user: self.user.clone(),
            protocol: "postgres",
            tenant: self.tenant.clone(),
            sql: self.sql.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            rows: end.rows,
            outcome,
            error: end.error,
            cached: false,
        });
    }

    fn finished(&self, rows: u64) {
        self.record(StreamEnd { rows, error: None, cancelled: false });
    }

    fn failed(&self, e: &PgWireError) {
        self.failed_with(&pg_message(e));
    }

    fn failed_with(&self, message: &str) {
        self.record(StreamEnd { rows: 0, error: Some(message.to_string()), cancelled: false });
    }
}

/// What a client is told of an error.
fn pg_message(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => info.message.clone(),
        other => other.to_string(),
    }
}

/// A limit's refusal as a PostgreSQL error: `53000`-class for slots and size, `57014`
/// (query_canceled) for the timeout, as PostgreSQL's `statement_timeout` does.
fn limit_error(e: &LimitError) -> PgWireError {
    let code = match e {
        LimitError::Busy { .. } | LimitError::UserBusy { .. } => "53300",
        LimitError::Timeout { .. } => "57014",
        LimitError::TooManyRows { .. } | LimitError::TooManyBytes { .. } => "54000",
    };
    user_error("ERROR", code, e.to_string())
}

/// Puts a result's rows under the query's slot, deadline and size limits.
fn limit_rows(response: &mut datafusion_postgres::pgwire::api::results::QueryResponse, admission: Admission, audit: PgAudit) {
    let rows = std::mem::replace(response.data_rows(), Box::pin(futures::stream::empty()));
    let limited = Limited::new(
        rows,
        admission,
        |row: &datafusion_postgres::pgwire::messages::data::DataRow| (1, row.data.len() as u64),
        |e| limit_error(&e),
        pg_message,
        move |end| audit.record(end),
    );
    *response.data_rows() = Box::pin(limited);
}

/// The read-only check, then the hooks `datafusion-postgres` installs by default (cursors,
/// SET/SHOW, transactions).
fn query_hooks() -> Vec<Arc<dyn QueryHook>> {
    use datafusion_postgres::hooks::{cursor::CursorStatementHook, set_show::SetShowHook, transactions::TransactionStatementHook};
    vec![Arc::new(ReadOnly), Arc::new(CursorStatementHook), Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
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
        let started = std::time::Instant::now();
        let audit = self.audit_of(client, query);
        self.check_length(query).inspect_err(|e| self.refused(started, &audit, e))?;
        let (service, admission) = self.ready(client, started, &audit).await?;
        let result = <DfSessionService as SimpleQueryHandler>::do_query(&service, client, query).await;
        self.stats.observe("postgres", started, result.is_ok(), false);
        match result {
            Ok(mut responses) => {
                // The first result (a simple query usually has one) streams under the
                // query's slot and limits; the slot is given back when it ends.
                let mut admission = Some(admission);
                for response in &mut responses {
                    match response {
                        Response::Query(rows) => {
                            if let Some(admission) = admission.take() {
                                limit_rows(rows, admission, audit.clone());
                            }
                        }
                        Response::Error(info) => audit.failed_with(&info.message),
                        _ => {}
                    }
                }
                if admission.is_some() {
                    audit.finished(0);
                }
                Ok(responses)
            }
            Err(e) => {
                audit.failed(&e);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = DfStatement;
    type QueryParser = TenantParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = std::time::Instant::now();
        let audit = self.audit_of(client, &portal.statement.statement.0);
        let (service, admission) = self.ready(client, started, &audit).await?;
        let result = <DfSessionService as ExtendedQueryHandler>::do_query(&service, client, portal, max_rows).await;
        self.stats.observe("postgres", started, result.is_ok(), false);
        match result {
            Ok(Response::Query(mut rows)) => {
                limit_rows(&mut rows, admission, audit);
                Ok(Response::Query(rows))
            }
            Ok(Response::Error(info)) => {
                audit.failed_with(&info.message);
                Ok(Response::Error(info))
            }
            Ok(other) => {
                audit.finished(0);
                Ok(other)
            }
            Err(e) => {
                audit.failed(&e);
                Err(e)
            }
        }
    }
}

/// Parses extended-protocol statements against the connection's own session.
struct TenantParser {
    /// A parser over an empty session, for what does not depend on the session (parameter
    /// and result types of an already planned statement).
    template: Arc<Parser>,
    queries: std::sync::Weak<Queries>,
}

#[async_trait]
impl QueryParser for TenantParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let queries = self.queries.upgrade().ok_or_else(|| user_error("FATAL", "57P01", "the server is shutting down".into()))?;
        queries.check_length(sql)?;
        let session = queries.session(client)?;
        session.service.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.template.get_parameter_types(stmt)
    }

    fn get_result_schema(&self, stmt: &Self::Statement, column_format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        self.template.get_result_schema(stmt, column_format)
    }
}

/// Refuses every statement that is not a read (see the module header).
#[derive(Debug)]
struct ReadOnly;

impl ReadOnly {
    fn refusal(statement: &Statement) -> Option<PgWireError> {
        let allowed = match statement {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Deallocate { .. }
            | Statement::Discard { .. } => true,
            Statement::Set(set) => !sets_engine_option(set),
            _ => false,
        };
        if allowed {
            return None;
        }
        let text = statement.to_string();
        let what: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Some(user_error("ERROR", "25006", format!("salespulse is read-only: {what} … is not allowed; run SELECT queries only")))
    }
}

/// `SET datafusion.…` or `SET salespulse.…` would change the engine for every connection of
/// the tenant; client settings (`search_path`, `DateStyle`, `extra_float_digits`, …) pass.
fn sets_engine_option(set: &Set) -> bool {
    match set {
        Set::SingleAssignment { variable, .. } => {
            let name = variable.to_string().to_ascii_lowercase();
            name.starts_with("datafusion.") || name.starts_with("salespulse")
        }
        Set::MultipleAssignments { assignments } => assignments.iter().any(|a| {
            let name = a.name.to_string().to_ascii_lowercase();
            name.starts_with("datafusion.") || name.starts_with("salespulse")
        }),
        _ => false,
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(&self, statement: &Statement, _ctx: &SessionContext, _client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        Self::refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::refusal(statement).map(Err)
    }
}

/// Serves PostgreSQL on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// Never after binding: a failing connection is logged and closed, the server goes on.
pub async fn serve_postgres(
    listener: TcpListener,
    frontend: PostgresFrontend,
    tls: Option<&crate::server::tls::TlsIdentity>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tls.map(crate::server::tls::TlsIdentity::postgres_acceptor);
    let frontend = Arc::new(if tls.is_some() { frontend.requiring_tls() } else { frontend });
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, addr)) => {
                // Small protocol messages go out at once (no Nagle delay).
                if let Err(e) = socket.set_nodelay(true) {
                    tracing::debug!(%addr, "TCP_NODELAY could not be set: {e}");
                }
                let handlers = Arc::clone(&frontend);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Err(e) = datafusion_postgres::pgwire::tokio::process_socket(socket, acceptor, handlers).await {
                        tracing::debug!(%addr, "PostgreSQL connection ended with an error: {e}");
                    }
                });
            }
            Err(e) => tracing::warn!("accepting a PostgreSQL connection failed: {e}"),
        }
    }
}
