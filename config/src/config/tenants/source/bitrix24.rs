//! `kind = "bitrix24"`: a webhook or an OAuth app, the request rate and burst, the
//! loss-reason field and the request timeout, checked into a [`Bitrix24Config`].

use std::path::Path;

use crate::config::sources::RateLimit;
use crate::config::sources::bitrix24::{Bitrix24Auth, Bitrix24Config, OAuthConfig};
use crate::config::{Mistake, SecretSource, SourceConfig};

use super::{client_secret, request_timeout};

/// The keys of a `kind = "bitrix24"` source, as written.
pub(super) struct Bitrix24Keys {
    pub(super) sign_in: Bitrix24SignIn,
    pub(super) requests_per_second: Option<f64>,
    pub(super) burst: Option<u32>,
    pub(super) loss_reason_field: Option<String>,
    pub(super) overlap_minutes: Option<u32>,
    pub(super) reconcile_hours: Option<u32>,
    pub(super) timeout_seconds: Option<u64>,
}

/// The keys that say how salespulse signs in: a webhook (`webhook_url`, `_env` or `_file`)
/// or an OAuth app (the others).
pub(super) struct Bitrix24SignIn {
    pub(super) webhook_url: Option<String>,
    pub(super) webhook_url_env: Option<String>,
    pub(super) webhook_url_file: Option<String>,
    pub(super) portal_url: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret_env: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) token_file: Option<String>,
    pub(super) oauth_token_url: Option<String>,
}

/// `[tenants.source]` with `kind = "bitrix24"`: the sign-in first, then the pace, the
/// loss-reason field and the timeout.
pub(super) fn bitrix24(keys: Bitrix24Keys, key: &impl Fn(&str) -> String, base: &Path) -> Result<SourceConfig, Mistake> {
    let auth = auth(keys.sign_in, key, base)?;
    let rate = rate(keys.requests_per_second, keys.burst, key)?;
    if let Some(field) = &keys.loss_reason_field
        && !(field.starts_with("UF_CRM_") && field.len() > 7)
    {
        return Err(Mistake::new(key("source.loss_reason_field"), format!("'{field}' is not a deal custom field; use its name such as UF_CRM_1753862633986")));
    }
    let timeout = request_timeout(keys.timeout_seconds, key)?;
    if keys.reconcile_hours.is_some() {
        // Accepted so that older configs still start; it no longer applies.
        tracing::warn!(key = %key("source.reconcile_hours"), "reconcile_hours is no longer used: every incremental refresh scans ids for deleted records; remove the line");
    }
    Ok(SourceConfig::Bitrix24(Box::new(Bitrix24Config {
        auth,
        rate,
        loss_reason_field: keys.loss_reason_field,
        overlap: std::time::Duration::from_secs(u64::from(keys.overlap_minutes.unwrap_or(10)) * 60),
        timeout,
    })))
}

/// A webhook given exactly one way, or an OAuth app with every key it needs; not both.
fn auth(sign_in: Bitrix24SignIn, key: &impl Fn(&str) -> String, base: &Path) -> Result<Bitrix24Auth, Mistake> {
    let Bitrix24SignIn { webhook_url, webhook_url_env, webhook_url_file, portal_url, client_id, client_secret_env, client_secret_file, token_file, oauth_token_url } = sign_in;
    let oauth = portal_url.is_some() || client_id.is_some() || token_file.is_some();
    Ok(match (webhook_url, webhook_url_env, webhook_url_file) {
        (Some(value), None, None) if !oauth => Bitrix24Auth::Webhook(SecretSource::Inline { key: key("source.webhook_url"), value }),
        (None, Some(name), None) if !oauth => Bitrix24Auth::Webhook(SecretSource::Env { key: key("source.webhook_url_env"), name }),
        (None, None, Some(file)) if !oauth => Bitrix24Auth::Webhook(SecretSource::File { key: key("source.webhook_url_file"), path: base.join(file) }),
        (None, None, None) if oauth => {
            let (Some(portal_url), Some(client_id), Some(token_file)) = (portal_url, client_id, token_file) else {
                return Err(Mistake::new(key("source.portal_url"), "an OAuth app needs portal_url, client_id, client_secret_env (or client_secret_file) and token_file".into()));
            };
            let client_secret = client_secret(client_secret_env, client_secret_file, key, base)?;
            Bitrix24Auth::OAuth(OAuthConfig {
                portal_url,
                client_id,
                client_secret,
                token_file: base.join(token_file),
                token_url: oauth_token_url.unwrap_or_else(|| "https://oauth.bitrix.info/oauth/token/".into()),
                key: key("source (OAuth app)"),
            })
        }
        _ => {
            return Err(Mistake::new(
                key("source.webhook_url_env"),
                "set exactly one of webhook_url_env (an environment variable holding https://PORTAL/rest/USER/CODE/), webhook_url_file or webhook_url; or, for an OAuth app, portal_url, client_id, client_secret_env and token_file".into(),
            ));
        }
    })
}

/// `requests_per_second` (2 when not set) above 0 and at most 50, and `burst` (10 when not
/// set) 1 to 250.
fn rate(requests_per_second: Option<f64>, burst: Option<u32>, key: &impl Fn(&str) -> String) -> Result<RateLimit, Mistake> {
    let rate = RateLimit { requests_per_second: requests_per_second.unwrap_or(2.0), burst: burst.unwrap_or(10) };
    if !(rate.requests_per_second > 0.0 && rate.requests_per_second <= 50.0) {
        return Err(Mistake::new(key("source.requests_per_second"), format!("must be above 0 and at most 50, got {}", rate.requests_per_second)));
    }
    if rate.burst == 0 || rate.burst > 250 {
        return Err(Mistake::new(key("source.burst"), format!("must be 1 to 250, got {}", rate.burst)));
    }
    Ok(rate)
}
