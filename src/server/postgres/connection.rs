//! Accepting PostgreSQL connections and running each one's message loop.
//!
//! pgwire's own loop (`process_socket`) answers a `FATAL` error and then goes on reading,
//! with the connection marked ready for queries: a client that sent a wrong password and
//! then a query got it run. It also has no idle timeout and no connection cap. This loop
//! uses pgwire's message dispatch but decides itself when a connection ends:
//!
//! - over `limits.max_connections_per_port` open connections, a new one gets `FATAL 53300`
//!   and is closed;
//! - the login (TLS negotiation, startup, password) must finish within
//!   `limits.login_timeout_seconds`;
//! - a logged-in connection that sends nothing for `limits.idle_timeout_seconds` is closed
//!   with `FATAL 57P05`;
//! - after any `FATAL` answer the connection is closed and nothing more is read;
//! - a panic while decoding or handling a message (pgwire's decoder panics on a password
//!   message whose length field is under 4) closes that connection with an error, nothing
//!   else;
//! - a query still holding its slot a second past its deadline (the client stopped reading
//!   its rows) is dropped with everything it buffered, and the connection is closed with
//!   `FATAL 57014`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use datafusion_postgres::pgwire::api::{ClientInfo, NoopHandler, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::PostgresFrontend;
use super::login::Startup;
use super::statements::Queries;

/// One connection's handlers.
pub(super) struct Handlers {
    pub(super) startup: Arc<Startup>,
    pub(super) queries: Arc<Queries>,
}

/// Serves PostgreSQL on `listener` until `shutdown` is cancelled; then stops accepting,
/// closes each connection when it next waits for the client (57P01, as PostgreSQL's own
/// shutdown says), so a query in flight finishes first, and returns once all are closed
/// (the caller's grace period cuts what is still running after it).
///
/// # Errors
/// Never after binding: a failing connection is logged and closed, the server goes on.
pub async fn serve_postgres(
    listener: TcpListener,
    frontend: PostgresFrontend,
    tls: Option<&crate::server::tls::TlsIdentity>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let acceptor = tls.map(crate::server::tls::TlsIdentity::postgres_acceptor);
    let frontend = Arc::new(if tls.is_some() { frontend.requiring_tls() } else { frontend });
    let limits = frontend.shared.limits().clone();
    let open = Arc::new(Semaphore::new(limits.max_connections_per_port));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => {
                // The port closes now (a load balancer's check fails to connect, new clients
                // go elsewhere); the open connections drain.
                drop(listener);
                connections.close();
                connections.wait().await;
                return Ok(());
            }
            accepted = listener.accept() => accepted,
        };
        let (socket, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait a little instead of spinning.
                tracing::warn!("accepting a PostgreSQL connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small protocol messages go out at once (no Nagle delay).
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%addr, "TCP_NODELAY could not be set: {e}");
        }
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::warn!(%addr, max = limits.max_connections_per_port, "PostgreSQL connection refused: too many open connections");
            tokio::spawn(refuse(socket, limits.max_connections_per_port));
            continue;
        };
        let frontend = Arc::clone(&frontend);
        let acceptor = acceptor.clone();
        let (login_timeout, idle_timeout) = (limits.login_timeout, limits.idle_timeout);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let overrun = CancellationToken::new();
            let handlers = frontend.connection(overrun.clone());
            let timeouts = Timeouts { login: login_timeout, idle: idle_timeout };
            if let Err(e) = run_connection(socket, acceptor, handlers, timeouts, overrun, shutdown).await {
                tracing::debug!(%addr, "PostgreSQL connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

/// `FATAL 53300` to a connection over the cap, written before any message is read (libpq
/// shows it whether it sent a startup or an SSL request first), then closed.
async fn refuse(mut socket: TcpStream, max: usize) {
    let message = format!("too many connections: this server accepts {max} PostgreSQL connections at once (limits.max_connections_per_port); try again shortly");
    let bytes = error_response_bytes("FATAL", "53300", &message);
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&bytes)).await;
    let _ = socket.shutdown().await;
}

/// An `ErrorResponse` message as bytes.
pub(super) fn error_response_bytes(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', message)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

struct Timeouts {
    login: Duration,
    idle: Duration,
}

/// Sends a `FATAL` error and nothing after it (no ReadyForQuery, as PostgreSQL), then closes
/// the connection; a client that is not reading gets a second for it.
async fn say_fatal<S: futures::Sink<PgWireBackendMessage> + Unpin>(socket: &mut S, e: PgWireError) {
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(PgWireBackendMessage::ErrorResponse(ErrorInfo::from(e).into()))).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
}

/// The next message, with a panic of the decoder caught (`Some(Err)`), so that no input can
/// panic the connection's task.
async fn next_message<S: futures::Stream + Unpin>(socket: &mut S) -> Option<Result<S::Item, ()>> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(socket.next()).catch_unwind().await {
        Ok(Some(item)) => Some(Ok(item)),
        Ok(None) => None,
        Err(_) => Some(Err(())),
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

fn is_fatal(e: &PgWireError) -> bool {
    match e {
        PgWireError::UserError(info) => info.severity == "FATAL" || info.severity == "PANIC",
        // Broken framing or I/O: nothing more can be trusted from this connection.
        PgWireError::IoError(_) | PgWireError::InvalidStartupMessage | PgWireError::UnsupportedProtocolVersion(..) | PgWireError::MessageTooLarge(..) => true,
        _ => false,
    }
}

/// What a connection hears when the server stops (PostgreSQL's `admin_shutdown`).
fn stopping() -> PgWireError {
    fatal("57P01", "the server is shutting down; connect again (to another replica behind the load balancer)".into())
}

async fn run_connection(
    socket: TcpStream,
    acceptor: Option<datafusion_postgres::pgwire::tokio::TlsAcceptor>,
    handlers: Handlers,
    timeouts: Timeouts,
    overrun: CancellationToken,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let login_deadline = tokio::time::sleep(timeouts.login);
    tokio::pin!(login_deadline);
    let negotiated = tokio::select! {
        () = &mut login_deadline => return Ok(()),
        () = shutdown.cancelled() => return Ok(()),
        negotiated = negotiate_tls(socket, acceptor) => negotiated?,
    };
    // A direct TLS handshake without a certificate configured.
    let Some(mut socket) = negotiated else { return Ok(()) };
    let copy = Arc::new(NoopHandler);
    let cancel = Arc::new(NoopHandler);
    // Inside an extended-protocol batch: Parse/Bind/Execute… sent, its Sync not yet.
    let mut mid_batch = false;
    loop {
        let logging_in = matches!(socket.state(), PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress);
        let message = if logging_in {
            tokio::select! {
                () = &mut login_deadline => {
                    let e = fatal("08006", format!("the login did not finish within {} s (limits.login_timeout_seconds)", timeouts.login.as_secs()));
                    say_fatal(&mut socket, e).await;
                    return Ok(());
                }
                () = shutdown.cancelled() => {
                    say_fatal(&mut socket, stopping()).await;
                    return Ok(());
                }
                message = next_message(&mut socket) => message,
            }
        } else {
            tokio::select! {
                biased;
                // Shutting down: a connection waiting for its client closes; one running a
                // query gets here only once the query's answer is sent, and one inside an
                // extended-protocol batch only after its Sync (its ReadyForQuery sent).
                () = shutdown.cancelled(), if !mid_batch => {
                    say_fatal(&mut socket, stopping()).await;
                    return Ok(());
                }
                // A portal suspended by a partial Execute, or an open cursor, holds a slot
                // while the client says nothing: its overrun ends the connection too.
                () = overrun.cancelled() => {
                    let e = handlers.queries.overrun_error();
                    say_fatal(&mut socket, e).await;
                    return Ok(());
                }
                () = tokio::time::sleep(timeouts.idle) => {
                    let e = fatal("57P05", format!("closing the connection after {} s without a request (limits.idle_timeout_seconds)", timeouts.idle.as_secs()));
                    say_fatal(&mut socket, e).await;
                    return Ok(());
                }
                message = next_message(&mut socket) => message,
            }
        };
        let message = match message {
            Some(Ok(Ok(message))) => message,
            Some(Err(_)) => {
                // pgwire's decoder panicked on this input (a password message whose length
                // field is under 4 does): the connection can no longer be read. Close it.
                tracing::warn!("a PostgreSQL message could not be decoded (decoder panic); the connection is closed");
                let e = fatal("08P01", "invalid message: its length field is impossible".into());
                say_fatal(&mut socket, e).await;
                return Ok(());
            }
            Some(Ok(Err(e))) => {
                // A message that does not decode: say so and close.
                let e = fatal("08P01", format!("invalid message: {e}"));
                say_fatal(&mut socket, e).await;
                return Ok(());
            }
            None => return Ok(()),
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let ends_batch = matches!(message, PgWireFrontendMessage::Sync(_) | PgWireFrontendMessage::Query(_));
        mid_batch = !ends_batch && (mid_batch || message.is_extended_query());
        let processing = std::panic::AssertUnwindSafe(process_message(
            message,
            &mut socket,
            Arc::clone(&handlers.startup),
            Arc::clone(&handlers.queries),
            Arc::clone(&handlers.queries),
            Arc::clone(&copy),
            Arc::clone(&cancel),
        ));
        let processed = tokio::select! {
            processed = futures::FutureExt::catch_unwind(processing) => processed.unwrap_or_else(|_| {
                // A handler panicked: the statement fails and the connection is closed.
                Err(fatal("XX000", "the server failed while handling this message; the connection is closed".into()))
            }),
            () = overrun.cancelled() => {
                // The query's future (its stream, slot and memory) is dropped here.
                Err(handlers.queries.overrun_error())
            }
        };
        if let Err(e) = processed {
            let fatal = is_fatal(&e) || overrun.is_cancelled();
            if fatal {
                say_fatal(&mut socket, e).await;
                return Ok(());
            }
            process_error(&mut socket, e, extended).await?;
        }
        // A portal kept by a partial Execute can still hold a slot; its overrun is caught
        // on the next message or here.
        if overrun.is_cancelled() {
            let e = handlers.queries.overrun_error();
            say_fatal(&mut socket, e).await;
            return Ok(());
        }
    }
}
