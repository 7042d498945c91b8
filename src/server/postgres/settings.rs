//! What a PostgreSQL statement may be before it is planned: the statement filter, the
//! client settings a connection may `SET`, `RESET` and `SHOW`, and cursors.
//!
//! - **The filter** lets through reads (`SELECT`, `EXPLAIN`, `SHOW`), transactions, cursors
//!   and settings; everything else is refused as read-only. `EXPLAIN`'s statement is checked
//!   once planned ([`crate::catalog::check_read_only`]), like every query.
//! - **Client settings** are an allow-list ([`CLIENT_SETTINGS`]): the session settings the
//!   real clients send (`docs/client-settings.md` lists which client sends which, with sources). Names are compared
//!   by value, so `"datafusion".x` and `datafusion.x` are the same name. A listed setting is
//!   kept in the connection's metadata (so `SHOW` answers it) and never reaches the engine;
//!   any other name is refused with the list.
//! - **Cursors** (`DECLARE … CURSOR FOR`) are planned and checked like any query and hold a
//!   slot of their own until closed; a connection keeps at most
//!   `limits.max_prepared_per_connection` of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::common::{DFSchema, DFSchemaRef, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CloseCursor, DeclareType, Expr, Ident, ObjectName, Set, Statement, TransactionMode, Value};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use tokio_util::sync::CancellationToken;

use super::server_info;
use super::statements::declare_cursor;
use super::{Shared, user_error};

/// The session settings a client may change, lower-case. Each is answered per connection
/// (kept in its metadata, reported by `SHOW`) and changes nothing in the engine.
pub(crate) const CLIENT_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_deferrable",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "jit",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lock_timeout",
    "names",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "time zone",
    "timezone",
    "transaction_deferrable",
    "transaction_isolation",
    "transaction_read_only",
];

/// Settings whose change PostgreSQL reports to the client with a `ParameterStatus`.
fn reported_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "application_name" => "application_name",
        "client_encoding" | "names" => "client_encoding",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" | "time zone" => "TimeZone",
        "standard_conforming_strings" => "standard_conforming_strings",
        "search_path" => "search_path",
        "extra_float_digits" => "extra_float_digits",
        "bytea_output" => "bytea_output",
        _ => return None,
    })
}

/// The metadata key a setting is kept under (pgwire and datafusion-postgres read
/// `datestyle`, `timezone`, `bytea_output`, … from there when they format values).
fn metadata_key(name: &str) -> &str {
    match name {
        "time zone" => "timezone",
        "names" => "client_encoding",
        other => other,
    }
}

/// A name as its parts' values, lower-case and dot-joined: quoting does not change it.
fn name_of(name: &ObjectName) -> String {
    name.0.iter().map(|part| part.as_ident().map_or_else(|| part.to_string(), |i| i.value.clone())).collect::<Vec<_>>().join(".").to_lowercase()
}

/// A setting's value as text.
fn value_text(values: &[Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn refusal(name: &str) -> PgWireError {
    let code = if name.contains('.') { "42501" } else { "42704" };
    user_error(
        "ERROR",
        code,
        format!(
            "salespulse is read-only: setting \"{}\" is not allowed (it would change the engine for others); the session settings a client may change are {}",
            name.chars().take(64).collect::<String>(),
            CLIENT_SETTINGS.join(", ")
        ),
    )
}

/// What the hooks of a connection's statements need.
#[derive(Clone)]
pub(super) struct HookContext {
    pub(super) shared: Arc<Shared>,
    pub(super) user: String,
    pub(super) overrun: CancellationToken,
    /// The open cursors with their result schemas (a `FETCH` is described by its cursor's).
    pub(super) cursors: Arc<Mutex<HashMap<String, DFSchemaRef>>>,
}

/// The hooks every statement passes, in order: the filter, client settings, cursors, then
/// datafusion-postgres's `SHOW` and transaction answers.
pub(super) fn query_hooks(context: HookContext) -> Vec<Arc<dyn QueryHook>> {
    let settings = ClientSettings { user: context.user.clone(), any_role: !context.shared.auth.enabled() };
    vec![Arc::new(StatementFilter), Arc::new(settings), Arc::new(Cursors(context)), Arc::new(ShowOnly), Arc::new(TransactionStatementHook)]
}

/// Refuses every statement that is not a read, a setting, a transaction or a cursor.
#[derive(Debug)]
struct StatementFilter;

impl StatementFilter {
    fn refusal(statement: &Statement) -> Option<PgWireError> {
        let allowed = matches!(
            statement,
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
                | Statement::Discard { .. }
                | Statement::Set(_)
                | Statement::Reset(_)
                | Statement::UNLISTEN { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                // `COPY … TO STDOUT` is an export (super::copy); other forms are refused there.
                | Statement::Copy { .. }
        );
        if allowed {
            return None;
        }
        let text = statement.to_string();
        let what: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let what: String = what.chars().take(80).collect();
        Some(user_error("ERROR", "25006", format!("salespulse is read-only: {what} … is not allowed; run SELECT queries only")))
    }
}

#[async_trait]
impl QueryHook for StatementFilter {
    async fn handle_simple_query(&self, statement: &Statement, _ctx: &SessionContext, _client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        Self::refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, _ctx: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
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

/// `SET`, `RESET`, `DISCARD` and `SHOW` of client settings, answered per connection.
#[derive(Debug)]
struct ClientSettings {
    /// The logged-in user: `SET ROLE` to oneself (Metabase's impersonation) changes nothing.
    user: String,
    /// Without `[[users]]` any name logs in, so any role is as good as the login.
    any_role: bool,
}

/// The longest value a client setting may hold: changed settings are reported back in a
/// `ParameterStatus` message, which must stay well under the protocol's message limit.
const MAX_SETTING_BYTES: usize = 1024;

/// A `SET`'s assignments as (name, value), checked, or the refusal.
fn assignments(set: &Set, settings: &ClientSettings) -> PgWireResult<Vec<(String, String)>> {
    unchecked_assignments(set, settings)?.into_iter().map(|(name, value)| checked_value(name, value)).collect()
}

/// Refuses a value too long to report back, and a time zone the server would not apply.
fn checked_value(name: String, value: String) -> PgWireResult<(String, String)> {
    if value.len() > MAX_SETTING_BYTES {
        return Err(user_error("ERROR", "22023", format!("the value of {name} is {} bytes long; the limit is {MAX_SETTING_BYTES}", value.len())));
    }
    if name == "timezone" || name == "time zone" {
        let zone = value.trim().trim_matches('\'');
        if zone.eq_ignore_ascii_case("local") || zone.eq_ignore_ascii_case("default") {
            return Ok((name, "UTC".into()));
        }
        if <chrono_tz::Tz as std::str::FromStr>::from_str(zone).is_err() {
            return Err(user_error(
                "ERROR",
                "22023",
                format!("invalid value for parameter \"TimeZone\": \"{zone}\"; use a time zone name such as Europe/Moscow or UTC (offsets like +03:00 are not accepted)"),
            ));
        }
        return Ok((name, zone.to_string()));
    }
    Ok((name, value))
}

/// A `SET`'s assignments as (name, value) as written, or the refusal.
fn unchecked_assignments(set: &Set, settings: &ClientSettings) -> PgWireResult<Vec<(String, String)>> {
    let checked = |name: String, value: String| {
        if CLIENT_SETTINGS.contains(&name.as_str()) { Ok((name, value)) } else { Err(refusal(&name)) }
    };
    match set {
        Set::SingleAssignment { variable, values, .. } => Ok(vec![checked(name_of(variable), value_text(values))?]),
        Set::MultipleAssignments { assignments } => {
            assignments.iter().map(|a| checked(name_of(&a.name), value_text(std::slice::from_ref(&a.value)))).collect()
        }
        Set::SetTimeZone { value, .. } => Ok(vec![("timezone".into(), value_text(std::slice::from_ref(value)))]),
        Set::SetNames { charset_name, .. } => Ok(vec![("client_encoding".into(), charset_name.to_string())]),
        Set::SetNamesDefault {} => Ok(vec![("client_encoding".into(), "UTF8".into())]),
        // `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY` (pgjdbc's setReadOnly) and
        // `SET TRANSACTION …`: every transaction here is read-only already.
        // The isolation level is kept so `SHOW transaction_isolation` answers what was set.
        Set::SetTransaction { modes, .. } => Ok(modes
            .iter()
            .filter_map(|m| match m {
                TransactionMode::IsolationLevel(level) => Some(level.to_string().to_lowercase()),
                TransactionMode::AccessMode(_) => None,
            })
            .flat_map(|level| [("transaction_isolation".to_string(), level.clone()), ("default_transaction_isolation".to_string(), level)])
            .collect()),
        // `SET ROLE NONE` (DBeaver, pgAdmin, Metabase reset) changes nothing; another role
        // would be another user.
        Set::SetRole { role_name: None, .. } => Ok(Vec::new()),
        Set::SetRole { role_name: Some(role), .. } if settings.any_role || role.value == settings.user => Ok(Vec::new()),
        Set::SetRole { .. } => Err(refusal("role")),
        Set::SetSessionAuthorization(_) => Err(refusal("session authorization")),
        Set::ParenthesizedAssignments { .. } | Set::SetSessionParam(_) => Err(refusal(&set.to_string().to_lowercase())),
    }
}

impl ClientSettings {
    fn is_settings_statement(statement: &Statement) -> bool {
        match statement {
            Statement::Set(_) | Statement::Reset(_) | Statement::Discard { .. } | Statement::UNLISTEN { .. } => true,
            Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } | Statement::Rollback { savepoint: Some(_), .. } => true,
            Statement::ShowVariable { variable } => {
                let name = shown_name(variable);
                CLIENT_SETTINGS.contains(&name.as_str()) || server_info::setting(&name).is_some()
            }
            _ => false,
        }
    }

    async fn answer(&self, statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Set(set) => {
                let assigned = match assignments(set, self) {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                };
                for (name, value) in assigned {
                    client.metadata_mut().insert(metadata_key(&name).to_string(), value.clone());
                    if let Some(reported) = reported_name(&name)
                        && let Err(e) = client.send_message(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(reported.to_string(), value))).await
                    {
                        return Some(Err(e));
                    }
                }
                Some(Ok(Response::Execution(Tag::new("SET"))))
            }
            Statement::Reset(reset) => {
                let text = reset.to_string().to_lowercase();
                if let Some(name) = text.strip_prefix("reset ").filter(|n| *n != "all") {
                    let name = name.trim_matches('"');
                    if !CLIENT_SETTINGS.contains(&name) {
                        return Some(Err(refusal(name)));
                    }
                    client.metadata_mut().remove(metadata_key(name));
                }
                Some(Ok(Response::Execution(Tag::new("RESET"))))
            }
            Statement::Discard { .. } => Some(Ok(Response::Execution(Tag::new("DISCARD ALL")))),
            // asyncpg's pool reset sends `UNLISTEN *`: there is nothing to listen to.
            Statement::UNLISTEN { .. } => Some(Ok(Response::Execution(Tag::new("UNLISTEN")))),
            // Savepoints (psycopg 3's `conn.transaction()`, SQLAlchemy's nested transactions):
            // nothing is written, so there is nothing to roll back to.
            Statement::Savepoint { .. } => Some(Ok(Response::Execution(Tag::new("SAVEPOINT")))),
            Statement::ReleaseSavepoint { .. } => Some(Ok(Response::Execution(Tag::new("RELEASE")))),
            Statement::Rollback { savepoint: Some(_), .. } => Some(Ok(Response::Execution(Tag::new("ROLLBACK")))),
            Statement::ShowVariable { variable } => {
                let name = shown_name(variable);
                // A connection's own value, else the server's (super::server_info).
                let value = client
                    .metadata()
                    .get(metadata_key(&name))
                    .cloned()
                    .or_else(|| server_info::setting(&name).map(str::to_string))
                    .unwrap_or_else(|| default_value(&name).to_string());
                Some(show_response(&name, &value).map(Response::Query))
            }
            _ => None,
        }
    }
}

/// The setting a `SHOW` names: `SHOW TRANSACTION ISOLATION LEVEL` is `transaction_isolation`.
fn shown_name(variable: &[Ident]) -> String {
    let name = variable.iter().map(|i| i.value.to_lowercase()).collect::<Vec<_>>().join(" ");
    if name == "transaction isolation level" { "transaction_isolation".into() } else { name }
}

/// What `SHOW` answers for a client setting nobody set.
fn default_value(name: &str) -> &'static str {
    match name {
        "client_encoding" | "names" => "UTF8",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "timezone" | "time zone" => "UTC",
        "standard_conforming_strings" => "on",
        "search_path" => super::search_path::DEFAULT_SCHEMA,
        "extra_float_digits" => "1",
        "bytea_output" => "hex",
        "default_transaction_isolation" | "transaction_isolation" => "read committed",
        // "on" makes pgx and lib/pq (target_session_attrs=read-write) and pgjdbc
        // (targetServerType=primary) refuse the server; writes are refused per statement.
        "default_transaction_read_only" | "transaction_read_only" | "default_transaction_deferrable" | "transaction_deferrable" => "off",
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        "client_min_messages" => "notice",
        "jit" => "off",
        _ => "",
    }
}

fn show_response(name: &str, value: &str) -> PgWireResult<QueryResponse> {
    let column = name.replace(' ', "_");
    let fields = Arc::new(vec![FieldInfo::new(column, None, None, Type::VARCHAR, FieldFormat::Text)]);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(QueryResponse::new(fields, Box::pin(futures::stream::once(async move { Ok(row) }))))
}

fn empty_plan(columns: &[&str]) -> PgWireResult<LogicalPlan> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(columns.iter().map(|c| Field::new(c.replace(' ', "_"), DataType::Utf8, false)).collect::<Vec<_>>());
    let schema = DFSchema::try_from(schema).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: !columns.is_empty(), schema: Arc::new(schema) }))
}

#[async_trait]
impl QueryHook for ClientSettings {
    async fn handle_simple_query(&self, statement: &Statement, _ctx: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        self.answer(statement, client).await
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, _ctx: &SessionContext, _client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        if !Self::is_settings_statement(statement) {
            return None;
        }
        if let Statement::Set(set) = statement
            && let Err(e) = assignments(set, self)
        {
            return Some(Err(e));
        }
        Some(match statement {
            Statement::ShowVariable { variable } => {
                let name = shown_name(variable);
                empty_plan(&[name.as_str()])
            }
            _ => empty_plan(&[]),
        })
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.answer(statement, client).await
    }
}

/// datafusion-postgres's answers to `SHOW` (server version, time zone, …) without its `SET`,
/// which would change engine options.
#[derive(Debug)]
struct ShowOnly;

#[async_trait]
impl QueryHook for ShowOnly {
    async fn handle_simple_query(&self, statement: &Statement, ctx: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if matches!(statement, Statement::Set(_)) {
            return None;
        }
        SetShowHook.handle_simple_query(statement, ctx, client).await
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, ctx: &SessionContext, client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        if matches!(statement, Statement::Set(_)) {
            return None;
        }
        SetShowHook.handle_extended_parse_query(statement, ctx, client).await
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if matches!(statement, Statement::Set(_)) {
            return None;
        }
        SetShowHook.handle_extended_query(statement, plan, params, ctx, client).await
    }
}

/// `DECLARE`, `FETCH` and `CLOSE`: declared queries run under the limits.
struct Cursors(HookContext);

impl Cursors {
    async fn answer(&self, statement: &Statement, ctx: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Declare { stmts } => Some(self.declare(stmts, ctx, client).await),
            Statement::Close { cursor } => {
                let mut open = self.0.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match cursor {
                    CloseCursor::All => open.clear(),
                    CloseCursor::Specific { name } => {
                        open.remove(&name.value);
                    }
                }
                None
            }
            _ => None,
        }
    }

    async fn declare(&self, stmts: &[datafusion::sql::sqlparser::ast::Declare], ctx: &SessionContext, client: &mut dyn HookClient) -> PgWireResult<Response> {
        for declare in stmts {
            if declare.declare_type != Some(DeclareType::Cursor) {
                return Err(user_error("ERROR", "42601", "only DECLARE … CURSOR FOR a query is supported".into()));
            }
            let name = declare.names.first().map(|n| n.value.clone()).ok_or_else(|| user_error("ERROR", "42601", "cursor name is required".into()))?;
            let query = declare.for_query.as_ref().map(ToString::to_string).ok_or_else(|| user_error("ERROR", "42601", "DECLARE CURSOR requires a FOR query".into()))?;
            {
                let max = self.0.shared.limits().max_prepared_per_connection;
                let mut open = self.0.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !open.contains_key(&name) && open.len() >= max {
                    return Err(user_error(
                        "ERROR",
                        "54000",
                        format!("this connection has {max} cursors open, the limit (limits.max_prepared_per_connection); CLOSE the ones it no longer needs"),
                    ));
                }
                open.insert(name.clone(), Arc::new(DFSchema::empty()));
            }
            let response = declare_cursor(&self.0.shared, ctx, &self.0.user, &self.0.overrun, &query).await;
            let (response, schema) = match response {
                Ok((r, schema)) => {
                    self.0.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.clone(), Arc::clone(&schema));
                    (r, schema)
                }
                Err(e) => {
                    self.0.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&name);
                    return Err(e);
                }
            };
            // Described like its query (psycopg 3 describes the cursor's portal before FETCH).
            let described = declare.for_query.as_ref().map(|q| (Statement::Query(q.clone()), LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema })));
            let stored = Arc::new(StoredStatement::new(name.clone(), (query, described), vec![]));
            let portal = Portal::new_cursor(name, stored);
            portal.start(response).await;
            client.portal_store().put_portal(Arc::new(portal));
        }
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }
}

#[async_trait]
impl QueryHook for Cursors {
    async fn handle_simple_query(&self, statement: &Statement, ctx: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if let Some(answer) = self.answer(statement, ctx, client).await {
            return Some(answer);
        }
        CursorStatementHook.handle_simple_query(statement, ctx, client).await
    }

    async fn handle_extended_parse_query(&self, statement: &Statement, ctx: &SessionContext, client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<LogicalPlan>> {
        // A FETCH returns its cursor's columns: Describe answers them (psycopg 3's
        // server-side cursors read the RowDescription before the rows).
        if let Statement::Fetch { name, .. } = statement
            && let Some(schema) = self.0.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&name.value).cloned()
        {
            return Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema })));
        }
        CursorStatementHook.handle_extended_parse_query(statement, ctx, client).await
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(answer) = self.answer(statement, ctx, client).await {
            return Some(answer);
        }
        CursorStatementHook.handle_extended_query(statement, plan, params, ctx, client).await
    }
}
