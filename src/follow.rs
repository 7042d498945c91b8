//! Following `CURRENT`: every server notices the snapshots that other processes commit (a
//! cron `salespulse refresh`, a refresher of the fleet) and swaps to them as it swaps after
//! its own refresh: atomically, queries in flight finishing on the old snapshot, the KPI
//! tables read from where the writer stored them (`Catalog::follow_tenant`).
//!
//! The cost on the store is stated and bounded: one conditional read of `CURRENT` per tenant
//! per round (answered "not modified", without a body, while nothing changed). A round lasts
//! `storage.follow_seconds`, or longer when the tenants are more than
//! `storage.follow_requests_per_second` allows: at most that many reads per second per
//! process. The reads of a round are spread evenly over it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::snapshot::CurrentCheck;

/// How often `CURRENT` is read.
#[derive(Debug, Clone, Copy)]
pub struct FollowPolicy {
    /// One round over every tenant takes at least this long.
    pub every: Duration,
    /// At most this many reads per second.
    pub max_per_second: f64,
}

impl FollowPolicy {
    /// How long one round over `tenants` tenants takes.
    pub fn round(&self, tenants: usize) -> Duration {
        let by_budget = Duration::from_secs_f64(tenants as f64 / self.max_per_second.max(1e-3));
        self.every.max(by_budget)
    }
}

/// How long a snapshot that failed to load waits before it is tried again (when `CURRENT`
/// does not move meanwhile).
const RETRY_BROKEN: Duration = Duration::from_secs(15);

/// What the follower knows of one tenant.
#[derive(Debug, Default)]
struct Seen {
    /// The version of `CURRENT` last read.
    e_tag: Option<String>,
    /// A snapshot that `CURRENT` named but that did not load, and when to try it again.
    broken: Option<(String, Instant)>,
    /// The last read failed (logged once until a read succeeds).
    failing: bool,
}

/// Follows every tenant's `CURRENT` until `cancel`.
pub async fn follow_current(catalog: Arc<Catalog>, policy: FollowPolicy, cancel: CancellationToken) {
    let names = catalog.tenant_names();
    if names.is_empty() {
        return;
    }
    let gap = policy.round(names.len()) / u32::try_from(names.len()).unwrap_or(u32::MAX);
    tracing::info!(tenants = names.len(), round_seconds = policy.round(names.len()).as_secs_f64(), "following CURRENT of every tenant");
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        for name in &names {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(gap) => {}
            }
            let state = seen.entry(name.clone()).or_default();
            check_tenant(&catalog, name, state).await;
        }
    }
}

/// One conditional read of a tenant's `CURRENT`; a new id is loaded and swapped in.
async fn check_tenant(catalog: &Catalog, name: &str, seen: &mut Seen) {
    let retry_due = seen.broken.as_ref().is_some_and(|(_, at)| *at <= Instant::now());
    let known = if retry_due { None } else { seen.e_tag.as_deref() };
    let found = catalog.store().current_if_changed(name, known).await;
    let id = match found {
        Ok(CurrentCheck::Unchanged) => {
            seen.failing = false;
            return;
        }
        Ok(CurrentCheck::Changed { id, e_tag }) => {
            seen.failing = false;
            seen.e_tag = e_tag;
            id
        }
        Err(e) => {
            if !seen.failing {
                tracing::warn!(tenant = name, "reading CURRENT to follow other writers: {e}; the served snapshot stays");
            }
            seen.failing = true;
            return;
        }
    };
    let Some(id) = id else { return };
    let served = catalog.tenant(name).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
    if served.as_deref() == Some(id.as_str()) {
        seen.broken = None;
        return;
    }
    if seen.broken.as_ref().is_some_and(|(broken, at)| *broken == id && *at > Instant::now()) {
        return;
    }
    match catalog.follow_tenant(name).await {
        Ok(state) => {
            let now_served = state.manifest.as_ref().map(|m| m.snapshot_id.as_str());
            if now_served == Some(id.as_str()) {
                tracing::info!(tenant = name, snapshot = %id, "serving the snapshot another process committed");
                seen.broken = None;
            } else {
                tracing::warn!(tenant = name, snapshot = %id, problem = state.problem.as_deref().unwrap_or(""), "the snapshot CURRENT names did not load; trying again in 15 s");
                seen.broken = Some((id, Instant::now() + RETRY_BROKEN));
            }
        }
        Err(e) => tracing::warn!(tenant = name, "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_stretches_to_keep_within_the_request_budget() {
        let policy = FollowPolicy { every: Duration::from_secs(5), max_per_second: 20.0 };
        assert_eq!(policy.round(10), Duration::from_secs(5));
        assert_eq!(policy.round(100), Duration::from_secs(5));
        assert_eq!(policy.round(300), Duration::from_secs(15));
    }
}
