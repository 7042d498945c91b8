//! Stage 5 of the pipeline: the protocol front ends over the catalog: Arrow Flight SQL, the
//! PostgreSQL wire protocol and the HTTP operations endpoint, all authenticating against the
//! same users ([`auth`]).
//!
//! The caller binds the listener and holds the cancellation token, so tests run on port 0
//! and stop the server without sleeps.

pub use salespulse_input::auth;
pub mod cache;
pub mod connections;
pub mod flight_sql;
pub mod http;
pub mod limits;
pub mod postgres;
pub mod query_stats;
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
