//! OAuth 2.0: access tokens on `/rest/{method}` (401 `invalid_token` / `expired_token`), and
//! the token server on `/oauth/token/` with single-use refresh tokens.

use std::sync::atomic::Ordering;

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::reply::{ErrorReply, reply, reply_error};
use super::request::{parse_body, parse_php_query};
use super::state::expiry;
use super::timing::unix_now;
use super::values::text;
use super::{ERROR_EXPIRED_TOKEN, MockState, OAUTH_ERROR_INVALID_GRANT, OAUTH_TOKEN_REFRESH, fixture_json};

fn invalid_token() -> ErrorReply {
    ErrorReply::new(StatusCode::UNAUTHORIZED, "invalid_token", "The access token provided is invalid.")
}

impl MockState {
    /// The current access token, unexpired, passes; the current one expired or one a
    /// refresh replaced gets `expired_token`; anything else (or nothing) `invalid_token`.
    pub(super) fn check_access_token(&self, token: Option<&str>) -> Result<(), ErrorReply> {
        let tokens = self.oauth.lock().unwrap();
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(invalid_token());
        };
        if tokens.access.as_deref() == Some(token) {
            if Instant::now() >= tokens.access_expires_at {
                return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN));
            }
            return Ok(());
        }
        if tokens.retired_access.contains(token) {
            return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN));
        }
        Err(invalid_token())
    }

    /// `GET|POST /oauth/token/`: parameters from the query string and, for POST, the form
    /// (or JSON) body; the body wins.
    pub(super) fn token_endpoint(&self, http_method: &Method, uri: &Uri, body: &[u8]) -> Response {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        if *http_method != Method::GET && *http_method != Method::POST {
            return reply_error(ErrorReply::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "Only GET and POST are allowed"));
        }
        let mut params = if *http_method == Method::POST {
            match parse_body(body) {
                Ok(v) => v,
                Err(e) => return reply_error(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_request", &e)),
            }
        } else {
            json!({})
        };
        if let Some(query) = uri.query()
            && let (Value::Object(p), Value::Object(q)) = (&mut params, parse_php_query(query))
        {
            for (k, v) in q {
                p.entry(k).or_insert(v);
            }
        }
        match self.grant(&params) {
            Ok(v) => reply(StatusCode::OK, serde_json::to_vec(&v).unwrap()),
            Err(e) => reply_error(e),
        }
    }

    /// The token server's checks, in order: client credentials, grant type, refresh token.
    fn grant(&self, params: &Value) -> Result<Value, ErrorReply> {
        let get = |name: &str| params.get(name).and_then(text).unwrap_or_default();
        let config = self.config.lock().unwrap().clone();
        if get("client_id") != config.oauth_client_id || get("client_secret") != config.oauth_client_secret {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_client", "Invalid client credentials"));
        }
        match get("grant_type").as_str() {
            "refresh_token" => {}
            // The mock has no authorize step, so no authorization code is ever valid.
            "authorization_code" => return Err(ErrorReply::fixture(StatusCode::BAD_REQUEST, OAUTH_ERROR_INVALID_GRANT)),
            _ => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "invalid_request", "Unsupported grant_type")),
        }
        let mut tokens = self.oauth.lock().unwrap();
        if get("refresh_token") != tokens.refresh {
            return Err(ErrorReply::fixture(StatusCode::BAD_REQUEST, OAUTH_ERROR_INVALID_GRANT));
        }
        tokens.refreshes += 1;
        let n = tokens.refreshes + 1;
        if let Some(old) = tokens.access.take() {
            tokens.retired_access.insert(old);
        }
        let access = format!("access-{n}");
        let refresh = format!("refresh-{n}");
        tokens.retired_access.remove(&access);
        tokens.access = Some(access.clone());
        tokens.access_expires_at = expiry(Instant::now(), config.oauth_access_ttl);
        tokens.refresh = refresh.clone();
        drop(tokens);

        let ttl = config.oauth_access_ttl.as_secs();
        let mut v = fixture_json(OAUTH_TOKEN_REFRESH);
        v["access_token"] = json!(access);
        v["refresh_token"] = json!(refresh);
        v["client_endpoint"] = json!(self.client_endpoint);
        v["scope"] = json!(config.scopes.join(","));
        v["expires_in"] = json!(ttl);
        v["expires"] = json!(unix_now().floor() as u64 + ttl);
        Ok(v)
    }
}
