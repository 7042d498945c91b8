//! The Arrow Flight SQL front end (docs/clients.md): handshake, statement and prepared queries,
//! and every metadata command, over the tenants' catalogs.
//!
//! A statement runs as GetFlightInfo → one endpoint with no locations and a signed,
//! self-contained ticket ([`handle`]) → DoGet, which re-plans the SQL and streams batches as
//! they are produced, never collecting the result. The stream's schema is the one the
//! FlightInfo advertised, nullability included, also for 0 rows. Prepared statements use
//! the same handle: DoPut binds parameters into a new handle, which the client executes.
//!
//! Every call is authenticated ([`crate::server::auth`]) and sees only the principal's
//! tenants. The tenant is the `database` (or `catalog`) header, else the first allowed
//! one; the header `x-salespulse-compat: grafana` selects the Grafana output profile.

mod handle;

#[doc(hidden)]
mod sql_info;

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use salespulse_config::config::Limits;
use crate::history::queries::Protocol;
use crate::server::execution::{self, Audit, Refusal};
use crate::server::limits::{Admission, LimitError, QueryGate};
use salespulse_config::handle::OutputProfile;
use crate::catalog::{Catalog, QueryError, TextLimits, client_type, conform_batch, parameter_types, plan_query_with};
use salespulse_config::auth::{AuthError, Authenticator, Principal};
use crate::server::cache::{CacheKey, Recorder, ResultCache};
use crate::server::query_stats::QueryStats;
use handle::{HandleStatus, QueryHandle, parameter_schema};

/// Largest FlightData message the encoder produces (batches are split to fit): half of the
/// 4 MiB that gRPC-Go clients (Grafana, ADBC) accept by default.
const MAX_FLIGHT_DATA_BYTES: usize = 2 << 20;

/// The request header that selects the Grafana output profile.
pub const COMPAT_HEADER: &str = "x-salespulse-compat";

/// The Flight SQL service over a catalog.
#[derive(Clone)]
pub struct SalesFlightSql {
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    max_sql_bytes: usize,
    sql_info: Arc<SqlInfoData>,
    xdbc_info: Arc<XdbcTypeInfoData>,
    cache: Arc<ResultCache>,
    stats: Arc<QueryStats>,
    gate: Arc<QueryGate>,
}

impl std::fmt::Debug for SalesFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesFlightSql").field("catalog", &self.catalog).field("auth", &self.auth).finish_non_exhaustive()
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

impl SalesFlightSql {
    /// # Errors
    /// Never in practice: the SqlInfo and type tables are built from constants.
    pub fn new(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize) -> Result<Self, Status> {
        let ctx = catalog.session(None);
        let sql_info = Arc::new(sql_info::sql_info(&ctx).map_err(|e| Status::internal(e.to_string()))?);
        let xdbc_info = Arc::new(sql_info::xdbc_type_info().map_err(|e| Status::internal(e.to_string()))?);
        let gate = Arc::new(QueryGate::new(Limits { max_sql_bytes, ..Limits::default() }));
        Ok(Self { catalog, auth, max_sql_bytes, sql_info, xdbc_info, cache: Arc::new(ResultCache::new(0)), stats: Arc::new(QueryStats::default()), gate })
    }

    /// The limits the service runs queries and connections under.
    pub fn limits(&self) -> &Limits {
        self.gate.limits()
    }

    /// Runs queries under `gate`'s slots and limits (shared with the PostgreSQL front end).
    pub fn with_gate(mut self, gate: Arc<QueryGate>) -> Self {
        self.gate = gate;
        self
    }

    /// The audit record of a handle's statement, starting now.
    fn audit(&self, handle: &QueryHandle) -> Audit {
        Audit::start(&self.catalog.logs().queries, &handle.user, Protocol::FlightSql, handle.tenant.clone(), &handle.sql)
    }

    /// Answers repeated queries from `cache` and records every query in `stats`.
    pub fn with_observers(mut self, cache: Arc<ResultCache>, stats: Arc<QueryStats>) -> Self {
        self.cache = cache;
        self.stats = stats;
        self
    }

    /// Who sent this request. A bearer token is one HMAC, checked here; Basic credentials
    /// cost an argon2 check, so they are checked off the async threads.
    async fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if !self.auth.enabled() {
            return Ok(Principal::anonymous());
        }
        let peer = crate::server::connections::peer_info(request).and_then(|p| p.remote_addr).or_else(|| request.remote_addr()).map(|a| a.ip());
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let is_basic = header.as_deref().is_some_and(|h| h.trim_start().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
        if !is_basic {
            return self.auth.check_header(header.as_deref(), peer).map_err(|e| auth_status(&e));
        }
        let auth = Arc::clone(&self.auth);
        tokio::task::spawn_blocking(move || auth.check_header(header.as_deref(), peer))
            .await
            .map_err(|e| Status::internal(format!("checking credentials failed: {e}")))?
            .map_err(|e| auth_status(&e))
    }

    /// The tenant a request addresses: the `database` (or `catalog`) header when a client
    /// sets one, else the first tenant the principal may read.
    fn tenant_of(&self, metadata: &MetadataMap, principal: &Principal) -> Result<Option<String>, Status> {
        let allowed: Vec<String> = self.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)).collect();
        let asked = ["database", "catalog"].iter().find_map(|k| metadata.get(*k)).and_then(|v| v.to_str().ok());
        match asked {
            Some(name) if allowed.iter().any(|t| t == name) => Ok(Some(name.to_string())),
            Some(name) => Err(Status::not_found(format!(
                "unknown database '{name}'; this server has: {}",
                if allowed.is_empty() { "no tenant you may read".to_string() } else { allowed.join(", ") }
            ))),
            None => Ok(allowed.into_iter().next()),
        }
    }

    fn session(&self, tenant: Option<&str>, principal: &Principal) -> datafusion::prelude::SessionContext {
        self.catalog.session_for(tenant, principal.tenants.as_deref(), &principal.user)
    }

    /// A new handle for `sql` from this request's principal, tenant and profile.
    async fn new_handle<T>(&self, sql: String, request: &Request<T>) -> Result<(QueryHandle, Principal), Status> {
        let principal = self.principal(request).await?;
        let metadata = request.metadata();
        let tenant = self.tenant_of(metadata, &principal)?;
        let snapshot_id = tenant
            .as_deref()
            .and_then(|t| self.catalog.tenant(t))
            .and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
        let profile = match metadata.get(COMPAT_HEADER).and_then(|v| v.to_str().ok()) {
            Some(v) if v.eq_ignore_ascii_case("grafana") => OutputProfile::Grafana,
            _ => OutputProfile::Standard,
        };
        let handle = QueryHandle { sql, tenant, user: principal.user.clone(), snapshot_id, profile, params: None };
        Ok((handle, principal))
    }

    /// Plans a handle under `admission`'s deadline; without one (GetFlightInfo, prepared
    /// statements) planning takes a slot of its own for the time it plans, so no request
    /// plans outside the limits.
    async fn plan(&self, handle: &QueryHandle, principal: &Principal, params: Vec<ScalarValue>) -> Result<datafusion::prelude::DataFrame, Status> {
        let overrun = tokio_util::sync::CancellationToken::new();
        let admission = execution::admit(&self.gate, &principal.user, &overrun).await.map_err(|e| limit_status(&e))?;
        self.plan_admitted(handle, principal, params, &admission).await
    }

    async fn plan_admitted(&self, handle: &QueryHandle, principal: &Principal, params: Vec<ScalarValue>, admission: &Admission) -> Result<datafusion::prelude::DataFrame, Status> {
        let ctx = self.session(handle.tenant.as_deref(), principal);
        let catalog = Arc::clone(&self.catalog);
        let sql = handle.sql.clone();
        let limits = TextLimits { max_bytes: self.max_sql_bytes, ..TextLimits::of(self.gate.limits()) };
        let profile = handle.profile;
        let asking = principal.clone();
        let planning = async move { plan_query_with(&ctx, &sql, limits, &params, profile, || catalog.missing_snapshot_hint_for(&asking)).await };
        execution::plan_within(admission, planning).await.map_err(|e| match e {
            Refusal::Limit(limit) => limit_status(&limit),
            Refusal::Query(query) => query_status(&query),
            Refusal::Planner(_) => Status::internal(e.to_string()),
        })
    }

    /// FlightInfo for a handle: the planned schema and one endpoint whose ticket is the
    /// sealed handle.
    async fn handle_info(&self, handle: &QueryHandle, principal: &Principal, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let audit = self.audit(handle);
        let df = match self.plan(handle, principal, handle.parameters()?).await {
            Ok(df) => df,
            Err(status) => {
                audit.failed(status.message());
                return Err(status);
            }
        };
        let schema = df.schema().as_arrow().clone();
        let ticket = TicketStatementQuery { statement_handle: handle.seal(&self.auth)?.into() };
        let info = schema_info(&schema)?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Runs a handle and streams its batches.
    async fn stream_handle(&self, handle: &QueryHandle, principal: &Principal) -> Result<Response<DoGetStream>, Status> {
        // The handle names the snapshot it was planned on; snapshots are immutable and the
        // canonical schema is fixed, so a ticket redeemed after a swap runs on the current
        // snapshot with the same result schema.
        if let (Some(tenant), Some(planned)) = (&handle.tenant, &handle.snapshot_id) {
            let current = self.catalog.tenant(tenant).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
            if current.as_ref() != Some(planned) {
                tracing::debug!(%tenant, %planned, ?current, "ticket redeemed after a snapshot swap");
            }
        }
        let audit = self.audit(handle);
        let started = audit.started();
        let parameters = handle.parameters()?;
        // The snapshot ids come first: a result planned on a newer snapshot may then be kept
        // under an older key (never asked for again), never the other way round.
        let snapshots: Vec<(String, Option<String>)> = self
            .catalog
            .tenant_names()
            .into_iter()
            .filter(|t| principal.may_read(t))
            .map(|t| {
                let id = self.catalog.tenant(&t).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
                (t, id)
            })
            .collect();
        let key = self.cache.key(&CacheKey {
            sql: &handle.sql,
            parameters: &format!("{parameters:?}"),
            profile: if handle.profile == OutputProfile::Grafana { "grafana" } else { "standard" },
            tenants: principal.tenants.as_deref(),
            snapshots: &snapshots,
        });
        let key = key.map(|k| format!("{}\u{1f}{k}", handle.tenant.as_deref().unwrap_or("")));
        if let Some(hit) = key.as_deref().and_then(|k| self.cache.get(k)) {
            self.stats.observe(Protocol::FlightSql, started, true, true);
            let rows = hit.batches.iter().map(|b| b.num_rows() as u64).sum();
            audit.cached().finished(rows);
            let batches = futures::stream::iter(hit.batches.clone().into_iter().map(Ok));
            return Ok(Response::new(Box::pin(encode(Arc::clone(&hit.schema), batches))));
        }
        let stats = Arc::clone(&self.stats);
        let fail = |status: Status| {
            stats.observe(Protocol::FlightSql, started, false, false);
            audit.failed(status.message());
            status
        };
        let overrun = tokio_util::sync::CancellationToken::new();
        let admission = execution::admit(&self.gate, &principal.user, &overrun).await.map_err(|e| fail(limit_status(&e)))?;
        let df = self.plan_admitted(handle, principal, parameters, &admission).await.map_err(fail)?;
        // Whether a result may be shared is decided on the plan, not the text: a result that
        // reads `system`, `information_schema` or `pg_catalog` (whatever the quoting) or calls
        // a volatile function depends on who asks and when, and is never kept.
        let key = key.filter(|_| crate::server::cache::plan_is_cacheable(df.logical_plan()));
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.execute_stream().await.map_err(|e| fail(query_status(&QueryError::from_datafusion(e, None))))?;
        let advertised = Arc::clone(&schema);
        let batches = AssertUnwindSafe(batches).catch_unwind().map(move |item| match item {
            Ok(Ok(batch)) => conform_batch(&advertised, &batch).map_err(|e| {
                FlightError::Tonic(Box::new(Status::internal(format!("result batch does not match the result schema: {e}"))))
            }),
            Ok(Err(e)) => Err(FlightError::Tonic(Box::new(query_status(&QueryError::from_datafusion(e, None))))),
            Err(_) => Err(FlightError::Tonic(Box::new(Status::internal("the query engine failed while running this query")))),
        });
        let timeout = admission.timeout_error();
        let batches = execution::limited(
            batches,
            admission,
            |b: &RecordBatch| (b.num_rows() as u64, b.get_array_memory_size() as u64),
            |e| FlightError::Tonic(Box::new(limit_status(&e))),
            |e: &FlightError| match e {
                FlightError::Tonic(status) => status.message().to_string(),
                other => other.to_string(),
            },
            audit.clone(),
        );
        let batches = detached(batches, overrun, move || FlightError::Tonic(Box::new(limit_status(&timeout))));
        // Keeps what streams by (while it fits), and caches it once the client has read it all.
        let recorder = Arc::new(Recorder::new(Arc::clone(&self.cache), key, Arc::clone(&schema)));
        let (seen, done_recorder) = (Arc::clone(&recorder), recorder);
        let seen_stats = Arc::clone(&stats);
        let batches = batches.map(move |item| {
            if seen.record(item.as_ref().ok()) {
                seen_stats.observe(Protocol::FlightSql, started, false, false);
            }
            item
        });
        let done = futures::stream::once(async move {
            if done_recorder.finish() {
                stats.observe(Protocol::FlightSql, started, true, false);
            }
        })
        .filter_map(|()| async { None });
        let batches = batches.chain(done);
        Ok(Response::new(Box::pin(encode(schema, batches))))
    }
}

/// Runs `batches` in a task of its own that hands them over through a channel of two, so the
/// query is not at the mercy of the client's reading: when `overrun` is cancelled (the
/// query's slot outlived its deadline, the client stopped reading), the task drops the
/// query, freeing its slot, memory and batches, and the stream ends with `timeout()`.
fn detached<T: Send + 'static, E: Send + 'static>(
    batches: impl Stream<Item = Result<T, E>> + Send + 'static,
    overrun: tokio_util::sync::CancellationToken,
    timeout: impl FnOnce() -> E + Send + 'static,
) -> impl Stream<Item = Result<T, E>> + Send + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::clone(&finished);
    tokio::spawn(async move {
        let mut batches = std::pin::pin!(batches);
        loop {
            let item = tokio::select! {
                () = overrun.cancelled() => return,
                item = batches.next() => item,
            };
            let Some(item) = item else {
                done.store(true, std::sync::atomic::Ordering::Release);
                return;
            };
            tokio::select! {
                () = overrun.cancelled() => return,
                sent = sender.send(item) => if sent.is_err() { return },
            }
        }
    });
    let mut timeout = Some(timeout);
    tokio_stream::wrappers::ReceiverStream::new(receiver).chain(futures::stream::iter(std::iter::from_fn(move || {
        // The channel closed: either the query ended, or it was dropped for overrunning.
        if finished.load(std::sync::atomic::Ordering::Acquire) { None } else { timeout.take().map(|t| Err(t())) }
    })))
}

/// The refusal of an update statement, naming it.
fn read_only_update(sql: &str) -> Status {
    let what: String = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ").chars().take(80).collect();
    Status::permission_denied(format!("salespulse is read-only: {what} … is not allowed (Flight SQL updates are refused; SET has no effect on a stateless protocol); run SELECT queries only"))
}

/// Flight data for a stream of result batches.
fn encode(schema: SchemaRef, batches: impl futures::Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static) -> impl futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static {
    FlightDataEncoderBuilder::new().with_schema(schema).with_max_flight_data_size(MAX_FLIGHT_DATA_BYTES).build(batches).map_err(Status::from)
}


fn auth_status(e: &AuthError) -> Status {
    match e {
        AuthError::Throttled { .. } | AuthError::Busy => Status::resource_exhausted(e.to_string()),
        _ => Status::unauthenticated(e.to_string()),
    }
}

/// A limit's refusal: the server is busy, or the query went past a limit.
fn limit_status(e: &LimitError) -> Status {
    match e {
        LimitError::Busy { .. } | LimitError::UserBusy { .. } | LimitError::TooManyRows { .. } | LimitError::TooManyBytes { .. } => Status::resource_exhausted(e.to_string()),
        LimitError::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
    }
}

/// One query into the audit log.
/// One mapping from query errors to gRPC statuses.
fn query_status(e: &QueryError) -> Status {
    match e {
        QueryError::TooLong { .. } | QueryError::TooDeep { .. } | QueryError::TooManyStatements { .. } => Status::invalid_argument(e.to_string()),
        QueryError::ReadOnly { .. } => Status::permission_denied(e.to_string()),
        QueryError::Plan(_) => Status::invalid_argument(e.to_string()),
        QueryError::Memory(_) => Status::resource_exhausted(e.to_string()),
        QueryError::Execution(_) => Status::internal(e.to_string()),
    }
}

fn schema_info(schema: &Schema) -> Result<FlightInfo, Status> {
    FlightInfo::new().try_with_schema(schema).map_err(|e| Status::internal(format!("encoding the result schema: {e}")))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding a schema: {e}")))?;
    Ok(bytes)
}

/// Streams one metadata batch.
fn batch_stream(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(MAX_FLIGHT_DATA_BYTES)
        .build(stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

fn metadata_info(command: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = schema_info(schema)?.with_endpoint(FlightEndpoint::new().with_ticket(ticket)).with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A schema with every field's type as a client receives it.
fn client_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match client_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

fn table_type(schema: &str) -> &'static str {
    match schema {
        "kpi" | "information_schema" => "VIEW",
        _ => "BASE TABLE",
    }
}

/// The spec schema of GetPrimaryKeys.
fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// The spec schema of GetImportedKeys, GetExportedKeys and GetCrossReference.
fn foreign_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

/// The canonical tables declare no keys (docs/schema.md): key commands answer with no rows.
fn empty_stream(schema: Schema) -> Result<Response<DoGetStream>, Status> {
    batch_stream(Ok(RecordBatch::new_empty(Arc::new(schema))))
}

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for SalesFlightSql {
    type FlightService = SalesFlightSql;

    /// Basic (padded or not) or Bearer credentials in the `authorization` header, 0..n
    /// request messages; the answer carries `authorization: Bearer <token>` in its headers.
    async fn do_handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<HandshakeStream>, Status> {
        let principal = self.principal(&request).await?;
        // A token is issued for a password only: a bearer token presented here is answered
        // as it is, so a token cannot be renewed forever without the password.
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.trim_start().get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| h.trim_start()[7..].trim().to_string()));
        let token = match presented {
            _ if !self.auth.enabled() => "anonymous".to_string(),
            Some(token) => token,
            None => self.auth.issue_token(&principal),
        };
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let mut response: Response<HandshakeStream> = Response::new(Box::pin(stream::iter([Ok(reply)])));
        let value = format!("Bearer {token}").parse().map_err(|_| Status::internal("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let (handle, principal) = self.new_handle(query.query, &request).await?;
        self.handle_info(&handle, &principal, request.into_inner()).await
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&ticket.statement_handle, &self.auth, &principal)?;
        self.stream_handle(&handle, &principal).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (handle, principal) = self.new_handle(query.query, &request).await?;
        let df = self.plan(&handle, &principal, Vec::new()).await?;
        let types = parameter_types(&df).map_err(|e| query_status(&e))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.seal(&self.auth)?.into(),
            dataset_schema: schema_bytes(df.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameter_schema(&types))?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(&request).await?;
        let mut handle = QueryHandle::open(&query.prepared_statement_handle, &self.auth, &principal)?;
        // Parameters are one row; what a client sends beyond `limits.max_sql_bytes` of them is
        // refused as it arrives, never collected.
        let max = self.max_sql_bytes;
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut bytes = 0usize;
        let mut incoming = FlightRecordBatchStream::new_from_flight_data(request.into_inner().map_err(FlightError::from));
        while let Some(batch) = incoming.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("the parameters could not be read: {e}")))?;
            bytes += batch.get_array_memory_size();
            if bytes > max || batches.len() >= 16 {
                return Err(Status::invalid_argument(format!(
                    "the parameters sent are larger than {max} bytes (limits.max_sql_bytes) or span more than 16 batches; bind one row of parameters"
                )));
            }
            batches.push(batch);
        }
        handle.bind(&batches)?;
        // Plan now, so a wrong parameter count or type is reported at bind time.
        self.plan(&handle, &principal, handle.parameters()?).await?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.seal(&self.auth)?.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&query.prepared_statement_handle, &self.auth, &principal)?;
        self.handle_info(&handle, &principal, request.into_inner()).await
    }

    async fn do_get_prepared_statement(&self, query: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&query.prepared_statement_handle, &self.auth, &principal)?;
        self.stream_handle(&handle, &principal).await
    }

    /// Handles are stateless: there is nothing to free.
    async fn do_action_close_prepared_statement(&self, _query: ActionClosePreparedStatementRequest, request: Request<Action>) -> Result<(), Status> {
        self.principal(&request).await?;
        Ok(())
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let mut builder = query.into_builder();
        for name in self.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)) {
            builder.append(name);
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let ctx = self.session(None, &principal);
        let mut builder = query.into_builder();
        for name in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&name) {
                for schema in catalog.schema_names() {
                    builder.append(&name, schema);
                }
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(&self, mut query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        // JDBC and ODBC tools ask for "TABLE"; Grafana for "BASE TABLE" and "table".
        let mut types = Vec::new();
        for t in &query.table_types {
            match t.to_ascii_uppercase().as_str() {
                "TABLE" | "BASE TABLE" => types.push("BASE TABLE".to_string()),
                "VIEW" => types.push("VIEW".to_string()),
                _ => types.push(t.clone()),
            }
        }
        query.table_types = types;
        let ctx = self.session(None, &principal);
        let mut builder = query.into_builder();
        let mut names = ctx.catalog_names();
        names.sort();
        for name in names {
            let Some(catalog) = ctx.catalog(&name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    let table_schema = match schema.table(&table_name).await {
                        Ok(Some(table)) => client_schema(&table.schema()),
                        _ => continue,
                    };
                    builder
                        .append(&name, &schema_name, &table_name, table_type(&schema_name), &table_schema)
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_table_types(&self, query: CommandGetTableTypes, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        let mut builder = query.into_builder();
        builder.append("BASE TABLE");
        builder.append("VIEW");
        batch_stream(builder.build())
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        batch_stream(query.into_builder(&self.sql_info).build())
    }

    async fn get_flight_info_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder(&self.xdbc_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        batch_stream(query.into_builder(&self.xdbc_info).build())
    }

    async fn get_flight_info_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &primary_keys_schema(), request.into_inner())
    }

    async fn do_get_primary_keys(&self, _query: CommandGetPrimaryKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(primary_keys_schema())
    }

    async fn get_flight_info_imported_keys(&self, query: CommandGetImportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_imported_keys(&self, _query: CommandGetImportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn get_flight_info_exported_keys(&self, query: CommandGetExportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_exported_keys(&self, _query: CommandGetExportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(&self, query: CommandGetCrossReference, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_cross_reference(&self, _query: CommandGetCrossReference, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn do_get_fallback(&self, _request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!("this server does not serve tickets of type {}", message.type_url)))
    }

    /// Session actions (CloseSession, Get/SetSessionOptions), CancelFlightInfo and anything
    /// unknown: UNIMPLEMENTED, which ADBC and JDBC treat as "not supported".
    /// Updates (`SET`, `INSERT`, DDL sent as an update) are refused as what they are.
    async fn do_put_statement_update(&self, command: arrow_flight::sql::CommandStatementUpdate, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(read_only_update(&command.query))
    }

    async fn do_put_statement_ingest(&self, _command: arrow_flight::sql::CommandStatementIngest, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied("salespulse is read-only: bulk ingestion is not allowed; run SELECT queries only"))
    }

    async fn do_put_prepared_statement_update(&self, _query: arrow_flight::sql::CommandPreparedStatementUpdate, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied("salespulse is read-only: prepared updates are not allowed; run SELECT queries only"))
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        Err(Status::unimplemented(format!("action {} is not supported", request.get_ref().r#type)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_types_by_schema() {
        assert_eq!(table_type("crm"), "BASE TABLE");
        assert_eq!(table_type("kpi"), "VIEW");
    }

    #[test]
    fn key_schemas_are_the_spec_ones() {
        assert_eq!(primary_keys_schema().fields().len(), 6);
        assert_eq!(foreign_keys_schema().fields().len(), 13);
        assert!(schema_bytes(&foreign_keys_schema()).is_ok());
    }
}
