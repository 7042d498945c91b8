//! [`MockState`]'s own behaviour: its constructor, the counters tests read, the clock tests
//! move on, the rolling rate window and the 429s toward the block, and who is authorized.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;
use tokio::time::Instant;

use super::answer::Answer;
use super::ids::event_id;
use super::{ERROR_TOO_MANY_HTML, ERROR_TOO_MANY_JSON, Fault, Limiter, MockConfig, MockData, MockState, OAuthTokens, PROBLEM_JSON, TEXT_HTML, fixture_json};

/// Event ids of [`MockState`]'s mutations come from here on (generated ones count from 0).
const MUTATION_EVENT_SEQ: u64 = 1 << 40;

impl MockState {
    pub(super) fn new(config: MockConfig, data: MockData, base_url: String) -> MockState {
        let oauth = OAuthTokens { access: None, refresh: config.oauth_refresh_token.clone(), code: config.oauth_code.clone(), exchanges: 0 };
        MockState {
            data: Mutex::new(data),
            faults: Mutex::new(VecDeque::new()),
            config: Mutex::new(config),
            limiter: Mutex::new(Limiter::default()),
            clock_skew: Mutex::new(Duration::ZERO),
            blocked: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            served_ok: AtomicU64::new(0),
            rejected_rate_limit: AtomicU64::new(0),
            answered_429: AtomicU64::new(0),
            oauth_requests: AtomicU64::new(0),
            path_calls: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            oauth: Mutex::new(oauth),
            event_seq: AtomicU64::new(MUTATION_EVENT_SEQ),
            base_url,
        }
    }

    /// The current OAuth access token stops working now: the next API call with it gets 401
    /// (the long-lived token is not affected).
    pub fn expire_access_token(&self) {
        self.oauth.lock().unwrap().access = None;
    }

    /// The OAuth access token `/api/v4` accepts now, if any (none before the first exchange).
    pub fn current_access_token(&self) -> Option<String> {
        self.oauth.lock().unwrap().access.clone()
    }

    /// The one refresh token `/oauth2/access_token` accepts now.
    pub fn current_refresh_token(&self) -> String {
        self.oauth.lock().unwrap().refresh.clone()
    }

    /// Successful exchanges at `/oauth2/access_token` (codes and refresh tokens).
    pub fn oauth_exchanges(&self) -> u64 {
        self.oauth.lock().unwrap().exchanges
    }

    /// Requests to `/oauth2/access_token`, whatever their fate (not in [`MockState::requests`]).
    pub fn oauth_requests(&self) -> u64 {
        self.oauth_requests.load(Ordering::Relaxed)
    }

    /// Queues faults for the next `/api/v4` requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap().extend(faults.into_iter().map(Some));
    }

    /// Queues a plan: one entry per coming request, `None` served normally.
    pub fn push_fault_plan(&self, plan: impl IntoIterator<Item = Option<Fault>>) {
        self.faults.lock().unwrap().extend(plan);
    }

    /// Every `/api/v4` request received, whatever its fate.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `/api/v4` requests answered 200 with a whole body or 204 (the end of a list).
    pub fn served_ok(&self) -> u64 {
        self.served_ok.load(Ordering::Relaxed)
    }

    /// 429s produced by the rate window itself (not injected ones).
    pub fn rejected_rate_limit(&self) -> u64 {
        self.rejected_rate_limit.load(Ordering::Relaxed)
    }

    /// Every 429 answered: the window's and injected ones.
    pub fn answered_429(&self) -> u64 {
        self.answered_429.load(Ordering::Relaxed)
    }

    /// 429s the client earned: requests over the rolling window or sent inside the wait a
    /// 429 named (injected 429s are not earned; the requests after them may be).
    pub fn earned_429(&self) -> u64 {
        self.limiter.lock().unwrap().earned_429s
    }

    /// The account is blocked: everything answers 403 HTML, forever.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// The most `/api/v4` requests seen in any rolling 1-second window, every request counted.
    pub fn max_in_window(&self) -> u64 {
        self.limiter.lock().unwrap().max_in_window
    }

    /// `/api/v4` requests received for `path` (e.g. "/api/v4/leads"), whatever their fate.
    pub fn path_calls(&self, path: &str) -> u64 {
        self.path_calls.lock().unwrap().get(path.trim_end_matches('/')).copied().unwrap_or(0)
    }

    /// Every `/api/v4` request received: (path, percent-decoded query, e.g.
    /// `filter[updated_at][from]=1&limit=250`).
    pub fn request_log(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().clone()
    }

    /// The mock's clock: tokio's, plus what tests moved it on by ([`MockState::advance_clock`]),
    /// so a test of the rate window or a named wait needs no sleep.
    fn now(&self) -> Instant {
        Instant::now() + *self.clock_skew.lock().unwrap()
    }

    /// Moves the mock's clock on by `by`: its rate window and 429 waits see that much more
    /// time gone by.
    pub fn advance_clock(&self, by: Duration) {
        *self.clock_skew.lock().unwrap() += by;
    }

    /// Counts the request into the rolling window; false when it is one too many or inside
    /// the wait the last 429 named (A-LIMIT rows of docs/connectors/amocrm-conformance.md).
    pub(super) fn admit(&self, limit: u32) -> bool {
        let now = self.now();
        let mut l = self.limiter.lock().unwrap();
        while l.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            l.window.pop_front();
        }
        l.window.push_back(now);
        let n = l.window.len() as u64;
        l.max_in_window = l.max_in_window.max(n);
        let admitted = n <= u64::from(limit) && l.wait_until.is_none_or(|until| now >= until);
        if !admitted {
            l.earned_429s += 1;
        }
        admitted
    }

    /// A 429 answer (HTML or JSON per `html`), recorded toward the block.
    pub(super) fn too_many(&self, config: &MockConfig, html: bool) -> Answer {
        self.answered_429.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        {
            let mut l = self.limiter.lock().unwrap();
            while l.recent_429s.front().is_some_and(|t| now.duration_since(*t) >= config.block_window) {
                l.recent_429s.pop_front();
            }
            l.recent_429s.push_back(now);
            if config.block_after_429s > 0 && l.recent_429s.len() as u64 >= u64::from(config.block_after_429s) {
                self.blocked.store(true, Ordering::Relaxed);
            }
        }
        if html {
            return Answer::new(StatusCode::TOO_MANY_REQUESTS, TEXT_HTML, ERROR_TOO_MANY_HTML);
        }
        {
            let mut l = self.limiter.lock().unwrap();
            let until = now + Duration::from_secs(config.retry_after_seconds);
            l.wait_until = Some(l.wait_until.map_or(until, |u| u.max(until)));
        }
        let mut body = fixture_json(ERROR_TOO_MANY_JSON);
        body["retry_after"] = json!(config.retry_after_seconds);
        Answer::json(StatusCode::TOO_MANY_REQUESTS, PROBLEM_JSON, &body)
    }

    /// `Authorization: Bearer X` with X the long-lived token or the current access token.
    pub(super) fn authorized(&self, headers: &HeaderMap, config: &MockConfig) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return false;
        }
        token == config.token || self.oauth.lock().unwrap().access.as_deref() == Some(token)
    }

    pub(super) fn next_event_id(&self) -> String {
        event_id(self.event_seq.fetch_add(1, Ordering::Relaxed))
    }
}
