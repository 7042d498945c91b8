//! A mock amoCRM / Kommo account (REST API v4) for the connector tests: HAL+JSON lists with
//! `page`/`limit` and `_links.next` (including the vendor's phantom `next` on an exactly full
//! last page, answered by a 204 with an empty body), PHP-style `filter[…]`/`order[…]` queries,
//! the paid "alpha" filters an account may not have (`is_api_filter_enabled`), the
//! 7 requests/s limit (429 as problem+json or as the gateway's HTML page), the 403 block after
//! repeated 429s, and injectable faults.
//!
//! It also speaks amoCRM OAuth 2.0 on the same port: `POST /oauth2/access_token` with a JSON
//! body (authorization code or single-use refresh token), and `/api/v4/*` accepts either the
//! current OAuth access token or the account's long-lived token as `Authorization: Bearer`.
//!
//! Records are the fixtures of `tests/fixtures/amocrm/` (copied from the shared API notes,
//! read with `include_str!` so a clean clone is enough), or generated from them at any scale
//! with [`MockData::generated`]. Tests change them between syncs with [`MockState::edit_lead`]
//! and friends, which also log the events the account would log.
// Shared with the connector tests: not every helper is used by the tests in this file.
#![allow(dead_code)]

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
// The rate window, the 429 waits and the block window run on tokio's clock plus what a test
// moved it on by (`MockState::advance_clock`), so conformance tests need no sleep. No test
// pauses tokio's clock: the mock serves real sockets.
use tokio::time::Instant;

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/amocrm/", $file))
    };
}

// ---------------------------------------------------------------------------------------
// Fixtures and constants
// ---------------------------------------------------------------------------------------

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` of every list but events (more: 422).
pub const MAX_LIMIT: usize = 250;
/// The largest `limit` of `/api/v4/events` (more: 422).
pub const MAX_EVENTS_LIMIT: usize = 100;
/// The fixture account's id: every record's `account_id`.
pub const ACCOUNT_ID: i64 = 31_234_567;
/// The host the records' own `_links` name (envelope links point at the mock instead).
pub const FIXTURE_HOST: &str = "https://acme.amocrm.ru";
/// "Успешно реализовано": the same status id in every pipeline.
pub const WON: i64 = 142;
/// "Закрыто и не реализовано": the same status id in every pipeline.
pub const LOST: i64 = 143;
/// 2026-01-01T00:00:00Z. Generated records are created during the year before it, and none
/// is updated at or after it: mutations `at` this or later are always the newest.
pub const GENERATED_END: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

/// Ids of generated records: leads, contacts, companies, tasks and notes count up from these.
pub const LEAD_BASE: i64 = 30_000_001;
pub const CONTACT_BASE: i64 = 42_000_001;
pub const COMPANY_BASE: i64 = 52_000_001;
pub const TASK_BASE: i64 = 10_000_001;
pub const NOTE_BASE: i64 = 77_000_001;

pub const ERROR_UNAUTHORIZED: &str = fixture!("error_401_unauthorized.json");
pub const ERROR_PAYMENT_REQUIRED: &str = fixture!("error_402_payment_required.json");
pub const ERROR_BLOCKED_HTML: &str = fixture!("error_403_blocked.html");
pub const ERROR_VALIDATION: &str = fixture!("error_400_validation.json");
pub const ERROR_LIMIT: &str = fixture!("error_422_limit.json");
pub const ERROR_TOO_MANY_JSON: &str = fixture!("error_429_too_many_requests.json");
pub const ERROR_TOO_MANY_HTML: &str = fixture!("error_429_too_many_requests.html");
/// The shape of a successful `/oauth2/access_token` answer (the mock's have other values).
pub const OAUTH_ACCESS_TOKEN: &str = fixture!("oauth2_access_token.json");
/// `/oauth2/access_token`'s 400 for anything wrong (credentials, redirect, code, token).
pub const OAUTH_ERROR_INVALID_REFRESH: &str = fixture!("oauth2_error_invalid_refresh.json");
pub const LEADS_PAGE1: &str = fixture!("leads_page1.json");
pub const LEADS_PAGE2_LAST: &str = fixture!("leads_page2_last.json");
/// The body of the 204 past the last page: empty.
pub const LEADS_PAGE3_EMPTY: &str = fixture!("leads_page3_204_empty.body");
pub const LEADS_ONLY_DELETED: &str = fixture!("leads_only_deleted.json");
/// The query `leads_page1.json` answers (from `_index.json`), decoded.
pub const LEADS_PAGE1_QUERY: &str = "filter[updated_at][from]=1756706400&order[updated_at]=asc&limit=50&with=contacts,loss_reason&page=1";

const HAL_JSON: &str = "application/hal+json";
const PROBLEM_JSON: &str = "application/problem+json";
const JSON: &str = "application/json";
const TEXT_HTML: &str = "text/html";

/// A fixture file's JSON.
pub fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The records of a fixture page: `_embedded[key]`.
fn fixture_embedded(text: &str, key: &str) -> Vec<Value> {
    fixture_json(text)["_embedded"][key].as_array().unwrap_or_else(|| panic!("_embedded.{key}")).clone()
}

// ---------------------------------------------------------------------------------------
// Configuration, faults, data, state
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct MockConfig {
    /// At most this many `/api/v4` requests in any rolling 1-second window (t-1s, t]; the
    /// request that would exceed it gets 429. Every request counts, rejected ones too.
    pub requests_per_second: u32,
    /// The 429 body: the gateway's HTML page (text/html), else the problem+json fixture with
    /// `retry_after` = [`MockConfig::retry_after_seconds`]. No `Retry-After` header either way.
    pub html_429: bool,
    pub retry_after_seconds: u64,
    /// After this many 429s (the window's and injected ones) within `block_window`, every
    /// request (API, OAuth, anything) answers 403 with the nginx HTML page, forever. 0: never.
    pub block_after_429s: u32,
    pub block_window: Duration,
    /// The account's `is_api_filter_enabled`: when false, `filter[updated_at]` and
    /// `filter[created_at]` on leads, contacts and companies are silently ignored.
    pub api_filter_enabled: bool,
    /// The long-lived token `/api/v4` accepts as `Authorization: Bearer <token>`.
    pub token: String,
    /// The OAuth app `/oauth2/access_token` accepts (read on every token request).
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    pub oauth_redirect_uri: String,
    /// The refresh token valid at start (read once, when the server starts).
    pub oauth_refresh_token: String,
    /// The authorization code valid at start, if any (read once, when the server starts).
    pub oauth_code: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            requests_per_second: 7,
            html_429: false,
            retry_after_seconds: 1,
            block_after_429s: 5,
            block_window: Duration::from_secs(60),
            api_filter_enabled: true,
            token: "long-lived-token".into(),
            oauth_client_id: "amo-client-id".into(),
            oauth_client_secret: "amo-client-secret".into(),
            oauth_redirect_uri: "https://example.com/amo/callback".into(),
            oauth_refresh_token: "refresh-1".into(),
            oauth_code: Some("auth-code-1".into()),
        }
    }
}

/// What one `/api/v4` request gets instead of its answer, once it passed the rate limit and
/// authentication (see [`MockState::push_faults`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with the problem+json fixture (counts toward the block, not as a window rejection).
    TooManyJson,
    /// 429 with the gateway's HTML page (counts toward the block).
    TooManyHtml,
    /// 500 `{"title":"ErrInternalServer",…,"trace_id":…}`.
    ServerError,
    /// 502 with a small nginx HTML page.
    BadGatewayHtml,
    /// Status 200, hal+json, but only the first half of the real body.
    Truncated,
    /// Sleeps that long (tokio's clock), then answers normally.
    Timeout(Duration),
    /// 401 with the fixture.
    Unauthorized,
}

/// The account's records, each in the vendor's exact shape (as in the fixtures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockData {
    /// `/api/v4/account` (the mock sets `is_api_filter_enabled` and `_links`).
    pub account: Value,
    pub users: Vec<Value>,
    /// Pipelines with their statuses in `_embedded.statuses`.
    pub pipelines: Vec<Value>,
    pub loss_reasons: Vec<Value>,
    pub leads: Vec<Value>,
    /// `with=only_deleted`: id, updated_at, updated_by, is_deleted, account_id, _links.
    pub trash: Vec<Value>,
    pub contacts: Vec<Value>,
    pub companies: Vec<Value>,
    pub tasks: Vec<Value>,
    /// ("leads" | "contacts" | "companies", note): the list a note is served by.
    pub notes: Vec<(String, Value)>,
    pub events: Vec<Value>,
    /// What a deleted lead took to the trash, for a restore: `{"lead", "notes": [[entity,
    /// note]…], "tasks"}`.
    pub trashed: Vec<Value>,
    /// `/api/v4/catalogs` (one `products` catalog, one `regular`).
    pub catalogs: Vec<Value>,
    /// `/api/v4/catalogs/{id}/elements`, every catalog's, with their `catalog_id`.
    pub catalog_elements: Vec<Value>,
}

/// The rolling request window and the recent 429s.
#[derive(Debug, Default)]
struct Limiter {
    /// Arrival times inside the last second, oldest first.
    window: VecDeque<Instant>,
    max_in_window: u64,
    /// Times of 429 answers inside `block_window`, oldest first.
    recent_429s: VecDeque<Instant>,
    /// The end of the wait the last JSON 429 named (`retry_after`): a request before it is
    /// refused again, and that 429 is earned.
    wait_until: Option<Instant>,
    /// 429s earned: requests over the rolling window or inside a named wait.
    earned_429s: u64,
}

/// The OAuth state of the one app installation the mock knows.
#[derive(Debug)]
struct OAuthTokens {
    /// The access token `/api/v4` accepts besides the long-lived one, if any.
    access: Option<String>,
    /// The one refresh token `/oauth2/access_token` accepts (single-use).
    refresh: String,
    /// The one authorization code it accepts, if any (single-use).
    code: Option<String>,
    /// Successful exchanges.
    exchanges: u64,
}

/// Event ids of [`MockState`]'s mutations come from here on (generated ones count from 0).
const MUTATION_EVENT_SEQ: u64 = 1 << 40;

/// The mock's data, faults, configuration and counters; shared with the test.
#[derive(Debug)]
pub struct MockState {
    /// Tests edit, delete and add records between syncs (never held across an await).
    pub data: Mutex<MockData>,
    /// Each `/api/v4` request past the rate limit and authentication pops the first one.
    /// `None` entries are requests served normally (a plan: every twelfth request, …).
    pub faults: Mutex<VecDeque<Option<Fault>>>,
    /// Read on every request: tests may change limits or the filter flag on the fly.
    pub config: Mutex<MockConfig>,
    limiter: Mutex<Limiter>,
    /// How far tests moved the clock on ([`MockState::advance_clock`]).
    clock_skew: Mutex<Duration>,
    blocked: AtomicBool,
    requests: AtomicU64,
    served_ok: AtomicU64,
    rejected_rate_limit: AtomicU64,
    answered_429: AtomicU64,
    oauth_requests: AtomicU64,
    path_calls: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<(String, String)>>,
    oauth: Mutex<OAuthTokens>,
    event_seq: AtomicU64,
    /// `http://127.0.0.1:{port}`: what `https://{subdomain}.amocrm.ru` is for the client.
    base_url: String,
}

impl MockState {
    fn new(config: MockConfig, data: MockData, base_url: String) -> MockState {
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
    fn admit(&self, limit: u32) -> bool {
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
    fn too_many(&self, config: &MockConfig, html: bool) -> Answer {
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
    fn authorized(&self, headers: &HeaderMap, config: &MockConfig) -> bool {
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

    fn next_event_id(&self) -> String {
        event_id(self.event_seq.fetch_add(1, Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A running mock account on 127.0.0.1; dropping it stops the server.
pub struct MockAmoCrm {
    /// `http://127.0.0.1:{port}`, no trailing slash: the account's base URL (what
    /// `https://{subdomain}.amocrm.ru` is); the API is under `/api/v4/`.
    pub base_url: String,
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for MockAmoCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAmoCrm").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl MockAmoCrm {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MockConfig, data: MockData) -> MockAmoCrm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");
        let state = Arc::new(MockState::new(config, data, base_url.clone()));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        MockAmoCrm { base_url, addr, state, shutdown: Some(tx) }
    }

    /// `base_url` + `path_and_query` (which starts with '/').
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// `http://127.0.0.1:{port}/oauth2/access_token`.
    pub fn token_url(&self) -> String {
        self.url("/oauth2/access_token")
    }
}

impl Drop for MockAmoCrm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One HTTP answer: status, Content-Type (none for a 204) and body bytes.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Answer {
    fn new(status: StatusCode, content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer { status, content_type: Some(content_type), body: body.into() }
    }

    fn json(status: StatusCode, content_type: &'static str, body: &Value) -> Answer {
        Answer::new(status, content_type, serde_json::to_vec(body).unwrap())
    }

    fn hal(body: &Value) -> Answer {
        Answer::json(StatusCode::OK, HAL_JSON, body)
    }

    /// Code 2002 "nothing found": 204 with an empty body and no Content-Type.
    fn no_content() -> Answer {
        Answer { status: StatusCode::NO_CONTENT, content_type: None, body: Vec::new() }
    }

    fn problem(status: StatusCode, detail: &str) -> Answer {
        let title = status.canonical_reason().unwrap_or("Error");
        let body = json!({"title": title, "type": format!("https://httpstatus.es/{}", status.as_u16()), "status": status.as_u16(), "detail": detail});
        Answer::json(status, PROBLEM_JSON, &body)
    }

    fn unauthorized() -> Answer {
        Answer::new(StatusCode::UNAUTHORIZED, PROBLEM_JSON, ERROR_UNAUTHORIZED)
    }

    fn blocked() -> Answer {
        Answer::new(StatusCode::FORBIDDEN, TEXT_HTML, ERROR_BLOCKED_HTML)
    }

    fn into_response(self) -> Response {
        match self.content_type {
            Some(ct) => (self.status, [(header::CONTENT_TYPE, ct)], self.body).into_response(),
            None => self.status.into_response(),
        }
    }
}

/// An nginx error page, as the gateway sends it.
fn nginx_page(status: StatusCode) -> Answer {
    let s = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{s} {reason}</title></head>\r\n<body>\r\n<center><h1>{s} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    Answer::new(status, TEXT_HTML, page)
}

/// The checks of an `/api/v4` request, in order: the block, the rate window, authentication,
/// the fault queue; then the endpoint.
async fn handle(State(state): State<Arc<MockState>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path.trim_end_matches('/') == "/oauth2/access_token" {
        state.oauth_requests.fetch_add(1, Ordering::Relaxed);
        if state.is_blocked() {
            return Answer::blocked().into_response();
        }
        return state.token_endpoint(&method, &body).into_response();
    }
    if path != "/api/v4" && !path.starts_with("/api/v4/") {
        if state.is_blocked() {
            return Answer::blocked().into_response();
        }
        return Answer::problem(StatusCode::NOT_FOUND, "Not Found").into_response();
    }

    let query = Query::parse(uri.query().unwrap_or(""));
    state.requests.fetch_add(1, Ordering::Relaxed);
    *state.path_calls.lock().unwrap().entry(path.trim_end_matches('/').to_string()).or_default() += 1;
    state.log.lock().unwrap().push((path.clone(), query.decoded()));
    if state.is_blocked() {
        return Answer::blocked().into_response();
    }
    let config = state.config.lock().unwrap().clone();
    if !state.admit(config.requests_per_second) {
        state.rejected_rate_limit.fetch_add(1, Ordering::Relaxed);
        return state.too_many(&config, config.html_429).into_response();
    }
    if !state.authorized(&headers, &config) {
        return Answer::unauthorized().into_response();
    }

    let fault = state.faults.lock().unwrap().pop_front().flatten();
    let mut truncate = false;
    match fault {
        None => {}
        Some(Fault::TooManyJson) => return state.too_many(&config, false).into_response(),
        Some(Fault::TooManyHtml) => return state.too_many(&config, true).into_response(),
        Some(Fault::ServerError) => {
            let trace = format!("{:016x}", splitmix(state.requests()));
            let body = json!({"title": "ErrInternalServer", "status": 500, "detail": "Internal server error", "trace_id": trace});
            return Answer::json(StatusCode::INTERNAL_SERVER_ERROR, PROBLEM_JSON, &body).into_response();
        }
        Some(Fault::BadGatewayHtml) => return nginx_page(StatusCode::BAD_GATEWAY).into_response(),
        Some(Fault::Unauthorized) => return Answer::unauthorized().into_response(),
        Some(Fault::Timeout(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncated) => truncate = true,
    }

    let answer = if method == Method::GET {
        let data = state.data.lock().unwrap();
        route(&data, &config, &state.base_url, &path, &query)
    } else {
        Answer::problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    };
    if truncate {
        let mut body = answer.body;
        body.truncate(body.len() / 2);
        return Answer::new(StatusCode::OK, HAL_JSON, body).into_response();
    }
    if answer.status.is_success() {
        state.served_ok.fetch_add(1, Ordering::Relaxed);
    }
    answer.into_response()
}

// ---------------------------------------------------------------------------------------
// OAuth 2.0: /oauth2/access_token
// ---------------------------------------------------------------------------------------

impl MockState {
    /// `POST /oauth2/access_token` with a JSON body (a form body is read too):
    /// `{client_id, client_secret, grant_type, code | refresh_token, redirect_uri}`.
    /// Anything wrong is the 400 fixture; codes and refresh tokens are single-use.
    fn token_endpoint(&self, method: &Method, body: &[u8]) -> Answer {
        if *method != Method::POST {
            return Answer::problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let params: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            _ => url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect(),
        };
        let get = |name: &str| match params.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let invalid = || Answer::new(StatusCode::BAD_REQUEST, JSON, OAUTH_ERROR_INVALID_REFRESH);
        let config = self.config.lock().unwrap().clone();
        if get("client_id") != config.oauth_client_id || get("client_secret") != config.oauth_client_secret || get("redirect_uri") != config.oauth_redirect_uri
        {
            return invalid();
        }
        let mut tokens = self.oauth.lock().unwrap();
        match get("grant_type").as_str() {
            "authorization_code" => {
                let code = get("code");
                if code.is_empty() || tokens.code.as_deref() != Some(code.as_str()) {
                    return invalid();
                }
                tokens.code = None;
            }
            "refresh_token" => {
                let refresh = get("refresh_token");
                if refresh.is_empty() || refresh != tokens.refresh {
                    return invalid();
                }
            }
            _ => return invalid(),
        }
        tokens.exchanges += 1;
        let n = tokens.exchanges;
        let access = format!("access-{n}");
        let refresh = format!("refresh-{}", n + 1);
        tokens.access = Some(access.clone());
        tokens.refresh = refresh.clone();
        drop(tokens);

        let mut v = fixture_json(OAUTH_ACCESS_TOKEN);
        v["token_type"] = json!("Bearer");
        v["expires_in"] = json!(86_400);
        v["server_time"] = json!(unix_now());
        v["access_token"] = json!(access);
        v["refresh_token"] = json!(refresh);
        Answer::json(StatusCode::OK, JSON, &v)
    }
}

// ---------------------------------------------------------------------------------------
// Query strings: PHP-style brackets
// ---------------------------------------------------------------------------------------

/// A query string as PHP reads it, keys and values percent-decoded: `filter[type][]=a` has the
/// path `["filter", "type", ""]`. The pairs keep their order (for the `_links`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// (decoded key, its bracket path, decoded value).
    pairs: Vec<(String, Vec<String>, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| {
                let path = key_path(&k);
                (k.into_owned(), path, v.into_owned())
            })
            .filter(|(k, _, _)| !k.is_empty())
            .collect();
        Query { pairs }
    }

    /// The value at exactly this path (the last one when repeated).
    pub fn get(&self, path: &[&str]) -> Option<&str> {
        self.pairs.iter().rev().find(|(_, p, _)| same_path(p, path)).map(|(_, _, v)| v.as_str())
    }

    /// Every value at this path, or one level below it under `[]` or `[n]`:
    /// `filter[id]=1`, `filter[id][]=1&filter[id][]=2`, `filter[id][0]=1&filter[id][1]=2`.
    pub fn list(&self, path: &[&str]) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(_, p, _)| {
                same_path(p, path) || (p.len() == path.len() + 1 && same_path(&p[..path.len()], path) && p[path.len()].bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// `with=a,b` as ["a", "b"].
    pub fn with(&self) -> Vec<&str> {
        self.get(&["with"]).map(|w| w.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    /// The first `order[field]=asc|desc`: (field, descending).
    pub fn order(&self) -> Option<(&str, bool)> {
        self.pairs.iter().find_map(|(_, p, v)| match p.as_slice() {
            [o, field] if o == "order" => Some((field.as_str(), v.trim().eq_ignore_ascii_case("desc"))),
            _ => None,
        })
    }

    /// `k=v&…`, decoded: what [`MockState::request_log`] records.
    pub fn decoded(&self) -> String {
        self.pairs.iter().map(|(k, _, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }

    /// The same query percent-encoded (as the vendor's hrefs are) with `page` replaced in
    /// place, or appended.
    pub fn with_page(&self, page: usize) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let mut paged = false;
        for (k, _, v) in &self.pairs {
            if k == "page" {
                if !paged {
                    s.append_pair("page", &page.to_string());
                    paged = true;
                }
            } else {
                s.append_pair(k, v);
            }
        }
        if !paged {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }
}

fn same_path(p: &[String], path: &[&str]) -> bool {
    p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b)
}

/// `filter[type][]` → ["filter", "type", ""].
fn key_path(key: &str) -> Vec<String> {
    let (base, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut path = vec![base.to_string()];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else { break };
        path.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    path
}

// ---------------------------------------------------------------------------------------
// Filters and orders
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Cond {
    /// from ≤ field ≤ to, both ends inclusive and optional; a record without it fails.
    Range(&'static str, Option<i64>, Option<i64>),
    /// The field (a number or a string, compared as text) is one of these.
    AnyOf(&'static str, Vec<String>),
    Flag(&'static str, bool),
}

#[derive(Debug, Default)]
struct Filters(Vec<Cond>);

impl Filters {
    /// `filter[name][from]`, `filter[name][to]`, or `filter[name]=ts` (that second only).
    fn range(&mut self, q: &Query, field: &'static str) -> &mut Self {
        let num = |path: &[&str]| q.get(path).and_then(|v| v.trim().parse::<i64>().ok());
        let exact = num(&["filter", field]);
        let from = num(&["filter", field, "from"]).or(exact);
        let to = num(&["filter", field, "to"]).or(exact);
        if from.is_some() || to.is_some() {
            self.0.push(Cond::Range(field, from, to));
        }
        self
    }

    /// `filter[name]` (single or array) against the record's `field`.
    fn any_of(&mut self, q: &Query, name: &str, field: &'static str, normalize: fn(&str) -> String) -> &mut Self {
        let values: Vec<String> = q.list(&["filter", name]).into_iter().map(normalize).collect();
        if !values.is_empty() {
            self.0.push(Cond::AnyOf(field, values));
        }
        self
    }

    /// `filter[field]=1|0|true|false`.
    fn flag(&mut self, q: &Query, field: &'static str) -> &mut Self {
        let flag = match q.get(&["filter", field]).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "1" || v == "true" => Some(true),
            Some(v) if v == "0" || v == "false" => Some(false),
            _ => None,
        };
        if let Some(f) = flag {
            self.0.push(Cond::Flag(field, f));
        }
        self
    }

    fn matches(&self, row: &Value) -> bool {
        self.0.iter().all(|c| match c {
            Cond::Range(field, from, to) => row[*field].as_i64().is_some_and(|v| from.is_none_or(|f| v >= f) && to.is_none_or(|t| v <= t)),
            Cond::AnyOf(field, values) => text(&row[*field]).is_some_and(|v| values.contains(&v)),
            Cond::Flag(field, f) => row[*field].as_bool() == Some(*f),
        })
    }
}

fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

/// `leads` → `lead` (events name entities in the singular).
fn singular(s: &str) -> String {
    match s.trim() {
        "leads" => "lead".into(),
        "contacts" => "contact".into(),
        "companies" => "company".into(),
        other => other.into(),
    }
}

/// `lead` → `leads` (URLs name entities in the plural).
fn plural(entity: &str) -> &str {
    match entity {
        "lead" => "leads",
        "contact" => "contacts",
        "company" => "companies",
        other => other,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Numbers numerically, strings as text, null first.
fn compare_values(a: &Value, b: &Value) -> CmpOrdering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(CmpOrdering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => CmpOrdering::Equal,
        (Value::Null, _) => CmpOrdering::Less,
        (_, Value::Null) => CmpOrdering::Greater,
        _ => CmpOrdering::Equal,
    }
}

/// The orders a list accepts and its default.
#[derive(Debug)]
struct OrderSpec {
    fields: &'static [&'static str],
    /// (field, descending) when no accepted `order[…]` is given.
    default: (&'static str, bool),
    /// Ties on the field go by id in the same direction (events), else by id ascending.
    tie_follows: bool,
}

// The documented sort fields (A-LEADS-1, A-CONT-1, A-TASKS-2, A-NOTES-1); another is refused
// with 400 (what the API does with one is not documented, so a connector must not send it).
const BY_ID: OrderSpec = OrderSpec { fields: &["id", "created_at", "updated_at"], default: ("id", false), tie_follows: false };
const PARTY_ORDER: OrderSpec = OrderSpec { fields: &["id", "updated_at"], default: ("id", false), tie_follows: false };
const TASK_ORDER: OrderSpec = OrderSpec { fields: &["id", "created_at", "complete_till"], default: ("id", false), tie_follows: false };
const NOTE_ORDER: OrderSpec = OrderSpec { fields: &["id", "updated_at"], default: ("id", false), tie_follows: false };
const EVENT_ORDER: OrderSpec = OrderSpec { fields: &["created_at", "id"], default: ("created_at", true), tie_follows: true };

fn sort_rows(rows: &mut [&Value], q: &Query, spec: &OrderSpec) {
    let (field, desc) = q.order().filter(|(f, _)| spec.fields.iter().any(|x| x == f)).unwrap_or(spec.default);
    let tie_desc = spec.tie_follows && desc;
    rows.sort_by(|a, b| {
        let primary = compare_values(&a[field], &b[field]);
        let primary = if desc { primary.reverse() } else { primary };
        primary.then_with(|| {
            let tie = compare_values(&a["id"], &b["id"]);
            if tie_desc { tie.reverse() } else { tie }
        })
    });
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

/// A paged list: its `_embedded` key, its largest `limit`, its orders.
#[derive(Debug)]
struct ListSpec {
    key: &'static str,
    max_limit: usize,
    order: &'static OrderSpec,
}

fn route(data: &MockData, config: &MockConfig, base: &str, path: &str, q: &Query) -> Answer {
    let rest = path.strip_prefix("/api/v4/").unwrap_or("").trim_end_matches('/');
    match rest {
        "account" => {
            let mut account = data.account.clone();
            account["is_api_filter_enabled"] = json!(config.api_filter_enabled);
            account["_links"] = json!({"self": {"href": format!("{base}/api/v4/account")}});
            Answer::hal(&account)
        }
        "users" => users(data, base, path, q),
        "leads/pipelines" => dictionary(base, path, "pipelines", &data.pipelines),
        "leads/loss_reasons" => dictionary(base, path, "loss_reasons", &data.loss_reasons),
        "leads" | "contacts" | "companies" => {
            let trash = rest == "leads" && q.with().contains(&"only_deleted");
            let rows = match rest {
                "leads" if trash => &data.trash,
                "leads" => &data.leads,
                "contacts" => &data.contacts,
                _ => &data.companies,
            };
            let mut f = Filters::default();
            f.any_of(q, "id", "id", trimmed);
            // The paid "alpha" filtering: without it the account ignores these silently.
            if config.api_filter_enabled {
                f.range(q, "updated_at").range(q, "created_at");
            }
            let key = match rest {
                "contacts" => "contacts",
                "companies" => "companies",
                _ => "leads",
            };
            let spec = ListSpec { key, max_limit: MAX_LIMIT, order: if rest == "leads" { &BY_ID } else { &PARTY_ORDER } };
            if rest == "leads" && !trash {
                let with = q.with();
                let projected: Vec<Value> = rows.iter().map(|l| lead_with(l, &with)).collect();
                return paged(base, path, q, projected.iter(), &f, &spec);
            }
            paged(base, path, q, rows.iter(), &f, &spec)
        }
        "tasks" => {
            let mut f = Filters::default();
            f.any_of(q, "id", "id", trimmed)
                .range(q, "updated_at")
                .range(q, "created_at")
                .any_of(q, "entity_type", "entity_type", trimmed)
                .any_of(q, "entity_id", "entity_id", trimmed)
                .any_of(q, "responsible_user_id", "responsible_user_id", trimmed)
                .flag(q, "is_completed");
            paged(base, path, q, data.tasks.iter(), &f, &ListSpec { key: "tasks", max_limit: MAX_LIMIT, order: &TASK_ORDER })
        }
        "leads/notes" | "contacts/notes" | "companies/notes" => {
            let entity = rest.split('/').next().unwrap_or_default();
            let mut f = Filters::default();
            f.any_of(q, "id", "id", trimmed).any_of(q, "note_type", "note_type", trimmed).any_of(q, "entity_id", "entity_id", trimmed).range(q, "updated_at");
            let rows = data.notes.iter().filter(|(e, _)| e == entity).map(|(_, n)| n);
            paged(base, path, q, rows, &f, &ListSpec { key: "notes", max_limit: MAX_LIMIT, order: &NOTE_ORDER })
        }
        "events" => {
            // A-EVENTS-1: `filter[entity_id]` takes at most 10 ids and needs exactly one
            // `filter[entity]`.
            let entity_ids = q.list(&["filter", "entity_id"]).len();
            if entity_ids > 0 && (entity_ids > 10 || q.list(&["filter", "entity"]).len() != 1) {
                let mut body = fixture_json(ERROR_VALIDATION);
                body["validation-errors"][0]["errors"] = json!([{"code": "InvalidFilter", "path": "filter.entity_id", "detail": "entity_id needs exactly one filter[entity] and at most 10 ids"}]);
                return Answer::json(StatusCode::BAD_REQUEST, PROBLEM_JSON, &body);
            }
            let mut f = Filters::default();
            f.any_of(q, "id", "id", trimmed)
                .any_of(q, "type", "type", trimmed)
                .any_of(q, "entity", "entity_type", singular)
                .any_of(q, "entity_id", "entity_id", trimmed)
                .any_of(q, "created_by", "created_by", trimmed)
                .range(q, "created_at");
            paged(base, path, q, data.events.iter(), &f, &ListSpec { key: "events", max_limit: MAX_EVENTS_LIMIT, order: &EVENT_ORDER })
        }
        "catalogs" => {
            let spec = ListSpec { key: "catalogs", max_limit: MAX_LIMIT, order: &BY_ID };
            paged(base, path, q, data.catalogs.iter(), &Filters::default(), &spec)
        }
        _ if rest.starts_with("catalogs/") && rest.ends_with("/elements") => {
            let catalog = rest.trim_start_matches("catalogs/").trim_end_matches("/elements");
            let rows = data.catalog_elements.iter().filter(|e| e["catalog_id"].as_i64().map(|c| c.to_string()).as_deref() == Some(catalog));
            let mut f = Filters::default();
            f.any_of(q, "id", "id", trimmed);
            // A-PAGE-7: element pages come without a `next` link, even when full.
            let mut answer = paged(base, path, q, rows, &f, &ListSpec { key: "elements", max_limit: MAX_LIMIT, order: &BY_ID });
            if answer.status == StatusCode::OK {
                let mut v: Value = serde_json::from_slice(&answer.body).unwrap();
                if let Some(links) = v["_links"].as_object_mut() {
                    links.remove("next");
                }
                answer = Answer::hal(&v);
            }
            answer
        }
        _ => match rest.split_once('/') {
            // One record by id (`GET /api/v4/{entity}/{id}`).
            Some((entity @ ("leads" | "contacts" | "companies"), id)) if id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty() => {
                let rows = match entity {
                    "leads" => &data.leads,
                    "contacts" => &data.contacts,
                    _ => &data.companies,
                };
                // A-LEADS-9, A-CONT-4: no such record (deleted ones included) is a 204.
                match rows.iter().find(|r| r["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id)) {
                    Some(record) if entity == "leads" => Answer::hal(&lead_with(record, &q.with())),
                    Some(record) => Answer::hal(record),
                    None => Answer::no_content(),
                }
            }
            _ => Answer::problem(StatusCode::NOT_FOUND, "Not Found"),
        },
    }
}

/// `limit` (default 50; 0 or not a number: the default) or the 422 when above `max`.
fn parse_limit(q: &Query, max: usize) -> Result<usize, Answer> {
    let limit = q.get(&["limit"]).and_then(|l| l.trim().parse::<usize>().ok()).filter(|&l| l > 0).unwrap_or(DEFAULT_LIMIT);
    if limit <= max {
        return Ok(limit);
    }
    if max == MAX_LIMIT {
        return Err(Answer::new(StatusCode::UNPROCESSABLE_ENTITY, PROBLEM_JSON, ERROR_LIMIT));
    }
    let mut body = fixture_json(ERROR_LIMIT);
    body["detail"] = json!(format!("Limit {max} per page"));
    Err(Answer::json(StatusCode::UNPROCESSABLE_ENTITY, PROBLEM_JSON, &body))
}

/// `page` (1-based; default 1).
fn parse_page(q: &Query) -> usize {
    q.get(&["page"]).and_then(|p| p.trim().parse::<usize>().ok()).filter(|&p| p >= 1).unwrap_or(1)
}

fn href(base: &str, path: &str, q: &Query, page: usize) -> Value {
    json!({"href": format!("{base}{path}?{}", q.with_page(page))})
}

/// `self`, and from page 2 on `first` and `prev`, as the vendor's page 2 has them.
fn page_links(base: &str, path: &str, q: &Query, page: usize) -> Map<String, Value> {
    let mut links = Map::new();
    links.insert("self".into(), href(base, path, q, page));
    if page > 1 {
        links.insert("first".into(), href(base, path, q, 1));
        links.insert("prev".into(), href(base, path, q, page - 1));
    }
    links
}

/// Filters, sorts and pages `rows`. An empty page is the 204; a full page has `next` even
/// when nothing follows (the vendor's phantom next, amocrm-api-php#193).
fn paged<'a>(base: &str, path: &str, q: &Query, rows: impl Iterator<Item = &'a Value>, filters: &Filters, spec: &ListSpec) -> Answer {
    let limit = match parse_limit(q, spec.max_limit) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let page = parse_page(q);
    if let Some((field, _)) = q.order()
        && spec.order.fields != EVENT_ORDER.fields
        && !spec.order.fields.contains(&field)
    {
        let mut body = fixture_json(ERROR_VALIDATION);
        body["validation-errors"][0]["errors"] = json!([{"code": "NotSupportedChoice", "path": format!("order.{field}"), "detail": "The value you selected is not a valid choice."}]);
        return Answer::json(StatusCode::BAD_REQUEST, PROBLEM_JSON, &body);
    }
    let mut hits: Vec<&Value> = rows.filter(|r| filters.matches(r)).collect();
    sort_rows(&mut hits, q, spec.order);
    let rows: Vec<Value> = hits.iter().skip((page - 1).saturating_mul(limit)).take(limit).map(|r| (*r).clone()).collect();
    if rows.is_empty() {
        return Answer::no_content();
    }
    let mut links = page_links(base, path, q, page);
    if rows.len() == limit {
        links.insert("next".into(), href(base, path, q, page + 1));
    }
    Answer::hal(&json!({"_page": page, "_links": links, "_embedded": {spec.key: rows}}))
}

/// `/api/v4/users`: paged, with `_total_items` and `_page_count`; `next` only when a page follows.
fn users(data: &MockData, base: &str, path: &str, q: &Query) -> Answer {
    let limit = match parse_limit(q, MAX_LIMIT) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let page = parse_page(q);
    let total = data.users.len();
    let page_count = total.div_ceil(limit);
    let rows: Vec<Value> = data.users.iter().skip((page - 1).saturating_mul(limit)).take(limit).cloned().collect();
    if rows.is_empty() {
        return Answer::no_content();
    }
    let mut links = page_links(base, path, q, page);
    if page < page_count {
        links.insert("next".into(), href(base, path, q, page + 1));
    }
    Answer::hal(&json!({"_total_items": total, "_page": page, "_page_count": page_count, "_links": links, "_embedded": {"users": rows}}))
}

/// Pipelines and loss reasons: everything at once, with `_total_items`, no `_page`.
fn dictionary(base: &str, path: &str, key: &str, rows: &[Value]) -> Answer {
    Answer::hal(&json!({
        "_total_items": rows.len(),
        "_links": {"self": {"href": format!("{base}{}", path.trim_end_matches('/'))}},
        "_embedded": {key: rows},
    }))
}

// ---------------------------------------------------------------------------------------
// Mutations for incremental-sync tests
// ---------------------------------------------------------------------------------------

fn find_mut(rows: &mut [Value], id: i64) -> Option<&mut Value> {
    rows.iter_mut().find(|r| r["id"].as_i64() == Some(id))
}

fn self_link(path: &str) -> Value {
    json!({"self": {"href": format!("{FIXTURE_HOST}{path}")}})
}

/// `[{"lead_status": {"id", "pipeline_id"}}]`: value_before / value_after of a status change.
fn lead_status(status_id: i64, pipeline_id: i64) -> Value {
    json!([{"lead_status": {"id": status_id, "pipeline_id": pipeline_id}}])
}

/// An event as `/api/v4/events` lists it; `entity` is (entity_type, entity_id) and `values`
/// (value_before, value_after).
fn event(id: String, kind: &str, entity: (&str, i64), created_by: i64, created_at: i64, values: (Value, Value)) -> Value {
    let (entity_type, entity_id) = entity;
    json!({
        "id": id,
        "type": kind,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "created_by": created_by,
        "created_at": created_at,
        "value_after": values.1,
        "value_before": values.0,
        "account_id": ACCOUNT_ID,
        "_links": self_link(&format!("/api/v4/events/{id}")),
        "_embedded": {"entity": {"id": entity_id, "_links": self_link(&format!("/api/v4/{}/{entity_id}", plural(entity_type)))}},
    })
}

impl MockState {
    /// Applies `f` to lead `id`, sets `updated_at = at`, and logs a `sale_field_changed`
    /// event (value_before/value_after `[{"sale_field_value": {"sale": price}}]`, by the
    /// lead's `updated_by`). Panics when there is no such lead.
    pub fn edit_lead(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("edit_lead: no lead {id}"));
        let before = lead["price"].clone();
        f(lead);
        lead["updated_at"] = json!(at);
        let after = lead["price"].clone();
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        let values = (json!([{"sale_field_value": {"sale": before}}]), json!([{"sale_field_value": {"sale": after}}]));
        data.events.push(event(event_id, "sale_field_changed", ("lead", id), by, at, values));
    }

    /// Moves lead `id` to (pipeline_id, status_id): `updated_at = at`, `updated_by = by`,
    /// `closed_at = at` for 142/143 (null otherwise); logs a `lead_status_changed` event.
    pub fn move_lead(&self, id: i64, pipeline_id: i64, status_id: i64, at: i64, by: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("move_lead: no lead {id}"));
        let before = lead_status(lead["status_id"].as_i64().unwrap_or(0), lead["pipeline_id"].as_i64().unwrap_or(0));
        lead["status_id"] = json!(status_id);
        lead["pipeline_id"] = json!(pipeline_id);
        lead["updated_at"] = json!(at);
        lead["updated_by"] = json!(by);
        lead["closed_at"] = if status_id == WON || status_id == LOST { json!(at) } else { Value::Null };
        let after = lead_status(status_id, pipeline_id);
        data.events.push(event(event_id, "lead_status_changed", ("lead", id), by, at, (before, after)));
    }

    /// Adds `lead` with `created_at = updated_at = at`; logs a `lead_added` event (by its
    /// `created_by`; value_before `[]`, value_after its `lead_status`).
    pub fn add_lead(&self, mut lead: Value, at: i64) {
        let event_id = self.next_event_id();
        lead["created_at"] = json!(at);
        lead["updated_at"] = json!(at);
        let id = lead["id"].as_i64().expect("add_lead: the lead needs an id");
        let by = lead["created_by"].as_i64().unwrap_or(0);
        let after = match (lead["status_id"].as_i64(), lead["pipeline_id"].as_i64()) {
            (Some(s), Some(p)) => lead_status(s, p),
            _ => json!([]),
        };
        let mut data = self.data.lock().unwrap();
        assert!(!data.leads.iter().any(|l| l["id"].as_i64() == Some(id)), "add_lead: lead {id} exists");
        data.leads.push(lead);
        data.events.push(event(event_id, "lead_added", ("lead", id), by, at, (json!([]), after)));
    }

    /// Moves lead `id` to the trash (id, `updated_at = at`, its `updated_by`, is_deleted),
    /// logs a `lead_deleted` event and drops its notes and its tasks.
    pub fn delete_lead(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.leads.iter().position(|l| l["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_lead: no lead {id}"));
        let lead = data.leads.remove(i);
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        data.trash.push(json!({
            "id": id,
            "updated_at": at,
            "updated_by": by,
            "is_deleted": true,
            "account_id": ACCOUNT_ID,
            "_links": self_link(&format!("/api/v4/leads/{id}")),
        }));
        let notes: Vec<Value> = data.notes.iter().filter(|(e, n)| e == "leads" && n["entity_id"].as_i64() == Some(id)).map(|(e, n)| json!([e, n])).collect();
        let tasks: Vec<Value> = data.tasks.iter().filter(|t| t["entity_type"] == "leads" && t["entity_id"].as_i64() == Some(id)).cloned().collect();
        data.trashed.push(json!({"lead": lead, "notes": notes, "tasks": tasks}));
        data.notes.retain(|(e, n)| !(e == "leads" && n["entity_id"].as_i64() == Some(id)));
        data.tasks.retain(|t| !(t["entity_type"] == "leads" && t["entity_id"].as_i64() == Some(id)));
        data.events.push(event(event_id, "lead_deleted", ("lead", id), by, at, (json!([]), json!([]))));
    }

    /// Restores lead `id` from the trash with its notes and tasks, as they were (its
    /// `updated_at` unchanged: nothing in it changed), and logs a `lead_restored` event.
    pub fn restore_lead(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.trashed.iter().position(|t| t["lead"]["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("restore_lead: lead {id} is not in the trash"));
        let trashed = data.trashed.remove(i);
        data.trash.retain(|t| t["id"].as_i64() != Some(id));
        let by = trashed["lead"]["updated_by"].as_i64().unwrap_or(0);
        data.leads.push(trashed["lead"].clone());
        data.leads.sort_by_key(|l| l["id"].as_i64());
        for n in trashed["notes"].as_array().unwrap() {
            data.notes.push((n[0].as_str().unwrap().to_string(), n[1].clone()));
        }
        data.tasks.extend(trashed["tasks"].as_array().unwrap().iter().cloned());
        data.events.push(event(event_id, "lead_restored", ("lead", id), by, at, (json!([]), json!([]))));
    }

    /// Adds `task` with `created_at = updated_at = at` and logs `task_added`.
    pub fn add_task(&self, mut task: Value, at: i64) {
        let event_id = self.next_event_id();
        task["created_at"] = json!(at);
        task["updated_at"] = json!(at);
        let id = task["id"].as_i64().expect("add_task: the task needs an id");
        let by = task["created_by"].as_i64().unwrap_or(0);
        let mut data = self.data.lock().unwrap();
        data.tasks.push(task);
        data.events.push(event(event_id, "task_added", ("task", id), by, at, (json!([]), json!([]))));
    }

    /// Applies `f` to task `id` and sets `updated_at = at` (a completion also logs
    /// `task_completed`).
    pub fn edit_task(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let task = find_mut(&mut data.tasks, id).unwrap_or_else(|| panic!("edit_task: no task {id}"));
        let was_done = task["is_completed"] == json!(true);
        f(task);
        task["updated_at"] = json!(at);
        let (done, by) = (task["is_completed"] == json!(true), task["updated_by"].as_i64().unwrap_or(0));
        if done && !was_done {
            data.events.push(event(event_id, "task_completed", ("task", id), by, at, (json!([]), json!([]))));
        }
    }

    /// Links catalog element `element` to lead `id` with `quantity` (or unlinks it when
    /// `quantity` is `None`), logging `entity_linked`/`entity_unlinked` on the lead; the
    /// lead's `updated_at` stays (A-EVENTS-9).
    pub fn link_product(&self, id: i64, element: i64, quantity: Option<f64>, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("link_product: no lead {id}"));
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        let mut links = lead["_embedded"]["catalog_elements"].as_array().cloned().unwrap_or_default();
        links.retain(|l| l["id"].as_i64() != Some(element));
        if let Some(q) = quantity {
            links.push(json!({"id": element, "metadata": {"quantity": q, "catalog_id": PRODUCTS_CATALOG}}));
        }
        lead["_embedded"]["catalog_elements"] = json!(links);
        let link = json!([{"link": {"entity": {"type": "catalog_elements", "id": element}}}]);
        let (kind, values) = if quantity.is_some() { ("entity_linked", (json!([]), link)) } else { ("entity_unlinked", (link, json!([]))) };
        data.events.push(event(event_id, kind, ("lead", id), by, at, values));
    }

    /// Deletes task `id` (tasks have no trash) and logs `task_deleted`.
    pub fn delete_task(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.tasks.iter().position(|t| t["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_task: no task {id}"));
        let task = data.tasks.remove(i);
        let by = task["updated_by"].as_i64().unwrap_or(0);
        data.events.push(event(event_id, "task_deleted", ("task", id), by, at, (json!([]), json!([]))));
    }

    /// Adds `note` to the notes of `entity` ("leads" | "contacts" | "companies") with
    /// `created_at = updated_at = at`.
    pub fn add_note(&self, entity: &str, mut note: Value, at: i64) {
        assert!(["leads", "contacts", "companies"].contains(&entity), "add_note: entity {entity}");
        note["created_at"] = json!(at);
        note["updated_at"] = json!(at);
        self.data.lock().unwrap().notes.push((entity.to_string(), note));
    }

    /// Applies `f` to contact `id` and sets `updated_at = at` (no event).
    pub fn edit_contact(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let mut data = self.data.lock().unwrap();
        let contact = find_mut(&mut data.contacts, id).unwrap_or_else(|| panic!("edit_contact: no contact {id}"));
        f(contact);
        contact["updated_at"] = json!(at);
    }

    /// Deletes contact `id`: logs a `contact_deleted` event (by its `updated_by`), drops its
    /// notes and tasks, and unlinks it from the leads' `_embedded.contacts` (their
    /// `updated_at` unchanged).
    pub fn delete_contact(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.contacts.iter().position(|c| c["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_contact: no contact {id}"));
        let contact = data.contacts.remove(i);
        let by = contact["updated_by"].as_i64().unwrap_or(0);
        data.notes.retain(|(e, n)| !(e == "contacts" && n["entity_id"].as_i64() == Some(id)));
        data.tasks.retain(|t| !(t["entity_type"] == "contacts" && t["entity_id"].as_i64() == Some(id)));
        for lead in &mut data.leads {
            if let Some(Value::Array(links)) = lead.pointer_mut("/_embedded/contacts") {
                links.retain(|c| c["id"].as_i64() != Some(id));
            }
        }
        data.events.push(event(event_id, "contact_deleted", ("contact", id), by, at, (json!([]), json!([]))));
    }
}

// ---------------------------------------------------------------------------------------
// Time and ids
// ---------------------------------------------------------------------------------------

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A ULID-looking event id (26 lowercase base-32 characters starting "01", like the
/// vendor's) for sequence number `seq`: splitmix is a bijection and all its 64 bits are in
/// the first 13 characters after "01", so distinct numbers give distinct ids.
pub fn event_id(seq: u64) -> String {
    let head = splitmix(seq);
    let tail = splitmix(head ^ 0xA5A5_A5A5_A5A5_A5A5);
    let mut s = String::from("01");
    for i in 0..13 {
        s.push(BASE32[((head >> (5 * i)) & 31) as usize] as char);
    }
    for i in 0..11 {
        s.push(BASE32[((tail >> (5 * i)) & 31) as usize] as char);
    }
    s
}

// ---------------------------------------------------------------------------------------
// Data: the fixtures, and generated accounts
// ---------------------------------------------------------------------------------------

/// Knuth's MMIX linear congruential generator; the high 31 bits of each step.
#[derive(Debug)]
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// In 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// In lo..hi (lo when the range is empty).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { lo + (self.next() % (hi - lo) as u64) as i64 }
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PEOPLE: [(&str, &str); 10] = [
    ("Иван", "Петров"),
    ("Мария", "Смирнова"),
    ("Алексей", "Кузнецов"),
    ("Ольга", "Попова"),
    ("Сергей", "Васильев"),
    ("Наталья", "Новикова"),
    ("Дмитрий", "Фёдоров"),
    ("Екатерина", "Морозова"),
    ("Андрей", "Волков"),
    ("Татьяна", "Лебедева"),
];

const TASK_TEXTS: [&str; 4] = ["Перезвонить клиенту", "Встреча в офисе", "Отправить КП", "Уточнить бюджет"];
const COMMON_NOTES: [&str; 4] = ["Клиент просит скидку", "Отправили презентацию", "Нужен договор до конца месяца", "Решение принимает директор"];

fn contact_phone(j: usize) -> String {
    format!("+7916{:07}", 5_550_000 + j)
}

fn company_phone(k: usize) -> String {
    format!("+7495{:07}", 1_230_000 + k)
}

fn phone_field(phone: String) -> Value {
    json!({"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
           "values": [{"value": phone, "enum_id": 1, "enum_code": "WORK"}]})
}

fn email_field(email: String) -> Value {
    json!({"field_id": 5, "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext",
           "values": [{"value": email, "enum_id": 11, "enum_code": "WORK"}]})
}

/// The fixture leads' two custom fields: "Сегмент" (select) and "Дата встречи" (date).
fn lead_fields(b2b: bool, meeting: i64) -> Value {
    let (value, enum_id) = if b2b { ("B2B", 4_471_001) } else { ("B2C", 4_471_003) };
    json!([
        {"field_id": 1_278_898_021, "field_name": "Сегмент", "field_code": null, "field_type": "select",
         "values": [{"value": value, "enum_id": enum_id, "enum_code": null}]},
        {"field_id": 1_278_898_025, "field_name": "Дата встречи", "field_code": null, "field_type": "date",
         "values": [{"value": meeting}]},
    ])
}

fn call_result(status: i64, rng: &mut Lcg) -> &'static str {
    match status {
        4 => {
            let results: &[&'static str] = &["Успешный разговор", "Договорились о встрече", "Отправить КП"];
            results[rng.below(results.len())]
        }
        1 => "Оставил сообщение",
        2 => "Перезвонить позже",
        5 => "Неверный номер",
        _ => {
            let results: &[&'static str] = &["Не дозвонился", ""];
            results[rng.below(results.len())]
        }
    }
}

impl MockData {
    /// The records of the fixture files as they are: leads of page 1 and page 2 (62), the
    /// trash, both event pages, the call notes (under "leads"), and the rest.
    pub fn fixtures() -> MockData {
        let mut leads = fixture_embedded(LEADS_PAGE1, "leads");
        leads.extend(fixture_embedded(LEADS_PAGE2_LAST, "leads"));
        let mut events = fixture_embedded(fixture!("events_lead_status_changed_page1.json"), "events");
        events.extend(fixture_embedded(fixture!("events_deleted.json"), "events"));
        let notes = fixture_embedded(fixture!("leads_notes_calls_page1.json"), "notes").into_iter().map(|n| ("leads".to_string(), n)).collect();
        MockData {
            account: fixture_json(fixture!("account_with_groups.json")),
            users: fixture_embedded(fixture!("users.json"), "users"),
            pipelines: fixture_embedded(fixture!("leads_pipelines.json"), "pipelines"),
            loss_reasons: fixture_embedded(fixture!("leads_loss_reasons.json"), "loss_reasons"),
            leads,
            trash: fixture_embedded(LEADS_ONLY_DELETED, "leads"),
            contacts: fixture_embedded(fixture!("contacts_page1.json"), "contacts"),
            companies: fixture_embedded(fixture!("companies_page1.json"), "companies"),
            tasks: fixture_embedded(fixture!("tasks_page1.json"), "tasks"),
            notes,
            events,
            trashed: Vec::new(),
            catalogs: Vec::new(),
            catalog_elements: Vec::new(),
        }
    }

    /// An account of `leads` leads built like the fixture ones, over the fixture users,
    /// pipelines, statuses and loss reasons; deterministic, ids unique, references valid.
    ///
    /// * Leads `LEAD_BASE..`, created in id order over the year before [`GENERATED_END`],
    ///   `created_at <= updated_at < GENERATED_END`. Status: ~25 % won (142), ~20 % lost (143,
    ///   with a `loss_reason_id` and `_embedded.loss_reason`), ~10 % in the first (unsorted)
    ///   stage, the rest in later open stages; `closed_at` = `updated_at` when closed, else
    ///   null. ~70 % in the main pipeline. ~35 % carry the select + date custom fields.
    /// * Contacts `CONTACT_BASE..`, ceil(n/2): lead i's one (main) contact is i mod that;
    ///   ~70 % of contacts work for a company, and their leads link it too. Companies
    ///   `COMPANY_BASE..`, ceil(n/5).
    /// * Per lead: `lead_status_changed` events from the pipeline's first stage to the
    ///   current status (the last one at `updated_at`), 1–3 call notes (call_status 4 the
    ///   most frequent), a "common" note ~30 % of the time, and one task. No trash.
    pub fn generated(leads: usize) -> MockData {
        let fx = MockData::fixtures();
        let n = leads;
        let mut rng = Lcg::new(0x616D_6F63_726D);
        let users: Vec<(i64, i64)> = fx.users.iter().map(|u| (u["id"].as_i64().unwrap(), u["rights"]["group_id"].as_i64().unwrap_or(0))).collect();
        // Per pipeline: its id and open statuses in stage order (the first is "unsorted").
        let pipelines: Vec<(i64, Vec<i64>)> = fx
            .pipelines
            .iter()
            .map(|p| {
                let mut statuses: Vec<&Value> = p["_embedded"]["statuses"].as_array().unwrap().iter().collect();
                statuses.sort_by_key(|s| s["sort"].as_i64());
                let open = statuses.iter().filter_map(|s| s["id"].as_i64()).filter(|id| *id != WON && *id != LOST).collect();
                (p["id"].as_i64().unwrap(), open)
            })
            .collect();
        let reasons = fx.loss_reasons.clone();

        let n_contacts = n.div_ceil(2).max(1);
        let n_companies = n.div_ceil(5).max(1);
        let mut next_company = 0;
        let contact_company: Vec<Option<usize>> = (0..n_contacts)
            .map(|_| {
                if rng.chance(70) {
                    next_company += 1;
                    Some((next_company - 1) % n_companies)
                } else {
                    None
                }
            })
            .collect();
        let contact_id = |j: usize| CONTACT_BASE + j as i64;
        let company_id = |k: usize| COMPANY_BASE + k as i64;

        let start = GENERATED_END - 365 * DAY;
        let last_created = GENERATED_END - 7 * DAY;
        let step = ((last_created - start) / n.max(1) as i64).max(1);
        let mut out = MockData {
            account: fx.account.clone(),
            users: fx.users.clone(),
            pipelines: fx.pipelines.clone(),
            loss_reasons: reasons.clone(),
            ..MockData::default()
        };
        let mut note_id = NOTE_BASE;
        let mut event_seq = 0_u64;
        // (created_at, responsible, group) of each lead: its contact is made just before.
        let mut lead_meta: Vec<(i64, i64, i64)> = Vec::with_capacity(n);

        for i in 0..n {
            let id = LEAD_BASE + i as i64;
            let (responsible, group) = *rng.pick(&users);
            let (pipeline_id, open) = if pipelines.len() < 2 || rng.chance(70) { &pipelines[0] } else { &pipelines[1] };
            let pipeline_id = *pipeline_id;

            // The stages it went through, first stage first.
            let roll = rng.below(100);
            let path: Vec<i64> = if roll < 45 {
                let m = rng.below(open.len());
                let mut p = open[..=m].to_vec();
                p.push(if roll < 25 { WON } else { LOST });
                p
            } else if roll < 55 {
                vec![open[0]]
            } else {
                let k = if open.len() > 1 { 1 + rng.below(open.len() - 1) } else { 0 };
                open[..=k].to_vec()
            };
            let status = *path.last().unwrap();
            let moves = path.len() as i64 - 1;
            let closed = status == WON || status == LOST;

            let created = (start + step * i as i64 + rng.between(0, step)).min(last_created);
            let min_life = 3600 * (moves + 1);
            let life = rng.between(min_life, (60 * DAY).min(GENERATED_END - 1 - created));
            let updated = created + life;

            let j = i % n_contacts;
            let company = contact_company[j];
            let reason = (status == LOST).then(|| rng.pick(&reasons).clone());
            let price = if status == LOST && rng.chance(30) { 0 } else { rng.between(5, 500) * 1000 };
            let updated_by = if rng.chance(30) { rng.pick(&users).0 } else { responsible };
            let custom = if rng.chance(35) {
                let b2b = rng.chance(50);
                lead_fields(b2b, (created + rng.between(DAY, 14 * DAY)) / DAY * DAY)
            } else {
                Value::Null
            };
            let mut embedded = json!({
                "tags": [],
                "contacts": [{"id": contact_id(j), "is_main": true, "_links": self_link(&format!("/api/v4/contacts/{}", contact_id(j)))}],
                "companies": company.map_or_else(Vec::new, |k| vec![json!({"id": company_id(k), "_links": self_link(&format!("/api/v4/companies/{}", company_id(k)))})]),
            });
            if let Some(r) = &reason {
                embedded["loss_reason"] = json!([r]);
            }
            out.leads.push(json!({
                "id": id,
                "name": format!("Сделка #{id}"),
                "price": price,
                "responsible_user_id": responsible,
                "group_id": group,
                "status_id": status,
                "pipeline_id": pipeline_id,
                "loss_reason_id": reason.as_ref().map(|r| r["id"].clone()),
                "source_id": null,
                "created_by": responsible,
                "updated_by": updated_by,
                "created_at": created,
                "updated_at": updated,
                "closed_at": closed.then_some(updated),
                "closest_task_at": null,
                "is_deleted": false,
                "custom_fields_values": custom,
                "score": null,
                "account_id": ACCOUNT_ID,
                "_links": self_link(&format!("/api/v4/leads/{id}")),
                "_embedded": embedded,
            }));

            // Stage history: one event per move, evenly spaced, the last at updated_at.
            for (m, pair) in path.windows(2).enumerate() {
                let at = created + (m as i64 + 1) * life / moves;
                let by = if rng.chance(80) { responsible } else { rng.pick(&users).0 };
                let values = (lead_status(pair[0], pipeline_id), lead_status(pair[1], pipeline_id));
                out.events.push(event(event_id(event_seq), "lead_status_changed", ("lead", id), by, at, values));
                event_seq += 1;
            }

            // Calls, and sometimes a plain note. Some first calls are logged on the
            // client's contact or company card instead of the deal (incoming calls land there).
            for call in 0..1 + rng.below(3) {
                let (entity, entity_id) = match (call, i % 9, company) {
                    (0, 0 | 5, _) => ("contacts", contact_id(j)),
                    (0, 4, Some(k)) => ("companies", company_id(k)),
                    _ => ("leads", id),
                };
                let at = rng.between(created, updated + 1);
                let call_status: i64 = if rng.chance(45) { 4 } else { *rng.pick(&[1, 2, 3, 5, 6, 7]) };
                let duration = match call_status {
                    4 => rng.between(15, 900),
                    1 => rng.between(5, 60),
                    _ => 0,
                };
                let result = call_result(call_status, &mut rng);
                let note_type = if rng.chance(50) { "call_in" } else { "call_out" };
                out.notes.push((
                    entity.into(),
                    json!({
                        "id": note_id, "entity_id": entity_id, "created_by": responsible, "updated_by": responsible,
                        "created_at": at, "updated_at": at, "responsible_user_id": responsible, "group_id": group,
                        "note_type": note_type,
                        "params": {
                            "uniq": format!("8f52d38a-5fb3-406d-93a3-{note_id:012x}"),
                            "duration": duration,
                            "source": "onlinePBX",
                            "link": format!("https://pbx.example.com/rec/{note_id}.mp3"),
                            "phone": contact_phone(j),
                            "call_result": result,
                            "call_status": call_status,
                        },
                        "account_id": ACCOUNT_ID,
                        "_links": self_link(&format!("/api/v4/{entity}/{entity_id}/notes/{note_id}")),
                    }),
                ));
                note_id += 1;
            }
            if rng.chance(30) {
                let at = rng.between(created, updated + 1);
                let text = *rng.pick(&COMMON_NOTES);
                out.notes.push((
                    "leads".into(),
                    json!({
                        "id": note_id, "entity_id": id, "created_by": updated_by, "updated_by": updated_by,
                        "created_at": at, "updated_at": at, "responsible_user_id": responsible, "group_id": group,
                        "note_type": "common", "params": {"text": text}, "account_id": ACCOUNT_ID,
                        "_links": self_link(&format!("/api/v4/leads/{id}/notes/{note_id}")),
                    }),
                ));
                note_id += 1;
            }

            // One task.
            let task_id = TASK_BASE + i as i64;
            let task_created = rng.between(created, updated + 1);
            let done = closed || rng.chance(30);
            let task_updated = if done { rng.between(task_created, updated + 1) } else { task_created };
            let task_type = 1 + rng.below(2);
            let text = *rng.pick(&TASK_TEXTS);
            let complete_till = task_created + rng.between(DAY, 5 * DAY);
            out.tasks.push(json!({
                "id": task_id, "created_by": responsible, "updated_by": responsible,
                "created_at": task_created, "updated_at": task_updated,
                "responsible_user_id": responsible, "group_id": group,
                "entity_id": id, "entity_type": "leads", "duration": 0,
                "is_completed": done, "task_type_id": task_type, "text": text,
                "result": if done { json!({"text": "Выполнено"}) } else { json!([]) },
                "complete_till": complete_till, "account_id": ACCOUNT_ID,
                "_links": self_link(&format!("/api/v4/tasks/{task_id}")),
            }));
            lead_meta.push((created, responsible, group));
        }

        for (j, company) in contact_company.iter().enumerate() {
            let id = contact_id(j);
            let (first_lead, responsible, group) = lead_meta.get(j).copied().unwrap_or((start, users[0].0, users[0].1));
            let created = first_lead - rng.between(0, 3 * DAY);
            let updated = (created + rng.between(0, 30 * DAY)).min(GENERATED_END - 1).max(created);
            let (first, last) = PEOPLE[j % PEOPLE.len()];
            let mut fields = vec![phone_field(contact_phone(j))];
            if rng.chance(90) {
                fields.push(email_field(format!("client{id}@example.com")));
            }
            let companies: Vec<Value> =
                company.iter().map(|&k| json!({"id": company_id(k), "_links": self_link(&format!("/api/v4/companies/{}", company_id(k)))})).collect();
            out.contacts.push(json!({
                "id": id, "name": format!("{first} {last}"), "first_name": first, "last_name": last,
                "responsible_user_id": responsible, "group_id": group, "created_by": responsible, "updated_by": responsible,
                "created_at": created, "updated_at": updated, "closest_task_at": null,
                "is_deleted": false, "is_unsorted": false, "custom_fields_values": fields,
                "account_id": ACCOUNT_ID, "_links": self_link(&format!("/api/v4/contacts/{id}")),
                "_embedded": {"tags": [], "companies": companies},
            }));
        }

        for k in 0..n_companies {
            let id = company_id(k);
            let (responsible, group) = *rng.pick(&users);
            let created = start - rng.between(DAY, 90 * DAY);
            let updated = created + rng.between(0, 30 * DAY);
            let fields = if rng.chance(70) { json!([phone_field(company_phone(k))]) } else { Value::Null };
            out.companies.push(json!({
                "id": id, "name": format!("ООО Ромашка-{}", k + 1), "responsible_user_id": responsible, "group_id": group,
                "created_by": responsible, "updated_by": responsible, "created_at": created, "updated_at": updated,
                "closest_task_at": null, "is_deleted": false, "custom_fields_values": fields,
                "account_id": ACCOUNT_ID, "_links": self_link(&format!("/api/v4/companies/{id}")),
                "_embedded": {"tags": []},
            }));
        }
        add_products_and_sources(&mut out);
        out
    }
}

/// The lead sources a generated account knows: (id, name as `with=source` gives it).
pub const SOURCES: [(i64, &str); 4] = [(1001, "Сайт acme.ru"), (1002, "WhatsApp"), (1003, "Обратный звонок"), (1004, "API")];
/// The products catalog of a generated account, and its element count (over one page).
pub const PRODUCTS_CATALOG: i64 = 7001;
pub const PRODUCT_COUNT: usize = 260;

/// Products (a catalog of [`PRODUCT_COUNT`] elements with a `PRICE` and a second price
/// field, and a regular catalog), links of ~half the deals to 1–2 of them, a source on ~40 %
/// of deals and UTM tracking fields on ~30 % (A-PROD, A-CATEL, A-LEADS-5, A-UTM rows).
fn add_products_and_sources(out: &mut MockData) {
    out.catalogs = vec![
        json!({"id": PRODUCTS_CATALOG, "name": "Товары", "type": "products", "sort": 10, "can_add_elements": true, "account_id": ACCOUNT_ID}),
        json!({"id": 7002, "name": "Склады", "type": "regular", "sort": 20, "can_add_elements": true, "account_id": ACCOUNT_ID}),
    ];
    for k in 0..PRODUCT_COUNT {
        let id = 900_000 + k as i64;
        out.catalog_elements.push(json!({
            "id": id, "catalog_id": PRODUCTS_CATALOG, "name": format!("Товар {k}"), "is_deleted": false, "account_id": ACCOUNT_ID,
            "custom_fields_values": [
                {"field_id": 3001, "field_name": "Артикул", "field_code": "SKU", "field_type": "text", "values": [{"value": format!("SKU-{k}")}]},
                {"field_id": 3002, "field_name": "Цена", "field_code": "PRICE", "field_type": "numeric", "values": [{"value": format!("{}", 1000 + 50 * (k % 40))}]},
                {"field_id": 3003, "field_name": "Оптовая цена", "field_code": null, "field_type": "price", "values": [{"value": format!("{}", 800 + 40 * (k % 40))}]},
            ],
        }));
    }
    out.catalog_elements.push(json!({"id": 990_001, "catalog_id": 7002, "name": "Склад 1", "is_deleted": false, "custom_fields_values": null, "account_id": ACCOUNT_ID}));
    for (i, lead) in out.leads.iter_mut().enumerate() {
        let h = splitmix(i as u64 + 17);
        if h.is_multiple_of(2) {
            let n = 1 + (h >> 8) as usize % 2;
            let links: Vec<Value> = (0..n)
                .map(|j| {
                    let element = 900_000 + ((h >> 16) as usize + 37 * j) % PRODUCT_COUNT;
                    let mut metadata = json!({"quantity": 1 + (h >> 24) % 3 + j as u64, "catalog_id": PRODUCTS_CATALOG});
                    if (h >> 32).is_multiple_of(4) {
                        metadata["price_id"] = json!(3003);
                        metadata["quantity"] = json!(2.5);
                    }
                    json!({"id": element, "metadata": metadata})
                })
                .collect();
            lead["_embedded"]["catalog_elements"] = json!(links);
        }
        if (h >> 40) % 5 < 2 {
            let (id, name) = SOURCES[(h >> 44) as usize % SOURCES.len()];
            lead["source_id"] = json!(id);
            lead["_embedded"]["source"] = json!({"id": id, "name": name});
        }
        if (h >> 48) % 10 < 3 {
            let (source, medium) = [("yandex", "cpc"), ("google", "cpc"), ("vk", "social"), ("newsletter", "email")][(h >> 52) as usize % 4];
            let fields = lead["custom_fields_values"].as_array().cloned().unwrap_or_default();
            let mut fields = fields;
            fields.push(json!({"field_id": 2001, "field_name": "utm_source", "field_code": "UTM_SOURCE", "field_type": "tracking_data", "values": [{"value": source}]}));
            fields.push(json!({"field_id": 2002, "field_name": "utm_medium", "field_code": "UTM_MEDIUM", "field_type": "tracking_data", "values": [{"value": medium}]}));
            lead["custom_fields_values"] = json!(fields);
        }
    }
}

/// A lead as a list or `GET /leads/{id}` gives it for `with`: `_embedded.source`,
/// `_embedded.catalog_elements`, `_embedded.contacts` and the loss reason only when asked
/// (A-LEADS-2, -5). `source_id` stays: the fixture pages carry it without `with=source_id`.
fn lead_with(lead: &Value, with: &[&str]) -> Value {
    let mut lead = lead.clone();
    if let Some(Value::Object(e)) = lead.get_mut("_embedded") {
        for key in ["source", "catalog_elements", "contacts", "loss_reason"] {
            if !with.contains(&key) {
                e.remove(key);
            }
        }
    }
    lead
}

// ---------------------------------------------------------------------------------------
// The oracle: the canonical tables' keys straight from the account's records
// ---------------------------------------------------------------------------------------

impl MockData {
    /// What a sync of this account must give, derived from the records here and not from
    /// the connector: per table, its rows' keys (`deal_items`: `deal|deal:element` for
    /// links into the products catalog; `deal_stage_history`: `deal|rows`, one creation row
    /// and one per stage event of a live deal).
    pub fn oracle(&self) -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        use std::collections::{BTreeMap, BTreeSet};
        let ids = |rows: &[Value]| -> BTreeSet<String> { rows.iter().filter_map(|r| r["id"].as_i64()).map(|i| i.to_string()).collect() };
        let deals = ids(&self.leads);
        let (contacts, companies) = (ids(&self.contacts), ids(&self.companies));
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        out.insert("deals", deals.clone());
        out.insert("contacts", contacts.clone());
        out.insert("companies", companies.clone());
        out.insert("tasks", ids(&self.tasks));
        let live = |(entity, n): &&(String, Value)| {
            let owner = n["entity_id"].as_i64().map(|i| i.to_string()).unwrap_or_default();
            match entity.as_str() {
                "leads" => deals.contains(&owner),
                "contacts" => contacts.contains(&owner),
                _ => companies.contains(&owner),
            }
        };
        out.insert("activities", self.notes.iter().filter(live).filter_map(|(_, n)| n["id"].as_i64()).map(|i| i.to_string()).collect());
        out.insert("calls", self.notes.iter().filter(live).filter(|(_, n)| matches!(n["note_type"].as_str(), Some("call_in" | "call_out"))).filter_map(|(_, n)| n["id"].as_i64()).map(|i| i.to_string()).collect());
        let mut items = BTreeSet::new();
        for lead in &self.leads {
            for link in lead["_embedded"]["catalog_elements"].as_array().into_iter().flatten() {
                if link["metadata"]["catalog_id"] == PRODUCTS_CATALOG {
                    items.insert(format!("{0}|{0}:{1}", lead["id"], link["id"]));
                }
            }
        }
        out.insert("deal_items", items);
        let mut moves: BTreeMap<String, usize> = deals.iter().map(|d| (d.clone(), 1)).collect();
        for e in self.events.iter().filter(|e| e["type"] == "lead_status_changed") {
            if let Some(n) = e["entity_id"].as_i64().and_then(|d| moves.get_mut(&d.to_string())) {
                *n += 1;
            }
        }
        out.insert("deal_stage_history", moves.into_iter().map(|(d, n)| format!("{d}|{n}")).collect());
        out
    }
}

// ---------------------------------------------------------------------------------------
// Tests of the mock itself
// ---------------------------------------------------------------------------------------

/// A config whose rate limit never bites (for tests that are not about it).
fn unlimited() -> MockConfig {
    MockConfig { requests_per_second: 1_000_000, block_after_429s: 0, retry_after_seconds: 0, ..MockConfig::default() }
}

/// One answer as the test sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A test client of one mock, with the long-lived token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(mock: &MockAmoCrm) -> Api {
        Api { http: reqwest::Client::builder().no_proxy().build().unwrap(), base: mock.base_url.clone(), token: Some("long-lived-token".into()) }
    }

    fn with_token(&self, token: Option<&str>) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), token: token.map(String::from) }
    }

    /// GET `url` (absolute, or a path under the mock).
    async fn get(&self, url: &str) -> Reply {
        let url = if url.starts_with("http") { url.to_string() } else { format!("{}{url}", self.base) };
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
        let body = r.bytes().await.unwrap().to_vec();
        Reply { status, content_type, headers, body }
    }

    /// GET that must answer 200 hal+json.
    async fn ok(&self, url: &str) -> Value {
        let r = self.get(url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        assert_eq!(r.content_type.as_deref(), Some(HAL_JSON), "{url}");
        r.json()
    }

    /// `_embedded[key]` of a 200, or nothing on a 204.
    async fn rows(&self, url: &str, key: &str) -> Vec<Value> {
        let r = self.get(url).await;
        match r.status {
            204 => Vec::new(),
            200 => r.json()["_embedded"][key].as_array().unwrap().clone(),
            s => panic!("{url}: {s} {}", r.text()),
        }
    }

    async fn post_token(&self, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}/oauth2/access_token", self.base)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// The fixture's envelope `_links` pointing at the mock instead of the vendor's host.
fn rehost(links: &Value, base: &str) -> Value {
    serde_json::from_str(&links.to_string().replace(FIXTURE_HOST, base)).unwrap()
}

/// A fixture page as the mock must answer it: records verbatim, envelope links at the mock.
fn expected_page(text: &str, base: &str) -> Value {
    let mut v = fixture_json(text);
    v["_links"] = rehost(&v["_links"], base);
    v
}

#[tokio::test]
async fn fixture_pages_come_back_verbatim() {
    let mock = MockAmoCrm::start(unlimited(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let base = &mock.base_url;

    let page1 = api.ok(&format!("/api/v4/leads?{LEADS_PAGE1_QUERY}")).await;
    assert_eq!(page1, expected_page(LEADS_PAGE1, base));
    // Follow next verbatim: page 2 is the last, with first/prev and no next.
    let page2 = api.ok(page1["_links"]["next"]["href"].as_str().unwrap()).await;
    assert_eq!(page2, expected_page(LEADS_PAGE2_LAST, base));
    let r = api.get(&format!("/api/v4/leads?{}", LEADS_PAGE1_QUERY.replace("page=1", "page=3"))).await;
    assert_eq!((r.status, r.content_type, r.body.as_slice()), (204, None, LEADS_PAGE3_EMPTY.as_bytes()));

    let cases = [
        ("/api/v4/leads?with=only_deleted&page=1&limit=250", LEADS_ONLY_DELETED),
        ("/api/v4/contacts?limit=250&filter%5Bupdated_at%5D%5Bfrom%5D=1756101600&page=1", fixture!("contacts_page1.json")),
        ("/api/v4/companies?limit=250&page=1", fixture!("companies_page1.json")),
        ("/api/v4/tasks?filter[updated_at][from]=1756706400&limit=250&page=1", fixture!("tasks_page1.json")),
        (
            "/api/v4/leads/notes?filter[note_type][0]=call_in&filter[note_type][1]=call_out&filter[updated_at][from]=1756706400&limit=250&page=1",
            fixture!("leads_notes_calls_page1.json"),
        ),
        ("/api/v4/users?with=role%2Cgroup&page=1&limit=250", fixture!("users.json")),
        ("/api/v4/leads/pipelines", fixture!("leads_pipelines.json")),
        ("/api/v4/leads/loss_reasons", fixture!("leads_loss_reasons.json")),
    ];
    for (url, fixture) in cases {
        assert_eq!(api.ok(url).await, expected_page(fixture, base), "{url}");
    }

    // The account: the configured filter flag, links at the mock.
    let account = api.ok("/api/v4/account?with=users_groups,task_types,datetime_settings,is_api_filter_enabled").await;
    let mut expected = fixture_json(fixture!("account_with_groups.json"));
    expected["is_api_filter_enabled"] = json!(true);
    expected["_links"]["self"]["href"] = json!(format!("{base}/api/v4/account"));
    assert_eq!(account, expected);

    // Events: newest first (the fixture pages list them oldest first).
    let events = api.ok("/api/v4/events?filter%5Btype%5D%5B0%5D=lead_deleted&filter%5Btype%5D%5B1%5D=contact_deleted&filter%5Btype%5D%5B2%5D=company_deleted&limit=100&page=1").await;
    let mut expected = fixture_embedded(fixture!("events_deleted.json"), "events");
    expected.reverse();
    assert_eq!(events["_embedded"]["events"], json!(expected));
    let page = api.ok("/api/v4/events?filter[type]=lead_status_changed&filter[created_at][from]=1756706400&limit=4&page=1").await;
    let mut expected = fixture_embedded(fixture!("events_lead_status_changed_page1.json"), "events");
    expected.reverse();
    assert_eq!(page["_embedded"]["events"], json!(expected));
    // Four rows of limit 4: the phantom next.
    assert!(page["_links"]["next"]["href"].as_str().unwrap().ends_with("&limit=4&page=2"));
    assert_eq!(api.get("/api/v4/events?filter[type]=lead_status_changed&limit=4&page=2").await.status, 204);

    assert_eq!(mock.state.path_calls("/api/v4/leads"), 4);
    assert_eq!(mock.state.requests(), 15);
    assert_eq!(mock.state.served_ok(), 15);
}

#[tokio::test]
async fn paging_follows_next_links_to_the_phantom_204() {
    let data = MockData::generated(100);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);

    let mut url = format!("{}/api/v4/leads?limit=25&order%5Bid%5D=asc", mock.base_url);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = api.get(&url).await;
        if r.status == 204 {
            assert!(r.body.is_empty() && r.content_type.is_none());
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pages += 1;
        assert_eq!(v["_page"], pages);
        assert!(v.get("_total_items").is_none());
        assert_eq!(v["_links"]["self"]["href"], format!("{}/api/v4/leads?limit=25&order%5Bid%5D=asc&page={pages}", mock.base_url));
        let rows = v["_embedded"]["leads"].as_array().unwrap();
        assert_eq!(rows.len(), 25);
        seen.extend(ids(rows));
        url = v["_links"]["next"]["href"].as_str().expect("a full page has next").to_string();
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, ids(&data.leads));
    assert_eq!(mock.state.path_calls("/api/v4/leads"), 5);
    assert_eq!(mock.state.served_ok(), 5);

    // 110 leads: the short last page has no next.
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(110)).await;
    let api = Api::new(&mock);
    let last = api.ok("/api/v4/leads?limit=25&page=5").await;
    assert_eq!(last["_embedded"]["leads"].as_array().unwrap().len(), 10);
    assert!(last["_links"].get("next").is_none());
    assert!(last["_links"]["prev"]["href"].as_str().unwrap().ends_with("limit=25&page=4"));
    // The default limit is 50; 250 is allowed, 251 is not.
    assert_eq!(api.ok("/api/v4/leads").await["_embedded"]["leads"].as_array().unwrap().len(), 50);
    assert_eq!(api.ok("/api/v4/contacts?limit=250").await["_embedded"]["contacts"].as_array().unwrap().len(), 55);
    for path in ["/api/v4/leads", "/api/v4/tasks", "/api/v4/leads/notes", "/api/v4/contacts"] {
        let r = api.get(&format!("{path}?limit=251")).await;
        assert_eq!((r.status, r.content_type.as_deref()), (422, Some(PROBLEM_JSON)), "{path}");
        assert_eq!(r.json(), fixture_json(ERROR_LIMIT));
    }
    assert_eq!(api.ok("/api/v4/events?limit=100").await["_embedded"]["events"].as_array().unwrap().len(), 100);
    let r = api.get("/api/v4/events?limit=101").await;
    assert_eq!((r.status, r.json()["detail"].as_str()), (422, Some("Limit 100 per page")));
    let r = api.get("/api/v4/leads/unknown").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.json()["status"].as_u64()), (404, Some(PROBLEM_JSON), Some(404)));
}

#[tokio::test]
async fn filters_are_honoured_or_ignored_per_the_account_flag() {
    let data = MockData::generated(200);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let mut updated: Vec<i64> = data.leads.iter().map(|l| l["updated_at"].as_i64().unwrap()).collect();
    updated.sort_unstable();
    let (from, to) = (updated[50], updated[120]);
    let expected: Vec<i64> =
        data.leads.iter().filter(|l| (from..=to).contains(&l["updated_at"].as_i64().unwrap())).map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(expected.len() >= 71);

    // Both bounds inclusive, brackets raw or percent-encoded.
    let raw = format!("/api/v4/leads?filter[updated_at][from]={from}&filter[updated_at][to]={to}&limit=250");
    assert_eq!(ids(&api.rows(&raw, "leads").await), expected);
    let encoded = format!("/api/v4/leads?filter%5Bupdated_at%5D%5Bfrom%5D={from}&filter%5Bupdated_at%5D%5Bto%5D={to}&limit=250");
    assert_eq!(ids(&api.rows(&encoded, "leads").await), expected);
    assert_eq!(mock.state.request_log()[1], ("/api/v4/leads".to_string(), format!("filter[updated_at][from]={from}&filter[updated_at][to]={to}&limit=250")));
    let created_from = data.leads[150]["created_at"].as_i64().unwrap();
    assert_eq!(api.rows(&format!("/api/v4/leads?filter[created_at][from]={created_from}&limit=250"), "leads").await.len(), 50);
    // Descending updated_at.
    let desc = api.rows(&format!("{raw}&order[updated_at]=desc"), "leads").await;
    let times: Vec<i64> = desc.iter().map(|l| l["updated_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]) && times.len() == expected.len());
    // Nothing matches: 204.
    assert_eq!(api.get("/api/v4/leads?filter[updated_at][from]=1900000000").await.status, 204);

    // filter[id] in every spelling, always honoured.
    let (a, b) = (data.leads[3]["id"].as_i64().unwrap(), data.leads[7]["id"].as_i64().unwrap());
    for q in [format!("filter[id][]={a}&filter[id][]={b}"), format!("filter%5Bid%5D%5B0%5D={a}&filter%5Bid%5D%5B1%5D={b}")] {
        assert_eq!(ids(&api.rows(&format!("/api/v4/leads?{q}"), "leads").await), vec![a, b]);
    }
    assert_eq!(ids(&api.rows(&format!("/api/v4/leads?filter[id]={a}"), "leads").await), vec![a]);

    // Without the paid filtering: leads, contacts and companies ignore the date filters...
    mock.state.config.lock().unwrap().api_filter_enabled = false;
    assert_eq!(api.ok("/api/v4/account").await["is_api_filter_enabled"], false);
    assert_eq!(api.rows(&raw, "leads").await.len(), 200);
    assert_eq!(api.rows("/api/v4/contacts?filter[updated_at][from]=1900000000&limit=250", "contacts").await.len(), 100);
    assert_eq!(api.rows("/api/v4/companies?filter[created_at][to]=1", "companies").await.len(), 40);
    assert_eq!(ids(&api.rows(&format!("/api/v4/leads?filter[id]={a}&filter[updated_at][from]=1900000000"), "leads").await), vec![a]);
    // ...but tasks, notes and events do not.
    let task_from = data.tasks[100]["updated_at"].as_i64().unwrap();
    let tasks = api.rows(&format!("/api/v4/tasks?filter[updated_at][from]={task_from}&limit=250"), "tasks").await;
    let expected_tasks = data.tasks.iter().filter(|t| t["updated_at"].as_i64().unwrap() >= task_from).count();
    assert_eq!(tasks.len(), expected_tasks);
    assert!(expected_tasks < 200);
    let open = api.rows("/api/v4/tasks?filter[is_completed]=0&filter[entity_type]=leads&limit=250", "tasks").await;
    assert_eq!(open.len(), data.tasks.iter().filter(|t| t["is_completed"] == false).count());
    assert!(open.iter().all(|t| t["is_completed"] == false));

    let calls = api.rows("/api/v4/leads/notes?filter[note_type][]=call_in&filter[note_type][]=call_out&limit=250&page=1", "notes").await;
    let calls2 = api.rows("/api/v4/leads/notes?filter[note_type][]=call_in&filter[note_type][]=call_out&limit=250&page=2", "notes").await;
    let n_calls = data.notes.iter().filter(|(e, n)| e == "leads" && n["note_type"] != "common").count();
    assert_eq!(calls.len() + calls2.len(), n_calls);
    assert!(calls.iter().chain(&calls2).all(|n| n["note_type"] != "common"));
    let common = api.rows("/api/v4/leads/notes?filter[note_type]=common&limit=250", "notes").await;
    assert_eq!(common.len(), data.notes.iter().filter(|(e, n)| e == "leads" && n["note_type"] == "common").count());
    let of_lead = api.rows(&format!("/api/v4/leads/notes?filter[entity_id][]={a}"), "notes").await;
    assert!(!of_lead.is_empty() && of_lead.iter().all(|n| n["entity_id"] == a));
    assert_eq!(api.rows("/api/v4/contacts/notes?limit=250", "notes").await.len(), data.notes.iter().filter(|(e, _)| e == "contacts").count());

    // Events of one lead, newest first; the created_at range is inclusive.
    let chain = api.rows(&format!("/api/v4/events?filter[type]=lead_status_changed&filter[entity]=lead&filter[entity_id][]={a}&limit=100"), "events").await;
    let expected_chain: Vec<&Value> = data.events.iter().filter(|e| e["entity_id"] == a).collect();
    assert_eq!(chain.len(), expected_chain.len());
    let times: Vec<i64> = chain.iter().map(|e| e["created_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]));
    if let (Some(first), Some(last)) = (times.last(), times.first()) {
        let q = format!("/api/v4/events?filter[entity]=lead&filter[entity_id]={a}&filter[created_at][from]={first}&filter[created_at][to]={last}");
        assert_eq!(api.rows(&q, "events").await.len(), times.len());
    }
    assert_eq!(api.get("/api/v4/events?filter[entity][]=contact&filter[entity][]=company").await.status, 204);
}

#[tokio::test]
async fn eight_fast_requests_get_one_429_and_repeated_429s_block_the_account() {
    let mock = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = api.get("/api/v4/account").await;
        if r.status == 429 {
            assert_eq!(r.content_type.as_deref(), Some(PROBLEM_JSON));
            assert!(r.headers.get("retry-after").is_none());
            let mut expected = fixture_json(ERROR_TOO_MANY_JSON);
            expected["retry_after"] = json!(1);
            assert_eq!(r.json(), expected);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 429]);
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.max_in_window()), (1, 1, 8));
    assert!(!mock.state.is_blocked());
    // A second later the window has room again.
    mock.state.advance_clock(Duration::from_millis(1100));
    assert_eq!(api.get("/api/v4/account").await.status, 200);

    // HTML 429s; the fifth within the minute blocks everything, forever.
    let config = MockConfig { html_429: true, ..MockConfig::default() };
    let mock = MockAmoCrm::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut statuses = Vec::new();
    for _ in 0..13 {
        let r = api.get("/api/v4/leads").await;
        if r.status == 429 {
            assert_eq!((r.content_type.as_deref(), r.text()), (Some(TEXT_HTML), ERROR_TOO_MANY_HTML.to_string()));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 403]);
    assert!(mock.state.is_blocked());
    mock.state.advance_clock(Duration::from_millis(1100));
    let r = api.get("/api/v4/account").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.text()), (403, Some(TEXT_HTML), ERROR_BLOCKED_HTML.to_string()));
    assert_eq!(api.with_token(None).get("/api/v4/account").await.status, 403);
    assert_eq!(api.get("/somewhere/else").await.status, 403);
    let (status, body) = api.post_token(json!({"client_id": "amo-client-id"})).await;
    assert_eq!((status, body), (403, Value::String(ERROR_BLOCKED_HTML.into())));
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.requests()), (5, 5, 15));

    // Injected 429s count toward the block too (and are not window rejections).
    let config = MockConfig { block_after_429s: 2, ..unlimited() };
    let mock = MockAmoCrm::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson, Fault::TooManyHtml]);
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(api.get("/api/v4/users").await.status, 403);
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.is_blocked()), (0, 2, true));
}

/// A-LIMIT-2/3 of docs/connectors/amocrm-conformance.md: a JSON 429 names its wait
/// (`retry_after`); a request inside it is refused again and that 429 is earned.
#[tokio::test]
async fn conformance_a_request_inside_the_named_wait_earns_a_429() {
    let mock = MockAmoCrm::start(MockConfig { retry_after_seconds: 1, block_after_429s: 0, ..MockConfig::default() }, MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson]);
    let r = api.get("/api/v4/users").await;
    assert_eq!((r.status, r.json()["retry_after"].as_u64()), (429, Some(1)));
    assert_eq!(mock.state.earned_429(), 0, "an injected 429 is not earned");
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(mock.state.earned_429(), 1);
    mock.state.advance_clock(Duration::from_millis(1050));
    assert_eq!(api.get("/api/v4/users").await.status, 200);
    assert_eq!(mock.state.earned_429(), 1);
}

/// A-TASKS-2, A-CONT-1: a sort field the method does not document is refused.
#[tokio::test]
async fn conformance_undocumented_sort_fields_are_refused() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    for (path, field) in [("/api/v4/tasks", "updated_at"), ("/api/v4/contacts", "created_at"), ("/api/v4/companies", "created_at")] {
        let r = api.get(&format!("{path}?order[{field}]=asc")).await;
        assert_eq!((r.status, r.json()["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some(format!("order.{field}").as_str())), "{path}");
    }
    for (path, field) in [("/api/v4/tasks", "id"), ("/api/v4/tasks", "complete_till"), ("/api/v4/contacts", "updated_at"), ("/api/v4/leads", "created_at"), ("/api/v4/leads/notes", "updated_at")] {
        assert_eq!(api.get(&format!("{path}?order[{field}]=asc")).await.status, 200, "{path} {field}");
    }
}

/// A-EVENTS-1: `filter[entity_id]` needs one `filter[entity]` and at most 10 ids.
#[tokio::test]
async fn conformance_event_entity_ids_need_one_entity_and_at_most_ten() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    let ids: Vec<String> = (0..11).map(|i| format!("filter[entity_id][{i}]={}", LEAD_BASE + i)).collect();
    for query in [format!("filter[entity]=lead&{}", ids.join("&")), ids[..2].join("&"), format!("filter[entity][]=lead&filter[entity][]=contact&{}", ids[..2].join("&"))] {
        let r = api.get(&format!("/api/v4/events?{query}")).await;
        assert_eq!((r.status, r.json()["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some("filter.entity_id")), "{query}");
    }
    let r = api.get(&format!("/api/v4/events?filter[entity]=lead&filter[type][]=lead_status_changed&{}", ids[..10].join("&"))).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["_embedded"]["events"].as_array().unwrap().iter().all(|e| e["entity_type"] == "lead"));
}

/// A-LEADS-2, A-LEADS-5, A-PROD-1: a lead carries its source, products, contacts and loss
/// reason only when `with` asks; A-LEADS-9: a record fetched by id that is not there is a 204.
#[tokio::test]
async fn conformance_with_gives_only_what_it_asks_and_a_missing_record_is_204() {
    let data = MockData::generated(60);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let lead = data.leads.iter().find(|l| l["_embedded"]["source"].is_object() && l["_embedded"]["catalog_elements"].is_array()).expect("a lead with a source and products");
    let id = lead["id"].as_i64().unwrap();
    let bare = api.ok(&format!("/api/v4/leads/{id}")).await;
    for key in ["source", "catalog_elements", "contacts", "loss_reason"] {
        assert!(bare["_embedded"].get(key).is_none(), "{key} without with=");
    }
    assert!(bare.get("source_id").is_some(), "source_id comes without with= (as the fixture pages show)");
    let full = api.ok(&format!("/api/v4/leads/{id}?with=contacts,source,catalog_elements")).await;
    assert_eq!(full["_embedded"]["source"], lead["_embedded"]["source"]);
    assert_eq!(full["_embedded"]["catalog_elements"], lead["_embedded"]["catalog_elements"]);
    assert!(full["_embedded"]["contacts"].is_array());
    let listed = api.rows("/api/v4/leads?limit=250&with=catalog_elements", "leads").await;
    assert!(listed.iter().any(|l| l["_embedded"]["catalog_elements"].is_array()) && listed.iter().all(|l| l["_embedded"].get("source").is_none()));
    for path in ["/api/v4/leads/1", "/api/v4/contacts/1", "/api/v4/companies/1"] {
        let r = api.get(path).await;
        assert_eq!((r.status, r.body.len()), (204, 0), "{path}");
    }
}

/// A-PAGE-7: catalog element pages come without `next`, even when full; A-CAT-2: catalogs
/// have a type.
#[tokio::test]
async fn conformance_catalog_element_pages_have_no_next_link() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    let catalogs = api.rows("/api/v4/catalogs", "catalogs").await;
    assert_eq!(catalogs.iter().filter(|c| c["type"] == "products").count(), 1);
    let page = api.ok(&format!("/api/v4/catalogs/{PRODUCTS_CATALOG}/elements?limit=250")).await;
    assert_eq!(page["_embedded"]["elements"].as_array().unwrap().len(), 250);
    assert!(page["_links"].get("next").is_none(), "a full page without next");
    let rest = api.rows(&format!("/api/v4/catalogs/{PRODUCTS_CATALOG}/elements?limit=250&page=2"), "elements").await;
    assert_eq!(rest.len(), PRODUCT_COUNT - 250);
}

/// A-EVENTS-4, A-EVENTS-6, A-EVENTS-9: restores, task deletions and links log their events
/// with the documented values; a restored lead keeps its `updated_at`.
#[tokio::test]
async fn conformance_restore_task_and_link_events() {
    let data = MockData::generated(30);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let s = &mock.state;
    let (lead, task) = (data.leads[3]["id"].as_i64().unwrap(), data.tasks[0]["id"].as_i64().unwrap());
    let t = 1_800_000_000;
    s.delete_lead(lead, t);
    assert_eq!(api.get(&format!("/api/v4/leads/{lead}")).await.status, 204);
    s.restore_lead(lead, t + 10);
    assert_eq!(api.ok(&format!("/api/v4/leads/{lead}")).await["updated_at"], data.leads[3]["updated_at"]);
    s.delete_task(task, t + 20);
    s.link_product(lead, 900_001, Some(2.0), t + 30);
    let events = api.rows(&format!("/api/v4/events?filter[created_at][from]={t}&limit=100"), "events").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["lead_deleted", "lead_restored", "task_deleted", "entity_linked"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    for e in &events {
        match e["type"].as_str().unwrap() {
            "lead_deleted" | "lead_restored" | "task_deleted" => assert_eq!((&e["value_before"], &e["value_after"]), (&json!([]), &json!([]))),
            "entity_linked" => assert_eq!(e["value_after"][0]["link"]["entity"], json!({"type": "catalog_elements", "id": 900_001})),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_window_rolls_over_one_second() {
    let mock = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    // The window is the mock's own: admit directly, moving the mock's clock in between.
    let s = &mock.state;
    for _ in 0..7 {
        assert!(s.admit(7));
    }
    s.advance_clock(Duration::from_millis(500));
    assert!(!s.admit(7), "eight inside one second");
    s.advance_clock(Duration::from_millis(600));
    // The first seven are over a second old now, out of (t-1s, t]: two in the window.
    assert!(s.admit(7));
    assert_eq!(s.max_in_window(), 8);
}

#[tokio::test]
async fn oauth_code_then_single_use_refresh_tokens() {
    let mock = MockAmoCrm::start(unlimited(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let grant = |kind: &str, key: &str, value: &str| {
        json!({"client_id": "amo-client-id", "client_secret": "amo-client-secret", "grant_type": kind, key: value,
               "redirect_uri": "https://example.com/amo/callback"})
    };
    let invalid = fixture_json(OAUTH_ERROR_INVALID_REFRESH);
    assert_eq!(mock.state.current_access_token(), None);
    assert_eq!(mock.state.current_refresh_token(), "refresh-1");

    let (status, v) = api.post_token(grant("authorization_code", "code", "auth-code-1")).await;
    assert_eq!(status, 200, "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let shape = fixture_json(OAUTH_ACCESS_TOKEN);
    let mut expected: Vec<&String> = shape.as_object().unwrap().keys().collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!((v["token_type"].as_str(), v["expires_in"].as_u64()), (Some("Bearer"), Some(86_400)));
    assert_eq!((v["access_token"].as_str(), v["refresh_token"].as_str()), (Some("access-1"), Some("refresh-2")));
    assert!((v["server_time"].as_i64().unwrap() - unix_now()).abs() <= 2);
    // The code is single-use; the start refresh token died with the exchange.
    assert_eq!(api.post_token(grant("authorization_code", "code", "auth-code-1")).await, (400, invalid.clone()));
    assert_eq!(api.post_token(grant("refresh_token", "refresh_token", "refresh-1")).await, (400, invalid.clone()));

    let oauth = api.with_token(Some("access-1"));
    oauth.ok("/api/v4/account").await;
    let (status, v) = api.post_token(grant("refresh_token", "refresh_token", "refresh-2")).await;
    assert_eq!((status, v["access_token"].as_str(), v["refresh_token"].as_str()), (200, Some("access-2"), Some("refresh-3")));
    assert_eq!(api.post_token(grant("refresh_token", "refresh_token", "refresh-2")).await, (400, invalid.clone()));
    let r = oauth.get("/api/v4/account").await;
    assert_eq!((r.status, r.content_type.as_deref()), (401, Some(PROBLEM_JSON)));
    assert_eq!(r.json(), fixture_json(ERROR_UNAUTHORIZED));
    api.with_token(Some("access-2")).ok("/api/v4/account").await;

    // Wrong app credentials or redirect: 400, and the refresh token survives.
    let mut wrong = grant("refresh_token", "refresh_token", "refresh-3");
    wrong["client_secret"] = json!("nope");
    assert_eq!(api.post_token(wrong).await, (400, invalid.clone()));
    let mut wrong = grant("refresh_token", "refresh_token", "refresh-3");
    wrong["redirect_uri"] = json!("https://example.com/other");
    assert_eq!(api.post_token(wrong).await, (400, invalid.clone()));
    assert_eq!(api.post_token(grant("password", "refresh_token", "refresh-3")).await.0, 400);
    assert_eq!(mock.state.current_refresh_token(), "refresh-3");

    mock.state.expire_access_token();
    assert_eq!(api.with_token(Some("access-2")).get("/api/v4/account").await.status, 401);
    api.ok("/api/v4/account").await;
    assert_eq!(api.with_token(None).get("/api/v4/account").await.status, 401);
    assert_eq!(api.with_token(Some("")).get("/api/v4/account").await.status, 401);
    let (status, v) = api.post_token(grant("refresh_token", "refresh_token", "refresh-3")).await;
    assert_eq!((status, v["access_token"].as_str()), (200, Some("access-3")));
    api.with_token(Some("access-3")).ok("/api/v4/leads/pipelines").await;

    assert_eq!(mock.state.oauth_exchanges(), 3);
    assert_eq!(mock.state.current_refresh_token(), "refresh-4");
    assert_eq!(mock.state.oauth_requests(), 9);
    assert_eq!(mock.state.requests(), 8);
}

#[tokio::test]
async fn injected_faults_are_answered_in_order() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson, Fault::TooManyHtml, Fault::ServerError, Fault::BadGatewayHtml, Fault::Truncated, Fault::Unauthorized]);
    // An unauthenticated request does not spend a fault.
    assert_eq!(api.with_token(None).get("/api/v4/leads").await.status, 401);

    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.json()["retry_after"].as_u64()), (429, Some(PROBLEM_JSON), Some(0)));
    assert!(r.headers.get("retry-after").is_none());
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.text()), (429, Some(TEXT_HTML), ERROR_TOO_MANY_HTML.to_string()));
    let r = api.get("/api/v4/leads").await;
    let v = r.json();
    assert_eq!(
        (r.status, r.content_type.as_deref(), v["title"].as_str(), v["status"].as_u64()),
        (500, Some(PROBLEM_JSON), Some("ErrInternalServer"), Some(500))
    );
    assert!(v["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref()), (502, Some(TEXT_HTML)));
    assert!(r.text().contains("502 Bad Gateway") && r.text().contains("nginx"));
    let truncated = api.get("/api/v4/leads").await;
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.json()), (401, fixture_json(ERROR_UNAUTHORIZED)));
    assert!(mock.state.faults.lock().unwrap().is_empty());
    let whole = serde_json::to_vec(&api.ok("/api/v4/leads").await).unwrap();
    assert_eq!((truncated.status, truncated.content_type.as_deref()), (200, Some(HAL_JSON)));
    assert!(serde_json::from_slice::<Value>(&truncated.body).is_err());
    assert_eq!(truncated.body.len(), whole.len() / 2);
    assert_eq!(truncated.body[..], whole[..whole.len() / 2]);

    mock.state.push_faults([Fault::Timeout(Duration::from_millis(400)), Fault::Timeout(Duration::from_millis(20))]);
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
    let err = impatient.get(mock.url("/api/v4/account")).bearer_auth("long-lived-token").send().await.unwrap_err();
    assert!(err.is_timeout());
    api.ok("/api/v4/account").await;

    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.is_blocked()), (0, 2, false));
    assert_eq!(mock.state.requests(), 10);
    // The full page, the delayed account (and, maybe, the abandoned one).
    assert!((2..=3).contains(&mock.state.served_ok()));
}

#[tokio::test]
async fn mutations_show_up_in_lists_and_events() {
    let data = MockData::generated(40);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let s = &mock.state;
    let t = GENERATED_END + 3600;
    let lead = |i: usize| data.leads[i]["id"].as_i64().unwrap();
    let since = |at: i64| format!("/api/v4/leads?filter[updated_at][from]={at}&order[updated_at]=asc");
    let events_since = |at: i64| format!("/api/v4/events?filter[created_at][from]={at}&limit=100");
    assert_eq!(api.get(&since(GENERATED_END)).await.status, 204);

    s.edit_lead(lead(0), t, |l| l["price"] = json!(777));
    let open = 1 + data.leads[1..].iter().position(|l| l["closed_at"].is_null()).unwrap();
    let (pipeline, before) = (data.leads[open]["pipeline_id"].as_i64().unwrap(), data.leads[open]["status_id"].as_i64().unwrap());
    s.move_lead(lead(open), pipeline, WON, t + 10, 5_701_102);
    let mut new = data.leads[1].clone();
    new["id"] = json!(39_000_000);
    s.add_lead(new, t + 20);

    let changed = api.rows(&since(t), "leads").await;
    assert_eq!(ids(&changed), [lead(0), lead(open), 39_000_000]);
    assert_eq!((changed[0]["price"].as_i64(), changed[0]["updated_at"].as_i64()), (Some(777), Some(t)));
    assert_eq!(
        (changed[1]["status_id"].as_i64(), changed[1]["closed_at"].as_i64(), changed[1]["updated_by"].as_i64()),
        (Some(WON), Some(t + 10), Some(5_701_102))
    );
    assert_eq!((changed[2]["created_at"].as_i64(), changed[2]["updated_at"].as_i64()), (Some(t + 20), Some(t + 20)));

    let events = api.rows(&events_since(t), "events").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lead_added", "lead_status_changed", "sale_field_changed"]);
    assert_eq!(events[1]["value_before"], lead_status(before, pipeline));
    assert_eq!(events[1]["value_after"], lead_status(WON, pipeline));
    assert_eq!((events[1]["created_by"].as_i64(), events[1]["created_at"].as_i64()), (Some(5_701_102), Some(t + 10)));
    assert_eq!(events[2]["value_after"], json!([{"sale_field_value": {"sale": 777}}]));

    // Delete: into the trash, with an event; its notes and tasks go.
    let gone = lead(5);
    assert!(!api.rows(&format!("/api/v4/leads/notes?filter[entity_id][]={gone}"), "notes").await.is_empty());
    s.delete_lead(gone, t + 30);
    assert_eq!(api.get(&format!("/api/v4/leads?filter[id]={gone}")).await.status, 204);
    let trash = api.rows("/api/v4/leads?with=only_deleted", "leads").await;
    assert_eq!(trash.len(), 1);
    assert_eq!((trash[0]["id"].as_i64(), trash[0]["updated_at"].as_i64(), trash[0]["is_deleted"].as_bool()), (Some(gone), Some(t + 30), Some(true)));
    assert_eq!(api.get(&format!("/api/v4/leads/notes?filter[entity_id][]={gone}")).await.status, 204);
    assert_eq!(api.get(&format!("/api/v4/tasks?filter[entity_id]={gone}")).await.status, 204);
    let deleted = api.rows("/api/v4/events?filter[type][]=lead_deleted&filter[type][]=contact_deleted", "events").await;
    assert_eq!((deleted.len(), deleted[0]["entity_id"].as_i64(), deleted[0]["value_after"].clone()), (1, Some(gone), json!([])));

    // Contacts: notes, an edit, a delete.
    let contact = data.contacts[0]["id"].as_i64().unwrap();
    s.add_note("contacts", json!({"id": 88_000_001, "entity_id": contact, "note_type": "common", "params": {"text": "hi"}}), t + 40);
    let notes = api.rows(&format!("/api/v4/contacts/notes?filter[updated_at][from]={}", t + 40), "notes").await;
    assert_eq!((notes.len(), notes[0]["created_at"].as_i64()), (1, Some(t + 40)));
    s.edit_contact(contact, t + 50, |c| c["name"] = json!("Renamed"));
    let c = api.rows(&format!("/api/v4/contacts?filter[updated_at][from]={}", t + 50), "contacts").await;
    assert_eq!((ids(&c), c[0]["name"].as_str()), (vec![contact], Some("Renamed")));
    s.delete_contact(contact, t + 60);
    assert_eq!(api.get(&format!("/api/v4/contacts?filter[id]={contact}")).await.status, 204);
    assert!(api.rows("/api/v4/contacts/notes?limit=250", "notes").await.iter().all(|n| n["entity_id"] != json!(contact)), "the contact's notes went with it");
    let ev = api.rows(&events_since(t + 60), "events").await;
    assert_eq!(
        (ev.len(), ev[0]["type"].as_str(), ev[0]["entity_type"].as_str(), ev[0]["entity_id"].as_i64()),
        (1, Some("contact_deleted"), Some("contact"), Some(contact))
    );
    let linked = s.data.lock().unwrap().leads.iter().filter(|l| l["_embedded"]["contacts"].as_array().unwrap().iter().any(|c| c["id"] == contact)).count();
    assert_eq!(linked, 0);

    // Every event id is unique.
    let all = s.data.lock().unwrap().events.clone();
    let unique: std::collections::HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), all.len());
}

#[test]
fn php_queries_parse() {
    let q = Query::parse(
        "filter%5Btype%5D%5B%5D=a&filter[type][]=b&filter[id][0]=1&filter[id][1]=2&filter[x]=9&order%5Bupdated_at%5D=DESC&with=contacts%2Closs_reason&page=3&limit=25",
    );
    assert_eq!(q.list(&["filter", "type"]), ["a", "b"]);
    assert_eq!(q.list(&["filter", "id"]), ["1", "2"]);
    assert_eq!(q.list(&["filter", "x"]), ["9"]);
    assert_eq!(q.get(&["filter", "x"]), Some("9"));
    assert_eq!(q.order(), Some(("updated_at", true)));
    assert_eq!(q.with(), ["contacts", "loss_reason"]);
    assert_eq!(
        q.decoded(),
        "filter[type][]=a&filter[type][]=b&filter[id][0]=1&filter[id][1]=2&filter[x]=9&order[updated_at]=DESC&with=contacts,loss_reason&page=3&limit=25"
    );
    assert_eq!(
        q.with_page(4),
        "filter%5Btype%5D%5B%5D=a&filter%5Btype%5D%5B%5D=b&filter%5Bid%5D%5B0%5D=1&filter%5Bid%5D%5B1%5D=2&filter%5Bx%5D=9&order%5Bupdated_at%5D=DESC&with=contacts%2Closs_reason&page=4&limit=25"
    );
    assert_eq!(Query::parse("").with_page(1), "page=1");
    let mut f = Filters::default();
    f.range(&Query::parse("filter[updated_at][from]=10&filter[updated_at][to]=20"), "updated_at");
    assert!(f.matches(&json!({"updated_at": 10})) && f.matches(&json!({"updated_at": 20})));
    assert!(!f.matches(&json!({"updated_at": 21})) && !f.matches(&json!({})));
    assert_eq!(event_id(0).len(), 26);
    assert_ne!(event_id(0), event_id(1));
}

#[test]
fn generated_data_is_consistent_and_deterministic() {
    let d = MockData::generated(200);
    assert_eq!(d, MockData::generated(200));
    assert_eq!((d.leads.len(), d.contacts.len(), d.companies.len(), d.tasks.len(), d.trash.len()), (200, 100, 40, 200, 0));
    assert!(d.notes.len() >= 200 && d.events.len() > 200);

    let id_set = |rows: &[Value]| -> std::collections::HashSet<i64> {
        let set: std::collections::HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(set.len(), rows.len(), "unique ids");
        set
    };
    let users = id_set(&d.users);
    let contacts = id_set(&d.contacts);
    let companies = id_set(&d.companies);
    let leads = id_set(&d.leads);
    id_set(&d.tasks);
    let notes: Vec<Value> = d.notes.iter().map(|(_, n)| n.clone()).collect();
    id_set(&notes);
    let event_ids: std::collections::HashSet<&str> = d.events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(event_ids.len(), d.events.len());
    let reasons = id_set(&d.loss_reasons);
    // (pipeline, status) pairs, and each pipeline's first stage.
    let mut stages = std::collections::HashSet::new();
    let mut first_stage = HashMap::new();
    for p in &d.pipelines {
        let pid = p["id"].as_i64().unwrap();
        let statuses = p["_embedded"]["statuses"].as_array().unwrap();
        for s in statuses {
            stages.insert((pid, s["id"].as_i64().unwrap()));
        }
        first_stage.insert(pid, statuses.iter().min_by_key(|s| s["sort"].as_i64()).unwrap()["id"].as_i64().unwrap());
    }

    let mut won = 0;
    let mut lost = 0;
    for l in &d.leads {
        let (id, pid, sid) = (l["id"].as_i64().unwrap(), l["pipeline_id"].as_i64().unwrap(), l["status_id"].as_i64().unwrap());
        assert!(stages.contains(&(pid, sid)), "{l}");
        let (created, updated) = (l["created_at"].as_i64().unwrap(), l["updated_at"].as_i64().unwrap());
        assert!(created >= GENERATED_END - 365 * DAY && created <= updated && updated < GENERATED_END, "{l}");
        assert!(users.contains(&l["responsible_user_id"].as_i64().unwrap()) && users.contains(&l["updated_by"].as_i64().unwrap()));
        let linked = l["_embedded"]["contacts"].as_array().unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0]["is_main"], true);
        assert!(contacts.contains(&linked[0]["id"].as_i64().unwrap()));
        for c in l["_embedded"]["companies"].as_array().unwrap() {
            assert!(companies.contains(&c["id"].as_i64().unwrap()));
        }
        match sid {
            WON => {
                won += 1;
                assert_eq!(l["closed_at"], l["updated_at"]);
                assert!(l["loss_reason_id"].is_null());
            }
            LOST => {
                lost += 1;
                assert_eq!(l["closed_at"], l["updated_at"]);
                assert!(reasons.contains(&l["loss_reason_id"].as_i64().unwrap()));
                assert_eq!(l["_embedded"]["loss_reason"][0]["id"], l["loss_reason_id"]);
            }
            _ => assert!(l["closed_at"].is_null() && l["loss_reason_id"].is_null() && l["_embedded"].get("loss_reason").is_none()),
        }
        // The stage history runs from the first stage to the current one, in time order.
        let mut chain: Vec<&Value> = d.events.iter().filter(|e| e["entity_id"] == id && e["type"] == "lead_status_changed").collect();
        chain.sort_by_key(|e| e["created_at"].as_i64());
        let mut at = (first_stage[&pid], pid);
        let mut last_time = created;
        for e in &chain {
            let before = &e["value_before"][0]["lead_status"];
            let after = &e["value_after"][0]["lead_status"];
            assert_eq!((before["id"].as_i64().unwrap(), before["pipeline_id"].as_i64().unwrap()), at, "{e}");
            at = (after["id"].as_i64().unwrap(), after["pipeline_id"].as_i64().unwrap());
            let t = e["created_at"].as_i64().unwrap();
            assert!(t > last_time && t <= updated);
            last_time = t;
            assert!(users.contains(&e["created_by"].as_i64().unwrap()));
        }
        assert_eq!(at, (sid, pid), "the chain of {id} ends at its status");
    }
    assert!((30..=70).contains(&won) && (20..=60).contains(&lost), "won {won}, lost {lost}");
    let first = d.leads.iter().filter(|l| l["status_id"].as_i64() == first_stage.get(&l["pipeline_id"].as_i64().unwrap()).copied()).count();
    assert!(first > 5 && first < 40, "{first}");
    assert!(d.leads.iter().any(|l| l["pipeline_id"] != d.leads[0]["pipeline_id"]));
    assert!(d.leads.iter().filter(|l| l["custom_fields_values"].is_array()).count() > 40);
    assert!(d.leads.iter().filter(|l| !l["_embedded"]["companies"].as_array().unwrap().is_empty()).count() > 100);

    for c in &d.contacts {
        for k in c["_embedded"]["companies"].as_array().unwrap() {
            assert!(companies.contains(&k["id"].as_i64().unwrap()));
        }
        assert_eq!(c["custom_fields_values"][0]["field_code"], "PHONE");
    }
    let mut by_status = HashMap::new();
    for (entity, n) in &d.notes {
        let owners = match entity.as_str() {
            "leads" => &leads,
            "contacts" => &contacts,
            _ => &companies,
        };
        assert!(owners.contains(&n["entity_id"].as_i64().unwrap()), "{entity} {n}");
        assert_eq!(n["created_at"], n["updated_at"]);
        if n["note_type"] != "common" {
            *by_status.entry(n["params"]["call_status"].as_i64().unwrap()).or_insert(0) += 1;
        }
    }
    let most = by_status.iter().max_by_key(|(_, c)| **c).map(|(s, _)| *s);
    assert_eq!(most, Some(4));
    assert!(by_status.keys().all(|s| (1..=7).contains(s)) && by_status.len() == 7);
    for t in &d.tasks {
        assert_eq!(t["entity_type"], "leads");
        assert!(leads.contains(&t["entity_id"].as_i64().unwrap()));
        assert!(t["created_at"].as_i64() <= t["updated_at"].as_i64());
    }
}
