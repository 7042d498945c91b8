//! The `salespulse` binary as a user runs it: demo snapshot, query in three formats, errors.

use std::process::{Command, Output};

fn salespulse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salespulse")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_then_query_as_table_csv_and_json() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let out = salespulse(&["demo", "--scale", "0.01", "--as-of", crate::common::AS_OF, "--data", dir, "--no-serve"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("calls"), "{}", text(&out.stdout));

    let sql = "SELECT status, count(*) AS n FROM crm.deals GROUP BY 1 ORDER BY 1";
    let table = salespulse(&["query", "--data", dir, sql]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    assert!(text(&table.stdout).contains("| status |"), "{}", text(&table.stdout));

    let csv = salespulse(&["query", "--data", dir, "--format", "csv", sql]);
    let csv = text(&csv.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "status,n");
    assert_eq!(lines.len(), 4, "{csv}");

    let json = salespulse(&["query", "--data", dir, "--format", "json", sql]);
    for line in text(&json.stdout).lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(row["n"].as_i64().unwrap() > 0);
    }

    // A JSON line carries every column, NULL as null.
    let json = salespulse(&["query", "--data", dir, "--format", "json", "SELECT 1 AS a, CAST(NULL AS VARCHAR) AS b, closed_at FROM crm.deals WHERE closed_at IS NULL LIMIT 2"]);
    let lines: Vec<serde_json::Value> = text(&json.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", text(&json.stderr));
    for row in &lines {
        assert_eq!(row, &serde_json::json!({"a": 1, "b": null, "closed_at": null}));
    }

    let empty = salespulse(&["query", "--data", dir, "--format", "csv", "SELECT call_id FROM crm.calls WHERE false"]);
    assert_eq!(text(&empty.stdout).trim(), "call_id", "a header even for 0 rows");
}

#[test]
fn user_mistakes_exit_non_zero_with_one_clear_line() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let config = data.path().join("open.toml").to_string_lossy().into_owned();
    std::fs::write(&config, "[storage]\nroot = \"data\"\n[[tenants]]\nname = \"acme\"\n[tenants.source]\nkind = \"demo\"\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["query", "--data", "/no/such/folder", "SELECT 1"], "no such folder"),
        (vec!["query", "--data", dir, "--tenant", "acme", "SELECT 1"], "--tenant acme: no such tenant"),
        (vec!["query", "DROP TABLE x"], "read-only"),
        (vec!["refresh", "--config", "/no/such.toml"], "cannot read config file /no/such.toml"),
        (vec!["demo", "--scale", "0", "--data", dir], "--scale must be above 0"),
        (vec!["demo", "--scale", "0.01", "--data", dir, "--flight-sql", "0.0.0.0:0"], "refusing to serve 0.0.0.0:0 (--flight-sql) without authentication"),
        (vec!["serve", "--config", &config, "--postgres", "0.0.0.0:0"], "refusing to serve 0.0.0.0:0 (server.postgres) without authentication"),
    ];
    for (args, expected) in cases {
        let out = salespulse(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn refresh_and_check_a_files_tenant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("exports")).unwrap();
    std::fs::write(dir.path().join("exports/deals.csv"), "deal_id,status,created_at,amount\n1,won,2025-06-30 12:00,1000\n").unwrap();
    std::fs::write(
        dir.path().join("salespulse.toml"),
        "[storage]\nroot = \"data\"\n[[tenants]]\nname = \"acme\"\ntimezone = \"Europe/Moscow\"\n[tenants.source]\nkind = \"files\"\npath = \"exports\"\n",
    )
    .unwrap();
    let config = dir.path().join("salespulse.toml");
    let config = config.to_str().unwrap();
    let check = salespulse(&["check", "--config", config]);
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(text(&check.stdout).contains("acme: source files ok"), "{}", text(&check.stdout));
    let refresh = salespulse(&["refresh", "--config", config]);
    assert!(refresh.status.success(), "{}", text(&refresh.stderr));
    let q = salespulse(&["query", "--config", config, "--format", "csv", "SELECT deal_id, amount FROM deals"]);
    assert_eq!(text(&q.stdout), "deal_id,amount\n1,1000.00\n");
    // A bad export: refresh fails, the snapshot stays.
    std::fs::write(dir.path().join("exports/deals.csv"), "deal_id,status,created_at\n2,won,soon\n").unwrap();
    let refresh = salespulse(&["refresh", "--config", config]);
    assert!(!refresh.status.success());
    assert!(text(&refresh.stderr).contains("line 2, column created_at"), "{}", text(&refresh.stderr));
    let q = salespulse(&["query", "--config", config, "--format", "csv", "SELECT deal_id FROM deals"]);
    assert_eq!(text(&q.stdout), "deal_id\n1\n");
}

#[test]
fn query_takes_a_calendar_file_without_any_data() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "format_version = 1\ndefault_calendar = \"shop\"\n[calendars.shop]\ntimezone = \"Europe/Berlin\"\n[calendars.shop.week]\nsat = [\"10:00-14:00\"]\n").unwrap();
    let out = salespulse(&[
        "query", "--calendars", good.to_str().unwrap(), "--format", "csv",
        "SELECT working_seconds(TIMESTAMP '2025-06-07T00:00:00Z', TIMESTAMP '2025-06-08T00:00:00Z') AS s",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "s\n14400\n", "Saturday 10:00-14:00 Berlin time");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "format_version = 1\n[calendars.shop]\ntimezone = \"Europe/Berlin\"\n[calendars.shop.week]\nsat = [\"10:00-10:00\"]\n").unwrap();
    let out = salespulse(&["query", "--calendars", bad.to_str().unwrap(), "SELECT 1"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.toml: calendar shop: week.sat: window '10:00-10:00' has start = end"), "{stderr}");
}

/// A query replica accepts tickets and tokens another replica signed: started without the
/// shared secret, it would refuse every one of them, so it does not start.
#[test]
fn a_query_replica_needs_the_shared_token_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("salespulse.toml");
    std::fs::write(&config, "[storage]\nroot = \"data\"\n[[tenants]]\nname = \"acme\"\n[tenants.source]\nkind = \"demo\"\nscale = 0.01\n").unwrap();
    let config = config.to_str().unwrap();
    let out = salespulse(&["serve", "--config", config, "--role", "query", "--flight-sql", "127.0.0.1:0", "--postgres", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("server.role = \"query\" needs server.token_secret_env"), "{stderr}");

    let out = salespulse(&["serve", "--config", config, "--role", "reader"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid value 'reader' for '--role"), "{}", text(&out.stderr));
    let out = salespulse(&["serve", "--config", config, "--replica", "a/b"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("'a/b' is not a replica name"), "{}", text(&out.stderr));
}
