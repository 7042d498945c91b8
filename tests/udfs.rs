//! The UDFs are registered in every tenant session and run over snapshot data.

use arrow::array::AsArray;

use crate::common::{TestServer, query};

#[tokio::test]
async fn successful_calls_over_the_demo_snapshot() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let sql = "SELECT count(*) FILTER (WHERE is_successful_call(duration_seconds, 60, status = 'answered')) AS ok, \
               count(*) FILTER (WHERE status = 'answered' AND duration_seconds > 60) AS expected FROM crm.calls";
    let (_, batches) = query(&mut client, sql).await.unwrap();
    let b = &batches[0];
    let ok = b.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0);
    let expected = b.column(1).as_primitive::<arrow::datatypes::Int64Type>().value(0);
    assert!(ok > 0);
    assert_eq!(ok, expected);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn working_time_honours_the_absences_of_the_snapshot() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    // Each absence, from local midnight of its first day to local midnight after its last.
    let sql = "SELECT working_seconds(CAST(starts_on AS TIMESTAMP) - INTERVAL '3 hours', CAST(ends_on AS TIMESTAMP) + INTERVAL '21 hours', 'ru_msk', manager_id) AS absent, \
                      working_seconds(CAST(starts_on AS TIMESTAMP) - INTERVAL '3 hours', CAST(ends_on AS TIMESTAMP) + INTERVAL '21 hours') AS calendar \
               FROM crm.absences WHERE starts_on >= DATE '2025-01-01' AND ends_on <= DATE '2026-12-31'";
    let (_, batches) = query(&mut client, sql).await.unwrap();
    let mut rows = 0;
    let mut with_work = 0;
    for b in &batches {
        let absent = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let calendar = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            rows += 1;
            assert_eq!(absent.value(i), 0, "no working time while absent");
            if calendar.value(i) > 0 {
                with_work += 1;
            }
        }
    }
    assert!(rows > 20 && with_work > rows / 2, "{rows} absences, {with_work} over working days");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn the_tenant_setting_is_the_default_call_threshold() {
    let root = tempfile::tempdir().unwrap();
    let store = salespulse::snapshot::Store::open(root.path().to_str().unwrap()).unwrap();
    let mut info = crate::common::info("acme");
    info.settings.insert("calls.success_threshold_seconds".into(), "30".into());
    let catalog = salespulse::catalog::Catalog::new(store, vec![info]);
    let ctx = catalog.session(Some("acme"));
    let batches = ctx.sql("SELECT is_successful_call(45) AS a, is_successful_call(45, 60) AS b").await.unwrap().collect().await.unwrap();
    assert!(batches[0].column(0).as_boolean().value(0), "45 s is successful with the tenant's 30 s threshold");
    assert!(!batches[0].column(1).as_boolean().value(0), "an explicit threshold wins");
}
