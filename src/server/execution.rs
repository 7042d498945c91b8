//! The one path a query takes once a front end has read the request, the same on Flight SQL
//! and PostgreSQL (statements, prepared executions, cursors):
//!
//! 1. **Admission**: a slot for the user ([`QueryGate::admit`]), watched so that a query
//!    still holding it a second past its deadline is dropped whether or not anyone reads
//!    its rows ([`Admission::watch`]).
//! 2. **Planning** under the slot's deadline, in a task of its own so a panic in the
//!    planner is an error for this query ([`plan_within`]). The planning the front end
//!    passes in checks the text first ([`crate::catalog::TextLimits`]) and the planned tree
//!    last ([`crate::catalog::check_read_only`], `EXPLAIN` included).
//! 3. **Rows** under the deadline and the result caps, the slot given back at their end
//!    ([`limited`]).
//! 4. **Audit**: one record per statement in the log and `system.queries` ([`Audit`]).
//!
//! What stays with a front end is what its protocol decides: how errors are encoded, what
//! its result cache keys hold, PostgreSQL's settings and cursors.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::history::queries::{Protocol, QueryLog, QueryOutcome, QueryRecord};
use crate::catalog::QueryError;
use crate::server::limits::{Admission, LimitError, Limited, QueryGate, StreamEnd};

/// Why a query did not get to run.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("the query planner failed: {0}")]
    Planner(String),
}

/// A slot for `user`, watched: `overrun` is cancelled if the slot outlives its deadline.
///
/// # Errors
/// No slot freed in time.
pub async fn admit(gate: &QueryGate, user: &str, overrun: &CancellationToken) -> Result<Admission, LimitError> {
    let admission = gate.admit(user).await?;
    admission.watch(overrun.clone());
    Ok(admission)
}

/// Runs `planning` under `admission`'s deadline in a task of its own.
///
/// Planning cannot be interrupted, so the task holds the slot until it really ends: a query
/// whose planning outlives its deadline is answered with the timeout at once, but its work
/// still counts against the user's and the server's slots (and past the grace the
/// connection is closed), so abandoned planning cannot pile up beyond the limits.
///
/// # Errors
/// The deadline passed, the planner panicked, or planning refused the query.
pub async fn plan_within<T: Send + 'static>(admission: &Admission, planning: impl Future<Output = Result<T, QueryError>> + Send + 'static) -> Result<T, Refusal> {
    let held = admission.clone();
    let task = tokio::spawn(async move {
        let planned = planning.await;
        drop(held);
        planned
    });
    tokio::time::timeout_at(admission.deadline(), task)
        .await
        .map_err(|_| Refusal::Limit(admission.timeout_error()))?
        .map_err(|e| Refusal::Planner(e.to_string()))?
        .map_err(Refusal::Query)
}

/// The bytes of a result batch for `limits.max_result_bytes` and the result cache. The
/// engine's `Utf8View` columns point into whole Parquet page buffers, which
/// `get_array_memory_size` counts in full for every batch; here a view column counts its
/// views and the bytes of its out-of-line strings.
pub fn result_bytes(batch: &arrow::array::RecordBatch) -> usize {
    use arrow::array::{Array, AsArray};
    batch
        .columns()
        .iter()
        .map(|column| match column.as_string_view_opt() {
            Some(views) => {
                let long: usize = views.views().iter().map(|view| *view as u32 as usize).filter(|len| *len > 12).sum();
                views.views().inner().len() + long + views.nulls().map_or(0, |n| n.buffer().len())
            }
            None => column.get_array_memory_size(),
        })
        .sum()
}

/// `rows` under `admission`'s deadline and result caps; `measure` gives an item's rows and
/// bytes. The slot is given back and `audit` recorded when the stream ends or is dropped.
pub fn limited<S, T, E>(rows: S, admission: Admission, measure: fn(&T) -> (u64, u64), to_error: fn(LimitError) -> E, describe: fn(&E) -> String, audit: Audit) -> Limited<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    Limited::new(rows, admission, measure, to_error, describe, move |end| audit.record(end))
}

/// One statement's audit record, from its start.
#[derive(Debug, Clone)]
pub struct Audit {
    log: Arc<QueryLog>,
    user: String,
    protocol: Protocol,
    tenant: Option<String>,
    sql: String,
    cached: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl Audit {
    /// A statement starting now.
    pub fn start(log: &Arc<QueryLog>, user: &str, protocol: Protocol, tenant: Option<String>, sql: &str) -> Audit {
        Audit {
            log: Arc::clone(log),
            user: user.to_string(),
            protocol,
            tenant,
            sql: sql.to_string(),
            cached: false,
            started_at: chrono::Utc::now(),
            started: std::time::Instant::now(),
        }
    }

    /// The same statement, answered from the result cache.
    #[must_use]
    pub fn cached(mut self) -> Audit {
        self.cached = true;
        self
    }

    /// When the statement started, for the metrics.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    /// Records how the statement ended.
    pub fn record(&self, end: StreamEnd) {
        let outcome = match (&end.error, end.cancelled) {
            (Some(_), _) => QueryOutcome::Failed,
            (None, true) => QueryOutcome::Cancelled,
            (None, false) => QueryOutcome::Ok,
        };
        self.log.record(QueryRecord {
            started_at: self.started_at,
            user: self.user.clone(),
            protocol: self.protocol,
            tenant: self.tenant.clone(),
            sql: self.sql.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            rows: end.rows,
            outcome,
            error: end.error,
            cached: self.cached,
        });
    }

    /// A statement that ended without rows (a setting, a refusal answered as a result).
    pub fn finished(&self, rows: u64) {
        self.record(StreamEnd { rows, error: None, cancelled: false });
    }

    /// A statement that failed with `message`.
    pub fn failed(&self, message: &str) {
        self.record(StreamEnd { rows: 0, error: Some(message.to_string()), cancelled: false });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use salespulse_config::config::Limits;
    use crate::server::limits::QueryGate;

    #[tokio::test(start_paused = true)]
    async fn planning_past_its_deadline_keeps_its_slot_until_it_ends() {
        let gate = QueryGate::new(Limits {
            max_concurrent_queries: 4,
            max_concurrent_queries_per_user: 1,
            queue_wait: Duration::from_secs(1),
            query_timeout: Duration::from_secs(3),
            ..Limits::default()
        });
        let overrun = CancellationToken::new();
        let admission = admit(&gate, "anna", &overrun).await.unwrap();
        // A planning that takes 60 s (a query built to plan slowly).
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), QueryError>(())
        };
        let refused = plan_within(&admission, slow).await.unwrap_err();
        assert!(matches!(refused, Refusal::Limit(LimitError::Timeout { .. })), "{refused}");
        drop(admission);
        // The planning still runs: anna's one slot is still taken, so her next query waits
        // and is refused; the planning's end frees it.
        assert!(matches!(gate.admit("anna").await, Err(LimitError::UserBusy { .. })));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(gate.admit("anna").await.is_ok());
    }
}
