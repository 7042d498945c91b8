//! List methods: paging and the keyset walk, fixture pages verbatim, filters, orders and
//! selects, and the methods' own rules (product rows, stage history, default orders).

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use crate::common::bitrix24_mock::data::{at, date_of};
use crate::common::bitrix24_mock::values::as_f64;
use crate::common::bitrix24_mock::{DEAL_FAST_START_MINUS1, DEAL_PAGE1, DEAL_PAGE2_LAST, MockBitrix24, MockConfig, MockData, fixture_json};
use super::{Api, ids};

#[tokio::test]
async fn deal_pages_count_and_keyset_walks_every_deal_once() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(120)).await;
    let api = Api::new(&mock);

    let first = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "select": ["*", "UF_*"], "start": 0})).await;
    assert_eq!(first["result"].as_array().unwrap().len(), 50);
    assert_eq!(first["total"], 120);
    assert_eq!(first["next"], 50);
    let time = &first["time"];
    for key in ["start", "finish", "duration", "processing", "date_start", "date_finish", "operating_reset_at", "operating"] {
        assert!(time.get(key).is_some(), "time.{key} in {time}");
    }
    assert!(time["date_start"].as_str().unwrap().ends_with("+03:00"));

    let last = api.ok("crm.deal.list.json", json!({"start": "100"})).await;
    assert_eq!(last["result"].as_array().unwrap().len(), 20);
    assert_eq!(last["total"], 120);
    assert!(last.get("next").is_none());

    let fast = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "start": -1})).await;
    assert_eq!(fast["result"].as_array().unwrap().len(), 50);
    assert_eq!(fast["total"], 0);
    assert!(fast.get("next").is_none());

    let mut seen = Vec::new();
    let mut last_id = 0;
    loop {
        let page = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": last_id}, "select": ["ID"], "start": -1})).await;
        let rows = page["result"].as_array().unwrap();
        assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 1), "select [ID] gives only the id");
        seen.extend(ids(&page["result"], "ID"));
        if rows.len() < 50 {
            break;
        }
        last_id = *seen.last().unwrap();
    }
    assert_eq!(seen, (1000..1120).collect::<Vec<u64>>());
    assert_eq!(mock.state.method_calls("crm.deal.list"), 6);
    assert_eq!(mock.state.served_ok(), 6);
}

#[tokio::test]
async fn fixture_pages_come_back_verbatim() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let index = |f: &str| fixture_json(f);

    let p1 = api
        .ok("crm.deal.list", json!({"select": ["*", "UF_*"], "order": {"ID": "ASC"}, "filter": {">=DATE_MODIFY": "2025-09-01T00:00:00+03:00"}, "start": 0}))
        .await;
    let f1 = index(DEAL_PAGE1);
    assert_eq!(p1["result"], f1["result"]);
    assert_eq!((&p1["total"], &p1["next"]), (&f1["total"], &f1["next"]));
    let p2 = api.ok("crm.deal.list", json!({"start": 50})).await;
    assert_eq!(p2["result"], index(DEAL_PAGE2_LAST)["result"]);
    assert!(p2.get("next").is_none());
    let fast = api.ok("crm.deal.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": 1049}, "start": -1})).await;
    assert_eq!(fast["result"], index(DEAL_FAST_START_MINUS1)["result"]);
    assert_eq!(fast["total"], 0);
    let none = api.ok("crm.deal.list", json!({"filter": {">=DATE_MODIFY": "2026-01-01T00:00:00+03:00"}})).await;
    assert_eq!((none["result"].clone(), none["total"].clone()), (json!([]), json!(0)));

    let contacts = api.ok("crm.contact.list", json!({"select": ["*", "UF_*", "PHONE", "EMAIL"]})).await;
    assert_eq!(contacts["result"], index(fixture!("crm.contact.list.json"))["result"]);
    let bare = api.ok("crm.contact.list", json!({"select": ["*", "UF_*"]})).await;
    assert!(bare["result"][0].get("PHONE").is_none() && bare["result"][0].get("EMAIL").is_none());

    let history = api.ok("crm.stagehistory.list", json!({"entityTypeId": 2, "order": {"ID": "ASC"}, "filter": {">ID": 34}})).await;
    assert_eq!(history["result"], index(fixture!("crm.stagehistory.list_deals.json"))["result"]);
    let leads = api.ok("crm.stagehistory.list", json!({"entityTypeId": "1"})).await;
    assert_eq!(leads["result"]["items"].as_array().unwrap().len(), 7);
    let stages = api.ok("crm.status.list", json!({"filter": {"ENTITY_ID": "DEAL_STAGE_1"}})).await;
    assert_eq!(stages["result"], index(fixture!("crm.status.list_DEAL_STAGE_1.json"))["result"]);
    let categories = api.ok("crm.category.list", json!({"entityTypeId": 2})).await;
    assert_eq!(ids(&categories["result"]["categories"], "id"), [0, 1]);
    let tasks = api.ok("tasks.task.list", json!({"select": ["ID", "TITLE"], "filter": {">=CHANGED_DATE": "2025-09-01T00:00:00+03:00"}, "order": {"ID": "asc"}})).await;
    assert_eq!(tasks["result"], index(fixture!("tasks.task.list.json"))["result"]);
    let calls = api.ok("voximplant.statistic.get", json!({"FILTER": {">CALL_START_DATE": "2025-09-01T00:00:00+03:00"}, "SORT": "CALL_START_DATE", "ORDER": "ASC", "start": 0})).await;
    assert_eq!(calls["result"], index(fixture!("voximplant.statistic.get.json"))["result"]);
    let users = api.ok("user.get", json!({"FILTER": {"USER_TYPE": "employee"}, "ADMIN_MODE": true})).await;
    assert_eq!(users["result"], index(fixture!("user.get.json"))["result"]);
    let currencies = api.ok("crm.currency.list", json!({})).await;
    assert_eq!(currencies["result"][0]["CURRENCY"], "RUB");
    let scope = api.ok("scope", json!({})).await;
    assert_eq!(scope["result"], json!(["crm", "user", "department", "telephony", "task"]));
}

/// B-PR-1 of docs/connectors/bitrix24-conformance.md: product rows need both `=ownerType`
/// and `=ownerId` (an array allowed), directly and inside `batch`.
#[tokio::test]
async fn conformance_product_rows_need_owner_type_and_owner_id() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    for filter in [json!({"=ownerType": "D"}), json!({"=ownerType": "D", "@ownerId": [1000]}), json!({"ownerType": "D", "ownerId": 1000}), json!({"=ownerId": [1000]}), json!({})] {
        let (status, v) = api.call("crm.item.productrow.list", json!({"filter": filter, "order": {"id": "ASC"}})).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("REQUIRED_ARG_MISSING")), "{filter}");
        assert_eq!(v["error_description"], "Required fields: =ownerType, =ownerId");
    }
    let (_, v) = api.call("batch", json!({"halt": 0, "cmd": {"a": "crm.item.productrow.list?filter[%3DownerType]=D&filter[%40ownerId][]=1000", "b": "crm.item.productrow.list?filter[%3DownerType]=D&filter[%3DownerId][]=1000&filter[%3DownerId][]=1001"}})).await;
    assert_eq!(v["result"]["result_error"]["a"]["error"], "REQUIRED_ARG_MISSING", "{v}");
    assert!(v["result"]["result"]["b"]["productRows"].is_array(), "{v}");
    assert_eq!(ids(&v["result"]["result"]["b"]["productRows"], "ownerId"), [1000, 1000, 1001]);
}

/// B-HIST-1, B-HIST-2, B-HIST-7 of docs/connectors/bitrix24-conformance.md: the stage history
/// needs a supported `entityTypeId` and ASC/DESC orders; lead rows carry status fields only.
#[tokio::test]
async fn conformance_stage_history_types_orders_and_lead_fields() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    for params in [json!({}), json!({"entityTypeId": 3}), json!({"entityTypeId": 7})] {
        let (status, v) = api.call("crm.stagehistory.list", params.clone()).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("ENTITY_TYPE_NOT_SUPPORTED")), "{params}");
    }
    let (status, v) = api.call("crm.stagehistory.list", json!({"entityTypeId": 1, "order": {"ID": "asc"}})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("INVALID_ARG_VALUE")));
    let v = api.ok("crm.stagehistory.list", json!({"entityTypeId": 1, "order": {"ID": "ASC"}})).await;
    let rows = v["result"]["items"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.get("STATUS_ID").is_some() && row.get("STATUS_SEMANTIC_ID").is_some(), "{row}");
        assert!(row.get("STAGE_ID").is_none() && row.get("CATEGORY_ID").is_none() && row.get("STAGE_SEMANTIC_ID").is_none(), "{row}");
    }
    assert!(api.ok("crm.stagehistory.list", json!({"entityTypeId": 2, "order": {"ID": "DESC"}})).await["result"]["items"][0].get("STAGE_ID").is_some());
}

/// B-LIST-6, B-ACT-2, B-TASK-1, B-CUR-1, B-CUR-2: methods' own default orders (so a keyset
/// read must name its order), the task sort keys, and currencies all at once with total 0.
#[tokio::test]
async fn conformance_default_orders_task_sort_keys_and_currencies() {
    let mock = MockBitrix24::start(MockConfig::default(), MockData::generated(60)).await;
    let api = Api::new(&mock);
    let tasks = api.ok("tasks.task.list", json!({})).await;
    let ids_of = |v: &Value, root: Option<&str>| -> Vec<u64> { let rows = match root { Some(r) => &v["result"][r], None => &v["result"] }; ids(rows, if root.is_some() { "id" } else { "ID" }) };
    let t = ids_of(&tasks, Some("tasks"));
    assert!(t.windows(2).all(|w| w[0] > w[1]), "tasks: ID descending by default: {t:?}");
    let t = ids_of(&api.ok("tasks.task.list", json!({"order": {"ID": "asc"}})).await, Some("tasks"));
    assert!(t.windows(2).all(|w| w[0] < w[1]));
    let (status, v) = api.call("tasks.task.list", json!({"order": {"NO_SUCH_FIELD": "asc"}})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("0")), "{v}");
    let acts = api.ok("crm.activity.list", json!({})).await;
    let starts: Vec<DateTime<FixedOffset>> = acts["result"].as_array().unwrap().iter().map(|a| date_of(a, "START_TIME")).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "activities: START_TIME ascending by default");
    let currencies = api.ok("crm.currency.list", json!({"filter": {"CURRENCY": "USD"}, "start": 50})).await;
    assert_eq!((currencies["result"].as_array().unwrap().len(), currencies["total"].as_u64(), currencies.get("next")), (3, Some(0), None));
}

#[tokio::test]
async fn filters_orders_and_selects() {
    let data = MockData::generated(120);
    let mock = MockBitrix24::start(MockConfig::default(), data.clone()).await;
    let api = Api::new(&mock);

    let since = "2025-09-20T00:00:00+03:00";
    let expected = data.tasks.iter().filter(|t| at(t["changedDate"].as_str().unwrap()) >= at(since)).count();
    let v = api.ok("tasks.task.list", json!({"filter": {">=CHANGED_DATE": since}, "order": {"ID": "asc"}})).await;
    assert_eq!(v["total"], expected);
    assert!(expected > 0 && expected < 120);

    let v = api.ok("voximplant.statistic.get", json!({"FILTER": {"CALL_TYPE": "2"}, "SORT": "CALL_START_DATE", "ORDER": "DESC"})).await;
    assert_eq!(v["total"], 240);
    let times: Vec<DateTime<FixedOffset>> = v["result"].as_array().unwrap().iter().map(|c| date_of(c, "CALL_START_DATE")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    let v = api.ok("crm.item.productrow.list", json!({"filter": {"=ownerType": "D", "=ownerId": [1000, "1001"]}})).await;
    assert_eq!(ids(&v["result"]["productRows"], "ownerId"), [1000, 1000, 1001]);
    let v = api.ok("crm.deal.list", json!({"filter": {"@ID": ["1003", 1005], "!=CURRENCY_ID": "USD"}, "order": {"ID": "DESC"}})).await;
    assert_eq!(ids(&v["result"], "ID"), [1005, 1003]);
    let v = api.ok("crm.deal.list", json!({"filter": {"CURRENCY_ID": "USD"}})).await;
    assert_eq!(v["total"], 8);
    let v = api.ok("crm.deal.list", json!({"filter": {">OPPORTUNITY": 300000, "<=OPPORTUNITY": "400000"}})).await;
    assert!(v["result"].as_array().unwrap().iter().all(|d| as_f64(&d["OPPORTUNITY"]).unwrap() > 300000.0));
    let v = api.ok("crm.deal.list", json!({"filter": {">ID": ""}, "start": -1})).await;
    assert_eq!(ids(&v["result"], "ID")[0], 1000);
    let v = api.ok("user.get", json!({"FILTER": {"ACTIVE": true}, "SORT": "ID", "ORDER": "ASC"})).await;
    assert_eq!(ids(&v["result"], "ID"), [1, 6, 15, 23]);
    let v = api.ok("user.get", json!({"FILTER": {"UF_DEPARTMENT": 7}})).await;
    assert_eq!(ids(&v["result"], "ID"), [6, 11, 15, 23]);
    let v = api.ok("crm.status.list", json!({"filter": {"ENTITY_ID": "SOURCE"}, "order": {"SORT": "ASC"}})).await;
    assert_eq!(v["total"], 8);
    let v = api.ok("crm.company.list", json!({"select": ["*", "PHONE"], "start": 50})).await;
    assert_eq!(v["total"], 60);
    assert!(v["result"][0]["PHONE"].is_array() && v["result"][0].get("EMAIL").is_none());
    let v = api.ok("tasks.task.list", json!({"select": ["ID"], "order": {"ID": "asc"}, "start": -1})).await;
    assert_eq!(v["result"]["tasks"][0], json!({"id": "8017"}));
}
