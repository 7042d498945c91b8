//! Calls to one amoCRM account: the bearer token (long-lived, or an OAuth access token
//! refreshed on a 401), the vendor's answers judged (a 429, or any answer naming a wait,
//! pauses every request to the account for that wait; only the 403 block page stops the
//! sync, at once), and
//! HAL lists read by page number, a few pages at a time, until a 204, a short page or a page
//! without a `next` link.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::AmoCrmError;
use super::oauth::{OAuthApp, Tokens};
use crate::connectors::http::{Answer, HttpError, PoliteClient, Verdict};
use crate::connectors::progress::{ProgressHandle, silent};

/// How requests are signed.
pub(super) enum Auth {
    /// A long-lived token; the text is where it is configured, for messages.
    LongLived { token: String, key: String },
    /// An OAuth integration: the access token of the token file, refreshed on a 401.
    OAuth { app: Box<OAuthApp>, tokens: tokio::sync::Mutex<Tokens> },
}

/// One account's API.
pub(super) struct Client {
    base: Url,
    auth: Auth,
    http: PoliteClient,
    /// Set by a block page: every later request fails at once.
    blocked: AtomicBool,
    /// Who hears of each list's rows as they arrive.
    progress: ProgressHandle,
}

/// What one answer meant.
enum Reply {
    Json(Value),
    /// 204: nothing (more) found.
    Empty,
    /// 401 with an OAuth access token: refresh and repeat.
    Expired,
}

/// One list to read.
#[derive(Debug, Clone)]
pub(super) struct ListSpec {
    /// `/api/v4/leads`.
    pub path: String,
    /// The key under `_embedded`.
    pub embedded: &'static str,
    /// Query pairs (`limit` included).
    pub query: Vec<(String, String)>,
    /// For a scan in `order[updated_at]=desc`: stop after the first page whose oldest row is
    /// older than this, and drop the older rows.
    pub stop_below: Option<i64>,
    /// A full page without a `next` link does not end the list (catalog elements come
    /// without one, A-PAGE-7): only a short page or a 204 does.
    pub full_page_continues: bool,
}

impl ListSpec {
    pub(super) fn new(path: impl Into<String>, embedded: &'static str, limit: u32) -> ListSpec {
        ListSpec { path: path.into(), embedded, query: vec![("limit".into(), limit.to_string())], stop_below: None, full_page_continues: false }
    }

    pub(super) fn with(mut self, key: &str, value: impl ToString) -> ListSpec {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// What the list holds, for progress (`leads`, `leads/notes`, `stage changes`).
    fn name(&self) -> String {
        let has = |key: &str, value: &str| self.query.iter().any(|(k, v)| k == key && v == value);
        let entity = self.path.trim_start_matches("/api/v4/");
        if has("with", "only_deleted") {
            format!("{entity} in the trash")
        } else if entity == "events" {
            if self.query.iter().any(|(k, v)| k.starts_with("filter[type]") && v == "lead_status_changed") { "stage changes".into() } else { "deletion events".into() }
        } else {
            entity.to_string()
        }
    }
}

/// An account-wide refusal that no retry can fix; the sync stops.
const BLOCKED: &str = "amoCRM blocked this account's API access (HTTP 403 with the gateway's block page), which it does after repeated 429 answers; salespulse stopped at once and will not retry into the block. Ask amoCRM support to lift it, and check that no other integration calls this account at the same time";

impl Client {
    pub(super) fn new(base: Url, auth: Auth, http: PoliteClient) -> Client {
        Client { base, auth, http, blocked: AtomicBool::new(false), progress: silent() }
    }

    pub(super) fn with_progress(mut self, progress: ProgressHandle) -> Client {
        self.progress = progress;
        self
    }

    pub(super) fn http(&self) -> &PoliteClient {
        &self.http
    }

    /// GETs `path` with `query` (a path and query taken from a `next` link are applied to the
    /// configured base, so the token only ever goes to that host). `None` for a 204.
    pub(super) async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Option<Value>, AmoCrmError> {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        self.get_url(url).await
    }

    async fn get_url(&self, url: Url) -> Result<Option<Value>, AmoCrmError> {
        let what = format!("amoCRM {}", url.path());
        let mut refreshed = false;
        loop {
            if self.blocked.load(Ordering::Relaxed) {
                return Err(AmoCrmError::Blocked(BLOCKED.into()));
            }
            let token = self.token().await?;
            let reply = self
                .http
                .send(&what, |c| c.get(url.clone()).bearer_auth(&token).header("Accept", "application/hal+json"), |answer| self.judge(answer))
                .await
                .map_err(|e| self.blocked_error(e))?;
            match reply {
                Reply::Json(v) => return Ok(Some(v)),
                Reply::Empty => return Ok(None),
                Reply::Expired if !refreshed => {
                    refreshed = true;
                    self.refresh(&token).await?;
                }
                Reply::Expired => {
                    return Err(AmoCrmError::Refused {
                        what,
                        message: "amoCRM refused a freshly refreshed access token (401); check that the integration is still installed in the account, then authorize it again".into(),
                    });
                }
            }
        }
    }

    fn blocked_error(&self, e: HttpError) -> AmoCrmError {
        match e {
            HttpError::Refused { message, .. } if message == BLOCKED => AmoCrmError::Blocked(message),
            other => other.into(),
        }
    }

    async fn token(&self) -> Result<String, AmoCrmError> {
        match &self.auth {
            Auth::LongLived { token, .. } => Ok(token.clone()),
            Auth::OAuth { app, tokens } => {
                let mut tokens = tokens.lock().await;
                if tokens.access_token.is_none() || tokens.expires_soon() {
                    *tokens = app.refresh(&self.http, &tokens).await?;
                }
                Ok(tokens.access_token.clone().unwrap_or_default())
            }
        }
    }

    /// Refreshes the OAuth tokens unless another request already did since `used` was read.
    async fn refresh(&self, used: &str) -> Result<(), AmoCrmError> {
        if let Auth::OAuth { app, tokens } = &self.auth {
            let mut tokens = tokens.lock().await;
            if tokens.access_token.as_deref() == Some(used) {
                *tokens = app.refresh(&self.http, &tokens).await?;
            }
        }
        Ok(())
    }

    fn judge(&self, answer: Answer) -> Verdict<Reply> {
        let status = answer.status.as_u16();
        if status == 429 {
            // Waited out by every request to the account (the polite client pauses them
            // all), then retried: a 429 alone never stops a sync; the block page does.
            let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
            let after = body
                .as_ref()
                .and_then(|b| b.get("retry_after"))
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .or_else(|| answer.retry_after());
            let shape = if answer.is_html() { "an HTML page" } else { "JSON" };
            return Verdict::Throttled { reason: format!("HTTP 429 (too many requests, {shape})"), after };
        }
        let problem: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let detail = problem.as_ref().and_then(|p| p.get("detail").or_else(|| p.get("title"))).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| answer.excerpt());
        match status {
            204 => Verdict::Done(Reply::Empty),
            200..=299 if answer.is_html() => Verdict::Retry { reason: format!("HTTP {status} with an HTML page instead of JSON"), after: None },
            200..=299 => match serde_json::from_slice(&answer.body) {
                Ok(v) => Verdict::Done(Reply::Json(v)),
                Err(e) if answer.body.iter().all(u8::is_ascii_whitespace) => Verdict::Retry { reason: format!("HTTP {status} with an empty body ({e})"), after: None },
                Err(e) => Verdict::Retry { reason: format!("HTTP {status} with a cut-off or invalid JSON body ({e})"), after: None },
            },
            403 if answer.is_html() || problem.is_none() => {
                self.blocked.store(true, Ordering::Relaxed);
                Verdict::Fail(BLOCKED.into())
            }
            401 => match &self.auth {
                Auth::OAuth { .. } => Verdict::Done(Reply::Expired),
                Auth::LongLived { key, .. } => Verdict::Fail(format!(
                    "amoCRM refused the token (401: {detail}); it is revoked, expired or belongs to another account. Create a new long-lived token (amoCRM → Settings → Integrations → your private integration → Keys and access) and put it in {key}"
                )),
            },
            402 => Verdict::Fail("the amoCRM account's subscription has ended (402 Payment Required); the API answers again once it is paid".into()),
            403 => Verdict::Fail(format!(
                "amoCRM refused access (403: {detail}); the token's user must be an account administrator (the users list is for admins only), and the API must be allowed from this server's address"
            )),
            404 => Verdict::Fail(format!("amoCRM has no such page (404: {detail}); check that the account address is right")),
            // A server that names a wait is asking the whole client to wait.
            500..=599 => match answer.retry_after() {
                Some(after) => Verdict::Throttled { reason: format!("HTTP {status}: {detail}"), after: Some(after) },
                None => Verdict::Retry { reason: format!("HTTP {status}: {detail}"), after: None },
            },
            _ => Verdict::Fail(format!("amoCRM answered HTTP {status}: {detail}")),
        }
    }

    /// Reads a list to its end. The first page comes alone; when it is full and links a
    /// next one, the following pages are asked 2, 4, then up to `READ_AHEAD` at a time
    /// (amoCRM pages by number), so one long list is not paced by the answer time of each
    /// page in turn. The
    /// list ends at the first page that is empty (204), short, or has no `next` link; pages
    /// asked beyond it are dropped. A scan that stops at a cursor reads one page at a time.
    pub(super) async fn list(&self, spec: &ListSpec) -> Result<Vec<Value>, AmoCrmError> {
        let name = spec.name();
        self.progress.list_started(&name, None);
        let rows = self.read_list(spec, &name).await?;
        self.progress.list_finished(&name);
        Ok(rows)
    }

    async fn read_list(&self, spec: &ListSpec, name: &str) -> Result<Vec<Value>, AmoCrmError> {
        let limit: usize = spec.query.iter().find(|(k, _)| k == "limit").and_then(|(_, v)| v.parse().ok()).unwrap_or(50);
        // Pages asked at once: 1 for page 1, then doubling while every page comes back full
        // (a long list keeps enough requests in flight to use the whole rate while each
        // answer takes its time; the price is up to READ_AHEAD - 1 pages asked past the end).
        let mut ahead = 1;
        let mut rows = Vec::new();
        let mut page = 1;
        loop {
            let window = if spec.stop_below.is_some() { 1 } else { ahead };
            let asked = futures::future::try_join_all((page..page + window).map(|p| self.page(spec, p))).await?;
            let asked_pages = asked.len();
            for (i, answer) in asked.into_iter().enumerate() {
                // Pages asked past the end were requests too, with no rows.
                let past_the_end = |progress: &dyn crate::connectors::progress::Progress| (i + 1..asked_pages).for_each(|_| progress.page_read(name, 0));
                let Some((items, has_next)) = answer else {
                    self.progress.page_read(name, 0);
                    past_the_end(self.progress.as_ref());
                    return Ok(rows);
                };
                let before = rows.len();
                let full = items.len() >= limit;
                // A list read on past pages without `next` ends at a page with nothing new
                // (a server that ignores `page` would otherwise be read to MAX_PAGES).
                if spec.full_page_continues && page > 1 && !items.is_empty() {
                    let seen: std::collections::HashSet<String> = rows.iter().filter_map(|r: &Value| r.get("id")).map(Value::to_string).collect();
                    if items.iter().all(|i| i.get("id").is_some_and(|id| seen.contains(&id.to_string()))) {
                        past_the_end(self.progress.as_ref());
                        return Ok(rows);
                    }
                }
                let oldest = items.iter().filter_map(|r| r.get("updated_at").and_then(Value::as_i64)).min();
                match spec.stop_below {
                    Some(floor) => rows.extend(items.into_iter().filter(|r| r.get("updated_at").and_then(Value::as_i64).is_none_or(|t| t >= floor))),
                    None => rows.extend(items),
                }
                self.progress.page_read(name, (rows.len() - before) as u64);
                if !(has_next || spec.full_page_continues) || !full || spec.stop_below.is_some_and(|floor| oldest.is_none_or(|o| o < floor)) {
                    past_the_end(self.progress.as_ref());
                    return Ok(rows);
                }
            }
            page += window;
            ahead = (ahead * 2).min(READ_AHEAD);
            if page > MAX_PAGES {
                return Err(AmoCrmError::Shape { path: spec.path.clone(), message: format!("more than {MAX_PAGES} pages; the list does not end") });
            }
        }
    }

    /// One page of a list: its rows and whether it links a next one; `None` for a 204.
    async fn page(&self, spec: &ListSpec, page: usize) -> Result<Option<(Vec<Value>, bool)>, AmoCrmError> {
        let mut query = spec.query.clone();
        query.push(("page".into(), page.to_string()));
        let Some(mut answer) = self.get(&spec.path, &query).await? else { return Ok(None) };
        let has_next = answer.get("_links").and_then(|l| l.get("next")).and_then(|n| n.get("href")).is_some_and(Value::is_string);
        let items = match answer.get_mut("_embedded").and_then(|e| e.get_mut(spec.embedded)).map(Value::take) {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Err(AmoCrmError::Shape { path: spec.path.clone(), message: format!("_embedded.{} is not a list but {}", spec.embedded, kind(&other)) });
            }
        };
        Ok(Some((items, has_next)))
    }
}

/// The most pages of one list asked at once.
const READ_AHEAD: usize = 8;
/// A list longer than this (2.5 M rows at 250) is taken for a server that never ends it.
const MAX_PAGES: usize = 10_000;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
