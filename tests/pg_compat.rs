//! What PostgreSQL clients read from the server before they run a query (one version
//! everywhere, the server settings) and the export path they use for bulk reads
//! (`COPY … TO STDOUT` in text, CSV and binary, simple and extended). The real programs run in
//! tests/clients; these tests pin the protocol-level behaviour they rely on.

use std::time::Duration;

use salespulse_config::config::Limits;

use crate::common::TestServer;
use crate::common::pg_wire::{Msg, Pg, error_of, rows_of};

async fn demo_server() -> TestServer {
    TestServer::spawn(&["demo"], &["demo"]).await
}

/// Logs in without a password (no `[[users]]`), keeping the ParameterStatus messages.
async fn login(server: &TestServer) -> (Pg, Vec<Msg>) {
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "demo"), ("database", "demo")]).await;
    let (seen, ready) = pg.until_ready().await;
    assert!(ready, "login failed: {seen:?}");
    (pg, seen)
}

fn one_value(seen: &[Msg]) -> String {
    let rows = rows_of(seen);
    assert_eq!(rows.len(), 1, "{seen:?}");
    rows[0][0].clone().unwrap_or_default()
}

fn copy_data(seen: &[Msg]) -> Vec<u8> {
    seen.iter().filter_map(|m| if let Msg::CopyData(d) = m { Some(d.clone()) } else { None }).flatten().collect()
}

#[tokio::test]
async fn one_postgresql_version_in_every_place_a_client_reads_it() {
    let server = demo_server().await;
    let (mut pg, seen) = login(&server).await;
    let startup = seen
        .iter()
        .find_map(|m| if let Msg::Parameter(name, value) = m { (name == "server_version").then(|| value.clone()) } else { None })
        .expect("server_version at startup");
    assert!(startup.starts_with("16.6 (salespulse "), "{startup}");
    assert!(startup.contains("DataFusion"), "{startup}");
    assert_eq!(one_value(&pg.simple("SHOW server_version").await), startup);
    assert_eq!(one_value(&pg.simple("SELECT current_setting('server_version')").await), startup);
    assert_eq!(one_value(&pg.simple("SELECT setting FROM pg_catalog.pg_settings WHERE name = 'server_version'").await), startup);
    assert_eq!(one_value(&pg.simple("SHOW server_version_num").await), "160006");
    assert_eq!(one_value(&pg.simple("SELECT pg_catalog.current_setting('server_version_num')").await), "160006");
    // SQLAlchemy's PostgreSQL dialect: `.*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?…` on
    // `select pg_catalog.version()`.
    let version = one_value(&pg.simple("select pg_catalog.version()").await);
    assert!(version.starts_with(&format!("PostgreSQL {}", &startup[..startup.len() - 1])), "{version}");
    // pgjdbc's getMaxIndexKeys.
    assert_eq!(one_value(&pg.simple("SELECT setting FROM pg_catalog.pg_settings WHERE name='max_index_keys'").await), "32");
    // An unknown setting is PostgreSQL's error, or NULL when missing_ok.
    let seen = pg.simple("SELECT current_setting('no_such_setting')").await;
    assert!(error_of(&seen).is_some_and(|(_, _, m)| m.contains("unrecognized configuration parameter \"no_such_setting\"")), "{seen:?}");
    assert_eq!(rows_of(&pg.simple("SELECT current_setting('no_such_setting', true)").await), vec![vec![None]]);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn copy_to_stdout_exports_text_csv_and_binary() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    let expected = rows_of(&pg.simple("SELECT deal_id, status FROM crm.deals ORDER BY deal_id LIMIT 3").await);
    let text_of = |rows: &[Vec<Option<String>>], sep: &str| -> String {
        rows.iter().map(|r| r.iter().map(|v| v.clone().unwrap_or_default()).collect::<Vec<_>>().join(sep) + "\n").collect()
    };

    let seen = pg.simple("COPY (SELECT deal_id, status FROM crm.deals ORDER BY deal_id LIMIT 3) TO STDOUT").await;
    assert!(seen.contains(&Msg::CopyOut { format: 0, columns: 2 }), "{seen:?}");
    assert!(seen.contains(&Msg::CopyDone) && seen.contains(&Msg::Complete("COPY 3".into())), "{seen:?}");
    assert_eq!(String::from_utf8(copy_data(&seen)).unwrap(), text_of(&expected, "\t"));

    let seen = pg.simple("COPY (SELECT deal_id, status FROM crm.deals ORDER BY deal_id LIMIT 3) TO STDOUT WITH (FORMAT csv, HEADER true)").await;
    assert_eq!(String::from_utf8(copy_data(&seen)).unwrap(), format!("deal_id,status\n{}", text_of(&expected, ",")));

    // A table with a column list, in the pre-9.0 syntax.
    let seen = pg.simple("COPY crm.departments (department_id, name) TO STDOUT CSV HEADER").await;
    let csv = String::from_utf8(copy_data(&seen)).unwrap();
    assert!(csv.starts_with("department_id,name\n") && csv.lines().count() > 2, "{csv}");

    // Binary: the PGCOPY header, one tuple (field count, length, big-endian int4), the trailer.
    let seen = pg.simple("COPY (SELECT CAST(7 AS INT) AS n) TO STDOUT WITH BINARY").await;
    assert!(seen.contains(&Msg::CopyOut { format: 1, columns: 1 }), "{seen:?}");
    let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
    expected.extend([0u8; 8]);
    expected.extend(1u16.to_be_bytes());
    expected.extend(4i32.to_be_bytes());
    expected.extend(7i32.to_be_bytes());
    expected.extend((-1i16).to_be_bytes());
    assert_eq!(copy_data(&seen), expected);
    // No rows: still a valid file (header and trailer).
    let seen = pg.simple("COPY (SELECT CAST(7 AS INT) AS n WHERE false) TO STDOUT (FORMAT binary)").await;
    let mut empty = b"PGCOPY\n\xff\r\n\0".to_vec();
    empty.extend([0u8; 8]);
    empty.extend((-1i16).to_be_bytes());
    assert_eq!(copy_data(&seen), empty);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn copy_over_the_extended_protocol_is_described_as_no_data() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    // ConnectorX (rust-postgres `copy_out`) prepares the COPY, then binds and executes it.
    let seen = pg.extended("COPY (SELECT deal_id FROM crm.deals ORDER BY deal_id LIMIT 2) TO STDOUT WITH (FORMAT binary)").await;
    assert!(error_of(&seen).is_none(), "{seen:?}");
    assert!(seen.contains(&Msg::NoData), "Describe of a COPY: {seen:?}");
    assert!(seen.contains(&Msg::CopyOut { format: 1, columns: 1 }), "{seen:?}");
    assert!(seen.contains(&Msg::Complete("COPY 2".into())), "{seen:?}");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn copy_stays_read_only_and_under_the_limits() {
    let limits = Limits { max_result_rows: 5, ..Limits::default() };
    let server = TestServer::spawn_limited(&["demo"], &["demo"], Vec::new(), limits).await;
    let (mut pg, _) = login(&server).await;
    for (sql, code, says) in [
        ("COPY crm.deals FROM STDIN", "25006", "COPY … FROM is not allowed"),
        ("COPY (SELECT 1) TO '/tmp/salespulse-copy-attack'", "25006", "psql: \\copy"),
        ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/salespulse-copy-attack'", "25006", "not allowed"),
        ("COPY (SELECT 1) TO STDOUT (FORMAT json)", "0A000", "use text, csv or binary"),
        ("COPY (SELECT 1) TO STDOUT (FORMAT binary, HEADER true)", "0A000", "BINARY"),
        ("COPY (SELECT 1) TO STDOUT (FREEZE true)", "0A000", "COPY … FROM only"),
        ("COPY (DELETE FROM crm.deals) TO STDOUT", "", ""),
        ("COPY (SELECT * FROM crm.no_such_table) TO STDOUT", "42P01", "no_such_table"),
    ] {
        let seen = pg.simple(sql).await;
        let (_, got_code, got) = error_of(&seen).unwrap_or_else(|| panic!("{sql} was not refused: {seen:?}"));
        assert!(code.is_empty() || got_code == code, "{sql}: {got_code} {got}");
        assert!(got.contains(says), "{sql}: {got}");
        assert!(copy_data(&seen).is_empty(), "{sql} sent data");
    }
    assert!(!std::path::Path::new("/tmp/salespulse-copy-attack").exists());
    // The row cap applies to exports: a partial export ends in an error, never as complete.
    let seen = pg.simple("COPY (SELECT * FROM crm.calls) TO STDOUT").await;
    let (_, code, text) = error_of(&seen).expect("over the row cap");
    assert_eq!(code, "54000", "{text}");
    assert!(!seen.iter().any(|m| matches!(m, Msg::Complete(tag) if tag.starts_with("COPY"))), "{seen:?}");
    // The connection still answers.
    assert_eq!(one_value(&pg.simple("SELECT 1").await), "1");
    server.shutdown_and_wait().await;
}

fn user(name: &str, tenants: Option<&[&str]>) -> salespulse_config::config::UserConfig {
    salespulse_config::config::UserConfig {
        name: name.into(),
        password: salespulse_config::config::PasswordSecret::Plain(format!("{name}-pass")),
        tenants: tenants.map(|t| t.iter().map(|s| s.to_string()).collect()),
        api_token_sha256: None,
        may_refresh: false,
    }
}

#[tokio::test]
async fn the_postgresql_information_schema_shows_only_the_users_tenants_with_postgresql_types() {
    let users = vec![user("anna", Some(&["acme"])), user("root", None)];
    let server = TestServer::spawn_with_users(&["acme", "beta"], &["acme", "beta"], users).await;
    let mut anna = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    for sql in [
        "SELECT DISTINCT table_catalog FROM information_schema.tables",
        "SELECT DISTINCT table_catalog FROM information_schema.columns",
        "SELECT DISTINCT catalog_name FROM information_schema.schemata",
        "SELECT DISTINCT table_catalog FROM information_schema.views",
    ] {
        assert_eq!(rows_of(&anna.simple(sql).await), vec![vec![Some("acme".to_string())]], "{sql}");
    }
    assert_eq!(one_value(&anna.simple("SELECT count(*) FROM information_schema.columns WHERE table_catalog = 'beta'").await), "0");
    // PostgreSQL's names, not Arrow's: Grafana's and Metabase's type mapping read them.
    let seen = anna.simple("SELECT data_type, udt_name, is_nullable FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = 'deals' AND column_name = 'created_at'").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("timestamp with time zone".into()), Some("timestamptz".into()), Some("NO".into())]], "{seen:?}");
    let seen = anna.simple("SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = 'deals' AND column_name = 'amount'").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("numeric".into()), Some("18".into()), Some("2".into())]], "{seen:?}");
    // No keys are declared; the views exist and are empty (Metabase's sync joins them).
    assert_eq!(one_value(&anna.simple("SELECT count(*) FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kc ON tc.constraint_name = kc.constraint_name").await), "0");
    // The SHOW commands DataFusion answers from the information schema still work.
    assert!(error_of(&anna.simple("SHOW TABLES").await).is_none());
    let mut root = Pg::login(server.pg_addr, "root", "root-pass", "acme").await;
    assert_eq!(rows_of(&root.simple("SELECT DISTINCT table_catalog FROM information_schema.tables ORDER BY 1").await).len(), 2);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn catalog_queries_of_pgjdbc_metabase_and_sqlalchemy_plan_and_answer() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    // pgjdbc 42.5 getPrimaryKeys (PgDatabaseMetaData): a set-returning function in the
    // select list and a field of its composite result.
    let primary_keys = "SELECT result.TABLE_CAT, result.TABLE_SCHEM, result.TABLE_NAME, result.COLUMN_NAME, result.KEY_SEQ, result.PK_NAME FROM \
        (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME, (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, \
        ci.relname AS PK_NAME, information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct \
        JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid) \
        JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid) JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) \
        WHERE true AND n.nspname = E'crm' AND ct.relname = E'deals' AND i.indisprimary ) result where result.A_ATTNUM = (result.KEYS).x \
        ORDER BY result.table_name, result.pk_name, result.key_seq";
    let seen = pg.simple(primary_keys).await;
    assert!(error_of(&seen).is_none() && rows_of(&seen).is_empty(), "{seen:?}");
    // The set-returning function expands rows, numbered from 1.
    let seen = pg.simple("SELECT (_pg_expandarray(make_array(7, 9))).x AS x, (_pg_expandarray(make_array(7, 9))).n AS n").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("7".into()), Some("1".into())], vec![Some("9".into()), Some("2".into())]], "{seen:?}");
    // Metabase's foreign keys: `attnum = ANY(conkey)` needs conkey as an int2 array.
    let seen = pg.simple("SELECT c.conname FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_attribute a ON c.conrelid = a.attrelid WHERE a.attnum = ANY(c.conkey) AND c.contype = 'f'").await;
    assert!(error_of(&seen).is_none(), "{seen:?}");
    // SQLAlchemy's index reflection compares a boolean with 'f'.
    assert!(error_of(&pg.simple("SELECT count(*) FROM pg_catalog.pg_index ix WHERE ix.indisprimary = 'f'").await).is_none());
    // A read-only server grants reads, never writes (Metabase's is_writable).
    let seen = pg.simple("SELECT has_table_privilege('crm.deals', 'SELECT'), has_table_privilege('crm.deals', 'INSERT'), has_any_column_privilege('crm.deals', 'UPDATE')").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("t".into()), Some("f".into()), Some("f".into())]], "{seen:?}");
    // PostgreSQL's format() and duplicate unnamed columns (pgjdbc getProcedures).
    assert_eq!(one_value(&pg.simple("SELECT format('%I.%I', 'crm', 'Deals')").await), "crm.\"Deals\"");
    assert!(error_of(&pg.simple("SELECT NULL, NULL, NULL").await).is_none());
    // A PostgreSQL time template (Superset's PostgreSQL time filter).
    assert_eq!(one_value(&pg.simple("SELECT CAST(TO_TIMESTAMP('2026-01-02 03:04:05.000000', 'YYYY-MM-DD HH24:MI:SS.US') AS DATE)").await), "2026-01-02");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn search_path_savepoints_and_isolation_are_per_connection() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    let (mut other, _) = login(&server).await;
    assert_eq!(one_value(&pg.simple("SELECT current_schema()").await), "crm");
    pg.simple("SET search_path TO \"$user\", kpi").await;
    assert_eq!(one_value(&pg.simple("SELECT current_schema()").await), "kpi");
    // Unqualified names now resolve in kpi, on this connection only.
    assert!(error_of(&pg.simple("SELECT count(*) FROM funnel").await).is_none());
    assert!(error_of(&other.simple("SELECT count(*) FROM funnel").await).is_some());
    assert_eq!(one_value(&other.simple("SELECT current_schema()").await), "crm");
    // A path of schemas the tenant lacks leaves the default.
    pg.simple("SET search_path TO public").await;
    assert_eq!(one_value(&pg.simple("SELECT current_schema()").await), "crm");
    // Savepoints (psycopg 3's conn.transaction(), SQLAlchemy's nested transactions).
    for sql in ["BEGIN", "SAVEPOINT a", "SELECT 1", "ROLLBACK TO SAVEPOINT a", "RELEASE SAVEPOINT a", "COMMIT"] {
        let seen = pg.simple(sql).await;
        assert!(error_of(&seen).is_none(), "{sql}: {seen:?}");
    }
    pg.simple("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED").await;
    assert_eq!(one_value(&pg.simple("SHOW TRANSACTION ISOLATION LEVEL").await), "read uncommitted");
    assert_eq!(one_value(&other.simple("SHOW TRANSACTION ISOLATION LEVEL").await), "read committed");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn settings_and_lookups_that_once_broke_the_stream_or_answered_wrong() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    // A value too long for the ParameterStatus report is refused, and the connection lives.
    let long = format!("SET application_name = '{}'", "a".repeat(40_000));
    let seen = pg.simple(&long).await;
    assert!(error_of(&seen).is_some_and(|(_, code, m)| code == "22023" && m.contains("limit is 1024")), "{seen:?}");
    // A time zone the server would not apply is refused, not ignored.
    let seen = pg.simple("SET TIME ZONE 'garbage/zone'").await;
    assert!(error_of(&seen).is_some_and(|(_, code, _)| code == "22023"), "{seen:?}");
    assert_eq!(one_value(&pg.simple("SELECT 1").await), "1");
    // A computed relation name per row is never captured by the lookup's own aliases: it
    // resolves per row, or (DataFusion cannot decorrelate an expression of outer columns)
    // is refused; it never answers one oid for every row.
    let seen = pg
        .simple("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid WHERE n.nspname = 'crm' AND c.oid = CAST(format('%I.%I', n.nspname, c.relname) AS regclass)")
        .await;
    if error_of(&seen).is_none() {
        let matched: usize = one_value(&seen).parse().unwrap();
        let all: usize = one_value(&pg.simple("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid WHERE n.nspname = 'crm'").await).parse().unwrap();
        assert_eq!(matched, all);
    }
    // Constant names resolve, qualified, bare (in the current schema) or quoted.
    let seen = pg.simple("SELECT to_regclass('crm.deals') = to_regclass('deals'), to_regclass('\"crm\".\"deals\"') = to_regclass('deals'), to_regclass('crm.no_such') IS NULL").await;
    assert_eq!(rows_of(&seen), vec![vec![Some("t".into()), Some("t".into()), Some("t".into())]], "{seen:?}");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_correlated_subquery_in_the_select_list_answers_or_refuses_never_null() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    // datafusion-postgres's parser replaced it with NULL: every deal showed no calls.
    let sql = "SELECT d.deal_id, (SELECT count(*) FROM crm.calls c WHERE c.deal_id = d.deal_id) AS calls FROM crm.deals d ORDER BY d.deal_id LIMIT 5";
    let expected = rows_of(&pg.simple("SELECT d.deal_id, CAST(count(c.call_id) AS BIGINT) FROM crm.deals d LEFT JOIN crm.calls c ON c.deal_id = d.deal_id GROUP BY d.deal_id ORDER BY d.deal_id LIMIT 5").await);
    assert!(expected.iter().any(|r| r[1].as_deref() != Some("0")));
    assert_eq!(rows_of(&pg.simple(sql).await), expected);
    let seen = pg.extended(sql).await;
    assert_eq!(rows_of(&seen), expected, "{seen:?}");
    // Not aggregated: DataFusion's refusal, with its reason, instead of NULL.
    let seen = pg.simple("SELECT d.deal_id, (SELECT c.call_id FROM crm.calls c WHERE c.deal_id = d.deal_id) FROM crm.deals d LIMIT 1").await;
    assert!(error_of(&seen).is_some_and(|(_, _, m)| m.contains("must be aggregated")), "{seen:?}");
    server.shutdown_and_wait().await;
}

/// A rolling restart of a fleet's replica: on SIGTERM a query in flight finishes and its rows
/// reach the client; then each connection is closed with 57P01 (admin shutdown), the idle
/// ones at once, and the server stops once all are closed. (Before, every connection was
/// dropped the moment the server stopped, mid-query included.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_in_flight_finishes_when_the_server_stops() {
    let server = demo_server().await;
    let (mut idle, _) = login(&server).await;
    let (mut busy, _) = login(&server).await;
    // A query that takes about a second on this machine (measured, so a faster machine
    // does not finish it before the stop).
    // Each text once: a repeated one would come from the result cache.
    let sql = |n: u64| format!("SELECT sum(value % 7) FROM generate_series(1, {n})");
    let mut n = 1_000_000u64;
    loop {
        let started = std::time::Instant::now();
        let seen = busy.simple(&sql(n)).await;
        assert!(error_of(&seen).is_none(), "{seen:?}");
        let took = started.elapsed();
        if took >= Duration::from_millis(800) || n >= 4_000_000_000 {
            break;
        }
        n = (n as f64 * (1000.0 / took.as_millis().max(1) as f64)).min(4e9) as u64;
    }
    // One over the simple protocol, one over the extended (Parse, Bind, Execute, Sync sent
    // at once: the connection closes after the Sync's ReadyForQuery, never inside the batch).
    let (mut batch, _) = login(&server).await;
    busy.send(&Pg::query_bytes(&sql(n + 1))).await;
    batch.send(&Pg::extended_bytes(&sql(n + 2))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = tokio::spawn(server.shutdown_and_wait());
    let stop_asked = std::time::Instant::now();
    for pg in [&mut busy, &mut batch] {
        let (seen, ready) = pg.until_ready().await;
        assert!(ready && error_of(&seen).is_none() && rows_of(&seen).len() == 1, "the query in flight was cut: {seen:?}");
    }
    assert!(stop_asked.elapsed() > Duration::from_millis(100), "the queries ended before the stop: the test proves nothing");
    for pg in [&mut busy, &mut batch, &mut idle] {
        match pg.read().await {
            Some(Msg::Error { code, message, .. }) => assert!(code == "57P01" && message.contains("shutting down"), "{code} {message}"),
            other => panic!("expected 57P01, got {other:?}"),
        }
        assert!(pg.read().await.is_none(), "the connection is closed");
    }
    tokio::time::timeout(Duration::from_secs(10), stopped).await.expect("the server stops once its connections are closed").unwrap();
}

/// A replica that has not followed yet plans on the snapshot it serves; if that snapshot's
/// files were deleted meanwhile, the query runs once more on the snapshot CURRENT names,
/// with the connection's settings, instead of failing with "not found".
#[tokio::test]
async fn a_query_whose_snapshot_is_gone_runs_on_the_current_one() {
    let server = demo_server().await;
    let (mut pg, _) = login(&server).await;
    let served = server.catalog.tenant("demo").unwrap().manifest.clone().unwrap();
    let store = salespulse::snapshot::Store::open(server.root.path().to_str().unwrap()).unwrap();
    let source = salespulse::connectors::Source::Demo { scale: 0.02, seed: 7, as_of: Some(crate::common::AS_OF.parse().unwrap()) };
    let newer = salespulse::refresh::refresh_tenant(&store, &crate::common::tenant("demo"), source, 3).await.unwrap().report.manifest;
    std::fs::remove_dir_all(server.root.path().join("demo/snapshots").join(&served.snapshot_id)).unwrap();
    for sql in ["SELECT count(*), sum(duration_seconds) FROM crm.calls", "SELECT count(*), max(started_at) FROM calls WHERE duration_seconds >= 0"] {
        let seen = pg.simple(sql).await;
        assert!(error_of(&seen).is_none(), "{sql}: {seen:?}");
        assert_eq!(rows_of(&seen)[0][0].as_deref(), Some(newer.tables["calls"].rows.to_string().as_str()), "{sql}");
    }
    assert_eq!(server.catalog.tenant("demo").unwrap().manifest.as_ref().unwrap().snapshot_id, newer.snapshot_id);
}
