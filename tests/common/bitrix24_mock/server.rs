//! The server: [`MockBitrix24`] binds 127.0.0.1:0 and serves one handler for every path,
//! which reads the request, logs and counts it, applies a queued fault or the leaky bucket,
//! and hands it to the methods (or to the token server, see `oauth.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio::net::TcpListener;

use super::batch::batch_order;
use super::reply::{ErrorReply, html_page, reply, reply_error};
use super::request::{parse_body, parse_php_query};
use super::timing::unix_now;
use super::{
    ERROR_EXPIRED_TOKEN, ERROR_METHOD_NOT_FOUND, ERROR_NO_AUTH_FOUND, ERROR_OPERATION_TIME_LIMIT, ERROR_QUERY_LIMIT, Fault, MockBitrix24, MockConfig, MockData,
    MockState,
};

impl fmt::Debug for MockBitrix24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockBitrix24")
            .field("webhook_url", &self.webhook_url)
            .field("client_endpoint", &self.client_endpoint)
            .finish_non_exhaustive()
    }
}

impl MockBitrix24 {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MockConfig, data: MockData) -> MockBitrix24 {
        let code = config.webhook_code.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client_endpoint = format!("http://{addr}/rest/");
        let state = Arc::new(MockState::new(config, data, client_endpoint.clone()));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let tx = crate::common::serve_until_dropped(listener, app);
        MockBitrix24 {
            webhook_url: format!("http://{addr}/rest/1/{code}/"),
            client_endpoint,
            token_url: format!("http://{addr}/oauth/token/"),
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// The URL of `method` under the webhook.
    pub fn url(&self, method: &str) -> String {
        format!("{}{method}", self.webhook_url)
    }

    /// The OAuth URL of `method` (the token goes in `auth`).
    pub fn oauth_url(&self, method: &str) -> String {
        format!("{}{method}", self.client_endpoint)
    }
}

impl Drop for MockBitrix24 {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// How a REST request authenticates.
pub(super) enum Auth {
    /// `/rest/{user_id}/{code}/{method}`: the code in the path.
    Webhook(String),
    /// `/rest/{method}`: the access token in `auth` (body, else query), if any.
    OAuth(Option<String>),
}

async fn handle(State(state): State<Arc<MockState>>, http_method: Method, uri: Uri, body: Bytes) -> Response {
    // The token server is another host in reality: its own counter, no bucket, no faults.
    if matches!(uri.path(), "/oauth/token/" | "/oauth/token") {
        return state.token_endpoint(&http_method, &uri, &body);
    }
    let started = unix_now();
    state.requests.fetch_add(1, Ordering::Relaxed);

    // /rest/{user_id}/{code}/{method}[.json] (webhook) or /rest/{method}[.json] (OAuth)
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (rest, code, method) = match *segments.as_slice() {
        [rest, _user, code, method] => (rest, Some(code), method),
        [rest, method] => (rest, None, method),
        _ => return reply_error(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
    };
    if rest != "rest" || method.is_empty() {
        return reply_error(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND));
    }
    let method = method.strip_suffix(".json").unwrap_or(method).to_string();

    let mut params = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return reply_error(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &e)),
    };
    if let Some(query) = uri.query()
        && let (Value::Object(p), Value::Object(q)) = (&mut params, parse_php_query(query))
    {
        for (k, v) in q {
            p.entry(k).or_insert(v);
        }
    }
    let auth = match code {
        Some(code) => Auth::Webhook(code.to_string()),
        None => Auth::OAuth(params.get("auth").and_then(Value::as_str).map(String::from)),
    };
    let order = if method == "batch" { batch_order(&body) } else { None };
    state.log.lock().unwrap().push((method.clone(), params.clone()));
    MockState::count(&state.method_calls, &method);

    let fault = state.faults.lock().unwrap().pop_front();
    let admitted = state.admit(fault.is_some());
    let mut truncate = false;
    match fault {
        None if !admitted => {
            state.rejected_rate_limit.fetch_add(1, Ordering::Relaxed);
            return reply_error(ErrorReply::fixture(StatusCode::SERVICE_UNAVAILABLE, ERROR_QUERY_LIMIT));
        }
        None => {}
        Some(Fault::QueryLimit) => return reply_error(ErrorReply::fixture(StatusCode::SERVICE_UNAVAILABLE, ERROR_QUERY_LIMIT)),
        Some(Fault::OperatingLimit) => return reply_error(ErrorReply::fixture(StatusCode::TOO_MANY_REQUESTS, ERROR_OPERATION_TIME_LIMIT)),
        Some(Fault::Html(status)) => return html_page(status),
        Some(Fault::ServerError) => {
            return reply_error(ErrorReply::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "Internal server error"));
        }
        Some(Fault::ExpiredToken) => return reply_error(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_EXPIRED_TOKEN)),
        Some(Fault::Unauthorized) => return reply_error(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_NO_AUTH_FOUND)),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncated) => truncate = true,
    }

    let (status, body) = match state.serve(&auth, &method, &params, order, started) {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (e.status, e.body),
    };
    let mut bytes = serde_json::to_vec(&body).unwrap();
    if truncate {
        bytes.truncate(bytes.len() / 2);
        return reply(StatusCode::OK, bytes);
    }
    if status == StatusCode::OK {
        state.served_ok.fetch_add(1, Ordering::Relaxed);
    }
    reply(status, bytes)
}
