//! The rate limit and its 429s, the block after repeated 429s, injected faults, and OAuth
//! tokens.

use std::time::Duration;

use serde_json::{Value, json};

use super::super::ids::unix_now;
use super::*;

#[tokio::test]
async fn eight_fast_requests_get_one_429_and_repeated_429s_block_the_account() {
    let mock = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = api.get("/api/v4/account").await;
        if r.status == 429 {
            assert_eq!(r.content_type.as_deref(), Some(PROBLEM_JSON));
            assert!(r.headers.get("retry-after").is_none());
            let mut expected = fixture_json(ERROR_TOO_MANY_JSON);
            expected["retry_after"] = json!(1);
            assert_eq!(r.json(), expected);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 429]);
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.max_in_window()), (1, 1, 8));
    assert!(!mock.state.is_blocked());
    // A second later the window has room again.
    mock.state.advance_clock(Duration::from_millis(1100));
    assert_eq!(api.get("/api/v4/account").await.status, 200);

    // HTML 429s; the fifth within the minute blocks everything, forever.
    let config = MockConfig { html_429: true, ..MockConfig::default() };
    let mock = MockAmoCrm::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut statuses = Vec::new();
    for _ in 0..13 {
        let r = api.get("/api/v4/leads").await;
        if r.status == 429 {
            assert_eq!((r.content_type.as_deref(), r.text()), (Some(TEXT_HTML), ERROR_TOO_MANY_HTML.to_string()));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 403]);
    assert!(mock.state.is_blocked());
    mock.state.advance_clock(Duration::from_millis(1100));
    let r = api.get("/api/v4/account").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.text()), (403, Some(TEXT_HTML), ERROR_BLOCKED_HTML.to_string()));
    assert_eq!(api.with_token(None).get("/api/v4/account").await.status, 403);
    assert_eq!(api.get("/somewhere/else").await.status, 403);
    let (status, body) = api.post_token(json!({"client_id": "amo-client-id"})).await;
    assert_eq!((status, body), (403, Value::String(ERROR_BLOCKED_HTML.into())));
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.requests()), (5, 5, 15));

    // Injected 429s count toward the block too (and are not window rejections).
    let config = MockConfig { block_after_429s: 2, ..unlimited() };
    let mock = MockAmoCrm::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson, Fault::TooManyHtml]);
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(api.get("/api/v4/users").await.status, 403);
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.is_blocked()), (0, 2, true));
}

/// A-LIMIT-2/3 of docs/connectors/amocrm-conformance.md: a JSON 429 names its wait
/// (`retry_after`); a request inside it is refused again and that 429 is earned.
#[tokio::test]
async fn conformance_a_request_inside_the_named_wait_earns_a_429() {
    let mock = MockAmoCrm::start(MockConfig { retry_after_seconds: 1, block_after_429s: 0, ..MockConfig::default() }, MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson]);
    let r = api.get("/api/v4/users").await;
    assert_eq!((r.status, r.json()["retry_after"].as_u64()), (429, Some(1)));
    assert_eq!(mock.state.earned_429(), 0, "an injected 429 is not earned");
    assert_eq!(api.get("/api/v4/users").await.status, 429);
    assert_eq!(mock.state.earned_429(), 1);
    mock.state.advance_clock(Duration::from_millis(1050));
    assert_eq!(api.get("/api/v4/users").await.status, 200);
    assert_eq!(mock.state.earned_429(), 1);
}

#[tokio::test]
async fn the_window_rolls_over_one_second() {
    let mock = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    // The window is the mock's own: admit directly, moving the mock's clock in between.
    let s = &mock.state;
    for _ in 0..7 {
        assert!(s.admit(7));
    }
    s.advance_clock(Duration::from_millis(500));
    assert!(!s.admit(7), "eight inside one second");
    s.advance_clock(Duration::from_millis(600));
    // The first seven are over a second old now, out of (t-1s, t]: two in the window.
    assert!(s.admit(7));
    assert_eq!(s.max_in_window(), 8);
}

#[tokio::test]
async fn oauth_code_then_single_use_refresh_tokens() {
    let mock = MockAmoCrm::start(unlimited(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let grant = |kind: &str, key: &str, value: &str| {
        json!({"client_id": "amo-client-id", "client_secret": "amo-client-secret", "grant_type": kind, key: value,
               "redirect_uri": "https://example.com/amo/callback"})
    };
    let invalid = fixture_json(OAUTH_ERROR_INVALID_REFRESH);
    assert_eq!(mock.state.current_access_token(), None);
    assert_eq!(mock.state.current_refresh_token(), "refresh-1");

    let (status, v) = api.post_token(grant("authorization_code", "code", "auth-code-1")).await;
    assert_eq!(status, 200, "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let shape = fixture_json(OAUTH_ACCESS_TOKEN);
    let mut expected: Vec<&String> = shape.as_object().unwrap().keys().collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!((v["token_type"].as_str(), v["expires_in"].as_u64()), (Some("Bearer"), Some(86_400)));
    assert_eq!((v["access_token"].as_str(), v["refresh_token"].as_str()), (Some("access-1"), Some("refresh-2")));
    assert!((v["server_time"].as_i64().unwrap() - unix_now()).abs() <= 2);
    // The code is single-use; the start refresh token died with the exchange.
    assert_eq!(api.post_token(grant("authorization_code", "code", "auth-code-1")).await, (400, invalid.clone()));
    assert_eq!(api.post_token(grant("refresh_token", "refresh_token", "refresh-1")).await, (400, invalid.clone()));

    let oauth = api.with_token(Some("access-1"));
    oauth.ok("/api/v4/account").await;
    let (status, v) = api.post_token(grant("refresh_token", "refresh_token", "refresh-2")).await;
    assert_eq!((status, v["access_token"].as_str(), v["refresh_token"].as_str()), (200, Some("access-2"), Some("refresh-3")));
    assert_eq!(api.post_token(grant("refresh_token", "refresh_token", "refresh-2")).await, (400, invalid.clone()));
    let r = oauth.get("/api/v4/account").await;
    assert_eq!((r.status, r.content_type.as_deref()), (401, Some(PROBLEM_JSON)));
    assert_eq!(r.json(), fixture_json(ERROR_UNAUTHORIZED));
    api.with_token(Some("access-2")).ok("/api/v4/account").await;

    // Wrong app credentials or redirect: 400, and the refresh token survives.
    let mut wrong = grant("refresh_token", "refresh_token", "refresh-3");
    wrong["client_secret"] = json!("nope");
    assert_eq!(api.post_token(wrong).await, (400, invalid.clone()));
    let mut wrong = grant("refresh_token", "refresh_token", "refresh-3");
    wrong["redirect_uri"] = json!("https://example.com/other");
    assert_eq!(api.post_token(wrong).await, (400, invalid.clone()));
    assert_eq!(api.post_token(grant("password", "refresh_token", "refresh-3")).await.0, 400);
    assert_eq!(mock.state.current_refresh_token(), "refresh-3");

    mock.state.expire_access_token();
    assert_eq!(api.with_token(Some("access-2")).get("/api/v4/account").await.status, 401);
    api.ok("/api/v4/account").await;
    assert_eq!(api.with_token(None).get("/api/v4/account").await.status, 401);
    assert_eq!(api.with_token(Some("")).get("/api/v4/account").await.status, 401);
    let (status, v) = api.post_token(grant("refresh_token", "refresh_token", "refresh-3")).await;
    assert_eq!((status, v["access_token"].as_str()), (200, Some("access-3")));
    api.with_token(Some("access-3")).ok("/api/v4/leads/pipelines").await;

    assert_eq!(mock.state.oauth_exchanges(), 3);
    assert_eq!(mock.state.current_refresh_token(), "refresh-4");
    assert_eq!(mock.state.oauth_requests(), 9);
    assert_eq!(mock.state.requests(), 8);
}

#[tokio::test]
async fn injected_faults_are_answered_in_order() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    mock.state.push_faults([Fault::TooManyJson, Fault::TooManyHtml, Fault::ServerError, Fault::BadGatewayHtml, Fault::Truncated, Fault::Unauthorized]);
    // An unauthenticated request does not spend a fault.
    assert_eq!(api.with_token(None).get("/api/v4/leads").await.status, 401);

    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.json()["retry_after"].as_u64()), (429, Some(PROBLEM_JSON), Some(0)));
    assert!(r.headers.get("retry-after").is_none());
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.text()), (429, Some(TEXT_HTML), ERROR_TOO_MANY_HTML.to_string()));
    let r = api.get("/api/v4/leads").await;
    let v = r.json();
    assert_eq!(
        (r.status, r.content_type.as_deref(), v["title"].as_str(), v["status"].as_u64()),
        (500, Some(PROBLEM_JSON), Some("ErrInternalServer"), Some(500))
    );
    assert!(v["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.content_type.as_deref()), (502, Some(TEXT_HTML)));
    assert!(r.text().contains("502 Bad Gateway") && r.text().contains("nginx"));
    let truncated = api.get("/api/v4/leads").await;
    let r = api.get("/api/v4/leads").await;
    assert_eq!((r.status, r.json()), (401, fixture_json(ERROR_UNAUTHORIZED)));
    assert!(mock.state.faults.lock().unwrap().is_empty());
    let whole = serde_json::to_vec(&api.ok("/api/v4/leads").await).unwrap();
    assert_eq!((truncated.status, truncated.content_type.as_deref()), (200, Some(HAL_JSON)));
    assert!(serde_json::from_slice::<Value>(&truncated.body).is_err());
    assert_eq!(truncated.body.len(), whole.len() / 2);
    assert_eq!(truncated.body[..], whole[..whole.len() / 2]);

    mock.state.push_faults([Fault::Timeout(Duration::from_millis(400)), Fault::Timeout(Duration::from_millis(20))]);
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
    let err = impatient.get(mock.url("/api/v4/account")).bearer_auth("long-lived-token").send().await.unwrap_err();
    assert!(err.is_timeout());
    api.ok("/api/v4/account").await;

    assert_eq!((mock.state.rejected_rate_limit(), mock.state.answered_429(), mock.state.is_blocked()), (0, 2, false));
    assert_eq!(mock.state.requests(), 10);
    // The full page, the delayed account (and, maybe, the abandoned one).
    assert!((2..=3).contains(&mock.state.served_ok()));
}
