//! `kind = "amocrm"` (amoCRM and Kommo): the account's address, a long-lived token or an
//! OAuth integration, the request rate, the timeout and the currency, checked into an
//! [`AmoCrmConfig`].

use std::path::Path;

use crate::config::sources::RateLimit;
use crate::config::sources::amocrm::{AmoCrmAuth, AmoCrmConfig, OAuthConfig};
use crate::config::{Mistake, SecretSource, SourceConfig};

use super::{client_secret, request_timeout};

/// The keys of a `kind = "amocrm"` source, as written.
pub(super) struct AmoCrmKeys {
    pub(super) account: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) sign_in: AmoCrmSignIn,
    pub(super) requests_per_second: Option<f64>,
    pub(super) overlap_minutes: Option<u32>,
    pub(super) full_sync_hours: Option<u32>,
    pub(super) timeout_seconds: Option<u64>,
    pub(super) max_429_in_a_row: Option<u32>,
    pub(super) currency: Option<String>,
}

/// The keys that say how salespulse signs in: a long-lived token (`token`, `token_env` or
/// `token_file`) or an OAuth integration (the others).
pub(super) struct AmoCrmSignIn {
    pub(super) token: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret_env: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) redirect_uri: Option<String>,
    pub(super) oauth_token_file: Option<String>,
}

/// The account's address, and the key it was given by (for messages).
struct AccountAddress {
    base_url: String,
    base_key: String,
}

/// `[tenants.source]` with `kind = "amocrm"`: the address and the sign-in first, then the
/// rate, the timeout and the currency.
pub(super) fn amocrm(keys: AmoCrmKeys, key: &impl Fn(&str) -> String, base: &Path) -> Result<SourceConfig, Mistake> {
    let AccountAddress { base_url, base_key } = address(keys.account, keys.base_url, key)?;
    let auth = auth(keys.sign_in, key, base)?;
    let requests_per_second = keys.requests_per_second.unwrap_or(6.5);
    if !(requests_per_second > 0.0 && requests_per_second <= 7.0) {
        return Err(Mistake::new(key("source.requests_per_second"), format!("must be above 0 and at most 7 (amoCRM's limit), got {requests_per_second}")));
    }
    let timeout = request_timeout(keys.timeout_seconds, key)?;
    if keys.max_429_in_a_row.is_some() {
        // Accepted so that older configs still start; it no longer applies.
        tracing::warn!(key = %key("source.max_429_in_a_row"), "max_429_in_a_row is no longer used: a 429 pauses every request to the account for the wait amoCRM names, and only amoCRM's block page stops a sync; remove the line");
    }
    let currency = currency(keys.currency, key)?;
    Ok(SourceConfig::AmoCrm(Box::new(AmoCrmConfig {
        base_url,
        base_key,
        auth,
        rate: RateLimit { requests_per_second, burst: 1 },
        overlap: std::time::Duration::from_secs(u64::from(keys.overlap_minutes.unwrap_or(10)) * 60),
        full_sync_every: std::time::Duration::from_secs(u64::from(keys.full_sync_hours.unwrap_or(168)) * 3600),
        timeout,
        currency,
    })))
}

/// `account` (SUBDOMAIN.amocrm.ru, .amocrm.com or .kommo.com, as in the browser) or a
/// proxy's `base_url`, exactly one.
fn address(account: Option<String>, base_url: Option<String>, key: &impl Fn(&str) -> String) -> Result<AccountAddress, Mistake> {
    let (base_url, base_key) = match (account, base_url) {
        (Some(account), None) => {
            let host = account.trim().trim_start_matches("https://").trim_end_matches('/').to_lowercase();
            let sub = ["amocrm.ru", "amocrm.com", "kommo.com"].iter().find_map(|d| host.strip_suffix(&format!(".{d}")));
            match sub {
                Some(sub) if !sub.is_empty() && sub != "www" && !sub.contains('.') && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                    (format!("https://{host}"), key("source.account"))
                }
                _ => {
                    return Err(Mistake::new(
                        key("source.account"),
                        format!("'{account}' is not an account address; use SUBDOMAIN.amocrm.ru, SUBDOMAIN.amocrm.com or SUBDOMAIN.kommo.com (the address in the browser), or set base_url for a proxy"),
                    ));
                }
            }
        }
        (None, Some(url)) => (url, key("source.base_url")),
        _ => return Err(Mistake::new(key("source.account"), "set exactly one of account (SUBDOMAIN.amocrm.ru) and base_url (a proxy's address)".into())),
    };
    Ok(AccountAddress { base_url, base_key })
}

/// A long-lived token given exactly one way, or an OAuth integration with every key it
/// needs; not both.
fn auth(sign_in: AmoCrmSignIn, key: &impl Fn(&str) -> String, base: &Path) -> Result<AmoCrmAuth, Mistake> {
    let AmoCrmSignIn { token, token_env, token_file, client_id, client_secret_env, client_secret_file, redirect_uri, oauth_token_file } = sign_in;
    let oauth = client_id.is_some() || oauth_token_file.is_some() || redirect_uri.is_some();
    Ok(match (token, token_env, token_file) {
        (Some(value), None, None) if !oauth => AmoCrmAuth::LongLived(SecretSource::Inline { key: key("source.token"), value }),
        (None, Some(name), None) if !oauth => AmoCrmAuth::LongLived(SecretSource::Env { key: key("source.token_env"), name }),
        (None, None, Some(file)) if !oauth => AmoCrmAuth::LongLived(SecretSource::File { key: key("source.token_file"), path: base.join(file) }),
        (None, None, None) if oauth => {
            let (Some(client_id), Some(redirect_uri), Some(token_file)) = (client_id, redirect_uri, oauth_token_file) else {
                return Err(Mistake::new(key("source.client_id"), "an OAuth integration needs client_id, client_secret_env (or client_secret_file), redirect_uri and oauth_token_file".into()));
            };
            let client_secret = client_secret(client_secret_env, client_secret_file, key, base)?;
            AmoCrmAuth::OAuth(OAuthConfig { client_id, client_secret, redirect_uri, token_file: base.join(token_file), key: key("source (OAuth integration)") })
        }
        _ => {
            return Err(Mistake::new(
                key("source.token_env"),
                "set exactly one of token_env (an environment variable holding a long-lived token), token_file or token; or, for an OAuth integration, client_id, client_secret_env, redirect_uri and oauth_token_file".into(),
            ));
        }
    })
}

/// The account's currency for when amoCRM does not say: an ISO 4217 code, RUB when not set.
fn currency(currency: Option<String>, key: &impl Fn(&str) -> String) -> Result<String, Mistake> {
    let currency = currency.unwrap_or_else(|| "RUB".into()).to_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(Mistake::new(key("source.currency"), format!("'{currency}' is not an ISO 4217 code such as RUB")));
    }
    Ok(currency)
}
