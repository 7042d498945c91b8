//! The amoCRM connector against the mock account of `amocrm_mock`: a full sync maps every
//! entity and never receives a 429; faults are retried into identical data; repeated 429s
//! stop the sync before the account is blocked, and a block stops it at once; an incremental
//! sync after edits, moves and deletions equals a fresh full sync, with and without the
//! account's API filter; OAuth tokens are refreshed once and saved.

use std::collections::BTreeMap;
use std::time::Duration;

use salespulse_config::config::{SecretSource, SourceConfig};
use salespulse::connectors::amocrm;
use salespulse_config::config::sources::amocrm::{AmoCrmAuth, AmoCrmConfig, OAuthConfig};
use salespulse_config::config::sources::RateLimit;
use salespulse::model::Table;
use salespulse::refresh::RefreshReport;
use salespulse::snapshot::Store;
use serde_json::json;

use crate::common::amocrm_mock::{Fault, MockAmoCrm, MockConfig, MockData};
use crate::bitrix24::{one, rows};

pub(crate) fn config(base_url: &str) -> AmoCrmConfig {
    AmoCrmConfig {
        base_url: base_url.into(),
        base_key: "tenants[0] (acme).source.base_url".into(),
        auth: AmoCrmAuth::LongLived(SecretSource::Inline { key: "tenants[0] (acme).source.token".into(), value: "long-lived-token".into() }),
        rate: RateLimit { requests_per_second: 6.5, burst: 1 },
        overlap: Duration::from_secs(600),
        full_sync_every: Duration::from_secs(7 * 86400),
        timeout: Duration::from_secs(3),
        currency: "RUB".into(),
    }
}

async fn refresh(store: &Store, cfg: AmoCrmConfig) -> Result<RefreshReport, String> {
    crate::common::refresh_crm(store, SourceConfig::AmoCrm(Box::new(cfg))).await
}

fn new_store() -> (tempfile::TempDir, Store) {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    (root, store)
}

#[tokio::test]
async fn full_sync_of_the_fixtures_maps_every_entity() {
    let account = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let (_root, store) = new_store();
    let report = refresh(&store, config(&account.base_url)).await.unwrap();
    let m = &report.report.manifest;
    assert_eq!(m.tables["deals"].rows, 62);
    assert_eq!(m.tables["managers"].rows, 4);
    assert_eq!(m.tables["departments"].rows, 3);
    assert_eq!(m.tables["calls"].rows, 4);
    assert_eq!(m.tables["loss_reasons"].rows, 3);
    assert!(m.source.starts_with("amocrm: 127.0.0.1:"), "{}", m.source);

    // Won and lost stages exist in every pipeline, keyed by pipeline.
    let stages = rows(&store, m, Table::Stages, &[]).await;
    assert!(stages.contains(&"7712345:142|7712345|Успешно реализовано|10000|won".to_string()), "{stages:#?}");
    assert!(stages.iter().filter(|s| s.contains(":143|")).count() >= 2);
    // A won deal, then a lost one with its reason; amounts in the account's currency.
    let deals = rows(&store, m, Table::Deals, &["custom_fields"]).await;
    let won = one(&deals, "28100042|");
    assert!(won.contains("|7712345:142|won|350000.00|RUB|350000.00|5701103|41200018|51300000|"), "{won}");
    assert!(won.contains("2025-09-03T01:29:49Z"), "closed_at from Unix seconds, UTC: {won}");
    let lost = one(&deals, "28100014|");
    assert!(lost.contains("|lost|") && lost.contains("|4203748|"), "{lost}");
    // Calls: docs/udfs.md §2.6 statuses; talk time only when answered; the phone only as a hash.
    let calls = rows(&store, m, Table::Calls, &["phone_hash"]).await;
    assert!(one(&calls, "76787983|").starts_with("76787983|5701103|outbound|answered|4|2025-09-02T12:49:06Z|64|28100042|"), "{calls:#?}");
    assert!(one(&calls, "76787985|").starts_with("76787985|5701101|inbound|missed|6|2025-09-01T06:46:06Z|0|28100000|"), "{calls:#?}");
    assert!(calls.iter().any(|c| c.contains("|busy|7|") && c.contains("|0|")), "{calls:#?}");
    let hashes = rows(&store, m, Table::Calls, &[]).await;
    assert!(!hashes.iter().any(|c| c.contains("79165550000")), "no phone number is stored");
    // Stage history: the creation row and one row per status event.
    let history = rows(&store, m, Table::DealStageHistory, &[]).await;
    assert!(history.iter().any(|h| h.starts_with("28100042|7712345|7712345:142|2025-09-03T01:29:49Z|5701103")), "{history:#?}");
    // Contacts keep custom fields but never their phones.
    let contacts = rows(&store, m, Table::Contacts, &[]).await;
    assert!(!contacts.iter().any(|c| c.contains("+7916")), "{contacts:#?}");

    assert_eq!(account.state.answered_429(), 0);
    assert!(account.state.max_in_window() <= 7);
    let sync = report.sync.unwrap();
    assert!(!sync.incremental);
    assert_eq!(sync.requests, account.state.requests());
    assert_eq!(sync.retries, 0);
}

#[tokio::test]
async fn a_generated_account_maps_in_full_without_a_single_429() {
    let data = MockData::generated(600);
    let counts: BTreeMap<&str, usize> = [
        ("deals", data.leads.len()),
        ("contacts", data.contacts.len()),
        ("companies", data.companies.len()),
        ("tasks", data.tasks.len()),
        ("activities", data.notes.len()),
        ("calls", data.notes.iter().filter(|(_, n)| matches!(n["note_type"].as_str(), Some("call_in" | "call_out"))).count()),
        ("managers", data.users.len()),
    ]
    .into();
    let account = MockAmoCrm::start(MockConfig::default(), data).await;
    let (_root, store) = new_store();
    let report = refresh(&store, config(&account.base_url)).await.unwrap();
    let m = &report.report.manifest;
    let oracle = account.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, m, &oracle).await;
    for (table, n) in &counts {
        assert_eq!(m.tables[*table].rows as usize, *n, "{table}");
    }
    assert!(m.tables["deal_stage_history"].rows as usize > counts["deals"], "a creation row per deal and its moves");
    assert!(m.tables["leads"].rows > 0 && m.tables["leads"].rows as usize <= counts["deals"]);
    // Products on deals, named and priced by the catalog; sources named, with channels.
    let data = account.state.data.lock().unwrap().clone();
    let links: usize = data.leads.iter().map(|l| l["_embedded"]["catalog_elements"].as_array().map_or(0, Vec::len)).sum();
    assert!(links > 0);
    assert_eq!(m.tables["deal_items"].rows as usize, links);
    let items = rows(&store, m, Table::DealItems, &[]).await;
    assert!(items.iter().all(|r| r.contains("|Товар ")), "{:?}", &items[..3]);
    // A link naming a price field (price_id) is priced by that field, others by PRICE.
    let priced = |lead: &serde_json::Value, link: &serde_json::Value| {
        let element = data.catalog_elements.iter().find(|e| e["id"] == link["id"]).unwrap();
        let field = if link["metadata"]["price_id"].is_null() { 3002 } else { 3003 };
        let value = element["custom_fields_values"].as_array().unwrap().iter().find(|f| f["field_id"] == field).unwrap()["values"][0]["value"].as_str().unwrap().to_string();
        let quantity = link["metadata"]["quantity"].as_f64().unwrap();
        format!("{}|{}:{}|{}|{}|{quantity:?}|{value}.00|", lead["id"], lead["id"], link["id"], link["id"], element["name"].as_str().unwrap())
    };
    let mut special = 0;
    for lead in &data.leads {
        for link in lead["_embedded"]["catalog_elements"].as_array().into_iter().flatten() {
            let row = one(&items, &format!("{}|{}:{}|", lead["id"], lead["id"], link["id"]));
            assert_eq!(row, priced(lead, link), "the product row of deal {}", lead["id"]);
            special += usize::from(!link["metadata"]["price_id"].is_null());
        }
    }
    assert!(special > 0, "some links name a price field");
    let sources = rows(&store, m, Table::Sources, &[]).await;
    assert!(sources.iter().any(|r| r.starts_with("1002|WhatsApp|messenger|true")), "{sources:?}");
    assert!(sources.iter().any(|r| r.starts_with("utm:yandex:cpc|yandex / cpc|ads|true")), "{sources:?}");
    assert_eq!(sources.iter().filter(|r| r.contains("|other|")).collect::<Vec<_>>(), ["1004|API|other|false"], "only the API source has no channel");
    assert_eq!(account.state.answered_429(), 0, "the connector's bucket keeps it under the account's limit");
    assert!(account.state.max_in_window() <= 7);
    // 250 rows a page: 600 deals take 3 pages. Page 1 comes alone, then pages 2 and 3 are
    // asked together (the window doubles while pages come back full); page 3 is short.
    let pages: Vec<String> = account.state.request_log().into_iter().filter(|(p, _)| p == "/api/v4/leads").map(|(_, q)| q).collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(pages.iter().all(|q| q.contains("limit=250")), "{pages:#?}");
}

#[tokio::test]
async fn faults_are_retried_into_identical_data() {
    let data = MockData::generated(200);
    let clean = MockAmoCrm::start(MockConfig::default(), data.clone()).await;
    let (_clean_root, clean_store) = new_store();
    let expected = refresh(&clean_store, config(&clean.base_url)).await.unwrap();

    for html_429 in [false, true] {
        let account = MockAmoCrm::start(MockConfig { html_429, ..MockConfig::default() }, data.clone()).await;
        // One fault every fourth request, so each meets another request (one request meeting
        // all six backs off for a minute).
        let faults = [Fault::TooManyJson, Fault::ServerError, Fault::TooManyHtml, Fault::BadGatewayHtml, Fault::Truncated, Fault::Timeout(Duration::from_secs(4))];
        account.state.push_fault_plan(faults.into_iter().flat_map(|f| [Some(f), None, None, None]));
        let (_root, store) = new_store();
        let report = refresh(&store, config(&account.base_url)).await.unwrap();
        for table in amocrm::PREVIOUS_TABLES {
            let a = rows(&store, &report.report.manifest, *table, &["phone_hash"]).await;
            let b = rows(&clean_store, &expected.report.manifest, *table, &["phone_hash"]).await;
            assert_eq!(a, b, "{}", table.name());
        }
        let sync = report.sync.unwrap();
        assert_eq!(sync.retries, 6, "{:?}", sync.answers);
        assert!(!account.state.is_blocked());
        assert_eq!(account.state.answered_429(), 2, "only the injected ones");
    }
}

/// A run of 429s (each naming a wait) among 503s, timeouts and cut bodies, about one request
/// in twelve: every wait is waited out by the whole client, nothing is sent inside one, and
/// the sync completes with the same rows (A-LIMIT-2, A-LIMIT-3 of the conformance document).
#[tokio::test]
async fn a_run_of_429s_is_waited_out_and_never_earned() {
    let data = MockData::generated(300);
    let clean = MockAmoCrm::start(MockConfig::default(), data.clone()).await;
    let (_clean_root, clean_store) = new_store();
    let expected = refresh(&clean_store, config(&clean.base_url)).await.unwrap();

    let account = MockAmoCrm::start(MockConfig { block_after_429s: 0, ..MockConfig::default() }, data).await;
    // Three 429s in a row first, then a fault every twelfth request.
    let mut faults = vec![None, Some(Fault::TooManyJson), Some(Fault::TooManyJson), Some(Fault::TooManyHtml)];
    for fault in [Fault::ServerError, Fault::Truncated, Fault::TooManyJson, Fault::Timeout(Duration::from_secs(4)), Fault::BadGatewayHtml] {
        faults.extend(std::iter::repeat_n(None, 11));
        faults.push(Some(fault));
    }
    account.state.push_fault_plan(faults);
    let (_root, store) = new_store();
    let report = refresh(&store, config(&account.base_url)).await.unwrap();
    let oracle = account.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, &report.report.manifest, &oracle).await;
    for table in amocrm::PREVIOUS_TABLES {
        let a = rows(&store, &report.report.manifest, *table, &["phone_hash"]).await;
        let b = rows(&clean_store, &expected.report.manifest, *table, &["phone_hash"]).await;
        assert_eq!(a, b, "{}", table.name());
    }
    assert_eq!(account.state.earned_429(), 0, "no request over the rate or inside a named wait");
    assert!(account.state.answered_429() >= 3, "the injected ones were met: {}", account.state.answered_429());
}

/// More 429s in a row than a request has attempts: each is waited out, none is counted as a
/// failed attempt, and the sync completes (only the block page stops it).
#[tokio::test]
async fn nine_429s_in_a_row_are_waited_out() {
    let account = MockAmoCrm::start(MockConfig { block_after_429s: 0, ..MockConfig::default() }, MockData::fixtures()).await;
    account.state.push_faults(std::iter::repeat_n(Fault::TooManyJson, 9));
    let (_root, store) = new_store();
    let report = refresh(&store, config(&account.base_url)).await.unwrap();
    assert_eq!(report.report.manifest.tables["deals"].rows, 62);
    assert_eq!((account.state.answered_429(), account.state.earned_429()), (9, 0));
}

#[tokio::test]
async fn a_block_stops_the_sync_at_once_and_is_never_retried() {
    let account = MockAmoCrm::start(MockConfig { block_after_429s: 1, ..MockConfig::default() }, MockData::generated(100)).await;
    account.state.push_faults([Fault::TooManyJson]);
    let (_root, store) = new_store();
    let e = refresh(&store, config(&account.base_url)).await.unwrap_err();
    assert!(e.contains("blocked") && e.contains("support"), "{e}");
    assert!(account.state.is_blocked());
    // The lists in flight when the block came each saw it once, and none retried: no request
    // was sent more often than a whole sync of the same account sends it (a retry asks for
    // the same page again). The pull has no task of its own that outlives `refresh`, so its
    // log is complete when `refresh` returns: nothing to wait for.
    let log = account.state.request_log();
    let blocked_answers = log.len() as u64 - account.state.served_ok() - 1;
    assert!(blocked_answers <= 12, "{blocked_answers} requests met the block");
    let whole = MockAmoCrm::start(MockConfig::default(), MockData::generated(100)).await;
    let (_root, whole_store) = new_store();
    refresh(&whole_store, config(&whole.base_url)).await.unwrap();
    let times = |log: &[(String, String)]| {
        let mut n = std::collections::HashMap::<(String, String), usize>::new();
        for request in log {
            *n.entry(request.clone()).or_default() += 1;
        }
        n
    };
    assert_eq!(whole.state.answered_429(), 0, "the whole sync to compare with met no 429");
    let in_whole_sync = times(&whole.state.request_log());
    // The request that met the 429 (the first: the account, read before any list) is asked
    // once more after the wait it names: a JSON 429 does not say the account is blocked,
    // only the 403 page that answers the retry does.
    let met_the_429 = log.first().cloned();
    assert_eq!(met_the_429.as_ref().map(|(path, _)| path.as_str()), Some("/api/v4/account"));
    for (request, n) in times(&log) {
        let allowed = in_whole_sync.get(&request).copied().unwrap_or(0).max(1) + usize::from(Some(&request) == met_the_429.as_ref());
        assert!(n <= allowed, "asked {n} times (a whole sync and the retry of the 429 allow {allowed}): {request:?}");
    }
}

#[tokio::test]
async fn refusals_name_what_to_fix() {
    let account = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let (_root, store) = new_store();
    let mut cfg = config(&account.base_url);
    cfg.auth = AmoCrmAuth::LongLived(SecretSource::Inline { key: "tenants[0] (acme).source.token".into(), value: "wrong".into() });
    let e = refresh(&store, cfg).await.unwrap_err();
    assert!(e.contains("401") && e.contains("tenants[0] (acme).source.token") && !e.contains("wrong"), "{e}");
    assert_eq!(account.state.requests(), 1, "a refused token is not retried");
    let e = refresh(&store, config("ftp://acme.amocrm.ru")).await.unwrap_err();
    assert!(e.contains("tenants[0] (acme).source.base_url: must be an https:// address"), "{e}");
}

thread_local! {
    /// The deal `incremental_equals_full` deletes before the full sync and restores after.
    static RESTORED_LEAD: std::cell::RefCell<i64> = const { std::cell::RefCell::new(0) };
}

/// The account changes after a full sync: an edit, moves to won and lost (one deal twice), a
/// new request with a call that moves on, a deleted deal (its notes and tasks go with it), a
/// deleted contact, new calls and notes on existing deals (one visible late), a new, a
/// completed and a deleted task, and a deal restored from the trash.
fn change_the_account(account: &MockAmoCrm) {
    let at = chrono::Utc::now().timestamp();
    let data = account.state.data.lock().unwrap().clone();
    let open: Vec<i64> = data.leads.iter().filter(|l| l["status_id"] != 142 && l["status_id"] != 143).filter_map(|l| l["id"].as_i64()).collect();
    let pipeline = data.leads.iter().find(|l| l["id"] == open[1]).unwrap()["pipeline_id"].as_i64().unwrap();
    account.state.edit_lead(open[0], at, |l| l["price"] = json!(777_000));
    account.state.move_lead(open[1], pipeline, 142, at, data.users[1]["id"].as_i64().unwrap());
    let lost_pipeline = data.leads.iter().find(|l| l["id"] == open[2]).unwrap()["pipeline_id"].as_i64().unwrap();
    account.state.move_lead(open[2], lost_pipeline, 143, at, data.users[1]["id"].as_i64().unwrap());
    let mut fresh = data.leads.iter().find(|l| l["id"] == open[3]).unwrap().clone();
    let new_id = data.leads.iter().filter_map(|l| l["id"].as_i64()).max().unwrap() + 1;
    let unsorted = data.pipelines[0]["_embedded"]["statuses"].as_array().unwrap().iter().find(|s| s["type"] == 1).unwrap()["id"].clone();
    fresh["id"] = json!(new_id);
    fresh["pipeline_id"] = data.pipelines[0]["id"].clone();
    fresh["status_id"] = unsorted;
    fresh["closed_at"] = json!(null);
    account.state.add_lead(fresh, at);
    let mut call = data.notes.iter().find(|(e, n)| e == "leads" && n["note_type"] == "call_in").unwrap().1.clone();
    call["id"] = json!(data.notes.iter().filter_map(|(_, n)| n["id"].as_i64()).max().unwrap() + 1);
    call["entity_id"] = json!(new_id);
    account.state.add_note("leads", call, at);
    account.state.delete_lead(open[4], at);
    let contact = data.contacts[5]["id"].as_i64().unwrap();
    account.state.delete_contact(contact, at);

    // A deal moves twice (its history grows by two rows in order); the new deal moves on.
    let second_stage = |pipeline: i64| -> i64 {
        let p = data.pipelines.iter().find(|p| p["id"] == pipeline).unwrap();
        let mut open: Vec<&serde_json::Value> = p["_embedded"]["statuses"].as_array().unwrap().iter().filter(|s| s["id"] != 142 && s["id"] != 143).collect();
        open.sort_by_key(|s| s["sort"].as_i64());
        open[2]["id"].as_i64().unwrap()
    };
    let p5 = data.leads.iter().find(|l| l["id"] == open[5]).unwrap()["pipeline_id"].as_i64().unwrap();
    account.state.move_lead(open[5], p5, second_stage(p5), at - 30, data.users[0]["id"].as_i64().unwrap());
    account.state.move_lead(open[5], p5, 142, at - 10, data.users[0]["id"].as_i64().unwrap());
    let p0 = data.pipelines[0]["id"].as_i64().unwrap();
    account.state.move_lead(new_id, p0, second_stage(p0), at, data.users[0]["id"].as_i64().unwrap());
    // New calls and notes on existing deals, one of them written a little before the last
    // sync but visible only now (the API shows some writes late).
    let next_note = data.notes.iter().filter_map(|(_, n)| n["id"].as_i64()).max().unwrap() + 10;
    for (k, (kind, late)) in [("call_out", false), ("call_in", true), ("common", false)].into_iter().enumerate() {
        let mut note = data.notes.iter().find(|(e, n)| e == "leads" && n["note_type"] == kind).unwrap().1.clone();
        note["id"] = json!(next_note + k as i64);
        note["entity_id"] = json!(open[6 + k]);
        account.state.add_note("leads", note, if late { at - 240 } else { at });
    }
    // Tasks: a new one, a completed one, a deleted one.
    let next_task = data.tasks.iter().filter_map(|t| t["id"].as_i64()).max().unwrap() + 1;
    let mut task = data.tasks[0].clone();
    task["id"] = json!(next_task);
    task["entity_id"] = json!(open[9]);
    task["entity_type"] = json!("leads");
    task["is_completed"] = json!(false);
    account.state.add_task(task, at);
    let done = data.tasks.iter().find(|t| t["is_completed"] == json!(false) && t["entity_id"] != json!(open[4])).unwrap()["id"].as_i64().unwrap();
    account.state.edit_task(done, at, |t| {
        t["is_completed"] = json!(true);
        t["result"] = json!({"text": "done"});
    });
    let gone = data.tasks.iter().rev().find(|t| t["id"] != json!(done) && t["entity_id"] != json!(open[4])).unwrap()["id"].as_i64().unwrap();
    account.state.delete_task(gone, at);
    // A product is linked to one deal and unlinked from another, without touching either.
    account.state.link_product(open[10], 900_007, Some(3.0), at);
    let with_products = data.leads.iter().find(|l| l["_embedded"]["catalog_elements"].as_array().is_some_and(|a| !a.is_empty()) && l["id"] != json!(open[4]) && l["id"] != json!(open[10])).unwrap();
    let unlinked = with_products["_embedded"]["catalog_elements"][0]["id"].as_i64().unwrap();
    account.state.link_product(with_products["id"].as_i64().unwrap(), unlinked, None, at);
    // A deal deleted before the full sync comes back from the trash, unchanged.
    account.state.restore_lead(RESTORED_LEAD.with(|r| *r.borrow()), at);
}

async fn incremental_equals_full(api_filter_enabled: bool) {
    let account = MockAmoCrm::start(MockConfig { api_filter_enabled, ..MockConfig::default() }, MockData::generated(300)).await;
    let (_root, store) = new_store();
    // A deal in the trash at the full sync, restored later.
    let trashed = account.state.data.lock().unwrap().leads[20]["id"].as_i64().unwrap();
    account.state.delete_lead(trashed, chrono::Utc::now().timestamp() - 3600);
    RESTORED_LEAD.with(|r| *r.borrow_mut() = trashed);
    let full = refresh(&store, config(&account.base_url)).await.unwrap();
    let full_requests = full.sync.unwrap().requests;
    change_the_account(&account);
    let before = account.state.requests();
    let incremental = refresh(&store, config(&account.base_url)).await.unwrap();
    let oracle = account.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, &incremental.report.manifest, &oracle).await;
    let sync = incremental.sync.as_ref().unwrap();
    assert!(sync.incremental);
    assert!(sync.deleted >= 2, "a deal and a contact, and what hangs on them: {}", sync.deleted);
    assert!(sync.records["deals"] < 10, "only changed deals are read: {:?}", sync.records);
    assert_eq!(account.state.requests() - before, sync.requests);
    assert!(sync.requests < full_requests, "{} vs {full_requests}", sync.requests);
    let filtered = account.state.request_log().iter().skip(before as usize).any(|(p, q)| p == "/api/v4/leads" && q.contains("filter[updated_at][from]"));
    assert_eq!(filtered, api_filter_enabled, "the paid filter is used only where the account has it");

    let (_fresh_root, fresh_store) = new_store();
    let fresh = refresh(&fresh_store, config(&account.base_url)).await.unwrap();
    for table in amocrm::PREVIOUS_TABLES {
        let a = rows(&store, &incremental.report.manifest, *table, &["phone_hash"]).await;
        let b = rows(&fresh_store, &fresh.report.manifest, *table, &["phone_hash"]).await;
        assert_eq!(a, b, "{} (API filter {api_filter_enabled})", table.name());
    }
    assert_eq!(full.report.manifest.sync_cursors["amocrm.phone_key"], incremental.report.manifest.sync_cursors["amocrm.phone_key"]);
    assert_eq!(account.state.answered_429(), 0);
    let deals = rows(&store, &incremental.report.manifest, Table::Deals, &["custom_fields"]).await;
    assert!(deals.iter().any(|d| d.starts_with(&format!("{trashed}|"))), "the restored deal is back");
}

#[tokio::test]
async fn incremental_sync_equals_a_full_sync_with_the_api_filter() {
    incremental_equals_full(true).await;
}

#[tokio::test]
async fn incremental_sync_equals_a_full_sync_without_the_api_filter() {
    incremental_equals_full(false).await;
}

fn oauth_config(base_url: &str, token_file: &std::path::Path) -> AmoCrmConfig {
    // SAFETY: the variable is set before any thread reads it and only ever to this value.
    unsafe { std::env::set_var("SALESPULSE_TEST_AMO_SECRET", "amo-client-secret") };
    AmoCrmConfig {
        auth: AmoCrmAuth::OAuth(OAuthConfig {
            client_id: "amo-client-id".into(),
            client_secret: SecretSource::Env { key: "tenants[0] (acme).source.client_secret_env".into(), name: "SALESPULSE_TEST_AMO_SECRET".into() },
            redirect_uri: "https://example.com/amo/callback".into(),
            token_file: token_file.to_path_buf(),
            key: "tenants[0] (acme).source (OAuth integration)".into(),
        }),
        ..config(base_url)
    }
}

#[tokio::test]
async fn oauth_codes_and_single_use_refresh_tokens() {
    let account = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("amo-tokens.json");
    let cfg = oauth_config(&account.base_url, &token_file);
    // Before authorization: the message says how to authorize.
    let (_root, store) = new_store();
    let e = refresh(&store, cfg.clone()).await.unwrap_err();
    assert!(e.contains("amocrm-auth --code"), "{e}");
    // The code from the redirect gives the first pair; a code works once.
    amocrm::authorize(&cfg, &salespulse::connectors::TokenHome::Files, "auth-code-1").await.unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"], account.state.current_refresh_token());
    let e = amocrm::authorize(&cfg, &salespulse::connectors::TokenHome::Files, "auth-code-1").await.unwrap_err().to_string();
    assert!(e.contains("authorization code") && e.contains("20 minutes"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A sync uses the saved access token; when it has expired, one refresh, saved first.
    refresh(&store, cfg.clone()).await.unwrap();
    let exchanges = account.state.oauth_exchanges();
    account.state.expire_access_token();
    refresh(&store, cfg.clone()).await.unwrap();
    assert_eq!(account.state.oauth_exchanges(), exchanges + 1);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"], account.state.current_refresh_token());

    // A spent refresh token (an old copy of the file) stops the sync with what to do.
    let mut old = saved.clone();
    old["refresh_token"] = json!("refresh-1");
    old["access_token"] = json!(null);
    std::fs::write(&token_file, old.to_string()).unwrap();
    let e = refresh(&store, cfg).await.unwrap_err();
    assert!(e.contains("amo-tokens.json") && e.contains("already used") && e.contains("amocrm-auth"), "{e}");
}

/// A fleet's refreshers on two machines (`storage.oauth_tokens = "store"`): each has its own
/// copy of the first token file, but every new pair goes to the store under the tenant's
/// lease, so the second machine uses the pair the first one wrote and never a refresh token
/// already spent. With the token files (the default), the second machine's copy is stale.
#[tokio::test]
async fn a_fleet_keeps_single_use_refresh_tokens_in_the_store() {
    use salespulse::refresh::{RefreshOptions, refresh_tenant_with};
    let account = MockAmoCrm::start(MockConfig::default(), MockData::fixtures()).await;
    let dir = tempfile::tempdir().unwrap();
    let (first_machine, second_machine) = (dir.path().join("one.json"), dir.path().join("two.json"));
    amocrm::authorize(&oauth_config(&account.base_url, &first_machine), &salespulse::connectors::TokenHome::Files, "auth-code-1").await.unwrap();
    std::fs::copy(&first_machine, &second_machine).unwrap();
    let (_root, store) = new_store();
    let refresh_on = |machine: &std::path::Path, holder: &str, in_store: bool| {
        let tenant = salespulse_config::config::TenantConfig {
            source: SourceConfig::AmoCrm(Box::new(oauth_config(&account.base_url, machine))),
            ..crate::common::tenant("acme")
        };
        let options = RefreshOptions { holder: holder.into(), tokens_in_store: in_store, ..RefreshOptions::alone(3) };
        let store = store.clone();
        async move {
            let source = salespulse::refresh::source_of(&tenant);
            refresh_tenant_with(&store, &tenant, source, &options, salespulse::connectors::progress::silent(), None).await.map_err(|e| e.to_string())
        }
    };
    account.state.expire_access_token();
    refresh_on(&first_machine, "refresher-1", true).await.unwrap();
    let stored = |store: &Store| {
        let path = store.oauth_tokens_path("acme");
        let store = store.clone();
        async move {
            use object_store::ObjectStoreExt;
            let bytes = store.object_store().get(&path).await.unwrap().bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    assert_eq!(stored(&store).await["refresh_token"], account.state.current_refresh_token(), "the new pair went to the store");
    let seed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&first_machine).unwrap()).unwrap();
    assert_ne!(seed["refresh_token"], account.state.current_refresh_token(), "the machine's file is only the first pair");

    // The second machine's file holds the spent token; the store holds the live one.
    account.state.expire_access_token();
    let exchanges = account.state.oauth_exchanges();
    refresh_on(&second_machine, "refresher-2", true).await.unwrap();
    assert_eq!(account.state.oauth_exchanges(), exchanges + 1);
    assert_eq!(stored(&store).await["refresh_token"], account.state.current_refresh_token());

    // Without the store, the second machine's copy is spent: the sync stops.
    account.state.expire_access_token();
    std::fs::copy(&first_machine, &second_machine).unwrap();
    let e = refresh_on(&second_machine, "refresher-2", false).await.unwrap_err();
    assert!(e.contains("already used"), "{e}");
}

/// The measure: rows per second of an initial sync against the vendor's limit
/// (7 requests in any second), with the connector's defaults (6.5 requests/s). The ceiling
/// is 7 requests/s x 250 rows = 1,750 rows/s (events come 100 to a page). Run by
/// `scripts/bench.sh amocrm`; figures in BENCHMARKS.md.
#[tokio::test]
#[ignore = "benchmark: scripts/bench.sh amocrm"]
async fn bench_initial_sync_at_the_vendor_limits() {
    let deals: usize = std::env::var("AMOCRM_BENCH_DEALS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let account = MockAmoCrm::start(MockConfig::default(), MockData::generated(deals)).await;
    let (_root, store) = new_store();
    let mut cfg = config(&account.base_url);
    cfg.timeout = Duration::from_secs(60);
    let report = refresh(&store, cfg).await.unwrap();
    let sync = report.sync.unwrap();
    let rows: usize = sync.records.values().sum();
    let rate = sync.requests as f64 / sync.read_seconds;
    let log = account.state.request_log();
    let full_pages = |path: &'static str, limit: usize| (path, limit, log.iter().filter(|(p, _)| p == path).count());
    println!("amoCRM initial sync, {deals} deals: {rows} records in {} requests, {:.1} s reading, {:.1} s in all", sync.requests, sync.read_seconds, sync.seconds);
    println!("request rate {rate:.2}/s = {:.0} % of the 7/s limit; 429s received {}; most requests in one second {}", rate / 7.0 * 100.0, account.state.answered_429(), account.state.max_in_window());
    println!("rows/s {:.0} = {:.0} % of the 1,750 rows/s ceiling (7 x 250); rows per request {:.0}", rows as f64 / sync.read_seconds, rows as f64 / sync.read_seconds / 17.5, rows as f64 / sync.requests as f64);
    for (path, limit, n) in [full_pages("/api/v4/leads", 250), full_pages("/api/v4/leads/notes", 250), full_pages("/api/v4/events", 100), full_pages("/api/v4/tasks", 250)] {
        println!("  {path}: {n} requests (limit {limit})");
    }
    assert_eq!(account.state.answered_429(), 0);
}

#[tokio::test]
async fn progress_counts_each_lists_rows_and_requests() {
    let data = MockData::generated(600);
    let (leads, contacts) = (data.leads.len() as u64, data.contacts.len() as u64);
    let account = MockAmoCrm::start(MockConfig::default(), data).await;
    let (_root, store) = new_store();
    let (_, progress) = crate::common::refresh_crm_recorded(&store, SourceConfig::AmoCrm(Box::new(config(&account.base_url)))).await;
    // amoCRM's lists carry no count; every request is counted, the one read past the end too.
    let requests_of = |path: &str| account.state.request_log().iter().filter(|(p, _)| p == path).count() as u64;
    let seen = progress.list("leads");
    assert_eq!((seen.expected, seen.rows, seen.requests, seen.finished), (None, leads, requests_of("/api/v4/leads"), 1), "{seen:?}");
    assert_eq!(progress.list("contacts").rows, contacts);
    assert_eq!(progress.list("contacts").requests, requests_of("/api/v4/contacts"));
    assert!(progress.list("stage changes").rows > 0);
    assert!(progress.list("leads/notes").requests >= 1);
    for (name, seen) in progress.lists.lock().unwrap().iter() {
        assert_eq!(seen.started, seen.finished, "{name}");
    }
}
