//! One `crm` table of a served snapshot (or one stored `kpi` table), as DataFusion scans it.
//!
//! - **The manifest's files, not a listing.** The files, their sizes and their statistics
//!   are read once, when the snapshot is loaded. A query lists no storage, and a file
//!   deleted from under the server is an error (`… not found`), never an empty table.
//! - **Strings stay `Utf8`.** Reading them as `Utf8View` made the ad-hoc benchmark 1.2×
//!   faster, but with views DataFusion 55.2 returned an `ORDER BY` over three joins out of
//!   order in 3 to 12 runs out of 100 (`benches/adhoc.py`, `q1_won_deals`; never with
//!   `Utf8`). The view-typed version is commit 921fd1a, for when that is fixed upstream.
//! - **No declared order.** The files are sorted by their table's sort column, but the scan
//!   does not declare it: while chasing the wrong order above, declaring it made DataFusion
//!   move that `ORDER BY` below the joins; it was not measured again on its own.
//! - **Statistics.** Row counts and min/max per file answer `count(*)`, `max(started_at)`
//!   without reading data, and prune row groups for time filters.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
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
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    statistics: Statistics,
}

impl SnapshotTable {
    /// A table of `schema` over `files` (each with the size the store reported at load).
    /// Reads each file's footer once, through the runtime's metadata cache, so the first
    /// queries find it there.
    ///
    /// # Errors
    /// A footer cannot be read.
    pub(super) async fn load(state: &dyn Session, store_url: ObjectStoreUrl, schema: SchemaRef, files: Vec<ObjectMeta>) -> Result<SnapshotTable> {
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
        Ok(SnapshotTable { schema, store_url, files: scanned, statistics })
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
        // Strings decode as the declared `Utf8` (see the module docs).
        options.global.schema_force_view_types = false;
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
