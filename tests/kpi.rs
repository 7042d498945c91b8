//! The KPI views over the demo tenant: every view builds, returns rows with client-safe
//! types, and the sanity invariants of METRICS.md hold.

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
