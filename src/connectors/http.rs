//! The polite HTTP client every CRM connector shares.
//!
//! - A client-side token bucket (`requests_per_second`, `burst`) that every request waits
//!   on, so a normal sync stays under the CRM's own limit and never receives its "too many
//!   requests" answer.
//! - Retries with exponential backoff and full jitter on what is passing: throttling
//!   answers, 5xx, timeouts, connection failures, HTML or truncated bodies. A server's own
//!   wait (`Retry-After`, Bitrix24's `operating_reset_at`, amoCRM's `retry_after`) replaces
//!   the backoff step when it is longer.
//! - Whether an answer is done, passing or final is the connector's call ([`Verdict`]): only
//!   it knows its vendor's error shapes. A final error (bad credentials, missing scope) is
//!   never retried, and its message names the config key to fix.
//!
//! Counters of requests, retries and answers by status feed the refresh report.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

use salespulse_config::config::sources::RateLimit;

/// How hard a connector insists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: usize,
    /// The first backoff step; each next one doubles, up to `max_delay`, with full jitter.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest a server-named wait is honoured before the request gives up.
    pub max_server_wait: Duration,
    /// One request, body included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_server_wait: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(60),
        }
    }
}

/// An answer, read in full.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// Whether the body is an HTML page (a proxy's or a block page) rather than the API's JSON.
    pub fn is_html(&self) -> bool {
        let declared = self.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        declared.contains("text/html") || self.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
    }

    /// The `Retry-After` header in seconds, when it is a number.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
        value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
    }

    /// The start of the body as text, for messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).replace(['\n', '\r'], " ");
        text.trim().to_string()
    }
}

/// What a connector makes of an answer.
#[derive(Debug)]
pub enum Verdict<T> {
    Done(T),
    /// Passing: try again after the backoff step, or after `after` when the server named a
    /// longer wait.
    Retry { reason: String, after: Option<Duration> },
    /// The server says the client as a whole goes too fast (amoCRM's 429): every request of
    /// this client waits out `after` (or the backoff step), not just this one.
    Throttled { reason: String, after: Option<Duration> },
    /// Final: retrying cannot help. The message says what to fix.
    Fail(String),
}

/// A request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("{what}: gave up after {attempts} attempts in {seconds:.0} s; the last answer was: {last}")]
    GaveUp { what: String, attempts: usize, seconds: f64, last: String },
    #[error("{what}: the server asks to wait {wait:.0} s, longer than the {limit:.0} s this sync waits; run the refresh again later")]
    WaitTooLong { what: String, wait: f64, limit: f64 },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("requests_per_second must be above 0 and burst at least 1 (got {requests_per_second} and {burst})")]
    BadRate { requests_per_second: f64, burst: u32 },
}

/// Counters over a client's life.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    retries: AtomicU64,
    answers: Mutex<BTreeMap<String, u64>>,
}

impl HttpStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Answers by HTTP status, plus `timeout` and `connection` for requests without one.
    pub fn answers(&self) -> BTreeMap<String, u64> {
        self.answers.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn count(&self, key: String) {
        if let Ok(mut m) = self.answers.lock() {
            *m.entry(key).or_default() += 1;
        }
    }
}

/// The pace of every client of one CRM account: the token bucket and the pause a throttling
/// answer starts. Shared by every refresh of the account in this process, so one refresh
/// started right after another (or beside it) does not start with a fresh bucket and meet
/// the CRM's rolling window, and a pause asked of one is kept by all.
#[derive(Debug)]
struct Pace {
    limiter: DefaultDirectRateLimiter,
    /// Until when every request waits after a [`Verdict::Throttled`] answer.
    paused_until: Mutex<Option<tokio::time::Instant>>,
}

/// Paces by account: the CRM counts an account's requests together, whichever tenant,
/// webhook or token sends them.
static PACES: std::sync::LazyLock<Mutex<BTreeMap<String, Arc<Pace>>>> = std::sync::LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// A rate-limited, retrying HTTP client.
#[derive(Debug)]
pub struct PoliteClient {
    http: reqwest::Client,
    pace: Arc<Pace>,
    policy: RetryPolicy,
    stats: HttpStats,
}

impl PoliteClient {
    /// A client with a pace of its own.
    ///
    /// # Errors
    /// A rate of 0 or below, or a TLS setup failure.
    pub fn new(rate: RateLimit, policy: RetryPolicy) -> Result<PoliteClient, HttpError> {
        Self::build(None, rate, policy)
    }

    /// A client that shares its pace with every other client of `account` (a host, or the
    /// host and port) in this process. The first client of an account sets the rate; a
    /// later one with another rate shares the first one's bucket (a changed
    /// `requests_per_second` applies after a restart), so together they never exceed it.
    ///
    /// # Errors
    /// A rate of 0 or below, or a TLS setup failure.
    pub fn for_account(account: &str, rate: RateLimit, policy: RetryPolicy) -> Result<PoliteClient, HttpError> {
        Self::build(Some(account), rate, policy)
    }

    fn build(account: Option<&str>, rate: RateLimit, policy: RetryPolicy) -> Result<PoliteClient, HttpError> {
        let bad = || HttpError::BadRate { requests_per_second: rate.requests_per_second, burst: rate.burst };
        if !(rate.requests_per_second.is_finite() && rate.requests_per_second > 0.0) {
            return Err(bad());
        }
        let burst = NonZeroU32::new(rate.burst).ok_or_else(bad)?;
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate.requests_per_second)).ok_or_else(bad)?.allow_burst(burst);
        let http = reqwest::Client::builder()
            .user_agent(concat!("salespulse/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(15)))
            .build()
            .map_err(|e| HttpError::Client(e.to_string()))?;
        let fresh = || Arc::new(Pace { limiter: RateLimiter::direct(quota), paused_until: Mutex::new(None) });
        let pace = match account {
            None => fresh(),
            Some(account) => {
                let mut paces = PACES.lock().map_err(|_| HttpError::Client("the pace registry is poisoned".into()))?;
                Arc::clone(paces.entry(account.to_string()).or_insert_with(fresh))
            }
        };
        Ok(PoliteClient { http, pace, policy, stats: HttpStats::default() })
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Sends the request `build` makes (once per attempt), waiting on the token bucket before
    /// each attempt, and asks `judge` what the answer means.
    ///
    /// # Errors
    /// `judge` calls the answer final, the attempts run out, or the server asks for a wait
    /// longer than the policy allows.
    pub async fn send<T>(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        judge: impl Fn(Answer) -> Verdict<T>,
    ) -> Result<T, HttpError> {
        let started = Instant::now();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut attempts = 0;
        // Throttled answers: the next unnamed wait, and the time waited so far.
        let mut throttle_step = self.policy.min_delay;
        let mut throttled_for = Duration::ZERO;
        loop {
            attempts += 1;
            // A pause that began while this request waited for its token is waited out
            // too: sending inside a server's requested wait is what earns the next 429.
            loop {
                self.wait_out_pause().await;
                self.pace.limiter.until_ready().await;
                if !self.paused() {
                    break;
                }
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let (reason, after, throttled) = match self.attempt(&build).await {
                Ok(answer) => {
                    self.stats.count(answer.status.as_u16().to_string());
                    match judge(answer) {
                        Verdict::Done(value) => return Ok(value),
                        Verdict::Fail(message) => return Err(HttpError::Refused { what: what.into(), message }),
                        Verdict::Retry { reason, after } => (reason, after, false),
                        Verdict::Throttled { reason, after } => (reason, after, true),
                    }
                }
                Err(e) => {
                    let kind = if e.is_timeout() { "timeout" } else { "connection" };
                    self.stats.count(kind.into());
                    (describe(e), None, false)
                }
            };
            if throttled {
                // The server asks the whole client to wait: every request waits it out, and
                // a throttled answer does not use up an attempt (only the block page, a
                // final answer, stops a sync); the waits of one request are capped in all.
                let wait = after.unwrap_or(throttle_step);
                throttle_step = (throttle_step * 2).min(self.policy.max_delay);
                self.pause_for(wait.min(self.policy.max_server_wait));
                throttled_for += wait;
                if throttled_for > self.policy.max_server_wait {
                    return Err(HttpError::WaitTooLong { what: what.into(), wait: throttled_for.as_secs_f64(), limit: self.policy.max_server_wait.as_secs_f64() });
                }
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(what, attempt = attempts, wait_seconds = wait.as_secs_f64(), "{reason}; every request to this account waits, then this one is retried");
                attempts -= 1;
                continue;
            }
            let Some(step) = backoff.next() else {
                return Err(HttpError::GaveUp { what: what.into(), attempts, seconds: started.elapsed().as_secs_f64(), last: reason });
            };
            if let Some(wait) = after
                && wait > self.policy.max_server_wait
            {
                return Err(HttpError::WaitTooLong { what: what.into(), wait: wait.as_secs_f64(), limit: self.policy.max_server_wait.as_secs_f64() });
            }
            let wait = after.map_or(step, |a| a.max(step.min(self.policy.min_delay)));
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(what, attempt = attempts, wait_seconds = wait.as_secs_f64(), "{reason}; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Makes every request of this client wait `wait` from now (a longer pause stays).
    fn pause_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        if let Ok(mut paused) = self.pace.paused_until.lock() {
            *paused = Some(paused.map_or(until, |p| p.max(until)));
        }
    }

    fn paused(&self) -> bool {
        self.pace.paused_until.lock().ok().and_then(|p| *p).is_some_and(|until| until > tokio::time::Instant::now())
    }

    async fn wait_out_pause(&self) {
        let until = self.pace.paused_until.lock().ok().and_then(|p| *p);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    async fn attempt(&self, build: &impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Answer, reqwest::Error> {
        let response = build(&self.http).send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer { status, headers, body })
    }
}

/// A transport error in one line, without the URL (it may hold a webhook secret).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({})", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_else(|| e.to_string()))
    } else if e.is_body() || e.is_decode() {
        format!("the answer was cut off ({e})")
    } else {
        e.to_string()
    }
}
