//! OAuth 2.0 for a Bitrix24 app (docs/connectors/bitrix24-conformance.md § B-AUTH): calls
//! carry the access token; on `expired_token` the client asks the token server for a new
//! pair, writes the new refresh token to the token file (atomically: a temporary file,
//! fsync, rename) before it uses the new access token, and repeats the call. Tokens are
//! refreshed only then, never on a timer, as the vendor asks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::Bitrix24Error;
use crate::connectors::http::{PoliteClient, Verdict};
use crate::connectors::sync::{check_replaceable, replace_private_file};

/// What the token file holds. A file with just a refresh token (as first written by hand)
/// is read too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Tokens {
    pub refresh_token: String,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// An app's credentials and where its tokens live.
#[derive(Debug)]
pub(super) struct OAuthApp {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: String,
    pub token_file: PathBuf,
    /// The config key of the app, for messages.
    pub key: String,
}

impl OAuthApp {
    /// Reads the token file.
    pub(super) fn load(&self) -> Result<Tokens, Bitrix24Error> {
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| self.config(format!(
            "cannot read the token file {}: {e}; put the app's refresh token in it (salespulse keeps it up to date)",
            self.token_file.display()
        )))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(self.config(format!("the token file {} is empty; put the app's refresh token in it", self.token_file.display())));
        }
        match serde_json::from_str::<Tokens>(text) {
            Ok(tokens) if !tokens.refresh_token.is_empty() => Ok(tokens),
            Ok(_) => Err(self.config(format!("the token file {} has an empty refresh_token", self.token_file.display()))),
            Err(_) if !text.starts_with('{') && !text.contains(char::is_whitespace) => Ok(Tokens { refresh_token: text.to_string(), access_token: None, updated_at: None }),
            Err(e) => Err(self.config(format!("the token file {} is not readable JSON ({e})", self.token_file.display()))),
        }
    }

    /// Checks that the token file can be replaced, before a refresh spends the old token.
    pub(super) fn check_writable(&self) -> Result<(), Bitrix24Error> {
        check_replaceable(&self.token_file).map_err(|e| {
            self.config(format!("cannot write next to the token file {} ({e}); salespulse must be able to replace it with each new refresh token", self.token_file.display()))
        })
    }

    /// Asks the token server for a new pair and stores it; returns it.
    pub(super) async fn refresh(&self, http: &PoliteClient, tokens: &Tokens) -> Result<Tokens, Bitrix24Error> {
        self.check_writable()?;
        let mut url = self.token_url.clone();
        url.query_pairs_mut()
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("refresh_token", &tokens.refresh_token);
        let key = self.key.clone();
        let file = self.token_file.display().to_string();
        let answer: Value = http
            .send("Bitrix24 OAuth token refresh", |c| c.get(url.clone()), |answer| {
                if answer.is_html() {
                    return Verdict::Retry { reason: format!("HTTP {} with an HTML page", answer.status), after: answer.retry_after() };
                }
                let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
                let error = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str).unwrap_or("").to_string();
                match (answer.status.as_u16(), error.as_str(), parsed) {
                    (200, "", Some(v)) if v.get("access_token").is_some() && v.get("refresh_token").is_some() => Verdict::Done(v),
                    (_, "invalid_grant", _) => Verdict::Fail(format!(
                        "the refresh token in {file} is expired, revoked or already used (invalid_grant); authorize the app again and put its new refresh token in {file}"
                    )),
                    (_, "invalid_client", _) => Verdict::Fail(format!("the token server refused the app's client_id or client_secret (invalid_client); check {key}")),
                    (s, _, _) if s >= 500 || s == 429 => Verdict::Retry { reason: format!("HTTP {s} from the token server"), after: answer.retry_after() },
                    (s, e, _) => Verdict::Fail(format!("the token server answered HTTP {s} {e}: {}", answer.excerpt())),
                }
            })
            .await?;
        let text = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let fresh = Tokens { refresh_token: text("refresh_token"), access_token: Some(text("access_token")), updated_at: Some(chrono::Utc::now().to_rfc3339()) };
        self.store(&fresh)?;
        tracing::info!(file = %self.token_file.display(), "Bitrix24 OAuth tokens refreshed and saved");
        Ok(fresh)
    }

    /// Replaces the token file atomically: a crash leaves the old file or the new one.
    fn store(&self, tokens: &Tokens) -> Result<(), Bitrix24Error> {
        let json = serde_json::to_vec_pretty(tokens).map_err(std::io::Error::other);
        json.and_then(|json| replace_private_file(&self.token_file, &json)).map_err(|e| {
            self.config(format!(
                "the new refresh token could not be saved to {} ({e}); the old one is already spent, so authorize the app again",
                self.token_file.display()
            ))
        })
    }

    fn config(&self, message: String) -> Bitrix24Error {
        Bitrix24Error::Config { key: self.key.clone(), message }
    }
}
