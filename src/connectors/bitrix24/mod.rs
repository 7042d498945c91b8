//! The Bitrix24 connector: a portal's CRM, users, telephony and tasks through an incoming
//! webhook, into the canonical tables.
//!
//! - A full sync reads every entity by keyset chains in `batch` (2,500 rows per request)
//!   under the polite client's token bucket.
//! - An incremental sync reads what changed since the cursors of the previous snapshot's
//!   manifest (minus an overlap window), upserts it into the previous snapshot's rows, and
//!   on every refresh scans ids only to drop deleted records.
//! - Product rows are read by `=ownerId` arrays of deal ids; small reference lists (users,
//!   departments, pipelines, stages, sources, currencies) in full every time.
//! - `pull.rs` has the phases of one pull; `client` the calls, `mapping` the mapping (one file per table family),
//!   `merge.rs` the merge into the previous snapshot.
//!
//! docs/connectors/bitrix24.md documents the mapping and the sync rules;
//! docs/connectors/bitrix24-conformance.md what the portal enforces on every call.

mod client;
mod mapping;
mod merge;
mod oauth;
mod pull;

use crate::connectors::token_place::{TokenHome, TokenPlace};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use url::Url;

use client::Client;

use salespulse_config::config::SecretSource;
use crate::connectors::http::{HttpError, PoliteClient, RetryPolicy};
use crate::connectors::progress::ProgressHandle;
use crate::connectors::{CheckReport as SourceCheck, Connector, ConnectorError, Pull};
pub use crate::connectors::sync::{Previous, SyncReport};
use crate::model::{RowError, Table};

use salespulse_config::config::sources::bitrix24::{Bitrix24Auth, Bitrix24Config, OAuthConfig};

/// A Bitrix24 failure, naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Bitrix24Error {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("Bitrix24 {method} answered in an unexpected shape: {message}")]
    Shape { method: String, message: String },
    #[error("Bitrix24 {table} record {id}: {source}")]
    Row { table: &'static str, id: String, source: RowError },
    #[error("merging the changes into the previous snapshot: {0}")]
    Merge(#[from] crate::connectors::sync::MergeError),
    #[error("the system has no random source for the phone hash key: {0}")]
    NoRandom(#[from] getrandom::Error),
}

/// The tables an incremental pull reads from the previous snapshot.
pub const PREVIOUS_TABLES: &[Table] = crate::connectors::sync::CRM_TABLES;


const CURSOR_PORTAL: &str = "bitrix24.portal";
const CURSOR_PHONE_KEY: &str = "bitrix24.phone_key";

/// The webhook, checked: its base URL (ending in `/`), the portal and user for labels.
struct Webhook {
    base: Url,
    portal: String,
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

fn webhook(secret: &SecretSource) -> Result<Webhook, Bitrix24Error> {
    let key = secret.describe();
    let bad = |message: String| Bitrix24Error::Config { key: key.clone(), message };
    let text = secret.resolve().map_err(|e| bad(e.to_string()))?;
    let mut url = Url::parse(&text).map_err(|_| bad("is not a URL; expected the webhook URL https://PORTAL/rest/USER/CODE/".into()))?;
    let host = url.host_str().unwrap_or("").to_string();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(bad(format!("must be an https:// URL (got {}://{host}/…)", url.scheme())));
    }
    let segments: Vec<String> = url.path_segments().map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    // https://PORTAL/rest/USER/CODE/ (a method name pasted after it is dropped).
    let rest = segments.iter().position(|s| s == "rest");
    let (user, code) = match rest.map(|i| (segments.get(i + 1), segments.get(i + 2))) {
        Some((Some(user), Some(code))) if user.chars().all(|c| c.is_ascii_digit()) && !code.contains('.') => (user.clone(), code.clone()),
        _ => return Err(bad(format!("expected https://{host}/rest/USER_ID/CODE/ (the webhook URL Bitrix24 shows), got a URL with path /{}/…", segments.first().map_or("", String::as_str)))),
    };
    let prefix: Vec<&str> = segments[..rest.unwrap_or(0)].iter().map(String::as_str).collect();
    let mut path = String::from("/");
    for p in prefix {
        path.push_str(p);
        path.push('/');
    }
    url.set_path(&format!("{path}rest/{user}/{code}/"));
    url.set_query(None);
    let portal = format!("{}{}", host, url.port().map(|p| format!(":{p}")).unwrap_or_default());
    Ok(Webhook { base: url, portal: format!("{portal} (webhook of user {user})") })
}

async fn oauth_endpoint(cfg: &OAuthConfig, tokens: &TokenHome) -> Result<(client::Endpoint, String), Bitrix24Error> {
    let bad = |message: String| Bitrix24Error::Config { key: cfg.key.clone(), message };
    let https = |text: &str, what: &str| -> Result<Url, Bitrix24Error> {
        let url = Url::parse(text).map_err(|_| bad(format!("{what} '{text}' is not a URL")))?;
        let host = url.host_str().unwrap_or("").to_string();
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
            return Err(bad(format!("{what} must be an https:// URL, got {text}")));
        }
        Ok(url)
    };
    let mut base = https(&cfg.portal_url, "portal_url")?;
    let trimmed = base.path().trim_end_matches('/').trim_end_matches("/rest").to_string();
    base.set_path(&format!("{trimmed}/rest/"));
    base.set_query(None);
    let token_url = https(&cfg.token_url, "oauth_token_url")?;
    let client_secret = cfg.client_secret.resolve().map_err(|e| bad(e.to_string()))?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let app = oauth::OAuthApp { token_url, client_id: cfg.client_id.clone(), client_secret, tokens_at: TokenPlace::of(tokens, &cfg.token_file), key: cfg.key.clone() };
    // The tokens must be there and readable before anything else.
    app.load().await?;
    Ok((client::Endpoint::OAuth { base, app: Box::new(app), tokens: tokio::sync::Mutex::new(None) }, format!("{host} (OAuth app {})", cfg.client_id)))
}

async fn client_for(cfg: &Bitrix24Config, tokens: &TokenHome) -> Result<(Client, String), Bitrix24Error> {
    let (endpoint, portal, key) = match &cfg.auth {
        Bitrix24Auth::Webhook(secret) => {
            let hook = webhook(secret)?;
            (client::Endpoint::Webhook(hook.base), hook.portal, secret.describe())
        }
        Bitrix24Auth::OAuth(app) => {
            let (endpoint, portal) = oauth_endpoint(app, tokens).await?;
            (endpoint, portal, app.key.clone())
        }
    };
    let policy = RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() };
    // One pace per portal in this process, whichever webhook or app calls it (the portal
    // counts their requests together; see `PoliteClient::for_account`).
    let host = portal.split(' ').next().unwrap_or(&portal);
    let http = PoliteClient::for_account(&format!("bitrix24 {host}"), cfg.rate, policy)?;
    Ok((Client::new(endpoint, http, key), portal))
}

/// The scopes a full sync needs, with what each one reads.
pub const SCOPES: &[(&str, &str)] = &[
    ("crm", "deals, leads, contacts, companies, activities, stage history, pipelines, product rows"),
    ("user", "managers (user.get)"),
    ("department", "departments (department.get)"),
    ("telephony", "calls (voximplant.statistic.get)"),
    ("task", "tasks (tasks.task.list)"),
];

/// What `salespulse check` found about a webhook.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub portal: String,
    pub scopes: Vec<String>,
    pub missing: Vec<(&'static str, &'static str)>,
}

/// Probes the webhook: it answers, and it has the scopes a sync needs.
///
/// # Errors
/// The webhook is malformed or refused, or the portal does not answer.
pub async fn check(cfg: &Bitrix24Config, tokens: &TokenHome) -> Result<CheckReport, Bitrix24Error> {
    let (client, portal) = client_for(cfg, tokens).await?;
    let answer = client.call("scope", &json!({})).await?;
    let scopes: Vec<String> = answer.result.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let missing = SCOPES.iter().filter(|(s, _)| !scopes.iter().any(|have| have == s)).copied().collect();
    Ok(CheckReport { portal, scopes, missing })
}

/// Pulls the portal: in full, or incrementally on top of `previous` when it is a snapshot of
/// the same portal (`pull.rs` has the phases). `progress` hears of each list as it is read;
/// an OAuth app's tokens are read from and written to `tokens`.
///
/// # Errors
/// See [`Bitrix24Error`]; nothing is stored by a failed pull.
pub async fn pull(cfg: &Bitrix24Config, tokens: &TokenHome, timezone: Tz, previous: Option<Previous>, now: DateTime<Utc>, progress: ProgressHandle) -> Result<Pull, Bitrix24Error> {
    let (client, portal) = client_for(cfg, tokens).await?;
    pull::pull(cfg, timezone, previous, now, client.with_progress(progress), portal).await
}

/// A Bitrix24 portal as a [`Connector`].
#[derive(Debug, Clone)]
pub struct Bitrix24Connector {
    pub config: Box<Bitrix24Config>,
    pub timezone: Tz,
    /// Where an OAuth app's tokens live.
    pub tokens: TokenHome,
}

#[async_trait::async_trait]
impl Connector for Bitrix24Connector {
    fn id(&self) -> &'static str {
        "bitrix24"
    }

    fn builds_on(&self) -> &'static [Table] {
        PREVIOUS_TABLES
    }

    async fn check(&self) -> Result<SourceCheck, ConnectorError> {
        let report = check(&self.config, &self.tokens).await?;
        let mut out = SourceCheck { facts: vec![format!("Bitrix24 portal {} answers; webhook scopes: {}", report.portal, report.scopes.join(", "))], ..Default::default() };
        if !report.missing.is_empty() {
            let missing: Vec<String> = report.missing.iter().map(|(scope, reads)| format!("'{scope}' (for {reads})")).collect();
            out.problems.push(format!("the webhook lacks the scope(s) {}; add them to the webhook in Bitrix24 (Applications → Developer resources)", missing.join(", ")));
        }
        Ok(out)
    }

    async fn pull(&self, previous: Option<Previous>, now: DateTime<Utc>, progress: ProgressHandle) -> Result<Pull, ConnectorError> {
        Ok(pull(&self.config, &self.tokens, self.timezone, previous, now, progress).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salespulse_config::config::sources::RateLimit;
    use std::time::Duration;

    fn cfg(url: &str) -> Bitrix24Config {
        Bitrix24Config {
            auth: Bitrix24Auth::Webhook(SecretSource::Inline { key: "tenants[0] (acme).source.webhook_url".into(), value: url.into() }),
            rate: RateLimit { requests_per_second: 2.0, burst: 10 },
            loss_reason_field: None,
            overlap: Duration::from_secs(600),
            timeout: Duration::from_secs(60),
        }
    }

    fn hook_of(c: &Bitrix24Config) -> Result<Webhook, Bitrix24Error> {
        match &c.auth {
            Bitrix24Auth::Webhook(secret) => webhook(secret),
            Bitrix24Auth::OAuth(_) => unreachable!(),
        }
    }

    #[test]
    fn webhook_urls_are_checked_and_normalised() {
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123/")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        assert_eq!(hook.portal, "acme.bitrix24.ru (webhook of user 1)");
        // A method pasted after the code is dropped; the trailing slash is added.
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123/profile.json")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        for bad in ["http://acme.bitrix24.ru/rest/1/abc/", "https://acme.bitrix24.ru/", "https://acme.bitrix24.ru/rest/x/abc/", "not a url"] {
            let e = hook_of(&cfg(bad)).err().unwrap().to_string();
            assert!(e.starts_with("tenants[0] (acme).source.webhook_url: "), "{e}");
            assert!(!e.contains("abc"), "the secret code never appears in messages: {e}");
        }
        assert!(hook_of(&cfg("http://127.0.0.1:8080/rest/1/abc/")).is_ok());
    }
}
