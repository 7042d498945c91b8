//! Tests of the mock itself: the fixture pages come back verbatim, and the mock keeps the
//! vendor's rules of docs/connectors/amocrm-conformance.md. The test client is here; the tests
//! are in `lists.rs` (pages, paging, filters, orders), `limits.rs` (the rate limit, the block,
//! faults, OAuth) and `records.rs` (generated accounts, and the edits tests make).

use super::*;

mod limits;
mod lists;
mod records;

/// A config whose rate limit never bites (for tests that are not about it).
fn unlimited() -> MockConfig {
    MockConfig { requests_per_second: 1_000_000, block_after_429s: 0, retry_after_seconds: 0, ..MockConfig::default() }
}

/// One answer as the test sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A test client of one mock, with the long-lived token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(mock: &MockAmoCrm) -> Api {
        Api { http: reqwest::Client::builder().no_proxy().build().unwrap(), base: mock.base_url.clone(), token: Some("long-lived-token".into()) }
    }

    fn with_token(&self, token: Option<&str>) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), token: token.map(String::from) }
    }

    /// GET `url` (absolute, or a path under the mock).
    async fn get(&self, url: &str) -> Reply {
        let url = if url.starts_with("http") { url.to_string() } else { format!("{}{url}", self.base) };
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
        let body = r.bytes().await.unwrap().to_vec();
        Reply { status, content_type, headers, body }
    }

    /// GET that must answer 200 hal+json.
    async fn ok(&self, url: &str) -> Value {
        let r = self.get(url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        assert_eq!(r.content_type.as_deref(), Some(HAL_JSON), "{url}");
        r.json()
    }

    /// `_embedded[key]` of a 200, or nothing on a 204.
    async fn rows(&self, url: &str, key: &str) -> Vec<Value> {
        let r = self.get(url).await;
        match r.status {
            204 => Vec::new(),
            200 => r.json()["_embedded"][key].as_array().unwrap().clone(),
            s => panic!("{url}: {s} {}", r.text()),
        }
    }

    async fn post_token(&self, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}/oauth2/access_token", self.base)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// The fixture's envelope `_links` pointing at the mock instead of the vendor's host.
fn rehost(links: &Value, base: &str) -> Value {
    serde_json::from_str(&links.to_string().replace(FIXTURE_HOST, base)).unwrap()
}

/// A fixture page as the mock must answer it: records verbatim, envelope links at the mock.
fn expected_page(text: &str, base: &str) -> Value {
    let mut v = fixture_json(text);
    v["_links"] = rehost(&v["_links"], base);
    v
}
