//! A mock Bitrix24 portal (webhook REST v2) for the connector tests: the vendor's envelopes,
//! 50-row paging with `start`/`next`/`total` (and `start=-1`), prefixed filters, `batch` with
//! `$result[…]` references, the leaky-bucket rate limit (503 `QUERY_LIMIT_EXCEEDED`), the
//! per-method operating budget (429 `OPERATION_TIME_LIMIT`) and injectable faults.
//!
//! It also speaks Bitrix24 OAuth 2.0 on the same port: `/rest/{method}` with the access token
//! in `auth` (401 `invalid_token` / `expired_token`), and the token server's
//! `/oauth/token/?grant_type=refresh_token&…` with single-use refresh tokens (see
//! [`MockBitrix24::token_url`]).
//!
//! Records are the fixtures of `tests/fixtures/bitrix24/` (copied from the shared API notes,
//! read with `include_str!` so a clean clone is enough), or generated from them at any scale
//! with [`MockData::generated`].
// Shared with the connector tests: not every helper is used by the tests in this file.
#![allow(dead_code)]

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
// The bucket and the operating windows run on tokio's clock (real time: the mock serves real
// sockets, so no test pauses it; tests that need time to pass use short configured windows).
use tokio::time::Instant;

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bitrix24/", $file))
    };
}

/// Rows per page of every list method (fixed by the portal).
pub const PAGE: usize = 50;
/// Commands per `batch` at most.
pub const MAX_BATCH: usize = 50;

pub const ERROR_QUERY_LIMIT: &str = fixture!("error_QUERY_LIMIT_EXCEEDED.json");
pub const ERROR_OPERATION_TIME_LIMIT: &str = fixture!("error_OPERATION_TIME_LIMIT.json");
pub const ERROR_EXPIRED_TOKEN: &str = fixture!("error_expired_token.json");
pub const ERROR_NO_AUTH_FOUND: &str = fixture!("error_NO_AUTH_FOUND.json");
pub const ERROR_INSUFFICIENT_SCOPE: &str = fixture!("error_insufficient_scope.json");
pub const ERROR_METHOD_NOT_FOUND: &str = fixture!("error_ERROR_METHOD_NOT_FOUND.json");
/// The token server's answer to a refresh (the mock's answers have this shape, other values).
pub const OAUTH_TOKEN_REFRESH: &str = fixture!("oauth_token_refresh.json");
/// The token server's 400 for a refresh token that is not (or no longer) valid.
pub const OAUTH_ERROR_INVALID_GRANT: &str = fixture!("oauth_error_invalid_grant.json");
pub const BATCH_DEAL_PAGES: &str = fixture!("batch_deal_pages.json");
pub const BATCH_ERROR_HALT0: &str = fixture!("batch_error_halt0.json");
pub const DEAL_PAGE1: &str = fixture!("crm.deal.list_page1.json");
pub const DEAL_PAGE2_LAST: &str = fixture!("crm.deal.list_page2_last.json");
pub const DEAL_FAST_START_MINUS1: &str = fixture!("crm.deal.list_fast_start_minus1.json");

/// A fixture file's JSON.
pub fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The records of a fixture page: `result`, or `result[root]`.
fn fixture_rows(text: &str, root: Option<&str>) -> Vec<Value> {
    let v = fixture_json(text);
    let result = &v["result"];
    let rows = match root {
        Some(r) => &result[r],
        None => result,
    };
    rows.as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// Configuration, faults, data, state
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The secret in the webhook path; another code gets 401 `NO_AUTH_FOUND`.
    pub webhook_code: String,
    /// The webhook's scopes; a method of another scope gets 403 `insufficient_scope`.
    pub scopes: Vec<String>,
    /// Leaky bucket: requests drained per second (Y).
    pub drain_per_second: f64,
    /// Leaky bucket: the counter's capacity (X).
    pub burst: u32,
    /// Operating budget per method inside `operating_window`, in seconds.
    pub operating_limit_seconds: f64,
    pub operating_window: Duration,
    /// Seconds of "operating" billed per row returned.
    pub operating_cost_per_row: f64,
    /// Leave `operating` and `operating_reset_at` out of every `time` object (self-hosted
    /// portals and some cloud ones do).
    pub omit_operating: bool,
    /// OAuth app credentials the token endpoint accepts (read on every token request).
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// The refresh token valid at start (read once, when the server starts).
    pub oauth_refresh_token: String,
    /// The access token valid at start; `None`: no valid access token until a refresh (read
    /// once, when the server starts).
    pub oauth_access_token: Option<String>,
    /// Lifetime of the start access token and of every issued one (on tokio's clock).
    pub oauth_access_ttl: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            webhook_code: "s3cr3tc0de".into(),
            scopes: ["crm", "user", "department", "telephony", "task"].map(String::from).to_vec(),
            drain_per_second: 2.0,
            burst: 50,
            operating_limit_seconds: f64::INFINITY,
            operating_window: Duration::from_secs(600),
            operating_cost_per_row: 0.001,
            omit_operating: false,
            oauth_client_id: "local.5f3e2a.12345678".into(),
            oauth_client_secret: "oauthSecret".into(),
            oauth_refresh_token: "refresh-1".into(),
            oauth_access_token: Some("access-1".into()),
            oauth_access_ttl: Duration::from_secs(3600),
        }
    }
}

/// What one request suffers instead of being served (see [`MockState::faults`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 503 with the `QUERY_LIMIT_EXCEEDED` fixture.
    QueryLimit,
    /// 429 with the `OPERATION_TIME_LIMIT` fixture.
    OperatingLimit,
    /// That status with an nginx-style text/html page.
    Html(u16),
    /// 500 `INTERNAL_SERVER_ERROR`.
    ServerError,
    /// Sleeps that long, then serves normally.
    Delay(Duration),
    /// Serves normally with status 200 but only the first half of the body.
    Truncated,
    /// 401 with the `expired_token` fixture.
    ExpiredToken,
    /// 401 with the `NO_AUTH_FOUND` fixture.
    Unauthorized,
}

/// The portal's records, each in the vendor's exact shape (as in the fixtures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockData {
    pub users: Vec<Value>,
    pub departments: Vec<Value>,
    /// `crm.category.list` items of entityTypeId 2.
    pub categories: Vec<Value>,
    /// `crm.status.list` rows of every ENTITY_ID (DEAL_STAGE, DEAL_STAGE_1, STATUS, SOURCE).
    pub statuses: Vec<Value>,
    pub currencies: Vec<Value>,
    pub deals: Vec<Value>,
    pub leads: Vec<Value>,
    pub contacts: Vec<Value>,
    pub companies: Vec<Value>,
    pub activities: Vec<Value>,
    /// `crm.stagehistory.list` items of entityTypeId 2.
    pub deal_stage_history: Vec<Value>,
    /// `crm.stagehistory.list` items of entityTypeId 1.
    pub lead_stage_history: Vec<Value>,
    /// `voximplant.statistic.get` rows.
    pub calls: Vec<Value>,
    /// `tasks.task.list` items (camelCase).
    pub tasks: Vec<Value>,
    /// `crm.item.productrow.list` items (camelCase).
    pub product_rows: Vec<Value>,
}

#[derive(Debug)]
struct Bucket {
    level: f64,
    last: Instant,
    max: f64,
}

/// The OAuth tokens of the one app installation the mock knows.
#[derive(Debug)]
struct OAuthTokens {
    /// The valid access token, if any, and when it expires.
    access: Option<String>,
    access_expires_at: Instant,
    /// The one valid refresh token (single-use).
    refresh: String,
    /// Access tokens a refresh replaced: they answer `expired_token`.
    retired_access: HashSet<String>,
    /// Successful refreshes.
    refreshes: u64,
}

/// The mock's data, faults, configuration and counters; shared with the test.
#[derive(Debug)]
pub struct MockState {
    /// Tests edit, delete and add records between syncs (never held across an await).
    pub data: Mutex<MockData>,
    /// Each incoming HTTP request pops the first fault, if any, and suffers it.
    pub faults: Mutex<VecDeque<Fault>>,
    /// Read on every request: tests may change scopes or limits on the fly.
    pub config: Mutex<MockConfig>,
    bucket: Mutex<Bucket>,
    /// Per method: (when, seconds billed), oldest first.
    operating: Mutex<HashMap<String, VecDeque<(Instant, f64)>>>,
    requests: AtomicU64,
    served_ok: AtomicU64,
    rejected_rate_limit: AtomicU64,
    rejected_operating: AtomicU64,
    method_calls: Mutex<HashMap<String, u64>>,
    sub_calls: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<(String, Value)>>,
    oauth: Mutex<OAuthTokens>,
    token_requests: AtomicU64,
    /// `http://127.0.0.1:{port}/rest/`, the `client_endpoint` the token server hands out.
    client_endpoint: String,
}

impl MockState {
    fn new(config: MockConfig, data: MockData, client_endpoint: String) -> MockState {
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
    fn admit(&self, forced: bool) -> bool {
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
    fn bill(&self, method: &str, rows: usize, config: &MockConfig) -> (i64, f64) {
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

    fn count(map: &Mutex<HashMap<String, u64>>, method: &str) {
        *map.lock().unwrap().entry(method.to_string()).or_default() += 1;
    }
}

/// `now + ttl`, saturating at a century.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

fn prune(q: &mut VecDeque<(Instant, f64)>, window: Duration) {
    let now = Instant::now();
    while q.front().is_some_and(|(t, _)| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A running mock portal on 127.0.0.1; dropping it stops the server.
pub struct MockBitrix24 {
    /// Webhook base URL ending in '/': `http://127.0.0.1:{port}/rest/1/{code}/`.
    pub webhook_url: String,
    /// OAuth base URL ending in '/': `http://127.0.0.1:{port}/rest/` (methods take `auth`).
    pub client_endpoint: String,
    /// The token server: `http://127.0.0.1:{port}/oauth/token/` (GET query or POST form).
    pub token_url: String,
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for MockBitrix24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockBitrix24")
            .field("webhook_url", &self.webhook_url)
            .field("client_endpoint", &self.client_endpoint)
            .finish_non_exhaustive()
    }
}

impl MockBitrix24 {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MockConfig, data: MockData) -> MockBitrix24 {
        let code = config.webhook_code.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client_endpoint = format!("http://{addr}/rest/");
        let state = Arc::new(MockState::new(config, data, client_endpoint.clone()));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        MockBitrix24 {
            webhook_url: format!("http://{addr}/rest/1/{code}/"),
            client_endpoint,
            token_url: format!("http://{addr}/oauth/token/"),
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// The URL of `method` under the webhook.
    pub fn url(&self, method: &str) -> String {
        format!("{}{method}", self.webhook_url)
    }

    /// The OAuth URL of `method` (the token goes in `auth`).
    pub fn oauth_url(&self, method: &str) -> String {
        format!("{}{method}", self.client_endpoint)
    }
}

impl Drop for MockBitrix24 {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct ErrorReply {
    status: StatusCode,
    body: Value,
}

impl ErrorReply {
    fn fixture(status: StatusCode, text: &str) -> ErrorReply {
        ErrorReply { status, body: fixture_json(text) }
    }

    fn new(status: StatusCode, code: &str, description: &str) -> ErrorReply {
        ErrorReply { status, body: json!({"error": code, "error_description": description}) }
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

fn reply_error(e: ErrorReply) -> Response {
    reply(e.status, serde_json::to_vec(&e.body).unwrap())
}

fn html_page(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let reason = code.canonical_reason().unwrap_or("Error");
    let s = code.as_u16();
    let page = format!(
        "<html>\r\n<head><title>{s} {reason}</title></head>\r\n<body>\r\n<center><h1>{s} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

/// How a REST request authenticates.
enum Auth {
    /// `/rest/{user_id}/{code}/{method}`: the code in the path.
    Webhook(String),
    /// `/rest/{method}`: the access token in `auth` (body, else query), if any.
    OAuth(Option<String>),
}

async fn handle(State(state): State<Arc<MockState>>, http_method: Method, uri: Uri, body: Bytes) -> Response {
    // The token server is another host in reality: its own counter, no bucket, no faults.
    if matches!(uri.path(), "/oauth/token/" | "/oauth/token") {
        return state.token_endpoint(&http_method, &uri, &body);
    }
    let started = unix_now();
    state.requests.fetch_add(1, Ordering::Relaxed);

    // /rest/{user_id}/{code}/{method}[.json] (webhook) or /rest/{method}[.json] (OAuth)
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (rest, code, method) = match *segments.as_slice() {
        [rest, _user, code, method] => (rest, Some(code), method),
        [rest, method] => (rest, None, method),
        _ => return reply_error(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
    };
    if rest != "rest" || method.is_empty() {
        return reply_error(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND));
    }
    let method = method.strip_suffix(".json").unwrap_or(method).to_string();

    let mut params = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return reply_error(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &e)),
    };
    if let Some(query) = uri.query()
        && let (Value::Object(p), Value::Object(q)) = (&mut params, parse_php_query(query))
    {
        for (k, v) in q {
            p.entry(k).or_insert(v);
        }
    }
    let auth = match code {
        Some(code) => Auth::Webhook(code.to_string()),
        None => Auth::OAuth(params.get("auth").and_then(Value::as_str).map(String::from)),
    };
    let order = if method == "batch" { batch_order(&body) } else { None };
    state.log.lock().unwrap().push((method.clone(), params.clone()));
    MockState::count(&state.method_calls, &method);

    let fault = state.faults.lock().unwrap().pop_front();
    let admitted = state.admit(fault.is_some());
    let mut truncate = false;
    match fault {
        None if !admitted => {
            state.rejected_rate_limit.fetch_add(1, Ordering::Relaxed);
            return reply_error(ErrorReply::fixture(StatusCode::SERVICE_UNAVAILABLE, ERROR_QUERY_LIMIT));
        }
        None => {}
        Some(Fault::QueryLimit) => return reply_error(ErrorReply::fixture(StatusCode::SERVICE_UNAVAILABLE, ERROR_QUERY_LIMIT)),
        Some(Fault::OperatingLimit) => return reply_error(ErrorReply::fixture(StatusCode::TOO_MANY_REQUESTS, ERROR_OPERATION_TIME_LIMIT)),
        Some(Fault::Html(status)) => return html_page(status),
        Some(Fault::ServerError) => {
            return reply_error(ErrorReply::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "Internal server error"));
        }
        Some(Fault::ExpiredToken) => return reply_error(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN)),
        Some(Fault::Unauthorized) => return reply_error(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_NO_AUTH_FOUND)),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncated) => truncate = true,
    }

    let (status, body) = match state.serve(&auth, &method, &params, order, started) {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (e.status, e.body),
    };
    let mut bytes = serde_json::to_vec(&body).unwrap();
    if truncate {
        bytes.truncate(bytes.len() / 2);
        return reply(StatusCode::OK, bytes);
    }
    if status == StatusCode::OK {
        state.served_ok.fetch_add(1, Ordering::Relaxed);
    }
    reply(status, bytes)
}

/// The JSON object of a request body; an empty body is `{}`. A body that is not JSON is
/// read as a PHP-style query string.
fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Array(a)) if a.is_empty() => Ok(json!({})),
        Ok(_) => Err("The request body must be a JSON object".into()),
        Err(e) => match std::str::from_utf8(body) {
            Ok(text) if text.contains('=') && !text.trim_start().starts_with('{') => Ok(parse_php_query(text.trim())),
            _ => Err(format!("Invalid JSON: {e}")),
        },
    }
}

/// The command names of a `batch` body in the order they were sent (serde_json here has
/// no `preserve_order`, so its maps are sorted).
fn batch_order(body: &[u8]) -> Option<Vec<String>> {
    struct Names(Vec<String>);
    impl<'de> Deserialize<'de> for Names {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Names;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object or array of commands")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        names.push(k);
                    }
                    Ok(Names(names))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while seq.next_element::<IgnoredAny>()?.is_some() {
                        names.push(names.len().to_string());
                    }
                    Ok(Names(names))
                }
            }
            d.deserialize_any(V)
        }
    }
    #[derive(Deserialize)]
    struct Body {
        cmd: Option<Names>,
    }
    serde_json::from_slice::<Body>(body).ok()?.cmd.map(|n| n.0)
}

// ---------------------------------------------------------------------------------------
// OAuth 2.0: access tokens on /rest/{method}, the token server on /oauth/token/
// ---------------------------------------------------------------------------------------

fn invalid_token() -> ErrorReply {
    ErrorReply::new(StatusCode::UNAUTHORIZED, "invalid_token", "The access token provided is invalid.")
}

impl MockState {
    /// The current access token, unexpired, passes; the current one expired or one a
    /// refresh replaced gets `expired_token`; anything else (or nothing) `invalid_token`.
    fn check_access_token(&self, token: Option<&str>) -> Result<(), ErrorReply> {
        let tokens = self.oauth.lock().unwrap();
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(invalid_token());
        };
        if tokens.access.as_deref() == Some(token) {
            if Instant::now() >= tokens.access_expires_at {
                return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN));
            }
            return Ok(());
        }
        if tokens.retired_access.contains(token) {
            return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN));
        }
        Err(invalid_token())
    }

    /// `GET|POST /oauth/token/`: parameters from the query string and, for POST, the form
    /// (or JSON) body; the body wins.
    fn token_endpoint(&self, http_method: &Method, uri: &Uri, body: &[u8]) -> Response {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        if *http_method != Method::GET && *http_method != Method::POST {
            return reply_error(ErrorReply::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "Only GET and POST are allowed"));
        }
        let mut params = if *http_method == Method::POST {
            match parse_body(body) {
                Ok(v) => v,
                Err(e) => return reply_error(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_request", &e)),
            }
        } else {
            json!({})
        };
        if let Some(query) = uri.query()
            && let (Value::Object(p), Value::Object(q)) = (&mut params, parse_php_query(query))
        {
            for (k, v) in q {
                p.entry(k).or_insert(v);
            }
        }
        match self.grant(&params) {
            Ok(v) => reply(StatusCode::OK, serde_json::to_vec(&v).unwrap()),
            Err(e) => reply_error(e),
        }
    }

    /// The token server's checks, in order: client credentials, grant type, refresh token.
    fn grant(&self, params: &Value) -> Result<Value, ErrorReply> {
        let get = |name: &str| params.get(name).and_then(text).unwrap_or_default();
        let config = self.config.lock().unwrap().clone();
        if get("client_id") != config.oauth_client_id || get("client_secret") != config.oauth_client_secret {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_client", "Invalid client credentials"));
        }
        match get("grant_type").as_str() {
            "refresh_token" => {}
            // The mock has no authorize step, so no authorization code is ever valid.
            "authorization_code" => return Err(ErrorReply::fixture(StatusCode::BAD_REQUEST, OAUTH_ERROR_INVALID_GRANT)),
            _ => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_request", "Unsupported grant_type")),
        }
        let mut tokens = self.oauth.lock().unwrap();
        if get("refresh_token") != tokens.refresh {
            return Err(ErrorReply::fixture(StatusCode::BAD_REQUEST, OAUTH_ERROR_INVALID_GRANT));
        }
        tokens.refreshes += 1;
        let n = tokens.refreshes + 1;
        if let Some(old) = tokens.access.take() {
            tokens.retired_access.insert(old);
        }
        let access = format!("access-{n}");
        let refresh = format!("refresh-{n}");
        tokens.retired_access.remove(&access);
        tokens.access = Some(access.clone());
        tokens.access_expires_at = expiry(Instant::now(), config.oauth_access_ttl);
        tokens.refresh = refresh.clone();
        drop(tokens);

        let ttl = config.oauth_access_ttl.as_secs();
        let mut v = fixture_json(OAUTH_TOKEN_REFRESH);
        v["access_token"] = json!(access);
        v["refresh_token"] = json!(refresh);
        v["client_endpoint"] = json!(self.client_endpoint);
        v["scope"] = json!(config.scopes.join(","));
        v["expires_in"] = json!(ttl);
        v["expires"] = json!(unix_now().floor() as u64 + ttl);
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------

/// Every method served, with the scope it needs.
const METHODS: &[(&str, Option<&str>)] = &[
    ("scope", None),
    ("user.get", Some("user")),
    ("department.get", Some("department")),
    ("crm.category.list", Some("crm")),
    ("crm.status.list", Some("crm")),
    ("crm.currency.list", Some("crm")),
    ("crm.deal.list", Some("crm")),
    ("crm.lead.list", Some("crm")),
    ("crm.contact.list", Some("crm")),
    ("crm.company.list", Some("crm")),
    ("crm.activity.list", Some("crm")),
    ("crm.stagehistory.list", Some("crm")),
    ("crm.item.productrow.list", Some("crm")),
    ("voximplant.statistic.get", Some("telephony")),
    ("tasks.task.list", Some("task")),
];

struct Outcome {
    result: Value,
    total: Option<usize>,
    next: Option<usize>,
    rows: usize,
}

fn check_method(config: &MockConfig, method: &str) -> Result<(), ErrorReply> {
    match METHODS.iter().find(|(m, _)| *m == method) {
        None => Err(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
        Some((_, Some(scope))) if !config.scopes.iter().any(|s| s == scope) => {
            Err(ErrorReply::fixture(StatusCode::FORBIDDEN, ERROR_INSUFFICIENT_SCOPE))
        }
        Some(_) => Ok(()),
    }
}

impl MockState {
    /// A request past the bucket and the faults.
    fn serve(&self, auth: &Auth, method: &str, params: &Value, order: Option<Vec<String>>, started: f64) -> Result<Value, ErrorReply> {
        let config = self.config.lock().unwrap().clone();
        match auth {
            Auth::Webhook(code) if *code != config.webhook_code => {
                return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_NO_AUTH_FOUND));
            }
            Auth::Webhook(_) => {}
            Auth::OAuth(token) => self.check_access_token(token.as_deref())?,
        }
        if method == "batch" {
            return self.batch(&config, params, order, started);
        }
        check_method(&config, method)?;
        self.check_operating(method, &config)?;
        let outcome = {
            let data = self.data.lock().unwrap();
            execute(&data, &config, method, params)?
        };
        let (reset_at, used) = self.bill(method, outcome.rows, &config);
        let mut env = Map::new();
        env.insert("result".into(), outcome.result);
        if let Some(next) = outcome.next {
            env.insert("next".into(), json!(next));
        }
        if let Some(total) = outcome.total {
            env.insert("total".into(), json!(total));
        }
        env.insert("time".into(), time_object(started, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))));
        Ok(Value::Object(env))
    }

    fn check_operating(&self, method: &str, config: &MockConfig) -> Result<(), ErrorReply> {
        if self.operating_used(method) >= config.operating_limit_seconds {
            self.rejected_operating.fetch_add(1, Ordering::Relaxed);
            return Err(ErrorReply::fixture(StatusCode::TOO_MANY_REQUESTS, ERROR_OPERATION_TIME_LIMIT));
        }
        Ok(())
    }

    fn batch(&self, config: &MockConfig, params: &Value, order: Option<Vec<String>>, started: f64) -> Result<Value, ErrorReply> {
        let commands: Vec<(String, Value)> = match param(params, "cmd") {
            Some(Value::Object(m)) => {
                let names = match order {
                    Some(o) if o.len() == m.len() && o.iter().all(|n| m.contains_key(n)) => o,
                    _ => {
                        let mut names: Vec<String> = m.keys().cloned().collect();
                        names.sort_by(|a, b| natural_cmp(a, b));
                        names
                    }
                };
                names.into_iter().map(|n| (n.clone(), m[&n].clone())).collect()
            }
            Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect(),
            _ => Vec::new(),
        };
        if commands.len() > MAX_BATCH {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"));
        }
        let halt = param(params, "halt").is_some_and(truthy);
        // B-LIMIT-10: the batch itself is not billed; each nested call is, to its own
        // method, and a nested call to a method whose budget is spent fails on its own.

        let mut results = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        let mut nexts = Map::new();
        let mut times = Map::new();
        let mut rows = 0;
        {
            let data = self.data.lock().unwrap();
            for (name, command) in commands {
                let sub_start = unix_now();
                let sub_method = command.as_str().map(|c| c.split('?').next().unwrap_or("").trim_end_matches(".json").to_string()).unwrap_or_default();
                let outcome = self.check_operating(&sub_method, config).and_then(|()| self.run_command(&data, config, &command, &results));
                match outcome {
                    Ok(o) => {
                        rows += o.rows;
                        results.insert(name.clone(), o.result);
                        if let Some(t) = o.total {
                            totals.insert(name.clone(), json!(t));
                        }
                        if let Some(n) = o.next {
                            nexts.insert(name.clone(), json!(n));
                        }
                        let (reset_at, used) = self.bill(&sub_method, o.rows, config);
                        times.insert(name, time_object(sub_start, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))));
                    }
                    Err(e) => {
                        errors.insert(name, e.body);
                        if halt {
                            break;
                        }
                    }
                }
            }
        }
        let _ = rows;
        let (reset_at, used) = self.bill("batch", 0, config);
        let used = used.abs();
        // PHP encodes an empty array as `[]`, as the fixtures show.
        let php = |m: Map<String, Value>| if m.is_empty() { json!([]) } else { Value::Object(m) };
        Ok(json!({
            "result": {
                "result": php(results),
                "result_error": php(errors),
                "result_total": php(totals),
                "result_next": php(nexts),
                "result_time": php(times),
            },
            "time": time_object(started, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))),
        }))
    }

    fn run_command(&self, data: &MockData, config: &MockConfig, command: &Value, results: &Map<String, Value>) -> Result<Outcome, ErrorReply> {
        let Some(text) = command.as_str() else {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_ARG_VALUE", "A batch command must be a string"));
        };
        let (method, query) = text.split_once('?').unwrap_or((text, ""));
        let method = method.strip_suffix(".json").unwrap_or(method);
        MockState::count(&self.sub_calls, method);
        if method == "batch" {
            return Err(ErrorReply::new(StatusCode::METHOD_NOT_ALLOWED, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Batch call is not allowed"));
        }
        check_method(config, method)?;
        let mut params = parse_php_query(query);
        substitute_references(&mut params, results);
        execute(data, config, method, &params)
    }
}

/// One method's result over `data`; the method is known and its scope granted.
fn execute(data: &MockData, config: &MockConfig, method: &str, params: &Value) -> Result<Outcome, ErrorReply> {
    let by_id = |rows: &[Value], root: Option<&str>| list(rows, params, "ID", "ID", root, false);
    match method {
        "scope" => Ok(Outcome { result: json!(config.scopes), total: None, next: None, rows: config.scopes.len() }),
        "user.get" => by_id(&data.users, None),
        "department.get" => by_id(&data.departments, None),
        "crm.category.list" => {
            let rows: &[Value] = if entity_type_id(params) == Some(2) { &data.categories } else { &[] };
            list(rows, params, "id", "id", Some("categories"), false)
        }
        "crm.status.list" => by_id(&data.statuses, None),
        // B-CUR-1, B-CUR-2: no filter and no paging; every currency at once, `total` 0.
        "crm.currency.list" => {
            let mut all = list(&data.currencies, &json!({"order": param(params, "order").cloned().unwrap_or(json!({"SORT": "ASC"}))}), "CURRENCY", "SORT", None, false)?;
            all.total = Some(0);
            all.next = None;
            Ok(all)
        }
        "crm.deal.list" => by_id(&data.deals, None),
        "crm.lead.list" => by_id(&data.leads, None),
        "crm.contact.list" => list(&data.contacts, params, "ID", "ID", None, true),
        "crm.company.list" => list(&data.companies, params, "ID", "ID", None, true),
        // B-ACT-2: activities come by START_TIME unless an order is given.
        "crm.activity.list" => list(&data.activities, params, "ID", "START_TIME", None, false),
        "crm.stagehistory.list" => {
            // B-HIST-2: an order direction other than ASC or DESC is refused.
            if let Some(Value::Object(order)) = param(params, "order")
                && let Some((field, direction)) = order.iter().find(|(_, d)| !matches!(d.as_str(), Some("ASC" | "DESC")))
            {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_ARG_VALUE", &format!("Invalid order: allowed sort directions are ASC, DESC. But got '{}' for field '{field}'", direction.as_str().unwrap_or(""))));
            }
            // B-HIST-1: leads, deals, invoices and smart processes (dynamic ids from 128).
            let rows: &[Value] = match entity_type_id(params) {
                Some(2) => &data.deal_stage_history,
                Some(1) => &data.lead_stage_history,
                Some(5 | 31) => &[],
                Some(t) if t >= 128 => &[],
                _ => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type is not supported")),
            };
            by_id(rows, Some("items"))
        }
        "crm.item.productrow.list" => {
            // B-PR-1: the filter must name both keys, with exactly the `=` prefix (an array
            // is allowed); `@ownerId` or `ownerType` alone do not count.
            let filter = param(params, "filter").and_then(Value::as_object);
            let has = |key: &str| filter.is_some_and(|f| f.get(key).is_some_and(|v| !v.is_null() && v.as_str() != Some("")));
            if !has("=ownerType") || !has("=ownerId") {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "REQUIRED_ARG_MISSING", "Required fields: =ownerType, =ownerId"));
            }
            // Only the owners' rows are matched (the portal indexes them; a scan of every
            // row per command would make the mock, not the client, set the pace).
            let owners: HashSet<u64> = match filter.and_then(|f| f.get("=ownerId")) {
                Some(Value::Array(ids)) => ids.iter().filter_map(|v| as_f64(v).map(|f| f as u64)).collect(),
                Some(v) => as_f64(v).map(|f| f as u64).into_iter().collect(),
                None => HashSet::new(),
            };
            let rows: Vec<Value> = data.product_rows.iter().filter(|r| r["ownerId"].as_u64().is_some_and(|o| owners.contains(&o))).cloned().collect();
            list(&rows, params, "id", "id", Some("productRows"), false)
        }
        "voximplant.statistic.get" => by_id(&data.calls, None),
        "tasks.task.list" => {
            // B-TASK-1: ID descending by default; a key that cannot be sorted is refused.
            if let Some(Value::Object(order)) = param(params, "order")
                && let Some(key) = order.keys().find(|k| !TASK_SORT_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)))
            {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "0", &format!("Invalid sorting key (internal error): {key}")));
            }
            list(&data.tasks, params, "id", "-id", Some("tasks"), false)
        }
        _ => Err(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
    }
}

/// The sort keys `tasks.task.list` takes (B-TASK-1).
const TASK_SORT_KEYS: [&str; 13] = ["ID", "TITLE", "CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE", "DEADLINE", "DATE_START", "STATUS", "REAL_STATUS", "RESPONSIBLE_ID", "CREATED_BY", "PRIORITY", "SORTING"];

fn entity_type_id(params: &Value) -> Option<i64> {
    param(params, "entityTypeId").and_then(as_f64).map(|f| f as i64)
}

/// A list method: filter, order, one page of 50, select.
fn list(rows: &[Value], params: &Value, id_field: &str, default_sort: &str, root: Option<&str>, multi_fields: bool) -> Result<Outcome, ErrorReply> {
    let conditions = match param(params, "filter") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(Value::Object(f)) => parse_filter(f),
        Some(_) => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "", "Parameter 'filter' must be array.")),
    };
    let (sort_field, descending) = ordering(params, default_sort);
    let start = param(params, "start").and_then(as_f64).map_or(0, |s| s as i64);
    if let Some(outcome) = keyset_page(rows, &conditions, &sort_field, descending, start, id_field, root, multi_fields, params) {
        return Ok(outcome);
    }
    let mut keyed: Vec<(SortKey, SortKey, &Value)> = rows
        .iter()
        .filter(|r| conditions.iter().all(|c| c.matches(r)))
        .map(|r| (SortKey::of(field(r, &sort_field)), SortKey::of(field(r, id_field)), r))
        .collect();
    keyed.sort_by(|a, b| {
        let primary = a.0.cmp(&b.0);
        let primary = if descending { primary.reverse() } else { primary };
        primary.then_with(|| a.1.cmp(&b.1))
    });
    let count = keyed.len();
    let (from, total, next) = if start < 0 {
        (0, 0, None)
    } else {
        let s = start as usize;
        (s, count, (s + PAGE < count).then_some(s + PAGE))
    };
    let select: Vec<&str> = match param(params, "select") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let page: Vec<Value> = keyed.iter().skip(from).take(PAGE).map(|(_, _, r)| project(r, &select, id_field, multi_fields)).collect();
    let n = page.len();
    let result = match root {
        None => Value::Array(page),
        Some(key) => json!({ key: page }),
    };
    Ok(Outcome { result, total: Some(total), next, rows: n })
}

fn numeric_id(row: &Value, id_field: &str) -> Option<u64> {
    match field(row, id_field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The keyset fast path (`start=-1`, ordered by id ascending, `>ID` in the filter) over rows
/// kept in id order: a binary search instead of filtering and sorting everything, so the
/// mock keeps up with a sync of a large portal. `None` when it does not apply.
#[allow(clippy::too_many_arguments)]
fn keyset_page(
    rows: &[Value],
    conditions: &[Condition],
    sort_field: &str,
    descending: bool,
    start: i64,
    id_field: &str,
    root: Option<&str>,
    multi_fields: bool,
    params: &Value,
) -> Option<Outcome> {
    if start >= 0 || descending || !sort_field.eq_ignore_ascii_case(id_field) {
        return None;
    }
    let after = conditions.iter().find(|c| c.field.eq_ignore_ascii_case(id_field) && matches!(c.op, Op::Gt))?;
    let after: u64 = match &after.value {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    // The generated data is in id order and tests append higher ids (checked at the ends,
    // which is what a binary search relies on here).
    let (first, last) = (numeric_id(rows.first()?, id_field)?, numeric_id(rows.last()?, id_field)?);
    if first > last {
        return None;
    }
    let from = rows.partition_point(|r| numeric_id(r, id_field).is_some_and(|id| id <= after));
    let select: Vec<&str> = match param(params, "select") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let page: Vec<Value> = rows[from..].iter().filter(|r| conditions.iter().all(|c| c.matches(r))).take(PAGE).map(|r| project(r, &select, id_field, multi_fields)).collect();
    let n = page.len();
    let result = match root {
        None => Value::Array(page),
        Some(key) => json!({ key: page }),
    };
    Some(Outcome { result, total: Some(0), next: None, rows: n })
}

/// `select` is ignored (all fields come back) except: `["ID"]` alone gives only the id, and
/// contacts/companies carry the PHONE/EMAIL/WEB/IM multi-fields only when selected.
fn project(row: &Value, select: &[&str], id_field: &str, multi_fields: bool) -> Value {
    if let [only] = select
        && only.eq_ignore_ascii_case(id_field)
    {
        return json!({ id_field: field(row, id_field).cloned().unwrap_or(Value::Null) });
    }
    let mut row = row.clone();
    if multi_fields && let Value::Object(m) = &mut row {
        for f in ["PHONE", "EMAIL", "WEB", "IM"] {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
                m.remove(f);
            }
        }
    }
    row
}

/// `order: {"ID": "ASC"}`, or `SORT` + `ORDER` strings; default ascending by `default_field`.
fn ordering(params: &Value, default_field: &str) -> (String, bool) {
    let desc = |d: &Value| d.as_str().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    match param(params, "order") {
        Some(Value::Object(m)) if !m.is_empty() => {
            let (k, d) = m.iter().next().unwrap();
            (k.clone(), desc(d))
        }
        other => match param(params, "sort").and_then(Value::as_str) {
            Some(field) => (field.to_string(), other.is_some_and(desc)),
            // B-LIST-6: a method's own default order (`-FIELD`: descending).
            None => match default_field.strip_prefix('-') {
                Some(field) => (field.to_string(), other.is_none_or(|o| !o.as_str().is_some_and(|d| d.eq_ignore_ascii_case("asc")))),
                None => (default_field.to_string(), other.is_some_and(desc)),
            },
        },
    }
}

/// A top-level parameter, its name matched case-insensitively (`filter`/`FILTER`).
fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    let m = params.as_object()?;
    m.get(name).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A record's field, its name matched case-insensitively and ignoring underscores, so that
/// `CHANGED_DATE` finds the task's `changedDate`.
fn field<'a>(row: &'a Value, name: &str) -> Option<&'a Value> {
    let m = row.as_object()?;
    if let Some(v) = m.get(name) {
        return Some(v);
    }
    if let Some((_, v)) = m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        return Some(v);
    }
    let norm = |s: &str| s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect::<String>();
    let wanted = norm(name);
    m.iter().find(|(k, _)| norm(k) == wanted).map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------
// Filters and comparisons
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Like,
}

#[derive(Debug)]
struct Condition {
    field: String,
    op: Op,
    value: Value,
}

fn parse_filter(filter: &Map<String, Value>) -> Vec<Condition> {
    const PREFIXES: [(&str, Op); 10] = [
        ("!@", Op::NotIn),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("@", Op::In),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("!", Op::Ne),
        ("%", Op::Like),
    ];
    filter
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("logic"))
        .map(|(key, value)| {
            let (op, name) = PREFIXES.iter().find_map(|(p, op)| key.strip_prefix(p).map(|rest| (*op, rest))).unwrap_or((Op::Eq, key.as_str()));
            Condition { field: name.to_string(), op, value: value.clone() }
        })
        .collect()
}

impl Condition {
    fn matches(&self, row: &Value) -> bool {
        let found = field(row, &self.field);
        // Record values that are arrays (UF_DEPARTMENT, ufCrmTask) match when any element does.
        let values: Vec<&Value> = match found {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
        };
        let wanted: Vec<&Value> = match &self.value {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let equal_any = || values.iter().any(|v| wanted.iter().any(|w| values_equal(v, w)));
        let compare = |accept: fn(CmpOrdering) -> bool| {
            // An empty value for a comparison is what an unresolved `$result[…]` reference
            // of a batch becomes; the portal then drops the condition, so it always holds.
            if self.value.as_str() == Some("") {
                return true;
            }
            values.iter().any(|v| compare_values(v, &self.value).is_some_and(accept))
        };
        match self.op {
            Op::Eq | Op::In => equal_any(),
            Op::Ne | Op::NotIn => !equal_any(),
            Op::Gt => compare(|o| o == CmpOrdering::Greater),
            Op::Ge => compare(|o| o != CmpOrdering::Less),
            Op::Lt => compare(|o| o == CmpOrdering::Less),
            Op::Le => compare(|o| o != CmpOrdering::Greater),
            Op::Like => {
                let needle = text(&self.value).unwrap_or_default().to_lowercase();
                values.iter().any(|v| text(v).is_some_and(|t| t.to_lowercase().contains(&needle)))
            }
        }
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            let numeric = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c)) && s.bytes().any(|c| c.is_ascii_digit());
            if numeric { s.parse().ok() } else { None }
        }
        _ => None,
    }
}

fn as_instant(v: &Value) -> Option<DateTime<FixedOffset>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "true" | "1" => Some(true),
            "n" | "false" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    as_bool(v).unwrap_or(false)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "Y" } else { "N" }.into()),
        _ => None,
    }
}

/// Numbers when both sides are numeric, instants when both are RFC 3339, else strings.
fn compare_values(a: &Value, b: &Value) -> Option<CmpOrdering> {
    if let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) {
        return x.partial_cmp(&y);
    }
    if let (Some(x), Some(y)) = (as_instant(a), as_instant(b)) {
        return Some(x.cmp(&y));
    }
    Some(text(a)?.cmp(&text(b)?))
}

fn values_equal(a: &Value, b: &Value) -> bool {
    if a.is_boolean() || b.is_boolean() {
        return matches!((as_bool(a), as_bool(b)), (Some(x), Some(y)) if x == y);
    }
    compare_values(a, b) == Some(CmpOrdering::Equal)
}

/// A sort key computed once per row.
#[derive(Debug)]
enum SortKey {
    Missing,
    Num(f64),
    Time(DateTime<FixedOffset>),
    Text(String),
}

impl SortKey {
    fn of(v: Option<&Value>) -> SortKey {
        match v {
            None | Some(Value::Null) => SortKey::Missing,
            Some(v) => {
                if let Some(f) = as_f64(v) {
                    SortKey::Num(f)
                } else if let Some(t) = as_instant(v) {
                    SortKey::Time(t)
                } else {
                    text(v).map_or(SortKey::Missing, SortKey::Text)
                }
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Missing => 0,
            SortKey::Num(_) => 1,
            SortKey::Time(_) => 2,
            SortKey::Text(_) => 3,
        }
    }

    fn cmp(&self, other: &SortKey) -> CmpOrdering {
        match (self, other) {
            (SortKey::Num(a), SortKey::Num(b)) => a.partial_cmp(b).unwrap_or(CmpOrdering::Equal),
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// `c2` before `c10`: a non-digit prefix, then the numeric suffix.
fn natural_cmp(a: &str, b: &str) -> CmpOrdering {
    let split = |s: &str| {
        let digits = s.len() - s.bytes().rev().take_while(u8::is_ascii_digit).count();
        (s[..digits].to_string(), s[digits..].parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

// ---------------------------------------------------------------------------------------
// Batch commands: PHP queries and `$result[…]` references
// ---------------------------------------------------------------------------------------

enum Segment {
    Key(String),
    Push,
}

/// A PHP-style urlencoded query (`order[ID]=ASC&filter[%3EID]=5&select[]=*`) as the JSON a
/// POST body would carry: `a[b]` nests objects, `a[]` appends to arrays, objects keyed
/// 0..n become arrays. Values stay strings, as PHP sees them.
pub fn parse_php_query(query: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (base, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (&key[..], ""),
        };
        if base.is_empty() {
            continue;
        }
        let mut path = vec![Segment::Key(base.to_string())];
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            let name = &inner[..end];
            path.push(if name.is_empty() { Segment::Push } else { Segment::Key(name.to_string()) });
            rest = &inner[end + 1..];
        }
        insert_at(&mut root, &path, Value::String(value.into_owned()));
    }
    listify(&mut root);
    root
}

fn insert_at(node: &mut Value, path: &[Segment], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    match (first, &*node) {
        (Segment::Push, Value::Array(_) | Value::Object(_)) | (Segment::Key(_), Value::Object(_)) => {}
        (Segment::Key(_), Value::Array(a)) => {
            let m: Map<String, Value> = a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect();
            *node = Value::Object(m);
        }
        (Segment::Push, _) => *node = Value::Array(Vec::new()),
        (Segment::Key(_), _) => *node = Value::Object(Map::new()),
    }
    let child = match (first, node) {
        (Segment::Push, Value::Array(a)) => {
            a.push(Value::Null);
            a.last_mut().unwrap()
        }
        (Segment::Push, Value::Object(m)) => {
            let k = m.len().to_string();
            m.entry(k).or_insert(Value::Null)
        }
        (Segment::Key(k), Value::Object(m)) => m.entry(k.clone()).or_insert(Value::Null),
        _ => unreachable!("the node was made a container above"),
    };
    insert_at(child, rest, value);
}

fn listify(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(listify);
            if !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string())) {
                let items = (0..m.len()).map(|i| m[&i.to_string()].clone()).collect();
                *v = Value::Array(items);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(listify),
        _ => {}
    }
}

/// Replaces `$result[cmd][k1][k2]…` in every string value with what the earlier command
/// `cmd` returned (its `result` part). A string that is one whole reference takes the
/// referenced value itself; references inside longer strings are spliced in as text. A
/// reference that cannot be resolved becomes the empty string.
///
/// The mock substitutes after URL-decoding, so a reference works percent-encoded or not.
pub fn substitute_references(v: &mut Value, results: &Map<String, Value>) {
    match v {
        Value::String(s) if s.contains("$result[") => *v = resolve_references(s, results),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute_references(x, results)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute_references(x, results)),
        _ => {}
    }
}

const REFERENCE: &str = "$result";

fn resolve_references(s: &str, results: &Map<String, Value>) -> Value {
    if let Some(after) = s.strip_prefix(REFERENCE) {
        let (keys, used) = bracket_keys(after);
        if used == after.len() && !keys.is_empty() {
            return match lookup(results, &keys) {
                None | Some(Value::Null) => Value::String(String::new()),
                Some(v) => v.clone(),
            };
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$result[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + REFERENCE.len()..];
        let (keys, used) = bracket_keys(after);
        out.push_str(&match lookup(results, &keys) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        });
        rest = &after[used.max(1)..];
    }
    out.push_str(rest);
    Value::String(out)
}

/// `[a][b]['c']` → (["a", "b", "c"], bytes consumed).
fn bracket_keys(s: &str) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut pos = 0;
    while s[pos..].starts_with('[') {
        let Some(end) = s[pos + 1..].find(']') else { break };
        let key = &s[pos + 1..pos + 1 + end];
        keys.push(key.trim_matches(|c| c == '"' || c == '\'').to_string());
        pos += end + 2;
    }
    (keys, pos)
}

fn lookup<'a>(results: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (name, path) = keys.split_first()?;
    let mut cur = results.get(name)?;
    for k in path {
        cur = match cur {
            Value::Array(a) => a.get(k.parse::<usize>().ok()?)?,
            Value::Object(m) => m.get(k)?,
            _ => return None,
        };
    }
    Some(cur)
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn moscow() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).unwrap()
}

fn iso(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&moscow()).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn iso_unix(secs: f64) -> String {
    let t = DateTime::from_timestamp(secs.floor() as i64, 0).unwrap();
    iso(t.with_timezone(&moscow()))
}

/// The envelope's `time`; `operating` = (operating_reset_at, operating) unless omitted.
fn time_object(start: f64, finish: f64, operating: Option<(Option<i64>, f64)>) -> Value {
    let duration = round6(finish - start);
    let mut t = json!({
        "start": round6(start),
        "finish": round6(finish),
        "duration": duration,
        "processing": round6(duration * 0.6),
        "date_start": iso_unix(start),
        "date_finish": iso_unix(finish),
    });
    if let Some((reset_at, used)) = operating {
        if let Some(r) = reset_at {
            t["operating_reset_at"] = json!(r);
        }
        t["operating"] = json!(used);
    }
    t
}

// ---------------------------------------------------------------------------------------
// Data: the fixtures, and generated portals
// ---------------------------------------------------------------------------------------

const PRODUCTS: [(u64, &str); 5] =
    [(7, "CRM license, 1 year"), (8, "Implementation"), (9, "Training day"), (10, "Support package"), (11, "Telephony module")];

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn date_of(row: &Value, name: &str) -> DateTime<FixedOffset> {
    at(row[name].as_str().unwrap_or_else(|| panic!("{name} of {row}")))
}

fn str_of<'a>(row: &'a Value, name: &str) -> &'a str {
    row[name].as_str().unwrap_or("")
}

/// Moves every ISO date-time field of a record by `delta`.
fn shift_dates(row: &mut Value, delta: TimeDelta) {
    if let Value::Object(m) = row {
        for v in m.values_mut() {
            if let Value::String(s) = v
                && let Ok(t) = DateTime::parse_from_rfc3339(s)
            {
                *v = Value::String(iso(t + delta));
            }
        }
    }
}

fn by_id(rows: &[Value], id: &str) -> Value {
    rows.iter().find(|r| str_of(r, "ID") == id).unwrap().clone()
}

fn contact_phone(k: usize) -> String {
    format!("+7916{:07}", 5_550_000 + k)
}

fn company_phone(c: usize) -> String {
    format!("+7495{:07}", 1_230_000 + c)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `crm.status.list` rows of ENTITY_ID SOURCE (no fixture file has them).
fn source_statuses() -> Vec<Value> {
    [
        ("CALL", "Call"),
        ("EMAIL", "E-mail"),
        ("WEB", "Website"),
        ("ADVERTISING", "Advertising"),
        ("PARTNER", "Partner"),
        ("RECOMMENDATION", "Recommendation"),
        ("CALLBACK", "Callback"),
        ("OTHER", "Other"),
    ]
    .iter()
    .enumerate()
    .map(|(k, (id, name))| {
        json!({
            "ID": (301 + 2 * k).to_string(), "ENTITY_ID": "SOURCE", "STATUS_ID": id, "NAME": name,
            "NAME_INIT": name, "SORT": ((k + 1) * 10).to_string(), "SYSTEM": "Y", "CATEGORY_ID": null,
            "COLOR": null, "SEMANTICS": null,
        })
    })
    .collect()
}

fn currencies() -> Vec<Value> {
    vec![
        json!({"CURRENCY": "RUB", "AMOUNT_CNT": 1, "AMOUNT": "1.0000", "BASE": "Y", "SORT": 100}),
        json!({"CURRENCY": "USD", "AMOUNT_CNT": 1, "AMOUNT": "90.0000", "BASE": "N", "SORT": 200}),
        json!({"CURRENCY": "EUR", "AMOUNT_CNT": 1, "AMOUNT": "100.0000", "BASE": "N", "SORT": 300}),
    ]
}

/// The rate of a deal's last save (portals keep `OPPORTUNITY_ACCOUNT` at it): today's rate
/// of `crm.currency.list` moved by up to ±3 % by the deal's id, so converting at today's
/// rates is off for most foreign-currency deals.
fn rate_at_save(currency: &str, deal_id: u64) -> f64 {
    let today = rate(currency);
    if today == 1.0 { 1.0 } else { today * (1.0 + ((splitmix(deal_id) % 601) as f64 - 300.0) / 10_000.0) }
}

/// Sets `OPPORTUNITY_ACCOUNT` and `ACCOUNT_CURRENCY_ID` (RUB) as a portal reports them.
pub fn account_amount(deal: &mut Value) {
    let amount = as_f64(&deal["OPPORTUNITY"]).unwrap_or(0.0);
    let id: u64 = str_of(deal, "ID").parse().unwrap_or(0);
    let account = (amount * rate_at_save(str_of(deal, "CURRENCY_ID"), id) * 100.0).round() / 100.0;
    deal["OPPORTUNITY_ACCOUNT"] = json!(format!("{account:.2}"));
    deal["ACCOUNT_CURRENCY_ID"] = json!("RUB");
}

fn rate(currency: &str) -> f64 {
    match currency {
        "USD" => 90.0,
        "EUR" => 100.0,
        _ => 1.0,
    }
}

/// `crm.item.productrow.list` items summing to each deal's OPPORTUNITY: even-indexed deals
/// get two rows (30 % ×2 + the rest ×1), odd ones one row. Ids from 1.
fn product_rows_for(deals: &[Value]) -> Vec<Value> {
    let mut rows = Vec::new();
    for (i, deal) in deals.iter().enumerate() {
        let cents = (as_f64(&deal["OPPORTUNITY"]).unwrap_or(0.0) * 100.0).round() as i64;
        let currency = str_of(deal, "CURRENCY_ID");
        let owner: u64 = str_of(deal, "ID").parse().unwrap();
        let lines = if i % 2 == 0 {
            let a = cents * 3 / 10;
            vec![(a, 2.0), (cents - 2 * a, 1.0)]
        } else {
            vec![(cents, 1.0)]
        };
        for (k, (price_cents, quantity)) in lines.into_iter().enumerate() {
            let (product_id, product_name) = PRODUCTS[(i + k) % PRODUCTS.len()];
            let price = price_cents as f64 / 100.0;
            rows.push(json!({
                "id": rows.len() + 1, "ownerId": owner, "ownerType": "D", "productId": product_id,
                "productName": product_name, "price": price, "priceAccount": (price * rate(currency) * 100.0).round() / 100.0,
                "priceExclusive": price, "priceNetto": price, "priceBrutto": price, "quantity": quantity,
                "discountTypeId": 2, "discountRate": 0.0, "discountSum": 0.0, "taxRate": null, "taxIncluded": "N",
                "customized": "Y", "measureCode": 796, "measureName": "pcs", "sort": 10 * (k + 1), "type": 1, "storeId": 0,
            }));
        }
    }
    rows
}

impl MockData {
    /// The records of the fixture files (deals of page 1, page 2 and the start=-1 page, by
    /// ID once). No fixture file has currencies, SOURCE statuses or product rows: those are
    /// the synthetic ones [`MockData::generated`] also has.
    pub fn fixtures() -> MockData {
        let mut deals: Vec<Value> = Vec::new();
        for page in [DEAL_PAGE1, DEAL_PAGE2_LAST, DEAL_FAST_START_MINUS1] {
            for d in fixture_rows(page, None) {
                if !deals.iter().any(|x| x["ID"] == d["ID"]) {
                    deals.push(d);
                }
            }
        }
        let mut statuses = fixture_rows(fixture!("crm.status.list_DEAL_STAGE.json"), None);
        statuses.extend(fixture_rows(fixture!("crm.status.list_DEAL_STAGE_1.json"), None));
        statuses.extend(fixture_rows(fixture!("crm.status.list_STATUS.json"), None));
        statuses.extend(source_statuses());
        // The fixture deals are the docs' examples, without OPPORTUNITY_ACCOUNT: the
        // connector converts those at crm.currency.list's rates.
        MockData {
            users: fixture_rows(fixture!("user.get.json"), None),
            departments: fixture_rows(fixture!("department.get.json"), None),
            categories: fixture_rows(fixture!("crm.category.list_entityTypeId_2.json"), Some("categories")),
            statuses,
            currencies: currencies(),
            product_rows: product_rows_for(&deals),
            deals,
            leads: fixture_rows(fixture!("crm.lead.list.json"), None),
            contacts: fixture_rows(fixture!("crm.contact.list.json"), None),
            companies: fixture_rows(fixture!("crm.company.list.json"), None),
            activities: fixture_rows(fixture!("crm.activity.list.json"), None),
            deal_stage_history: fixture_rows(fixture!("crm.stagehistory.list_deals.json"), Some("items")),
            lead_stage_history: fixture_rows(fixture!("crm.stagehistory.list_leads.json"), Some("items")),
            calls: fixture_rows(fixture!("voximplant.statistic.get.json"), None),
            tasks: fixture_rows(fixture!("tasks.task.list.json"), Some("tasks")),
        }
    }

    /// A portal of `deals` deals built from the fixture records as templates; deterministic,
    /// every id unique, every reference valid. Per deal: 2 leads, 1 contact, 3 activities
    /// (2 calls bound to the deal + a meeting, e-mail or to-do), 3 stage-history rows,
    /// 4 calls, 1 task, 1.5 product rows; companies ceil(0.3 per deal) but at least
    /// min(deals, 60) so that at 120 deals every entity pages.
    pub fn generated(deals: usize) -> MockData {
        let fx = MockData::fixtures();
        let n = deals;
        let step = TimeDelta::minutes((525_600 / n.max(1)).clamp(1, 360) as i64);
        let base = at("2025-09-01T09:00:00+03:00");
        let n_companies = (n * 3).div_ceil(10).max(n.min(60)).max(1);

        // Users: the fixture's three, plus the two managers the fixture records also name.
        let mut users = fx.users.clone();
        for (id, name, last, gender, login) in [(15, "Anna", "Volkova", "F", "2025-09-26T16:20:00+03:00"), (23, "Dmitry", "Kozlov", "M", "2025-09-26T17:10:00+03:00")] {
            let mut u = fx.users[1].clone();
            u["ID"] = json!(id.to_string());
            u["NAME"] = json!(name);
            u["LAST_NAME"] = json!(last);
            u["EMAIL"] = json!(format!("{}.{}@acme.example", &name[..1].to_lowercase(), last.to_lowercase()));
            u["PERSONAL_GENDER"] = json!(gender);
            u["LAST_LOGIN"] = json!(login);
            u["IS_ONLINE"] = json!("N");
            users.push(u);
        }

        // Deals 1000.., cycling the fixture deals (with a rotation per cycle).
        let k = fx.deals.len();
        let mut out_deals = Vec::with_capacity(n);
        for i in 0..n {
            let t = &fx.deals[(i + 13 * (i / k)) % k];
            let mut d = t.clone();
            let created = base + step * i as i32;
            shift_dates(&mut d, created - date_of(t, "DATE_CREATE"));
            let id = 1000 + i;
            d["ID"] = json!(id.to_string());
            d["TITLE"] = json!(format!("Deal #{id}"));
            d["COMPANY_ID"] = json!(if str_of(t, "COMPANY_ID") == "0" { "0".to_string() } else { (200 + i % n_companies).to_string() });
            d["CONTACT_ID"] = json!((300 + i).to_string());
            d["LEAD_ID"] = if t["LEAD_ID"].is_null() { Value::Null } else { json!((500 + 2 * i).to_string()) };
            let factor = 0.85 + 0.05 * (i % 7) as f64;
            let rub = (as_f64(&t["OPPORTUNITY"]).unwrap() * factor / 100.0).round() * 100.0;
            let (currency, amount) = if i % 15 == 4 {
                ("USD", (rub / 90.0 / 10.0).round() * 10.0)
            } else if i % 40 == 22 {
                ("EUR", (rub / 100.0 / 10.0).round() * 10.0)
            } else {
                ("RUB", rub)
            };
            d["CURRENCY_ID"] = json!(currency);
            d["OPPORTUNITY"] = json!(format!("{amount:.2}"));
            account_amount(&mut d);
            out_deals.push(d);
        }
        let deal_id = |i: usize| str_of(&out_deals[i], "ID").to_string();

        // Contacts 300.., one per deal.
        let contacts: Vec<Value> = (0..n)
            .map(|i| {
                let t = &fx.contacts[i % fx.contacts.len()];
                let d = &out_deals[i];
                let mut c = t.clone();
                shift_dates(&mut c, date_of(d, "DATE_CREATE") - TimeDelta::days(30) - date_of(t, "DATE_CREATE"));
                let id = 300 + i;
                c["ID"] = json!(id.to_string());
                c["LEAD_ID"] = d["LEAD_ID"].clone();
                c["COMPANY_ID"] = if str_of(d, "COMPANY_ID") == "0" { Value::Null } else { d["COMPANY_ID"].clone() };
                c["PHONE"] = json!([{"ID": (1000 + 2 * i).to_string(), "VALUE_TYPE": "WORK", "VALUE": contact_phone(i), "TYPE_ID": "PHONE"}]);
                c["EMAIL"] = json!([{"ID": (1001 + 2 * i).to_string(), "VALUE_TYPE": "WORK", "VALUE": format!("client{id}@example.com"), "TYPE_ID": "EMAIL"}]);
                c
            })
            .collect();

        // Companies 200...
        let companies: Vec<Value> = (0..n_companies)
            .map(|c| {
                let t = &fx.companies[c % fx.companies.len()];
                let mut row = t.clone();
                shift_dates(&mut row, base - TimeDelta::days(60) + step * c as i32 - date_of(t, "DATE_CREATE"));
                let id = 200 + c;
                row["ID"] = json!(id.to_string());
                row["TITLE"] = json!(format!("OOO Company {id}"));
                row["PHONE"] = json!([{"ID": (3000 + c).to_string(), "VALUE_TYPE": "WORK", "VALUE": company_phone(c), "TYPE_ID": "PHONE"}]);
                row
            })
            .collect();

        // Leads 500.., two per deal; lead 500+2i is deal i's LEAD_ID when it has one.
        let leads: Vec<Value> = (0..2 * n)
            .map(|j| {
                let t = &fx.leads[j % fx.leads.len()];
                let d = &out_deals[j / 2];
                let mut l = t.clone();
                let created = date_of(d, "DATE_CREATE") - TimeDelta::days(20) + TimeDelta::hours(3 * (j % 2) as i64);
                shift_dates(&mut l, created - date_of(t, "DATE_CREATE"));
                let id = 500 + j;
                l["ID"] = json!(id.to_string());
                l["TITLE"] = json!(format!("Lead #{id}"));
                l["UF_CRM_LEAD_SEGMENT"] = json!(["B2B", "B2C", "Gov"][j % 3]);
                if j % 2 == 0 && !d["LEAD_ID"].is_null() {
                    l["STATUS_ID"] = json!("CONVERTED");
                    l["STATUS_SEMANTIC_ID"] = json!("S");
                    l["CONTACT_ID"] = d["CONTACT_ID"].clone();
                    l["COMPANY_ID"] = d["COMPANY_ID"].clone();
                    if str_of(&l, "DATE_CLOSED").is_empty() {
                        l["DATE_CLOSED"] = l["MOVED_TIME"].clone();
                    }
                } else if str_of(&l, "STATUS_ID") == "CONVERTED" {
                    l["CONTACT_ID"] = json!((300 + j / 2).to_string());
                }
                l
            })
            .collect();

        // Activities 7700.., three per deal: an outgoing and an incoming call bound to the
        // deal, then a meeting (contact), an e-mail (deal) or a to-do (contact) in turn.
        let mut activities = Vec::with_capacity(3 * n);
        for (i, d) in out_deals.iter().enumerate() {
            let assigned = d["ASSIGNED_BY_ID"].clone();
            let contact = d["CONTACT_ID"].clone();
            for a in 0..3 {
                let (tpl_id, owner_type, owner) = match (a, i % 3) {
                    (0, _) => ("7700", "2", json!(deal_id(i))),
                    (1, _) => ("7702", "2", json!(deal_id(i))),
                    (_, 0) => ("7703", "3", contact.clone()),
                    (_, 1) => ("7704", "2", json!(deal_id(i))),
                    _ => ("7705", "3", contact.clone()),
                };
                let t = by_id(&fx.activities, tpl_id);
                let mut row = t.clone();
                let start = date_of(d, "DATE_CREATE") + TimeDelta::hours(2 + 5 * a as i64);
                shift_dates(&mut row, start - date_of(&t, "START_TIME"));
                row["ID"] = json!((7700 + 3 * i + a).to_string());
                row["OWNER_ID"] = owner;
                row["OWNER_TYPE_ID"] = json!(owner_type);
                for f in ["RESPONSIBLE_ID", "AUTHOR_ID", "EDITOR_ID"] {
                    row[f] = assigned.clone();
                }
                if a == 0 {
                    row["DIRECTION"] = json!("2");
                    row["SUBJECT"] = json!(format!("Outgoing call {}", contact_phone(i)));
                } else if a == 1 {
                    row["DIRECTION"] = json!("1");
                    row["SUBJECT"] = json!(format!("Incoming call {}", contact_phone(i)));
                }
                activities.push(row);
            }
        }

        // Calls 41.., four per deal: two on each call activity (the second 30 min later).
        let mut calls = Vec::with_capacity(4 * n);
        for i in 0..n {
            let d = &out_deals[i];
            for c in 0..4 {
                let index = 4 * i + c;
                let act = &activities[3 * i + c % 2];
                let t = &fx.calls[index % fx.calls.len()];
                let mut row = t.clone();
                let start = date_of(act, "START_TIME") + TimeDelta::minutes(30 * (c / 2) as i64);
                // The callback of a missed call (below) comes 30 minutes after it.
                let start = if c == 2 && i % 4 == 1 { date_of(&activities[3 * i + 1], "START_TIME") + TimeDelta::minutes(30) } else { start };
                shift_dates(&mut row, start - date_of(t, "CALL_START_DATE"));
                let id = 41 + index;
                row["ID"] = json!(id.to_string());
                row["PORTAL_USER_ID"] = d["ASSIGNED_BY_ID"].clone();
                row["PHONE_NUMBER"] = json!(contact_phone(i));
                row["CALL_ID"] = json!(format!("externalCall.{:016x}.{}", splitmix(id as u64), start.timestamp()));
                // Most calls are on the client's contact; some on the deal's lead (first
                // calls to a new lead) or its company, as the fixture's are.
                let (entity, entity_id) = match i % 7 {
                    1 if !d["LEAD_ID"].is_null() => ("LEAD", d["LEAD_ID"].clone()),
                    3 if str_of(d, "COMPANY_ID") != "0" => ("COMPANY", d["COMPANY_ID"].clone()),
                    _ => ("CONTACT", d["CONTACT_ID"].clone()),
                };
                row["CRM_ENTITY_TYPE"] = json!(entity);
                row["CRM_ENTITY_ID"] = entity_id;
                row["CRM_ACTIVITY_ID"] = act["ID"].clone();
                row["CALL_TYPE"] = json!(if c % 2 == 0 { "1" } else { "2" });
                // Every fourth deal's first incoming call is missed; the outgoing call 30
                // minutes later to the same number is the callback.
                if c == 1 && i % 4 == 1 {
                    row["CALL_FAILED_CODE"] = json!("304");
                    row["CALL_FAILED_REASON"] = json!("Missed call");
                    row["CALL_DURATION"] = json!("0");
                }
                row["SESSION_ID"] = json!((3_841_557_776u64 + index as u64).to_string());
                calls.push(row);
            }
        }

        // Deal stage history 35.., three per deal: created, an intermediate stage, the
        // current stage (final for won and lost deals). Lead history follows.
        let mut deal_stage_history = Vec::with_capacity(3 * n);
        for (i, d) in out_deals.iter().enumerate() {
            let category: i64 = str_of(d, "CATEGORY_ID").parse().unwrap_or(0);
            let prefix = if category == 0 { String::new() } else { format!("C{category}:") };
            let created = date_of(d, "DATE_CREATE");
            let moved = date_of(d, "MOVED_TIME").max(created + TimeDelta::hours(2));
            let middle = created + (moved - created) / 2;
            let semantic = str_of(d, "STAGE_SEMANTIC_ID");
            let last_type = if semantic == "P" { 2 } else { 3 };
            let owner: i64 = deal_id(i).parse().unwrap();
            for (h, (type_id, time, stage, sem)) in [
                (1, created, format!("{prefix}NEW"), "P"),
                (2, middle, format!("{prefix}PREPARATION"), "P"),
                (last_type, moved, str_of(d, "STAGE_ID").to_string(), semantic),
            ]
            .into_iter()
            .enumerate()
            {
                deal_stage_history.push(json!({
                    "ID": 35 + 3 * i + h, "TYPE_ID": type_id, "OWNER_ID": owner, "CREATED_TIME": iso(time),
                    "CATEGORY_ID": category, "STAGE_SEMANTIC_ID": sem, "STAGE_ID": stage,
                }));
            }
        }
        let mut lead_stage_history = Vec::new();
        for l in &leads {
            let owner: i64 = str_of(l, "ID").parse().unwrap();
            let mut push = |type_id: i64, time: &str, status: &str, sem: &str| {
                let id = 35 + 3 * n + lead_stage_history.len();
                lead_stage_history.push(json!({
                    "ID": id, "TYPE_ID": type_id, "OWNER_ID": owner, "CREATED_TIME": time,
                    "STATUS_SEMANTIC_ID": sem, "STATUS_ID": status,
                }));
            };
            push(1, str_of(l, "DATE_CREATE"), "NEW", "P");
            let status = str_of(l, "STATUS_ID");
            if status != "NEW" {
                let sem = str_of(l, "STATUS_SEMANTIC_ID");
                push(if sem == "P" { 2 } else { 3 }, str_of(l, "MOVED_TIME"), status, sem);
            }
        }

        // Tasks 8017.., one per deal, bound to the deal and its contact.
        let tasks: Vec<Value> = (0..n)
            .map(|i| {
                let d = &out_deals[i];
                let t = &fx.tasks[i % fx.tasks.len()];
                let mut row = t.clone();
                shift_dates(&mut row, date_of(d, "DATE_CREATE") + TimeDelta::hours(1) - date_of(t, "createdDate"));
                let contact = str_of(d, "CONTACT_ID");
                row["id"] = json!((8017 + i).to_string());
                row["title"] = json!(format!("Call back client {contact}"));
                row["responsibleId"] = d["ASSIGNED_BY_ID"].clone();
                row["createdBy"] = d["ASSIGNED_BY_ID"].clone();
                row["ufCrmTask"] = match d["LEAD_ID"].as_str() {
                    // Some tasks are on the lead the deal came from.
                    Some(lead) if i % 5 == 2 => json!([format!("L_{lead}"), format!("C_{contact}")]),
                    _ => json!([format!("D_{}", deal_id(i)), format!("C_{contact}")]),
                };
                // A task in progress (3) or completed (5) was started an hour after it was set.
                if matches!(row["status"].as_str(), Some("3" | "5")) || matches!(row["status"].as_i64(), Some(3 | 5)) {
                    row["dateStart"] = json!(iso(date_of(d, "DATE_CREATE") + TimeDelta::hours(2)));
                }
                row
            })
            .collect();

        MockData {
            users,
            departments: fx.departments,
            categories: fx.categories,
            statuses: fx.statuses,
            currencies: fx.currencies,
            product_rows: product_rows_for(&out_deals),
            deals: out_deals,
            leads,
            contacts,
            companies,
            activities,
            deal_stage_history,
            lead_stage_history,
            calls,
            tasks,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle: the canonical tables' keys straight from the portal's records
// ---------------------------------------------------------------------------------------

impl MockData {
    /// What a sync of this portal must give, derived from the records here and not from
    /// the connector: per table, its rows' keys (`deal_items`: `deal|item`;
    /// `deal_stage_history`: `deal|rows`); deals'
    /// `amount_base` where the portal reports one (`deals.amount_base` as `id|amount`); and
    /// the leads qualified by their status history (`leads.qualified`).
    pub fn oracle(&self) -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        use std::collections::{BTreeMap, BTreeSet};
        let ids = |rows: &[Value], key: &str| -> BTreeSet<String> { rows.iter().map(|r| text(&r[key]).unwrap_or_default()).collect() };
        let deals = ids(&self.deals, "ID");
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        out.insert("deals", deals.clone());
        out.insert("leads", ids(&self.leads, "ID"));
        out.insert("contacts", ids(&self.contacts, "ID"));
        out.insert("companies", ids(&self.companies, "ID"));
        out.insert("activities", ids(&self.activities, "ID"));
        out.insert("tasks", ids(&self.tasks, "id"));
        out.insert("calls", self.calls.iter().map(|c| text(&c["CALL_ID"]).or_else(|| text(&c["ID"])).unwrap_or_default()).collect());
        out.insert(
            "deal_items",
            self.product_rows.iter().filter(|p| p["ownerType"] == "D" && deals.contains(&text(&p["ownerId"]).unwrap_or_default())).map(|p| format!("{}|{}", text(&p["ownerId"]).unwrap_or_default(), text(&p["id"]).unwrap_or_default())).collect(),
        );
        let mut moves: BTreeMap<String, usize> = BTreeMap::new();
        for h in self.deal_stage_history.iter().filter(|h| deals.contains(&text(&h["OWNER_ID"]).unwrap_or_default())) {
            *moves.entry(text(&h["OWNER_ID"]).unwrap_or_default()).or_default() += 1;
        }
        out.insert("deal_stage_history", moves.into_iter().map(|(deal, n)| format!("{deal}|{n}")).collect());
        out.insert("deals.amount_base", self.deals.iter().filter_map(|d| Some(format!("{}|{}", text(&d["ID"])?, text(&d["OPPORTUNITY_ACCOUNT"])?))).collect());
        // The funnel's last process status ("PROCESSED") or a success status qualifies.
        let leads = ids(&self.leads, "ID");
        out.insert(
            "leads.qualified",
            self.lead_stage_history.iter().filter(|h| h["STATUS_SEMANTIC_ID"] == "S" || h["STATUS_ID"] == "PROCESSED").filter_map(|h| text(&h["OWNER_ID"])).filter(|l| leads.contains(l)).collect(),
        );
        out
    }
}

// ---------------------------------------------------------------------------------------
// Tests of the mock itself
// ---------------------------------------------------------------------------------------

/// A test client of one mock.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(mock: &MockBitrix24) -> Api {
        Api { http: reqwest::Client::builder().no_proxy().build().unwrap(), base: mock.webhook_url.clone() }
    }

    async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{method}", self.base)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method}: {e}: {}", String::from_utf8_lossy(&bytes))))
    }

    async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(method, body).await;
        assert_eq!(status, 200, "{method}: {v}");
        v
    }
}

fn ids(rows: &Value, key: &str) -> Vec<u64> {
    rows.as_array().unwrap().iter().map(|r| as_f64(&r[key]).unwrap() as u64).collect()
}

#[tokio::test]
async fn deal_pages_count_and_keyset_walks_every_deal_once() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(120)).await;
    let api = Api::new(&mock);

    let first = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "select": ["*", "UF_*"], "start": 0})).await;
    assert_eq!(first["result"].as_array().unwrap().len(), 50);
    assert_eq!(first["total"], 120);
    assert_eq!(first["next"], 50);
    let time = &first["time"];
    for key in ["start", "finish", "duration", "processing", "date_start", "date_finish", "operating_reset_at", "operating"] {
        assert!(time.get(key).is_some(), "time.{key} in {time}");
    }
    assert!(time["date_start"].as_str().unwrap().ends_with("+03:00"));

    let last = api.ok("crm.deal.list.json", json!({"start": "100"})).await;
    assert_eq!(last["result"].as_array().unwrap().len(), 20);
    assert_eq!(last["total"], 120);
    assert!(last.get("next").is_none());

    let fast = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "start": -1})).await;
    assert_eq!(fast["result"].as_array().unwrap().len(), 50);
    assert_eq!(fast["total"], 0);
    assert!(fast.get("next").is_none());

    let mut seen = Vec::new();
    let mut last_id = 0;
    loop {
        let page = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": last_id}, "select": ["ID"], "start": -1})).await;
        let rows = page["result"].as_array().unwrap();
        assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 1), "select [ID] gives only the id");
        seen.extend(ids(&page["result"], "ID"));
        if rows.len() < 50 {
            break;
        }
        last_id = *seen.last().unwrap();
    }
    assert_eq!(seen, (1000..1120).collect::<Vec<u64>>());
    assert_eq!(mock.state.method_calls("crm.deal.list"), 6);
    assert_eq!(mock.state.served_ok(), 6);
}

#[tokio::test]
async fn fixture_pages_come_back_verbatim() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let index = |f: &str| fixture_json(f);

    let p1 = api
        .ok("crm.deal.list", json!({"select": ["*", "UF_*"], "order": {"ID": "ASC"}, "filter": {">=DATE_MODIFY": "2025-09-01T00:00:00+03:00"}, "start": 0}))
        .await;
    let f1 = index(DEAL_PAGE1);
    assert_eq!(p1["result"], f1["result"]);
    assert_eq!((&p1["total"], &p1["next"]), (&f1["total"], &f1["next"]));
    let p2 = api.ok("crm.deal.list", json!({"start": 50})).await;
    assert_eq!(p2["result"], index(DEAL_PAGE2_LAST)["result"]);
    assert!(p2.get("next").is_none());
    let fast = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": 1049}, "start": -1})).await;
    assert_eq!(fast["result"], index(DEAL_FAST_START_MINUS1)["result"]);
    assert_eq!(fast["total"], 0);
    let none = api.ok("crm.deal.list", json!({"filter": {">=DATE_MODIFY": "2026-01-01T00:00:00+03:00"}})).await;
    assert_eq!((none["result"].clone(), none["total"].clone()), (json!([]), json!(0)));

    let contacts = api.ok("crm.contact.list", json!({"select": ["*", "UF_*", "PHONE", "EMAIL"]})).await;
    assert_eq!(contacts["result"], index(fixture!("crm.contact.list.json"))["result"]);
    let bare = api.ok("crm.contact.list", json!({"select": ["*", "UF_*"]})).await;
    assert!(bare["result"][0].get("PHONE").is_none() && bare["result"][0].get("EMAIL").is_none());

    let history = api.ok("crm.stagehistory.list", json!({"entityTypeId": 2, "order": {"ID": "ASC"}, "filter": {">ID": 34}})).await;
    assert_eq!(history["result"], index(fixture!("crm.stagehistory.list_deals.json"))["result"]);
    let leads = api.ok("crm.stagehistory.list", json!({"entityTypeId": "1"})).await;
    assert_eq!(leads["result"]["items"].as_array().unwrap().len(), 7);
    let stages = api.ok("crm.status.list", json!({"filter": {"ENTITY_ID": "DEAL_STAGE_1"}})).await;
    assert_eq!(stages["result"], index(fixture!("crm.status.list_DEAL_STAGE_1.json"))["result"]);
    let categories = api.ok("crm.category.list", json!({"entityTypeId": 2})).await;
    assert_eq!(ids(&categories["result"]["categories"], "id"), [0, 1]);
    let tasks = api.ok("tasks.task.list", json!({"select": ["ID", "TITLE"], "filter": {">=CHANGED_DATE": "2025-09-01T00:00:00+03:00"}, "order": {"ID": "asc"}})).await;
    assert_eq!(tasks["result"], index(fixture!("tasks.task.list.json"))["result"]);
    let calls = api.ok("voximplant.statistic.get", json!({"FILTER": {">CALL_START_DATE": "2025-09-01T00:00:00+03:00"}, "SORT": "CALL_START_DATE", "ORDER": "ASC", "start": 0})).await;
    assert_eq!(calls["result"], index(fixture!("voximplant.statistic.get.json"))["result"]);
    let users = api.ok("user.get", json!({"FILTER": {"USER_TYPE": "employee"}, "ADMIN_MODE": true})).await;
    assert_eq!(users["result"], index(fixture!("user.get.json"))["result"]);
    let currencies = api.ok("crm.currency.list", json!({})).await;
    assert_eq!(currencies["result"][0]["CURRENCY"], "RUB");
    let scope = api.ok("scope", json!({})).await;
    assert_eq!(scope["result"], json!(["crm", "user", "department", "telephony", "task"]));
}

#[tokio::test]
async fn batch_chains_pages_through_result_references() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(600)).await;
    let api = Api::new(&mock);

    // Two commands, the second after the first's 50th ID.
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "c0": "crm.deal.list?order[ID]=ASC&filter[%3EID]=0&select[]=*&select[]=UF_*&start=-1",
                "c1": "crm.deal.list?order%5BID%5D=ASC&filter%5B%3EID%5D=$result[c0][49][ID]&start=-1",
            }}),
        )
        .await;
    let r = &v["result"];
    assert_eq!(ids(&r["result"]["c0"], "ID"), (1000..1050).collect::<Vec<_>>());
    assert_eq!(ids(&r["result"]["c1"], "ID"), (1050..1100).collect::<Vec<_>>());
    assert_eq!(r["result_error"], json!([]));
    assert_eq!(r["result_total"], json!({"c0": 0, "c1": 0}));
    assert_eq!(r["result_next"], json!([]));
    // Each nested call is billed to its method (B-LIMIT-10), the batch itself not at all.
    assert_eq!((r["result_time"]["c0"]["operating"].as_f64(), r["result_time"]["c1"]["operating"].as_f64()), (Some(0.05), Some(0.1)));
    assert_eq!(v["time"]["operating"].as_f64(), Some(0.0));

    // Twelve commands named c0..c11 run in the order sent, not c0, c1, c10, c11, c2, ...;
    // the reference is percent-encoded in half of them.
    let mut cmd = serde_json::Map::new();
    for i in 0..12 {
        let after = if i == 0 {
            "999".to_string()
        } else if i % 2 == 0 {
            format!("$result[c{}][49][ID]", i - 1)
        } else {
            url::form_urlencoded::byte_serialize(format!("$result[c{}][49][ID]", i - 1).as_bytes()).collect()
        };
        cmd.insert(format!("c{i}"), json!(format!("crm.deal.list?order[ID]=ASC&filter[>ID]={after}&start=-1")));
    }
    let body = format!("{{\"halt\":0,\"cmd\":{{{}}}}}", (0..12).map(|i| format!("\"c{i}\":{}", cmd[&format!("c{i}")])).collect::<Vec<_>>().join(","));
    let res = api.http.post(mock.url("batch")).header("content-type", "application/json").body(body).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    let mut all = Vec::new();
    for i in 0..12 {
        all.extend(ids(&v["result"]["result"][format!("c{i}")], "ID"));
    }
    assert_eq!(all, (1000..1600).collect::<Vec<_>>());
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 14);
    assert_eq!(mock.state.method_calls("batch"), 2);

    // References into a result object (tasks.task.list) and an exhausted chain: the
    // reference past the last page resolves to "" and the condition drops.
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "t0": "tasks.task.list?order[ID]=asc&filter[>ID]=0&start=-1",
                "t1": "tasks.task.list?order[ID]=asc&filter[>ID]=$result[t0][tasks][49][id]&start=-1",
                "t2": "tasks.task.list?order[ID]=asc&filter[>ID]=$result[nothing][49][id]&start=-1",
            }}),
        )
        .await;
    let r = &v["result"]["result"];
    assert_eq!(ids(&r["t0"]["tasks"], "id"), (8017..8067).collect::<Vec<_>>());
    assert_eq!(ids(&r["t1"]["tasks"], "id"), (8067..8117).collect::<Vec<_>>());
    assert_eq!(ids(&r["t2"]["tasks"], "id"), (8017..8067).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_shapes_and_errors_match_the_fixtures() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let fx = fixture_json(BATCH_DEAL_PAGES);
    let v = api.ok("batch", json!({"halt": 0, "cmd": {"p0": "crm.deal.list?start=0&order[ID]=ASC", "p1": "crm.deal.list?start=50&order[ID]=ASC"}})).await;
    for key in ["result", "result_error", "result_total", "result_next"] {
        assert_eq!(v["result"][key], fx["result"][key], "{key}");
    }
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "a": "crm.nothing.list",
                "b": "batch?cmd[x]=scope",
                "c": "scope",
                "d": ["not", "a", "string"],
            }}),
        )
        .await;
    let errors = &v["result"]["result_error"];
    assert_eq!(errors["a"]["error"], "ERROR_METHOD_NOT_FOUND");
    assert_eq!(errors["b"]["error"], "ERROR_BATCH_METHOD_NOT_ALLOWED");
    assert!(errors["d"]["error"].is_string());
    assert_eq!(v["result"]["result"]["c"], json!(["crm", "user", "department", "telephony", "task"]));

    let too_many: Map<String, Value> = (0..51).map(|i| (format!("c{i}"), json!("scope"))).collect();
    let (status, body) = api.call("batch", json!({"cmd": too_many})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("ERROR_BATCH_LENGTH_EXCEEDED")));

    // Without the crm scope: errors per command, HTTP 200, empty maps as `[]`.
    mock.state.config.lock().unwrap().scopes = vec!["user".into()];
    let halt0 = fixture_json(BATCH_ERROR_HALT0);
    let v = api.ok("batch", json!({"halt": 0, "cmd": {"p0": "crm.deal.list", "p1": "crm.lead.list"}})).await;
    for key in ["result", "result_total", "result_next", "result_time"] {
        assert_eq!(v["result"][key], halt0["result"][key], "{key}");
    }
    for p in ["p0", "p1"] {
        assert_eq!(v["result"]["result_error"][p]["error"], halt0["result"]["result_error"][p]["error"]);
    }
    let v = api.ok("batch", json!({"halt": 1, "cmd": {"p0": "crm.deal.list", "p1": "crm.lead.list"}})).await;
    assert_eq!(v["result"]["result_error"].as_object().unwrap().len(), 1);
    assert_eq!(mock.state.sub_calls("crm.lead.list"), 1);
}

#[tokio::test]
async fn a_burst_of_sixty_overflows_the_bucket() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut limited = 0;
    for _ in 0..60 {
        let (status, body) = api.call("scope", json!({})).await;
        if status == 503 {
            assert_eq!(body, fixture_json(ERROR_QUERY_LIMIT));
            limited += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(limited > 0);
    assert_eq!(mock.state.rejected_rate_limit(), limited);
    assert_eq!(mock.state.requests(), 60);
    assert!(mock.state.max_bucket_level() <= 50.0);
    assert!(mock.state.max_bucket_level() > 45.0);
}

#[tokio::test]
async fn authentication_method_and_scope_errors() {
    let config = MockConfig { scopes: vec!["crm".into()], ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    let wrong = Api { http: api.http.clone(), base: mock.webhook_url.replace("s3cr3tc0de", "wrong") };
    assert_eq!(wrong.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_NO_AUTH_FOUND)));
    assert_eq!(api.call("crm.nothing.list", json!({})).await, (404, fixture_json(ERROR_METHOD_NOT_FOUND)));
    assert_eq!(api.call("user.get", json!({})).await, (403, fixture_json(ERROR_INSUFFICIENT_SCOPE)));
    let (status, body) = api.call("crm.deal.list", json!({"filter": "ID > 5"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("")));
    // An empty body is `{}`.
    let r = api.http.post(mock.url("crm.deal.list.json")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(mock.state.request_log().last().unwrap(), &("crm.deal.list".to_string(), json!({})));
}

#[tokio::test]
async fn each_fault_has_its_shape() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([
        Fault::QueryLimit,
        Fault::OperatingLimit,
        Fault::ServerError,
        Fault::ExpiredToken,
        Fault::Unauthorized,
    ]);
    assert_eq!(api.call("crm.deal.list", json!({})).await, (503, fixture_json(ERROR_QUERY_LIMIT)));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (429, fixture_json(ERROR_OPERATION_TIME_LIMIT)));
    let (status, body) = api.call("crm.deal.list", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (500, Some("INTERNAL_SERVER_ERROR")));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_NO_AUTH_FOUND)));

    mock.state.push_faults([Fault::Html(503), Fault::Truncated]);
    let r = api.http.post(mock.url("crm.deal.list")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<center>nginx</center>"));
    let r = api.http.post(mock.url("crm.deal.list")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.unwrap();
    assert!(!bytes.is_empty() && serde_json::from_slice::<Value>(&bytes).is_err());

    mock.state.push_faults([Fault::Delay(Duration::from_millis(400)), Fault::Delay(Duration::from_millis(20))]);
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
    let err = impatient.post(mock.url("scope")).json(&json!({})).send().await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(api.call("scope", json!({})).await.0, 200);

    // Injected faults are not the bucket's or the budget's own rejections, but each counts
    // against the bucket.
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.rejected_operating()), (0, 0));
    assert_eq!(mock.state.requests(), 9);
    assert!(mock.state.max_bucket_level() > 7.0);
    // The 20 ms delay was served; the 400 ms one may still be asleep.
    assert!((1..=2).contains(&mock.state.served_ok()));
}

#[tokio::test]
async fn the_operating_budget_blocks_only_the_spent_method() {
    let config = MockConfig { operating_limit_seconds: 0.05, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::generated(120)).await;
    let api = Api::new(&mock);
    let v = api.ok("crm.deal.list", json!({"start": 0})).await;
    assert_eq!(v["time"]["operating"], 0.05);
    let now = unix_now();
    let reset = v["time"]["operating_reset_at"].as_i64().unwrap() as f64;
    assert!(reset >= now + 598.0 && reset <= now + 602.0, "{reset} vs {now}");
    assert_eq!(api.call("crm.deal.list", json!({"start": 50})).await, (429, fixture_json(ERROR_OPERATION_TIME_LIMIT)));
    assert_eq!(mock.state.rejected_operating(), 1);
    api.ok("crm.lead.list", json!({})).await;
    // B-LIMIT-10: a batch is not billed; its nested calls are, each to its own method, and
    // one to a spent method fails alone with OPERATION_TIME_LIMIT in result_error.
    let v = api.ok("batch", json!({"cmd": {"a": "crm.contact.list", "b": "crm.company.list", "c": "crm.deal.list?start=100"}})).await;
    assert_eq!((mock.state.operating_used("batch"), mock.state.operating_used("crm.contact.list"), mock.state.operating_used("crm.company.list")), (0.0, 0.05, 0.05));
    assert_eq!(v["result"]["result_error"]["c"]["error"], "OPERATION_TIME_LIMIT");
    assert!(v["result"]["result"]["a"].is_array() && v["result"]["result_time"]["a"]["operating_reset_at"].as_i64().is_some());
    assert_eq!(mock.state.rejected_operating(), 2);

    mock.state.config.lock().unwrap().omit_operating = true;
    let v = api.ok("crm.activity.list", json!({})).await;
    assert!(v["time"].get("operating").is_none() && v["time"].get("operating_reset_at").is_none());
}

/// B-PR-1 of docs/connectors/bitrix24-conformance.md: product rows need both `=ownerType`
/// and `=ownerId` (an array allowed), directly and inside `batch`.
#[tokio::test]
async fn conformance_product_rows_need_owner_type_and_owner_id() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    for filter in [json!({"=ownerType": "D"}), json!({"=ownerType": "D", "@ownerId": [1000]}), json!({"ownerType": "D", "ownerId": 1000}), json!({"=ownerId": [1000]}), json!({})] {
        let (status, v) = api.call("crm.item.productrow.list", json!({"filter": filter, "order": {"id": "ASC"}})).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("REQUIRED_ARG_MISSING")), "{filter}");
        assert_eq!(v["error_description"], "Required fields: =ownerType, =ownerId");
    }
    let (_, v) = api.call("batch", json!({"halt": 0, "cmd": {"a": "crm.item.productrow.list?filter[%3DownerType]=D&filter[%40ownerId][]=1000", "b": "crm.item.productrow.list?filter[%3DownerType]=D&filter[%3DownerId][]=1000&filter[%3DownerId][]=1001"}})).await;
    assert_eq!(v["result"]["result_error"]["a"]["error"], "REQUIRED_ARG_MISSING", "{v}");
    assert!(v["result"]["result"]["b"]["productRows"].is_array(), "{v}");
    assert_eq!(ids(&v["result"]["result"]["b"]["productRows"], "ownerId"), [1000, 1000, 1001]);
}

/// B-HIST-1, B-HIST-2, B-HIST-7 of docs/connectors/bitrix24-conformance.md: the stage history
/// needs a supported `entityTypeId` and ASC/DESC orders; lead rows carry status fields only.
#[tokio::test]
async fn conformance_stage_history_types_orders_and_lead_fields() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    for params in [json!({}), json!({"entityTypeId": 3}), json!({"entityTypeId": 7})] {
        let (status, v) = api.call("crm.stagehistory.list", params.clone()).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("ENTITY_TYPE_NOT_SUPPORTED")), "{params}");
    }
    let (status, v) = api.call("crm.stagehistory.list", json!({"entityTypeId": 1, "order": {"ID": "asc"}})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("INVALID_ARG_VALUE")));
    let v = api.ok("crm.stagehistory.list", json!({"entityTypeId": 1, "order": {"ID": "ASC"}})).await;
    let rows = v["result"]["items"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.get("STATUS_ID").is_some() && row.get("STATUS_SEMANTIC_ID").is_some(), "{row}");
        assert!(row.get("STAGE_ID").is_none() && row.get("CATEGORY_ID").is_none() && row.get("STAGE_SEMANTIC_ID").is_none(), "{row}");
    }
    assert!(api.ok("crm.stagehistory.list", json!({"entityTypeId": 2, "order": {"ID": "DESC"}})).await["result"]["items"][0].get("STAGE_ID").is_some());
}

/// B-LIST-6, B-ACT-2, B-TASK-1, B-CUR-1, B-CUR-2: methods' own default orders (so a keyset
/// read must name its order), the task sort keys, and currencies all at once with total 0.
#[tokio::test]
async fn conformance_default_orders_task_sort_keys_and_currencies() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    let tasks = api.ok("tasks.task.list", json!({})).await;
    let ids_of = |v: &Value, root: Option<&str>| -> Vec<u64> { let rows = match root { Some(r) => &v["result"][r], None => &v["result"] }; ids(rows, if root.is_some() { "id" } else { "ID" }) };
    let t = ids_of(&tasks, Some("tasks"));
    assert!(t.windows(2).all(|w| w[0] > w[1]), "tasks: ID descending by default: {t:?}");
    let t = ids_of(&api.ok("tasks.task.list", json!({"order": {"ID": "asc"}})).await, Some("tasks"));
    assert!(t.windows(2).all(|w| w[0] < w[1]));
    let (status, v) = api.call("tasks.task.list", json!({"order": {"NO_SUCH_FIELD": "asc"}})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("0")), "{v}");
    let acts = api.ok("crm.activity.list", json!({})).await;
    let starts: Vec<DateTime<FixedOffset>> = acts["result"].as_array().unwrap().iter().map(|a| date_of(a, "START_TIME")).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "activities: START_TIME ascending by default");
    let currencies = api.ok("crm.currency.list", json!({"filter": {"CURRENCY": "USD"}, "start": 50})).await;
    assert_eq!((currencies["result"].as_array().unwrap().len(), currencies["total"].as_u64(), currencies.get("next")), (3, Some(0), None));
}

#[tokio::test]
async fn filters_orders_and_selects() {
    let data = MockData::generated(120);
    let mock = MockBitrix24::start(MockConfig::default(), data.clone()).await;
    let api = Api::new(&mock);

    let since = "2025-09-20T00:00:00+03:00";
    let expected = data.tasks.iter().filter(|t| at(t["changedDate"].as_str().unwrap()) >= at(since)).count();
    let v = api.ok("tasks.task.list", json!({"filter": {">=CHANGED_DATE": since}, "order": {"ID": "asc"}})).await;
    assert_eq!(v["total"], expected);
    assert!(expected > 0 && expected < 120);

    let v = api.ok("voximplant.statistic.get", json!({"FILTER": {"CALL_TYPE": "2"}, "SORT": "CALL_START_DATE", "ORDER": "DESC"})).await;
    assert_eq!(v["total"], 240);
    let times: Vec<DateTime<FixedOffset>> = v["result"].as_array().unwrap().iter().map(|c| date_of(c, "CALL_START_DATE")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    let v = api.ok("crm.item.productrow.list", json!({"filter": {"=ownerType": "D", "=ownerId": [1000, "1001"]}})).await;
    assert_eq!(ids(&v["result"]["productRows"], "ownerId"), [1000, 1000, 1001]);
    let v = api.ok("crm.deal.list", json!({"filter": {"@ID": ["1003", 1005], "!=CURRENCY_ID": "USD"}, "order": {"ID": "DESC"}})).await;
    assert_eq!(ids(&v["result"], "ID"), [1005, 1003]);
    let v = api.ok("crm.deal.list", json!({"filter": {"CURRENCY_ID": "USD"}})).await;
    assert_eq!(v["total"], 8);
    let v = api.ok("crm.deal.list", json!({"filter": {">OPPORTUNITY": 300000, "<=OPPORTUNITY": "400000"}})).await;
    assert!(v["result"].as_array().unwrap().iter().all(|d| as_f64(&d["OPPORTUNITY"]).unwrap() > 300000.0));
    let v = api.ok("crm.deal.list", json!({"filter": {">ID": ""}, "start": -1})).await;
    assert_eq!(ids(&v["result"], "ID")[0], 1000);
    let v = api.ok("user.get", json!({"FILTER": {"ACTIVE": true}, "SORT": "ID", "ORDER": "ASC"})).await;
    assert_eq!(ids(&v["result"], "ID"), [1, 6, 15, 23]);
    let v = api.ok("user.get", json!({"FILTER": {"UF_DEPARTMENT": 7}})).await;
    assert_eq!(ids(&v["result"], "ID"), [6, 11, 15, 23]);
    let v = api.ok("crm.status.list", json!({"filter": {"ENTITY_ID": "SOURCE"}, "order": {"SORT": "ASC"}})).await;
    assert_eq!(v["total"], 8);
    let v = api.ok("crm.company.list", json!({"select": ["*", "PHONE"], "start": 50})).await;
    assert_eq!(v["total"], 60);
    assert!(v["result"][0]["PHONE"].is_array() && v["result"][0].get("EMAIL").is_none());
    let v = api.ok("tasks.task.list", json!({"select": ["ID"], "order": {"ID": "asc"}, "start": -1})).await;
    assert_eq!(v["result"]["tasks"][0], json!({"id": "8017"}));
}

/// The token endpoint's answer to a GET with these query parameters.
async fn token_get(mock: &MockBitrix24, query: &[(&str, &str)]) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http.get(&mock.token_url).query(query).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn refresh_query(refresh_token: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "refresh_token"),
        ("client_id", "local.5f3e2a.12345678"),
        ("client_secret", "oauthSecret"),
        ("refresh_token", refresh_token),
    ]
}

fn oauth_api(mock: &MockBitrix24) -> Api {
    Api { base: mock.client_endpoint.clone(), ..Api::new(mock) }
}

#[tokio::test]
async fn oauth_calls_carry_the_access_token() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(mock.client_endpoint, format!("http://{}/rest/", mock.addr));
    assert_eq!(mock.token_url, format!("http://{}/oauth/token/", mock.addr));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-1"));
    assert_eq!(mock.state.current_refresh_token(), "refresh-1");

    let v = api.ok("crm.deal.list.json", json!({"auth": "access-1", "start": 0})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 50);
    // The token in the query string works too.
    let r = api.http.get(format!("{}?auth=access-1", mock.oauth_url("scope"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let invalid = json!({"error": "invalid_token", "error_description": "The access token provided is invalid."});
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, invalid.clone()));
    assert_eq!(api.call("crm.deal.list", json!({"auth": "access-9"})).await, (401, invalid.clone()));
    // The webhook code is no access token, and the webhook ignores `auth`.
    assert_eq!(api.call("crm.deal.list", json!({"auth": "s3cr3tc0de"})).await, (401, invalid));
    Api::new(&mock).ok("crm.deal.list", json!({"auth": "nonsense"})).await;
    // Same scopes, same bucket, same faults as the webhook.
    mock.state.config.lock().unwrap().scopes = vec!["crm".into()];
    assert_eq!(api.call("user.get", json!({"auth": "access-1"})).await, (403, fixture_json(ERROR_INSUFFICIENT_SCOPE)));
    mock.state.push_faults([Fault::QueryLimit]);
    assert_eq!(api.call("crm.deal.list", json!({"auth": "access-1"})).await, (503, fixture_json(ERROR_QUERY_LIMIT)));
    assert_eq!(mock.state.requests(), 8);
    assert_eq!(mock.state.method_calls("crm.deal.list"), 6);
    assert!(mock.state.max_bucket_level() > 4.0);
    assert_eq!(mock.state.request_log()[0], ("crm.deal.list".to_string(), json!({"auth": "access-1", "start": 0})));
    assert_eq!(mock.state.token_requests(), 0);

    // No access token at start: nothing passes before a refresh.
    let config = MockConfig { oauth_access_token: None, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await.0, 401);
    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!((status, v["access_token"].as_str()), (200, Some("access-2")));
    api.ok("scope", json!({"auth": "access-2"})).await;
}

#[tokio::test]
async fn an_expired_access_token_gets_expired_token() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    api.ok("scope", json!({"auth": "access-1"})).await;
    mock.state.expire_access_token();
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-1"));

    // A zero TTL: every token is born expired, the start one and refreshed ones.
    let config = MockConfig { oauth_access_ttl: Duration::ZERO, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!((status, v["expires_in"].as_u64()), (200, Some(0)));
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
}

#[tokio::test]
async fn a_refresh_issues_new_tokens_and_burns_the_old_ones() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    mock.state.expire_access_token();
    mock.state.push_faults([Fault::ServerError]);
    let before = unix_now() as u64;

    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!(status, 200, "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let shape = fixture_json(OAUTH_TOKEN_REFRESH);
    let mut expected: Vec<&String> = shape.as_object().unwrap().keys().collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(v["access_token"], "access-2");
    assert_eq!(v["refresh_token"], "refresh-2");
    assert_eq!(v["expires_in"], 3600);
    assert!((before + 3600..=before + 3602).contains(&v["expires"].as_u64().unwrap()));
    assert_eq!(v["client_endpoint"], json!(mock.client_endpoint));
    assert_eq!(v["scope"], "crm,user,department,telephony,task");
    assert_eq!((v["status"].as_str(), v["user_id"].as_u64()), (Some("L"), Some(1)));
    assert_eq!((v["domain"].clone(), v["member_id"].clone()), (shape["domain"].clone(), shape["member_id"].clone()));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-2"));
    assert_eq!(mock.state.current_refresh_token(), "refresh-2");

    // The used refresh token is refused; the old access token is expired, the new one works
    // (once the fault the token endpoint left in the queue is spent).
    assert_eq!(token_get(&mock, &refresh_query("refresh-1")).await, (400, fixture_json(OAUTH_ERROR_INVALID_GRANT)));
    assert_eq!(token_get(&mock, &refresh_query("refresh-9")).await.0, 400);
    assert_eq!(mock.state.faults.lock().unwrap().len(), 1);
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await.0, 500);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    api.ok("scope", json!({"auth": "access-2"})).await;

    // POST with a form body, and the new access token retires access-2 even unexpired.
    let form = refresh_query("refresh-2");
    let r = api.http.post(&mock.token_url).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["access_token"].as_str(), v["refresh_token"].as_str()), (Some("access-3"), Some("refresh-3")));
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    api.ok("scope", json!({"auth": "access-3"})).await;

    assert_eq!(mock.state.oauth_refreshes(), 2);
    assert_eq!(mock.state.token_requests(), 4);
    // Token requests are not REST requests and do not fill the bucket.
    assert_eq!(mock.state.requests(), 5);
    assert!(mock.state.max_bucket_level() <= 5.0);
}

#[tokio::test]
async fn wrong_client_credentials_get_invalid_client() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let invalid = json!({"error": "invalid_client", "error_description": "Invalid client credentials"});
    let mut query = refresh_query("refresh-1");
    query[2].1 = "wrong";
    assert_eq!(token_get(&mock, &query).await, (400, invalid.clone()));
    let mut query = refresh_query("refresh-1");
    query[1].1 = "local.other";
    assert_eq!(token_get(&mock, &query).await, (400, invalid));
    let mut query = refresh_query("refresh-1");
    query[0].1 = "authorization_code";
    assert_eq!(token_get(&mock, &query).await, (400, fixture_json(OAUTH_ERROR_INVALID_GRANT)));
    // Nothing was refreshed: refresh-1 still works.
    assert_eq!((mock.state.oauth_refreshes(), mock.state.token_requests()), (0, 3));
    assert_eq!(token_get(&mock, &refresh_query("refresh-1")).await.0, 200);
}

#[tokio::test]
async fn batch_works_in_oauth_mode() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(120)).await;
    let api = oauth_api(&mock);
    let cmd = json!({
        "c0": "crm.deal.list?order[ID]=ASC&filter[>ID]=0&start=-1",
        "c1": "crm.deal.list?order[ID]=ASC&filter[>ID]=$result[c0][49][ID]&start=-1",
    });
    let v = api.ok("batch", json!({"auth": "access-1", "halt": 0, "cmd": cmd})).await;
    let r = &v["result"]["result"];
    assert_eq!(ids(&r["c0"], "ID")[0], 1000);
    assert_eq!(ids(&r["c1"], "ID")[0], 1050);
    assert_eq!(v["result"]["result_error"], json!([]));
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 2);
    // The token in the query string, and an expired one.
    let r = api.http.post(format!("{}?auth=access-1", mock.oauth_url("batch.json"))).json(&json!({"cmd": {"a": "scope"}})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    mock.state.expire_access_token();
    assert_eq!(api.call("batch", json!({"auth": "access-1", "cmd": cmd})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 2);
}

#[test]
fn php_queries_and_references_parse() {
    let q = parse_php_query("order[ID]=ASC&filter%5B%3E%3DDATE_MODIFY%5D=2025-09-01T00%3A00%3A00%2B03%3A00&select[]=*&select[]=UF_*&start=-1&FILTER[@ID][]=1&FILTER[@ID][]=2&x[0]=a&x[1]=b&entityTypeId=2");
    assert_eq!(
        q,
        json!({
            "order": {"ID": "ASC"}, "filter": {">=DATE_MODIFY": "2025-09-01T00:00:00+03:00"},
            "select": ["*", "UF_*"], "start": "-1", "FILTER": {"@ID": ["1", "2"]}, "x": ["a", "b"], "entityTypeId": "2",
        })
    );
    let results: Map<String, Value> =
        [("c0".to_string(), json!([{"ID": "7"}, {"ID": "9"}])), ("t".to_string(), json!({"tasks": [{"id": 5}]}))].into_iter().collect();
    let mut v = json!({"a": "$result[c0][1][ID]", "b": "$result[t][tasks][0][id]", "c": "x$result[c0][0][ID]y", "d": "$result[c0][49][ID]", "e": "$result['c0'][0][\"ID\"]"});
    substitute_references(&mut v, &results);
    assert_eq!(v, json!({"a": "9", "b": 5, "c": "x7y", "d": "", "e": "7"}));
    assert_eq!(natural_cmp("c2", "c10"), CmpOrdering::Less);
    assert_eq!(batch_order(br#"{"cmd": {"c1": "x", "c0": "y", "c10": "z"}}"#), Some(vec!["c1".into(), "c0".into(), "c10".into()]));
}

#[test]
fn generated_data_is_consistent_and_deterministic() {
    let d = MockData::generated(120);
    assert_eq!(d, MockData::generated(120));
    let counts = [
        ("deals", d.deals.len()),
        ("leads", d.leads.len()),
        ("contacts", d.contacts.len()),
        ("companies", d.companies.len()),
        ("activities", d.activities.len()),
        ("deal_stage_history", d.deal_stage_history.len()),
        ("lead_stage_history", d.lead_stage_history.len()),
        ("calls", d.calls.len()),
        ("tasks", d.tasks.len()),
        ("product_rows", d.product_rows.len()),
    ];
    assert_eq!(counts.map(|(_, c)| c)[..9], [120, 240, 120, 60, 360, 360, counts[6].1, 480, 120]);
    assert_eq!(d.product_rows.len(), 180);
    for (name, c) in counts {
        assert!(c > 50, "{name}: {c}");
    }

    let id_set = |rows: &[Value], key: &str| -> std::collections::HashSet<String> {
        let set: std::collections::HashSet<String> = rows.iter().map(|r| text(&r[key]).unwrap()).collect();
        assert_eq!(set.len(), rows.len(), "unique {key}");
        set
    };
    let users = id_set(&d.users, "ID");
    let deals = id_set(&d.deals, "ID");
    let leads = id_set(&d.leads, "ID");
    let contacts = id_set(&d.contacts, "ID");
    let companies = id_set(&d.companies, "ID");
    let activities = id_set(&d.activities, "ID");
    id_set(&d.calls, "ID");
    id_set(&d.tasks, "id");
    id_set(&d.product_rows, "id");
    let mut history = d.deal_stage_history.clone();
    history.extend(d.lead_stage_history.clone());
    id_set(&history, "ID");
    let stages: std::collections::HashSet<(String, String)> =
        d.statuses.iter().map(|s| (str_of(s, "ENTITY_ID").to_string(), str_of(s, "STATUS_ID").to_string())).collect();
    let has = |set: &std::collections::HashSet<String>, v: &Value| v.is_null() || set.contains(&text(v).unwrap());

    for deal in &d.deals {
        let category = str_of(deal, "CATEGORY_ID");
        let entity = if category == "0" { "DEAL_STAGE".to_string() } else { format!("DEAL_STAGE_{category}") };
        assert!(stages.contains(&(entity, str_of(deal, "STAGE_ID").to_string())), "{deal}");
        assert!(stages.contains(&("SOURCE".to_string(), str_of(deal, "SOURCE_ID").to_string())));
        assert!(str_of(deal, "COMPANY_ID") == "0" || has(&companies, &deal["COMPANY_ID"]));
        assert!(has(&contacts, &deal["CONTACT_ID"]) && has(&leads, &deal["LEAD_ID"]));
        for f in ["ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "MOVED_BY_ID", "LAST_ACTIVITY_BY"] {
            assert!(has(&users, &deal[f]), "{f} of {deal}");
        }
        assert!(str_of(deal, "DATE_CREATE").ends_with("+03:00"));
    }
    for c in &d.contacts {
        assert!(has(&companies, &c["COMPANY_ID"]) && has(&leads, &c["LEAD_ID"]) && has(&users, &c["ASSIGNED_BY_ID"]));
    }
    for l in &d.leads {
        assert!(has(&contacts, &l["CONTACT_ID"]) && has(&users, &l["ASSIGNED_BY_ID"]));
        assert!(stages.contains(&("STATUS".to_string(), str_of(l, "STATUS_ID").to_string())));
    }
    for a in &d.activities {
        let owners = if str_of(a, "OWNER_TYPE_ID") == "2" { &deals } else { &contacts };
        assert!(has(owners, &a["OWNER_ID"]) && has(&users, &a["RESPONSIBLE_ID"]));
    }
    for call in &d.calls {
        assert!(has(&activities, &call["CRM_ACTIVITY_ID"]));
        let act = d.activities.iter().find(|a| a["ID"] == call["CRM_ACTIVITY_ID"]).unwrap();
        assert_eq!((str_of(act, "TYPE_ID"), str_of(act, "OWNER_TYPE_ID")), ("2", "2"));
        let entities = match str_of(call, "CRM_ENTITY_TYPE") {
            "LEAD" => &leads,
            "COMPANY" => &companies,
            _ => &contacts,
        };
        assert!(has(entities, &call["CRM_ENTITY_ID"]) && has(&users, &call["PORTAL_USER_ID"]), "{call}");
    }
    for h in &d.deal_stage_history {
        assert!(deals.contains(&h["OWNER_ID"].to_string()));
    }
    for h in &d.lead_stage_history {
        assert!(leads.contains(&h["OWNER_ID"].to_string()));
    }
    for t in &d.tasks {
        let binding = t["ufCrmTask"][0].as_str().unwrap();
        let owners = if binding.starts_with("L_") { &leads } else { &deals };
        assert!(owners.contains(&binding[2..]) && has(&users, &t["responsibleId"]), "{t}");
    }
    for deal in &d.deals {
        let sum: f64 = d.product_rows.iter().filter(|r| r["ownerId"] == as_f64(&deal["ID"]).unwrap() as u64).map(|r| as_f64(&r["price"]).unwrap() * as_f64(&r["quantity"]).unwrap()).sum();
        assert!((sum - as_f64(&deal["OPPORTUNITY"]).unwrap()).abs() < 0.005, "{deal}");
    }
    let semantic = |s: &str| d.deals.iter().filter(|x| str_of(x, "STAGE_SEMANTIC_ID") == s).count();
    assert!(semantic("S") > 10 && semantic("F") > 10 && semantic("P") > 10);
    let currencies: std::collections::HashSet<&str> = d.deals.iter().map(|x| str_of(x, "CURRENCY_ID")).collect();
    assert_eq!(currencies.len(), 3);
}
