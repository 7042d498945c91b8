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
