//! Calls to a Bitrix24 portal's REST v2 through an incoming webhook: the envelope, the
//! vendor's error codes sorted into passing and final, and the two ways of reading a list:
//! plain `start` paging for small lists, and for large ones keyset chains in `batch`
//! (`filter[>ID]` from the previous command's 50th row, `start=-1` so the portal skips its
//! COUNT), up to 50 commands = 2,500 rows per request
//! (docs/connectors/bitrix24-conformance.md B-BATCH-9, B-LIMIT-3).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value, json};
use url::Url;

use super::Bitrix24Error;
use super::oauth::{OAuthApp, Tokens};
use crate::connectors::http::{Answer, PoliteClient, Verdict};
use crate::connectors::progress::{ProgressHandle, silent};

/// Rows per list page: fixed by the portal.
pub(super) const PAGE: usize = 50;
/// Commands per `batch`: the portal's maximum.
const BATCH: usize = 50;

/// One answer of a method.
#[derive(Debug)]
pub(super) struct Envelope {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
}

/// How a list method is read with a keyset.
#[derive(Debug, Clone)]
pub(super) struct ListSpec {
    pub method: &'static str,
    /// Where the rows are inside `result`: `None` for an array, `Some("items")` for
    /// `result.items[]`.
    pub root: Option<&'static str>,
    /// The id field of a row (`ID`, or `id` for camelCase methods).
    pub id_field: &'static str,
    /// The filter key the keyset goes into (`>ID`, `>id`).
    pub keyset_key: &'static str,
    /// `filter` or `FILTER`.
    pub filter_param: &'static str,
    /// Extra filter conditions (e.g. `>=DATE_MODIFY` for an incremental pull).
    pub filter: Map<String, Value>,
    /// Other parameters (`select`, `entityTypeId`, the ordering).
    pub params: Map<String, Value>,
    /// Start after this id (an append-only entity's cursor) instead of at the beginning.
    pub start_after: Option<String>,
}

impl ListSpec {
    /// A list ordered by `ID` ascending through `order: {ID: ASC}` and `filter`.
    pub(super) fn crm(method: &'static str) -> ListSpec {
        let mut params = Map::new();
        params.insert("order".into(), json!({"ID": "ASC"}));
        ListSpec { method, root: None, id_field: "ID", keyset_key: ">ID", filter_param: "filter", filter: Map::new(), params, start_after: None }
    }

    pub(super) fn with(mut self, key: &str, value: Value) -> ListSpec {
        self.params.insert(key.into(), value);
        self
    }

    pub(super) fn filter(mut self, key: &str, value: Value) -> ListSpec {
        self.filter.insert(key.into(), value);
        self
    }

    fn rows<'a>(&self, result: &'a Value) -> Option<&'a Vec<Value>> {
        match self.root {
            None => result.as_array(),
            // An empty object comes back as `[]` from PHP.
            Some(key) => result.get(key).and_then(Value::as_array).or_else(|| result.as_array().filter(|a| a.is_empty())),
        }
    }
}

/// Where calls go and how they are authorised.
#[derive(Debug)]
pub(super) enum Endpoint {
    /// `https://PORTAL/rest/USER/CODE/`: the secret is in the path.
    Webhook(Url),
    /// `https://PORTAL/rest/` with `auth` = the app's access token.
    OAuth { base: Url, app: Box<OAuthApp>, tokens: tokio::sync::Mutex<Option<Tokens>> },
}

/// What a call came back with.
enum Reply {
    Ok(Value),
    /// The OAuth access token expired: refresh and repeat.
    Expired,
}

/// A portal client.
#[derive(Debug)]
pub(super) struct Client {
    endpoint: Endpoint,
    http: PoliteClient,
    /// Where the secret lives, for messages (`tenants.source.webhook_url_env = "X"`).
    credential_key: String,
    /// `operating_reset_at` per method, from the last envelopes: when a method blocked for
    /// its time budget may run again.
    reset_at: Mutex<HashMap<String, f64>>,
    /// Who hears of each list's rows as they arrive.
    progress: ProgressHandle,
}

impl Client {
    pub(super) fn new(endpoint: Endpoint, http: PoliteClient, credential_key: String) -> Client {
        Client { endpoint, http, credential_key, reset_at: Mutex::new(HashMap::new()), progress: silent() }
    }

    pub(super) fn with_progress(mut self, progress: ProgressHandle) -> Client {
        self.progress = progress;
        self
    }

    pub(super) fn http(&self) -> &PoliteClient {
        &self.http
    }

    /// Calls one method with a JSON body (for an OAuth app: with its access token,
    /// refreshed once when the portal says it expired).
    pub(super) async fn call(&self, method: &str, body: &Value) -> Result<Envelope, Bitrix24Error> {
        let what = format!("Bitrix24 {method}");
        let bad_url = |e: url::ParseError| Bitrix24Error::Config { key: self.credential_key.clone(), message: e.to_string() };
        let mut refreshed = false;
        loop {
            let (url, body, used) = match &self.endpoint {
                Endpoint::Webhook(base) => (base.join(&format!("{method}.json")).map_err(bad_url)?, body.clone(), None),
                Endpoint::OAuth { base, app, tokens } => {
                    let mut held = tokens.lock().await;
                    let current = match held.take() {
                        Some(t) => t,
                        None => app.load()?,
                    };
                    let current = match &current.access_token {
                        Some(_) => current,
                        None => {
                            refreshed = true;
                            app.refresh(&self.http, &current).await?
                        }
                    };
                    let access = current.access_token.clone().unwrap_or_default();
                    *held = Some(current);
                    let mut body = body.clone();
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert("auth".into(), Value::String(access.clone()));
                    }
                    (base.join(&format!("{method}.json")).map_err(bad_url)?, body, Some(access))
                }
            };
            let reply = self
                .http
                .send(&what, |c| c.post(url.clone()).json(&body).header("Accept", "application/json"), |answer| self.judge(method, answer))
                .await?;
            match reply {
                Reply::Ok(value) => {
                    self.note_time(method, &value);
                    return Ok(Envelope {
                        total: value.get("total").and_then(as_u64),
                        next: value.get("next").and_then(as_u64),
                        result: value.get("result").cloned().unwrap_or(Value::Null),
                    });
                }
                Reply::Expired => {
                    let Endpoint::OAuth { app, tokens, .. } = &self.endpoint else {
                        return Err(Bitrix24Error::Refused { what, message: format!("the portal refused the webhook as expired; put a current webhook URL in {}", self.credential_key) });
                    };
                    if refreshed {
                        return Err(Bitrix24Error::Refused {
                            what,
                            message: format!("the portal refused a freshly refreshed access token; check that the app is installed on this portal ({})", app.key),
                        });
                    }
                    let mut held = tokens.lock().await;
                    let current = match held.take() {
                        Some(t) => t,
                        None => app.load()?,
                    };
                    // Refresh unless another call already did since this one was sent.
                    let next = if current.access_token == used { app.refresh(&self.http, &current).await? } else { current };
                    *held = Some(next);
                    refreshed = true;
                }
            }
        }
    }

    /// Sorts an answer into done, passing and final: the error codes and limits of
    /// docs/connectors/bitrix24-conformance.md § B-GEN and § B-LIMIT.
    fn judge(&self, method: &str, answer: Answer) -> Verdict<Reply> {
        let status = answer.status;
        if status.is_redirection() {
            // The Location of a moved portal holds the webhook secret: only its host is told.
            let to = salespulse_config::redact::redact_secrets(answer.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("?"));
            return Verdict::Fail(format!(
                "the portal answers with a redirect to {to} (the portal's address changed?); update the webhook URL in {}",
                self.credential_key
            ));
        }
        if answer.is_html() {
            return Verdict::Retry { reason: format!("HTTP {status} with an HTML page instead of JSON"), after: answer.retry_after() };
        }
        let parsed: Value = match serde_json::from_slice(&answer.body) {
            Ok(v) => v,
            Err(e) if status.is_success() => return Verdict::Retry { reason: format!("HTTP {status} with a cut-off or invalid JSON body ({e})"), after: None },
            Err(_) if status.is_server_error() || status.as_u16() == 429 => {
                return Verdict::Retry { reason: format!("HTTP {status}: {}", answer.excerpt()), after: answer.retry_after() };
            }
            Err(_) => return Verdict::Fail(format!("HTTP {status} with a body that is not JSON: {}", answer.excerpt())),
        };
        match parsed.get("error").filter(|e| !e.is_null()) {
            None if status.is_success() && parsed.get("result").is_some() => Verdict::Done(Reply::Ok(parsed)),
            None if status.is_server_error() => Verdict::Retry { reason: format!("HTTP {status}"), after: answer.retry_after() },
            None => Verdict::Fail(format!("HTTP {status} without a result: {}", answer.excerpt())),
            Some(code) => {
                let code = match code {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let description = parsed.get("error_description").and_then(Value::as_str).unwrap_or("").to_string();
                match self.classify(method, &code, &description, status.as_u16()) {
                    ErrorKind::Passing => Verdict::Retry { reason: format!("{code}: {description}"), after: answer.retry_after() },
                    ErrorKind::OperatingLimit => Verdict::Retry { reason: format!("{code}: {description}"), after: self.until_reset(method) },
                    ErrorKind::Final(message) => Verdict::Fail(message),
                    ErrorKind::Expired => Verdict::Done(Reply::Expired),
                }
            }
        }
    }

    fn classify(&self, method: &str, code: &str, description: &str, status: u16) -> ErrorKind {
        let key = &self.credential_key;
        match code {
            "QUERY_LIMIT_EXCEEDED" | "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => ErrorKind::Passing,
            "OPERATION_TIME_LIMIT" => ErrorKind::OperatingLimit,
            "expired_token" | "invalid_token" if matches!(self.endpoint, Endpoint::OAuth { .. }) => ErrorKind::Expired,
            "NO_AUTH_FOUND" | "INVALID_CREDENTIALS" | "expired_token" | "invalid_token" | "WRONG_AUTH_TYPE" => ErrorKind::Final(format!(
                "the portal refused the credentials ({code}: {description}); check {key}{}",
                if matches!(self.endpoint, Endpoint::Webhook(_)) { " (the current webhook URL, https://PORTAL/rest/USER/CODE/)" } else { "" }
            )),
            "insufficient_scope" | "ACCESS_DENIED" | "user_access_error" => ErrorKind::Final(format!(
                "the webhook may not call {method} ({code}); give it the scope '{}' in Bitrix24 (Applications → Developer resources → the webhook) or use one that has it; `salespulse check` lists what is missing",
                scope_of(method)
            )),
            "ERROR_METHOD_NOT_FOUND" => ErrorKind::Final(format!(
                "the portal has no method {method} for this webhook; it usually means the webhook lacks the scope '{}'",
                scope_of(method)
            )),
            "OVERLOAD_LIMIT" => ErrorKind::Final("the portal blocked REST access (OVERLOAD_LIMIT, a manual block); contact Bitrix24 support".into()),
            "PORTAL_DELETED" => ErrorKind::Final(format!("the portal is deleted (PORTAL_DELETED); check the webhook URL in {key}")),
            _ if status >= 500 => ErrorKind::Passing,
            _ => ErrorKind::Final(format!("{method} was refused: {} {description}", if code.is_empty() { "(no code)" } else { code })),
        }
    }

    /// Remembers `operating_reset_at` of the method's envelope.
    fn note_time(&self, method: &str, envelope: &Value) {
        let Some(reset) = envelope.pointer("/time/operating_reset_at") else { return };
        let at = match reset {
            Value::Number(n) => n.as_f64(),
            // One doc example has it as an ISO string.
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp() as f64).or_else(|| s.parse().ok()),
            _ => None,
        };
        if let (Some(at), Ok(mut map)) = (at, self.reset_at.lock()) {
            map.insert(method.to_string(), at);
        }
    }

    /// Remembers the `operating_reset_at` of each command of a `batch` answer under the
    /// command's method: nested calls are billed to their own methods (B-LIMIT-10).
    fn note_command_times<'a>(&self, batch_result: &Value, commands: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (name, method) in commands {
            if let Some(time) = batch_result.pointer(&format!("/result_time/{name}")) {
                self.note_time(method, &json!({ "time": time }));
            }
        }
    }

    /// How long until the method's time budget frees up, from its last `operating_reset_at`;
    /// `None` (the backoff decides) when no envelope of the method named one.
    fn until_reset(&self, method: &str) -> Option<Duration> {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let at = self.reset_at.lock().ok().and_then(|m| m.get(method).copied())?;
        Some(if at > now { Duration::from_secs_f64((at - now).min(900.0) + 1.0) } else { Duration::from_secs(1) })
    }

    /// Every row of a small list through plain `start` paging (departments, statuses,
    /// pipelines, currencies).
    pub(super) async fn list_paged(&self, method: &'static str, root: Option<&'static str>, params: Value) -> Result<Vec<Value>, Bitrix24Error> {
        let spec = ListSpec { method, root, id_field: "ID", keyset_key: "", filter_param: "", filter: Map::new(), params: Map::new(), start_after: None };
        let list = list_name(&spec);
        let mut rows = Vec::new();
        let mut start = 0u64;
        loop {
            let mut body = params.clone();
            if let Some(obj) = body.as_object_mut() {
                obj.insert("start".into(), json!(start));
            }
            let page = self.call(method, &body).await?;
            if start == 0 {
                self.progress.list_started(&list, page.total);
            }
            let got = spec.rows(&page.result).ok_or_else(|| shape(method, "the result is not a list"))?;
            rows.extend(got.iter().cloned());
            self.progress.page_read(&list, got.len() as u64);
            match page.next {
                Some(next) if next > start && !got.is_empty() => start = next,
                _ => {
                    self.progress.list_finished(&list);
                    return Ok(rows);
                }
            }
        }
    }

    /// Every row of a large list, by keyset chains in `batch`. `on_page` sees each request's
    /// rows (for progress).
    pub(super) async fn list_all(&self, spec: &ListSpec) -> Result<Vec<Value>, Bitrix24Error> {
        let first = self.call(spec.method, &self.direct_body(spec, spec.start_after.as_deref())).await?;
        let rows = spec.rows(&first.result).ok_or_else(|| shape(spec.method, "the result is not a list"))?.clone();
        self.list_rest(spec, rows, first.total).await
    }

    /// The first page of each list (with the portal's count, or after its cursor) in one
    /// `batch`, so a sync does not spend a request per list on 50 rows. A list whose
    /// command failed with a passing error gets its first page by a direct call.
    pub(super) async fn first_pages(&self, specs: &[&ListSpec]) -> Result<Vec<(Vec<Value>, Option<u64>)>, Bitrix24Error> {
        let mut out = Vec::with_capacity(specs.len());
        for group in specs.chunks(BATCH) {
            let names: Vec<String> = (0..group.len()).map(|i| format!("c{i:02}")).collect();
            let mut cmd = Map::new();
            for (name, spec) in names.iter().zip(group) {
                let query = match &spec.start_after {
                    Some(after) => command_query(spec, &percent(after)),
                    None => command_query_counted(spec),
                };
                cmd.insert(name.clone(), Value::String(format!("{}?{query}", spec.method)));
            }
            let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
            self.note_command_times(&answer.result, names.iter().map(String::as_str).zip(group.iter().map(|s| s.method)));
            for (name, spec) in names.iter().zip(group) {
                if let Some(e) = answer.result.get("result_error").and_then(|e| e.get(name)) {
                    let (code, description) = error_of(e);
                    if let ErrorKind::Final(message) = self.classify(spec.method, &code, &description, 200) {
                        return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message });
                    }
                }
                let page = answer.result.pointer(&format!("/result/{name}")).and_then(|r| spec.rows(r)).cloned();
                let total = answer.result.pointer(&format!("/result_total/{name}")).and_then(as_u64);
                match page {
                    Some(rows) => out.push((rows, total)),
                    None => {
                        let first = self.call(spec.method, &self.direct_body(spec, spec.start_after.as_deref())).await?;
                        let rows = spec.rows(&first.result).ok_or_else(|| shape(spec.method, "the result is not a list"))?.clone();
                        out.push((rows, first.total));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every row of many small lists of one method (product rows by `=ownerId` arrays of
    /// deal ids): each round packs the next keyset page of up to 50 unfinished lists into
    /// one `batch`, so the request count is ⌈pages / 50⌉ (a list whose page is full gets
    /// another page in the next round). Rows come back in list order, then id order.
    pub(super) async fn list_many(&self, specs: &[ListSpec]) -> Result<Vec<Value>, Bitrix24Error> {
        let Some(first) = specs.first() else { return Ok(Vec::new()) };
        let list = list_name(first);
        self.progress.list_started(&list, None);
        let mut rows: Vec<Vec<Value>> = vec![Vec::new(); specs.len()];
        // (list, last id read): the lists still to read.
        let mut pending: std::collections::VecDeque<(usize, String)> = (0..specs.len()).map(|i| (i, "0".to_string())).collect();
        let mut stalled = 0u32;
        while !pending.is_empty() {
            let round: Vec<(usize, String)> = pending.drain(..pending.len().min(BATCH)).collect();
            let names: Vec<String> = (0..round.len()).map(|i| format!("c{i:02}")).collect();
            let mut cmd = Map::new();
            for (name, (i, after)) in names.iter().zip(&round) {
                let spec = &specs[*i];
                cmd.insert(name.clone(), Value::String(format!("{}?{}", spec.method, command_query(spec, &percent(after)))));
            }
            let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
            self.note_command_times(&answer.result, names.iter().map(|n| (n.as_str(), first.method)));
            let mut served = 0;
            let mut passing: Option<(String, String)> = None;
            let mut operating_spent = false;
            for (name, (i, after)) in names.iter().zip(round) {
                let spec = &specs[i];
                if let Some(e) = answer.result.get("result_error").and_then(|e| e.get(name)) {
                    let (code, description) = error_of(e);
                    match self.classify(spec.method, &code, &description, 200) {
                        ErrorKind::Final(message) => return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message }),
                        kind => {
                            operating_spent |= matches!(kind, ErrorKind::OperatingLimit);
                            passing.get_or_insert((code, description));
                            pending.push_back((i, after));
                            continue;
                        }
                    }
                }
                let Some(page) = answer.result.pointer(&format!("/result/{name}")).and_then(|r| spec.rows(r)) else {
                    return Err(shape(spec.method, "a batch command answered neither a list nor an error"));
                };
                served += 1;
                self.progress.page_read(&list, page.len() as u64);
                if page.len() >= PAGE {
                    let last = last_id(spec, page)?;
                    if compare_ids(&last, &after) != std::cmp::Ordering::Greater {
                        return Err(shape(spec.method, "a page did not continue the id order"));
                    }
                    pending.push_back((i, last));
                }
                rows[i].extend(page.iter().cloned());
            }
            if operating_spent {
                // The method's time budget is spent: wait until the portal frees it (a
                // wait, not a failure; `until_reset` is at most 15 minutes).
                tokio::time::sleep(self.until_reset(first.method).unwrap_or(Duration::from_secs(5))).await;
            } else if served == 0 {
                // Every command failed with a passing error: wait as the portal asks, a
                // bounded number of times (the polite client retries the request itself).
                stalled += 1;
                let (code, description) = passing.unwrap_or_default();
                if stalled > 5 {
                    return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", first.method), message: format!("every command failed 5 rounds in a row: {code} {description}") });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            } else {
                stalled = 0;
            }
        }
        self.progress.list_finished(&list);
        Ok(rows.into_iter().flatten().collect())
    }

    /// The rest of a list after its first page (`rows`, and the count when it had one).
    pub(super) async fn list_rest(&self, spec: &ListSpec, rows: Vec<Value>, total: Option<u64>) -> Result<Vec<Value>, Bitrix24Error> {
        let list = list_name(spec);
        self.progress.list_started(&list, total.filter(|_| spec.start_after.is_none()));
        self.progress.page_read(&list, rows.len() as u64);
        let rows = self.read_rest(spec, rows, total, &list).await?;
        self.progress.list_finished(&list);
        Ok(rows)
    }

    async fn read_rest(&self, spec: &ListSpec, mut rows: Vec<Value>, total: Option<u64>, list: &str) -> Result<Vec<Value>, Bitrix24Error> {
        // The count sizes the batches (a pull after a cursor has none: batches then grow
        // while every page is full).
        if rows.len() < PAGE {
            return Ok(rows);
        }
        let mut last = last_id(spec, &rows)?;
        let counted = spec.start_after.is_none() && total.is_some_and(|t| t > 0);
        // Pages still to read by the count; rows added meanwhile are read by later batches.
        let mut pages_left = if counted { (total.unwrap_or(0) as usize).saturating_sub(rows.len()).div_ceil(PAGE).max(1) } else { 2 };
        loop {
            let commands = pages_left.clamp(1, BATCH);
            let (pages, errors) = self.batch(spec, &last, commands).await?;
            let before = rows.len();
            let mut finished = false;
            let mut read = 0;
            for page in pages {
                let Some(page) = page else { break };
                let first_id = page.first().map(|r| id_of(spec, r)).transpose()?;
                // A page must continue the keyset; anything else (an unresolved reference)
                // ends this batch and the next one restarts from the last good id.
                if first_id.is_some_and(|id| compare_ids(&id, &last) != std::cmp::Ordering::Greater) {
                    break;
                }
                read += 1;
                let short = page.len() < PAGE;
                if let Some(row) = page.last() {
                    last = id_of(spec, row)?;
                }
                rows.extend(page);
                if short {
                    finished = true;
                    break;
                }
            }
            self.progress.page_read(list, (rows.len() - before) as u64);
            // The count is reached: rows added since are the next incremental pull's.
            if finished || (counted && rows.len() as u64 >= total.unwrap_or(u64::MAX)) {
                return Ok(rows);
            }
            if read == 0 {
                // The first command failed: say why, or retry after a pause when passing.
                match errors {
                    Some((code, description)) => match self.classify(spec.method, &code, &description, 200) {
                        ErrorKind::Final(message) => return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message }),
                        ErrorKind::OperatingLimit => tokio::time::sleep(self.until_reset(spec.method).unwrap_or(Duration::from_secs(5))).await,
                        ErrorKind::Passing | ErrorKind::Expired => tokio::time::sleep(Duration::from_secs(2)).await,
                    },
                    None => return Err(shape(spec.method, "a batch page did not continue the ID order")),
                }
            }
            pages_left = if counted { pages_left.saturating_sub(read).max(1) } else if read == commands { (commands * 2).min(BATCH) } else { commands };
        }
    }

    /// The body of one direct list call: the keyset filter after `after` (none for the
    /// first page, which also returns the count).
    fn direct_body(&self, spec: &ListSpec, after: Option<&str>) -> Value {
        let mut body = spec.params.clone();
        let mut filter = spec.filter.clone();
        if let Some(after) = after {
            filter.insert(spec.keyset_key.into(), json!(after));
        }
        body.insert(spec.filter_param.into(), Value::Object(filter));
        body.insert("start".into(), json!(if after.is_some() { -1 } else { 0 }));
        Value::Object(body)
    }

    /// One `batch` of `commands` chained keyset pages after `last`. Returns the pages in
    /// order (`None` from the first failed command on) and the first command error.
    async fn batch(&self, spec: &ListSpec, last: &str, commands: usize) -> Result<(Vec<Option<Vec<Value>>>, Option<(String, String)>), Bitrix24Error> {
        let mut cmd = Map::new();
        let names: Vec<String> = (0..commands).map(|i| format!("c{i:02}")).collect();
        for (i, name) in names.iter().enumerate() {
            let after = if i == 0 {
                percent(last)
            } else {
                let root = spec.root.map(|r| format!("[{r}]")).unwrap_or_default();
                format!("$result[{}]{root}[{}][{}]", names[i - 1], PAGE - 1, spec.id_field)
            };
            cmd.insert(name.clone(), Value::String(format!("{}?{}", spec.method, command_query(spec, &after))));
        }
        let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
        self.note_command_times(&answer.result, names.iter().map(|n| (n.as_str(), spec.method)));
        let results = answer.result.get("result");
        let errors = answer.result.get("result_error").and_then(Value::as_object);
        let mut pages = Vec::with_capacity(commands);
        let mut first_error = None;
        let mut failed = false;
        for name in &names {
            if let Some(e) = errors.and_then(|e| e.get(name)) {
                first_error.get_or_insert_with(|| error_of(e));
                failed = true;
            }
            let page = if failed { None } else { results.and_then(|r| r.get(name)).and_then(|r| spec.rows(r)).cloned() };
            failed |= page.is_none();
            pages.push(page);
        }
        Ok((pages, first_error))
    }
}

/// A sub-command's `{error, error_description}` (the code may be empty or a number).
fn error_of(e: &Value) -> (String, String) {
    let code = match e.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    (code, e.get("error_description").and_then(Value::as_str).unwrap_or("").to_string())
}

enum ErrorKind {
    Passing,
    OperatingLimit,
    Expired,
    Final(String),
}

/// The webhook scope a method needs.
pub(super) fn scope_of(method: &str) -> &'static str {
    match method {
        m if m.starts_with("crm.") => "crm",
        m if m.starts_with("user.") => "user",
        m if m.starts_with("department.") => "department",
        m if m.starts_with("voximplant.") => "telephony",
        m if m.starts_with("tasks.") => "task",
        _ => "crm",
    }
}

fn shape(method: &str, message: &str) -> Bitrix24Error {
    Bitrix24Error::Shape { method: method.into(), message: message.into() }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A row's id as text (ids are strings in crm.*.list and numbers elsewhere).
pub(super) fn id_of(spec: &ListSpec, row: &Value) -> Result<String, Bitrix24Error> {
    match row.get(spec.id_field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(shape(spec.method, &format!("a row has no {}", spec.id_field))),
    }
}

fn last_id(spec: &ListSpec, rows: &[Value]) -> Result<String, Bitrix24Error> {
    rows.last().map(|r| id_of(spec, r)).transpose()?.ok_or_else(|| shape(spec.method, "an empty page"))
}

/// Numeric ids compare as numbers.
fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn percent(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A batch command's query, PHP style (`filter[%3EID]=5&order[ID]=ASC&select[]=*&start=-1`).
/// `after` goes in as it is: a `$result[…]` reference must stay literal for the portal to
/// substitute it.
/// The first page of a list with its count (`start=0`).
fn command_query_counted(spec: &ListSpec) -> String {
    let mut parts = Vec::new();
    for (key, value) in &spec.params {
        flatten(&percent(key), value, &mut parts);
    }
    for (key, value) in &spec.filter {
        flatten(&format!("{}[{}]", spec.filter_param, percent(key)), value, &mut parts);
    }
    parts.push("start=0".into());
    parts.join("&")
}

fn command_query(spec: &ListSpec, after: &str) -> String {
    let mut parts = Vec::new();
    for (key, value) in &spec.params {
        flatten(&percent(key), value, &mut parts);
    }
    for (key, value) in &spec.filter {
        flatten(&format!("{}[{}]", spec.filter_param, percent(key)), value, &mut parts);
    }
    parts.push(format!("{}[{}]={after}", spec.filter_param, percent(spec.keyset_key)));
    parts.push("start=-1".into());
    parts.join("&")
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}[{}]", percent(k)), v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                flatten(&format!("{prefix}[]"), v, out);
            }
        }
        Value::String(s) => out.push(format!("{prefix}={}", percent(s))),
        Value::Null => out.push(format!("{prefix}=")),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// What a list holds, for progress: the entity, not the method.
fn list_name(spec: &ListSpec) -> String {
    let entity = match spec.method {
        "crm.deal.list" => "deals",
        "crm.lead.list" => "leads",
        "crm.contact.list" => "contacts",
        "crm.company.list" => "companies",
        "crm.activity.list" => "activities",
        "tasks.task.list" => "tasks",
        "crm.stagehistory.list" if spec.params.get("entityTypeId") == Some(&json!(1)) => "lead status history",
        "crm.stagehistory.list" => "deal stage history",
        "voximplant.statistic.get" => "calls",
        "user.get" => "users",
        "crm.item.productrow.list" => "product rows",
        "department.get" => "departments",
        "crm.category.list" => "pipelines",
        "crm.status.list" => "stages and sources",
        "crm.currency.list" => "currencies",
        other => other,
    };
    let ids_only = spec.params.get("select").and_then(Value::as_array).is_some_and(|s| s.len() == 1 && s[0] == "ID");
    if ids_only { format!("{entity} (ids, for deletions)") } else { entity.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_commands_are_php_queries_with_literal_references() {
        let spec = ListSpec::crm("crm.deal.list").with("select", json!(["*", "UF_*"])).filter(">=DATE_MODIFY", json!("2025-09-01T00:00:00+03:00"));
        let q = command_query(&spec, "$result[c00][49][ID]");
        assert_eq!(
            q,
            "order[ID]=ASC&select[]=*&select[]=UF_*&filter[%3E%3DDATE_MODIFY]=2025-09-01T00%3A00%3A00%2B03%3A00&filter[%3EID]=$result[c00][49][ID]&start=-1"
        );
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert_eq!(compare_ids("1000", "999"), std::cmp::Ordering::Greater);
        assert_eq!(scope_of("voximplant.statistic.get"), "telephony");
    }
}

