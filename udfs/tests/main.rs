//! Every vector of docs/udfs.md (`vectors.json`, copied from the spec with `calendars.toml`)
//! through SQL, plus argument checks, whole-year totals and properties against a
//! deliberately simple minute-by-minute reference evaluator.
// Helpers unwrap the tests' own fixtures; a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType};
use datafusion::prelude::SessionContext;
use salespulse_udfs::{CalendarRegistry, register_all};

fn registry() -> Arc<CalendarRegistry> {
    Arc::new(CalendarRegistry::from_file(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calendars.toml"))).unwrap())
}

fn ctx_with(registry: Arc<CalendarRegistry>) -> SessionContext {
    let ctx = SessionContext::new();
    register_all(&ctx, registry);
    ctx
}

fn literal(function: &str, position: usize, v: &serde_json::Value) -> String {
    let timestamp = match function {
        "is_working_time" => position == 0,
        "add_working_time" => position == 0,
        "is_successful_call" => false,
        _ => position < 2,
    };
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Bool(b) => b.to_string().to_uppercase(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) if timestamp => format!("to_timestamp('{s}')"),
        serde_json::Value::String(s) => format!("'{s}'"),
        other => panic!("unexpected argument {other}"),
    }
}

#[derive(Debug, PartialEq)]
enum Got {
    Null,
    Int(i64),
    Bool(bool),
    Instant(i64),
}

async fn eval(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Got> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let c = batches[0].column(0);
    if c.is_null(0) {
        return Ok(Got::Null);
    }
    Ok(match c.data_type() {
        datafusion::arrow::datatypes::DataType::Int64 => Got::Int(c.as_primitive::<Int64Type>().value(0)),
        datafusion::arrow::datatypes::DataType::Boolean => Got::Bool(c.as_boolean().value(0)),
        datafusion::arrow::datatypes::DataType::Timestamp(..) => {
            let ns = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None))?;
            Got::Instant(ns.as_primitive::<TimestampNanosecondType>().value(0))
        }
        other => panic!("unexpected result type {other}"),
    })
}

fn expected(v: &serde_json::Value) -> Got {
    match &v["expected"] {
        serde_json::Value::Null => Got::Null,
        serde_json::Value::Bool(b) => Got::Bool(*b),
        serde_json::Value::Number(n) => Got::Int(n.as_i64().unwrap()),
        serde_json::Value::String(s) => Got::Instant(DateTime::parse_from_rfc3339(s).unwrap().timestamp_nanos_opt().unwrap()),
        other => panic!("unexpected expectation {other}"),
    }
}

#[tokio::test]
async fn spec_vectors_pass_through_sql() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ctx = ctx_with(registry());
    let mut failures = Vec::new();
    let vectors = spec["vectors"].as_array().unwrap();
    for v in vectors {
        let function = v["function"].as_str().unwrap();
        let args: Vec<String> = v["args"].as_array().unwrap().iter().enumerate().map(|(i, a)| literal(function, i, a)).collect();
        let sql = format!("SELECT {function}({})", args.join(", "));
        let got = eval(&ctx, &sql).await;
        match (v.get("expected_error").and_then(|e| e.as_str()), got) {
            (Some(err), Err(e)) if e.to_string().contains(err) => {}
            (Some(err), other) => failures.push(format!("{}: {sql}: expected error '{err}', got {other:?}", v["id"])),
            (None, Ok(g)) if g == expected(v) => {}
            (None, other) => failures.push(format!("{}: {sql}: expected {:?}, got {other:?} ({})", v["id"], expected(v), v["why"])),
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), vectors.len(), failures.join("\n"));
    assert_eq!(vectors.len(), 75);
}

#[tokio::test]
async fn successful_call_columns_floats_and_errors() {
    let ctx = ctx_with(registry());
    let sql = "SELECT is_successful_call(d, 60, a) FROM (VALUES (61, true), (61, false), (30, NULL), (NULL, false), (61.5, true)) AS t(d, a)";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let got: Vec<Option<bool>> = batches[0].column(0).as_boolean().iter().collect();
    assert_eq!(got, vec![Some(true), Some(false), Some(false), Some(false), Some(true)]);
    assert_eq!(eval(&ctx, "SELECT is_successful_call(60.5, 60)").await.unwrap(), Got::Bool(true));
    let err = eval(&ctx, "SELECT is_successful_call(61, -1)").await.unwrap_err().to_string();
    assert!(err.contains("threshold_seconds must be >= 0"), "{err}");
    let err = eval(&ctx, "SELECT is_successful_call('long')").await.unwrap_err().to_string();
    assert!(err.contains("must be numbers"), "{err}");
}

#[tokio::test]
async fn the_session_sets_the_default_call_threshold() {
    let config = datafusion::prelude::SessionConfig::new().with_option_extension(salespulse_udfs::SalesOptions::default());
    let ctx = SessionContext::new_with_config(config);
    register_all(&ctx, registry());
    assert_eq!(eval(&ctx, "SELECT is_successful_call(45)").await.unwrap(), Got::Bool(false));
    ctx.sql("SET salespulse.call_success_threshold_seconds = 30").await.unwrap().collect().await.unwrap();
    assert_eq!(eval(&ctx, "SELECT is_successful_call(45)").await.unwrap(), Got::Bool(true));
    assert_eq!(eval(&ctx, "SELECT is_successful_call(45, 60)").await.unwrap(), Got::Bool(false), "an explicit threshold wins");
}

#[tokio::test]
async fn a_row_with_either_end_outside_the_holiday_data_is_null() {
    // ru_msk's holiday data covers 2025-2026. Batches of same-unit columns in which only the
    // start, or only the end, of one row lies outside it: the fused loop's coverage check
    // must read both columns (one row outside in either sends the batch to the exact pass).
    let ctx = ctx_with(registry());
    for (a, b) in [("2024-12-30T06:00:00Z", "2025-06-02T10:00:00Z"), ("2025-06-02T06:00:00Z", "2027-01-11T10:00:00Z")] {
        let sql = format!(
            "SELECT working_seconds(a, b, 'ru_msk') FROM (VALUES \
             (to_timestamp('2025-06-02T06:00:00Z'), to_timestamp('2025-06-02T10:00:00Z')), \
             (to_timestamp('{a}'), to_timestamp('{b}')), \
             (to_timestamp('2026-06-01T06:00:00Z'), to_timestamp('2026-06-01T07:00:00Z'))) AS t(a, b)"
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let got: Vec<Option<i64>> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect();
        // 09:00-13:00 MSK is 4 h; 09:00-10:00 MSK is 1 h.
        assert_eq!(got, vec![Some(4 * 3600), None, Some(3600)], "{a} .. {b}");
    }
}

#[tokio::test]
async fn columns_units_zones_and_employees() {
    let ctx = ctx_with(registry());
    // Calendar and employee as columns; microsecond and second units; a zone annotation.
    let sql = "SELECT working_seconds(arrow_cast(a, 'Timestamp(Microsecond, Some(\"UTC\"))'), arrow_cast(b, 'Timestamp(Second, None)'), cal, emp) AS ws \
               FROM (VALUES (to_timestamp('2025-07-14T06:00:00Z'), to_timestamp('2025-07-14T15:00:00Z'), 'ru_msk', 'm-101'), \
                            (to_timestamp('2025-07-14T06:00:00Z'), to_timestamp('2025-07-14T15:00:00Z'), 'ru_msk', 'm-999'), \
                            (to_timestamp('2025-07-14T06:00:00Z'), to_timestamp('2025-07-14T15:00:00Z'), 'de_berlin', NULL), \
                            (to_timestamp('2025-07-14T06:00:00Z'), to_timestamp('2025-07-14T15:00:00Z'), NULL, NULL)) AS t(a, b, cal, emp)";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let got: Vec<Option<i64>> = batches[0].column(0).as_primitive::<Int64Type>().iter().collect();
    // m-101 is on vacation; m-999 unknown = calendar only (8 h); Berlin 08:00-17:00 local = 07:00 (06:00Z..15:00Z) ... 8 h.
    assert_eq!(got, vec![Some(0), Some(8 * 3600), Some(8 * 3600), None]);
    // Employee ids as integers match text ids.
    let reg = Arc::new(CalendarRegistry::builtin().with_absences([salespulse_udfs::Absence::Days {
        employee: "1042".into(),
        from: NaiveDate::from_ymd_opt(2025, 6, 2).unwrap(),
        to: NaiveDate::from_ymd_opt(2025, 6, 2).unwrap(),
    }]));
    let ctx2 = ctx_with(reg);
    let v = eval(&ctx2, "SELECT working_seconds(to_timestamp('2025-06-02T00:00:00Z'), to_timestamp('2025-06-03T00:00:00Z'), 'ru_msk', 1042)").await.unwrap();
    assert_eq!(v, Got::Int(0));
    let batches = ctx2.sql("SELECT working_hours(to_timestamp('2025-06-03T06:00:00Z'), to_timestamp('2025-06-03T07:30:00Z'))").await.unwrap().collect().await.unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0), 1.5);
    // add_working_time keeps the unit and zone of its input.
    let batches = ctx.sql("SELECT add_working_time(arrow_cast(to_timestamp('2025-06-06T14:00:00Z'), 'Timestamp(Millisecond, Some(\"+03:00\"))'), 3600, 'ru_msk')").await.unwrap().collect().await.unwrap();
    assert_eq!(batches[0].schema().field(0).data_type().to_string(), "Timestamp(ms, \"+03:00\")");
    // Arguments that are not timestamps are refused at planning with a fix.
    let err = ctx.sql("SELECT working_seconds(DATE '2025-01-01', DATE '2025-01-02')").await.unwrap_err().to_string();
    assert!(err.contains("must be a timestamp") && err.contains("CAST"), "{err}");
    // Placeholder dates from CRM exports give NULL, not an error or an overflow.
    let v = eval(&ctx, "SELECT working_seconds(arrow_cast(-62135596800, 'Timestamp(Second, None)'), to_timestamp('2025-06-03T00:00:00Z'), 'de_berlin_24x7')").await.unwrap();
    assert_eq!(v, Got::Null);
}

#[tokio::test]
async fn whole_years_hold_the_published_totals() {
    // The example calendars of the spec hold 2025-2026; the built-in ones 2022-2026.
    let published = [(2022, 247, 1973), (2023, 247, 1973), (2024, 248, 1979), (2025, 247, 1972), (2026, 247, 1972)];
    for (registry, years) in [(registry(), &published[3..]), (Arc::new(CalendarRegistry::builtin()), &published[..])] {
        let ctx = ctx_with(registry);
        for &(year, published_days, published_hours) in years {
            // Day by day, so the check also counts working days.
            let sql = format!(
                "SELECT sum(working_seconds(d, d + INTERVAL '1 day', 'ru_msk')) AS s, count(*) FILTER (WHERE working_seconds(d, d + INTERVAL '1 day', 'ru_msk') > 0) AS days \
                 FROM (SELECT unnest(generate_series(to_timestamp('{year}-01-01T00:00:00+03:00'), to_timestamp('{year}-12-31T00:00:00+03:00'), INTERVAL '1 day')) AS d)"
            );
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let seconds = batches[0].column(0).as_primitive::<Int64Type>().value(0);
            let days = batches[0].column(1).as_primitive::<Int64Type>().value(0);
            assert_eq!((days, seconds), (published_days, published_hours * 3600), "RU {year}");
        }
    }
}

/// The reference evaluator: walks minute by minute in local wall time, straight from the
/// rules of docs/udfs.md §2.2, for the ru_msk calendar (no DST in Moscow since 2014).
fn reference_working_minutes(a: DateTime<chrono::Utc>, b: DateTime<chrono::Utc>) -> i64 {
    let tz = chrono_tz::Europe::Moscow;
    let holidays: Vec<NaiveDate> = [
        "2025-01-01", "2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08", "2025-05-01", "2025-05-02",
        "2025-05-08", "2025-05-09", "2025-06-12", "2025-06-13", "2025-11-03", "2025-11-04", "2025-12-31",
        "2026-01-01", "2026-01-02", "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09",
        "2026-02-23", "2026-03-09", "2026-05-01", "2026-05-11", "2026-06-12", "2026-11-04", "2026-12-31",
    ]
    .iter()
    .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap())
    .collect();
    let working_saturdays = [NaiveDate::from_ymd_opt(2025, 11, 1).unwrap()];
    let short: Vec<NaiveDate> = ["2025-03-07", "2025-04-30", "2025-06-11", "2025-11-01", "2026-04-30", "2026-05-08", "2026-06-11", "2026-11-03"]
        .iter()
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap())
        .collect();
    let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
    let mut t = lo;
    let mut minutes = 0;
    while t < hi {
        let local = t.with_timezone(&tz);
        let date = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        let weekday = date.weekday().num_days_from_monday();
        let working_day = (weekday < 5 || working_saturdays.contains(&date)) && !holidays.contains(&date);
        let close = if short.contains(&date) { 17 * 60 } else { 18 * 60 };
        if working_day && ((9 * 60..13 * 60).contains(&minute) || (14 * 60..close).contains(&minute)) {
            minutes += 1;
        }
        t += Duration::minutes(1);
    }
    sign * minutes
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn minute_in_2025_2026() -> impl Strategy<Value = DateTime<chrono::Utc>> {
        // Minute-aligned instants in the covered years (the reference scans minutes).
        (0i64..(2 * 365 * 24 * 60 - 60 * 24 * 20)).prop_map(|m| chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(m))
    }

    /// One session for all cases: building the built-in timelines once keeps the test fast.
    fn shared_ctx() -> &'static SessionContext {
        static CTX: std::sync::OnceLock<SessionContext> = std::sync::OnceLock::new();
        CTX.get_or_init(|| ctx_with(Arc::new(CalendarRegistry::builtin())))
    }

    fn ws(ctx: &SessionContext, a: DateTime<chrono::Utc>, b: DateTime<chrono::Utc>) -> Option<i64> {
        let sql = format!("SELECT working_seconds(to_timestamp('{}'), to_timestamp('{}'), 'ru_msk')", a.to_rfc3339(), b.to_rfc3339());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        match rt.block_on(eval(ctx, &sql)).unwrap() {
            Got::Int(v) => Some(v),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        #[test]
        fn agrees_with_the_reference_and_is_antisymmetric(a in minute_in_2025_2026(), span in 0i64..(60 * 24 * 12)) {
            let ctx = shared_ctx();
            let b = a + Duration::minutes(span);
            let forward = ws(ctx, a, b).unwrap();
            prop_assert_eq!(forward, reference_working_minutes(a, b) * 60);
            prop_assert_eq!(ws(ctx, b, a).unwrap(), -forward);
        }

        #[test]
        fn is_additive(a in minute_in_2025_2026(), s1 in 0i64..(60 * 24 * 5), s2 in 0i64..(60 * 24 * 5)) {
            let ctx = shared_ctx();
            let b = a + Duration::minutes(s1);
            let c = b + Duration::minutes(s2);
            prop_assert_eq!(ws(ctx, a, b).unwrap() + ws(ctx, b, c).unwrap(), ws(ctx, a, c).unwrap());
        }

        #[test]
        fn add_working_time_is_the_inverse(a in minute_in_2025_2026(), n in -200_000i64..200_000) {
            let ctx = shared_ctx();
            let sql = format!("SELECT add_working_time(to_timestamp('{}'), {n}, 'ru_msk')", a.to_rfc3339());
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            if let Got::Instant(x) = rt.block_on(eval(ctx, &sql)).unwrap() {
                let x = DateTime::from_timestamp_nanos(x);
                prop_assert_eq!(ws(ctx, a, x).unwrap(), n);
            }
        }
    }
}

/// The batch paths (literal calendar and employee: one fused pass per batch) give exactly
/// what the per-row path (calendar and employee from columns) gives, NULLs, instants out of
/// range and outside the holiday data included.
#[tokio::test]
async fn literal_and_column_calendars_agree_row_for_row() {
    use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::datasource::MemTable;
    use rand::{Rng, SeedableRng};

    let d = |m, day| NaiveDate::from_ymd_opt(2025, m, day).unwrap();
    let registry = Arc::new(CalendarRegistry::builtin().with_absences([
        salespulse_udfs::Absence::Days { employee: "m-1".into(), from: d(7, 14), to: d(7, 25) },
        salespulse_udfs::Absence::Timed { employee: "m-1".into(), start_ns: 1_760_511_600_000_000_000, end_ns: 1_760_520_600_000_000_000 },
    ]));
    let ctx = ctx_with(registry);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let us = |y: i32| chrono::Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap().timestamp_micros();
    let rows = 5_000;
    let mut a = Vec::with_capacity(rows);
    let mut b = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x = match rng.random_range(0..100) {
            0 => None,
            1 => Some(us(1900)),
            2 => Some(us(2150)),
            // Anywhere in i64: the unit conversion to nanoseconds overflows.
            3 => Some(rng.random_range(i64::MIN / 2..i64::MAX / 2)),
            4..=10 => Some(rng.random_range(us(2015)..us(2035))),
            _ => Some(rng.random_range(us(2025)..us(2027))),
        };
        // Whole milliseconds, so that an empty range stays empty in both units below.
        let x = x.map(|x: i64| x - x.rem_euclid(1_000));
        let y = match rng.random_range(0..100) {
            0 => None,
            // Empty ranges: 0 even outside the holiday data.
            1..=4 => x,
            _ => x.map(|x| x.saturating_add(rng.random_range(-3 * 86_400_000_000i64..30 * 86_400_000_000))),
        };
        a.push(x);
        b.push(y);
    }
    // Around m-1's timed absence (2025-10-15, 10:00-12:30 in Moscow), which splits a window:
    // instants on both sides of it and inside it, for the literal employee's own table.
    let absence_day = chrono::Utc.with_ymd_and_hms(2025, 10, 15, 4, 0, 0).unwrap().timestamp_micros();
    for k in 0..120i64 {
        a.push(Some(absence_day + k * 5 * 60_000_000));
        b.push(Some(absence_day + k * 5 * 60_000_000 + (k % 13) * 17 * 60_000_000));
    }
    let rows = a.len();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", ts.clone(), true),
        Field::new("b", ts, true),
        Field::new("cal", DataType::Utf8, false),
        Field::new("emp", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(TimestampMicrosecondArray::from(a).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(b).with_timezone("UTC")),
            Arc::new(StringArray::from(vec!["ru_msk"; rows])),
            Arc::new(StringArray::from(vec!["m-1"; rows])),
        ],
    )
    .unwrap();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
    let pairs = [
        ("working_seconds(a, b, 'ru_msk')", "working_seconds(a, b, cal)"),
        ("working_seconds(a, b, 'ru_msk', 'm-1')", "working_seconds(a, b, cal, emp)"),
        ("working_hours(a, b, 'ru_msk', 'm-1')", "working_hours(a, b, cal, emp)"),
        // The literal employee in whole seconds.
        (
            "working_seconds(arrow_cast(a, 'Timestamp(Second, Some(\"UTC\"))'), arrow_cast(b, 'Timestamp(Second, Some(\"UTC\"))'), 'ru_msk', 'm-1')",
            "working_seconds(arrow_cast(a, 'Timestamp(Second, Some(\"UTC\"))'), arrow_cast(b, 'Timestamp(Second, Some(\"UTC\"))'), cal, emp)",
        ),
        // A distinct employee (without absences) per row: the column resolves row by row
        // rather than gathering each employee's rows.
        ("working_seconds(a, b, 'ru_msk')", "working_seconds(a, b, cal, concat('nobody-', CAST(a AS VARCHAR)))"),
        // Inputs in two units.
        (
            "working_seconds(a, arrow_cast(b, 'Timestamp(Millisecond, Some(\"UTC\"))'), 'ru_msk')",
            "working_seconds(a, arrow_cast(b, 'Timestamp(Millisecond, Some(\"UTC\"))'), cal)",
        ),
    ];
    // Unfiltered, every batch has instants outside the holiday data; filtered to the data's
    // years, the batches have NULLs (placeholder values outside it) and covered rows only.
    let covered = "(a IS NULL OR a BETWEEN TIMESTAMP '2025-01-01T00:00:00Z' AND TIMESTAMP '2026-06-01T00:00:00Z') \
                   AND (b IS NULL OR b BETWEEN TIMESTAMP '2025-01-01T00:00:00Z' AND TIMESTAMP '2026-06-01T00:00:00Z')";
    // OFFSET slices the batch: NULL bits and values start mid-word.
    let sliced = format!("{covered} LIMIT 2500 OFFSET 37");
    let filters = [("TRUE", 100, 4_000), (covered, 20, 2_000), (sliced.as_str(), 20, 2_000)];
    for ((literal, column), (filter, min_nulls, min_values)) in pairs.into_iter().flat_map(|p| filters.map(|f| (p, f))) {
        let sql = format!("SELECT {literal}, {column} FROM t WHERE {filter}");
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let (mut nulls, mut values) = (0, 0);
        for batch in &batches {
            let (x, y) = (batch.column(0), batch.column(1));
            let show = |c: &datafusion::arrow::array::ArrayRef, i| c.is_valid(i).then(|| datafusion::arrow::util::display::array_value_to_string(c, i).unwrap());
            for i in 0..batch.num_rows() {
                assert_eq!(show(x, i), show(y, i), "{literal} vs {column}, row {i}");
                if x.is_valid(i) { values += 1 } else { nulls += 1 }
            }
        }
        assert!(nulls > min_nulls && values > min_values, "{literal} where {filter}: {nulls} NULLs, {values} values");
    }
}

#[tokio::test]
async fn outside_coverage_error_names_the_calendar_and_spares_null_and_empty_rows() {
    let toml = "format_version = 1\n\
        [holiday_sets.h]\ncovers = [\"2025-01-01\", \"2025-12-31\"]\nsource = \"test\"\nholidays = [\"2025-05-01\"]\n\
        [calendars.strict]\ntimezone = \"UTC\"\nholiday_sets = [\"h\"]\noutside_coverage = \"error\"\n\
        [calendars.strict.week]\nmon = [\"09:00-17:00\"]\ntue = [\"09:00-17:00\"]\n";
    let ctx = ctx_with(Arc::new(CalendarRegistry::from_toml("strict.toml", toml).unwrap()));
    let rows = |extra: &str| {
        format!(
            "(VALUES (to_timestamp('2025-06-02T08:00:00Z'), to_timestamp('2025-06-03T10:00:00Z'), 'strict'), \
                     (to_timestamp('2025-06-02T08:00:00Z'), NULL, 'strict'), \
                     (to_timestamp('2030-01-07T10:00:00Z'), to_timestamp('2030-01-07T10:00:00Z'), 'strict'){extra}) AS t(a, b, cal)"
        )
    };
    for calendar in ["'strict'", "cal"] {
        // Inside the data, a NULL end, and an empty range outside it: no error.
        let sql = format!("SELECT working_seconds(a, b, {calendar}) FROM {}", rows(""));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let got: Vec<Option<i64>> = batches[0].column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(got, vec![Some(9 * 3600), None, Some(0)], "{calendar}");
        // One row reaching 2026: the query fails and says which calendar and which dates.
        let sql = format!("SELECT working_seconds(a, b, {calendar}) FROM {}", rows(", (to_timestamp('2025-12-30T08:00:00Z'), to_timestamp('2026-01-02T10:00:00Z'), 'strict')"));
        let err = ctx.sql(&sql).await.unwrap().collect().await.unwrap_err().to_string();
        assert!(err.contains("outside the holiday data of calendar 'strict'") && err.contains("2025-01-01..2025-12-31"), "{calendar}: {err}");
    }
    let err = ctx.sql("SELECT is_working_time(to_timestamp('2026-03-02T10:00:00Z'), 'strict')").await.unwrap().collect().await.unwrap_err().to_string();
    assert!(err.contains("calendar 'strict'"), "{err}");
}
