//! Bounds on the connections of the Flight SQL and HTTP ports (the PostgreSQL port has its
//! own loop, [`crate::server::postgres`]): tonic and axum accept as many connections as
//! the process has file descriptors, and keep idle ones open forever.
//!
//! - [`ConnectionCap`]: at most `limits.max_connections_per_port` open connections per port.
//!   A connection past it is still answered, so the client learns why (Flight SQL
//!   `RESOURCE_EXHAUSTED`, HTTP 503), then closed; at most [`OVER_CAP`] of those are kept at
//!   once, and further ones are closed unanswered.
//! - [`Guarded`]: a connection with no byte read or written for its idle time is closed
//!   (`limits.idle_timeout_seconds`; a refused one gets two seconds).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refused connections kept open at once to be told why.
pub const OVER_CAP: usize = 16;

/// How long a refused connection is kept to be told why.
const REFUSED_IDLE: Duration = Duration::from_secs(2);

/// Open connections of one port.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    open: Arc<Semaphore>,
    refused: Arc<Semaphore>,
    idle: Duration,
    max: usize,
}

/// What a new connection may do.
#[derive(Debug)]
pub enum Admitted {
    /// Served; the permit is held while it is open.
    Served(OwnedSemaphorePermit),
    /// Over the cap: answered with a refusal, then closed.
    Refused(OwnedSemaphorePermit),
    /// Over the cap with too many refusals pending: closed at once.
    Dropped,
}

impl ConnectionCap {
    pub fn new(max: usize, idle: Duration) -> ConnectionCap {
        ConnectionCap { open: Arc::new(Semaphore::new(max.max(1))), refused: Arc::new(Semaphore::new(OVER_CAP)), idle, max }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max.max(1) - self.open.available_permits()
    }

    pub fn admit(&self) -> Admitted {
        if let Ok(permit) = Arc::clone(&self.open).try_acquire_owned() {
            return Admitted::Served(permit);
        }
        match Arc::clone(&self.refused).try_acquire_owned() {
            Ok(permit) => Admitted::Refused(permit),
            Err(_) => Admitted::Dropped,
        }
    }

    /// `io` under the cap's idle timeout, holding `admitted`'s permit while it is open;
    /// `None` when the connection is to be dropped at once.
    pub fn guard<IO>(&self, io: IO, admitted: Admitted) -> Option<Guarded<IO>> {
        let (permit, refused, idle) = match admitted {
            Admitted::Served(p) => (p, false, self.idle),
            Admitted::Refused(p) => (p, true, REFUSED_IDLE),
            Admitted::Dropped => return None,
        };
        Some(Guarded { inner: io, _permit: permit, refused, idle, timer: Box::pin(tokio::time::sleep(idle)) })
    }
}

/// A connection under its port's cap and idle timeout.
#[derive(Debug)]
pub struct Guarded<IO> {
    inner: IO,
    _permit: OwnedSemaphorePermit,
    /// Over the cap: every request is answered with a refusal.
    refused: bool,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<IO> Guarded<IO> {
    /// Whether this connection is over the cap (its requests are to be refused).
    pub fn refused(&self) -> bool {
        self.refused
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    fn active(&mut self) {
        self.timer.as_mut().reset(tokio::time::Instant::now() + self.idle);
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// A write's outcome: bytes written count as activity; a write that waits past the
    /// idle time fails.
    fn written(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the connection was idle too long (limits.idle_timeout_seconds)")
}

use std::future::Future as _;

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.timed_out(cx) {
                    return Poll::Ready(Err(idle_error()));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.written(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What the Flight SQL service learns of a connection: its address and whether it is over
/// the cap.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: Option<std::net::SocketAddr>,
    pub refused: bool,
}

impl tonic::transport::server::Connected for Guarded<tokio::net::TcpStream> {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        PeerInfo { remote_addr: self.inner.peer_addr().ok(), refused: self.refused }
    }
}

/// The connection facts of a Flight SQL request, over TLS or not.
pub fn peer_info<T>(request: &tonic::Request<T>) -> Option<PeerInfo> {
    request
        .extensions()
        .get::<PeerInfo>()
        .cloned()
        .or_else(|| request.extensions().get::<tonic::transport::server::TlsConnectInfo<PeerInfo>>().map(|tls| tls.get_ref().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
        let cap = ConnectionCap::new(1, Duration::from_secs(30));
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = cap.guard(server, cap.admit()).expect("admitted");
        assert!(!guarded.refused());
        assert!(matches!(cap.admit(), Admitted::Refused(_)), "over the cap of one");
        let mut client = client;
        // Activity keeps it open past the idle time.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            guarded.read_exact(&mut byte).await.unwrap();
        }
        // Then 30 s of silence closes it.
        let mut byte = [0u8; 1];
        let e = guarded.read(&mut byte).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        drop(guarded);
        assert_eq!(cap.open(), 0);
    }

    #[test]
    fn refusals_are_bounded_too() {
        let cap = ConnectionCap::new(1, Duration::from_secs(1));
        let _served = cap.admit();
        let refused: Vec<Admitted> = (0..OVER_CAP).map(|_| cap.admit()).collect();
        assert!(refused.iter().all(|a| matches!(a, Admitted::Refused(_))));
        assert!(matches!(cap.admit(), Admitted::Dropped));
    }
}
