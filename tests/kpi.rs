//! The KPI views over the demo tenant: every view builds, returns rows with client-safe
//! types, and the sanity invariants of docs/metrics.md ("Tests") hold.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use salespulse::catalog::kpi::VIEWS;

use crate::common::TestServer;

async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The first column of the first row as f64 (NULL as NaN).
async fn number(ctx: &SessionContext, sql: &str) -> f64 {
    let batches = run(ctx, sql).await;
    let column = cast(batches[0].column(0), &DataType::Float64).unwrap();
    let values = column.as_primitive::<Float64Type>();
    if values.is_null(0) { f64::NAN } else { values.value(0) }
}

#[tokio::test]
async fn every_view_builds_and_returns_client_safe_rows() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let state = server.catalog.tenant("demo").unwrap();
    assert_eq!(state.problem, None, "the views build without problems");
    let ctx = server.catalog.session(Some("demo"));
    for (view, _) in VIEWS {
        let batches = run(&ctx, &format!("SELECT * FROM kpi.{view}")).await;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert!(rows > 0, "kpi.{view} is empty on the demo tenant");
        for field in batches[0].schema().fields() {
            let ok = matches!(
                field.data_type(),
                DataType::Utf8 | DataType::Int64 | DataType::Float64 | DataType::Decimal128(..) | DataType::Boolean | DataType::Date32 | DataType::Timestamp(..) | DataType::Int32
            );
            assert!(ok, "kpi.{view}.{}: {}", field.name(), field.data_type());
        }
    }
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn demo_invariants_hold() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let ctx = server.catalog.session(Some("demo"));
    // Conversions and rates are fractions.
    for (view, column) in [
        ("funnel", "conversion_from_first"),
        ("pipelines_compare", "win_rate"),
        ("calls_daily", "answered_rate"),
        ("loss_reasons", "share"),
        ("abc_clients", "share"),
        ("cohorts", "retention"),
        ("satisfaction", "avg_score_pct"),
    ] {
        let low = number(&ctx, &format!("SELECT min({column}) FROM kpi.{view}")).await;
        let high = number(&ctx, &format!("SELECT max({column}) FROM kpi.{view}")).await;
        assert!((0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high), "kpi.{view}.{column} in [{low}, {high}]");
    }
    // Revenue by channel sums to the total revenue, and so do the monthly sales.
    let total = number(&ctx, "SELECT sum(amount_base) FROM crm.deals WHERE status = 'won' AND closed_at IS NOT NULL").await;
    let by_channel = number(&ctx, "SELECT sum(revenue) FROM kpi.channels").await;
    let by_month = number(&ctx, "SELECT sum(revenue) FROM kpi.sales_by_period WHERE period_kind = 'month'").await;
    let by_day = number(&ctx, "SELECT sum(revenue) FROM kpi.sales_by_period WHERE period_kind = 'day'").await;
    assert!(total > 0.0);
    assert_eq!(by_channel, total);
    assert_eq!(by_month, total);
    assert_eq!(by_day, total);
    let split = number(&ctx, "SELECT sum(new_client_revenue + repeat_client_revenue) FROM kpi.sales_by_period WHERE period_kind = 'week'").await;
    let with_client = number(&ctx, "SELECT sum(amount_base) FROM crm.deals WHERE status = 'won' AND coalesce(company_id, contact_id) IS NOT NULL").await;
    assert_eq!(split, with_client, "new + repeat revenue is the revenue of deals with a client");
    // Cohort retention at month 0 is 1; every cohort starts with its first sales.
    assert_eq!(number(&ctx, "SELECT min(retention) FROM kpi.cohorts WHERE month_offset = 0").await, 1.0);
    assert_eq!(number(&ctx, "SELECT max(retention) FROM kpi.cohorts WHERE month_offset = 0").await, 1.0);
    // ABC: the classes follow the cumulative share, A first.
    let a_max = number(&ctx, "SELECT max(cumulative_share - share) FROM kpi.abc_clients WHERE abc_class = 'A'").await;
    assert!(a_max < 0.80, "{a_max}");
    assert_eq!(number(&ctx, "SELECT max(cumulative_share) FROM kpi.abc_clients").await.round(), 1.0);
    // The scorecard ranks every month 1..n without gaps; discipline has every manager.
    assert_eq!(
        number(&ctx, "SELECT count(*) FROM (SELECT month, max(revenue_rank) AS r, count(*) AS n FROM kpi.manager_scorecard GROUP BY month) WHERE r <> n").await,
        0.0
    );
    assert_eq!(number(&ctx, "SELECT count(*) FROM kpi.discipline").await, number(&ctx, "SELECT count(*) FROM crm.managers").await);
    // The department tree holds every department under itself at depth 0.
    assert_eq!(
        number(&ctx, "SELECT count(*) FROM kpi.department_tree WHERE depth = 0").await,
        number(&ctx, "SELECT count(*) FROM crm.departments").await
    );
    // Facts keep every row of their table.
    for (view, table) in [("deal_facts", "deals"), ("call_facts", "calls"), ("lead_facts", "leads"), ("task_facts", "tasks")] {
        assert_eq!(
            number(&ctx, &format!("SELECT count(*) FROM kpi.{view}")).await,
            number(&ctx, &format!("SELECT count(*) FROM crm.{table}")).await,
            "kpi.{view}"
        );
    }
    // A company plan's fact is all won revenue of its period.
    let plan = number(&ctx, "SELECT amount_fact FROM kpi.plan_fact WHERE department_id IS NULL AND manager_id IS NULL ORDER BY month DESC LIMIT 1 OFFSET 1").await;
    assert!(plan > 0.0);
    server.shutdown_and_wait().await;
}

/// Every row of `sql` as text, floats to 6 decimals (sums over stored facts may add in
/// another order than the live views), sorted.
async fn row_strings(ctx: &SessionContext, sql: &str) -> Vec<String> {
    use arrow::util::display::array_value_to_string;
    let mut rows = Vec::new();
    for batch in run(ctx, sql).await {
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|column| match column.data_type() {
                    DataType::Float64 if column.is_valid(i) => format!("{:.6}", column.as_primitive::<Float64Type>().value(i)),
                    _ => array_value_to_string(column, i).unwrap(),
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

fn kpi_folders(root: &std::path::Path, manifest: &salespulse::snapshot::Manifest) -> Vec<std::path::PathBuf> {
    let dir = root.join("demo/snapshots").join(&manifest.snapshot_id).join("kpi");
    let mut found: Vec<_> = std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    found.sort();
    found
}

#[tokio::test]
async fn materialised_tables_give_the_rows_of_the_views_and_are_reused() {
    use salespulse::catalog::Catalog;
    use salespulse::catalog::kpi::Materialise;
    let root = tempfile::tempdir().unwrap();
    let store = salespulse::snapshot::Store::open(&root.path().to_string_lossy()).unwrap();
    let manifest = crate::common::write_demo(&store, "demo").await;

    // A one-off query catalog stores nothing and serves the views.
    let live = Catalog::new(store.clone(), vec![crate::common::info("demo")]).with_materialise(Materialise::UseStored);
    assert_eq!(live.load_tenant("demo").await.unwrap().problem, None);
    assert!(kpi_folders(root.path(), &manifest).is_empty(), "UseStored builds nothing");
    let live_ctx = live.session(Some("demo"));

    let stored = Catalog::new(store.clone(), vec![crate::common::info("demo")]);
    assert_eq!(stored.load_tenant("demo").await.unwrap().problem, None);
    let folders = kpi_folders(root.path(), &manifest);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let builds = || -> Vec<std::path::PathBuf> {
        let mut b: Vec<_> = std::fs::read_dir(&folders[0]).unwrap().map(|e| e.unwrap().path()).collect();
        b.sort();
        b
    };
    assert_eq!(builds().len(), 1);
    let marker = builds()[0].join("materialised.json");
    assert!(marker.exists());
    let stored_ctx = stored.session(Some("demo"));

    let kind = "SELECT table_type FROM information_schema.tables WHERE table_schema = 'kpi' AND table_name = 'call_facts'";
    assert_eq!(row_strings(&live_ctx, kind).await, ["VIEW"]);
    assert_eq!(row_strings(&stored_ctx, kind).await, ["BASE TABLE"]);
    for (view, _) in VIEWS {
        let sql = format!("SELECT * FROM kpi.{view}");
        let (a, b) = (row_strings(&live_ctx, &sql).await, row_strings(&stored_ctx, &sql).await);
        assert_eq!(a.len(), b.len(), "kpi.{view}: row counts");
        assert!(a == b, "kpi.{view}: the stored table differs from the view");
        let schema = |ctx: &SessionContext| {
            let ctx = ctx.clone();
            let sql = sql.clone();
            async move { ctx.sql(&sql).await.unwrap().schema().as_arrow().clone() }
        };
        assert_eq!(schema(&live_ctx).await, schema(&stored_ctx).await, "kpi.{view}: schema");
    }

    // A reload reuses the stored set: the marker is not written again.
    let written = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let again = Catalog::new(store.clone(), vec![crate::common::info("demo")]);
    assert_eq!(again.load_tenant("demo").await.unwrap().problem, None);
    assert_eq!(std::fs::metadata(&marker).unwrap().modified().unwrap(), written);

    // A lost file means a new build (stored files are never rewritten in place).
    let lost = builds()[0].join("calls_daily/part-00000.parquet");
    std::fs::remove_file(&lost).unwrap();
    let healed = Catalog::new(store.clone(), vec![crate::common::info("demo")]);
    assert_eq!(healed.load_tenant("demo").await.unwrap().problem, None);
    assert_eq!(builds().len(), 2);
    assert!(builds()[1].join("calls_daily/part-00000.parquet").exists());
    let healed_ctx = healed.session(Some("demo"));
    assert_eq!(row_strings(&healed_ctx, "SELECT * FROM kpi.calls_daily").await, row_strings(&live_ctx, "SELECT * FROM kpi.calls_daily").await);

    // Other settings are another set, with other numbers.
    let mut info = crate::common::info("demo");
    info.settings.insert("calls.success_threshold_seconds".into(), "1".into());
    let strict = Catalog::new(store.clone(), vec![info]);
    assert_eq!(strict.load_tenant("demo").await.unwrap().problem, None);
    assert_eq!(kpi_folders(root.path(), &manifest).len(), 2);
    let successful = "SELECT sum(successful) FROM kpi.calls_daily";
    assert!(number(&strict.session(Some("demo")), successful).await > number(&healed_ctx, successful).await);
}
