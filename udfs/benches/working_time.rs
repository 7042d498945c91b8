//! `cargo bench --workspace --bench working_time` (with `-p salespulse-udfs` cargo resolves
//! other features and rebuilds DataFusion)
//!
//! 1. `working_seconds` over 10 M (start, end) pairs in 2025-2026 (spans up to 14 days),
//!    literal calendar `ru_msk`, without and with an employee who has absences, with the
//!    employee from a column of 50 managers (as the KPI views call it), and with one end in
//!    20 NULL: the UDF as DataFusion calls it (Arrow arrays in, Arrow array out, 8192
//!    rows a call), rows/s on one core.
//! 2. A naive per-row implementation with chrono-tz (walk the local days of each pair, map
//!    each window to instants), on 200 k of the same pairs: the baseline the fast path is
//!    compared with.
//! 3. Through SQL from Parquet: `avg(working_seconds(a, b, 'ru_msk'))` against
//!    `avg(b - a)` (a duration) and the same difference as Int64 over the same 10 M rows
//!    (one partition), for the cost ratio; on a file with the Parquet writer's defaults
//!    (uncompressed) and on one written as salespulse writes snapshots (zstd 3).
// The bench's unwraps are on its own generated data and files.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use rand::{Rng, SeedableRng};
use salespulse_udfs::{Absence, CalendarRegistry, WorkingTimeKind, WorkingTimeUdf, register_all};

const ROWS: usize = 10_000_000;
const NAIVE_ROWS: usize = 200_000;
const BATCH: usize = 8192;

fn pairs(n: usize) -> (Vec<i64>, Vec<i64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap().timestamp_nanos_opt().unwrap();
    let span = 700 * 86_400 * 1_000_000_000i64;
    let a: Vec<i64> = (0..n).map(|_| start + rng.random_range(0..span)).collect();
    let b: Vec<i64> = a.iter().map(|a| a + rng.random_range(0..14 * 86_400 * 1_000_000_000i64)).collect();
    (a, b)
}

fn registry() -> Arc<CalendarRegistry> {
    let d = |m, day| NaiveDate::from_ymd_opt(2025, m, day).unwrap();
    Arc::new(CalendarRegistry::builtin().with_absences([
        Absence::Days { employee: "m-1".into(), from: d(7, 14), to: d(7, 25) },
        Absence::Days { employee: "m-1".into(), from: d(9, 1), to: d(9, 3) },
        Absence::Timed { employee: "m-1".into(), start_ns: 1_760_511_600_000_000_000, end_ns: 1_760_520_600_000_000_000 },
    ]))
}

fn call(udf: &ScalarUDF, a: &ArrayRef, b: &ArrayRef, employee: Option<&str>) -> ColumnarValue {
    call_with(udf, a, b, employee.map(|e| ColumnarValue::Scalar(ScalarValue::Utf8(Some(e.into())))))
}

fn call_with(udf: &ScalarUDF, a: &ArrayRef, b: &ArrayRef, employee: Option<ColumnarValue>) -> ColumnarValue {
    let mut args = vec![
        ColumnarValue::Array(Arc::clone(a)),
        ColumnarValue::Array(Arc::clone(b)),
        ColumnarValue::Scalar(ScalarValue::Utf8(Some("ru_msk".into()))),
    ];
    let mut fields = vec![
        Arc::new(Field::new("a", a.data_type().clone(), true)),
        Arc::new(Field::new("b", b.data_type().clone(), true)),
        Arc::new(Field::new("c", DataType::Utf8, true)),
    ];
    if let Some(e) = employee {
        args.push(e);
        fields.push(Arc::new(Field::new("e", DataType::Utf8, true)));
    }
    udf.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields: fields,
        number_rows: a.len(),
        return_field: Arc::new(Field::new("r", DataType::Int64, true)),
        config_options: Arc::new(Default::default()),
    })
    .unwrap()
}

/// The naive baseline: per row, walk local days and map each window with chrono-tz.
fn naive_working_seconds(a: i64, b: i64, holidays: &HashSet<NaiveDate>) -> i64 {
    let tz = chrono_tz::Europe::Moscow;
    let from = chrono::DateTime::from_timestamp_nanos(a).with_timezone(&tz).date_naive();
    let to = chrono::DateTime::from_timestamp_nanos(b).with_timezone(&tz).date_naive();
    let mut total = 0;
    let mut d = from;
    while d <= to {
        if d.weekday().num_days_from_monday() < 5 && !holidays.contains(&d) {
            for (s, e) in [(9, 13), (14, 18)] {
                let ws = tz.from_local_datetime(&d.and_hms_opt(s, 0, 0).unwrap()).earliest().unwrap().timestamp_nanos_opt().unwrap();
                let we = tz.from_local_datetime(&d.and_hms_opt(e, 0, 0).unwrap()).earliest().unwrap().timestamp_nanos_opt().unwrap();
                total += (we.min(b) - ws.max(a)).max(0);
            }
        }
        d += Duration::days(1);
    }
    total / 1_000_000_000
}

fn bench(c: &mut Criterion) {
    let (a, b) = pairs(ROWS);
    let a: ArrayRef = Arc::new(TimestampNanosecondArray::from(a));
    let b: ArrayRef = Arc::new(TimestampNanosecondArray::from(b));
    let udf = ScalarUDF::from(WorkingTimeUdf::new(WorkingTimeKind::Seconds, registry()));
    call(&udf, &a, &b, Some("m-1")); // build the timeline and the removal table once

    let mut group = c.benchmark_group("working_seconds");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    // In DataFusion's batches of 8192 rows, as a query calls the UDF.
    let batches: Vec<(ArrayRef, ArrayRef)> =
        (0..ROWS).step_by(BATCH).map(|at| (a.slice(at, BATCH.min(ROWS - at)), b.slice(at, BATCH.min(ROWS - at)))).collect();
    let run_batches = |employee| batches.iter().for_each(|(a, b)| drop(black_box(call(&udf, a, b, employee))));
    group.bench_function("udf_10M_calendar", |bench| bench.iter(|| run_batches(None)));
    group.bench_function("udf_10M_calendar_employee", |bench| bench.iter(|| run_batches(Some("m-1"))));
    // The KPI views' case: the employee from a column (`l.manager_id`), 50 managers mixed.
    let managers: ArrayRef = Arc::new(StringArray::from_iter_values((0..ROWS).map(|i| format!("m-{}", i * 7 % 50))));
    let with_managers: Vec<(ArrayRef, ArrayRef, ArrayRef)> = batches
        .iter()
        .enumerate()
        .map(|(k, (a, b))| (Arc::clone(a), Arc::clone(b), managers.slice(k * BATCH, a.len())))
        .collect();
    group.bench_function("udf_10M_calendar_employee_column", |bench| {
        bench.iter(|| with_managers.iter().for_each(|(a, b, m)| drop(black_box(call_with(&udf, a, b, Some(ColumnarValue::Array(Arc::clone(m))))))))
    });
    // One end in 20 NULL (a lead nobody has called yet), as dashboards' columns often are.
    let b_with_nulls: ArrayRef = Arc::new(TimestampNanosecondArray::from_iter(
        b.as_primitive::<TimestampNanosecondType>().iter().enumerate().map(|(i, v)| v.filter(|_| i % 20 != 7)),
    ));
    let batches_with_nulls: Vec<(ArrayRef, ArrayRef)> = (0..ROWS)
        .step_by(BATCH)
        .map(|at| (a.slice(at, BATCH.min(ROWS - at)), b_with_nulls.slice(at, BATCH.min(ROWS - at))))
        .collect();
    group.bench_function("udf_10M_calendar_5pct_nulls", |bench| {
        bench.iter(|| batches_with_nulls.iter().for_each(|(a, b)| drop(black_box(call(&udf, a, b, None)))))
    });
    let holidays: HashSet<NaiveDate> = [
        "2025-01-01", "2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08", "2025-05-01", "2025-05-02",
        "2025-05-08", "2025-05-09", "2025-06-12", "2025-06-13", "2025-11-03", "2025-11-04", "2025-12-31", "2026-01-01",
        "2026-01-02", "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09", "2026-02-23", "2026-03-09",
        "2026-05-01", "2026-05-11", "2026-06-12", "2026-11-04", "2026-12-31",
    ]
    .iter()
    .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap())
    .collect();
    let (na, nb) = pairs(NAIVE_ROWS);
    group.throughput(Throughput::Elements(NAIVE_ROWS as u64));
    group.bench_function("naive_chrono_tz_200k", |bench| {
        bench.iter(|| na.iter().zip(&nb).map(|(a, b)| naive_working_seconds(*a, *b, &holidays)).sum::<i64>())
    });
    group.finish();

    // Through SQL, from Parquet.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("b", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    let to_us = |x: &ArrayRef| datafusion::arrow::compute::cast(x, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).unwrap();
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![to_us(&a), to_us(&b)]).unwrap();
    // The same rows twice: with the Parquet writer's defaults (uncompressed), and as
    // salespulse writes its snapshots (zstd level 3, row groups of 131,072 rows, page
    // statistics; src/snapshot/writer.rs).
    let snapshot_path = dir.path().join("pairs_snapshot.parquet");
    let snapshot_props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    for (path, props) in [(&path, None), (&snapshot_path, Some(snapshot_props))] {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), props).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    register_all(&ctx, registry());
    rt.block_on(ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default())).unwrap();
    rt.block_on(ctx.register_parquet("snapshot", snapshot_path.to_str().unwrap(), ParquetReadOptions::default())).unwrap();
    let run = |sql: &str| rt.block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() });
    run("SELECT avg(working_seconds(a, b, 'ru_msk')) FROM t");
    let mut group = c.benchmark_group("sql_10M_rows_parquet");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("avg_b_minus_a", |bench| bench.iter(|| run("SELECT avg(b - a) FROM t")));
    group.bench_function("avg_b_minus_a_int64", |bench| bench.iter(|| run("SELECT avg(arrow_cast(b, 'Int64') - arrow_cast(a, 'Int64')) FROM t")));
    group.bench_function("avg_working_seconds", |bench| bench.iter(|| run("SELECT avg(working_seconds(a, b, 'ru_msk')) FROM t")));
    group.bench_function("snapshot_avg_b_minus_a", |bench| bench.iter(|| run("SELECT avg(b - a) FROM snapshot")));
    group.bench_function("snapshot_avg_working_seconds", |bench| {
        bench.iter(|| run("SELECT avg(working_seconds(a, b, 'ru_msk')) FROM snapshot"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
