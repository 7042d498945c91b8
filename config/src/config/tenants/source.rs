//! A tenant's `[tenants.source]`, by its `kind`: the demo generator, exported files, or a
//! CRM (`bitrix24`, `amocrm`) with its credentials, pace and request timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::raw::RawSource;
use crate::config::{Mistake, SecretSource, SourceConfig};

mod amocrm;
mod bitrix24;

/// `[tenants.source]`, validated; files are resolved against `base`, and `key` names a key
/// of this tenant for messages.
pub(super) fn source(raw: RawSource, key: &impl Fn(&str) -> String, base: &Path) -> Result<SourceConfig, Mistake> {
    match raw {
        RawSource::Demo { scale, seed } => demo(scale, seed, key),
        RawSource::Files { path: folder, exported_at } => files(base.join(folder), exported_at, key),
        RawSource::Bitrix24 {
            webhook_url, webhook_url_env, webhook_url_file, requests_per_second, burst, loss_reason_field, overlap_minutes, reconcile_hours, timeout_seconds,
            portal_url, client_id, client_secret_env, client_secret_file, token_file, oauth_token_url,
        } => {
            let sign_in = bitrix24::Bitrix24SignIn {
                webhook_url, webhook_url_env, webhook_url_file, portal_url, client_id, client_secret_env, client_secret_file, token_file, oauth_token_url,
            };
            let keys = bitrix24::Bitrix24Keys { sign_in, requests_per_second, burst, loss_reason_field, overlap_minutes, reconcile_hours, timeout_seconds };
            bitrix24::bitrix24(keys, key, base)
        }
        RawSource::Amocrm {
            account, base_url, token, token_env, token_file, client_id, client_secret_env, client_secret_file, redirect_uri, oauth_token_file,
            requests_per_second, overlap_minutes, full_sync_hours, timeout_seconds, max_429_in_a_row, currency,
        } => {
            let sign_in = amocrm::AmoCrmSignIn { token, token_env, token_file, client_id, client_secret_env, client_secret_file, redirect_uri, oauth_token_file };
            let keys = amocrm::AmoCrmKeys { account, base_url, sign_in, requests_per_second, overlap_minutes, full_sync_hours, timeout_seconds, max_429_in_a_row, currency };
            amocrm::amocrm(keys, key, base)
        }
    }
}

/// `kind = "demo"`: a scale above 0 and at most 100.
fn demo(scale: f64, seed: u64, key: &impl Fn(&str) -> String) -> Result<SourceConfig, Mistake> {
    if !(scale > 0.0 && scale <= 100.0) {
        return Err(Mistake::new(key("source.scale"), format!("must be above 0 and at most 100, got {scale}")));
    }
    Ok(SourceConfig::Demo { scale, seed })
}

/// `kind = "files"`: the folder of exports, and when they were exported (RFC 3339).
fn files(path: PathBuf, exported_at: Option<String>, key: &impl Fn(&str) -> String) -> Result<SourceConfig, Mistake> {
    Ok(SourceConfig::Files {
        path,
        exported_at: exported_at
            .map(|s| {
                DateTime::parse_from_rfc3339(&s).map(|d| d.with_timezone(&Utc)).map_err(|_| {
                    Mistake::new(key("source.exported_at"), format!("'{s}' is not an RFC 3339 time such as 2025-06-30T18:00:00+03:00"))
                })
            })
            .transpose()?,
    })
}

/// An OAuth client's secret, for either CRM: `client_secret_env` or `client_secret_file`,
/// exactly one.
fn client_secret(env: Option<String>, file: Option<String>, key: &impl Fn(&str) -> String, base: &Path) -> Result<SecretSource, Mistake> {
    Ok(match (env, file) {
        (Some(name), None) => SecretSource::Env { key: key("source.client_secret_env"), name },
        (None, Some(file)) => SecretSource::File { key: key("source.client_secret_file"), path: base.join(file) },
        _ => return Err(Mistake::new(key("source.client_secret_env"), "set exactly one of client_secret_env and client_secret_file".into())),
    })
}

/// One CRM request's timeout, for either CRM: `timeout_seconds`, 5 to 600 (60 when not set).
fn request_timeout(timeout_seconds: Option<u64>, key: &impl Fn(&str) -> String) -> Result<Duration, Mistake> {
    let timeout = timeout_seconds.unwrap_or(60);
    if !(5..=600).contains(&timeout) {
        return Err(Mistake::new(key("source.timeout_seconds"), format!("must be 5 to 600, got {timeout}")));
    }
    Ok(Duration::from_secs(timeout))
}
