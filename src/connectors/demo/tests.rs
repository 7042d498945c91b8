//! Invariants of the generated CRM: what every connector's output must satisfy, checked on
//! the demo so dashboards built on it never show impossible data.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::*;
use super::calendar::DAY_US;

fn params(seed: u64) -> DemoParams {
    DemoParams {
        scale: 0.01,
        seed,
        as_of: "2026-06-15T12:00:00Z".parse().unwrap(),
        timezone: chrono_tz::Europe::Moscow,
    }
}

fn table(d: &Dataset, t: Table) -> RecordBatch {
    concat_batches(&t.schema(), d.tables.get(&t).unwrap()).unwrap()
}

fn strings(b: &RecordBatch, column: &str) -> Vec<Option<String>> {
    b.column_by_name(column).unwrap().as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()
}

fn times(b: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    b.column_by_name(column).unwrap().as_primitive::<TimestampMicrosecondType>().iter().collect()
}

fn ids(b: &RecordBatch, column: &str) -> HashSet<String> {
    strings(b, column).into_iter().flatten().collect()
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = generate(&params(7));
    let b = generate(&params(7));
    let c = generate(&params(8));
    for t in Table::ALL {
        assert_eq!(table(&a, *t), table(&b, *t), "table {} differs between runs", t.name());
    }
    assert_ne!(table(&a, Table::Calls), table(&c, Table::Calls));
}

#[test]
fn every_table_has_rows_and_the_shape_is_realistic() {
    let d = generate(&params(42));
    for t in Table::ALL {
        assert!(d.rows(*t) > 0, "table {} is empty", t.name());
    }
    assert_eq!(d.rows(Table::Departments), 6);
    assert_eq!(d.rows(Table::Managers), 70);
    assert_eq!(d.rows(Table::Pipelines), 2);
    let departments = table(&d, Table::Departments);
    assert!(strings(&departments, "parent_id").iter().filter(|p| p.is_some()).count() == 5, "a tree under one root");
    // Every channel of docs/schema.md is a source, and leads come from each of them.
    let sources = table(&d, Table::Sources);
    let channels: HashSet<_> = strings(&sources, "channel").into_iter().flatten().collect();
    for c in crate::model::CHANNELS {
        assert!(channels.contains(*c), "no source of channel {c}");
    }
    let lead_sources = ids(&table(&d, Table::Leads), "source_id");
    assert!(lead_sources.len() >= 10, "leads come from only {lead_sources:?}");
    // About 1 M calls a year at scale 1: 14 months at scale 0.01 is roughly 11.5 k.
    let calls = d.rows(Table::Calls);
    assert!((8_000..16_000).contains(&calls), "{calls} calls at scale 0.01");
}

#[test]
fn deals_are_consistent_with_their_history() {
    let d = generate(&params(42));
    let deals = table(&d, Table::Deals);
    let history = table(&d, Table::DealStageHistory);
    let stages = table(&d, Table::Stages);
    let stage_kind: HashMap<String, String> = strings(&stages, "stage_id")
        .into_iter()
        .zip(strings(&stages, "kind"))
        .map(|(s, k)| (s.unwrap(), k.unwrap()))
        .collect();
    let mut first_entry: HashMap<String, i64> = HashMap::new();
    let mut last_stage: HashMap<String, (i64, String)> = HashMap::new();
    for ((deal, stage), at) in strings(&history, "deal_id").into_iter().zip(strings(&history, "stage_id")).zip(times(&history, "entered_at")) {
        let (deal, stage, at) = (deal.unwrap(), stage.unwrap(), at.unwrap());
        first_entry.entry(deal.clone()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        let e = last_stage.entry(deal).or_insert((at, stage.clone()));
        if at >= e.0 {
            *e = (at, stage);
        }
    }
    let statuses = strings(&deals, "status");
    let (mut won, mut lost, mut open) = (0, 0, 0);
    for (i, deal) in strings(&deals, "deal_id").into_iter().enumerate() {
        let deal = deal.unwrap();
        let created = times(&deals, "created_at")[i].unwrap();
        let closed = times(&deals, "closed_at")[i];
        let status = statuses[i].clone().unwrap();
        let stage = strings(&deals, "stage_id")[i].clone().unwrap();
        assert_eq!(first_entry.get(&deal), Some(&created), "deal {deal}: history starts at creation");
        assert_eq!(last_stage[&deal].1, stage, "deal {deal}: current stage is the last one entered");
        assert_eq!(stage_kind[&stage], status, "deal {deal}: status matches the stage kind");
        match status.as_str() {
            "won" | "lost" => assert!(closed.is_some_and(|c| c >= created), "deal {deal}: closed deals have closed_at"),
            _ => assert!(closed.is_none(), "deal {deal}: open deals have no closed_at"),
        }
        if status == "lost" {
            assert!(strings(&deals, "loss_reason_id")[i].is_some(), "deal {deal}: lost deals have a reason");
        }
        match status.as_str() {
            "won" => won += 1,
            "lost" => lost += 1,
            _ => open += 1,
        }
    }
    assert!(won > 0 && lost > 0 && open > 0, "won {won}, lost {lost}, open {open}");
    assert!(won < lost, "realistic: more deals are lost than won ({won} won, {lost} lost)");
}

#[test]
fn calls_are_plausible() {
    let d = generate(&params(42));
    let calls = table(&d, Table::Calls);
    let status = strings(&calls, "status");
    let direction = strings(&calls, "direction");
    let durations: Vec<i64> = calls.column_by_name("duration_seconds").unwrap().as_primitive::<Int64Type>().values().to_vec();
    let mut short = 0;
    let mut answered = 0;
    for i in 0..calls.num_rows() {
        let s = status[i].as_deref().unwrap();
        if s == "answered" {
            answered += 1;
            assert!(durations[i] > 0);
            if durations[i] < 60 {
                short += 1;
            }
        } else {
            assert_eq!(durations[i], 0, "a {s} call has no talk time");
        }
        if s == "missed" {
            assert_eq!(direction[i].as_deref(), Some("inbound"), "only inbound calls are missed");
        }
    }
    let share = f64::from(short) / f64::from(answered);
    assert!((0.1..0.5).contains(&share), "share of answered calls under 60 s: {share}");
    // Missed calls get callbacks: an outbound call to the same number later.
    let hashes = strings(&calls, "phone_hash");
    let started = times(&calls, "started_at");
    let mut outbound: HashMap<&str, Vec<i64>> = HashMap::new();
    for i in 0..calls.num_rows() {
        if direction[i].as_deref() == Some("outbound") {
            outbound.entry(hashes[i].as_deref().unwrap()).or_default().push(started[i].unwrap());
        }
    }
    let (mut missed, mut called_back) = (0, 0);
    for i in 0..calls.num_rows() {
        if status[i].as_deref() == Some("missed") {
            missed += 1;
            let h = hashes[i].as_deref().unwrap();
            if outbound.get(h).is_some_and(|ts| ts.iter().any(|t| *t > started[i].unwrap())) {
                called_back += 1;
            }
        }
    }
    assert!(missed > 0 && called_back > missed / 3, "{called_back} of {missed} missed calls called back");
}

#[test]
fn references_point_at_existing_rows() {
    let d = generate(&params(42));
    let managers = ids(&table(&d, Table::Managers), "manager_id");
    let deals = ids(&table(&d, Table::Deals), "deal_id");
    let leads = ids(&table(&d, Table::Leads), "lead_id");
    let contacts = ids(&table(&d, Table::Contacts), "contact_id");
    let companies = ids(&table(&d, Table::Companies), "company_id");
    let stages = ids(&table(&d, Table::Stages), "stage_id");
    let sources = ids(&table(&d, Table::Sources), "source_id");
    let reasons = ids(&table(&d, Table::LossReasons), "loss_reason_id");
    let departments = ids(&table(&d, Table::Departments), "department_id");
    let checks: &[(Table, &str, &HashSet<String>)] = &[
        (Table::Managers, "department_id", &departments),
        (Table::Departments, "head_manager_id", &managers),
        (Table::Departments, "parent_id", &departments),
        (Table::Deals, "manager_id", &managers),
        (Table::Deals, "stage_id", &stages),
        (Table::Deals, "lead_id", &leads),
        (Table::Deals, "contact_id", &contacts),
        (Table::Deals, "company_id", &companies),
        (Table::Deals, "source_id", &sources),
        (Table::Deals, "loss_reason_id", &reasons),
        (Table::Leads, "converted_deal_id", &deals),
        (Table::Leads, "contact_id", &contacts),
        (Table::DealStageHistory, "deal_id", &deals),
        (Table::DealItems, "deal_id", &deals),
        (Table::Calls, "manager_id", &managers),
        (Table::Calls, "deal_id", &deals),
        (Table::Calls, "lead_id", &leads),
        (Table::Calls, "contact_id", &contacts),
        (Table::Activities, "deal_id", &deals),
        (Table::Activities, "manager_id", &managers),
        (Table::Tasks, "deal_id", &deals),
        (Table::Tasks, "created_by", &managers),
        (Table::SalesPlans, "manager_id", &managers),
        (Table::Absences, "manager_id", &managers),
        (Table::Feedback, "deal_id", &deals),
        (Table::Compensation, "manager_id", &managers),
    ];
    for (t, column, targets) in checks {
        for id in ids(&table(&d, *t), column) {
            assert!(targets.contains(&id), "{}.{column} = {id} points at nothing", t.name());
        }
    }
}

#[test]
fn nothing_happens_after_the_snapshot_time() {
    let p = params(42);
    let d = generate(&p);
    let as_of = p.as_of.timestamp_micros();
    for (t, column) in [
        (Table::Calls, "started_at"),
        (Table::Deals, "created_at"),
        (Table::Deals, "closed_at"),
        (Table::Leads, "created_at"),
        (Table::DealStageHistory, "entered_at"),
        (Table::Activities, "created_at"),
        (Table::Activities, "completed_at"),
        (Table::Tasks, "created_at"),
        (Table::Tasks, "completed_at"),
        (Table::Feedback, "created_at"),
    ] {
        let b = table(&d, t);
        assert!(times(&b, column).into_iter().flatten().all(|v| v <= as_of), "{}.{column} after as_of", t.name());
    }
    // History spans at least 13 months.
    let calls = table(&d, Table::Calls);
    let first = times(&calls, "started_at").into_iter().flatten().min().unwrap();
    assert!(as_of - first > 395 * DAY_US, "history starts only {} days back", (as_of - first) / DAY_US);
}

#[test]
fn tasks_include_overdue_and_never_started() {
    let p = params(42);
    let d = generate(&p);
    let tasks = table(&d, Table::Tasks);
    let as_of = p.as_of.timestamp_micros();
    let status = strings(&tasks, "status");
    let deadline = times(&tasks, "deadline");
    let started = times(&tasks, "started_at");
    let overdue = (0..tasks.num_rows())
        .filter(|i| matches!(status[*i].as_deref(), Some("new" | "in_progress")) && deadline[*i].is_some_and(|d| d < as_of))
        .count();
    let never_started = (0..tasks.num_rows()).filter(|i| status[*i].as_deref() == Some("new") && started[*i].is_none()).count();
    assert!(overdue > 0 && never_started > 0, "overdue {overdue}, never started {never_started}");
    let completed = tasks.column_by_name("completed_at").unwrap();
    assert_eq!(status.len(), tasks.num_rows());
    for (i, s) in status.iter().enumerate() {
        assert_eq!(s.as_deref() == Some("completed"), completed.is_valid(i), "task row {i}");
    }
}

/// The streamed tables are the generated tables in time order (equal times in the order
/// the rows were made), and the other tables are the same as a whole generation's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_tables_are_the_generated_tables_in_time_order() {
    let whole = generate(&params(11));
    let (outs, received): (Vec<_>, Vec<_>) = stream::STREAMED.iter().map(|t| stream::sorted_channel(*t)).unzip();
    let generator = tokio::task::spawn_blocking(|| generate_streaming(&params(11), outs));
    let streamed: Vec<Vec<RecordBatch>> = futures::future::join_all(received.into_iter().map(|r| async move {
        use futures::TryStreamExt;
        r.try_collect::<Vec<RecordBatch>>().await.unwrap()
    }))
    .await;
    let rest = generator.await.unwrap().unwrap();

    for (t, batches) in &rest.tables {
        assert!(!stream::STREAMED.contains(t));
        assert_eq!(table(&rest, *t), table(&whole, *t), "table {}", t.name());
        assert!(!batches.is_empty());
    }
    for (t, batches) in stream::STREAMED.iter().zip(streamed) {
        let column = t.sort_column();
        assert!(!t.schema().field_with_name(column).unwrap().is_nullable(), "{} streams on a NOT NULL column", t.name());
        assert!(batches.len() > 100, "{} goes out day by day, not at the end: {} batches", t.name(), batches.len());
        let streamed = concat_batches(&t.schema(), &batches).unwrap();
        let generated = table(&whole, *t);
        let times = times(&generated, column);
        let mut order: Vec<u32> = (0..generated.num_rows() as u32).collect();
        order.sort_by_key(|&i| times[i as usize]);
        let expected = arrow::compute::take_record_batch(&generated, &arrow::array::UInt32Array::from(order)).unwrap();
        assert_eq!(streamed, expected, "table {}", t.name());
    }
}

/// A writer that stops taking rows stops the generator with an error, and a generator that
/// stops early ends the stream with an error, never with fewer rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_writer_or_generator_is_an_error_not_a_shorter_table() {
    use futures::StreamExt;
    let (out, received) = stream::sorted_channel(Table::Calls);
    drop(received);
    let stopped = tokio::task::spawn_blocking(|| generate_streaming(&params(3), vec![out])).await.unwrap();
    assert!(matches!(stopped, Err(stream::StreamError::WriterGone("calls"))), "{stopped:?}");

    let (out, mut received) = stream::sorted_channel(Table::Calls);
    drop(out);
    let first = received.next().await.expect("an item");
    assert!(first.unwrap_err().to_string().contains("stopped before it made every row of calls"));
    assert!(received.next().await.is_none());
}

/// Rows made out of day order are refused, not written unsorted.
#[test]
fn a_row_before_what_was_sent_is_refused() {
    let (mut out, _received) = stream::sorted_channel(Table::Calls);
    let mut g = Generator::new(&params(5));
    let day = g.first_day + Duration::days(3);
    let late = g.local(day, 12 * 3600);
    g.staff();
    g.call(0, "outbound", late, None, None, None, false);
    let batch = g.t.calls.finish();
    std::thread::spawn(move || {
        out.flush(batch, late + 1).unwrap();
        g.call(0, "outbound", late - 1, None, None, None, false);
        let early = g.t.calls.finish();
        assert!(matches!(out.flush(early, late + 2), Err(stream::StreamError::OutOfOrder { table: "calls", .. })));
    })
    .join()
    .unwrap();
}
