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
//!
//! Layout:
//! - `mod.rs`: the constants and fixture files, [`MockConfig`], [`Fault`], [`MockData`], the
//!   fields of [`MockState`], and [`MockAmoCrm`], the running server.
//! - `state.rs`: [`MockState`]'s constructor, the counters tests read, its clock, the rate
//!   window and the 429s toward the block, and who is authorized.
//! - `answer.rs`: one HTTP answer (HAL+JSON, problem+json, the empty 204, nginx pages).
//! - `server.rs`: the checks every request goes through, in order, then the endpoint.
//! - `oauth.rs`: `POST /oauth2/access_token`.
//! - `query.rs`: query strings as PHP reads them; `filters.rs`: `filter[…]` and `order[…]`.
//! - `routes/`: the `/api/v4` endpoints: paging, leads/contacts/companies, tasks/notes/events,
//!   catalogs, the account and its dictionaries.
//! - `mutations.rs`: the edits tests make between syncs, with the events they log.
//! - `ids.rs`: the wall clock in seconds, splitmix, event ids.
//! - `data.rs`, `products.rs`: the fixture account, and generated accounts.
//! - `oracle.rs`: the canonical tables' keys straight from the records.
//! - `conformance/`: tests of the mock itself.
// Shared with the connector tests: not every helper is used by the tests in this module.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
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

mod answer;
mod data;
mod filters;
mod ids;
mod mutations;
mod oauth;
mod oracle;
mod products;
mod query;
mod routes;
mod server;
mod state;

use server::handle;

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

/// The lead sources a generated account knows: (id, name as `with=source` gives it).
pub const SOURCES: [(i64, &str); 4] = [(1001, "Сайт acme.ru"), (1002, "WhatsApp"), (1003, "Обратный звонок"), (1004, "API")];
/// The products catalog of a generated account, and its element count (over one page).
pub const PRODUCTS_CATALOG: i64 = 7001;
pub const PRODUCT_COUNT: usize = 260;

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
        let tx = crate::common::serve_until_dropped(listener, app);
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

// ---------------------------------------------------------------------------------------
// Tests of the mock itself
// ---------------------------------------------------------------------------------------

mod conformance;
