//! What every request goes through: `/oauth2/access_token` apart, the checks of an `/api/v4`
//! request in order (the block, the rate window, authentication, the fault queue), then its
//! route.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use super::answer::{Answer, nginx_page};
use super::ids::splitmix;
use super::query::Query;
use super::routes::route;
use super::{Fault, HAL_JSON, MockState, PROBLEM_JSON};

/// The checks of an `/api/v4` request, in order: the block, the rate window, authentication,
/// the fault queue; then the endpoint.
pub(super) async fn handle(State(state): State<Arc<MockState>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path.trim_end_matches('/') == "/oauth2/access_token" {
        state.oauth_requests.fetch_add(1, Ordering::Relaxed);
        if state.is_blocked() {
            return Answer::blocked().into_response();
        }
        return state.token_endpoint(&method, &body).into_response();
    }
    if path != "/api/v4" && !path.starts_with("/api/v4/") {
        if state.is_blocked() {
            return Answer::blocked().into_response();
        }
        return Answer::problem(StatusCode::NOT_FOUND, "Not Found").into_response();
    }

    let query = Query::parse(uri.query().unwrap_or(""));
    state.requests.fetch_add(1, Ordering::Relaxed);
    *state.path_calls.lock().unwrap().entry(path.trim_end_matches('/').to_string()).or_default() += 1;
    state.log.lock().unwrap().push((path.clone(), query.decoded()));
    if state.is_blocked() {
        return Answer::blocked().into_response();
    }
    let config = state.config.lock().unwrap().clone();
    if !state.admit(config.requests_per_second) {
        state.rejected_rate_limit.fetch_add(1, Ordering::Relaxed);
        return state.too_many(&config, config.html_429).into_response();
    }
    if !state.authorized(&headers, &config) {
        return Answer::unauthorized().into_response();
    }

    let fault = state.faults.lock().unwrap().pop_front().flatten();
    let mut truncate = false;
    match fault {
        None => {}
        Some(Fault::TooManyJson) => return state.too_many(&config, false).into_response(),
        Some(Fault::TooManyHtml) => return state.too_many(&config, true).into_response(),
        Some(Fault::ServerError) => {
            let trace = format!("{:016x}", splitmix(state.requests()));
            let body = json!({"title": "ErrInternalServer", "status": 500, "detail": "Internal server error", "trace_id": trace});
            return Answer::json(StatusCode::INTERNAL_SERVER_ERROR, PROBLEM_JSON, &body).into_response();
        }
        Some(Fault::BadGatewayHtml) => return nginx_page(StatusCode::BAD_GATEWAY).into_response(),
        Some(Fault::Unauthorized) => return Answer::unauthorized().into_response(),
        Some(Fault::Timeout(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncated) => truncate = true,
    }

    let answer = if method == Method::GET {
        let data = state.data.lock().unwrap();
        route(&data, &config, &state.base_url, &path, &query)
    } else {
        Answer::problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    };
    if truncate {
        let mut body = answer.body;
        body.truncate(body.len() / 2);
        return Answer::new(StatusCode::OK, HAL_JSON, body).into_response();
    }
    if answer.status.is_success() {
        state.served_ok.fetch_add(1, Ordering::Relaxed);
    }
    answer.into_response()
}
