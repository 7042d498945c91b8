//! OAuth 2.0: calls with the access token, expiry, refreshes that burn the old tokens, client
//! credentials, and `batch` in OAuth mode.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::bitrix24_mock::timing::unix_now;
use crate::common::bitrix24_mock::{
    ERROR_EXPIRED_TOKEN, ERROR_INSUFFICIENT_SCOPE, ERROR_QUERY_LIMIT, Fault, MockBitrix24, MockConfig, MockData, OAUTH_ERROR_INVALID_GRANT, OAUTH_TOKEN_REFRESH,
    fixture_json,
};
use super::{Api, ids};

/// The token endpoint's answer to a GET with these query parameters.
async fn token_get(mock: &MockBitrix24, query: &[(&str, &str)]) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http.get(&mock.token_url).query(query).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn refresh_query(refresh_token: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "refresh_token"),
        ("client_id", "local.5f3e2a.12345678"),
        ("client_secret", "oauthSecret"),
        ("refresh_token", refresh_token),
    ]
}

fn oauth_api(mock: &MockBitrix24) -> Api {
    Api { base: mock.client_endpoint.clone(), ..Api::new(mock) }
}

#[tokio::test]
async fn oauth_calls_carry_the_access_token() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(mock.client_endpoint, format!("http://{}/rest/", mock.addr));
    assert_eq!(mock.token_url, format!("http://{}/oauth/token/", mock.addr));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-1"));
    assert_eq!(mock.state.current_refresh_token(), "refresh-1");

    let v = api.ok("crm.deal.list.json", json!({"auth": "access-1", "start": 0})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 50);
    // The token in the query string works too.
    let r = api.http.get(format!("{}?auth=access-1", mock.oauth_url("scope"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let invalid = json!({"error": "invalid_token", "error_description": "The access token provided is invalid."});
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, invalid.clone()));
    assert_eq!(api.call("crm.deal.list", json!({"auth": "access-9"})).await, (401, invalid.clone()));
    // The webhook code is no access token, and the webhook ignores `auth`.
    assert_eq!(api.call("crm.deal.list", json!({"auth": "s3cr3tc0de"})).await, (401, invalid));
    Api::new(&mock).ok("crm.deal.list", json!({"auth": "nonsense"})).await;
    // Same scopes, same bucket, same faults as the webhook.
    mock.state.config.lock().unwrap().scopes = vec!["crm".into()];
    assert_eq!(api.call("user.get", json!({"auth": "access-1"})).await, (403, fixture_json(ERROR_INSUFFICIENT_SCOPE)));
    mock.state.push_faults([Fault::QueryLimit]);
    assert_eq!(api.call("crm.deal.list", json!({"auth": "access-1"})).await, (503, fixture_json(ERROR_QUERY_LIMIT)));
    assert_eq!(mock.state.requests(), 8);
    assert_eq!(mock.state.method_calls("crm.deal.list"), 6);
    assert!(mock.state.max_bucket_level() > 4.0);
    assert_eq!(mock.state.request_log()[0], ("crm.deal.list".to_string(), json!({"auth": "access-1", "start": 0})));
    assert_eq!(mock.state.token_requests(), 0);

    // No access token at start: nothing passes before a refresh.
    let config = MockConfig { oauth_access_token: None, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await.0, 401);
    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!((status, v["access_token"].as_str()), (200, Some("access-2")));
    api.ok("scope", json!({"auth": "access-2"})).await;
}

#[tokio::test]
async fn an_expired_access_token_gets_expired_token() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    api.ok("scope", json!({"auth": "access-1"})).await;
    mock.state.expire_access_token();
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-1"));

    // A zero TTL: every token is born expired, the start one and refreshed ones.
    let config = MockConfig { oauth_access_ttl: Duration::ZERO, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = oauth_api(&mock);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!((status, v["expires_in"].as_u64()), (200, Some(0)));
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
}

#[tokio::test]
async fn a_refresh_issues_new_tokens_and_burns_the_old_ones() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = oauth_api(&mock);
    mock.state.expire_access_token();
    mock.state.push_faults([Fault::ServerError]);
    let before = unix_now() as u64;

    let (status, v) = token_get(&mock, &refresh_query("refresh-1")).await;
    assert_eq!(status, 200, "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let shape = fixture_json(OAUTH_TOKEN_REFRESH);
    let mut expected: Vec<&String> = shape.as_object().unwrap().keys().collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(v["access_token"], "access-2");
    assert_eq!(v["refresh_token"], "refresh-2");
    assert_eq!(v["expires_in"], 3600);
    assert!((before + 3600..=before + 3602).contains(&v["expires"].as_u64().unwrap()));
    assert_eq!(v["client_endpoint"], json!(mock.client_endpoint));
    assert_eq!(v["scope"], "crm,user,department,telephony,task");
    assert_eq!((v["status"].as_str(), v["user_id"].as_u64()), (Some("L"), Some(1)));
    assert_eq!((v["domain"].clone(), v["member_id"].clone()), (shape["domain"].clone(), shape["member_id"].clone()));
    assert_eq!(mock.state.current_access_token().as_deref(), Some("access-2"));
    assert_eq!(mock.state.current_refresh_token(), "refresh-2");

    // The used refresh token is refused; the old access token is expired, the new one works
    // (once the fault the token endpoint left in the queue is spent).
    assert_eq!(token_get(&mock, &refresh_query("refresh-1")).await, (400, fixture_json(OAUTH_ERROR_INVALID_GRANT)));
    assert_eq!(token_get(&mock, &refresh_query("refresh-9")).await.0, 400);
    assert_eq!(mock.state.faults.lock().unwrap().len(), 1);
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await.0, 500);
    assert_eq!(api.call("scope", json!({"auth": "access-1"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    api.ok("scope", json!({"auth": "access-2"})).await;

    // POST with a form body, and the new access token retires access-2 even unexpired.
    let form = refresh_query("refresh-2");
    let r = api.http.post(&mock.token_url).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["access_token"].as_str(), v["refresh_token"].as_str()), (Some("access-3"), Some("refresh-3")));
    assert_eq!(api.call("scope", json!({"auth": "access-2"})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    api.ok("scope", json!({"auth": "access-3"})).await;

    assert_eq!(mock.state.oauth_refreshes(), 2);
    assert_eq!(mock.state.token_requests(), 4);
    // Token requests are not REST requests and do not fill the bucket.
    assert_eq!(mock.state.requests(), 5);
    assert!(mock.state.max_bucket_level() <= 5.0);
}

#[tokio::test]
async fn wrong_client_credentials_get_invalid_client() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let invalid = json!({"error": "invalid_client", "error_description": "Invalid client credentials"});
    let mut query = refresh_query("refresh-1");
    query[2].1 = "wrong";
    assert_eq!(token_get(&mock, &query).await, (400, invalid.clone()));
    let mut query = refresh_query("refresh-1");
    query[1].1 = "local.other";
    assert_eq!(token_get(&mock, &query).await, (400, invalid));
    let mut query = refresh_query("refresh-1");
    query[0].1 = "authorization_code";
    assert_eq!(token_get(&mock, &query).await, (400, fixture_json(OAUTH_ERROR_INVALID_GRANT)));
    // Nothing was refreshed: refresh-1 still works.
    assert_eq!((mock.state.oauth_refreshes(), mock.state.token_requests()), (0, 3));
    assert_eq!(token_get(&mock, &refresh_query("refresh-1")).await.0, 200);
}

#[tokio::test]
async fn batch_works_in_oauth_mode() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(120)).await;
    let api = oauth_api(&mock);
    let cmd = json!({
        "c0": "crm.deal.list?order[ID]=ASC&filter[>ID]=0&start=-1",
        "c1": "crm.deal.list?order[ID]=ASC&filter[>ID]=$result[c0][49][ID]&start=-1",
    });
    let v = api.ok("batch", json!({"auth": "access-1", "halt": 0, "cmd": cmd})).await;
    let r = &v["result"]["result"];
    assert_eq!(ids(&r["c0"], "ID")[0], 1000);
    assert_eq!(ids(&r["c1"], "ID")[0], 1050);
    assert_eq!(v["result"]["result_error"], json!([]));
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 2);
    // The token in the query string, and an expired one.
    let r = api.http.post(format!("{}?auth=access-1", mock.oauth_url("batch.json"))).json(&json!({"cmd": {"a": "scope"}})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    mock.state.expire_access_token();
    assert_eq!(api.call("batch", json!({"auth": "access-1", "cmd": cmd})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 2);
}
