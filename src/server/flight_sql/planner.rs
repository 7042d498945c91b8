//! Statements and prepared statements: a handle from the request, planning under the query
//! limits, the FlightInfo that carries the sealed handle as its ticket, and the result
//! stream, answered from the result cache or run under the limits in a task of its own.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{ActionCreatePreparedStatementResult, CommandPreparedStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use salespulse_config::auth::Principal;
use salespulse_config::handle::OutputProfile;

use crate::catalog::{QueryError, TextLimits, conform_batch, parameter_types, plan_query_with};
use crate::history::queries::Protocol;
use crate::server::cache::{CacheKey, Recorder};
use crate::server::execution;
use crate::server::limits::Admission;
use super::handle::{HandleStatus, QueryHandle, parameter_schema};
use super::metadata::{schema_bytes, schema_info};
use super::planned::Snapshots;
use super::status::IntoStatus;
use super::{DoGetStream, MAX_FLIGHT_DATA_BYTES, SalesFlightSql};

impl SalesFlightSql {
    /// Plans a handle under `admission`'s deadline; without one (GetFlightInfo, prepared
    /// statements) planning takes a slot of its own for the time it plans, so no request
    /// plans outside the limits.
    pub(super) async fn plan(&self, handle: &QueryHandle, principal: &Principal, params: Vec<ScalarValue>) -> Result<datafusion::prelude::DataFrame, Status> {
        let overrun = tokio_util::sync::CancellationToken::new();
        let admission = execution::admit(&self.gate, &principal.user, &overrun).await.map_err(|e| e.status())?;
        self.plan_admitted(handle, principal, params, &admission).await
    }

    pub(super) async fn plan_admitted(&self, handle: &QueryHandle, principal: &Principal, params: Vec<ScalarValue>, admission: &Admission) -> Result<datafusion::prelude::DataFrame, Status> {
        let ctx = self.session(handle.tenant.as_deref(), principal);
        let catalog = Arc::clone(&self.catalog);
        let sql = handle.sql.clone();
        let limits = TextLimits { max_bytes: self.max_sql_bytes, ..TextLimits::of(self.gate.limits()) };
        let profile = handle.profile;
        let asking = principal.clone();
        let planning = async move { plan_query_with(&ctx, &sql, limits, &params, profile, || catalog.missing_snapshot_hint_for(&asking)).await };
        execution::plan_within(admission, planning).await.map_err(|e| e.status())
    }

    /// FlightInfo for a handle: the planned schema and one endpoint whose ticket is the
    /// sealed handle. The plan is kept for the DoGet that redeems the ticket (`planned`).
    pub(super) async fn handle_info(&self, handle: &QueryHandle, principal: &Principal, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let audit = self.audit(handle);
        let snapshots = self.snapshots_of(principal);
        let df = match self.plan(handle, principal, handle.parameters()?).await {
            Ok(df) => df,
            Err(status) => {
                audit.failed(status.message());
                return Err(status);
            }
        };
        let schema = df.schema().as_arrow().clone();
        let sealed = handle.seal(&self.auth)?;
        let ticket = TicketStatementQuery { statement_handle: sealed.clone().into() };
        let info = schema_info(&schema)?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())))
            .with_descriptor(descriptor);
        self.planned.keep(sealed, &principal.user, snapshots, df);
        Ok(Response::new(info))
    }

    /// (tenant, snapshot id) of every tenant `principal` may read, now.
    fn snapshots_of(&self, principal: &Principal) -> Snapshots {
        self.catalog
            .tenant_names()
            .into_iter()
            .filter(|t| principal.may_read(t))
            .map(|t| {
                let id = self.catalog.tenant(&t).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
                (t, id)
            })
            .collect()
    }

    /// Runs a handle and streams its batches; `ticket` is the sealed handle as the client
    /// sent it, under which GetFlightInfo may have kept the plan.
    pub(super) async fn stream_handle(&self, ticket: &[u8], handle: &QueryHandle, principal: &Principal) -> Result<Response<DoGetStream>, Status> {
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
        let snapshots = self.snapshots_of(principal);
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
            audit.cached().finished(hit.rows());
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
        let admission = execution::admit(&self.gate, &principal.user, &overrun).await.map_err(|e| fail(e.status()))?;
        let df = match self.planned.take(ticket, &principal.user, &snapshots) {
            Some(df) => df,
            None => self.plan_admitted(handle, principal, parameters, &admission).await.map_err(fail)?,
        };
        // Whether a result may be shared is decided on the plan, not the text: a result that
        // reads `system`, `information_schema` or `pg_catalog` (whatever the quoting) or calls
        // a volatile function depends on who asks and when, and is never kept.
        let key = key.filter(|_| crate::server::cache::plan_is_cacheable(df.logical_plan()));
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        // A snapshot deleted under the plan before any row went out: the plan runs once more
        // on the tenant's current snapshot.
        let readable: Vec<String> = self.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)).collect();
        let batches = crate::server::snapshot_gone::execute_following(df, Arc::clone(&self.catalog), readable)
            .await
            .map_err(|e| fail(QueryError::from_datafusion(e, None).status()))?;
        let advertised = Arc::clone(&schema);
        let batches = AssertUnwindSafe(batches).catch_unwind().map(move |item| match item {
            Ok(Ok(batch)) => conform_batch(&advertised, &batch).map_err(|e| {
                FlightError::Tonic(Box::new(Status::internal(format!("result batch does not match the result schema: {e}"))))
            }),
            Ok(Err(e)) => Err(FlightError::Tonic(Box::new(QueryError::from_datafusion(e, None).status()))),
            Err(_) => Err(FlightError::Tonic(Box::new(Status::internal("the query engine failed while running this query")))),
        });
        let timeout = admission.timeout_error();
        let batches = execution::limited(
            batches,
            admission,
            |b: &RecordBatch| (b.num_rows() as u64, execution::result_bytes(b) as u64),
            |e| FlightError::Tonic(Box::new(e.status())),
            |e: &FlightError| match e {
                FlightError::Tonic(status) => status.message().to_string(),
                other => other.to_string(),
            },
            audit.clone(),
        );
        let batches = detached(batches, overrun, move || FlightError::Tonic(Box::new(timeout.status())));
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

    /// Binds the parameters a client sends through DoPut into a new handle, planned now so a
    /// wrong parameter count or type is reported at bind time.
    pub(super) async fn bind_parameters(&self, query: CommandPreparedStatementQuery, request: Request<PeekableFlightDataStream>) -> Result<DoPutPreparedStatementResult, Status> {
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

    /// A prepared statement: planned now, its result and parameter schemas sent with the
    /// sealed handle.
    pub(super) async fn prepare(&self, handle: QueryHandle, principal: &Principal) -> Result<ActionCreatePreparedStatementResult, Status> {
        let df = self.plan(&handle, principal, Vec::new()).await?;
        let types = parameter_types(&df).map_err(|e| e.status())?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.seal(&self.auth)?.into(),
            dataset_schema: schema_bytes(df.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameter_schema(&types))?,
        })
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
/// Flight data for a stream of result batches.
fn encode(schema: SchemaRef, batches: impl futures::Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static) -> impl futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static {
    FlightDataEncoderBuilder::new().with_schema(schema).with_max_flight_data_size(MAX_FLIGHT_DATA_BYTES).build(batches).map_err(Status::from)
}
