//! Snapshot writes: atomic commit, failure part-way, leftovers, retention, the manifest.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use futures::stream;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use salespulse::model::Table;
use salespulse::snapshot::{SnapshotError, Store, WriteOptions};

use crate::common::{demo_dataset, write_demo};

fn options(keep: usize) -> WriteOptions {
    WriteOptions {
        tenant: "demo".into(),
        taken_at: crate::common::AS_OF.parse().unwrap(),
        source: "test".into(),
        sync_cursors: Default::default(),
        keep_snapshots: keep,
        retention_grace: std::time::Duration::ZERO,
    }
}

fn snapshot_folders(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("demo/snapshots"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_write_that_fails_part_way_leaves_the_previous_snapshot_current() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let good = write_demo(&store, "demo").await;

    // The source yields two tables, then fails (a CRM that stops answering).
    let data = demo_dataset();
    let mut items: Vec<Result<(Table, Vec<RecordBatch>), SnapshotError>> = Vec::new();
    for t in [Table::Managers, Table::Calls] {
        items.push(Ok((t, data.tables[&t].clone())));
    }
    items.push(Err(SnapshotError::Source("the CRM stopped answering".into())));
    let err = store.write_snapshot(&options(5), stream::iter(items)).await.unwrap_err();
    assert!(err.to_string().contains("the CRM stopped answering"));

    assert_eq!(store.current_id("demo").await.unwrap().as_deref(), Some(good.snapshot_id.as_str()));
    let folders = snapshot_folders(root.path());
    assert_eq!(folders.len(), 2, "the partial folder is left behind: {folders:?}");
    let leftover = folders.iter().find(|f| **f != good.snapshot_id).unwrap().clone();
    assert!(root.path().join("demo/snapshots").join(&leftover).join("calls/part-00000.parquet").exists());
    assert!(!root.path().join("demo/snapshots").join(&leftover).join("manifest.json").exists());
    assert_eq!(store.list_snapshots("demo").await.unwrap().len(), 1, "only committed snapshots are listed");

    // The next write cleans the leftover up and commits.
    let items = data.tables.clone().into_iter().map(Ok);
    let report = store.write_snapshot(&options(5), stream::iter(items)).await.unwrap();
    assert_eq!(report.cleaned, vec![leftover.clone()]);
    assert!(!snapshot_folders(root.path()).contains(&leftover));
    assert_eq!(store.current_id("demo").await.unwrap(), Some(report.manifest.snapshot_id.clone()));
}

#[tokio::test]
async fn retention_keeps_the_newest_snapshots() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let data = demo_dataset();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let items = data.tables.clone().into_iter().map(Ok);
        let report = store.write_snapshot(&options(2), stream::iter(items)).await.unwrap();
        ids.push(report.manifest.snapshot_id);
    }
    assert_eq!(snapshot_folders(root.path()), ids[2..].to_vec());
    assert_eq!(store.current_id("demo").await.unwrap().as_ref(), ids.last());
}

/// Another server may still read a replaced snapshot until it notices the new one and its
/// queries end: retention waits out the grace period before deleting it.
#[tokio::test]
async fn retention_keeps_a_replaced_snapshot_for_the_grace_period() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let data = demo_dataset();
    let options = WriteOptions { retention_grace: std::time::Duration::from_secs(3), ..options(2) };
    let mut ids = Vec::new();
    for _ in 0..4 {
        let items = data.tables.clone().into_iter().map(Ok);
        let report = store.write_snapshot(&options, stream::iter(items)).await.unwrap();
        assert!(report.expired.is_empty(), "nothing replaced 3 s ago yet: {:?}", report.expired);
        ids.push(report.manifest.snapshot_id);
    }
    assert_eq!(snapshot_folders(root.path()), ids, "all four kept inside the grace period");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let items = data.tables.clone().into_iter().map(Ok);
    let report = store.write_snapshot(&options, stream::iter(items)).await.unwrap();
    ids.push(report.manifest.snapshot_id);
    assert_eq!(report.expired, ids[..3].to_vec());
    assert_eq!(snapshot_folders(root.path()), ids[3..].to_vec());
}

#[tokio::test]
async fn files_are_sorted_zstd_parquet_with_statistics_and_the_manifest_describes_them() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let manifest = write_demo(&store, "demo").await;
    let data = demo_dataset();
    for t in Table::ALL {
        assert_eq!(manifest.tables[t.name()].rows as usize, data.rows(*t), "{}", t.name());
    }
    let folder = root.path().join("demo/snapshots").join(&manifest.snapshot_id);
    let file = std::fs::File::open(folder.join("calls/part-00000.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = builder.metadata().clone();
    let column = meta.file_metadata().schema_descr().columns().iter().position(|c| c.name() == "started_at").unwrap();
    for rg in meta.row_groups() {
        let chunk = rg.column(column);
        assert!(chunk.compression().to_string().starts_with("ZSTD"), "zstd compression");
        assert!(chunk.statistics().is_some_and(|s| s.min_bytes_opt().is_some()), "row-group statistics");
    }
    let mut last = i64::MIN;
    for batch in builder.build().unwrap() {
        for v in batch.unwrap().column_by_name("started_at").unwrap().as_primitive::<TimestampMicrosecondType>().values() {
            assert!(*v >= last, "calls are sorted by started_at");
            last = *v;
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    insta::assert_json_snapshot!("demo_manifest", json, {
        ".snapshot_id" => "[id]",
        ".written_at" => "[time]",
        ".tables.*.bytes" => "[bytes]",
    });
    assert_eq!(std::fs::read_to_string(root.path().join("demo/CURRENT")).unwrap().trim(), manifest.snapshot_id);
}

/// A server following another writer never serves worse than before: when the snapshot
/// CURRENT names does not load (here a file is missing), it keeps the one it served, and
/// moves on once CURRENT names one that loads.
#[tokio::test]
async fn a_follow_keeps_the_served_snapshot_when_the_new_one_does_not_load() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    let first = write_demo(&store, "demo").await;
    let catalog = salespulse::catalog::Catalog::new(store.clone(), vec![crate::common::info("demo")])
        .with_materialise(salespulse::catalog::kpi::Materialise::UseStored);
    catalog.load_tenant("demo").await.unwrap();
    let broken = write_demo(&store, "demo").await;
    std::fs::remove_file(root.path().join("demo/snapshots").join(&broken.snapshot_id).join("calls/part-00000.parquet")).unwrap();
    let state = catalog.follow_tenant("demo").await.unwrap();
    assert_eq!(state.manifest.as_ref().unwrap().snapshot_id, first.snapshot_id);
    assert!(state.problem.is_none(), "the served state is the old one, untouched: {:?}", state.problem);
    let fixed = write_demo(&store, "demo").await;
    let state = catalog.follow_tenant("demo").await.unwrap();
    assert_eq!(state.manifest.as_ref().unwrap().snapshot_id, fixed.snapshot_id);
}

/// An ordered result leaves the engine as one stream in that order, also when the casts to
/// the types clients read sit above the sort. DataFusion 55 splits the sorted stream
/// round-robin below such a projection, and executing that plan coalesced the partitions
/// in arrival order: rows came back out of order from run to run
/// (`catalog/output_order.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_result_with_casts_to_client_types_stays_in_order() {
    use datafusion::physical_plan::{ExecutionPlanProperties, displayable};
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().to_str().unwrap()).unwrap();
    write_demo(&store, "demo").await;
    let catalog = salespulse::catalog::Catalog::new(store.clone(), vec![crate::common::info("demo")])
        .with_materialise(salespulse::catalog::kpi::Materialise::UseStored);
    catalog.load_tenant("demo").await.unwrap();
    let ctx = catalog.session_for(Some("demo"), None, "analyst");
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        // Two partitions whatever the machine, and many batches, so arrival order shows.
        options.set("datafusion.execution.target_partitions", "2").unwrap();
        options.set("datafusion.execution.batch_size", "512").unwrap();
    }
    // `REAL` is Float32, which clients get as Float64, and `call_id` is the engine's
    // `Utf8View`, which they get as `Utf8`: casts over the sort. The second query's scalar
    // subquery puts a node with two children at the top of the plan.
    let queries = [
        "SELECT call_id, started_at, CAST(duration_seconds AS REAL) AS seconds FROM crm.calls ORDER BY started_at DESC, call_id",
        "SELECT call_id, started_at, CAST(duration_seconds AS REAL) AS seconds FROM crm.calls \
         WHERE duration_seconds >= (SELECT min(duration_seconds) FROM crm.calls) ORDER BY started_at DESC, call_id",
    ];
    for sql in queries {
        let limits = salespulse::catalog::TextLimits::of(&salespulse_config::config::Limits::default());
        let df = salespulse::catalog::plan_query(&ctx, sql, limits, || None).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        assert_eq!(plan.output_partitioning().partition_count(), 1, "{sql}\n{}", displayable(plan.as_ref()).indent(true));
        for _ in 0..10 {
            let batches = df.clone().collect().await.unwrap();
            let mut keys = Vec::new();
            for batch in &batches {
                let started = batch.column(1).as_primitive::<TimestampMicrosecondType>();
                let ids = batch.column(0).as_string::<i32>();
                keys.extend((0..batch.num_rows()).map(|i| (std::cmp::Reverse(started.value(i)), ids.value(i).to_string())));
            }
            assert!(keys.len() > 5_000, "{} rows", keys.len());
            assert!(keys.is_sorted(), "rows out of order: {sql}");
        }
    }
}
