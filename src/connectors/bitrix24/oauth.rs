//! OAuth 2.0 for a Bitrix24 app (docs/connectors/bitrix24-conformance.md § B-AUTH): calls
//! carry the access token; on `expired_token` the client asks the token server for a new
//! pair, writes the new refresh token to the token file (atomically: a temporary file,
//! fsync, rename; or the tenant's object in the store, see `connectors::token_place`)
//! before it uses the new access token, and repeats the call. Tokens are refreshed only
//! then, never on a timer, as the vendor asks.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::Bitrix24Error;
use crate::connectors::http::{PoliteClient, Verdict};
use crate::connectors::token_place::TokenPlace;

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
    pub tokens_at: TokenPlace,
    /// The config key of the app, for messages.
    pub key: String,
}

impl OAuthApp {
    /// Reads the tokens.
    pub(super) async fn load(&self) -> Result<Tokens, Bitrix24Error> {
        let text = self.tokens_at.read().await.map_err(|e| self.config(format!("{e}; put the app's refresh token in it (salespulse keeps it up to date)")))?;
        let text = text.trim();
        let at = &self.tokens_at;
        if text.is_empty() {
            return Err(self.config(format!("{at} is empty; put the app's refresh token in it")));
        }
        match serde_json::from_str::<Tokens>(text) {
            Ok(tokens) if !tokens.refresh_token.is_empty() => Ok(tokens),
            Ok(_) => Err(self.config(format!("{at} has an empty refresh_token"))),
            Err(_) if !text.starts_with('{') && !text.contains(char::is_whitespace) => Ok(Tokens { refresh_token: text.to_string(), access_token: None, updated_at: None }),
            Err(e) => Err(self.config(format!("{at} is not readable JSON ({e})"))),
        }
    }

    /// Checks that the tokens can be replaced, before a refresh spends the old token.
    pub(super) fn check_writable(&self) -> Result<(), Bitrix24Error> {
        self.tokens_at.check_writable().map_err(|e| {
            self.config(format!("cannot write next to {} ({e}); salespulse must be able to replace it with each new refresh token", self.tokens_at))
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
        let file = self.tokens_at.to_string();
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
        self.store(&fresh).await?;
        tracing::info!(at = %self.tokens_at, "Bitrix24 OAuth tokens refreshed and saved");
        Ok(fresh)
    }

    /// Replaces the stored tokens atomically: a crash leaves the old pair or the new one.
    async fn store(&self, tokens: &Tokens) -> Result<(), Bitrix24Error> {
        let json = serde_json::to_vec_pretty(tokens).map_err(std::io::Error::other).map_err(|e| self.config(e.to_string()))?;
        self.tokens_at.write(&json).await.map_err(|e| {
            self.config(format!("the new refresh token could not be saved to {} ({e}); the old one is already spent, so authorize the app again", self.tokens_at))
        })
    }

    fn config(&self, message: String) -> Bitrix24Error {
        Bitrix24Error::Config { key: self.key.clone(), message }
    }
}
