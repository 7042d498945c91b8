//! The bad-input suite over Flight SQL: every case gets one clear error and the server
//! answers the next query. Files and URLs cannot be read, a query over its memory, time or
//! size limit fails alone, slots queue and then refuse, tokens expire, and the audit log
//! (`system.queries`) shows each user only their own queries.

use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow_flight::Ticket;
use arrow_flight::sql::{CommandPreparedStatementQuery, ProstMessageExt, TicketStatementQuery};
use prost::Message;
use salespulse_config::config::{Limits, PasswordSecret, UserConfig};

use crate::common::{TestServer, query, rows};

fn limits() -> Limits {
    Limits {
        query_memory_bytes: 8 << 20,
        query_timeout: Duration::from_secs(2),
        max_result_rows: 5_000,
        queue_wait: Duration::from_millis(300),
        ..Limits::default()
    }
}

fn users() -> Vec<UserConfig> {
    vec![
        UserConfig { name: "anna".into(), password: PasswordSecret::Plain("anna-pass".into()), tenants: Some(vec!["demo".into()]), api_token_sha256: None, may_refresh: false },
        UserConfig { name: "boris".into(), password: PasswordSecret::Plain("boris-pass".into()), tenants: Some(vec!["demo".into()]), api_token_sha256: None, may_refresh: false },
    ]
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches.iter().flat_map(|b| b.column(column).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect::<Vec<_>>()).collect()
}

async fn still_serving(client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>, case: &str) {
    let (_, batches) = query(client, "SELECT count(*) FROM crm.deals").await.unwrap_or_else(|e| panic!("after {case}: {e}"));
    assert_eq!(rows(&batches), 1, "after {case}");
}

#[tokio::test]
async fn bad_input_gets_one_clear_error_and_the_server_answers_the_next_query() {
    let server = TestServer::spawn_limited(&["demo"], &["demo"], Vec::new(), limits()).await;
    let mut client = server.client().await;
    let ten_megabytes = format!("SELECT 1 -- {}", "x".repeat(10 << 20));
    let cases: Vec<(&str, String, &str)> = vec![
        ("DDL", "CREATE TABLE t AS SELECT 1".into(), "read-only"),
        ("DML", "DELETE FROM crm.deals".into(), "read-only"),
        ("COPY to a file", "COPY (SELECT * FROM crm.deals) TO '/tmp/salespulse-leak.csv'".into(), "read-only"),
        ("an external table on /etc/passwd", "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".into(), "read-only"),
        ("a file as a table", "SELECT * FROM '/etc/passwd'".into(), "not found"),
        ("a file through a function", "SELECT * FROM read_csv('/etc/passwd')".into(), "read_csv"),
        ("a URL as a table", "SELECT * FROM 'https://example.com/data.parquet'".into(), "not found"),
        ("an engine option", "SET datafusion.execution.target_partitions = 1".into(), "read-only"),
        ("10 MB of SQL", ten_megabytes, "limits.max_sql_bytes"),
        (
            "a recursive CTE that never ends",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r".into(),
            "limits.query_timeout_seconds",
        ),
        (
            "a cross join over the memory limit",
            "SELECT a.title, b.title FROM crm.deals a CROSS JOIN crm.deals b CROSS JOIN crm.managers c ORDER BY 1, 2".into(),
            "limits.query_memory",
        ),
        ("a result over the row limit", "SELECT * FROM generate_series(1, 100000)".into(), "limits.max_result_rows"),
    ];
    for (case, sql, expected) in &cases {
        let started = std::time::Instant::now();
        let err = query(&mut client, sql).await.err().unwrap_or_else(|| panic!("{case}: no error"));
        assert!(err.contains(expected), "{case}: expected '{expected}' in: {err}");
        assert!(err.len() < 600, "{case}: one clear message, not a dump: {err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{case} took {:?}", started.elapsed());
        still_serving(&mut client, case).await;
    }
    assert!(!std::path::Path::new("/tmp/salespulse-leak.csv").exists());
    // Malformed and forged tickets and prepared-statement handles.
    let forged: Vec<(&str, Vec<u8>)> = vec![
        ("a forged prepared handle", CommandPreparedStatementQuery { prepared_statement_handle: b"{\"sql\":\"SELECT 1\"}".to_vec().into() }.as_any().encode_to_vec()),
        ("a forged statement ticket", TicketStatementQuery { statement_handle: vec![0xff; 64].into() }.as_any().encode_to_vec()),
        ("bytes that are no ticket at all", b"\x0a\x03abc".to_vec()),
    ];
    for (case, ticket) in forged {
        let err = client.do_get(Ticket::new(ticket)).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not issued by this server") || err.contains("not a Flight SQL ticket") || err.contains("ticket"), "{case}: {err}");
        still_serving(&mut client, case).await;
    }
    // Every query left its slot.
    assert_eq!(server.gate.running(), 0);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_query_over_its_memory_fails_while_the_others_go_on() {
    let server = TestServer::spawn_limited(&["demo"], &["demo"], Vec::new(), limits()).await;
    let heavy = "SELECT a.title, b.title FROM crm.deals a CROSS JOIN crm.deals b CROSS JOIN crm.managers c ORDER BY 1, 2";
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            if i == 0 { query(&mut client, heavy).await.map(|_| 0) } else { query(&mut client, "SELECT count(*) FROM crm.calls").await.map(|(_, b)| rows(&b)) }
        }));
    }
    let results: Vec<Result<usize, String>> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert!(results[0].as_ref().is_err_and(|e| e.contains("limits.query_memory")), "{:?}", results[0]);
    for r in &results[1..] {
        assert_eq!(r, &Ok(1));
    }
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn slots_queue_then_refuse_with_the_limit_named() {
    let limits = Limits { max_concurrent_queries_per_user: 1, query_timeout: Duration::from_secs(3), ..limits() };
    let server = TestServer::spawn_limited(&["demo"], &["demo"], users(), limits).await;
    let mut anna = server.client().await;
    anna.handshake("anna", "anna-pass").await.unwrap();
    let mut anna_again = server.client().await;
    anna_again.handshake("anna", "anna-pass").await.unwrap();
    let mut boris = server.client().await;
    boris.handshake("boris", "boris-pass").await.unwrap();
    // anna's one slot is taken by a query that runs until its timeout.
    let endless = tokio::spawn(async move { query(&mut anna, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r").await });
    tokio::time::timeout(Duration::from_secs(5), server.gate.until_running(|n| n >= 1)).await.unwrap();
    let err = query(&mut anna_again, "SELECT 1").await.unwrap_err();
    assert!(err.contains("limits.max_concurrent_queries_per_user") && err.contains("anna"), "{err}");
    // Another user is not held up by anna.
    let (_, batches) = query(&mut boris, "SELECT 1").await.unwrap();
    assert_eq!(rows(&batches), 1);
    assert!(endless.await.unwrap().unwrap_err().contains("limits.query_timeout_seconds"));
    // The slot is back: anna runs again.
    let (_, batches) = query(&mut anna_again, "SELECT 1").await.unwrap();
    assert_eq!(rows(&batches), 1);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn tokens_expire_and_wrong_or_missing_ones_are_refused() {
    let limits = Limits { token_ttl_seconds: 60, ..limits() };
    let server = TestServer::spawn_limited(&["demo"], &["demo"], users(), limits).await;
    let mut client = server.client().await;
    let err = query(&mut client, "SELECT 1").await.unwrap_err();
    assert!(err.contains("authentication required"), "missing: {err}");
    client.set_header("authorization", "Bearer not-a-token");
    let err = query(&mut client, "SELECT 1").await.unwrap_err();
    assert!(err.contains("token"), "wrong: {err}");
    let mut client = server.client().await;
    client.handshake("anna", "anna-pass").await.unwrap();
    query(&mut client, "SELECT 1").await.unwrap();
    server.advance_clock(Duration::from_secs(61));
    let err = query(&mut client, "SELECT 1").await.unwrap_err();
    assert!(err.contains("expired") && err.contains("log in again"), "expired: {err}");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn the_audit_shows_each_user_only_their_own_queries() {
    let server = TestServer::spawn_limited(&["demo"], &["demo"], users(), limits()).await;
    let mut anna = server.client().await;
    anna.handshake("anna", "anna-pass").await.unwrap();
    let mut boris = server.client().await;
    boris.handshake("boris", "boris-pass").await.unwrap();
    query(&mut anna, "SELECT count(*) AS anna_counts FROM crm.deals").await.unwrap();
    query(&mut anna, "SELECT no_such_column FROM crm.deals").await.unwrap_err();
    query(&mut boris, "SELECT 'boris was here' AS secret").await.unwrap();

    let (_, batches) = query(&mut anna, "SELECT user_name, protocol, tenant, sql, rows, outcome, error FROM system.queries ORDER BY started_at").await.unwrap();
    let sql = strings(&batches, 3);
    assert!(sql.iter().any(|s| s.contains("anna_counts")), "{sql:?}");
    assert!(!sql.iter().any(|s| s.contains("boris was here")), "another user's query is never shown: {sql:?}");
    assert!(strings(&batches, 0).iter().all(|u| u == "anna"));
    assert!(strings(&batches, 1).iter().all(|p| p == "flight_sql"));
    let outcomes = strings(&batches, 5);
    let at = sql.iter().position(|s| s.contains("anna_counts")).unwrap();
    assert_eq!(outcomes[at], "ok");
    assert_eq!(batches.iter().flat_map(|b| b.column(4).as_primitive::<Int64Type>().values().to_vec()).nth(at), Some(1));
    let failed = sql.iter().position(|s| s.contains("no_such_column")).unwrap();
    assert_eq!(outcomes[failed], "failed");
    assert!(strings(&batches, 6)[failed].contains("no_such_column"));
    assert!(batches[0].column(6).is_null(at));

    let (_, batches) = query(&mut boris, "SELECT sql FROM system.queries").await.unwrap();
    let sql = strings(&batches, 0);
    assert!(sql.iter().any(|s| s.contains("boris was here")) && !sql.iter().any(|s| s.contains("anna")), "{sql:?}");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_burst_of_failed_logins_locks_the_address_out_for_a_while() {
    let limits = Limits { failed_logins_per_minute: 5, ..limits() };
    let server = TestServer::spawn_limited(&["demo"], &["demo"], users(), limits).await;
    for _ in 0..5 {
        let err = server.client().await.handshake("anna", "guess").await.unwrap_err().to_string();
        assert!(err.contains("wrong user name or password"), "{err}");
    }
    // The right password from the same address is now refused too, with the wait named.
    let err = server.client().await.handshake("anna", "anna-pass").await.unwrap_err().to_string();
    assert!(err.contains("too many failed logins") && err.contains("try again in"), "{err}");
    server.shutdown_and_wait().await;
}

/// A PostgreSQL connection's session is cached and outlives its queries; each query gets a
/// pool of its own from it, so a query holding memory does not starve the next one.
#[tokio::test]
async fn each_query_of_a_cached_session_has_a_memory_pool_of_its_own() {
    use datafusion::execution::memory_pool::MemoryConsumer;
    let server = TestServer::spawn_limited(&["demo"], &["demo"], Vec::new(), limits()).await;
    let session = server.catalog.session_for(Some("demo"), None, "anna");
    let holding = server.catalog.with_own_memory(&session);
    let next = server.catalog.with_own_memory(&session);
    // A query of `holding` keeps nearly all of its pool (a sort waiting on a slow client).
    let runtime = holding.runtime_env();
    let held = MemoryConsumer::new("a running sort").register(&runtime.memory_pool);
    held.try_grow((8 << 20) - 4096).unwrap();
    let moderate = "SELECT manager_id, title, amount FROM crm.deals ORDER BY amount DESC, title";
    let err = holding.sql(moderate).await.unwrap().collect().await.unwrap_err().to_string();
    assert!(err.contains("limits.query_memory"), "{err}");
    let rows: usize = next.sql(moderate).await.unwrap().collect().await.unwrap().iter().map(RecordBatch::num_rows).sum();
    assert!(rows > 100, "the next query runs with its own budget: {rows} rows");
    // Same catalogs, options and user as the session.
    let user = next.sql("SELECT count(*) FROM system.queries").await.map(|_| ());
    assert!(user.is_ok(), "{user:?}");
    held.free();
    server.shutdown_and_wait().await;
}
