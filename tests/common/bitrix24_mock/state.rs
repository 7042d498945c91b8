//! [`MockState`]: the counters tests read, the leaky bucket every REST request passes
//! (503 `QUERY_LIMIT_EXCEEDED` when full) and the per-method operating budgets.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::timing::{round6, unix_now};
use super::{Bucket, Fault, MockConfig, MockData, MockState, OAuthTokens};

impl MockState {
    pub(super) fn new(config: MockConfig, data: MockData, client_endpoint: String) -> MockState {
        let now = Instant::now();
        let oauth = OAuthTokens {
            access: config.oauth_access_token.clone(),
            access_expires_at: expiry(now, config.oauth_access_ttl),
            refresh: config.oauth_refresh_token.clone(),
            retired_access: HashSet::new(),
            refreshes: 0,
        };
        MockState {
            data: Mutex::new(data),
            faults: Mutex::new(VecDeque::new()),
            config: Mutex::new(config),
            bucket: Mutex::new(Bucket { level: 0.0, last: Instant::now(), max: 0.0 }),
            operating: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            served_ok: AtomicU64::new(0),
            rejected_rate_limit: AtomicU64::new(0),
            rejected_operating: AtomicU64::new(0),
            method_calls: Mutex::new(HashMap::new()),
            sub_calls: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            oauth: Mutex::new(oauth),
            token_requests: AtomicU64::new(0),
            client_endpoint,
        }
    }

    /// The current access token expires now: it answers 401 `expired_token` until a refresh.
    pub fn expire_access_token(&self) {
        self.oauth.lock().unwrap().access_expires_at = Instant::now();
    }

    /// Successful refreshes at the token endpoint.
    pub fn oauth_refreshes(&self) -> u64 {
        self.oauth.lock().unwrap().refreshes
    }

    /// Requests to the token endpoint, whatever their fate (not in [`MockState::requests`]).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// The one refresh token the token endpoint accepts now.
    pub fn current_refresh_token(&self) -> String {
        self.oauth.lock().unwrap().refresh.clone()
    }

    /// The access token `/rest/{method}` accepts now (it may have expired), if any.
    pub fn current_access_token(&self) -> Option<String> {
        self.oauth.lock().unwrap().access.clone()
    }

    /// Queues faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap().extend(faults);
    }

    /// Every HTTP request received, whatever its fate.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests answered 200 with a whole JSON body (batches with sub-call errors included).
    pub fn served_ok(&self) -> u64 {
        self.served_ok.load(Ordering::Relaxed)
    }

    /// 503s produced by the bucket itself (not injected ones).
    pub fn rejected_rate_limit(&self) -> u64 {
        self.rejected_rate_limit.load(Ordering::Relaxed)
    }

    /// 429s produced by the operating budget (not injected ones).
    pub fn rejected_operating(&self) -> u64 {
        self.rejected_operating.load(Ordering::Relaxed)
    }

    /// The highest bucket counter seen right after admitting a request.
    pub fn max_bucket_level(&self) -> f64 {
        self.bucket.lock().unwrap().max
    }

    /// The bucket counter now (drained to this instant).
    pub fn bucket_level(&self) -> f64 {
        let drain = self.config.lock().unwrap().drain_per_second;
        let b = self.bucket.lock().unwrap();
        (b.level - drain * b.last.elapsed().as_secs_f64()).max(0.0)
    }

    /// HTTP requests received for `method` (`"batch"` for batches), whatever their fate.
    pub fn method_calls(&self, method: &str) -> u64 {
        self.method_calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    /// `batch` sub-commands of `method` run (or attempted).
    pub fn sub_calls(&self, method: &str) -> u64 {
        self.sub_calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    /// Every request received: (method without `.json`, JSON body; `{}` when empty).
    pub fn request_log(&self) -> Vec<(String, Value)> {
        self.log.lock().unwrap().clone()
    }

    /// Seconds of `method`'s operating budget used inside the window now.
    pub fn operating_used(&self, method: &str) -> f64 {
        let window = self.config.lock().unwrap().operating_window;
        let mut map = self.operating.lock().unwrap();
        let q = map.entry(method.to_string()).or_default();
        prune(q, window);
        q.iter().map(|(_, c)| c).sum()
    }

    /// Leaky bucket: drains the counter, then admits the request if one more fits.
    /// A request carrying an injected fault is always counted (capped at the burst).
    pub(super) fn admit(&self, forced: bool) -> bool {
        let (drain, burst) = {
            let c = self.config.lock().unwrap();
            (c.drain_per_second, f64::from(c.burst))
        };
        let mut b = self.bucket.lock().unwrap();
        let now = Instant::now();
        b.level = (b.level - drain * now.duration_since(b.last).as_secs_f64()).max(0.0);
        b.last = now;
        if forced {
            b.level = (b.level + 1.0).min(burst);
        } else if b.level + 1.0 > burst {
            return false;
        } else {
            b.level += 1.0;
        }
        b.max = b.max.max(b.level);
        true
    }

    /// Bills `rows` to `method`; returns (operating_reset_at, operating).
    pub(super) fn bill(&self, method: &str, rows: usize, config: &MockConfig) -> (i64, f64) {
        let cost = rows as f64 * config.operating_cost_per_row;
        let mut map = self.operating.lock().unwrap();
        let q = map.entry(method.to_string()).or_default();
        prune(q, config.operating_window);
        let now = Instant::now();
        if cost > 0.0 {
            q.push_back((now, cost));
        }
        let used: f64 = q.iter().map(|(_, c)| c).sum();
        let oldest = q.front().map_or(now, |(t, _)| *t);
        let reset_in = (oldest + config.operating_window).saturating_duration_since(now).as_secs_f64();
        ((unix_now() + reset_in).ceil() as i64, round6(used))
    }

    pub(super) fn count(map: &Mutex<HashMap<String, u64>>, method: &str) {
        *map.lock().unwrap().entry(method.to_string()).or_default() += 1;
    }
}

/// `now + ttl`, saturating at a century.
pub(super) fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

fn prune(q: &mut VecDeque<(Instant, f64)>, window: Duration) {
    let now = Instant::now();
    while q.front().is_some_and(|(t, _)| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}
