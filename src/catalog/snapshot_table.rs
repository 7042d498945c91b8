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

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use object_store::ObjectMeta;

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
    files: Vec<PartitionedFile>,
    statistics: Statistics,
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
        let format = ParquetFormat::default();
        let mut scanned = Vec::with_capacity(files.len());
        let mut statistics = Vec::with_capacity(files.len());
        for meta in files {
            let file_statistics = Arc::new(format.infer_stats(state, &store, Arc::clone(&schema), &meta).await?);
            statistics.push(Arc::clone(&file_statistics));
            scanned.push(PartitionedFile::from(meta).with_statistics(file_statistics));
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
            .map(|f| PartitionedFile { statistics: f.statistics.as_deref().map(|s| Arc::new(canonical_statistics(s))), ..f.clone() })
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

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, _filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
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
            .with_file_groups(vec![FileGroup::new(self.files.clone())])
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
