//! amoCRM OAuth 2.0 on the mock's port: `POST /oauth2/access_token` trades the authorization
//! code or the single-use refresh token for a new access token and refresh token.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::answer::Answer;
use super::ids::unix_now;
use super::{JSON, MockState, OAUTH_ACCESS_TOKEN, OAUTH_ERROR_INVALID_REFRESH, fixture_json};

impl MockState {
    /// `POST /oauth2/access_token` with a JSON body (a form body is read too):
    /// `{client_id, client_secret, grant_type, code | refresh_token, redirect_uri}`.
    /// Anything wrong is the 400 fixture; codes and refresh tokens are single-use.
    pub(super) fn token_endpoint(&self, method: &Method, body: &[u8]) -> Answer {
        if *method != Method::POST {
            return Answer::problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let params: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            _ => url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect(),
        };
        let get = |name: &str| match params.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let invalid = || Answer::new(StatusCode::BAD_REQUEST, JSON, OAUTH_ERROR_INVALID_REFRESH);
        let config = self.config.lock().unwrap().clone();
        if get("client_id") != config.oauth_client_id || get("client_secret") != config.oauth_client_secret || get("redirect_uri") != config.oauth_redirect_uri
        {
            return invalid();
        }
        let mut tokens = self.oauth.lock().unwrap();
        match get("grant_type").as_str() {
            "authorization_code" => {
                let code = get("code");
                if code.is_empty() || tokens.code.as_deref() != Some(code.as_str()) {
                    return invalid();
                }
                tokens.code = None;
            }
            "refresh_token" => {
                let refresh = get("refresh_token");
                if refresh.is_empty() || refresh != tokens.refresh {
                    return invalid();
                }
            }
            _ => return invalid(),
        }
        tokens.exchanges += 1;
        let n = tokens.exchanges;
        let access = format!("access-{n}");
        let refresh = format!("refresh-{}", n + 1);
        tokens.access = Some(access.clone());
        tokens.refresh = refresh.clone();
        drop(tokens);

        let mut v = fixture_json(OAUTH_ACCESS_TOKEN);
        v["token_type"] = json!("Bearer");
        v["expires_in"] = json!(86_400);
        v["server_time"] = json!(unix_now());
        v["access_token"] = json!(access);
        v["refresh_token"] = json!(refresh);
        Answer::json(StatusCode::OK, JSON, &v)
    }
}
