//! Failed logins per client address over the last minute: an address that guessed too often
//! is refused without a password check until its oldest failure is a minute old.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed password checks per client address over the last minute. An address with
/// `per_minute` of them is refused without a check until the oldest is a minute old, so a
/// password cannot be guessed at argon2's speed. (governor, the rate limiter the CRM
/// clients use, has no way to look at a key without spending from it; a login that
/// succeeds must not count.)
#[derive(Debug)]
pub(super) struct FailedLogins {
    pub(super) per_minute: u32,
    pub(super) recent: std::sync::Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl FailedLogins {
    /// Counts an attempt from `peer` as failed before it is checked, in one step with the
    /// limit check, so concurrent attempts cannot all pass the limit; `Err` with the wait
    /// when the address is over it. A check that succeeds gives its attempt back
    /// ([`FailedLogins::forgive`]).
    pub(super) fn reserve(&self, peer: IpAddr) -> Result<Instant, Duration> {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() > 10_000 {
            recent.retain(|_, failures| failures.back().is_some_and(|t| t.elapsed() < FAILURE_WINDOW));
        }
        let failures = recent.entry(peer).or_default();
        while failures.front().is_some_and(|t| t.elapsed() >= FAILURE_WINDOW) {
            failures.pop_front();
        }
        if failures.len() >= self.per_minute as usize {
            return Err(failures.front().map_or(FAILURE_WINDOW, |oldest| FAILURE_WINDOW.saturating_sub(oldest.elapsed())));
        }
        let now = Instant::now();
        failures.push_back(now);
        Ok(now)
    }

    /// Takes back the attempt [`FailedLogins::reserve`] counted at `at`.
    pub(super) fn forgive(&self, peer: IpAddr, at: Instant) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(failures) = recent.get_mut(&peer)
            && let Some(i) = failures.iter().rposition(|t| *t == at)
        {
            failures.remove(i);
        }
    }
}
