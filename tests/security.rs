//! The attack suite: what an unauthenticated client, or a user of one tenant, tries against
//! the PostgreSQL and Flight SQL ports. Each case asserts a clear refusal, that the server
//! still answers afterwards, and that nothing on disk changed.
//!
//! The PostgreSQL client here is raw protocol bytes, so a test can send what no well-behaved
//! driver would: a query after a refused password, reserved startup parameters, pipelined
//! messages.
//!
//! About 600 lines, kept in one file on purpose: it is the one list of attacks a reviewer
//! reads top to bottom (before login, across tenants, against the limits, over every port).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use salespulse_config::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::pg_wire::{Msg, Pg, error_of, rows_of};
use crate::common::{TestServer, query, user};


/// Three tenants, five users: anna and alex read acme, boris reads beta, vera reads acme and
/// beta, root reads everything.
async fn three_tenants(limits: Limits) -> TestServer {
    let users = vec![user("anna", Some(&["acme"])), user("alex", Some(&["acme"])), user("boris", Some(&["beta"])), user("vera", Some(&["acme", "beta"])), user("root", None)];
    TestServer::spawn_limited(&["acme", "beta", "gamma"], &["acme", "beta"], users, limits).await
}

/// Every file under `root` with its size: what "nothing on disk changed" compares.
fn disk(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.insert(path.display().to_string(), entry.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
    out
}

/// The server still logs a user in and answers.
async fn still_answers(server: &TestServer) {
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    let seen = pg.simple("SELECT count(*) FROM crm.deals").await;
    assert_eq!(rows_of(&seen).len(), 1, "{seen:?}");
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    query(&mut flight, "SELECT 1").await.unwrap();
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("salespulse-attack-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn a_refused_password_ends_the_connection_before_any_query_runs() {
    let server = three_tenants(Limits::default()).await;
    let before = disk(server.root.path());
    let target = scratch("after-wrong-password.csv");
    let attack = format!("EXPLAIN ANALYZE COPY (SELECT * FROM beta.crm.deals) TO '{}'", target.display());

    // Reserved startup parameters are refused outright.
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "anna"), ("database", "acme"), ("salespulse.allowed", "*"), ("salespulse.tenant", "beta")]).await;
    let (seen, ready) = pg.until_ready().await;
    let (severity, code, message) = error_of(&seen).expect("refused");
    assert_eq!((severity.as_str(), code.as_str()), ("FATAL", "42704"), "{message}");
    assert!(message.contains("salespulse.allowed") && message.contains("reserved"), "{message}");
    assert!(!ready, "the connection is closed after FATAL");

    // A wrong password with the query pipelined right behind it: FATAL, closed, not run.
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "anna"), ("database", "acme")]).await;
    assert_eq!(pg.read().await, Some(Msg::Auth(3)));
    let mut pipelined = Pg::password_bytes("wrong");
    pipelined.extend(Pg::query_bytes(&attack));
    pipelined.extend(Pg::extended_bytes(&attack));
    pg.send(&pipelined).await;
    let mut seen = Vec::new();
    while let Some(m) = pg.read().await {
        seen.push(m);
    }
    let errors: Vec<_> = seen.iter().filter(|m| matches!(m, Msg::Error { .. })).collect();
    assert_eq!(errors.len(), 1, "one FATAL, then nothing: {seen:?}");
    assert!(matches!(errors[0], Msg::Error { severity, code, .. } if severity == "FATAL" && code == "28P01"), "{seen:?}");

    // A password message with an impossible length (pgwire's decoder panics on it): the
    // connection is closed with an error, and nothing else is affected.
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "anna"), ("database", "acme")]).await;
    assert_eq!(pg.read().await, Some(Msg::Auth(3)));
    pg.send(&[b'p', 0, 0, 0, 0]).await;
    let (seen, ready) = pg.until_ready().await;
    assert!(!ready && matches!(error_of(&seen), Some((s, c, _)) if s == "FATAL" && c == "08P01"), "{seen:?}");

    // A query instead of the password: FATAL, closed.
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "anna"), ("database", "acme")]).await;
    assert_eq!(pg.read().await, Some(Msg::Auth(3)));
    pg.send(&Pg::query_bytes(&attack)).await;
    let (seen, ready) = pg.until_ready().await;
    assert!(!ready && matches!(error_of(&seen), Some((s, c, _)) if s == "FATAL" && c == "08P01"), "{seen:?}");

    // The attacker's connection was read to its end after the FATAL, so the server is done
    // with it: a COPY it ran would have written by now.
    still_answers(&server).await;
    assert!(!target.exists(), "the COPY ran: {}", target.display());
    assert_eq!(disk(server.root.path()), before);
}

#[tokio::test]
async fn explain_and_every_path_stay_read_only() {
    let server = three_tenants(Limits::default()).await;
    let before = disk(server.root.path());
    let target = scratch("explain-copy.csv");
    let attacks = [
        format!("EXPLAIN ANALYZE COPY (SELECT * FROM crm.deals) TO '{}'", target.display()),
        format!("EXPLAIN COPY (SELECT 1) TO '{}'", target.display()),
        "EXPLAIN ANALYZE INSERT INTO crm.departments SELECT * FROM crm.departments".to_string(),
        "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1".to_string(),
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}'", target.display()),
        "INSERT INTO crm.departments SELECT * FROM crm.departments".to_string(),
        "DROP TABLE crm.deals".to_string(),
        "SELECT 1; INSERT INTO crm.departments SELECT * FROM crm.departments".to_string(),
    ];
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    for sql in &attacks {
        let seen = pg.simple(sql).await;
        let (_, code, message) = error_of(&seen).unwrap_or_else(|| panic!("not refused over the simple protocol: {sql}: {seen:?}"));
        assert!(message.contains("read-only") || code == "25006", "{sql}: {code} {message}");
        if !sql.starts_with("SELECT 1;") {
            let seen = pg.extended(sql).await;
            let (_, code, message) = error_of(&seen).unwrap_or_else(|| panic!("not refused over the extended protocol: {sql}: {seen:?}"));
            assert!(message.contains("read-only") || code == "25006", "{sql}: {code} {message}");
        }
    }
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    for sql in &attacks[..4] {
        let e = query(&mut flight, sql).await.expect_err(sql);
        assert!(e.contains("read-only"), "{sql}: {e}");
    }
    assert!(!target.exists());
    assert_eq!(disk(server.root.path()), before);
    // The simple query's first statement ran; the connection still works.
    let seen = pg.simple("SELECT 2").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("2".to_string())]]);
    still_answers(&server).await;
}

#[tokio::test]
async fn only_client_settings_can_be_set_whatever_the_quoting() {
    let server = three_tenants(Limits { max_result_rows: 100, ..Limits::default() }).await;
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    for sql in [
        "SET \"salespulse_session\".name = 'admin'",
        "SET \"datafusion\".runtime.memory_limit = '8G'",
        "SET datafusion.execution.batch_size = 1",
        "SET \"DataFusion\".\"execution\".time_zone = 'Asia/Tokyo'",
        "SET salespulse.calls.success_threshold_seconds = 1",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION root",
        "RESET datafusion.execution.batch_size",
    ] {
        for seen in [pg.simple(sql).await, pg.extended(sql).await] {
            let (_, code, message) = error_of(&seen).unwrap_or_else(|| panic!("accepted: {sql}"));
            assert!(code == "42501" || code == "42704", "{sql}: {code} {message}: {seen:?}");
            assert!(message.contains("session settings a client may change"), "{message}");
        }
    }
    // What the real clients send is accepted and answered per connection.
    for sql in [
        "SET extra_float_digits = 3",
        "SET application_name = 'PostgreSQL JDBC Driver'",
        "set search_path = public, \"$user\"",
        "SET SESSION TIMEZONE TO 'UTC'",
        "SET TIME ZONE 'Europe/Moscow'",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SET statement_timeout = 0",
        "SET client_min_messages TO warning",
        "RESET ALL",
        // Metabase on every connection it takes; asyncpg's pool reset; DBeaver's role reset.
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
        "CLOSE ALL; UNLISTEN *; RESET ALL;",
        "SET ROLE NONE",
        "DISCARD ALL",
        "SET application_name = 'mine'",
    ] {
        let seen = pg.simple(sql).await;
        assert!(error_of(&seen).is_none(), "{sql}: {seen:?}");
    }
    let seen = pg.simple("SHOW application_name").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("mine".to_string())]]);
    // "on" would make pgx, lib/pq and pgjdbc (read-write targets) refuse the server.
    let seen = pg.simple("SHOW transaction_read_only").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("off".to_string())]]);
    // Nothing changed in the engine: the result cap and the session user are as before.
    let seen = pg.simple("SELECT * FROM generate_series(1, 500)").await;
    assert!(matches!(error_of(&seen), Some((_, c, m)) if c == "54000" && m.contains("limits.max_result_rows")), "{seen:?}");
    let other = Pg::login(server.pg_addr, "vera", "vera-pass", "acme").await;
    drop(other);
    let seen = pg.simple("SELECT DISTINCT \"user\" FROM system.queries").await;
    assert!(rows_of(&seen).iter().all(|r| r[0].as_deref() == Some("anna")), "{seen:?}");
    still_answers(&server).await;
}

#[tokio::test]
async fn deep_expressions_are_refused_before_planning_on_both_protocols() {
    let server = three_tenants(Limits::default()).await;
    let huge = format!("SELECT {}", vec!["1"; 50_000].join("+"));
    let deep_and = format!("SELECT count(*) FROM crm.deals WHERE {}", vec!["amount > 0"; 5_000].join(" AND "));
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    for sql in [&huge, &deep_and] {
        let seen = pg.simple(sql).await;
        let (_, code, message) = error_of(&seen).expect("refused");
        assert_eq!(code, "54000");
        assert!(message.contains("limits.max_expression_depth"), "{message}");
        let seen = pg.extended(sql).await;
        assert!(error_of(&seen).is_some_and(|(_, _, m)| m.contains("limits.max_expression_depth")), "{seen:?}");
        let e = query(&mut flight, sql).await.expect_err("refused");
        assert!(e.contains("limits.max_expression_depth"), "{e}");
    }
    // Just under the default limit, the debug build's worker stacks hold (the limit is what
    // keeps the process alive, so it is proven here, on the build the tests run).
    let limit = Limits::default().max_expression_depth;
    let terms = limit / 2 - 2;
    let chain = format!("SELECT {} AS n", vec!["1"; terms].join("+"));
    assert!(salespulse::catalog::expression_depth(&chain) <= limit);
    let seen = pg.simple(&chain).await;
    assert_eq!(rows_of(&seen), vec![vec![Some(terms.to_string())]], "{:?}", error_of(&seen));
    let (_, batches) = query(&mut flight, &chain).await.unwrap();
    assert_eq!(crate::common::rows(&batches), 1);
    let ands = format!("SELECT count(*) AS n FROM crm.deals WHERE {}", vec!["amount >= 0"; limit / 2 - 4].join(" OR "));
    let seen = pg.simple(&ands).await;
    assert!(error_of(&seen).is_none(), "{seen:?}");
    still_answers(&server).await;
}

#[tokio::test]
async fn every_statement_of_a_simple_query_is_limited() {
    let server = three_tenants(Limits { max_result_rows: 1_000, query_timeout: Duration::from_secs(2), ..Limits::default() }).await;
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    let seen = pg.simple("SELECT 1; SELECT * FROM generate_series(1, 5000)").await;
    assert!(rows_of(&seen).len() <= 1_000, "{} rows", rows_of(&seen).len());
    assert!(matches!(error_of(&seen), Some((_, c, m)) if c == "54000" && m.contains("limits.max_result_rows")), "{:?}", error_of(&seen));
    // A recursive CTE after a first statement stops at the deadline, holding the slot.
    let started = std::time::Instant::now();
    let seen = pg.simple("SELECT 1; WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r").await;
    assert!(matches!(error_of(&seen), Some((_, c, _)) if c == "57014" || c == "53200"), "{seen:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(server.gate.running(), 0);
    // Too many statements in one query.
    let many = vec!["SELECT 1"; 40].join("; ");
    let seen = pg.simple(&many).await;
    assert!(matches!(error_of(&seen), Some((_, _, m)) if m.contains("limits.max_statements_per_query")), "{seen:?}");
    still_answers(&server).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_slot_at_the_deadline() {
    let limits = Limits { query_timeout: Duration::from_secs(1), max_concurrent_queries: 2, queue_wait: Duration::from_millis(500), ..Limits::default() };
    let server = three_tenants(limits).await;
    // Two readers that never read a big result.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut pg = Pg::login(server.pg_addr, "vera", "vera-pass", "acme").await;
        pg.send(&Pg::query_bytes("SELECT repeat('x', 1000) AS pad, a.value FROM generate_series(1, 200000) a")).await;
        stalled.push(pg);
    }
    tokio::time::timeout(Duration::from_secs(10), server.gate.until_running(|n| n >= 2)).await.expect("both hold a slot while they run");
    assert_eq!(server.gate.running(), 2, "both hold a slot while they run");
    // Within the deadline plus the grace (1 s each), the slots are free although nobody read.
    let freed = tokio::time::timeout(Duration::from_secs(10), server.gate.until_running(|n| n == 0)).await;
    assert!(freed.is_ok(), "stalled readers still hold their slots");
    still_answers(&server).await;
}

#[tokio::test]
async fn a_suspended_portal_or_an_open_cursor_cannot_keep_its_slot_past_the_deadline() {
    let server = three_tenants(Limits { query_timeout: Duration::from_secs(1), ..Limits::default() }).await;
    for declare in [false, true] {
        let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
        if declare {
            assert!(error_of(&pg.simple("BEGIN").await).is_none());
            assert!(error_of(&pg.simple("DECLARE c CURSOR FOR SELECT * FROM crm.calls").await).is_none());
        } else {
            pg.send(&Pg::partial_bytes("SELECT * FROM crm.calls", 1)).await;
            let (seen, ready) = pg.until_ready().await;
            assert!(ready && rows_of(&seen).len() == 1, "{seen:?}");
        }
        if declare {
            assert_eq!(server.gate.running(), 1, "the open cursor holds its slot");
            // The client says nothing more: a second past the deadline the slot is free and
            // the connection is closed with 57014.
            let (seen, ready) = pg.until_ready().await;
            assert!(!ready && matches!(error_of(&seen), Some((s, c, _)) if s == "FATAL" && c == "57014"), "{seen:?}");
        }
        // A portal suspended by a partial Execute holds no slot once its rows stop (pgwire
        // keeps no stream between Executes); either way none is left past the deadline.
        let freed = tokio::time::timeout(Duration::from_secs(10), server.gate.until_running(|n| n == 0)).await;
        assert!(freed.is_ok(), "a slot outlived the deadline");
    }
}

#[tokio::test]
async fn cursors_hold_a_slot_and_are_bounded() {
    let server = three_tenants(Limits { max_prepared_per_connection: 3, ..Limits::default() }).await;
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    assert!(error_of(&pg.simple("BEGIN").await).is_none());
    let seen = pg.simple("DECLARE c1 CURSOR FOR SELECT * FROM crm.calls ORDER BY started_at").await;
    assert!(error_of(&seen).is_none(), "{seen:?}");
    assert_eq!(server.gate.running(), 1, "an open cursor holds a slot");
    let seen = pg.simple("FETCH 5 FROM c1").await;
    assert_eq!(rows_of(&seen).len(), 5, "{seen:?}");
    for name in ["c2", "c3"] {
        assert!(error_of(&pg.simple(&format!("DECLARE {name} CURSOR FOR SELECT 1")).await).is_none());
    }
    let seen = pg.simple("DECLARE c4 CURSOR FOR SELECT 1").await;
    assert!(matches!(error_of(&seen), Some((_, _, m)) if m.contains("limits.max_prepared_per_connection")), "{seen:?}");
    let seen = pg.simple(&format!("DECLARE c5 CURSOR FOR SELECT {}", vec!["1"; 3000].join("+"))).await;
    assert!(error_of(&seen).is_some());
    assert!(error_of(&pg.simple("CLOSE c1").await).is_none());
    assert!(error_of(&pg.simple("CLOSE ALL").await).is_none());
    assert_eq!(server.gate.running(), 0, "closed cursors give their slots back");
    assert!(error_of(&pg.simple("COMMIT").await).is_none());
}

#[tokio::test]
async fn a_user_learns_nothing_of_other_tenants() {
    let server = three_tenants(Limits::default()).await;
    // boris (beta) connects first and last: anna's catalog must not follow his.
    let mut boris = Pg::login(server.pg_addr, "boris", "boris-pass", "beta").await;
    let mut anna = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    let _boris2 = Pg::login(server.pg_addr, "boris", "boris-pass", "beta").await;
    for sql in ["SELECT datname FROM pg_catalog.pg_database", "SELECT DISTINCT table_catalog FROM information_schema.tables"] {
        let seen = anna.simple(sql).await;
        let names: Vec<String> = rows_of(&seen).into_iter().filter_map(|r| r[0].clone()).collect();
        assert!(!names.is_empty(), "{sql}: {seen:?}");
        assert!(names.iter().all(|n| n == "acme" || n == "postgres"), "{sql}: anna sees {names:?}");
    }
    let seen = boris.simple("SELECT datname FROM pg_catalog.pg_database").await;
    assert!(rows_of(&seen).iter().all(|r| matches!(r[0].as_deref(), Some("beta" | "postgres"))), "{seen:?}");
    // Fully qualified names of another tenant do not resolve, and errors name nothing of it.
    for sql in ["SELECT * FROM beta.crm.deals", "SELECT * FROM gamma.crm.deals", "SELECT * FROM crm.no_such_table"] {
        let seen = anna.simple(sql).await;
        let (_, _, message) = error_of(&seen).expect("refused");
        assert!(!message.contains("gamma") || sql.contains("gamma"), "{message}");
        assert!(!message.contains(server.root.path().to_str().unwrap()), "a storage path leaked: {message}");
    }
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    let e = query(&mut flight, "SELECT * FROM crm.no_such_table").await.unwrap_err();
    assert!(!e.contains("gamma") && !e.contains(server.root.path().to_str().unwrap()), "{e}");
    // pg_catalog is a PostgreSQL session's, not the tenant's: Flight SQL does not see it.
    let e = query(&mut flight, "SELECT * FROM acme.pg_catalog.pg_class").await;
    assert!(e.is_err(), "{e:?}");
}

#[tokio::test]
async fn results_that_depend_on_the_user_are_never_shared() {
    let server = three_tenants(Limits::default()).await;
    let mut anna = server.client().await;
    anna.handshake("anna", "anna-pass").await.unwrap();
    // alex reads the same tenants as anna: only the user tells their results apart.
    let mut vera = server.client().await;
    vera.handshake("alex", "alex-pass").await.unwrap();
    query(&mut anna, "SELECT 1").await.unwrap();
    query(&mut vera, "SELECT 2").await.unwrap();
    for sql in ["SELECT DISTINCT user_name FROM \"system\".queries", "SELECT DISTINCT user_name FROM system.queries"] {
        let (_, first) = query(&mut anna, sql).await.unwrap();
        let (_, theirs) = query(&mut vera, sql).await.unwrap();
        for (who, batches) in [("anna", &first), ("alex", &theirs)] {
            let names = arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string();
            assert!(names.contains(who), "{who} does not see their own queries:\n{names}");
            let other = if who == "anna" { "alex" } else { "anna" };
            assert!(!names.contains(other), "{who} got {other}'s rows for {sql}:\n{names}");
        }
    }
}

#[tokio::test]
async fn connections_are_capped_and_idle_ones_closed_on_every_port() {
    let limits = Limits { max_connections_per_port: 3, login_timeout: Duration::from_secs(1), idle_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = three_tenants(limits).await;
    // PostgreSQL: three silent sockets fill the port; the fourth is told why and closed.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.pg_addr).await.unwrap());
    }
    // The accept loop counts connections in the order the kernel queued them, so these are
    // counted before the next one: nothing to wait for.
    let mut fourth = Pg::connect(server.pg_addr).await;
    let (seen, ready) = fourth.until_ready().await;
    assert!(!ready && matches!(error_of(&seen), Some((s, c, m)) if s == "FATAL" && c == "53300" && m.contains("limits.max_connections_per_port")), "{seen:?}");
    // The silent ones are closed at the login deadline, and the port serves again.
    for mut socket in silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("closed within the login timeout");
        assert!(matches!(read, Ok(0) | Err(_)) || buf[0] == b'E', "{read:?}");
    }
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    // A logged-in connection that says nothing past the idle timeout is closed with 57P05.
    let (seen, ready) = pg.until_ready().await;
    assert!(!ready && matches!(error_of(&seen), Some((s, c, _)) if s == "FATAL" && c == "57P05"), "{seen:?}");

    // Flight SQL: three idle sockets fill the port; a client's call is refused clearly.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The accept loop counts connections in the order the kernel queued them, so these are
    // counted before the next one: nothing to wait for.
    let mut flight = server.client().await;
    let e = flight.handshake("anna", "anna-pass").await.expect_err("over the cap");
    assert!(e.to_string().contains("limits.max_connections_per_port"), "{e}");
    drop(flight);
    drop(idle);
    // Idle connections close after the idle timeout, freeing the port.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut flight = server.client().await;
        match flight.handshake("anna", "anna-pass").await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < until => {
                assert!(e.to_string().contains("max_connections_per_port"), "{e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("the port never freed: {e}"),
        }
    }
}

#[tokio::test]
async fn a_flight_client_that_stops_reading_loses_its_slot_at_the_deadline() {
    let limits = Limits { query_timeout: Duration::from_secs(1), ..Limits::default() };
    let server = three_tenants(limits).await;
    let mut flight = server.client().await;
    flight.handshake("vera", "vera-pass").await.unwrap();
    let info = flight.execute("SELECT repeat('x', 1000) AS pad, a.value FROM generate_series(1, 500000) a".to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let unread = flight.do_get(ticket).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.gate.until_running(|n| n >= 1)).await.expect("the query holds a slot");
    assert_eq!(server.gate.running(), 1);
    let freed = tokio::time::timeout(Duration::from_secs(10), server.gate.until_running(|n| n == 0)).await;
    assert!(freed.is_ok(), "an unread result still holds its slot");
    // What the client reads at last ends with the timeout, never a silently cut result.
    let read: Result<Vec<_>, _> = futures::TryStreamExt::try_collect::<Vec<_>>(unread).await;
    let e = read.expect_err("ends with an error");
    assert!(e.to_string().contains("limits.query_timeout_seconds"), "{e}");
    still_answers(&server).await;
}

/// One HTTP/1.1 request over a raw socket; the status line's code and the body.
async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn refresh_is_a_permission_of_its_own_and_http_is_capped() {
    use base64::Engine;
    let limits = Limits { max_connections_per_port: 2, login_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = three_tenants(limits).await;
    let before = disk(server.root.path());
    let basic = base64::engine::general_purpose::STANDARD.encode("anna:anna-pass");
    let post = |auth: &str| format!("POST /tenants/acme/refresh HTTP/1.1\r\nhost: x\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
    let (code, text) = http(server.http_addr, &post("")).await;
    assert_eq!(code, 401, "{text}");
    let (code, text) = http(server.http_addr, &post(&format!("authorization: Basic {basic}\r\n"))).await;
    assert_eq!(code, 403, "a reader may not spend the CRM's quota: {text}");
    assert!(text.contains("refresh = true"), "{text}");
    let (code, _) = http(server.http_addr, &format!("POST /tenants/beta/refresh HTTP/1.1\r\nhost: x\r\nauthorization: Basic {basic}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")).await;
    assert_eq!(code, 404, "another tenant looks like none");
    assert_eq!(disk(server.root.path()), before, "nothing was refreshed");
    // Two half-sent requests fill the port; the next connection is told 503.
    let mut half = Vec::new();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(server.http_addr).await.unwrap();
        socket.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
        half.push(socket);
    }
    // The accept loop counts connections in the order the kernel queued them, so these are
    // counted before the next one: nothing to wait for.
    let (code, text) = http(server.http_addr, "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("limits.max_connections_per_port"), "{text}");
    // The half-sent requests are closed once their headers are late (the login timeout),
    // and the port serves again.
    for mut socket in half {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "a half-sent request is still open after 10 s");
    }
    let (code, text) = http(server.http_addr, &format!("GET /health HTTP/1.1\r\nhost: x\r\nauthorization: Basic {basic}\r\nconnection: close\r\n\r\n")).await;
    assert!(code == 200 || code == 503 && !text.contains("max_connections_per_port"), "{code} {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_attacks_fifty_clients_are_served() {
    let server = three_tenants(Limits { query_timeout: Duration::from_secs(20), queue_wait: Duration::from_secs(30), ..Limits::default() }).await;
    let before = disk(server.root.path());
    // A burst of the attacks above, on both protocols.
    let mut attacker = Pg::connect(server.pg_addr).await;
    attacker.startup(&[("user", "anna"), ("database", "acme"), ("salespulse.allowed", "*")]).await;
    let _ = attacker.until_ready().await;
    let mut attacker = Pg::connect(server.pg_addr).await;
    attacker.startup(&[("user", "anna"), ("database", "acme")]).await;
    let _ = attacker.read().await;
    let mut burst = Pg::password_bytes("wrong");
    burst.extend(Pg::query_bytes("EXPLAIN ANALYZE INSERT INTO crm.departments SELECT * FROM crm.departments"));
    attacker.send(&burst).await;
    let _ = attacker.until_ready().await;
    let mut pg = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    for sql in [
        format!("SELECT {}", vec!["1"; 50_000].join("+")),
        "SET \"datafusion\".execution.batch_size = 1".to_string(),
        "EXPLAIN ANALYZE INSERT INTO crm.departments SELECT * FROM crm.departments".to_string(),
        "SELECT 1; SELECT * FROM beta.crm.deals".to_string(),
    ] {
        assert!(error_of(&pg.simple(&sql).await).is_some(), "{sql:.60}");
    }
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    assert!(query(&mut flight, &format!("SELECT {}", vec!["1"; 50_000].join("+"))).await.is_err());
    // Then fifty clients at once, half on each protocol, every one answered.
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (pg_addr, who) = (server.pg_addr, ["anna", "boris", "vera", "root"][i % 4]);
        let database = if who == "boris" { "beta" } else { "acme" };
        if i % 2 == 0 {
            clients.spawn(async move {
                let mut pg = Pg::login(pg_addr, who, &format!("{who}-pass"), database).await;
                let seen = pg.simple("SELECT count(*) FROM crm.deals").await;
                assert_eq!(rows_of(&seen).len(), 1, "{who}: {seen:?}");
            });
        } else {
            let mut flight = server.client().await;
            clients.spawn(async move {
                flight.handshake(who, &format!("{who}-pass")).await.unwrap();
                flight.set_header("database", database);
                let (_, batches) = query(&mut flight, "SELECT count(*) FROM crm.deals").await.unwrap();
                assert_eq!(crate::common::rows(&batches), 1);
            });
        }
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    assert_eq!(server.gate.running(), 0);
    assert_eq!(disk(server.root.path()), before);
}

#[tokio::test]
async fn flight_sql_tokens_updates_and_parameters_stay_bounded() {
    use arrow_flight::flight_service_client::FlightServiceClient;
    let server = three_tenants(Limits { max_sql_bytes: 10_000, ..Limits::default() }).await;
    let mut flight = server.client().await;
    flight.handshake("anna", "anna-pass").await.unwrap();
    let token = flight.token().cloned().unwrap();
    // A bearer token presented at the handshake comes back as it is: not renewed.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut raw = FlightServiceClient::new(channel);
    let mut request = tonic::Request::new(futures::stream::iter(vec![arrow_flight::HandshakeRequest::default()]));
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let answer = raw.handshake(request).await.unwrap();
    assert_eq!(answer.metadata().get("authorization").unwrap().to_str().unwrap(), format!("Bearer {token}"));
    // Updates are refused as what they are.
    for sql in ["SET datafusion.execution.batch_size = 1", "INSERT INTO crm.departments SELECT * FROM crm.departments"] {
        let e = flight.execute_update(sql.to_string(), None).await.expect_err(sql);
        assert!(e.to_string().contains("read-only"), "{sql}: {e}");
    }
    // Parameters larger than the SQL limit are refused as they arrive.
    let mut prepared = flight.prepare("SELECT ? AS p".to_string(), None).await.unwrap();
    let huge = arrow::array::StringArray::from(vec!["x".repeat(100_000)]);
    let batch = arrow::array::RecordBatch::try_from_iter([("p", std::sync::Arc::new(huge) as arrow::array::ArrayRef)]).unwrap();
    prepared.set_parameters(batch).unwrap();
    let e = prepared.execute().await.expect_err("too large");
    assert!(e.to_string().contains("limits.max_sql_bytes"), "{e}");
    // `?` placeholders keep '' escapes.
    let mut prepared = flight.prepare("SELECT 'O''Brien' AS n, ? AS p".to_string(), None).await.unwrap();
    let one = arrow::array::RecordBatch::try_from_iter([("p", std::sync::Arc::new(arrow::array::Int64Array::from(vec![7])) as arrow::array::ArrayRef)]).unwrap();
    prepared.set_parameters(one).unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = crate::common::fetch(&mut flight, info).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    assert!(text.contains("O'Brien") && text.contains('7'), "{text}");
}
