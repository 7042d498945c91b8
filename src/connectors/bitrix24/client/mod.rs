//! Calls to a Bitrix24 portal's REST v2 through an incoming webhook: the envelope, the
//! vendor's error codes sorted into passing and final, and the two ways of reading a list:
//! plain `start` paging for small lists, and for large ones keyset chains in `batch`
//! (`filter[>ID]` from the previous command's 50th row, `start=-1` so the portal skips its
//! COUNT), up to 50 commands = 2,500 rows per request
//! (docs/connectors/bitrix24-conformance.md B-BATCH-9, B-LIMIT-3).
//!
//! Layout: this file has the types and the one call every request goes through;
//! `answers.rs` sorts the answers and error codes, `budget.rs` tracks each method's time
//! budget, `query.rs` writes batch commands, `paging.rs` reads one list, and
//! `many_lists.rs` packs many lists into one `batch`.

mod answers;
mod budget;
mod many_lists;
mod paging;
mod query;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use url::Url;

use super::Bitrix24Error;
use super::oauth::{OAuthApp, Tokens};
use crate::connectors::http::PoliteClient;
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

/// The first page of a list: its rows, and the portal's count of all its rows when it
/// gave one.
#[derive(Debug, Default)]
pub(super) struct FirstPage {
    pub(super) rows: Vec<Value>,
    pub(super) total: Option<u64>,
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
                        None => app.load().await?,
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
                        None => app.load().await?,
                    };
                    // Refresh unless another call already did since this one was sent.
                    let next = if current.access_token == used { app.refresh(&self.http, &current).await? } else { current };
                    *held = Some(next);
                    refreshed = true;
                }
            }
        }
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
