//! Tests of the mock itself: it answers as the vendor's documentation and the fixtures say
//! (the rules are in docs/connectors/bitrix24-conformance.md), over webhook and OAuth.

use serde_json::Value;

use crate::common::bitrix24_mock::MockBitrix24;
use crate::common::bitrix24_mock::values::as_f64;

mod batch;
mod generated;
mod limits_and_errors;
mod lists;
mod oauth;

/// A test client of one mock.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(mock: &MockBitrix24) -> Api {
        Api { http: reqwest::Client::builder().no_proxy().build().unwrap(), base: mock.webhook_url.clone() }
    }

    async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{method}", self.base)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method}: {e}: {}", String::from_utf8_lossy(&bytes))))
    }

    async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(method, body).await;
        assert_eq!(status, 200, "{method}: {v}");
        v
    }
}

fn ids(rows: &Value, key: &str) -> Vec<u64> {
    rows.as_array().unwrap().iter().map(|r| as_f64(&r[key]).unwrap() as u64).collect()
}
