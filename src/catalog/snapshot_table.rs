//! One `crm` table of a served snapshot (or one stored `kpi` table), as DataFusion scans it.
//!
//! - **The manifest's files, not a listing.** The files, their sizes and their statistics
//!   are read once, when the snapshot is loaded. A query lists no storage, and a file
//!   deleted from under the server is an error (`… not found`), never an empty table.
//! - **Strings as `Utf8View` inside the engine** in the `crm` tables. Parquet strings
//!   decode into views without copying, and grouping, joining and filtering on them is
//!   faster (the ad-hoc benchmark at scale 10: 1.26× DuckDB's time with `Utf8`, 1.08–1.11× with
//!   views). Results are cast back to `Utf8` at the edge (`catalog::query::normalize_output`),
//!   and metadata shows the canonical types ([`client_type`](super::client_type)), so
//!   clients never see a view. That cast above an `ORDER BY` is what made DataFusion 55
//!   split the sorted stream and return rows out of order;
//!   [`output_order`](super::output_order) takes the split out.
//! - **`Utf8` where views cost memory.** The KPI build reads the same files as plain `Utf8`
//!   ([`SnapshotTable::canonical`]): a view keeps its whole page buffer alive, and the
//!   build's joins and sorts hold many batches (measured at scale 10: 4.3 GB peak with views
//!   against 2.6 GB). The stored `kpi` tables are small and read by dashboards as they are,
//!   so they stay `Utf8` too.
//! - **No declared order.** The files are sorted by their table's sort column, but the scan
//!   does not declare it: declaring it made DataFusion move an `ORDER BY` below three joins
//!   (`q1_won_deals`); it was not measured again on its own.
//! - **Statistics.** Row counts and min/max per file answer `count(*)`, `max(started_at)`
//!   without reading data, and prune row groups for time filters.
//! - **Work split over the row groups a filter keeps.** DataFusion splits a file into equal
//!   byte ranges, one per core, and prunes row groups inside each range afterwards (an idle
//!   core may take a sibling's waiting range, never part of one). The files are sorted by
//!   time, so a month's row groups all lay in one range and one core read them while the
//!   other had nothing (`manager_month_calls` at scale 10: eight row groups, all in the
//!   second half). The scan prunes row groups with the same statistics and predicate first
//!   and hands DataFusion only the byte ranges of the row groups kept, which it then splits
//!   evenly. Only for a file whose columns are the table's, in order (the statistics
//!   converter finds a column by position), and at most two ranges per core.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccessPlanFilter};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetFileMetrics};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use object_store::ObjectMeta;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataBuilder};

/// A snapshot table: its files as the manifest lists them, with what was read of them at
/// load.
#[derive(Debug, Clone)]
pub(super) struct SnapshotTable {
    /// The schema queries see: `schema_of_files` with `Utf8View` strings, or that schema
    /// itself ([`SnapshotTable::canonical`]).
    schema: SchemaRef,
    /// The canonical schema the files were written with.
    schema_of_files: SchemaRef,
    /// Whether strings are read as `Utf8View` (queries) or as the canonical `Utf8`.
    string_views: bool,
    store_url: ObjectStoreUrl,
    files: Vec<SnapshotFile>,
    statistics: Statistics,
}

/// One file of a table: what DataFusion scans, and where its row groups lie.
#[derive(Clone)]
struct SnapshotFile {
    scan: PartitionedFile,
    /// `None` when the file's row groups cannot be told apart safely (below).
    layout: Option<RowGroupLayout>,
}

/// What a scan needs to split a file over the row groups a filter keeps.
#[derive(Clone)]
struct RowGroupLayout {
    /// The footer without its page indexes (DataFusion's cache holds those).
    footer: Arc<ParquetMetaData>,
    /// Where each row group starts (as DataFusion places row groups in byte ranges: the
    /// first page of the first column) and where its last column chunk ends.
    spans: Vec<(i64, i64)>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("location", &self.scan.object_meta.location)
            .field("size", &self.scan.object_meta.size)
            .field("row_groups", &self.layout.as_ref().map(|l| l.spans.len()))
            .finish()
    }
}

impl SnapshotTable {
    /// A table of `schema` over `files` (each with the size the store reported at load),
    /// its strings read as `Utf8View` when `string_views` (the `crm` tables) or as the
    /// canonical `Utf8` (the stored `kpi` tables: small, and read by dashboards as they are).
    /// Reads each file's footer once, through the runtime's metadata cache, so the first
    /// queries find it there.
    ///
    /// # Errors
    /// A footer cannot be read.
    pub(super) async fn load(state: &dyn Session, store_url: ObjectStoreUrl, schema: SchemaRef, files: Vec<ObjectMeta>, string_views: bool) -> Result<SnapshotTable> {
        let schema_of_files = schema;
        let schema = if string_views { engine_schema(&schema_of_files) } else { Arc::clone(&schema_of_files) };
        let store = state.runtime_env().object_store(&store_url)?;
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let mut scanned = Vec::with_capacity(files.len());
        let mut statistics = Vec::with_capacity(files.len());
        for meta in files {
            let footer = DFParquetMetadata::new(store.as_ref(), &meta).with_file_metadata_cache(Some(Arc::clone(&cache))).fetch_metadata().await?;
            let file_statistics = Arc::new(DFParquetMetadata::statistics_from_parquet_metadata(&footer, &schema)?);
            statistics.push(Arc::clone(&file_statistics));
            let layout = RowGroupLayout::of(&footer, &schema);
            scanned.push(SnapshotFile { scan: PartitionedFile::from(meta).with_statistics(file_statistics), layout });
        }
        let statistics = match statistics.split_first() {
            None => Statistics::new_unknown(&schema).with_num_rows(datafusion::common::stats::Precision::Exact(0)),
            Some((first, [])) => first.as_ref().clone(),
            Some(_) => Statistics::try_merge_iter(statistics.iter().map(AsRef::as_ref), &schema)?,
        };
        Ok(SnapshotTable { schema, schema_of_files, string_views, store_url, files: scanned, statistics })
    }

    /// The same table with strings in the canonical `Utf8` (for the KPI build).
    pub(super) fn canonical(&self) -> SnapshotTable {
        // The table's and each file's statistics, typed by the view schema, as `Utf8`: the
        // file's prune row groups and fold constant columns in the scan.
        let files = self
            .files
            .iter()
            .map(|f| SnapshotFile {
                scan: PartitionedFile { statistics: f.scan.statistics.as_deref().map(|s| Arc::new(canonical_statistics(s))), ..f.scan.clone() },
                ..f.clone()
            })
            .collect();
        SnapshotTable {
            schema: Arc::clone(&self.schema_of_files),
            statistics: canonical_statistics(&self.statistics),
            files,
            string_views: false,
            ..self.clone()
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = datafusion::common::project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut options = state.table_options().parquet.clone();
        // Strings decode straight into the declared type.
        options.global.schema_force_view_types = self.string_views;
        let format = ParquetFormat::default().with_options(options);
        let source = format.file_source(TableSchema::from(Arc::clone(&self.schema)));
        // One group; the optimizer splits it by byte ranges over the target partitions.
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(vec![FileGroup::new(self.ranges_to_scan(state, filters))])
            .with_statistics(self.statistics.clone())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune row groups and pages in the scan; the filter itself still runs.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }
}

impl SnapshotTable {
    /// The files to scan: for each file, the byte ranges of the row groups `filters` may
    /// match (by the row groups' statistics, as DataFusion prunes them), so that the
    /// optimizer's split into equal byte ranges gives every core a share of the rows kept.
    /// The whole files where nothing or everything is pruned, the filters cannot prune, or
    /// what is kept is too small for the optimizer to split (it would then have halved the
    /// whole files instead).
    fn ranges_to_scan(&self, state: &dyn Session, filters: &[Expr]) -> Vec<PartitionedFile> {
        let whole = || self.files.iter().map(|f| f.scan.clone()).collect();
        let options = state.config().options();
        let partitions = state.config().target_partitions();
        if partitions < 2 || !options.optimizer.repartition_file_scans || !state.table_options().parquet.global.pruning {
            return whole();
        }
        let Some(predicate) = self.pruning_predicate(state, filters) else {
            return whole();
        };
        let metrics = ParquetFileMetrics::new(0, "row groups kept", &ExecutionPlanMetricsSet::new());
        let ranges: Vec<PartitionedFile> = self.files.iter().flat_map(|file| file.ranges_kept(&self.schema, &predicate, &metrics, 2 * partitions)).collect();
        let kept_bytes: u64 = ranges.iter().map(PartitionedFile::effective_size).sum();
        if kept_bytes < options.optimizer.repartition_file_min_size as u64 { whole() } else { ranges }
    }

    /// The predicate row groups are pruned with: the filters without volatile functions
    /// (`random()` must not decide which rows are read), each that DataFusion can plan
    /// (leaving one out only keeps more row groups).
    fn pruning_predicate(&self, state: &dyn Session, filters: &[Expr]) -> Option<Arc<PruningPredicate>> {
        let schema = DFSchema::try_from(Arc::clone(&self.schema)).ok()?;
        let physical: Vec<_> = filters.iter().filter(|f| !f.is_volatile()).filter_map(|f| state.create_physical_expr(f.clone(), &schema).ok()).collect();
        let predicate = physical.into_iter().reduce(|all, one| Arc::new(BinaryExpr::new(all, Operator::And, one)))?;
        PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&self.schema))
            .with_max_in_list_size(state.table_options().parquet.global.max_in_list_size)
            .build(predicate)
    }
}

impl SnapshotFile {
    /// This file as byte ranges over the row groups `predicate` keeps, one per run of
    /// consecutive row groups, at most `max_ranges` (the runs closest together are merged:
    /// a range opens the file once more, and the row groups between runs are pruned again
    /// when it is read).
    fn ranges_kept(&self, schema: &Schema, predicate: &PruningPredicate, metrics: &ParquetFileMetrics, max_ranges: usize) -> Vec<PartitionedFile> {
        let Some(layout) = &self.layout else { return vec![self.scan.clone()] };
        let groups = layout.footer.row_groups();
        let mut kept = RowGroupAccessPlanFilter::new(ParquetAccessPlan::new_all(groups.len()));
        kept.prune_by_statistics(schema, layout.footer.file_metadata().schema_descr(), groups, predicate, metrics);
        let kept: Vec<usize> = kept.row_group_indexes().collect();
        if kept.is_empty() || kept.len() == groups.len() {
            return vec![self.scan.clone()];
        }
        // Runs of consecutive row groups, as (first, last).
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &group in &kept {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == group => *last = group,
                _ => runs.push((group, group)),
            }
        }
        // Keeps the widest gaps between runs as the places to cut.
        let mut gaps: Vec<usize> = (1..runs.len()).collect();
        gaps.sort_by_key(|&i| std::cmp::Reverse(layout.spans[runs[i].0].0 - layout.spans[runs[i - 1].1].1));
        let mut cuts: Vec<usize> = gaps.into_iter().take(max_ranges.max(1) - 1).collect();
        cuts.sort_unstable();
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        let mut from = 0;
        for to in cuts.into_iter().chain(std::iter::once(runs.len())) {
            // From where the first starts to where the last ends: the optimizer splits the
            // range by bytes, and the footer after the last row group would weigh too.
            let (first, last) = (layout.spans[runs[from].0].0, layout.spans[runs[to - 1].1].1);
            ranges.push(self.scan.clone().with_range(first, last));
            from = to;
        }
        ranges
    }
}

impl RowGroupLayout {
    /// The layout of a file with `footer`, if its row groups can be told apart safely:
    /// - its columns are `schema`'s, by name and in order (DataFusion's statistics converter
    ///   finds a column's statistics by its position in the schema it is given);
    /// - every offset and size is sound, and each row group lies after the one before it.
    fn of(footer: &ParquetMetaData, schema: &Schema) -> Option<RowGroupLayout> {
        let columns = footer.file_metadata().schema_descr().columns();
        let same_columns = columns.len() == schema.fields().len()
            && columns.iter().zip(schema.fields()).all(|(column, field)| column.path().parts() == std::slice::from_ref(field.name()));
        if !same_columns {
            return None;
        }
        let chunk_start = |chunk: &parquet::file::metadata::ColumnChunkMetaData| chunk.dictionary_page_offset().unwrap_or_else(|| chunk.data_page_offset());
        let spans: Vec<(i64, i64)> = footer
            .row_groups()
            .iter()
            .map(|group| {
                let start = chunk_start(group.columns().first()?);
                let end = group.columns().iter().try_fold(start, |end, chunk| {
                    let (at, size) = (chunk_start(chunk), chunk.compressed_size());
                    (at >= 0 && size >= 0).then(|| at.checked_add(size)).flatten().map(|chunk_end| end.max(chunk_end))
                })?;
                (start >= 0 && start < end).then_some((start, end))
            })
            .collect::<Option<_>>()?;
        if !spans.windows(2).all(|pair| pair[0].1 <= pair[1].0) {
            return None;
        }
        let footer = ParquetMetaDataBuilder::new_from_metadata(footer.clone()).set_column_index(None).set_offset_index(None).build();
        Some(RowGroupLayout { footer: Arc::new(footer), spans })
    }
}

/// `statistics` of view-typed columns with their values as the canonical types.
fn canonical_statistics(statistics: &Statistics) -> Statistics {
    let mut statistics = statistics.clone();
    for column in &mut statistics.column_statistics {
        column.min_value = std::mem::take(&mut column.min_value).map(canonical_scalar);
        column.max_value = std::mem::take(&mut column.max_value).map(canonical_scalar);
    }
    statistics
}

/// A statistics value of a view-typed column as its canonical type.
fn canonical_scalar(value: ScalarValue) -> ScalarValue {
    match value {
        ScalarValue::Utf8View(text) => ScalarValue::Utf8(text),
        other => other,
    }
}

/// The schema the engine works with: the canonical schema with every `Utf8` column as
/// `Utf8View`.
fn engine_schema(canonical: &Schema) -> SchemaRef {
    let fields: Vec<Field> = canonical
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, canonical.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::SchemaRef;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    const ROW_GROUPS: i64 = 16;
    const ROWS_PER_GROUP: i64 = 100;

    /// Writes `columns` to `path` in row groups of 100 rows.
    fn write(path: &std::path::Path, columns: Vec<(&str, arrow::array::ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(ROWS_PER_GROUP as usize)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// A table of `schema` over the files at `paths`.
    async fn load(paths: &[std::path::PathBuf], schema: SchemaRef, string_views: bool) -> SnapshotTable {
        let store = LocalFileSystem::new();
        let mut files = Vec::new();
        for path in paths {
            files.push(store.head(&object_store::path::Path::from_filesystem_path(path).unwrap()).await.unwrap());
        }
        SnapshotTable::load(&SessionContext::new().state(), ObjectStoreUrl::local_filesystem(), schema, files, string_views).await.unwrap()
    }

    /// `at` from `first` on, one per row, and `who`, which repeats every 7 rows.
    fn rows_from(first: i64) -> Vec<(&'static str, arrow::array::ArrayRef)> {
        let rows = ROW_GROUPS * ROWS_PER_GROUP;
        let at = Int64Array::from_iter_values(first..first + rows);
        let who = StringArray::from_iter_values((first..first + rows).map(|i| format!("manager {}", i % 7)));
        vec![("at", Arc::new(at)), ("who", Arc::new(who))]
    }

    fn at_and_who() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("at", DataType::Int64, false), Field::new("who", DataType::Utf8, false)]))
    }

    /// A file sorted by `at` (0, 1, 2, …) in 16 row groups of 100 rows, with a string
    /// column `who` that repeats every 7 rows.
    async fn table(dir: &std::path::Path) -> SnapshotTable {
        let path = dir.join("part-00000.parquet");
        write(&path, rows_from(0));
        load(&[path], at_and_who(), true).await
    }

    /// `count(*)` of `sql` on two cores, checked equal (every column) with one core.
    async fn count_on_two_cores(table: SnapshotTable, sql: &str) -> i64 {
        let table = Arc::new(table);
        let one_core = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        one_core.register_table("t", Arc::clone(&table) as Arc<dyn TableProvider>).unwrap();
        let ctx = two_cores();
        ctx.register_table("t", table).unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let alone = one_core.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(batches, alone, "{sql}: two cores and one agree");
        batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
    }

    /// Two cores, and files split however small (as a large file would be).
    fn two_cores() -> SessionContext {
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.repartition_file_min_size = 0;
        SessionContext::new_with_config(config)
    }

    /// How many row groups of `table` each partition of the scan in the plan of `sql` is
    /// given (by where they start, as DataFusion assigns row groups to byte ranges), of those
    /// `sql`'s filter keeps. DataFusion 55 lets an idle partition take a sibling's waiting
    /// ranges, so rows returned per partition depend on timing; the ranges do not.
    async fn row_groups_per_partition(ctx: &SessionContext, table: &SnapshotTable, sql: &str, kept: std::ops::Range<usize>) -> Vec<usize> {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let mut scans = Vec::new();
        plan.apply(|node| {
            if let Some(config) = node.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>()) {
                scans.push(config.file_groups.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        assert_eq!(scans.len(), 1, "{}", displayable(plan.as_ref()).indent(true));
        let spans = table.files[0].layout.clone().unwrap().spans;
        scans[0]
            .iter()
            .map(|group| {
                let in_group = |start: i64| group.iter().any(|f| f.range.as_ref().is_none_or(|r| r.start <= start && start < r.end));
                spans[kept.clone()].iter().filter(|(start, _)| in_group(*start)).count()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_row_groups_a_time_filter_keeps_are_shared_between_cores() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = two_cores();
        let table = table(dir.path()).await;
        ctx.register_table("t", Arc::new(table.clone())).unwrap();
        // The last four of sixteen row groups: with the file cut in two equal byte ranges,
        // all four lie in the second, and one core reads them all.
        let last_four = (ROW_GROUPS - 4) * ROWS_PER_GROUP;
        let given = row_groups_per_partition(&ctx, &table, &format!("SELECT at, who FROM t WHERE at >= {last_four}"), 12..16).await;
        assert_eq!(given, vec![2, 2], "each core is given two of the four row groups kept");
        // Two runs apart (row groups 1-2 and 13-14) are shared too.
        let sql = "SELECT at FROM t WHERE (at >= 100 AND at < 300) OR (at >= 1300 AND at < 1500)";
        let given = row_groups_per_partition(&ctx, &table, sql, 1..3).await;
        let later = row_groups_per_partition(&ctx, &table, sql, 13..15).await;
        assert_eq!(given.iter().zip(&later).map(|(a, b)| a + b).collect::<Vec<_>>(), vec![2, 2], "{given:?} {later:?}");
    }

    #[tokio::test]
    async fn ranges_lose_and_repeat_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path()).await;
        let rows = ROW_GROUPS * ROWS_PER_GROUP;
        let cases: Vec<(String, i64)> = vec![
            ("at >= 0".into(), rows),
            ("at < 0".into(), 0),
            ("at >= 1599".into(), 1),
            ("at >= 99 AND at <= 100".into(), 2),
            ("at >= 150 AND at < 1450".into(), 1300),
            ("at < 50 OR at >= 1550".into(), 100),
            ("at % 100 = 0 AND at >= 700".into(), 9),
            ("who = 'manager 3' AND at >= 1000".into(), (1000..rows).filter(|i| i % 7 == 3).count() as i64),
            ("at >= 1500 AND random() >= 0.0".into(), 100),
            ("at >= 1500 OR random() < 0.0".into(), 100),
            // Six runs of row groups apart, more than twice the cores: merged into four ranges.
            ((0..11).map(|g| format!("(at >= {} AND at < {})", g * 150, g * 150 + 10)).collect::<Vec<_>>().join(" OR "), 110),
        ];
        for (filter, expected) in cases {
            let sql = format!("SELECT count(*) AS n, sum(at) AS s FROM t WHERE {filter}");
            assert_eq!(count_on_two_cores(table.clone(), &sql).await, expected, "{filter}");
        }
    }

    #[tokio::test]
    async fn a_file_with_its_columns_in_another_order_is_read_whole() {
        // The statistics of a row group are found by a column's position: in a file whose
        // columns are (b, at), `at >= 1200` would be judged on b, which falls as at grows,
        // and the row groups holding the answer would be cut away.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.parquet");
        let rows = ROW_GROUPS * ROWS_PER_GROUP;
        write(&path, vec![("b", Arc::new(Int64Array::from_iter_values((0..rows).rev())) as _), ("at", Arc::new(Int64Array::from_iter_values(0..rows)) as _)]);
        let schema = Arc::new(Schema::new(vec![Field::new("at", DataType::Int64, false), Field::new("b", DataType::Int64, false)]));
        let table = load(&[path], schema, true).await;
        assert_eq!(count_on_two_cores(table.clone(), "SELECT count(*), sum(b) FROM t WHERE at >= 1200").await, 400);
        assert!(table.files[0].layout.is_none());
    }

    #[tokio::test]
    async fn tables_of_several_files_and_canonical_strings_lose_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("part-00000.parquet"), dir.path().join("part-00001.parquet")];
        write(&paths[0], rows_from(0));
        write(&paths[1], rows_from(ROW_GROUPS * ROWS_PER_GROUP));
        let table = load(&paths, at_and_who(), true).await;
        // The last two row groups of the first file and the first two of the second.
        let sql = "SELECT count(*), sum(at) FROM t WHERE at >= 1400 AND at < 1800";
        assert_eq!(count_on_two_cores(table.clone(), sql).await, 400);
        let sql = "SELECT count(*), max(who) FROM t WHERE who = 'manager 3' AND (at < 250 OR at >= 3000)";
        let expected = (0..250).chain(3000..3200).filter(|i| i % 7 == 3).count() as i64;
        assert_eq!(count_on_two_cores(table.clone(), sql).await, expected);
        assert_eq!(count_on_two_cores(table.canonical(), sql).await, expected);
    }
}
