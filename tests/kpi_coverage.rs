//! Every KPI a CRM can feed comes out filled: every `kpi` view is run over a refreshed mock
//! Bitrix24 portal, a mock amoCRM account and the demo tenant, and each column that
//! `docs/metrics.md` ("What each source fills") does not list as empty for that source must
//! hold at least one value. A column listed as empty that is in fact filled fails too, so
//! the table stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use salespulse::catalog::Catalog;
use salespulse::catalog::kpi::VIEWS;
use salespulse_config::config::SourceConfig;
use salespulse::snapshot::Store;

use crate::common::{info, refresh_crm, write_demo};

/// The source columns of the coverage table in docs/metrics.md.
const SOURCES: [&str; 3] = ["demo", "bitrix24", "amocrm"];

/// `view.column` → the sources the table says leave it empty.
fn documented_empty() -> BTreeMap<String, BTreeSet<String>> {
    let doc = include_str!("../docs/metrics.md");
    let section = doc.split("## What each source fills").nth(1).expect("docs/metrics.md has a 'What each source fills' section");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `view.column` | demo | files | bitrix24 | amocrm | why | (the exceptions table:
        // its first cell is one backquoted view.column)
        if cells.len() < 8 || !cells[1].starts_with('`') || cells[1].contains(',') || !cells[1].contains('.') {
            continue;
        }
        let key = cells[1].trim_matches('`').to_string();
        for (source, cell) in ["demo", "files", "bitrix24", "amocrm"].iter().zip(&cells[2..6]) {
            if cell.starts_with("empty") {
                out.entry(key.clone()).or_default().insert((*source).to_string());
            }
        }
    }
    assert!(!out.is_empty(), "the coverage table of docs/metrics.md lists no empty column");
    out
}

async fn store_with(source: &str, root: &std::path::Path) -> Store {
    let store = Store::open(&root.to_string_lossy()).unwrap();
    match source {
        "demo" => {
            write_demo(&store, "acme").await;
        }
        "bitrix24" => {
            let portal = crate::common::bitrix24_mock::MockBitrix24::start(crate::bitrix24::fast_portal(), crate::common::bitrix24_mock::MockData::generated(300)).await;
            refresh_crm(&store, SourceConfig::Bitrix24(Box::new(crate::bitrix24::config(&portal.webhook_url)))).await.unwrap();
        }
        _ => {
            let account = crate::common::amocrm_mock::MockAmoCrm::start(crate::common::amocrm_mock::MockConfig::default(), crate::common::amocrm_mock::MockData::generated(400)).await;
            refresh_crm(&store, SourceConfig::AmoCrm(Box::new(crate::amocrm::config(&account.base_url)))).await.unwrap();
        }
    }
    store
}

/// `view.column` of every column of every view that holds no value.
async fn empty_columns(store: Store) -> BTreeSet<String> {
    let catalog = Arc::new(Catalog::new(store, vec![info("acme")]));
    catalog.load_tenant("acme").await.unwrap();
    assert_eq!(catalog.tenant("acme").unwrap().problem, None);
    let ctx = catalog.session(Some("acme"));
    let mut empty = BTreeSet::new();
    for (view, _) in VIEWS {
        let df = ctx.sql(&format!("SELECT * FROM kpi.{view}")).await.unwrap_or_else(|e| panic!("kpi.{view}: {e}"));
        let batches: Vec<RecordBatch> = df.collect().await.unwrap_or_else(|e| panic!("kpi.{view}: {e}"));
        // A view without rows is empty as a whole (`view.*`).
        if batches.iter().all(|b| b.num_rows() == 0) {
            empty.insert(format!("{view}.*"));
            continue;
        }
        for (i, field) in batches[0].schema().fields().iter().enumerate() {
            let filled = batches.iter().any(|b| b.column(i).null_count() < b.num_rows());
            if !filled {
                empty.insert(format!("{view}.{}", field.name()));
            }
        }
    }
    empty
}

#[tokio::test]
async fn every_kpi_column_a_source_can_feed_is_filled() {
    let documented = if std::env::var_os("SALESPULSE_PRINT_COVERAGE").is_some() { BTreeMap::new() } else { documented_empty() };
    let mut problems = Vec::new();
    for source in SOURCES {
        let root = tempfile::tempdir().unwrap();
        let store = store_with(source, root.path()).await;
        let found = empty_columns(store).await;
        if std::env::var_os("SALESPULSE_PRINT_COVERAGE").is_some() {
            println!("{source}: {found:#?}");
        }
        let expected: BTreeSet<String> = documented.iter().filter(|(_, s)| s.contains(source)).map(|(k, _)| k.clone()).collect();
        for column in found.difference(&expected) {
            problems.push(format!("{source}: {column} is empty, and docs/metrics.md does not say why"));
        }
        for column in expected.difference(&found) {
            problems.push(format!("{source}: {column} is filled, but docs/metrics.md lists it as empty"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
