//! What the portal refuses, and how: the leaky bucket, the operating budget, authentication,
//! method and scope errors, and each injected fault.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::bitrix24_mock::timing::unix_now;
use crate::common::bitrix24_mock::{
    ERROR_EXPIRED_TOKEN, ERROR_INSUFFICIENT_SCOPE, ERROR_METHOD_NOT_FOUND, ERROR_NO_AUTH_FOUND, ERROR_OPERATION_TIME_LIMIT, ERROR_QUERY_LIMIT, Fault, MockBitrix24,
    MockConfig, MockData, fixture_json,
};
use super::Api;

#[tokio::test]
async fn a_burst_of_sixty_overflows_the_bucket() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let mut limited = 0;
    for _ in 0..60 {
        let (status, body) = api.call("scope", json!({})).await;
        if status == 503 {
            assert_eq!(body, fixture_json(ERROR_QUERY_LIMIT));
            limited += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(limited > 0);
    assert_eq!(mock.state.rejected_rate_limit(), limited);
    assert_eq!(mock.state.requests(), 60);
    assert!(mock.state.max_bucket_level() <= 50.0);
    assert!(mock.state.max_bucket_level() > 45.0);
}

#[tokio::test]
async fn authentication_method_and_scope_errors() {
    let config = MockConfig { scopes: vec!["crm".into()], ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::fixtures()).await;
    let api = Api::new(&mock);
    let wrong = Api { http: api.http.clone(), base: mock.webhook_url.replace("s3cr3tc0de", "wrong") };
    assert_eq!(wrong.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_NO_AUTH_FOUND)));
    assert_eq!(api.call("crm.nothing.list", json!({})).await, (404, fixture_json(ERROR_METHOD_NOT_FOUND)));
    assert_eq!(api.call("user.get", json!({})).await, (403, fixture_json(ERROR_INSUFFICIENT_SCOPE)));
    let (status, body) = api.call("crm.deal.list", json!({"filter": "ID > 5"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("")));
    // An empty body is `{}`.
    let r = api.http.post(mock.url("crm.deal.list.json")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(mock.state.request_log().last().unwrap(), &("crm.deal.list".to_string(), json!({})));
}

#[tokio::test]
async fn each_fault_has_its_shape() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    mock.state.push_faults([
        Fault::QueryLimit,
        Fault::OperatingLimit,
        Fault::ServerError,
        Fault::ExpiredToken,
        Fault::Unauthorized,
    ]);
    assert_eq!(api.call("crm.deal.list", json!({})).await, (503, fixture_json(ERROR_QUERY_LIMIT)));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (429, fixture_json(ERROR_OPERATION_TIME_LIMIT)));
    let (status, body) = api.call("crm.deal.list", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (500, Some("INTERNAL_SERVER_ERROR")));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_EXPIRED_TOKEN)));
    assert_eq!(api.call("crm.deal.list", json!({})).await, (401, fixture_json(ERROR_NO_AUTH_FOUND)));

    mock.state.push_faults([Fault::Html(503), Fault::Truncated]);
    let r = api.http.post(mock.url("crm.deal.list")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<center>nginx</center>"));
    let r = api.http.post(mock.url("crm.deal.list")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.unwrap();
    assert!(!bytes.is_empty() && serde_json::from_slice::<Value>(&bytes).is_err());

    mock.state.push_faults([Fault::Delay(Duration::from_millis(400)), Fault::Delay(Duration::from_millis(20))]);
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
    let err = impatient.post(mock.url("scope")).json(&json!({})).send().await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(api.call("scope", json!({})).await.0, 200);

    // Injected faults are not the bucket's or the budget's own rejections, but each counts
    // against the bucket.
    assert_eq!((mock.state.rejected_rate_limit(), mock.state.rejected_operating()), (0, 0));
    assert_eq!(mock.state.requests(), 9);
    assert!(mock.state.max_bucket_level() > 7.0);
    // The 20 ms delay was served; the 400 ms one may still be asleep.
    assert!((1..=2).contains(&mock.state.served_ok()));
}

#[tokio::test]
async fn the_operating_budget_blocks_only_the_spent_method() {
    let config = MockConfig { operating_limit_seconds: 0.05, ..MockConfig::default() };
    let mock = MockBitrix24::start(config, MockData::generated(120)).await;
    let api = Api::new(&mock);
    let v = api.ok("crm.deal.list", json!({"start": 0})).await;
    assert_eq!(v["time"]["operating"], 0.05);
    let now = unix_now();
    let reset = v["time"]["operating_reset_at"].as_i64().unwrap() as f64;
    assert!(reset >= now + 598.0 && reset <= now + 602.0, "{reset} vs {now}");
    assert_eq!(api.call("crm.deal.list", json!({"start": 50})).await, (429, fixture_json(ERROR_OPERATION_TIME_LIMIT)));
    assert_eq!(mock.state.rejected_operating(), 1);
    api.ok("crm.lead.list", json!({})).await;
    // B-LIMIT-10: a batch is not billed; its nested calls are, each to its own method, and
    // one to a spent method fails alone with OPERATION_TIME_LIMIT in result_error.
    let v = api.ok("batch", json!({"cmd": {"a": "crm.contact.list", "b": "crm.company.list", "c": "crm.deal.list?start=100"}})).await;
    assert_eq!((mock.state.operating_used("batch"), mock.state.operating_used("crm.contact.list"), mock.state.operating_used("crm.company.list")), (0.0, 0.05, 0.05));
    assert_eq!(v["result"]["result_error"]["c"]["error"], "OPERATION_TIME_LIMIT");
    assert!(v["result"]["result"]["a"].is_array() && v["result"]["result_time"]["a"]["operating_reset_at"].as_i64().is_some());
    assert_eq!(mock.state.rejected_operating(), 2);

    mock.state.config.lock().unwrap().omit_operating = true;
    let v = api.ok("crm.activity.list", json!({})).await;
    assert!(v["time"].get("operating").is_none() && v["time"].get("operating_reset_at").is_none());
}
