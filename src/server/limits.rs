//! What one query may take, the same for Flight SQL and PostgreSQL (`[limits]`):
//!
//! - **Slots.** At most `max_concurrent_queries` run at once, and at most
//!   `max_concurrent_queries_per_user` of one user. A query without a slot waits up to
//!   `queue_seconds` for one, then is refused with a message naming the limit. A slot is
//!   held until the last row is sent or the client goes away.
//! - **Time.** From its start a query has `query_timeout_seconds` to send its last row;
//!   then its execution is dropped (which stops the engine's tasks) and the client gets an
//!   error naming the limit.
//! - **Size.** A result of more than `max_result_rows` rows or `max_result_bytes` bytes
//!   stops with an error rather than a silently cut table.
//!
//! - **Clients that stop reading.** The deadline holds whether or not the result is read:
//!   an [`Admission`] still held a second past its deadline cancels the token given to
//!   [`Admission::watch`], and the front end then drops the query (its slot, memory and
//!   buffered batches) and ends the connection or stream with the timeout error.
//!
//! Memory per query is the catalog's (`query_memory`): each session has its own pool.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use std::future::Future;

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use salespulse_config::config::Limits;

/// A query refused or stopped by a limit. The message names the setting.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("the server is running its maximum of {max} queries at once (limits.max_concurrent_queries) and none finished within {waited_seconds} s; try again shortly")]
    Busy { max: usize, waited_seconds: u64 },
    #[error("user {user} is running their maximum of {max} queries at once (limits.max_concurrent_queries_per_user) and none finished within {waited_seconds} s; wait for one to finish")]
    UserBusy { user: String, max: usize, waited_seconds: u64 },
    #[error("the query ran longer than {seconds} s, the limit (limits.query_timeout_seconds), and was stopped; filter with WHERE or aggregate to make it cheaper")]
    Timeout { seconds: u64 },
    #[error("the result has more than {max} rows, the limit (limits.max_result_rows); add LIMIT, filter with WHERE, or aggregate")]
    TooManyRows { max: u64 },
    #[error("the result is larger than {max} bytes, the limit (limits.max_result_bytes); select fewer columns, add LIMIT, or aggregate")]
    TooManyBytes { max: u64 },
}

/// Slots and limits for every query of a server.
#[derive(Debug)]
pub struct QueryGate {
    limits: Limits,
    total: Arc<Semaphore>,
    per_user: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Woken whenever a slot is taken or given back, for [`QueryGate::until_running`].
    changed: Arc<tokio::sync::Notify>,
}

/// A query's slot: held while the query runs. Clones share the slot, the deadline and the
/// result caps (the statements of one PostgreSQL simple query count as one query); the slot
/// is given back when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Admission {
    slot: Arc<Slot>,
}

#[derive(Debug)]
struct Slot {
    /// Given back in `drop`, before the gate is told the slot is free.
    user: Option<OwnedSemaphorePermit>,
    total: Option<OwnedSemaphorePermit>,
    /// The gate's signal that the number of running queries changed.
    changed: Arc<tokio::sync::Notify>,
    deadline: tokio::time::Instant,
    max_rows: u64,
    max_bytes: u64,
    timeout_seconds: u64,
    /// Rows and bytes sent so far, over every stream of the admission.
    rows: AtomicU64,
    bytes: AtomicU64,
    /// Cancelled when the slot is given back.
    released: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.total.take());
        drop(self.user.take());
        self.released.cancel();
        self.changed.notify_waiters();
    }
}

/// How long past its deadline a query whose client stopped reading may hold its slot.
pub const OVERRUN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Admission {
    /// The instant the query must have sent its last row by.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.slot.deadline
    }

    /// The timeout error of this admission.
    pub fn timeout_error(&self) -> LimitError {
        LimitError::Timeout { seconds: self.slot.timeout_seconds }
    }

    /// Cancels `overrun` if the slot is still held [`OVERRUN_GRACE`] after the deadline: the
    /// result was not read to its end in time (a stalled client), so the front end must drop
    /// it. Nothing happens once the slot is given back.
    pub fn watch(&self, overrun: CancellationToken) {
        let released = self.slot.released.clone();
        let at = self.slot.deadline + OVERRUN_GRACE;
        tokio::spawn(async move {
            tokio::select! {
                () = released.cancelled() => {}
                () = tokio::time::sleep_until(at) => overrun.cancel(),
            }
        });
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        tokio::time::Instant::now() >= self.slot.deadline
    }
}

impl QueryGate {
    pub fn new(limits: Limits) -> QueryGate {
        QueryGate { total: Arc::new(Semaphore::new(limits.max_concurrent_queries.max(1))), per_user: Mutex::new(HashMap::new()), changed: Arc::new(tokio::sync::Notify::new()), limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waits for a slot for `user` (the user's own first, then the server's), up to
    /// `queue_seconds` in all.
    ///
    /// # Errors
    /// No slot freed in time.
    pub async fn admit(&self, user: &str) -> Result<Admission, LimitError> {
        let waited_seconds = self.limits.queue_wait.as_secs();
        let until = tokio::time::Instant::now() + self.limits.queue_wait;
        let mine = {
            let mut per_user = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(per_user.entry(user.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_concurrent_queries_per_user.max(1)))))
        };
        let user_permit = match tokio::time::timeout_at(until, mine.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(LimitError::UserBusy { user: user.to_string(), max: self.limits.max_concurrent_queries_per_user, waited_seconds }),
        };
        let total_permit = match tokio::time::timeout_at(until, Arc::clone(&self.total).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(LimitError::Busy { max: self.limits.max_concurrent_queries, waited_seconds }),
        };
        self.changed.notify_waiters();
        Ok(Admission {
            slot: Arc::new(Slot {
                user: Some(user_permit),
                total: Some(total_permit),
                changed: Arc::clone(&self.changed),
                deadline: tokio::time::Instant::now() + self.limits.query_timeout,
                max_rows: self.limits.max_result_rows,
                max_bytes: self.limits.max_result_bytes,
                timeout_seconds: self.limits.query_timeout.as_secs(),
                rows: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                released: CancellationToken::new(),
            }),
        })
    }

    /// Queries running now (for tests and metrics).
    pub fn running(&self) -> usize {
        self.limits.max_concurrent_queries.max(1) - self.total.available_permits()
    }

    /// Returns once the number of queries holding a slot satisfies `done` (at least two
    /// running, none left): a readiness signal for tests, instead of polling
    /// [`QueryGate::running`] with sleeps.
    pub async fn until_running(&self, done: impl Fn(usize) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a change between the two is not missed.
            changed.as_mut().enable();
            if done(self.running()) {
                return;
            }
            changed.await;
        }
    }
}

/// How a result stream ended, for the audit.
#[derive(Debug, Clone, Default)]
pub struct StreamEnd {
    pub rows: u64,
    /// `None` when every row went out; the error's message otherwise.
    pub error: Option<String>,
    /// The client stopped reading before the end.
    pub cancelled: bool,
}

/// A result stream under an [`Admission`]: stopped at the deadline or when a size limit is
/// passed, its slot given back when it ends or is dropped, and `on_end` told how it ended.
pub struct Limited<S, T, E> {
    inner: Pin<Box<S>>,
    admission: Option<Admission>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    rows: u64,
    bytes: u64,
    measure: fn(&T) -> (u64, u64),
    to_error: fn(LimitError) -> E,
    describe: fn(&E) -> String,
    on_end: Option<Box<dyn FnOnce(StreamEnd) + Send>>,
    error: Option<String>,
}

impl<S, T, E> std::fmt::Debug for Limited<S, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limited").field("rows", &self.rows).field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl<S, T, E> Limited<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    /// `measure` gives an item's rows and bytes; `to_error` turns a limit into the stream's
    /// error type; `describe` gives an error's message for the audit.
    pub fn new(
        inner: S,
        admission: Admission,
        measure: fn(&T) -> (u64, u64),
        to_error: fn(LimitError) -> E,
        describe: fn(&E) -> String,
        on_end: impl FnOnce(StreamEnd) + Send + 'static,
    ) -> Self {
        let sleep = Box::pin(tokio::time::sleep_until(admission.slot.deadline));
        Limited { inner: Box::pin(inner), admission: Some(admission), sleep, rows: 0, bytes: 0, measure, to_error, describe, on_end: Some(Box::new(on_end)), error: None }
    }
}

impl<S, T, E> Limited<S, T, E> {
    fn end(&mut self, cancelled: bool) {
        self.admission = None;
        if let Some(on_end) = self.on_end.take() {
            on_end(StreamEnd { rows: self.rows, error: self.error.take(), cancelled });
        }
    }

    fn fail(&mut self, limit: LimitError) -> Poll<Option<Result<T, E>>> {
        self.error = Some(limit.to_string());
        let error = (self.to_error)(limit);
        self.end(false);
        Poll::Ready(Some(Err(error)))
    }
}

impl<S, T, E> Stream for Limited<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the inner stream and the timer are boxed).
        let this = Pin::into_inner(self);
        let Some(admission) = &this.admission else { return Poll::Ready(None) };
        let slot = Arc::clone(&admission.slot);
        let (max_rows, max_bytes, timeout_seconds) = (slot.max_rows, slot.max_bytes, slot.timeout_seconds);
        if this.sleep.as_mut().poll(cx).is_ready() {
            return this.fail(LimitError::Timeout { seconds: timeout_seconds });
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.end(false);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(item))) => {
                let (rows, bytes) = (this.measure)(&item);
                this.rows += rows;
                this.bytes += bytes;
                let total_rows = slot.rows.fetch_add(rows, Ordering::Relaxed) + rows;
                let total_bytes = slot.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                if total_rows > max_rows {
                    return this.fail(LimitError::TooManyRows { max: max_rows });
                }
                if total_bytes > max_bytes {
                    return this.fail(LimitError::TooManyBytes { max: max_bytes });
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.error = Some((this.describe)(&e));
                this.end(false);
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl<S, T, E> Drop for Limited<S, T, E> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        if self.on_end.is_some() {
            self.end(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    fn limits(concurrent: usize, per_user: usize, queue_ms: u64) -> Limits {
        Limits {
            max_concurrent_queries: concurrent,
            max_concurrent_queries_per_user: per_user,
            queue_wait: Duration::from_millis(queue_ms),
            query_timeout: Duration::from_secs(5),
            max_result_rows: 10,
            max_result_bytes: 1000,
            ..Limits::default()
        }
    }

    type Item = Result<u64, String>;

    fn limited(items: Vec<Item>, admission: Admission, ended: Arc<Mutex<Option<StreamEnd>>>) -> Limited<futures::stream::Iter<std::vec::IntoIter<Item>>, u64, String> {
        Limited::new(futures::stream::iter(items), admission, |n| (*n, *n * 10), |e| e.to_string(), Clone::clone, move |end| {
            *ended.lock().unwrap() = Some(end);
        })
    }

    #[tokio::test(start_paused = true)]
    async fn slots_per_user_and_in_total_queue_then_refuse() {
        let gate = QueryGate::new(limits(2, 1, 1000));
        let anna = gate.admit("anna").await.unwrap();
        let err = gate.admit("anna").await.unwrap_err();
        assert!(matches!(err, LimitError::UserBusy { max: 1, .. }), "{err}");
        assert!(err.to_string().contains("limits.max_concurrent_queries_per_user"));
        let _boris = gate.admit("boris").await.unwrap();
        let err = gate.admit("vera").await.unwrap_err();
        assert_eq!(err, LimitError::Busy { max: 2, waited_seconds: 1 });
        assert_eq!(gate.running(), 2);
        // A queued query gets the slot freed while it waits.
        let waiting = tokio::spawn({
            let gate = Arc::new(QueryGate::new(limits(1, 1, 1000)));
            let first = gate.admit("anna").await.unwrap();
            let gate2 = Arc::clone(&gate);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                drop(first);
            });
            async move { gate2.admit("anna").await.map(|_| ()) }
        });
        assert_eq!(waiting.await.unwrap(), Ok(()));
        drop(anna);
        assert_eq!(gate.running(), 1);
    }

    #[tokio::test]
    async fn a_result_over_the_row_limit_stops_with_an_error_and_frees_the_slot() {
        let gate = QueryGate::new(limits(1, 1, 10));
        let ended = Arc::new(Mutex::new(None));
        let items: Vec<Item> = vec![Ok(4), Ok(4), Ok(4), Ok(1)];
        let out: Vec<Item> = limited(items, gate.admit("anna").await.unwrap(), Arc::clone(&ended)).collect().await;
        assert_eq!(out.len(), 3);
        assert!(out[2].as_ref().unwrap_err().contains("more than 10 rows"), "{out:?}");
        assert_eq!(gate.running(), 0);
        let end = ended.lock().unwrap().clone().unwrap();
        assert_eq!(end.rows, 12);
        assert!(end.error.unwrap().contains("limits.max_result_rows"));
    }

    #[tokio::test]
    async fn bytes_errors_and_early_drops_are_reported() {
        let gate = QueryGate::new(Limits { max_result_bytes: 50, ..limits(4, 4, 10) });
        let ended = Arc::new(Mutex::new(None));
        // 10 rows (the row limit) of 100 bytes in all pass the byte limit (50).
        let out: Vec<Item> = limited(vec![Ok(1), Ok(9)], gate.admit("a").await.unwrap(), Arc::clone(&ended)).collect().await;
        assert!(out[1].as_ref().unwrap_err().contains("limits.max_result_bytes"), "{out:?}");
        // An engine error passes through as it is and is the audit's error.
        let out: Vec<Item> = limited(vec![Ok(1), Err("division by zero".into())], gate.admit("a").await.unwrap(), Arc::clone(&ended)).collect().await;
        assert_eq!(out[1], Err("division by zero".into()));
        assert_eq!(ended.lock().unwrap().clone().unwrap().error.as_deref(), Some("division by zero"));
        // Dropped after one item: cancelled, slot back.
        let mut stream = limited(vec![Ok(1), Ok(1)], gate.admit("a").await.unwrap(), Arc::clone(&ended));
        assert_eq!(stream.next().await, Some(Ok(1)));
        drop(stream);
        let end = ended.lock().unwrap().clone().unwrap();
        assert!(end.cancelled && end.error.is_none() && end.rows == 1);
        assert_eq!(gate.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_past_its_deadline_is_stopped() {
        let gate = QueryGate::new(limits(1, 1, 10));
        let ended = Arc::new(Mutex::new(None));
        let slow = futures::stream::once(async { Ok::<u64, String>(1) }).chain(futures::stream::pending());
        let ended2 = Arc::clone(&ended);
        let limited = Limited::new(slow, gate.admit("a").await.unwrap(), |n| (*n, 0), |e| e.to_string(), Clone::clone, move |end| {
            *ended2.lock().unwrap() = Some(end);
        });
        let out: Vec<Item> = limited.collect().await;
        assert_eq!(out.len(), 2);
        assert!(out[1].as_ref().unwrap_err().contains("longer than 5 s"), "{out:?}");
        assert_eq!(gate.running(), 0);
    }
}
