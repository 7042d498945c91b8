//! The scheduler on a clock the test moves (no sleeps): schedules fire in the tenant's zone,
//! a refresh asked for while one runs is skipped, failures are retried with backoff, a tenant
//! without a snapshot is refreshed at start, and a failed refresh keeps the old snapshot
//! serving and shows in `system.refreshes`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use salespulse::catalog::Catalog;
use salespulse_config::config::SourceConfig;
use salespulse_config::schedule::Schedule;
use salespulse::connectors::ConnectorError;
use salespulse::refresh::{RefreshError, RefreshFn, serving_refresh};
use salespulse::history::RefreshLog;
use salespulse::history::refreshes::{Outcome, RefreshSummary, Trigger};
use salespulse::scheduler::{Clock, Refresher, SchedulePolicy, TenantSchedule, run_schedules};
use salespulse::snapshot::Store;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A clock that moves only when the test says.
struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    fn at(t: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: watch::Sender::new(t) })
    }

    fn advance(&self, d: Duration) {
        self.now.send_modify(|t| *t += d);
    }

    /// Waits until `n` tasks sleep on this clock (the scheduler is waiting for its time).
    async fn sleepers(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.now.receiver_count() < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the scheduler went to sleep");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            while *rx.borrow_and_update() < at {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// A refresh that reports each call and answers from a script (ok by default); with `gate`
/// each call waits to be released.
struct Script {
    results: Mutex<VecDeque<Result<(), RefreshError>>>,
    calls: mpsc::UnboundedSender<String>,
    gate: Option<Arc<Notify>>,
}

/// A failed refresh as the scheduler sees one (the connector's error names the cause).
fn failed(why: &str) -> RefreshError {
    RefreshError::Connector { tenant: "acme".into(), source: ConnectorError::MissingFolder { path: why.into() } }
}

fn scripted(results: Vec<Result<(), RefreshError>>, gate: Option<Arc<Notify>>) -> (RefreshFn, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let script = Arc::new(Script { results: Mutex::new(results.into()), calls: tx, gate });
    let run: RefreshFn = Arc::new(move |tenant: String| {
        let script = Arc::clone(&script);
        Box::pin(async move {
            let _ = script.calls.send(tenant);
            if let Some(gate) = &script.gate {
                gate.notified().await;
            }
            let next = script.results.lock().unwrap().pop_front().unwrap_or(Ok(()));
            next.map(|()| RefreshSummary { snapshot_id: "s".into(), rows: 1, ..RefreshSummary::default() })
        })
    });
    (run, rx)
}

async fn called(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a refresh ran").unwrap()
}

fn no_jitter() -> SchedulePolicy {
    SchedulePolicy { attempts: 3, first_retry: Duration::from_secs(60), jitter: Duration::ZERO }
}

#[tokio::test]
async fn schedules_fire_at_their_local_time_and_failures_retry_with_backoff() {
    // 05:30 in Moscow; the schedule is 06:00 local every day.
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 3, 2, 2, 30, 0).unwrap());
    let (run, mut calls) = scripted(vec![Err(failed("/crm-down")), Err(failed("/crm-down")), Ok(())], None);
    let log = Arc::new(RefreshLog::default());
    let refresher = Arc::new(Refresher::new(run, clock.clone(), Arc::clone(&log)));
    let cancel = CancellationToken::new();
    let schedule = Schedule::parse("0 6 * * *", chrono_tz::Europe::Moscow).unwrap();
    let tenants = vec![TenantSchedule { tenant: "acme".into(), schedule: Some(schedule), refresh_now: false }];
    let task = tokio::spawn(run_schedules(tenants, Arc::clone(&refresher), clock.clone(), no_jitter(), cancel.clone()));

    clock.sleepers(1).await;
    clock.advance(Duration::from_secs(29 * 60));
    assert!(tokio::time::timeout(Duration::from_millis(200), calls.recv()).await.is_err(), "05:59 is too early");
    clock.advance(Duration::from_secs(60));
    assert_eq!(called(&mut calls).await, "acme");
    // Failed: a retry after 60 s, then after 4 × 60 s.
    clock.sleepers(1).await;
    clock.advance(Duration::from_secs(59));
    assert!(tokio::time::timeout(Duration::from_millis(200), calls.recv()).await.is_err(), "not before the backoff");
    clock.advance(Duration::from_secs(1));
    called(&mut calls).await;
    clock.sleepers(1).await;
    clock.advance(Duration::from_secs(240));
    called(&mut calls).await;
    // Then the next day's 06:00.
    clock.sleepers(1).await;
    clock.advance(Duration::from_secs(24 * 3600));
    called(&mut calls).await;

    clock.sleepers(1).await;
    let records = log.records(Some("acme"));
    let seen: Vec<(Outcome, Trigger)> = records.iter().map(|r| (r.outcome, r.trigger)).collect();
    assert_eq!(seen, [(Outcome::Failed, Trigger::Schedule), (Outcome::Failed, Trigger::Retry), (Outcome::Ok, Trigger::Retry), (Outcome::Ok, Trigger::Schedule)]);
    assert_eq!(records[0].error.as_deref(), Some(failed("/crm-down").to_string().as_str()));
    assert_eq!(records[0].started_at, Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0).unwrap(), "06:00 Moscow");
    let totals = &log.totals()["acme"];
    assert_eq!((totals.outcomes["ok"], totals.outcomes["failed"]), (2, 2));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refresh_asked_for_while_one_runs_is_skipped() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap());
    let gate = Arc::new(Notify::new());
    let (run, mut calls) = scripted(vec![], Some(Arc::clone(&gate)));
    let refresher = Arc::new(Refresher::new(run, clock.clone(), Arc::new(RefreshLog::default())));
    let first = tokio::spawn({
        let refresher = Arc::clone(&refresher);
        async move { refresher.refresh("acme", Trigger::Schedule).await }
    });
    called(&mut calls).await;
    assert!(refresher.is_running("acme"));
    let second = refresher.refresh("acme", Trigger::Http).await;
    assert_eq!(second.outcome, Outcome::Skipped);
    // Another tenant is not held up.
    let other = tokio::spawn({
        let refresher = Arc::clone(&refresher);
        async move { refresher.refresh("beta", Trigger::Http).await }
    });
    called(&mut calls).await;
    gate.notify_waiters();
    assert_eq!(first.await.unwrap().outcome, Outcome::Ok);
    assert_eq!(other.await.unwrap().outcome, Outcome::Ok);
    assert!(!refresher.is_running("acme"));
    let outcomes: Vec<Outcome> = refresher.log().records(Some("acme")).iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Skipped, Outcome::Ok]);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_old_snapshot_and_shows_in_system_refreshes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    crate::common::write_demo(&store, "acme").await;
    let catalog = Arc::new(Catalog::new(store.clone(), vec![crate::common::info("acme")]));
    let served = catalog.load_tenant("acme").await.unwrap().manifest.clone().unwrap();

    // The tenant's source now points at an export folder that is not there.
    let mut tenant = crate::common::tenant("acme");
    tenant.source = SourceConfig::Files { path: root.path().join("no-such-exports"), exported_at: None };
    let clock = ManualClock::at(Utc::now());
    let refresher = Arc::new(Refresher::new(serving_refresh(store, Arc::clone(&catalog), vec![tenant], salespulse::refresh::RefreshOptions::alone(3)), clock.clone(), Arc::clone(&catalog.logs().refreshes)));
    let cancel = CancellationToken::new();
    // No snapshot is missing, but refresh_now stands for a start-up refresh here.
    let tenants = vec![TenantSchedule { tenant: "acme".into(), schedule: None, refresh_now: true }];
    let policy = SchedulePolicy { attempts: 1, ..no_jitter() };
    tokio::time::timeout(Duration::from_secs(60), run_schedules(tenants, refresher, clock.clone(), policy, cancel)).await.unwrap();

    assert_eq!(catalog.tenant("acme").unwrap().manifest.as_ref().unwrap().snapshot_id, served.snapshot_id, "the old snapshot serves");
    let ctx = catalog.session(Some("acme"));
    let batches = ctx.sql("SELECT outcome, triggered_by, error, rows FROM system.refreshes").await.unwrap().collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    assert!(text.contains("| failed  | start        |") && text.contains("no-such-exports"), "{text}");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}
