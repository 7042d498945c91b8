//! The operations endpoint over HTTP:
//!
//! - `GET /health/live` and `GET /health/ready`: the probes of a load balancer or
//!   Kubernetes, without credentials and without a tenant name or an error in the answer.
//!   Live while the process answers; ready while it serves (its catalogs are loaded, which
//!   happens before the port opens) and not stopping. One tenant that fails to refresh or
//!   load does not make a replica unready: the others still serve.
//! - `GET /health`: per tenant, the snapshot served, its age and the last refresh. The
//!   status is 200 when every tenant serves a snapshot, 503 otherwise. Without credentials
//!   (when there are users) it answers as `/health/ready` does.
//! - `GET /metrics`: Prometheus (OpenMetrics text). It covers refreshes by outcome, their
//!   seconds, CRM answers by status and retries, rows per table of the served snapshot,
//!   snapshot age, query latency and errors by protocol, and result cache lookups.
//! - `POST /tenants/{name}/refresh`: refreshes the tenant now and answers with the outcome
//!   (409 when a refresh is already running, here or on another process holding the
//!   tenant's lease, or when this replica is query-only).
//!
//! With `[[users]]` configured, every request needs `Authorization: Basic …` or the bearer
//! token of a Flight SQL handshake, and a user sees only their tenants.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use salespulse_config::auth::{AuthError, Authenticator, Principal};
use super::cache::ResultCache;
use super::connections::{ConnectionCap, Guarded};
use super::query_stats::QueryStats;
use super::tls::{TlsAcceptor, TlsIdentity};
use crate::catalog::Catalog;
use crate::history::refreshes::{Outcome, RefreshRecord, Trigger};
use crate::scheduler::Refresher;

/// What the endpoint reads and drives.
#[derive(Clone)]
pub struct HttpState {
    pub catalog: Arc<Catalog>,
    pub refresher: Arc<Refresher>,
    pub auth: Arc<Authenticator>,
    pub cache: Arc<ResultCache>,
    pub queries: Arc<QueryStats>,
    /// The connection cap and idle timeout of the port (`[limits]`).
    pub limits: salespulse_config::config::Limits,
    /// What this process does: a query-only replica refuses refreshes.
    pub role: salespulse_config::config::Role,
    /// Cancelled when the process stops: the port stops accepting (which drains a load
    /// balancer), and a request already on an open connection gets 503 from readiness.
    pub stopping: CancellationToken,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").field("catalog", &self.catalog).finish_non_exhaustive()
    }
}

/// Serves the endpoint on `listener` (over TLS with `tls`) until `shutdown` is cancelled.
///
/// # Errors
/// The listener fails.
pub async fn serve_http(listener: TcpListener, state: HttpState, tls: Option<&TlsIdentity>, shutdown: CancellationToken) -> std::io::Result<()> {
    let cap = ConnectionCap::new(state.limits.max_connections_per_port, state.limits.idle_timeout);
    let state_header_timeout = state.limits.login_timeout;
    let app = Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/tenants/{name}/refresh", post(refresh))
        .with_state(state);
    let header_timeout = state_header_timeout;
    let mut listener = HttpListener::start(listener, tls.map(TlsIdentity::http_acceptor), cap, shutdown.clone())?;
    // Each connection is served by hyper with a timer, so a request whose headers do not
    // arrive within the login timeout is closed (axum::serve sets no timer, and a
    // half-sent request stayed open for minutes).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accepted.recv() => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(Peer(peer)))));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = shutdown.cancelled() => {
                    // Requests in flight finish; idle keep-alive connections close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "HTTP connection ended with an error: {e}");
            }
        });
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// 503 to a connection over the cap, then closed.
async fn refuse(mut socket: Guarded<tokio::net::TcpStream>, max: usize) {
    use tokio::io::AsyncWriteExt;
    let body = json!({ "error": format!("too many connections: this server accepts {max} HTTP connections at once (limits.max_connections_per_port); try again shortly") }).to_string();
    let answer = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), socket.write_all(answer.as_bytes())).await;
    let _ = socket.shutdown().await;
}

/// A connection of either kind.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// Accepted connections, TLS-wrapped when configured. Handshakes run in tasks of their own
/// (10 s at most), so a slow or wrong client (plain HTTP on a TLS port) never holds up the
/// others; a failed handshake is logged and dropped.
struct HttpListener {
    accepted: tokio::sync::mpsc::Receiver<(Box<dyn Connection>, SocketAddr)>,
}

impl HttpListener {
    fn start(listener: TcpListener, tls: Option<TlsAcceptor>, cap: ConnectionCap, shutdown: CancellationToken) -> std::io::Result<HttpListener> {
        let (sender, accepted) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!("accepting an HTTP connection failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = socket.set_nodelay(true);
                let admitted = cap.admit();
                let Some(socket) = cap.guard(socket, admitted) else { continue };
                if socket.refused() {
                    tracing::warn!(%peer, max = cap.max(), "HTTP connection refused: too many open connections");
                    tokio::spawn(refuse(socket, cap.max()));
                    continue;
                }
                let sender = sender.clone();
                match &tls {
                    None => {
                        if sender.send((Box::new(socket) as Box<dyn Connection>, peer)).await.is_err() {
                            return;
                        }
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(socket)).await {
                                Ok(Ok(stream)) => {
                                    let _ = sender.send((Box::new(stream) as Box<dyn Connection>, peer)).await;
                                }
                                Ok(Err(e)) => tracing::debug!(%peer, "HTTP TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "HTTP TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        Ok(HttpListener { accepted })
    }
}

/// The client's address, for the failed-login count.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The caller, checked off the async threads (Basic credentials cost an argon2 check).
async fn principal(state: &HttpState, headers: &HeaderMap, peer: SocketAddr) -> Result<Principal, AuthError> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let auth = Arc::clone(&state.auth);
    tokio::task::spawn_blocking(move || auth.check_header(header.as_deref(), Some(peer.ip()))).await.unwrap_or(Err(AuthError::Malformed))
}

/// 401 with what to send (the secret is never logged).
fn refused(e: &AuthError) -> Response {
    tracing::info!("HTTP request refused: {e}");
    let status = match e {
        AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut response = json_response(status, &json!({ "error": e.to_string() }));
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"salespulse\""));
    response
}

fn record_json(r: &RefreshRecord) -> serde_json::Value {
    json!({
        "outcome": r.outcome.as_str(),
        "trigger": r.trigger.as_str(),
        "started_at": r.started_at.to_rfc3339(),
        "finished_at": r.finished_at.to_rfc3339(),
        "seconds": (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0,
        "error": r.error,
        "snapshot_id": r.summary.as_ref().map(|s| s.snapshot_id.clone()),
        "rows": r.summary.as_ref().map(|s| s.rows),
    })
}

/// Liveness: the process answers.
async fn live() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "live" }))
}

/// Readiness: serving, and not stopping. Nothing about tenants.
async fn ready(State(state): State<HttpState>) -> Response {
    readiness(&state)
}

fn readiness(state: &HttpState) -> Response {
    if state.stopping.is_cancelled() {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "stopping" }))
    } else {
        json_response(StatusCode::OK, &json!({ "status": "ready", "role": state.role.as_str() }))
    }
}

async fn health(State(state): State<HttpState>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap) -> Response {
    let who = match principal(&state, &headers, peer).await {
        Ok(p) => p,
        // A probe sends no credentials: it learns whether to route here, nothing more.
        Err(AuthError::Missing) => return readiness(&state),
        Err(e) => return refused(&e),
    };
    let now = Utc::now();
    let log = state.refresher.log();
    let mut all_serving = true;
    let mut tenants = Vec::new();
    for name in state.catalog.tenant_names().into_iter().filter(|n| who.may_read(n)) {
        let Some(t) = state.catalog.tenant(&name) else { continue };
        all_serving &= t.manifest.is_some();
        tenants.push(json!({
            "name": name,
            "snapshot_id": t.manifest.as_ref().map(|m| m.snapshot_id.clone()),
            "taken_at": t.manifest.as_ref().map(|m| m.taken_at.to_rfc3339()),
            "age_seconds": t.manifest.as_ref().map(|m| (now - m.taken_at).num_seconds()),
            "problem": t.problem,
            "refreshing": state.refresher.is_running(&name),
            "last_refresh": log.last(&name).as_ref().map(record_json),
        }));
    }
    let status = if all_serving { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &json!({ "status": if all_serving { "ok" } else { "degraded" }, "tenants": tenants }))
}

type Labels = Vec<(String, String)>;

async fn metrics(State(state): State<HttpState>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap) -> Response {
    let who = match principal(&state, &headers, peer).await {
        Ok(p) => p,
        Err(e) => return refused(&e),
    };
    let mut registry = Registry::with_prefix("salespulse");
    let refreshes = Family::<Labels, Counter>::default();
    let refresh_seconds = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    let crm_answers = Family::<Labels, Counter>::default();
    let crm_retries = Family::<Labels, Counter>::default();
    let rows = Family::<Labels, Gauge>::default();
    let age = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let serving = Family::<Labels, Gauge>::default();
    registry.register("refreshes", "Refresh attempts by outcome (ok, failed, skipped)", refreshes.clone());
    registry.register("refresh_seconds", "Seconds spent in refreshes", refresh_seconds.clone());
    registry.register("crm_answers", "CRM answers by HTTP status (timeout and connection for none)", crm_answers.clone());
    registry.register("crm_retries", "CRM requests retried", crm_retries.clone());
    registry.register("snapshot_rows", "Rows per table of the served snapshot", rows.clone());
    registry.register("snapshot_age_seconds", "Seconds since the served snapshot was taken", age.clone());
    registry.register("tenant_serving", "1 when the tenant serves a snapshot", serving.clone());
    registry.register("query_seconds", "Query latency by protocol, and whether the result cache answered", state.queries.latency.clone());
    registry.register("query_errors", "Queries that failed, by protocol", state.queries.errors.clone());
    let cache = Family::<Labels, Counter>::default();
    registry.register("result_cache", "Result cache lookups (Flight SQL and PostgreSQL): hit, miss, or uncacheable (answers that change without a refresh)", cache.clone());
    let stats = state.cache.stats();
    for (result, n) in [("hit", &stats.hits), ("miss", &stats.misses), ("uncacheable", &stats.uncacheable)] {
        cache.get_or_create(&vec![("result".to_string(), result.to_string())]).inc_by(n.load(std::sync::atomic::Ordering::Relaxed));
    }
    let tenant = |name: &str| vec![("tenant".to_string(), name.to_string())];
    let with = |name: &str, key: &str, value: &str| vec![("tenant".to_string(), name.to_string()), (key.to_string(), value.to_string())];
    for (name, totals) in state.refresher.log().totals().iter().filter(|(n, _)| who.may_read(n)) {
        for outcome in [Outcome::Ok, Outcome::Failed, Outcome::Skipped] {
            refreshes.get_or_create(&with(name, "outcome", outcome.as_str())).inc_by(totals.outcomes.get(outcome.as_str()).copied().unwrap_or(0));
        }
        refresh_seconds.get_or_create(&tenant(name)).inc_by(totals.seconds);
        for (status, n) in &totals.answers {
            crm_answers.get_or_create(&with(name, "status", status)).inc_by(*n);
        }
        crm_retries.get_or_create(&tenant(name)).inc_by(totals.retries);
    }
    let now = Utc::now();
    for name in state.catalog.tenant_names().into_iter().filter(|n| who.may_read(n)) {
        let Some(t) = state.catalog.tenant(&name) else { continue };
        serving.get_or_create(&tenant(&name)).set(i64::from(t.manifest.is_some()));
        if let Some(m) = &t.manifest {
            age.get_or_create(&tenant(&name)).set((now - m.taken_at).num_milliseconds() as f64 / 1000.0);
            for (table, entry) in &m.tables {
                rows.get_or_create(&with(&name, "table", table)).set(i64::try_from(entry.rows).unwrap_or(i64::MAX));
            }
        }
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the metrics failed: {e}")).into_response(),
    }
}

async fn refresh(State(state): State<HttpState>, ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let who = match principal(&state, &headers, peer).await {
        Ok(p) => p,
        Err(e) => return refused(&e),
    };
    // Another user's tenant looks like no tenant at all.
    if !who.may_read(&name) || state.catalog.tenant(&name).is_none() {
        return json_response(StatusCode::NOT_FOUND, &json!({ "error": format!("no tenant '{name}'") }));
    }
    if !state.role.refreshes() {
        return json_response(
            StatusCode::CONFLICT,
            &json!({ "error": format!("this replica is query-only (server.role = \"query\"): refreshes of tenant '{name}' run on the refreshers; send this request to one of them") }),
        );
    }
    // A refresh spends the CRM's request quota: a permission of its own, not every reader's.
    if !who.may_refresh {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({ "error": format!("user '{}' may read tenant '{name}' but not start its refreshes; give the user `refresh = true` in [[users]]", who.user) }),
        );
    }
    let record = state.refresher.refresh(&name, Trigger::Http).await;
    let status = match record.outcome {
        Outcome::Ok => StatusCode::OK,
        Outcome::Skipped => StatusCode::CONFLICT,
        Outcome::Failed => StatusCode::BAD_GATEWAY,
    };
    json_response(status, &record_json(&record))
}
