//! OAuth 2.0 for an amoCRM integration (docs/connectors/amocrm-conformance.md §5): the access
//! token lives 24 hours and the refresh token can be exchanged once only, so each new pair is
//! written to the token file (atomically: a temporary file, fsync, rename; or the tenant's
//! object in the store, see `connectors::token_place`) before the new access token is used.
//! The access token is refreshed when it has run out (by its `expires_at`) or on a 401.
//! [`exchange_code`] turns the authorization code from the integration's redirect into the
//! first pair (`salespulse amocrm-auth`).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::AmoCrmError;
use crate::connectors::http::{PoliteClient, Verdict};
use crate::connectors::token_place::TokenPlace;

/// What the token file holds. A file with just a refresh token is read too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Tokens {
    pub refresh_token: String,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Unix seconds when the access token runs out.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Tokens {
    /// Whether the access token runs out within a minute.
    pub(super) fn expires_soon(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Utc::now().timestamp() + 60)
    }
}

/// An integration's credentials and where its tokens live.
#[derive(Debug)]
pub(super) struct OAuthApp {
    /// `https://SUBDOMAIN.amocrm.ru/oauth2/access_token`.
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub tokens_at: TokenPlace,
    /// The config key of the integration, for messages.
    pub key: String,
}

impl OAuthApp {
    /// Reads the tokens.
    pub(super) async fn load(&self) -> Result<Tokens, AmoCrmError> {
        let file = &self.tokens_at;
        let text = self.tokens_at.read().await.map_err(|e| {
            self.config(format!("{e}; run `salespulse amocrm-auth --code CODE` with the integration's authorization code to create it"))
        })?;
        let text = text.trim();
        match serde_json::from_str::<Tokens>(text) {
            Ok(tokens) if !tokens.refresh_token.is_empty() => Ok(tokens),
            Ok(_) => Err(self.config(format!("{file} has an empty refresh_token"))),
            Err(_) if !text.is_empty() && !text.starts_with('{') && !text.contains(char::is_whitespace) => Ok(Tokens { refresh_token: text.to_string(), ..Tokens::default() }),
            Err(e) => Err(self.config(format!("{file} is not readable JSON ({e}); run `salespulse amocrm-auth --code CODE` to write it again"))),
        }
    }

    /// Exchanges the refresh token for a new pair and stores it; returns it.
    pub(super) async fn refresh(&self, http: &PoliteClient, tokens: &Tokens) -> Result<Tokens, AmoCrmError> {
        let body = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "redirect_uri": self.redirect_uri,
        });
        let file = self.tokens_at.to_string();
        let fresh = self
            .exchange(http, &body, &format!(
                "the refresh token in {file} is expired (they last 3 months), revoked or already used; authorize the integration again and run `salespulse amocrm-auth --code CODE`"
            ))
            .await?;
        tracing::info!(at = %self.tokens_at, "amoCRM OAuth tokens refreshed and saved");
        Ok(fresh)
    }

    /// Exchanges an authorization code for the first pair and stores it.
    pub(super) async fn exchange_code(&self, http: &PoliteClient, code: &str) -> Result<Tokens, AmoCrmError> {
        let body = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
        });
        self.exchange(http, &body, "amoCRM refused the authorization code: it lasts 20 minutes and works once, and redirect_uri must be exactly the integration's; get a new code and run this again").await
    }

    async fn exchange(&self, http: &PoliteClient, body: &Value, refused: &str) -> Result<Tokens, AmoCrmError> {
        // The new pair must be storable before the old refresh token is spent.
        self.tokens_at.check_writable().map_err(|e| {
            self.config(format!("cannot write next to {} ({e}); salespulse must be able to replace it with each new refresh token", self.tokens_at))
        })?;
        let key = self.key.clone();
        let answer: Value = http
            .send("amoCRM OAuth token exchange", |c| c.post(self.token_url.clone()).json(body), |answer| {
                let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
                let hint = parsed.as_ref().and_then(|v| v.get("hint").or_else(|| v.get("detail"))).and_then(Value::as_str).unwrap_or("").to_string();
                match (answer.status.as_u16(), parsed) {
                    (200, Some(v)) if v.get("access_token").and_then(Value::as_str).is_some() && v.get("refresh_token").and_then(Value::as_str).is_some() => Verdict::Done(v),
                    (200, _) => Verdict::Retry { reason: "HTTP 200 without a token pair (a cut-off body?)".into(), after: None },
                    (400 | 401, _) if hint.to_lowercase().contains("client") => {
                        Verdict::Fail(format!("amoCRM refused the integration's client_id or client_secret ({hint}); check {key}"))
                    }
                    (400 | 401, _) => Verdict::Fail(format!("{refused} ({hint})")),
                    (403, _) if answer.is_html() => Verdict::Fail("amoCRM blocked this account's API access (HTTP 403 block page); ask amoCRM support to lift it".into()),
                    (s, _) if s >= 500 || s == 429 => Verdict::Retry { reason: format!("HTTP {s} from the token endpoint"), after: answer.retry_after() },
                    (s, _) => Verdict::Fail(format!("the token endpoint answered HTTP {s}: {}", answer.excerpt())),
                }
            })
            .await?;
        let text = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let expires_in = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(86_400);
        let fresh = Tokens {
            refresh_token: text("refresh_token"),
            access_token: Some(text("access_token")),
            expires_at: Some(Utc::now().timestamp() + expires_in),
            updated_at: Some(Utc::now().to_rfc3339()),
        };
        let json = serde_json::to_vec_pretty(&fresh).map_err(|e| self.config(e.to_string()))?;
        self.tokens_at.write(&json).await.map_err(|e| {
            self.config(format!("the new refresh token could not be saved to {} ({e}); the old one is already spent, so authorize the integration again", self.tokens_at))
        })?;
        Ok(fresh)
    }

    fn config(&self, message: String) -> AmoCrmError {
        AmoCrmError::Config { key: self.key.clone(), message }
    }
}
