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
//!
//! Layout:
//! - `mod.rs`: the fixture texts, and the types: configuration, faults, records, state, server
//! - `server.rs`: [`MockBitrix24`] on port 0 and the request handler (faults, bucket, dispatch)
//! - `reply.rs`: error bodies and nginx-style HTML pages
//! - `request.rs`: request parameters: JSON bodies and PHP-style query strings
//! - `state.rs`: [`MockState`]: its counters, the leaky bucket, the operating budgets
//! - `oauth.rs`: access tokens on `/rest/{method}` and the token server
//! - `methods.rs`: the methods served, their scopes and rules, the envelope
//! - `listing.rs`: list methods: filter, order, a page of 50, select, the `start=-1` fast path
//! - `filter.rs`: the prefixed filter conditions
//! - `values.rs`: how the portal reads values (number, instant, Y/N, text), sort keys
//! - `batch.rs`: `batch`: commands in the order sent, `$result[…]` references
//! - `timing.rs`: the envelope's `time` and Moscow-time dates
//! - `data.rs`: [`MockData::fixtures`] and the synthetic records no fixture file has
//! - `generated.rs`: [`MockData::generated`], portals of any size
//! - `oracle.rs`: [`MockData::oracle`], the keys a sync of the portal must give
//! - `conformance/`: tests of the mock itself
// Shared with the connector tests: not every helper is used by the tests in this module.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
// The bucket and the operating windows run on tokio's clock (real time: the mock serves real
// sockets, so no test pauses it; tests that need time to pass use short configured windows).
use tokio::time::Instant;

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bitrix24/", $file))
    };
}

// The submodules come after `fixture!`: a macro is seen only by the code below it.
mod batch;
mod data;
mod filter;
mod generated;
mod listing;
mod methods;
mod oauth;
mod oracle;
mod reply;
mod request;
mod server;
mod state;
mod timing;
mod values;

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

// Tests of the mock itself.
mod conformance;
