//! Scheduled and on-demand refresh while serving.
//!
//! - [`Refresher`]: runs one tenant's refresh at a time (single-flight: a refresh asked for
//!   while one runs, here or under another process's lease, is recorded as `skipped`), and
//!   writes every attempt to the
//!   [`RefreshLog`] that `system.refreshes`, `/health` and `/metrics` read.
//! - [`run_schedules`]: one loop per tenant. It refreshes at start when the tenant has no
//!   snapshot, then at each scheduled time plus a random jitter. A failed refresh is retried
//!   with backoff, and the previous snapshot keeps serving meanwhile.
//!
//! Time comes from a [`Clock`], so tests drive the loops without sleeping.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use salespulse_config::schedule::Schedule;

use crate::history::RefreshLog;
use crate::refresh::RefreshFn;
use crate::history::refreshes::{Outcome, RefreshRecord, Trigger};


/// Where the loops get the time and wait.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}


/// Runs refreshes one per tenant at a time and logs every attempt.
pub struct Refresher {
    run: RefreshFn,
    clock: Arc<dyn Clock>,
    running: Mutex<HashSet<String>>,
    log: Arc<RefreshLog>,
    /// This process's name, on every record.
    replica: String,
    /// Where every attempt is also stored for `system.refreshes` (the fleet's history).
    shared: Option<crate::snapshot::Store>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}

impl Refresher {
    pub fn new(run: RefreshFn, clock: Arc<dyn Clock>, log: Arc<RefreshLog>) -> Refresher {
        Refresher { run, clock, running: Mutex::new(HashSet::new()), log, replica: "local".into(), shared: None }
    }

    /// Also stores every attempt in `store` under the name `replica`, where
    /// `system.refreshes` of every process reads it.
    #[must_use]
    pub fn with_shared_history(mut self, store: crate::snapshot::Store, replica: &str) -> Refresher {
        self.shared = Some(store);
        self.replica = replica.to_string();
        self
    }

    /// Refreshes `tenant` now, unless a refresh of it is already running (then the attempt
    /// is logged as skipped). Returns the logged record.
    pub async fn refresh(&self, tenant: &str, trigger: Trigger) -> RefreshRecord {
        let started_at = self.clock.now();
        let admitted = self.running.lock().map(|mut r| r.insert(tenant.to_string())).unwrap_or(false);
        let (outcome, error, summary) = if admitted {
            // Released however the refresh ends (a cancelled future included).
            let _guard = Running { refresher: self, tenant };
            match (self.run)(tenant.to_string()).await {
                Ok(summary) => (Outcome::Ok, None, Some(summary)),
                // Another process of the fleet refreshes the tenant now: not a failure.
                Err(e) if e.is_held_elsewhere() => (Outcome::Skipped, Some(e.to_string()), None),
                // Shown in /health and system.refreshes: no webhook secret or token.
                Err(e) => (Outcome::Failed, Some(salespulse_config::redact::redact_secrets(&e.to_string())), None),
            }
        } else {
            (Outcome::Skipped, Some("a refresh of this tenant was already running".to_string()), None)
        };
        let record = RefreshRecord { tenant: tenant.to_string(), started_at, finished_at: self.clock.now(), outcome, error, summary, trigger, replica: self.replica.clone() };
        match outcome {
            Outcome::Ok => tracing::info!(tenant, trigger = trigger.as_str(), "refresh done"),
            Outcome::Failed => tracing::warn!(tenant, trigger = trigger.as_str(), error = record.error.as_deref().unwrap_or(""), "refresh failed; the previous snapshot keeps serving"),
            Outcome::Skipped => tracing::info!(tenant, trigger = trigger.as_str(), "refresh skipped: one is already running"),
        }
        self.log.push(record.clone());
        if let Some(store) = &self.shared {
            store_attempt(store, &record).await;
        }
        record
    }

    pub fn log(&self) -> &Arc<RefreshLog> {
        &self.log
    }

    /// Whether a refresh of `tenant` is running.
    pub fn is_running(&self, tenant: &str) -> bool {
        self.running.lock().map(|r| r.contains(tenant)).unwrap_or(false)
    }
}

/// Stores an attempt for `system.refreshes`; a failure is logged (the attempt stays in this
/// process's log).
pub async fn store_attempt(store: &crate::snapshot::Store, record: &RefreshRecord) {
    let kept = crate::history::refreshes::STORED_PER_TENANT;
    if let Err(e) = store.append_refresh(&record.tenant, record.finished_at, &record.replica, record.to_json(), kept).await {
        tracing::warn!(tenant = %record.tenant, "storing the refresh attempt for system.refreshes: {e}");
    }
}

struct Running<'a> {
    refresher: &'a Refresher,
    tenant: &'a str,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.refresher.running.lock() {
            r.remove(self.tenant);
        }
    }
}

/// One tenant's scheduling.
#[derive(Debug, Clone)]
pub struct TenantSchedule {
    pub tenant: String,
    pub schedule: Option<Schedule>,
    /// Refresh as soon as the loop starts (the tenant has no snapshot yet).
    pub refresh_now: bool,
}

/// Retries and jitter of scheduled refreshes.
#[derive(Debug, Clone, Copy)]
pub struct SchedulePolicy {
    /// Attempts per scheduled time, the first included.
    pub attempts: u32,
    /// The wait before the first retry; each next one is 4 times longer.
    pub first_retry: Duration,
    /// A random delay of up to this much after each scheduled time, so tenants on the same
    /// schedule do not all start at once.
    pub jitter: Duration,
}

impl Default for SchedulePolicy {
    fn default() -> Self {
        SchedulePolicy { attempts: 3, first_retry: Duration::from_secs(60), jitter: Duration::from_secs(30) }
    }
}

fn random_below(limit: Duration) -> Duration {
    if limit.is_zero() {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    let r = getrandom::fill(&mut bytes).map(|()| u64::from_le_bytes(bytes)).unwrap_or(0);
    Duration::from_millis(r % (limit.as_millis().max(1) as u64))
}

/// Runs every tenant's loop until `cancel`.
pub async fn run_schedules(tenants: Vec<TenantSchedule>, refresher: Arc<Refresher>, clock: Arc<dyn Clock>, policy: SchedulePolicy, cancel: CancellationToken) {
    let loops = tenants.into_iter().map(|t| tenant_loop(t, Arc::clone(&refresher), Arc::clone(&clock), policy, cancel.clone()));
    futures::future::join_all(loops).await;
}

async fn tenant_loop(t: TenantSchedule, refresher: Arc<Refresher>, clock: Arc<dyn Clock>, policy: SchedulePolicy, cancel: CancellationToken) {
    if t.refresh_now {
        attempt(&t.tenant, Trigger::Start, &refresher, clock.as_ref(), policy, &cancel).await;
    }
    let Some(schedule) = &t.schedule else { return };
    loop {
        let Some(next) = schedule.next_after(clock.now()) else {
            tracing::warn!(tenant = %t.tenant, "the schedule has no next time; scheduled refreshes stop");
            return;
        };
        let at = next + random_below(policy.jitter);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = clock.sleep_until(at) => {}
        }
        attempt(&t.tenant, Trigger::Schedule, &refresher, clock.as_ref(), policy, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// A refresh, retried with backoff while it fails.
async fn attempt(tenant: &str, trigger: Trigger, refresher: &Refresher, clock: &dyn Clock, policy: SchedulePolicy, cancel: &CancellationToken) {
    let mut wait = policy.first_retry;
    for n in 0..policy.attempts.max(1) {
        let record = tokio::select! {
            () = cancel.cancelled() => return,
            r = refresher.refresh(tenant, if n == 0 { trigger } else { Trigger::Retry }) => r,
        };
        if record.outcome != Outcome::Failed || n + 1 >= policy.attempts {
            return;
        }
        let at = clock.now() + wait;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = clock.sleep_until(at) => {}
        }
        wait *= 4;
    }
}
