//! The Arrow Flight SQL front end (docs/clients.md): handshake, statement and prepared queries,
//! and every metadata command, over the tenants' catalogs.
//!
//! A statement runs as GetFlightInfo → one endpoint with no locations and a signed,
//! self-contained ticket ([`handle`]) → DoGet, which re-plans the SQL and streams batches as
//! they are produced, never collecting the result. The stream's schema is the one the
//! FlightInfo advertised, nullability included, also for 0 rows. Prepared statements use
//! the same handle: DoPut binds parameters into a new handle, which the client executes.
//!
//! Every call is authenticated ([`salespulse_config::auth`]) and sees only the principal's
//! tenants. The tenant is the `database` (or `catalog`) header, else the first allowed
//! one; the header `x-salespulse-compat: grafana` selects the Grafana output profile.
//!
//! The parts, as influxdb3's flightsql crate has them:
//! - `service`: the `FlightSqlService` trait, each method a few lines that authenticate and
//!   call one of the parts below;
//! - `planner`: statements and prepared statements: handles, planning under the query
//!   limits, FlightInfo, and the result stream (cache, limits, a task detached from the
//!   client's reading);
//! - `metadata`: the catalog commands (catalogs, schemas, tables, table types, keys) and
//!   their spec schemas;
//! - `status`: the one mapping from our errors to gRPC statuses;
//! - `handle` (tickets and prepared handles) and `sql_info` (SqlInfo and XDBC type info).

mod handle;
mod metadata;
mod planned;
mod planner;
mod service;
#[doc(hidden)]
mod sql_info;
mod status;

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::{HandshakeRequest, HandshakeResponse};
use futures::{Stream, stream};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use salespulse_config::auth::{Authenticator, Principal};
use salespulse_config::config::Limits;
use salespulse_config::handle::OutputProfile;

use crate::catalog::Catalog;
use crate::history::queries::Protocol;
use crate::server::cache::ResultCache;
use crate::server::execution::Audit;
use crate::server::limits::QueryGate;
use crate::server::query_stats::QueryStats;
use handle::QueryHandle;
use status::IntoStatus;

/// Largest FlightData message the encoder produces (batches are split to fit): half of the
/// 4 MiB that gRPC-Go clients (Grafana, ADBC) accept by default.
pub(super) const MAX_FLIGHT_DATA_BYTES: usize = 2 << 20;

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
    planned: Arc<planned::PlannedStatements>,
}

impl std::fmt::Debug for SalesFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesFlightSql").field("catalog", &self.catalog).field("auth", &self.auth).finish_non_exhaustive()
    }
}

pub(super) type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

impl SalesFlightSql {
    /// # Errors
    /// Never in practice: the SqlInfo and type tables are built from constants.
    pub fn new(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize) -> Result<Self, Status> {
        let ctx = catalog.session(None);
        let sql_info = Arc::new(sql_info::sql_info(&ctx).map_err(|e| Status::internal(e.to_string()))?);
        let xdbc_info = Arc::new(sql_info::xdbc_type_info().map_err(|e| Status::internal(e.to_string()))?);
        let gate = Arc::new(QueryGate::new(Limits { max_sql_bytes, ..Limits::default() }));
        Ok(Self { catalog, auth, max_sql_bytes, sql_info, xdbc_info, cache: Arc::new(ResultCache::new(0)), stats: Arc::new(QueryStats::default()), gate, planned: Arc::default() })
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
    pub(super) fn audit(&self, handle: &QueryHandle) -> Audit {
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
    pub(super) async fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if !self.auth.enabled() {
            return Ok(Principal::anonymous());
        }
        let peer = crate::server::connections::peer_info(request).and_then(|p| p.remote_addr).or_else(|| request.remote_addr()).map(|a| a.ip());
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let is_basic = header.as_deref().is_some_and(|h| h.trim_start().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
        if !is_basic {
            return self.auth.check_header(header.as_deref(), peer).map_err(|e| e.status());
        }
        let auth = Arc::clone(&self.auth);
        tokio::task::spawn_blocking(move || auth.check_header(header.as_deref(), peer))
            .await
            .map_err(|e| Status::internal(format!("checking credentials failed: {e}")))?
            .map_err(|e| e.status())
    }

    /// The tenant a request addresses: the `database` (or `catalog`) header when a client
    /// sets one, else the first tenant the principal may read.
    pub(super) fn tenant_of(&self, metadata: &MetadataMap, principal: &Principal) -> Result<Option<String>, Status> {
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

    pub(super) fn session(&self, tenant: Option<&str>, principal: &Principal) -> datafusion::prelude::SessionContext {
        self.catalog.session_for(tenant, principal.tenants.as_deref(), &principal.user)
    }

    /// A new handle for `sql` from this request's principal, tenant and profile.
    pub(super) async fn new_handle<T>(&self, sql: String, request: &Request<T>) -> Result<(QueryHandle, Principal), Status> {
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

    /// Basic (padded or not) or Bearer credentials in the `authorization` header, 0..n
    /// request messages; the answer carries `authorization: Bearer <token>` in its headers.
    pub(super) async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<HandshakeStream>, Status> {
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
}

/// The answer stream of a handshake.
pub(super) type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;
