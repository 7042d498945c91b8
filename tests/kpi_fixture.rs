//! The KPI views over a hand-built tenant (tests/fixtures/kpi/), with every expected value
//! worked out by hand below. The tenant is in Europe/Moscow (UTC+3), uses the built-in
//! `ru_msk` calendar (09:00–13:00 and 14:00–18:00 on working days; 2025-06-11 is a short day
//! ending at 17:00; 2025-06-12 is a holiday and 2025-06-13 a transferred day off), and the
//! snapshot is taken at 2025-06-30 18:00 MSK. Times below are MSK.
//!
//! Deals (all in pipeline p1: s1 New, s2 Proposal, s3 Won, s4 Lost):
//! - d1 m1 client c1, 100 000, created Mon 06-02 10:00, first contact c05 (outbound call)
//!   10:30 → 30 working minutes; won Thu 06-05 12:00 → cycle 3 d 2 h = 3.083333 days; the
//!   first sale of c1.
//! - d2 m1 c1, 50 000, created Mon 06-09 10:00, first contact a1 (meeting, no direction)
//!   Tue 06-10 12:00 → 7 h on 06-09 + 3 h on 06-10 = 600 min; won Mon 06-16 11:00 → a repeat
//!   sale of c1; touches before close: a1 and the move to s2 = 2, calls 0.
//! - d3 m2 contact k1, 100 000, created 06-03 10:00, answered inbound c06 10:45 → 45 min; won
//!   Fri 06-20 10:00 (cycle 17 days); first sale of k1.
//! - d4 m2 c2, 50 000, created 06-10 10:00, outbound email a3 10:20 → 20 min; won Wed 06-25
//!   15:00 (cycle 15.208333 days); its task-kind activity a2 is past its deadline.
//! - d5 m3 lost (reason price), 80 000; the inbound email a4 is a touch but not a company
//!   contact, so the first contact is the move to s4 on 06-18 10:00: 7+8+8 (06-04..06)
//!   +8+8+7 (06-09..11, 06-11 short) +8+8 (06-16, 17) +1 (06-18) = 63 h = 3 780 min.
//! - d6 m3 lost (no reason), 20 000; moved to s2 06-06 10:00 → 7 h + 1 h = 480 min.
//! - d7 m3 open at s2, 30 000, created 06-23 10:00, never contacted: response NULL; stale
//!   (7 days without a touch).
//! - d8 m1 open at s1, 40 000, created Fri 06-27 15:00, call c07 at 18:00 → 180 min; its last
//!   touch is exactly 3 days before the snapshot, which is not "more than" 3 days: not stale.
//!
//! Leads: l1 m2 created Mon 06-16 10:00 while m2 is absent (06-16..17), called Wed 06-18
//! 09:30 → 30 min, not in time (SLA 15). l2 m1 created Wed 06-11 17:50 (after the short day
//! ended), called Mon 06-16 09:05 → the holiday, the day off and the weekend do not count:
//! 5 min, in time. l3 m3 created 06-30 09:00, never contacted: 8 h by the snapshot, overdue.
//! l4 m3 qualified, created 06-30 17:55, never contacted: 5 min, not yet overdue.
//!
//! Calls: c01 missed from hA at 06-02 11:00, called back by c02 at 11:30 (30 min); c03
//! missed from hB at 06-03 12:00, the outbound c04 on 06-05 is outside the 24 h window: no
//! callback. c05 lasted exactly 60 s: not successful (must exceed 60); c09 lasted 61 s.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use salespulse::catalog::{Catalog, TenantInfo};
use salespulse_config::config::{SourceConfig, TenantConfig, default_settings};
use salespulse::connectors::Source;
use salespulse::refresh::refresh_tenant;
use salespulse::snapshot::Store;

async fn fixture() -> (tempfile::TempDir, Catalog) {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kpi");
    let taken_at = "2025-06-30T15:00:00Z".parse().unwrap();
    let tenant = TenantConfig {
        name: "fix".into(),
        timezone: chrono_tz::Europe::Moscow,
        calendars: None,
        schedule: None,
        refresh_on_start: false,
        inputs: None,
        source: SourceConfig::Files { path: folder.clone(), exported_at: Some(taken_at) },
        settings: default_settings(),
    };
    refresh_tenant(&store, &tenant, Source::Files { path: folder, exported_at: Some(taken_at) }, 3).await.unwrap();
    let info = TenantInfo { name: "fix".into(), timezone: tenant.timezone, settings: tenant.settings, calendars: None };
    let catalog = Catalog::new(store, vec![info]);
    let state = catalog.load_tenant("fix").await.unwrap();
    assert_eq!(state.problem, None);
    (root, catalog)
}

/// The rows of `sql`, every value as text (NULL as "∅").
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<_> = b.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for i in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        if arrow::array::Array::is_null(s, i) { "∅".to_string() } else { s.value(i).to_string() }
                    })
                    .collect(),
            );
        }
    }
    out
}

fn table(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected.iter().map(|r| r.iter().map(|v| (*v).to_string()).collect()).collect()
}

#[tokio::test]
async fn hand_computed_kpis() {
    let (_root, catalog) = fixture().await;
    let ctx = catalog.session(Some("fix"));

    // deal_facts: first contact, response minutes (holidays, short days), touches, cycles,
    // first vs repeat sale, staleness at the threshold, overdue activities.
    assert_eq!(
        rows(&ctx, "SELECT deal_id, CAST(first_contact_at AS VARCHAR), round(response_minutes, 4), touches_before_close, calls_before_close, \
                    round(cycle_days, 6), is_first_sale, is_stale, open_tasks, has_overdue_activity, client_id, department_name \
                    FROM kpi.deal_facts ORDER BY deal_id").await,
        table(&[
            &["d1", "2025-06-02T07:30:00Z", "30.0", "1", "1", "3.083333", "true", "false", "0", "false", "c1", "North"],
            &["d2", "2025-06-10T09:00:00Z", "600.0", "2", "0", "7.041667", "false", "false", "0", "false", "c1", "North"],
            &["d3", "2025-06-03T07:45:00Z", "45.0", "1", "1", "17.0", "true", "false", "0", "false", "k1", "North"],
            &["d4", "2025-06-10T07:20:00Z", "20.0", "1", "0", "15.208333", "true", "false", "0", "true", "c2", "North"],
            &["d5", "2025-06-18T07:00:00Z", "3780.0", "1", "0", "14.0", "false", "false", "0", "false", "∅", "South"],
            &["d6", "2025-06-06T07:00:00Z", "480.0", "1", "0", "14.0", "false", "false", "0", "false", "∅", "South"],
            &["d7", "∅", "∅", "∅", "∅", "∅", "false", "true", "1", "false", "∅", "South"],
            &["d8", "2025-06-27T15:00:00Z", "180.0", "∅", "∅", "∅", "false", "false", "1", "false", "∅", "North"],
        ])
    );

    // lead_facts: an absence (l1), a holiday after a short day (l2), overdue and not yet.
    assert_eq!(
        rows(&ctx, "SELECT lead_id, round(response_minutes, 4), taken_in_time, is_overdue_untaken, is_qualified FROM kpi.lead_facts ORDER BY lead_id").await,
        table(&[
            &["l1", "30.0", "false", "false", "false"],
            &["l2", "5.0", "true", "false", "true"],
            &["l3", "∅", "∅", "true", "false"],
            &["l4", "∅", "∅", "false", "true"],
        ])
    );

    // call_facts: a missed call with and without a callback; 60 s is not successful.
    assert_eq!(
        rows(&ctx, "SELECT call_id, is_missed, CAST(callback_at AS VARCHAR), callback_minutes, is_successful FROM kpi.call_facts \
                    WHERE call_id IN ('c01', 'c03', 'c05', 'c09') ORDER BY call_id").await,
        table(&[
            &["c01", "true", "2025-06-02T08:30:00Z", "30.0", "false"],
            &["c03", "true", "∅", "∅", "false"],
            &["c05", "false", "∅", "∅", "false"],
            &["c09", "false", "∅", "∅", "true"],
        ])
    );

    // task_facts.
    assert_eq!(
        rows(&ctx, "SELECT task_id, is_overdue, completed_late, is_not_taken FROM kpi.task_facts ORDER BY task_id").await,
        table(&[&["t1", "true", "false", "false"], &["t2", "false", "false", "true"], &["t3", "false", "true", "false"]])
    );

    // sales_by_period: June has all four wins (d1, d3, d4 first sales; d2 repeat) and both
    // losses; the week of Mon 06-16 has d2, d3 won and d5, d6 lost.
    assert_eq!(
        rows(&ctx, "SELECT period_kind, CAST(period AS VARCHAR), revenue, deals_won, avg_check, new_client_revenue, repeat_client_revenue, new_clients, deals_lost \
                    FROM kpi.sales_by_period WHERE (period_kind = 'month') OR (period_kind = 'week' AND period = DATE '2025-06-16') ORDER BY 1").await,
        table(&[
            &["month", "2025-06-01", "300000.00", "4", "75000.000000", "250000.00", "50000.00", "3", "2"],
            &["week", "2025-06-16", "150000.00", "2", "75000.000000", "100000.00", "50000.00", "1", "2"],
        ])
    );

    // plan_fact: m1's own plan; north = m1 + m2; sales = its subtree; the company. The
    // snapshot is at the end of the month's last working minute, so the forecast is the fact.
    assert_eq!(
        rows(&ctx, "SELECT coalesce(department_id, '-'), coalesce(manager_id, '-'), amount_plan, amount_fact, completion, forecast FROM kpi.plan_fact ORDER BY 1, 2").await,
        table(&[
            &["-", "-", "600000.00", "300000.00", "0.5", "300000.0"],
            &["-", "m1", "200000.00", "150000.00", "0.75", "150000.0"],
            &["north", "-", "400000.00", "300000.00", "0.75", "300000.0"],
            &["sales", "-", "600000.00", "300000.00", "0.5", "300000.0"],
        ])
    );

    // channels and sources: leads by the lead's source, wins by the deal's source.
    assert_eq!(
        rows(&ctx, "SELECT channel, is_online, leads, deals_won, revenue, avg_check FROM kpi.channels ORDER BY channel").await,
        table(&[&["phone", "false", "1", "2", "150000.00", "75000.000000"], &["web_form", "true", "3", "2", "150000.00", "75000.000000"]])
    );
    assert_eq!(
        rows(&ctx, "SELECT source_id, leads, deals, deals_won, revenue, round(lead_to_sale, 4) FROM kpi.sources ORDER BY source_id").await,
        table(&[&["phone", "1", "3", "2", "150000.00", "2.0"], &["web", "3", "5", "2", "150000.00", "0.6667"]])
    );

    // funnel: s1 reached by all 8; s2 by the 4 won, d6 (history) and d7 (current) = 6; s3 by
    // the 4 won. Lost stages have no row.
    assert_eq!(
        rows(&ctx, "SELECT stage_id, stage_order, deals_reached, amount_reached, round(conversion_from_prev, 4), round(conversion_from_first, 4) FROM kpi.funnel ORDER BY stage_order").await,
        table(&[
            &["s1", "1", "8", "470000.00", "∅", "1.0"],
            &["s2", "2", "6", "350000.00", "0.75", "0.75"],
            &["s3", "3", "4", "300000.00", "0.6667", "0.5"],
        ])
    );

    assert_eq!(
        rows(&ctx, "SELECT stage_id, manager_id, open_deals, potential_amount FROM kpi.pipeline_now ORDER BY stage_id").await,
        table(&[&["s1", "m1", "1", "40000.00"], &["s2", "m3", "1", "30000.00"]])
    );
    // Win rate 4 / (4 + 2); average cycle of the won deals (3.083333 + 7.041667 + 17 + 15.208333) / 4.
    assert_eq!(
        rows(&ctx, "SELECT pipeline_id, deals, deals_won, deals_lost, round(win_rate, 4), revenue, round(avg_cycle_days, 6) FROM kpi.pipelines_compare").await,
        table(&[&["p1", "8", "4", "2", "0.6667", "300000.00", "10.583333"]])
    );
    // A lost deal without a reason forms its own NULL-reason row.
    assert_eq!(
        rows(&ctx, "SELECT coalesce(loss_reason_id, '-'), deals_lost, amount_lost, share FROM kpi.loss_reasons ORDER BY 1").await,
        table(&[&["-", "1", "20000.00", "0.5"], &["price", "1", "80000.00", "0.5"]])
    );

    // Clients: c1 150 000 (two sales), k1 100 000, c2 50 000 of 300 000. ABC by the share of
    // the clients ranked before: c1 0 → A, k1 0.5 → A, c2 0.8333 → B.
    assert_eq!(
        rows(&ctx, "SELECT client_id, deals_won, revenue, avg_check, CAST(first_sale_at AS VARCHAR) FROM kpi.client_ltv ORDER BY client_id").await,
        table(&[
            &["c1", "2", "150000.00", "75000.000000", "2025-06-05T09:00:00Z"],
            &["c2", "1", "50000.00", "50000.000000", "2025-06-25T12:00:00Z"],
            &["k1", "1", "100000.00", "100000.000000", "2025-06-20T07:00:00Z"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT client_id, round(share, 4), round(cumulative_share, 4), abc_class FROM kpi.abc_clients ORDER BY cumulative_share").await,
        table(&[&["c1", "0.5", "0.5", "A"], &["k1", "0.3333", "0.8333", "A"], &["c2", "0.1667", "1.0", "B"]])
    );
    assert_eq!(
        rows(&ctx, "SELECT CAST(cohort_month AS VARCHAR), month_offset, cohort_size, active_clients, revenue, retention FROM kpi.cohorts").await,
        table(&[&["2025-06-01", "0", "3", "3", "300000.00", "1.0"]])
    );

    // Scorecard: m1 and m2 tie on revenue and deals won; m1 ranks first by id. m1's response
    // average is over d1 30, d2 600, d8 180 and lead l2 5 = 203.75; its calls c01, c02, c05,
    // c07, c09 with c02 (120 s) and c09 (61 s) successful = 181 s.
    assert_eq!(
        rows(&ctx, "SELECT manager_id, revenue, deals_won, revenue_rank, open_deals, potential_amount, round(avg_cycle_days, 4), round(avg_response_minutes, 4), \
                    calls_total, calls_successful, round(successful_talk_minutes, 4), calls_missed, leads, qualified_leads, salary \
                    FROM kpi.manager_scorecard ORDER BY revenue_rank").await,
        table(&[
            &["m1", "150000.00", "2", "1", "1", "40000.00", "5.0625", "203.75", "5", "2", "3.0167", "1", "1", "1", "74500.000000"],
            &["m2", "150000.00", "2", "2", "0", "0.00", "16.1042", "31.6667", "4", "2", "6.5", "1", "1", "0", "66000.000000"],
            &["m3", "0.00", "0", "3", "1", "30000.00", "∅", "2130.0", "0", "0", "0.0", "0", "2", "1", "50000.000000"],
        ])
    );
    // Salary: m1's own row from 06-01 (the July row is not yet in force), m2 the north
    // department's, m3 the default.
    assert_eq!(
        rows(&ctx, "SELECT manager_id, revenue, base_salary, commission_rate, commission, total FROM kpi.salary ORDER BY manager_id").await,
        table(&[
            &["m1", "150000.00", "70000.00", "0.0300", "4500.000000", "74500.000000"],
            &["m2", "150000.00", "60000.00", "0.0400", "6000.000000", "66000.000000"],
            &["m3", "0.00", "50000.00", "0.0500", "0.000000", "50000.000000"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT manager_id, weekday, revenue, deals_won FROM kpi.manager_weekday ORDER BY manager_id, weekday").await,
        table(&[
            &["m1", "1", "50000.00", "1"],
            &["m1", "4", "100000.00", "1"],
            &["m2", "3", "50000.00", "1"],
            &["m2", "5", "100000.00", "1"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT CAST(day AS VARCHAR), manager_id, calls_total, inbound, outbound, successful, successful_minutes, missed, round(answered_rate, 4), \
                    avg_talk_seconds, missed_with_callback, avg_callback_minutes FROM kpi.calls_daily WHERE day IN (DATE '2025-06-02', DATE '2025-06-03') ORDER BY 1").await,
        table(&[
            &["2025-06-02", "m1", "3", "1", "2", "1", "2.0", "1", "0.6667", "90.0", "1", "30.0"],
            &["2025-06-03", "m2", "2", "2", "0", "1", "5.0", "1", "0.5", "300.0", "0", "∅"],
        ])
    );
    assert_eq!(
        rows(&ctx, "SELECT CAST(day AS VARCHAR), manager_id, calls, meetings, emails, messages, tasks_created, tasks_completed FROM kpi.activity_daily \
                    WHERE day = DATE '2025-06-10' ORDER BY manager_id").await,
        table(&[&["2025-06-10", "m1", "0", "1", "0", "0", "0", "0"], &["2025-06-10", "m2", "0", "0", "1", "0", "1", "0"]])
    );
    // Discipline, one row per manager: t1 overdue (deadline 06-30 12:00); t2 not taken; d7
    // stale; l1 late, l3 overdue untaken.
    assert_eq!(
        rows(&ctx, "SELECT manager_id, overdue_tasks, tasks_not_taken, open_deals_without_tasks, deals_with_overdue_activities, stale_deals, leads_untaken_in_time \
                    FROM kpi.discipline ORDER BY manager_id").await,
        table(&[&["m1", "1", "0", "0", "0", "0", "0"], &["m2", "0", "0", "0", "0", "0", "1"], &["m3", "0", "1", "0", "0", "1", "1"]])
    );
    // Margin: d1's items cost 2 × 30 000; d2's item has no cost.
    assert_eq!(
        rows(&ctx, "SELECT manager_id, revenue, cost, margin, margin_pct FROM kpi.margin ORDER BY manager_id").await,
        table(&[&["m1", "150000.00", "60000.0", "90000.0", "0.6"], &["m2", "150000.00", "0.0", "150000.0", "1.0"]])
    );
    assert_eq!(
        rows(&ctx, "SELECT manager_id, responses, avg_score_pct FROM kpi.satisfaction").await,
        table(&[&["m1", "2", "0.9"]])
    );
    // department_tree: sales holds itself and both children.
    assert_eq!(
        rows(&ctx, "SELECT department_id, depth FROM kpi.department_tree WHERE ancestor_id = 'sales' ORDER BY department_id").await,
        table(&[&["north", "1"], &["sales", "0"], &["south", "1"]])
    );
}
