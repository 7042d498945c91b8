//! Stage 5 of the pipeline: the protocol front ends over the catalog: Arrow Flight SQL, the
//! PostgreSQL wire protocol and the HTTP operations endpoint, all authenticating against the
//! same users ([`auth`]).
//!
//! The caller binds the listener and holds the cancellation token, so tests run on port 0
//! and stop the server without sleeps.

pub use salespulse_input::auth;
pub mod cache;
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
/// in flight.
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
    // Nagle's algorithm off: otherwise each small answer (a FlightInfo, the last frame of a
    // result) waits for the client's delayed ACK, about 40 ms per round trip.
    let incoming = TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|socket| {
            if let Err(e) = socket.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY could not be set: {e}");
            }
        })
    });
    builder
        .add_service(FlightServiceServer::new(service).max_decoding_message_size(16 << 20))
        .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
