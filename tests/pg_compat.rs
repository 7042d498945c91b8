//! What PostgreSQL clients read from the server before they run a query (one version
//! everywhere, the server settings) and the export path they use for bulk reads
//! (`COPY … TO STDOUT` in text, CSV and binary, simple and extended). The real programs run in
//! tests/clients; these tests pin the protocol-level behaviour they rely on.

use salespulse::config::Limits;

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
