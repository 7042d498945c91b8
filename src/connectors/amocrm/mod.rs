//! The amoCRM / Kommo connector: an account's deals ("leads"), contacts, companies, tasks,
//! notes (calls) and stage events through API v4, into the canonical tables.
//!
//! - Every list is read page by page (250 rows, events 100) along `_links.next`; a 204 ends
//!   it. The lists are read side by side under the polite client's token bucket, which stays
//!   under the vendor's 7 requests per second.
//! - The token bucket is shared by every refresh of the account in the process. A 429 (or
//!   any answer naming a wait) pauses every request to the account for that wait; no
//!   number of 429s stops a sync, only the 403 block page does, at once.
//! - An incremental sync reads what changed since the previous snapshot's cursor (minus an
//!   overlap, for writes the API shows late): with the account's API filter where it has
//!   one, else a scan by `updated_at` descending that stops at the cursor. Deletions and
//!   restores come from the `*_deleted`/`*_restored` events and the trash; a restored record
//!   is read again by id with its notes and stage events. Tasks are read in full (a deleted
//!   contact's tasks go without an event). Every `full_sync_hours` the sync is a full one.
//!
//! - Products on deals (the products catalog) fill `deal_items`; UTM tracking fields or the
//!   named lead source fill `sources`.
//! - `pull.rs` has the phases of one pull; `client` the calls, `mapping` the mapping (one file per table family),
//!   `merge.rs` the merge into the previous snapshot.
//!
//! docs/connectors/amocrm.md documents the setup, the mapping and the sync rules;
//! docs/connectors/amocrm-conformance.md what the API enforces on every call.

mod client;
mod mapping;
mod merge;
mod oauth;
mod pull;

use crate::connectors::token_place::{TokenHome, TokenPlace};

use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use client::{Auth, Client, ListSpec};

use crate::connectors::http::{HttpError, PoliteClient, RetryPolicy};
use crate::connectors::{CheckReport as SourceCheck, Connector, ConnectorError, Pull};
pub use crate::connectors::sync::{Previous, SyncReport};
use crate::model::{RowError, Table};

use salespulse_config::config::sources::amocrm::{AmoCrmAuth, AmoCrmConfig, OAuthConfig};

/// An amoCRM failure, naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AmoCrmError {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("{0}")]
    Blocked(String),
    #[error("amoCRM {path} answered in an unexpected shape: {message}")]
    Shape { path: String, message: String },
    #[error("amoCRM {table} record {id}: {source}")]
    Row { table: &'static str, id: String, source: RowError },
    #[error("merging the changes into the previous snapshot: {0}")]
    Merge(#[from] crate::connectors::sync::MergeError),
    #[error("the system has no random source for the phone hash key: {0}")]
    NoRandom(#[from] getrandom::Error),
}

/// The tables an incremental pull reads from the previous snapshot.
pub const PREVIOUS_TABLES: &[Table] = crate::connectors::sync::CRM_TABLES;


const CURSOR_ACCOUNT: &str = "amocrm.account";
const CURSOR_PHONE_KEY: &str = "amocrm.phone_key";
const CURSOR_SYNCED_TO: &str = "amocrm.synced_to";
const CURSOR_FULL_SYNC: &str = "amocrm.full_sync_at";

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

/// The account's base URL, checked.
fn base_url(cfg: &AmoCrmConfig) -> Result<Url, AmoCrmError> {
    let bad = |message: String| AmoCrmError::Config { key: cfg.base_key.clone(), message };
    let mut url = Url::parse(&cfg.base_url).map_err(|_| bad(format!("'{}' is not a URL; expected https://SUBDOMAIN.amocrm.ru", cfg.base_url)))?;
    let host = url.host_str().unwrap_or("").to_string();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(bad(format!("must be an https:// address (got {}://{host})", url.scheme())));
    }
    url.set_path("/");
    url.set_query(None);
    Ok(url)
}

async fn client_for(cfg: &AmoCrmConfig, tokens: &TokenHome) -> Result<(Client, String), AmoCrmError> {
    let base = base_url(cfg)?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let policy = RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() };
    // One pace per account in this process: refreshes of it, back to back or side by side,
    // share the token bucket and any pause the account asked for.
    let http = PoliteClient::for_account(&format!("amocrm {host}"), cfg.rate, policy)?;
    let auth = match &cfg.auth {
        AmoCrmAuth::LongLived(secret) => {
            let key = secret.describe();
            let token = secret.resolve().map_err(|e| AmoCrmError::Config { key: key.clone(), message: e.to_string() })?;
            Auth::LongLived { token, key }
        }
        AmoCrmAuth::OAuth(o) => {
            let app = oauth_app(o, &base, tokens)?;
            let tokens = app.load().await?;
            Auth::OAuth { app: Box::new(app), tokens: tokio::sync::Mutex::new(tokens) }
        }
    };
    Ok((Client::new(base, auth, http), host))
}

fn oauth_app(o: &OAuthConfig, base: &Url, tokens: &TokenHome) -> Result<oauth::OAuthApp, AmoCrmError> {
    let client_secret = o.client_secret.resolve().map_err(|e| AmoCrmError::Config { key: o.key.clone(), message: e.to_string() })?;
    let mut token_url = base.clone();
    token_url.set_path("/oauth2/access_token");
    Ok(oauth::OAuthApp {
        token_url,
        client_id: o.client_id.clone(),
        client_secret,
        redirect_uri: o.redirect_uri.clone(),
        tokens_at: TokenPlace::of(tokens, &o.token_file),
        key: o.key.clone(),
    })
}

/// Exchanges an OAuth authorization code (from the integration's redirect, valid 20
/// minutes) for the first token pair, and writes it where the tenant's tokens live
/// (`tokens`); returns where that is.
///
/// # Errors
/// The tenant does not use an OAuth integration, or amoCRM refuses the code.
pub async fn authorize(cfg: &AmoCrmConfig, tokens: &TokenHome, code: &str) -> Result<String, AmoCrmError> {
    let AmoCrmAuth::OAuth(o) = &cfg.auth else {
        return Err(AmoCrmError::Config { key: cfg.base_key.clone(), message: "this tenant signs in with a long-lived token; an authorization code is for OAuth integrations (client_id, client_secret_env, redirect_uri, token_file)".into() });
    };
    let base = base_url(cfg)?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let http = PoliteClient::for_account(&format!("amocrm {host}"), cfg.rate, RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() })?;
    let app = oauth_app(o, &base, tokens)?;
    app.exchange_code(&http, code.trim()).await?;
    Ok(app.tokens_at.to_string())
}

/// What `salespulse check` found about an account.
#[derive(Debug)]
pub struct CheckReport {
    pub account: String,
    pub api_filter: bool,
    /// Users readable (the token's user is an admin), or why not.
    pub users: Result<usize, AmoCrmError>,
}

/// Probes the account: it answers to the token, whether it has API filtering, and whether
/// the token's user may read the users list.
///
/// # Errors
/// The address or token is wrong, or the account does not answer.
pub async fn check(cfg: &AmoCrmConfig, tokens: &TokenHome) -> Result<CheckReport, AmoCrmError> {
    let (client, host) = client_for(cfg, tokens).await?;
    let account = account(&client).await?;
    let users = client.list(&ListSpec::new("/api/v4/users", "users", 250)).await.map(|u| u.len());
    Ok(CheckReport { account: describe(&account, &host), api_filter: api_filter(&account), users })
}

async fn account(client: &Client) -> Result<Value, AmoCrmError> {
    let query = [("with".to_string(), "users_groups,task_types,datetime_settings,is_api_filter_enabled".to_string())];
    client.get("/api/v4/account", &query).await?.ok_or_else(|| AmoCrmError::Shape { path: "/api/v4/account".into(), message: "no content".into() })
}

fn describe(account: &Value, host: &str) -> String {
    let id = mapping::id(account, "id").unwrap_or_default();
    format!("{host} (account {id})")
}

fn api_filter(account: &Value) -> bool {
    account.get("is_api_filter_enabled").and_then(Value::as_bool).unwrap_or(false)
}

/// Pulls the account: in full, or incrementally on top of `previous` when it is a snapshot
/// of the same account and a full sync is not due (`pull.rs` has the phases). `progress`
/// hears of each list as it is read.
///
/// # Errors
/// See [`AmoCrmError`]; nothing is stored by a failed pull.
pub async fn pull(cfg: &AmoCrmConfig, tokens: &TokenHome, previous: Option<Previous>, now: DateTime<Utc>, progress: crate::connectors::progress::ProgressHandle) -> Result<Pull, AmoCrmError> {
    let (client, host) = client_for(cfg, tokens).await?;
    pull::pull(cfg, previous, now, client.with_progress(progress), &host).await
}

/// An amoCRM/Kommo account as a [`Connector`].
#[derive(Debug, Clone)]
pub struct AmoCrmConnector {
    pub config: Box<AmoCrmConfig>,
    /// Where an OAuth integration's tokens live.
    pub tokens: TokenHome,
}

#[async_trait::async_trait]
impl Connector for AmoCrmConnector {
    fn id(&self) -> &'static str {
        "amocrm"
    }

    fn builds_on(&self) -> &'static [Table] {
        PREVIOUS_TABLES
    }

    async fn check(&self) -> Result<SourceCheck, ConnectorError> {
        let report = check(&self.config, &self.tokens).await?;
        let filter = if report.api_filter { "with API filtering" } else { "without API filtering (incremental syncs scan by update time)" };
        let mut out = SourceCheck { facts: vec![format!("amoCRM account {} answers, {filter}", report.account)], ..Default::default() };
        match report.users {
            Ok(n) => out.facts.push(format!("{n} users readable")),
            Err(e) => out.problems.push(format!("the users list is not readable ({e}); the token must belong to an account administrator")),
        }
        Ok(out)
    }

    async fn pull(&self, previous: Option<Previous>, now: DateTime<Utc>, progress: crate::connectors::progress::ProgressHandle) -> Result<Pull, ConnectorError> {
        Ok(pull(&self.config, &self.tokens, previous, now, progress).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salespulse_config::config::SecretSource;
    use salespulse_config::config::sources::RateLimit;
    use std::time::Duration;

    fn cfg(url: &str) -> AmoCrmConfig {
        AmoCrmConfig {
            base_url: url.into(),
            base_key: "tenants[0] (acme).source.account".into(),
            auth: AmoCrmAuth::LongLived(SecretSource::Inline { key: "tenants[0] (acme).source.token".into(), value: "t0k3n".into() }),
            rate: RateLimit { requests_per_second: 6.5, burst: 1 },
            overlap: Duration::from_secs(600),
            full_sync_every: Duration::from_secs(7 * 86400),
            timeout: Duration::from_secs(60),
            currency: "RUB".into(),
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(base_url(&cfg("https://acme.amocrm.ru/api/v4/")).unwrap().as_str(), "https://acme.amocrm.ru/");
        assert!(base_url(&cfg("http://127.0.0.1:9000")).is_ok());
        for bad in ["http://acme.amocrm.ru", "acme", "ftp://x"] {
            let e = base_url(&cfg(bad)).unwrap_err().to_string();
            assert!(e.starts_with("tenants[0] (acme).source.account: "), "{e}");
        }
    }

    #[test]
    fn duplicates_keep_the_latest_update() {
        let rows = vec![serde_json::json!({"id": 1, "updated_at": 5, "v": "old"}), serde_json::json!({"id": 2}), serde_json::json!({"id": 1, "updated_at": 9, "v": "new"})];
        let out = pull::dedupe(rows);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["v"], "new");
    }
}
