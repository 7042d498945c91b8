//! The Bitrix24 connector against the mock portal of `bitrix24_mock`: a full sync maps every
//! entity, stays under the portal's leaky bucket and reads 2,500 rows per request; faults
//! are retried into identical data; refusals stop with the key to fix; an incremental sync
//! after edits, moves and deletions equals a fresh full sync.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use salespulse_config::config::{SecretSource, SourceConfig};
use salespulse::connectors::bitrix24;
use salespulse_config::config::sources::bitrix24::{Bitrix24Auth, Bitrix24Config, OAuthConfig};
use salespulse_config::config::sources::RateLimit;
use salespulse::model::Table;
use salespulse::refresh::RefreshReport;
use salespulse::snapshot::{Manifest, Store};
use serde_json::json;

use crate::common::bitrix24_mock::{Fault, MockBitrix24, MockConfig, MockData};

/// The mock at ten times the vendor's rate, so tests run fast with the same proportions: the
/// connector's bucket (9/s, burst 8) sits under the portal's (10/s, burst 10).
pub(crate) fn fast_portal() -> MockConfig {
    MockConfig { drain_per_second: 10.0, burst: 10, operating_window: Duration::from_secs(2), ..MockConfig::default() }
}

pub(crate) fn config(webhook: &str) -> Bitrix24Config {
    Bitrix24Config {
        auth: Bitrix24Auth::Webhook(SecretSource::Inline { key: "tenants[0] (acme).source.webhook_url".into(), value: webhook.into() }),
        rate: RateLimit { requests_per_second: 9.0, burst: 8 },
        loss_reason_field: None,
        overlap: Duration::from_secs(600),
        timeout: Duration::from_secs(5),
    }
}

async fn refresh(store: &Store, cfg: Bitrix24Config) -> Result<RefreshReport, String> {
    crate::common::refresh_crm(store, SourceConfig::Bitrix24(Box::new(cfg))).await
}

/// Every row of a table as text, sorted; `skip` columns left out.
pub(crate) async fn rows(store: &Store, manifest: &Manifest, table: Table, skip: &[&str]) -> Vec<String> {
    let batches: Vec<RecordBatch> = store.read_table(manifest, table).await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let keep: Vec<usize> = (0..b.num_columns()).filter(|i| !skip.contains(&b.schema().field(*i).name().as_str())).collect();
        for r in 0..b.num_rows() {
            out.push(keep.iter().map(|i| array_value_to_string(b.column(*i), r).unwrap()).collect::<Vec<_>>().join("|"));
        }
    }
    out.sort();
    out
}

pub(crate) fn one<'a>(rows: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&String> = rows.iter().filter(|r| r.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one row starting {prefix:?} in {rows:#?}");
    found[0]
}

#[tokio::test]
async fn full_sync_maps_every_entity_under_the_rate_limit() {
    let data = MockData::generated(1000);
    let deal_1000 = data.deals.iter().find(|d| d["ID"] == "1000").unwrap().clone();
    let counts: BTreeMap<&str, usize> = [
        ("deals", data.deals.len()),
        ("leads", data.leads.len()),
        ("contacts", data.contacts.len()),
        ("companies", data.companies.len()),
        ("activities", data.activities.len()),
        ("deal_stage_history", data.deal_stage_history.len()),
        ("calls", data.calls.len()),
        ("tasks", data.tasks.len()),
        ("deal_items", data.product_rows.len()),
        ("managers", data.users.len()),
        ("departments", data.departments.len()),
    ]
    .into();
    let portal = MockBitrix24::start(fast_portal(), data).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let report = refresh(&store, config(&portal.webhook_url)).await.unwrap();
    let m = &report.report.manifest;
    let oracle = portal.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, m, &oracle).await;
    for (table, n) in &counts {
        assert_eq!(m.tables[*table].rows as usize, *n, "{table}");
    }
    assert!(m.tables["pipelines"].rows >= 2 && m.tables["stages"].rows > 5 && m.tables["sources"].rows > 0);
    assert_eq!(portal.state.rejected_rate_limit(), 0, "the connector's bucket keeps it under the portal's");
    // 1,000 deals: a counted first page (in the batch of every list's first page), then one
    // batch of 19 chained pages. 4,000 calls: 1 + 79 pages.
    assert_eq!(portal.state.method_calls("crm.deal.list"), 0, "no direct list calls");
    assert_eq!(portal.state.sub_calls("crm.deal.list"), 20);
    assert_eq!(portal.state.sub_calls("voximplant.statistic.get"), 80);
    let sync = report.sync.unwrap();
    assert!(!sync.incremental);
    assert_eq!(sync.requests, portal.state.requests());
    assert_eq!(sync.retries, 0);
    assert!(m.source.starts_with("bitrix24: 127.0.0.1:"), "{}", m.source);
    assert!(!m.source.contains("s3cr3t"));
    for key in ["bitrix24.portal", "bitrix24.phone_key", "bitrix24.deals", "bitrix24.calls.id", "bitrix24.deal_stage_history.id", "bitrix24.lead_stage_history.id"] {
        assert!(m.sync_cursors.contains_key(key), "{key}: {:?}", m.sync_cursors);
    }

    // The fixture deal 1000 is won in pipeline 1, closed when it moved into the final stage.
    let deals = rows(&store, m, Table::Deals, &["custom_fields"]).await;
    let d1000 = one(&deals, "1000|");
    let amount = deal_1000["OPPORTUNITY"].as_str().unwrap();
    assert!(d1000.contains(&format!("|1|C1:WON|won|{amount}|RUB|{amount}|6|300|200|500|RECOMMENDATION||")), "{d1000}");
    let moved = chrono::DateTime::parse_from_rfc3339(deal_1000["MOVED_TIME"].as_str().unwrap()).unwrap().with_timezone(&chrono::Utc);
    assert!(d1000.ends_with(&format!("|{}", moved.format("%Y-%m-%dT%H:%M:%SZ"))), "closed_at = MOVED_TIME in UTC: {d1000}");
    // amount_base is the portal's own OPPORTUNITY_ACCOUNT (kept at the rate of the deal's
    // last save), never a conversion at today's rates (which is off for most of them).
    let usd: Vec<&String> = deals.iter().filter(|r| r.contains("|USD|")).collect();
    assert!(!usd.is_empty(), "the generated portal has USD deals");
    let mut off_at_todays_rate = 0;
    for r in usd {
        let cells: Vec<&str> = r.split('|').collect();
        let (amount, base): (f64, f64) = (cells[5].parse().unwrap(), cells[7].parse().unwrap());
        let reported = portal.state.data.lock().unwrap().deals.iter().find(|d| d["ID"] == cells[0]).unwrap()["OPPORTUNITY_ACCOUNT"].as_str().unwrap().to_string();
        assert_eq!(format!("{base:.2}"), reported, "{r}");
        off_at_todays_rate += usize::from((amount * 90.0 - base).abs() >= 0.01);
    }
    assert!(off_at_todays_rate > 0, "the mock's account amounts differ from today's conversion");
    // Calls reach their deal through the activity; answered, busy and directions map.
    let calls = rows(&store, m, Table::Calls, &["phone_hash"]).await;
    let answered = calls.iter().find(|r| r.contains("|outbound|answered|200|")).unwrap();
    assert!(answered.split('|').nth(7).is_some_and(|deal| !deal.is_empty()), "a call with its deal: {answered}");
    assert!(calls.iter().any(|r| r.contains("|busy|486|")));
    assert!(calls.iter().any(|r| r.contains("|inbound|")));
    let stages = rows(&store, m, Table::Stages, &[]).await;
    assert!(stages.iter().any(|r| r.starts_with("C1:WON|1|") && r.ends_with("|won")), "{stages:?}");
    assert!(stages.iter().any(|r| r.starts_with("LOSE|0|") && r.ends_with("|lost")), "{stages:?}");
}

#[tokio::test]
async fn faults_are_retried_into_identical_data() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_test_writer().try_init();
    let clean_portal = MockBitrix24::start(fast_portal(), MockData::generated(60)).await;
    let clean_root = tempfile::tempdir().unwrap();
    let clean_store = Store::open(&clean_root.path().to_string_lossy()).unwrap();
    let clean = refresh(&clean_store, config(&clean_portal.webhook_url)).await.unwrap().report.manifest;

    let portal = MockBitrix24::start(fast_portal(), MockData::generated(60)).await;
    // Faults between good answers, so each one costs a single backoff step.
    let faults = vec![
        Fault::QueryLimit,
        Fault::Html(502),
        Fault::ServerError,
        Fault::Truncated,
        Fault::Delay(Duration::from_secs(7)),
        Fault::OperatingLimit,
        Fault::Html(503),
    ];
    let state = std::sync::Arc::clone(&portal.state);
    let injected = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = std::sync::Arc::clone(&injected);
    let injector = tokio::spawn(async move {
        for fault in faults {
            // After an answer was served whole, so no request meets two faults in a row.
            let at = state.served_ok();
            while state.served_ok() <= at {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            state.push_faults([fault]);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let report = refresh(&store, config(&portal.webhook_url)).await.unwrap();
    injector.abort();
    let oracle = portal.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, &report.report.manifest, &oracle).await;
    let injected = injected.load(std::sync::atomic::Ordering::SeqCst);
    let left = portal.state.faults.lock().unwrap().len() as u64;
    let sync = report.sync.unwrap();
    assert!(injected - left >= 5, "most faults hit the sync: {injected} injected, {left} left");
    assert_eq!(sync.retries, injected - left, "{:?}", sync.answers);
    assert_eq!(portal.state.rejected_rate_limit(), 0);
    let m = &report.report.manifest;
    for table in bitrix24::PREVIOUS_TABLES {
        // Phone hashes use each store's own key; everything else is identical.
        assert_eq!(rows(&store, m, *table, &["phone_hash"]).await, rows(&clean_store, &clean, *table, &["phone_hash"]).await, "{}", table.name());
    }
}

#[tokio::test]
async fn a_refused_webhook_or_scope_stops_with_what_to_fix_and_keeps_the_snapshot() {
    let portal = MockBitrix24::start(fast_portal(), MockData::generated(10)).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let first = refresh(&store, config(&portal.webhook_url)).await.unwrap().report.manifest;

    let wrong = portal.webhook_url.replace("s3cr3tc0de", "wrongcode");
    let e = refresh(&store, config(&wrong)).await.unwrap_err();
    assert!(e.contains("NO_AUTH_FOUND") && e.contains("tenants[0] (acme).source.webhook_url"), "{e}");
    assert!(!e.contains("wrongcode"), "the secret never appears: {e}");
    assert_eq!(store.current_manifest("acme").await.unwrap().snapshot_id, first.snapshot_id, "nothing stored changed");

    // A webhook without telephony: check names the scope, a sync stops on it.
    let no_calls = MockBitrix24::start(
        MockConfig { scopes: vec!["crm".into(), "user".into(), "department".into(), "task".into()], ..fast_portal() },
        MockData::generated(10),
    )
    .await;
    let report = bitrix24::check(&config(&no_calls.webhook_url), &salespulse::connectors::TokenHome::Files).await.unwrap();
    assert_eq!(report.missing.iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["telephony"]);
    let e = refresh(&store, config(&no_calls.webhook_url)).await.unwrap_err();
    assert!(e.contains("voximplant.statistic.get") && e.contains("'telephony'"), "{e}");
    assert_eq!(store.current_manifest("acme").await.unwrap().snapshot_id, first.snapshot_id);

    // Bad URLs are refused before any request.
    for bad in ["https://acme.bitrix24.ru/", "ftp://x/rest/1/a/"] {
        let e = refresh(&store, config(bad)).await.unwrap_err();
        assert!(e.contains("tenants[0] (acme).source.webhook_url"), "{e}");
    }
}

#[tokio::test]
async fn incremental_sync_after_edits_moves_and_deletions_equals_a_full_sync() {
    let portal = MockBitrix24::start(fast_portal(), MockData::generated(120)).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let full = refresh(&store, config(&portal.webhook_url)).await.unwrap();
    let full_requests = full.sync.unwrap().requests;

    // The portal changes: a deal moves to won, a new deal arrives with its history, call and
    // product row, a contact and a deal are deleted.
    let later = "2026-01-15T10:00:00+03:00";
    {
        let mut data = portal.state.data.lock().unwrap();
        let moved = data.deals.iter_mut().find(|d| d["STAGE_SEMANTIC_ID"] == "P").unwrap();
        let moved_id = moved["ID"].as_str().unwrap().to_string();
        moved["STAGE_SEMANTIC_ID"] = json!("S");
        moved["STAGE_ID"] = json!(if moved["CATEGORY_ID"] == "1" { "C1:WON" } else { "WON" });
        moved["MOVED_TIME"] = json!(later);
        moved["DATE_MODIFY"] = json!(later);
        let mut fresh = data.deals[0].clone();
        let new_id = data.deals.iter().filter_map(|d| d["ID"].as_str()?.parse::<u64>().ok()).max().unwrap() + 1;
        fresh["ID"] = json!(new_id.to_string());
        fresh["DATE_CREATE"] = json!(later);
        fresh["DATE_MODIFY"] = json!(later);
        data.deals.push(fresh);
        let mut history = data.deal_stage_history.last().unwrap().clone();
        history["ID"] = json!(history["ID"].as_u64().unwrap() + 1);
        history["OWNER_ID"] = json!(moved_id.parse::<u64>().unwrap());
        history["CREATED_TIME"] = json!(later);
        data.deal_stage_history.push(history);
        let mut call = data.calls.last().unwrap().clone();
        call["ID"] = json!((call["ID"].as_str().unwrap().parse::<u64>().unwrap() + 1).to_string());
        call["CALL_ID"] = json!("externalCall.new.1");
        call["CALL_START_DATE"] = json!(later);
        data.calls.push(call);
        let mut item = data.product_rows[0].clone();
        item["id"] = json!(data.product_rows.iter().filter_map(|p| p["id"].as_u64()).max().unwrap() + 1);
        item["ownerId"] = json!(new_id);
        data.product_rows.push(item);
        // A deleted deal takes its stage history, product rows and activities with it.
        let gone_deal = data.deals.iter().position(|d| d["ID"] != json!(moved_id) && d["ID"] != json!(new_id.to_string())).unwrap();
        let gone = data.deals.remove(gone_deal)["ID"].as_str().unwrap().parse::<u64>().unwrap();
        data.deal_stage_history.retain(|h| h["OWNER_ID"] != json!(gone));
        data.product_rows.retain(|p| p["ownerId"] != json!(gone));
        data.activities.retain(|a| !(a["OWNER_TYPE_ID"] == "2" && a["OWNER_ID"] == json!(gone.to_string())));
        data.contacts.remove(3);
        // A new lead is qualified (moved to the funnel's last process status) with its
        // status-history row.
        let lead = data.leads.iter_mut().find(|l| l["STATUS_ID"] == "NEW").unwrap();
        lead["STATUS_ID"] = json!("PROCESSED");
        lead["MOVED_TIME"] = json!(later);
        lead["DATE_MODIFY"] = json!(later);
        let lead_id: u64 = lead["ID"].as_str().unwrap().parse().unwrap();
        let next = data.lead_stage_history.iter().filter_map(|h| h["ID"].as_u64()).max().unwrap() + 1;
        data.lead_stage_history.push(json!({"ID": next, "TYPE_ID": 2, "OWNER_ID": lead_id, "CREATED_TIME": later, "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "PROCESSED"}));
        // A status-history row whose lead is not read again (as when a lead is read just
        // before its move): the lead's qualified_at still comes from it.
        let quiet = data.leads.iter().find(|l| l["STATUS_ID"] == "NEW" && l["ID"] != json!(lead_id.to_string())).unwrap()["ID"].as_str().unwrap().parse::<u64>().unwrap();
        data.lead_stage_history.push(json!({"ID": next + 1, "TYPE_ID": 2, "OWNER_ID": quiet, "CREATED_TIME": later, "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "PROCESSED"}));
    }
    let before = portal.state.requests();
    let incremental = refresh(&store, config(&portal.webhook_url)).await.unwrap();
    let oracle = portal.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, &incremental.report.manifest, &oracle).await;
    let sync = incremental.sync.as_ref().unwrap();
    assert!(sync.incremental && sync.reconciled);
    assert!(sync.deleted >= 2, "a deal and a contact (and what hangs on the deal) are dropped: {}", sync.deleted);
    assert!(sync.records["deals"] < 10, "only changed deals are read: {:?}", sync.records);
    assert_eq!(portal.state.requests() - before, sync.requests);
    assert!(sync.requests < full_requests * 2, "{} vs {full_requests}", sync.requests);

    let fresh_root = tempfile::tempdir().unwrap();
    let fresh_store = Store::open(&fresh_root.path().to_string_lossy()).unwrap();
    let fresh = refresh(&fresh_store, config(&portal.webhook_url)).await.unwrap();
    for table in bitrix24::PREVIOUS_TABLES {
        let a = rows(&store, &incremental.report.manifest, *table, &["phone_hash"]).await;
        let b = rows(&fresh_store, &fresh.report.manifest, *table, &["phone_hash"]).await;
        assert_eq!(a, b, "{}", table.name());
    }
    let leads = rows(&store, &incremental.report.manifest, Table::Leads, &["custom_fields"]).await;
    assert!(leads.iter().any(|r| r.contains("|qualified|PROCESSED|") && r.contains("|2026-01-15T07:00:00Z|")), "the qualified lead with its time");
    assert!(leads.iter().filter(|r| r.contains("|converted|")).all(|r| r.split('|').nth(12).is_some_and(|q| !q.is_empty())), "converted leads have qualified_at: {leads:#?}");
    // The phone-hash key is kept, so hashes of the old and new snapshots match.
    assert_eq!(full.report.manifest.sync_cursors["bitrix24.phone_key"], incremental.report.manifest.sync_cursors["bitrix24.phone_key"]);
}

/// B-LIMIT-6, B-LIMIT-10: each method has its own time budget, and the calls nested in a
/// `batch` are billed to their methods. A sync that spends a method's budget waits until the
/// portal frees it, then reads on: the same rows as the portal's own records.
#[tokio::test]
async fn a_spent_method_budget_is_waited_out_per_method() {
    let config = MockConfig { operating_limit_seconds: 0.4, ..fast_portal() };
    let portal = MockBitrix24::start(config, MockData::generated(300)).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let report = refresh(&store, crate::bitrix24::config(&portal.webhook_url)).await.unwrap();
    assert!(portal.state.rejected_operating() > 0, "the budget was met");
    assert_eq!(portal.state.operating_used("batch"), 0.0, "a batch itself is not billed");
    let oracle = portal.state.data.lock().unwrap().oracle();
    crate::common::assert_matches_oracle(&store, &report.report.manifest, &oracle).await;
}

/// The measure: rows per second of an initial sync against the vendor's limits
/// (2 requests/s drained, burst 50), with the connector's defaults (2/s, burst 10). The
/// ceiling is 50 commands x 50 rows x 2 requests/s = 5,000 rows/s. Run by
/// `scripts/bench.sh bitrix24`; figures in BENCHMARKS.md.
#[tokio::test]
#[ignore = "benchmark: scripts/bench.sh bitrix24"]
async fn bench_initial_sync_at_the_vendor_limits() {
    let deals: usize = std::env::var("BENCH_DEALS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let portal = MockBitrix24::start(MockConfig::default(), MockData::generated(deals)).await;
    let mut cfg = config(&portal.webhook_url);
    cfg.rate = RateLimit { requests_per_second: 2.0, burst: 10 };
    cfg.timeout = Duration::from_secs(60);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let started = std::time::Instant::now();
    let report = refresh(&store, cfg).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let sync = report.sync.unwrap();
    let rows: usize = sync.records.values().sum();
    let read_rate = rows as f64 / sync.read_seconds;
    let rate = rows as f64 / sync.seconds;
    println!("generated portal: {deals} deals, {rows} records read");
    println!("requests: {} in {:.1} s = {:.2} requests/s (limit 2/s); answers {:?}; portal 503s {}", sync.requests, sync.read_seconds, sync.requests as f64 / sync.read_seconds, sync.answers, portal.state.rejected_rate_limit());
    println!("reading: {read_rate:.0} rows/s = {:.0} % of the 5,000 rows/s ceiling", read_rate / 50.0);
    println!("with mapping ({:.1} s): {rate:.0} rows/s = {:.0} %; refresh with snapshot write {seconds:.1} s", sync.seconds - sync.read_seconds, rate / 50.0);
    println!("records per entity: {:?}", sync.records);
}

#[tokio::test]
async fn an_oauth_app_refreshes_only_on_expiry_and_keeps_each_new_refresh_token() {
    let portal = MockBitrix24::start(fast_portal(), MockData::generated(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("acme.tokens");
    // As first written by hand: just the refresh token.
    std::fs::write(&token_file, "refresh-1\n").unwrap();
    let mut cfg = config(&portal.webhook_url);
    cfg.auth = Bitrix24Auth::OAuth(OAuthConfig {
        portal_url: portal.client_endpoint.clone(),
        client_id: "local.5f3e2a.12345678".into(),
        client_secret: SecretSource::Inline { key: "tenants[0] (acme).source.client_secret".into(), value: "oauthSecret".into() },
        token_file: token_file.clone(),
        token_url: portal.token_url.clone(),
        key: "tenants[0] (acme).source (OAuth app)".into(),
    });
    let saved = || -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap() };
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();

    // No access token yet: one refresh, and the new pair is saved.
    let first = refresh(&store, cfg.clone()).await.unwrap();
    assert_eq!(portal.state.oauth_refreshes(), 1);
    assert_eq!(saved()["refresh_token"], json!(portal.state.current_refresh_token()));
    assert_eq!(saved()["access_token"], json!(portal.state.current_access_token().unwrap()));
    assert!(first.report.manifest.source.contains("OAuth app local.5f3e2a.12345678"), "{}", first.report.manifest.source);

    // The saved access token is still good: no refresh (the vendor asks not to refresh early).
    refresh(&store, cfg.clone()).await.unwrap();
    assert_eq!(portal.state.oauth_refreshes(), 1);

    // It expires (and, once, the portal says so of a good one): refreshed, saved, repeated.
    portal.state.expire_access_token();
    portal.state.push_faults([Fault::QueryLimit, Fault::ExpiredToken]);
    let third = refresh(&store, cfg.clone()).await.unwrap();
    assert!(portal.state.oauth_refreshes() >= 2);
    assert_eq!(saved()["refresh_token"], json!(portal.state.current_refresh_token()));

    // Same rows as through a webhook of the same portal.
    let hook_root = tempfile::tempdir().unwrap();
    let hook_store = Store::open(&hook_root.path().to_string_lossy()).unwrap();
    let by_hook = refresh(&hook_store, config(&portal.webhook_url)).await.unwrap().report.manifest;
    for table in bitrix24::PREVIOUS_TABLES {
        assert_eq!(rows(&store, &third.report.manifest, *table, &["phone_hash"]).await, rows(&hook_store, &by_hook, *table, &["phone_hash"]).await, "{}", table.name());
    }

    // A spent refresh token (a restored backup, say) stops with what to do.
    std::fs::write(&token_file, "refresh-1").unwrap();
    let e = refresh(&store, cfg.clone()).await.unwrap_err();
    assert!(e.contains("invalid_grant") && e.contains("acme.tokens") && e.contains("authorize the app again"), "{e}");
    assert!(!e.contains("oauthSecret"));
    assert_eq!(store.current_manifest("acme").await.unwrap().snapshot_id, third.report.manifest.snapshot_id);
}

#[tokio::test]
async fn progress_hears_every_list_with_the_portals_count_as_it_is_read() {
    let data = MockData::generated(300);
    let (deals, calls, rows_of_products) = (data.deals.len() as u64, data.calls.len() as u64, data.product_rows.len() as u64);
    let portal = MockBitrix24::start(fast_portal(), data).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let (report, progress) = crate::common::refresh_crm_recorded(&store, SourceConfig::Bitrix24(Box::new(config(&portal.webhook_url)))).await;
    let seen = progress.list("deals");
    assert_eq!((seen.expected, seen.rows, seen.started, seen.finished), (Some(deals), deals, 1, 1), "{seen:?}");
    // The first page came in the shared batch, then batches of chained pages: more than one.
    assert!(seen.requests >= 2, "{seen:?}");
    let seen = progress.list("calls");
    assert_eq!((seen.expected, seen.rows), (Some(calls), calls));
    assert_eq!(progress.list("product rows").rows, rows_of_products);
    for (name, seen) in progress.lists.lock().unwrap().iter() {
        assert_eq!(seen.started, seen.finished, "{name}");
    }
    // Every row a list read is a row of the snapshot (the reference lists too).
    assert_eq!(report.report.manifest.tables["deals"].rows, deals);
    assert!(progress.list("departments").rows > 0 && progress.list("users").rows > 0);
}

/// `salespulse refresh` outside a terminal writes plain progress lines per list to stderr,
/// then the summary to stdout.
#[tokio::test]
async fn refresh_command_writes_progress_lines_when_not_a_terminal() {
    let portal = MockBitrix24::start(fast_portal(), MockData::generated(300)).await;
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("salespulse.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nroot = \"{}\"\n[[tenants]]\nname = \"acme\"\ntimezone = \"Europe/Moscow\"\n[tenants.source]\nkind = \"bitrix24\"\nwebhook_url_env = \"ACME_HOOK\"\nrequests_per_second = 9\nburst = 8\n",
            root.path().join("data").display()
        ),
    )
    .unwrap();
    let hook = portal.webhook_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_salespulse"))
            .args(["refresh", "--config", &config.to_string_lossy()])
            .env("ACME_HOOK", hook)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("acme: deals: reading 300 rows"), "{stderr}");
    let done = stderr.lines().find(|l| l.contains("acme: deals: done, 300 rows in ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(done.contains(" requests, ") && done.ends_with(" rows/s"), "{done}");
    assert!(stderr.contains("acme: tasks: done, "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no terminal control codes outside a terminal: {stderr}");
    assert!(stdout.contains("acme: snapshot ") && stdout.contains("full sync: "), "{stdout}");
}
