//! `batch`: chained pages through `$result[…]` references, commands in the order sent, the
//! fixtures' shapes and errors; and the parsing of PHP queries and references.

use std::cmp::Ordering as CmpOrdering;

use serde_json::{Map, Value, json};

use crate::common::bitrix24_mock::batch::{batch_order, substitute_references};
use crate::common::bitrix24_mock::request::parse_php_query;
use crate::common::bitrix24_mock::values::natural_cmp;
use crate::common::bitrix24_mock::{BATCH_DEAL_PAGES, BATCH_ERROR_HALT0, MockBitrix24, MockConfig, MockData, fixture_json};
use super::{Api, ids};

#[tokio::test]
async fn batch_chains_pages_through_result_references() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(600)).await;
    let api = Api::new(&mock);

    // Two commands, the second after the first's 50th ID.
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "c0": "crm.deal.list?order[ID]=ASC&filter[%3EID]=0&select[]=*&select[]=UF_*&start=-1",
                "c1": "crm.deal.list?order%5BID%5D=ASC&filter%5B%3EID%5D=$result[c0][49][ID]&start=-1",
            }}),
        )
        .await;
    let r = &v["result"];
    assert_eq!(ids(&r["result"]["c0"], "ID"), (1000..1050).collect::<Vec<_>>());
    assert_eq!(ids(&r["result"]["c1"], "ID"), (1050..1100).collect::<Vec<_>>());
    assert_eq!(r["result_error"], json!([]));
    assert_eq!(r["result_total"], json!({"c0": 0, "c1": 0}));
    assert_eq!(r["result_next"], json!([]));
    // Each nested call is billed to its method (B-LIMIT-10), the batch itself not at all.
    assert_eq!((r["result_time"]["c0"]["operating"].as_f64(), r["result_time"]["c1"]["operating"].as_f64()), (Some(0.05), Some(0.1)));
    assert_eq!(v["time"]["operating"].as_f64(), Some(0.0));

    // Twelve commands named c0..c11 run in the order sent, not c0, c1, c10, c11, c2, ...;
    // the reference is percent-encoded in half of them.
    let mut cmd = serde_json::Map::new();
    for i in 0..12 {
        let after = if i == 0 {
            "999".to_string()
        } else if i % 2 == 0 {
            format!("$result[c{}][49][ID]", i - 1)
        } else {
            url::form_urlencoded::byte_serialize(format!("$result[c{}][49][ID]", i - 1).as_bytes()).collect()
        };
        cmd.insert(format!("c{i}"), json!(format!("crm.deal.list?order[ID]=ASC&filter[>ID]={after}&start=-1")));
    }
    let body = format!("{{\"halt\":0,\"cmd\":{{{}}}}}", (0..12).map(|i| format!("\"c{i}\":{}", cmd[&format!("c{i}")])).collect::<Vec<_>>().join(","));
    let res = api.http.post(mock.url("batch")).header("content-type", "application/json").body(body).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    let mut all = Vec::new();
    for i in 0..12 {
        all.extend(ids(&v["result"]["result"][format!("c{i}")], "ID"));
    }
    assert_eq!(all, (1000..1600).collect::<Vec<_>>());
    assert_eq!(mock.state.sub_calls("crm.deal.list"), 14);
    assert_eq!(mock.state.method_calls("batch"), 2);

    // References into a result object (tasks.task.list) and an exhausted chain: the
    // reference past the last page resolves to "" and the condition drops.
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "t0": "tasks.task.list?order[ID]=asc&filter[>ID]=0&start=-1",
                "t1": "tasks.task.list?order[ID]=asc&filter[>ID]=$result[t0][tasks][49][id]&start=-1",
                "t2": "tasks.task.list?order[ID]=asc&filter[>ID]=$result[nothing][49][id]&start=-1",
            }}),
        )
        .await;
    let r = &v["result"]["result"];
    assert_eq!(ids(&r["t0"]["tasks"], "id"), (8017..8067).collect::<Vec<_>>());
    assert_eq!(ids(&r["t1"]["tasks"], "id"), (8067..8117).collect::<Vec<_>>());
    assert_eq!(ids(&r["t2"]["tasks"], "id"), (8017..8067).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_shapes_and_errors_match_the_fixtures() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let fx = fixture_json(BATCH_DEAL_PAGES);
    let v = api.ok("batch", json!({"halt": 0, "cmd": {"p0": "crm.deal.list?start=0&order[ID]=ASC", "p1": "crm.deal.list?start=50&order[ID]=ASC"}})).await;
    for key in ["result", "result_error", "result_total", "result_next"] {
        assert_eq!(v["result"][key], fx["result"][key], "{key}");
    }
    let v = api
        .ok(
            "batch",
            json!({"halt": 0, "cmd": {
                "a": "crm.nothing.list",
                "b": "batch?cmd[x]=scope",
                "c": "scope",
                "d": ["not", "a", "string"],
            }}),
        )
        .await;
    let errors = &v["result"]["result_error"];
    assert_eq!(errors["a"]["error"], "ERROR_METHOD_NOT_FOUND");
    assert_eq!(errors["b"]["error"], "ERROR_BATCH_METHOD_NOT_ALLOWED");
    assert!(errors["d"]["error"].is_string());
    assert_eq!(v["result"]["result"]["c"], json!(["crm", "user", "department", "telephony", "task"]));

    let too_many: Map<String, Value> = (0..51).map(|i| (format!("c{i}"), json!("scope"))).collect();
    let (status, body) = api.call("batch", json!({"cmd": too_many})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("ERROR_BATCH_LENGTH_EXCEEDED")));

    // Without the crm scope: errors per command, HTTP 200, empty maps as `[]`.
    mock.state.config.lock().unwrap().scopes = vec!["user".into()];
    let halt0 = fixture_json(BATCH_ERROR_HALT0);
    let v = api.ok("batch", json!({"halt": 0, "cmd": {"p0": "crm.deal.list", "p1": "crm.lead.list"}})).await;
    for key in ["result", "result_total", "result_next", "result_time"] {
        assert_eq!(v["result"][key], halt0["result"][key], "{key}");
    }
    for p in ["p0", "p1"] {
        assert_eq!(v["result"]["result_error"][p]["error"], halt0["result"]["result_error"][p]["error"]);
    }
    let v = api.ok("batch", json!({"halt": 1, "cmd": {"p0": "crm.deal.list", "p1": "crm.lead.list"}})).await;
    assert_eq!(v["result"]["result_error"].as_object().unwrap().len(), 1);
    assert_eq!(mock.state.sub_calls("crm.lead.list"), 1);
}

#[test]
fn php_queries_and_references_parse() {
    let q = parse_php_query("order[ID]=ASC&filter%5B%3E%3DDATE_MODIFY%5D=2025-09-01T00%3A00%3A00%2B03%3A00&select[]=*&select[]=UF_*&start=-1&FILTER[@ID][]=1&FILTER[@ID][]=2&x[0]=a&x[1]=b&entityTypeId=2");
    assert_eq!(
        q,
        json!({
            "order": {"ID": "ASC"}, "filter": {">=DATE_MODIFY": "2025-09-01T00:00:00+03:00"},
            "select": ["*", "UF_*"], "start": "-1", "FILTER": {"@ID": ["1", "2"]}, "x": ["a", "b"], "entityTypeId": "2",
        })
    );
    let results: Map<String, Value> =
        [("c0".to_string(), json!([{"ID": "7"}, {"ID": "9"}])), ("t".to_string(), json!({"tasks": [{"id": 5}]}))].into_iter().collect();
    let mut v = json!({"a": "$result[c0][1][ID]", "b": "$result[t][tasks][0][id]", "c": "x$result[c0][0][ID]y", "d": "$result[c0][49][ID]", "e": "$result['c0'][0][\"ID\"]"});
    substitute_references(&mut v, &results);
    assert_eq!(v, json!({"a": "9", "b": 5, "c": "x7y", "d": "", "e": "7"}));
    assert_eq!(natural_cmp("c2", "c10"), CmpOrdering::Less);
    assert_eq!(batch_order(br#"{"cmd": {"c1": "x", "c0": "y", "c10": "z"}}"#), Some(vec!["c1".into(), "c0".into(), "c10".into()]));
}
