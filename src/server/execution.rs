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
//! What stays with a front end is what its protocol decides: how errors are encoded,
//! Flight SQL's result cache, PostgreSQL's settings and cursors.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::audit::{QueryLog, QueryOutcome, QueryRecord};
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
/// # Errors
/// The deadline passed, the planner panicked, or planning refused the query.
pub async fn plan_within<T: Send + 'static>(admission: &Admission, planning: impl Future<Output = Result<T, QueryError>> + Send + 'static) -> Result<T, Refusal> {
    tokio::time::timeout_at(admission.deadline(), tokio::spawn(planning))
        .await
        .map_err(|_| Refusal::Limit(admission.timeout_error()))?
        .map_err(|e| Refusal::Planner(e.to_string()))?
        .map_err(Refusal::Query)
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
    protocol: &'static str,
    tenant: Option<String>,
    sql: String,
    cached: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl Audit {
    /// A statement starting now.
    pub fn start(log: &Arc<QueryLog>, user: &str, protocol: &'static str, tenant: Option<String>, sql: &str) -> Audit {
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
