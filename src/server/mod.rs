//! Stage 5 of the pipeline: the protocol front ends over the catalog: Arrow Flight SQL, the
//! PostgreSQL wire protocol and the HTTP operations endpoint, all authenticating against the
//! same users ([`auth`]).
//!
//! [`Server`] assembles the three front ends over one set of query slots, limits, result
//! cache and metrics: the CLI's `serve` and `demo` and the integration tests run the same
//! thing. The caller binds the listeners and holds the cancellation token, so tests run on
//! port 0 and stop the server without sleeps.

pub mod cache;
pub mod connections;
pub mod execution;
pub mod flight_sql;
pub mod http;
pub mod limits;
pub mod postgres;
pub mod query_stats;
pub mod snapshot_gone;
pub mod tls;

pub use flight_sql::{COMPAT_HEADER, SalesFlightSql};
pub use http::{HttpState, serve_http};
pub use postgres::{PostgresFrontend, serve_postgres};

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// A server that stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("Flight SQL server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("PostgreSQL server failed: {0}")]
    Postgres(std::io::Error),
    #[error("HTTP endpoint failed: {0}")]
    Http(std::io::Error),
}

/// The bound listeners of the three ports; a refresher (`server.role = "refresh"`) serves
/// only HTTP.
#[derive(Debug)]
pub struct Listeners {
    pub flight_sql: Option<TcpListener>,
    pub postgres: Option<TcpListener>,
    pub http: TcpListener,
}

/// The three front ends over one catalog, one set of users, one set of query slots and
/// limits (both protocols), one result cache and one set of metrics.
#[derive(Debug)]
pub struct Server {
    catalog: std::sync::Arc<crate::catalog::Catalog>,
    auth: std::sync::Arc<salespulse_config::auth::Authenticator>,
    refresher: std::sync::Arc<crate::scheduler::Refresher>,
    tls: Option<tls::TlsIdentity>,
    gate: std::sync::Arc<limits::QueryGate>,
    cache: std::sync::Arc<cache::ResultCache>,
    stats: std::sync::Arc<query_stats::QueryStats>,
    role: salespulse_config::config::Role,
}

impl Server {
    /// A server of `catalog`'s tenants for `auth`'s users under `limits`, keeping up to
    /// `result_cache_bytes` of Flight SQL and PostgreSQL results (0: none); `refresher` runs
    /// `POST /tenants/{name}/refresh`.
    pub fn new(
        catalog: std::sync::Arc<crate::catalog::Catalog>,
        auth: std::sync::Arc<salespulse_config::auth::Authenticator>,
        limits: salespulse_config::config::Limits,
        result_cache_bytes: u64,
        refresher: std::sync::Arc<crate::scheduler::Refresher>,
    ) -> Server {
        // `system.refreshes` (the catalog's) and `/health` (the refresher's) read one log.
        debug_assert!(std::sync::Arc::ptr_eq(refresher.log(), &catalog.logs().refreshes), "the refresher must write the catalog's refresh log");
        Server {
            catalog,
            auth,
            refresher,
            tls: None,
            gate: std::sync::Arc::new(limits::QueryGate::new(limits)),
            cache: std::sync::Arc::new(cache::ResultCache::new(result_cache_bytes)),
            stats: std::sync::Arc::new(query_stats::QueryStats::default()),
            role: salespulse_config::config::Role::All,
        }
    }

    /// What this process does (`server.role`): a query-only replica refuses
    /// `POST /tenants/{name}/refresh`.
    #[must_use]
    pub fn with_role(mut self, role: salespulse_config::config::Role) -> Server {
        self.role = role;
        self
    }

    /// TLS on all three ports.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<tls::TlsIdentity>) -> Server {
        self.tls = tls;
        self
    }

    /// The query slots and limits both protocols share.
    pub fn gate(&self) -> &std::sync::Arc<limits::QueryGate> {
        &self.gate
    }

    /// The result cache both protocols share.
    pub fn cache(&self) -> &std::sync::Arc<cache::ResultCache> {
        &self.cache
    }

    /// Serves the three ports until `shutdown` is cancelled, then lets what is in flight
    /// finish.
    ///
    /// # Errors
    /// A front end failed; the others are stopped.
    pub async fn serve(&self, listeners: Listeners, shutdown: CancellationToken) -> Result<(), ServerError> {
        use std::sync::Arc;
        let limits = self.gate.limits().clone();
        let flight = SalesFlightSql::new(Arc::clone(&self.catalog), Arc::clone(&self.auth), limits.max_sql_bytes)
            .map_err(|s| ServerError::Postgres(std::io::Error::other(s.message().to_string())))?
            .with_observers(Arc::clone(&self.cache), Arc::clone(&self.stats))
            .with_gate(Arc::clone(&self.gate));
        let postgres =
            PostgresFrontend::with_gate(Arc::clone(&self.catalog), Arc::clone(&self.auth), Arc::clone(&self.stats), Arc::clone(&self.gate), Arc::clone(&self.cache));
        let http = HttpState {
            catalog: Arc::clone(&self.catalog),
            refresher: Arc::clone(&self.refresher),
            auth: Arc::clone(&self.auth),
            cache: Arc::clone(&self.cache),
            queries: Arc::clone(&self.stats),
            limits,
            role: self.role,
            stopping: shutdown.clone(),
        };
        // One failing front end stops the others.
        let failed = shutdown.child_token();
        let stop_all = |result: Result<(), ServerError>| {
            if result.is_err() {
                failed.cancel();
            }
            result
        };
        let (flight, pg, http) = tokio::join!(
            async {
                let Some(listener) = listeners.flight_sql else { return Ok(()) };
                stop_all(serve_flight_sql(listener, flight, self.tls.as_ref(), failed.clone()).await)
            },
            async {
                let Some(listener) = listeners.postgres else { return Ok(()) };
                stop_all(serve_postgres(listener, postgres, self.tls.as_ref(), failed.clone()).await.map_err(ServerError::Postgres))
            },
            async { stop_all(serve_http(listeners.http, http, self.tls.as_ref(), failed.clone()).await.map_err(ServerError::Http)) },
        );
        flight?;
        pg?;
        http?;
        Ok(())
    }
}

/// Serves Flight SQL on `listener` until `shutdown` is cancelled, then finishes the requests
/// in flight. Connections are capped and closed when idle ([`connections`]): a connection
/// over `limits.max_connections_per_port` gets `RESOURCE_EXHAUSTED` on every call.
///
/// # Errors
/// The transport fails.
pub async fn serve_flight_sql(
    listener: TcpListener,
    service: SalesFlightSql,
    tls: Option<&tls::TlsIdentity>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        builder = builder.tls_config(identity.tonic_config())?;
    }
    let limits = service.limits().clone();
    let cap = connections::ConnectionCap::new(limits.max_connections_per_port, limits.idle_timeout);
    let incoming = TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Ok(socket) => {
            // Nagle's algorithm off: otherwise each small answer (a FlightInfo, the last frame
            // of a result) waits for the client's delayed ACK, about 40 ms per round trip.
            if let Err(e) = socket.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY could not be set: {e}");
            }
            let admitted = cap.admit();
            if matches!(admitted, connections::Admitted::Refused(_)) {
                tracing::warn!(max = cap.max(), "Flight SQL connection over the cap: its calls are refused");
            }
            cap.guard(socket, admitted).map(Ok)
        }
        Err(e) => Some(Err(e)),
    });
    let max = limits.max_connections_per_port;
    let refuse_over_cap = move |request: tonic::Request<()>| {
        if connections::peer_info(&request).is_some_and(|p| p.refused) {
            return Err(tonic::Status::resource_exhausted(format!(
                "too many connections: this server accepts {max} Flight SQL connections at once (limits.max_connections_per_port); try again shortly"
            )));
        }
        Ok(request)
    };
    let flight = FlightServiceServer::new(service).max_decoding_message_size(16 << 20);
    builder
        .add_service(tonic::service::interceptor::InterceptedService::new(flight, refuse_over_cap))
        .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
