//! The files connector: CSV and JSON-lines exports in, the same canonical rows out; bad
//! rows stop the import with file, line, column and reason, and nothing is written.

use std::path::Path;

use arrow::compute::concat_batches;
use salespulse_config::config::{default_settings, SourceConfig, TenantConfig};
use salespulse::connectors::Source;
use salespulse::connectors::files::read_folder;
use salespulse::model::Table;
use salespulse::refresh::refresh_tenant;
use salespulse::snapshot::Store;

use crate::common::demo_dataset;

fn moscow() -> chrono_tz::Tz {
    chrono_tz::Europe::Moscow
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn demo_tables_exported_as_csv_and_json_lines_import_unchanged() {
    let data = demo_dataset();
    let dir = tempfile::tempdir().unwrap();
    for (i, t) in Table::ALL.iter().enumerate() {
        let batch = concat_batches(&t.schema(), &data.tables[t]).unwrap();
        // Half the tables as CSV, half as JSON lines.
        if i % 2 == 0 {
            let file = std::fs::File::create(dir.path().join(format!("{}.csv", t.name()))).unwrap();
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(file);
            w.write(&batch).unwrap();
        } else {
            let file = std::fs::File::create(dir.path().join(format!("{}.jsonl", t.name()))).unwrap();
            let mut w = arrow::json::LineDelimitedWriter::new(file);
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
    }
    let imported = read_folder(dir.path(), moscow(), |_| true).unwrap();
    for t in Table::ALL {
        let original = concat_batches(&t.schema(), &data.tables[t]).unwrap();
        let back = concat_batches(&t.schema(), &imported.tables[t]).unwrap();
        assert_eq!(original, back, "table {} changed on the way through files", t.name());
    }
}

#[test]
fn hand_written_exports_with_local_times_semicolons_and_decimal_commas() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deals.csv", "\u{feff}deal_id;status;amount;currency;created_at;closed_at\n\
        1;won;\"1 234,50\";RUB;2025-06-30 18:00:00;2025-07-01T10:00:00+03:00\n\
        2;OPEN;;RUB;2025-06-30 09:00;\n");
    write(dir.path(), "calls.jsonl", "{\"call_id\": 10, \"direction\": \"inbound\", \"status\": \"missed\", \"started_at\": \"2025-06-30T15:00:00Z\", \"duration_seconds\": 0}\n\n");
    let d = read_folder(dir.path(), moscow(), |_| true).unwrap();
    assert_eq!(d.rows(Table::Deals), 2);
    assert_eq!(d.rows(Table::Calls), 1);
    let deals = concat_batches(&Table::Deals.schema(), &d.tables[&Table::Deals]).unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&[deals.project(&[0, 4, 5, 14, 16]).unwrap()]).unwrap().to_string();
    insta::assert_snapshot!("hand_written_deals", text);
}

#[test]
fn a_bad_value_names_file_line_column_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("deals.csv", "deal_id,status,created_at\n1,won,2025-06-30 18:00:00\n2,maybe,2025-06-30 18:00:00\n",
            "deals.csv, line 3, column status: column status must be one of open/won/lost, got 'maybe'"),
        ("deals.csv", "deal_id,status,created_at\n1,won,30.06.2025\n",
            "deals.csv, line 2, column created_at: expected a timestamp"),
        ("deals.csv", "deal_id,status,created_at,amount\n1,won,2025-06-30,12.345\n",
            "deals.csv, line 2, column amount: '12.345' has more than 2 decimal places"),
        ("deals.csv", "deal_id,status,created_at\n,won,2025-06-30\n",
            "deals.csv, line 2, column deal_id: column deal_id is NOT NULL but the value is empty"),
        ("deals.csv", "deal_id,status\n1,won\n", "deals.csv: the header has no column created_at, which is required"),
        ("deals.csv", "deal_id,status,created_at,colour\n", "the header names column 'colour', which table deals does not have"),
        ("dealz.csv", "deal_id\n", "'dealz' is not a table of the canonical schema"),
        ("calls.jsonl", "{\"call_id\": \"1\", \"direction\": \"inbound\", \"status\": \"answered\", \"started_at\": \"2025-06-30T15:00:00Z\", \"duration_seconds\": \"long\"}\n",
            "calls.jsonl, line 1, column duration_seconds: expected a whole number, got 'long'"),
        ("calls.jsonl", "{\"call_id\": \"1\"\n", "calls.jsonl, line 1: not a JSON object"),
        ("tasks.csv", "task_id,created_at,status\n1,2025-06-30,\"unterminated\n", "tasks.csv"),
    ];
    for (name, text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), name, text);
        let err = read_folder(dir.path(), moscow(), |_| true).unwrap_err().to_string();
        assert!(err.contains(expected), "{name}: expected '{expected}' in: {err}");
    }
}

#[test]
fn the_inputs_folder_takes_only_input_tables() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sales_plans.csv", "period_start,period_end,manager_id,amount_plan,deals_plan\n2025-06-01,2025-06-30,101,1500000,12\n");
    let d = read_folder(dir.path(), moscow(), Table::is_input).unwrap();
    assert_eq!(d.rows(Table::SalesPlans), 1);
    write(dir.path(), "deals.csv", "deal_id,status,created_at\n");
    let err = read_folder(dir.path(), moscow(), Table::is_input).unwrap_err().to_string();
    assert!(err.contains("table deals is not accepted here; this folder takes: sales_plans, compensation, absences, feedback"), "{err}");
}

#[tokio::test]
async fn a_failed_import_writes_nothing() {
    let exports = tempfile::tempdir().unwrap();
    write(exports.path(), "deals.csv", "deal_id,status,created_at\n1,won,2025-06-30\n2,won,yesterday\n");
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let tenant = TenantConfig {
        name: "acme".into(),
        timezone: moscow(),
        calendars: None,
        schedule: None,
        refresh_on_start: false,
        inputs: None,
        source: SourceConfig::Files { path: exports.path().into(), exported_at: None },
        settings: default_settings(),
    };
    let source = Source::Files { path: exports.path().into(), exported_at: None };
    let err = refresh_tenant(&store, &tenant, source.clone(), 3).await.unwrap_err().to_string();
    assert!(err.starts_with("tenant acme: ") && err.contains("line 3, column created_at"), "{err}");
    assert!(!root.path().join("acme").exists(), "nothing written");

    write(exports.path(), "deals.csv", "deal_id,status,created_at\n1,won,2025-06-30\n");
    let report = refresh_tenant(&store, &tenant, source, 3).await.unwrap();
    assert_eq!(report.report.manifest.tables["deals"].rows, 1);
    assert_eq!(report.report.manifest.tables["calls"].rows, 0, "tables without a file are empty");
}
