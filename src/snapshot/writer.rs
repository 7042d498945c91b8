//! Writes a dataset as a new snapshot and makes it current.
//!
//! 1. Remove leftovers of earlier failed writes (snapshot folders without a manifest).
//! 2. Write each table to `<snapshot>/<table>/part-00000.parquet`, each in its own task,
//!    up to [`TABLES_IN_FLIGHT`] at once (a source that fails part-way fails once the
//!    tables it yielded before are written; a table that fails aborts the others):
//!    - the order of the rows, once: `sort_to_indices` over the sort column alone (NULLs
//!      first), on the blocking pool; the rest of the table is neither concatenated nor
//!      copied in sorted order (a [`TableRows::Sorted`] table comes in order and is
//!      written as it arrives, each batch checked to continue the order);
//!    - that order cut into row groups of [`ROW_GROUP_ROWS`] rows; for each row group, one
//!      blocking task per column gathers the column's rows from the table's batches and
//!      encodes them (zstd level 3, page statistics), at most one task per core across the
//!      process (`super::encode`);
//!    - each row group's column chunks appended to the file in column order and its bytes
//!      uploaded while the next row group encodes; the footer completes the upload, which
//!      makes the file appear whole (a failed file's upload is aborted).
//!
//!    The file is byte for byte the one `AsyncArrowWriter` wrote from a sorted copy of the
//!    table (same properties, same Parquet schema and `ARROW:schema` metadata, the same
//!    arrays handed to each column writer). Extra memory per table is the sort indices and
//!    about two row groups, instead of a whole sorted copy.
//!    ([`Store::write_tables`] stops here: the caller may add to the folder, as the refresh
//!    adds the KPI tables, before committing with [`Store::commit_snapshot`].)
//! 3. Write `manifest.json`.
//! 4. Swap `CURRENT` to the new id: a conditional put against the version read when the
//!    write (or the refresh) started, so two writers cannot silently overwrite each other
//!    (stores without conditional updates, such as a local folder, get an atomic
//!    overwrite); then mark the snapshot `COMMITTED` (the time retention measures from). A
//!    manifest whose commit failed is deleted again.
//! 5. Apply retention (`super::retention`): keep the newest `keep_snapshots` committed
//!    snapshots, never the current one, and none replaced less than the grace period ago.
//!
//! Until step 4 succeeds, readers keep serving the previous snapshot.
//!
//! [`Store::write_parquet`] (the KPI tables) takes the same encoding path for a stream of
//! batches: it cuts the stream into row groups where `ArrowWriter` would, and reads the
//! next row group from the stream while the previous one encodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, concat, sort_to_indices};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, path::Path};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tokio::task::JoinSet;

use super::encode::{self, RowGroup};
use super::manifest::{FORMAT_VERSION, Manifest, TableEntry};
use super::{Result, SnapshotError, Store};
use crate::model::{SCHEMA_VERSION, Table};

/// Rows per Parquet row group: small enough for time-range pruning, large enough to scan fast.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Tables written at once: one table's sort, file setup and last row groups overlap the
/// encoding of another. Encoding itself is capped at one task per core (`super::encode`),
/// so this adds overlap, not threads; memory grows by one more table's sort indices and
/// row groups in flight.
const TABLES_IN_FLIGHT: usize = 2;

/// How to describe and keep the snapshot being written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub tenant: String,
    pub taken_at: DateTime<Utc>,
    pub source: String,
    pub sync_cursors: BTreeMap<String, String>,
    pub keep_snapshots: usize,
    /// How long a replaced snapshot is kept at least (`storage.retention_grace_seconds`).
    pub retention_grace: std::time::Duration,
}

/// A snapshot whose tables are written and which is not committed yet (no manifest, not
/// current): see [`Store::write_tables`].
#[derive(Debug, Clone)]
pub struct Uncommitted {
    /// The manifest that [`Store::commit_snapshot`] will write.
    pub manifest: Manifest,
    /// Leftover folders of failed writes that were removed.
    pub cleaned: Vec<String>,
    /// The version of `CURRENT` the commit replaces: read when the write started; a refresh
    /// sets the one it read when it took the lease, so a commit by anyone since is a
    /// conflict, never silently overwritten.
    pub base: CurrentVersion,
}

/// A version of a tenant's `CURRENT` (or its absence), from [`Store::current_version`].
#[derive(Debug, Clone)]
pub struct CurrentVersion(PutMode);

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub manifest: Manifest,
    /// Leftover folders of failed writes that were removed.
    pub cleaned: Vec<String>,
    /// Old snapshots removed by retention (those still inside their grace period stay).
    pub expired: Vec<String>,
}

/// A table's rows as a source hands them to [`Store::write_snapshot`].
pub enum TableRows {
    /// Every row, in any order: the writer sorts them by the table's sort column.
    Whole(Vec<RecordBatch>),
    /// Rows already in the table's sort order, arriving while the source produces them (the
    /// demo generator's calls): written as they come, so the table is never held whole.
    /// Each batch is checked to continue the order; one that does not fails the snapshot.
    Sorted(futures::stream::BoxStream<'static, Result<RecordBatch>>),
}

impl From<Vec<RecordBatch>> for TableRows {
    fn from(batches: Vec<RecordBatch>) -> TableRows {
        TableRows::Whole(batches)
    }
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableRows::Whole(batches) => f.debug_tuple("Whole").field(&batches.len()).finish(),
            TableRows::Sorted(_) => f.write_str("Sorted(..)"),
        }
    }
}

/// The table files of a snapshot being written, each in its own task (so a table keeps
/// writing while the source yields the next one). Dropping it aborts the writes still
/// running: a failed snapshot stops writing.
struct TableWrites {
    snapshot: Path,
    /// Tables whose write was started.
    started: BTreeSet<Table>,
    running: JoinSet<Result<(Table, TableEntry)>>,
}

impl TableWrites {
    /// Waits for table writes to finish until at most `at_most` are still running, recording
    /// their manifest entries; the first failure is returned (the others are aborted when
    /// `self` is dropped).
    async fn wait_until(&mut self, at_most: usize, entries: &mut BTreeMap<String, TableEntry>) -> Result<()> {
        while self.running.len() > at_most {
            let Some(finished) = self.running.join_next().await else { break };
            let finished = finished.map_err(|e| SnapshotError::EncodeTask { path: self.snapshot.to_string(), reason: e.to_string() })?;
            let (table, entry) = finished?;
            entries.insert(table.name().to_string(), entry);
        }
        Ok(())
    }
}

impl Store {
    /// Writes every table of `tables` (a stream, so a source that fails part-way aborts the
    /// snapshot before it is committed) as a new snapshot and makes it current. Tables the
    /// stream does not yield are written empty.
    ///
    /// # Errors
    /// Any storage, encoding or source failure; the previous snapshot stays current and the
    /// partial folder is left for the next write to clean up.
    pub async fn write_snapshot<S, R>(&self, options: &WriteOptions, tables: S) -> Result<WriteReport>
    where
        S: Stream<Item = Result<(Table, R)>>,
        R: Into<TableRows>,
    {
        let written = self.write_tables(options, tables).await?;
        self.commit_snapshot(written, options).await
    }

    /// Steps 1 and 2 of [`Store::write_snapshot`]: removes leftovers and writes every table
    /// of a new snapshot, without its manifest. The snapshot is invisible to every reader
    /// until [`Store::commit_snapshot`]; whatever else belongs to it (its KPI tables) can be
    /// written into its folder meanwhile. The caller must hold the tenant's lease: leftovers
    /// are the folders of writes that are not running.
    ///
    /// # Errors
    /// As [`Store::write_snapshot`].
    pub async fn write_tables<S, R>(&self, options: &WriteOptions, tables: S) -> Result<Uncommitted>
    where
        S: Stream<Item = Result<(Table, R)>>,
        R: Into<TableRows>,
    {
        let tenant = options.tenant.as_str();
        let base = self.current_version(tenant).await?;
        let cleaned = self.remove_leftovers(tenant).await?;
        let written_at = Utc::now();
        let id = new_snapshot_id(written_at);
        let mut entries = BTreeMap::new();
        let mut writing = TableWrites { snapshot: self.snapshot_dir(tenant, &id), started: BTreeSet::new(), running: JoinSet::new() };
        let mut tables = std::pin::pin!(tables);
        while let Some(next) = tables.next().await {
            let (table, rows) = match next {
                Ok((table, rows)) => (table, rows.into()),
                Err(e) => {
                    // The tables yielded before the failure are still written, as when the
                    // tables were written one at a time.
                    writing.wait_until(0, &mut entries).await?;
                    return Err(e);
                }
            };
            // A table yielded twice is written twice, one after the other (the later wins).
            // Sorted tables arrive while the source makes them, several at once: each is
            // written as it comes, or the source would wait on a table nobody reads.
            let at_most = match (writing.started.insert(table), &rows) {
                (false, _) => 0,
                (true, TableRows::Sorted(_)) => usize::MAX,
                (true, TableRows::Whole(_)) => TABLES_IN_FLIGHT - 1,
            };
            writing.wait_until(at_most, &mut entries).await?;
            let (store, tenant_name, snapshot_id) = (self.clone(), tenant.to_string(), id.clone());
            writing.running.spawn(async move {
                store.write_table(&tenant_name, &snapshot_id, table, rows).await.map(|entry| (table, entry))
            });
        }
        writing.wait_until(0, &mut entries).await?;
        for table in Table::ALL {
            if !entries.contains_key(table.name()) {
                let entry = self.write_table(tenant, &id, *table, TableRows::Whole(Vec::new())).await?;
                entries.insert(table.name().to_string(), entry);
            }
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            snapshot_id: id,
            tenant: tenant.to_string(),
            taken_at: options.taken_at,
            written_at,
            source: options.source.clone(),
            schema_version: SCHEMA_VERSION,
            tables: entries,
            sync_cursors: options.sync_cursors.clone(),
        };
        Ok(Uncommitted { manifest, cleaned, base })
    }

    /// Steps 3 to 5 of [`Store::write_snapshot`]: writes the manifest, makes the snapshot
    /// current, and applies retention.
    ///
    /// # Errors
    /// Storage failures, or [`SnapshotError::CommitConflict`] when another writer committed
    /// since `CURRENT` was read.
    pub async fn commit_snapshot(&self, written: Uncommitted, options: &WriteOptions) -> Result<WriteReport> {
        let Uncommitted { manifest, cleaned, base } = written;
        let tenant = manifest.tenant.as_str();
        let id = manifest.snapshot_id.as_str();
        let manifest_path = self.manifest_path(tenant, id);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| SnapshotError::BadManifest {
            path: manifest_path.to_string(),
            reason: e.to_string(),
        })?;
        self.put(&manifest_path, json.into(), PutMode::Overwrite).await?;
        if let Err(e) = self.commit_current(tenant, id, &base).await {
            // A manifest that never became current would look committed to retention and
            // to readers of the folder: take it back (a leftover without it is cleaned).
            let _ = self.object_store().delete(&manifest_path).await;
            return Err(e);
        }
        // When it became current, on the store's clock: what retention measures the grace
        // of the snapshot it replaced from.
        let marker = self.committed_marker(tenant, id);
        self.put(&marker, PutPayload::from(format!("{}\n", Utc::now().to_rfc3339())), PutMode::Overwrite).await?;
        let expired = self.apply_retention(tenant, options.keep_snapshots, options.retention_grace).await?;
        Ok(WriteReport { manifest, cleaned, expired })
    }

    async fn write_table(&self, tenant: &str, id: &str, table: Table, rows: TableRows) -> Result<TableEntry> {
        let relative = format!("{}/part-00000.parquet", table.name());
        let path = self.file_path(tenant, id, &relative);
        let (rows, bytes) = match rows {
            TableRows::Whole(batches) => self.write_sorted_table(&path, table, batches, ROW_GROUP_ROWS).await?,
            TableRows::Sorted(batches) => {
                let in_order = checked_order(table, path.clone(), batches);
                self.write_batches(&path, table.schema(), in_order, ROW_GROUP_ROWS).await?
            }
        };
        Ok(TableEntry { rows, bytes, files: vec![relative], sorted_by: table.sort_column().to_string() })
    }

    /// Writes a table's rows ordered by its sort column as one Parquet file at `path`, in row
    /// groups of `row_group_rows`, gathering each row group from `batches` (no sorted copy of
    /// the table); returns its rows and bytes.
    async fn write_sorted_table(&self, path: &Path, table: Table, mut batches: Vec<RecordBatch>, row_group_rows: usize) -> Result<(u64, u64)> {
        check_batches(table, path, &batches)?;
        batches.retain(|batch| batch.num_rows() > 0);
        let schema = table.schema();
        let Some(order) = sort_order(table, path, &batches).await? else {
            let in_input_order = stream::iter(batches.into_iter().map(Ok));
            return self.write_batches(path, schema, in_input_order, row_group_rows).await;
        };
        let row_groups = sorted_row_groups(batches, schema.fields().len(), order, row_group_rows);
        encode::write_file(self.object_store(), path, schema, writer_properties(row_group_rows), row_groups).await
    }

    /// Writes a stream of batches as one zstd Parquet file at `path` (row groups of
    /// [`ROW_GROUP_ROWS`], page statistics), returning its rows and bytes. Columns are
    /// encoded in parallel while the next row group is read from the stream. The file
    /// appears only when complete (the store's put is atomic; a failed upload is aborted).
    ///
    /// # Errors
    /// The stream fails, or the file cannot be encoded or stored.
    pub(crate) async fn write_parquet<S>(&self, path: &Path, schema: SchemaRef, batches: S) -> Result<(u64, u64)>
    where
        S: Stream<Item = Result<RecordBatch>>,
    {
        self.write_batches(path, schema, batches, ROW_GROUP_ROWS).await
    }

    /// [`Store::write_parquet`] with row groups of `row_group_rows`.
    async fn write_batches<S>(&self, path: &Path, schema: SchemaRef, batches: S, row_group_rows: usize) -> Result<(u64, u64)>
    where
        S: Stream<Item = Result<RecordBatch>>,
    {
        let row_groups = encode::row_groups_of(path, schema.fields().len(), batches, row_group_rows);
        encode::write_file(self.object_store(), path, schema, writer_properties(row_group_rows), row_groups).await
    }

    async fn put(&self, path: &Path, payload: PutPayload, mode: PutMode) -> Result<object_store::PutResult> {
        self.object_store()
            .put_opts(path, payload, PutOptions { mode, ..Default::default() })
            .await
            .map_err(|source| SnapshotError::Write { path: path.to_string(), source })
    }

    /// The version of `CURRENT` now: what a commit must replace (see [`Uncommitted::base`]).
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn current_version(&self, tenant: &str) -> Result<CurrentVersion> {
        let path = self.current_path(tenant);
        match self.object_store().head(&path).await {
            Ok(meta) => Ok(CurrentVersion(PutMode::Update(UpdateVersion { e_tag: meta.e_tag, version: meta.version }))),
            Err(object_store::Error::NotFound { .. }) => Ok(CurrentVersion(PutMode::Create)),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    /// Points `CURRENT` at `id`, replacing the version `base` only (compare-and-swap where
    /// the store supports it): a commit by anyone else since `base` was read is a conflict.
    async fn commit_current(&self, tenant: &str, id: &str, base: &CurrentVersion) -> Result<()> {
        let path = self.current_path(tenant);
        let store = self.object_store();
        let payload = PutPayload::from(format!("{id}\n"));
        let result = store.put_opts(&path, payload.clone(), PutOptions { mode: base.0.clone(), ..Default::default() }).await;
        match result {
            Ok(_) => Ok(()),
            // A local folder has no conditional update; its overwrite is an atomic rename.
            Err(object_store::Error::NotImplemented { .. }) => self.put(&path, payload, PutMode::Overwrite).await.map(|_| ()),
            // Refused: another commit, or our own whose answer was lost and that the store's
            // client sent again. CURRENT says which.
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                if self.current_id(tenant).await?.as_deref() == Some(id) {
                    return Ok(());
                }
                Err(SnapshotError::CommitConflict { tenant: tenant.into(), id: id.into() })
            }
            Err(source) => Err(SnapshotError::Write { path: path.to_string(), source }),
        }
    }
}

/// How every file is written: zstd level 3, row groups of `row_group_rows`, page
/// statistics, and who wrote it.
fn writer_properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("salespulse {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Checks that every batch has the table's columns, types and NOT NULLs: what building a
/// batch of the table's schema from them checked when the table was concatenated.
fn check_batches(table: Table, path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let schema = table.schema();
    let mismatch = |reason: String| SnapshotError::SchemaMismatch { path: path.to_string(), table: table.name(), reason };
    for batch in batches {
        if batch.num_columns() != schema.fields().len() {
            return Err(mismatch(format!("a batch has {} columns instead of {}", batch.num_columns(), schema.fields().len())));
        }
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if column.data_type() != field.data_type() {
                return Err(mismatch(format!("column {} is {} instead of {}", field.name(), column.data_type(), field.data_type())));
            }
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(mismatch(format!("column {} is NOT NULL but holds NULLs", field.name())));
            }
        }
    }
    Ok(())
}

/// The order to write a table's rows in, by its sort column with NULLs first, as row
/// numbers of its batches taken one after another; `None` keeps the input order (no sort
/// column, or fewer than two rows). Only the sort column is concatenated (a single batch's
/// column is not even copied).
///
/// The same `sort_to_indices` call on the same column as before the row-group writer, so
/// the same order. Note that it is not a stable sort: rows with equal keys come out in its
/// deterministic order, which is not always their input order.
async fn sort_order(table: Table, path: &Path, batches: &[RecordBatch]) -> Result<Option<UInt32Array>> {
    let Some(index) = table.column_index(table.sort_column()) else {
        return Ok(None);
    };
    if batches.iter().map(RecordBatch::num_rows).sum::<usize>() < 2 {
        return Ok(None);
    }
    let keys: Vec<ArrayRef> = batches.iter().map(|batch| Arc::clone(batch.column(index))).collect();
    let sorting = encode::spawn_in_slot(path, move || sort_indices(&keys)).await?;
    let order = encode::join_task(path, sorting).await?;
    order.map(Some).map_err(|source| SnapshotError::Sort { table: table.name(), source })
}

/// `sort_to_indices` of the concatenated `keys`, ascending, NULLs first.
fn sort_indices(keys: &[ArrayRef]) -> Result<UInt32Array, ArrowError> {
    let parts: Vec<&dyn Array> = keys.iter().map(|key| key.as_ref()).collect();
    let column = concat(&parts)?;
    sort_to_indices(column.as_ref(), Some(SortOptions { descending: false, nulls_first: true }), None)
}

/// The row groups of a table written in `order` (row numbers of `batches` taken one after
/// another): each row group's columns pick their rows from the batches when they encode.
fn sorted_row_groups(batches: Vec<RecordBatch>, width: usize, order: UInt32Array, row_group_rows: usize) -> impl Stream<Item = Result<RowGroup>> {
    let row_group_rows = row_group_rows.max(1);
    let starts = BatchStarts::of(&batches);
    let count = order.len().div_ceil(row_group_rows);
    stream::iter((0..count).map(move |index| {
        let first = index * row_group_rows;
        let rows = &order.values()[first..order.len().min(first + row_group_rows)];
        Ok::<_, SnapshotError>(RowGroup::picked(&batches, width, starts.positions(rows)))
    }))
}

/// Where each batch of a table starts among the table's rows: turns a row number of the
/// whole table into a `(batch, row)` position without concatenating the batches.
struct BatchStarts(Vec<usize>);

impl BatchStarts {
    /// The starts of `batches`, which must have no empty batch (starts strictly increase).
    fn of(batches: &[RecordBatch]) -> BatchStarts {
        let mut next = 0;
        BatchStarts(
            batches
                .iter()
                .map(|batch| {
                    let start = next;
                    next += batch.num_rows();
                    start
                })
                .collect(),
        )
    }

    fn positions(&self, rows: &[u32]) -> Vec<(usize, usize)> {
        rows.iter().map(|row| self.position(*row as usize)).collect()
    }

    fn position(&self, row: usize) -> (usize, usize) {
        // The last batch that starts at or before `row`.
        let batch = self.0.partition_point(|start| *start <= row).saturating_sub(1);
        let start = self.0.get(batch).copied().unwrap_or(0);
        (batch, row - start)
    }
}

/// `batches` as they come, each checked against `table`'s schema and to continue the order
/// of its sort column (ascending, NULLs first) from the batch before.
fn checked_order(table: Table, path: Path, batches: futures::stream::BoxStream<'static, Result<RecordBatch>>) -> impl Stream<Item = Result<RecordBatch>> {
    let column = table.column_index(table.sort_column());
    let mut last: Option<ArrayRef> = None;
    batches.map(move |batch| {
        let batch = batch?;
        check_batches(table, &path, std::slice::from_ref(&batch))?;
        let (Some(index), true) = (column, batch.num_rows() > 0) else { return Ok(batch) };
        let keys = batch.column(index);
        let unsorted = |reason: String| SnapshotError::SchemaMismatch { path: path.to_string(), table: table.name(), reason };
        let in_order = follows(last.as_ref(), keys).map_err(|e| unsorted(e.to_string()))?;
        if !in_order {
            return Err(unsorted(format!("rows handed over as sorted are not in {} order", table.sort_column())));
        }
        last = Some(keys.slice(keys.len() - 1, 1));
        Ok(batch)
    })
}

/// Whether `keys` ascend (ties allowed, NULLs first) and start at or after `previous` (the
/// last key of the batch before).
fn follows(previous: Option<&ArrayRef>, keys: &ArrayRef) -> Result<bool, ArrowError> {
    let options = SortOptions { descending: false, nulls_first: true };
    let within = arrow::array::make_comparator(keys.as_ref(), keys.as_ref(), options)?;
    let ascending = (1..keys.len()).all(|i| within(i - 1, i) != std::cmp::Ordering::Greater);
    let continues = match previous {
        Some(previous) => arrow::array::make_comparator(previous.as_ref(), keys.as_ref(), options)?(0, 0) != std::cmp::Ordering::Greater,
        None => true,
    };
    Ok(ascending && continues)
}

/// A new snapshot id: the UTC write time to the millisecond (so ids sort by age) and a
/// random suffix against collisions.
fn new_snapshot_id(at: DateTime<Utc>) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let suffix = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{suffix:04x}", at.format("%Y%m%dT%H%M%S%3fZ"))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::compute::{concat_batches, take_record_batch};
    use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowWriter};

    use super::*;
    use crate::model::{TableBuilder, Value};

    /// Rows per row group in these tests: 23 rows make six row groups.
    const SMALL_ROW_GROUPS: usize = 4;

    /// 23 companies in batches of 7, 9 and 7 rows. `created_at` (the sort column, nullable)
    /// takes seven instants in descending order, so every instant repeats across batches,
    /// and every fifth row has none.
    fn companies() -> Vec<RecordBatch> {
        let mut builder = TableBuilder::new(Table::Companies);
        let mut batches = Vec::new();
        for row in 0..23i64 {
            let id = format!("company-{row:02}");
            let created_at = if row % 5 == 3 { Value::Null } else { Value::Timestamp((6 - row % 7) * 1_000_000) };
            let values = [Value::Str(&id), Value::Str("Acme"), Value::Null, Value::Null, created_at, Value::Null, Value::Null];
            builder.append_row(&values).unwrap();
            if row == 6 || row == 15 {
                batches.push(builder.finish());
            }
        }
        batches.push(builder.finish());
        batches
    }

    /// The table as the writer sorted it before row groups: concatenated, `sort_to_indices`
    /// on the sort column (NULLs first), `take`.
    fn sorted_copy(table: Table, batches: &[RecordBatch]) -> RecordBatch {
        let whole = concat_batches(&table.schema(), batches).unwrap();
        let column = whole.column(table.column_index(table.sort_column()).unwrap());
        let order = sort_to_indices(column, Some(SortOptions { descending: false, nulls_first: true }), None).unwrap();
        take_record_batch(&whole, &order).unwrap()
    }

    /// What `ArrowWriter` writes for `batches` with the snapshot's properties.
    fn arrow_writer_file(schema: SchemaRef, batches: &[RecordBatch]) -> Vec<u8> {
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(writer_properties(SMALL_ROW_GROUPS))).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn local_file(path: &Path) -> Vec<u8> {
        std::fs::read(format!("/{path}")).unwrap()
    }

    #[tokio::test]
    async fn a_table_reads_back_sorted_nulls_first_across_row_groups_with_its_arrow_types() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        let path = store.file_path("t", "s", "companies/part-00000.parquet");
        let (rows, bytes) = store.write_sorted_table(&path, Table::Companies, companies(), SMALL_ROW_GROUPS).await.unwrap();
        assert_eq!(rows, 23);
        let file = local_file(&path);
        assert_eq!(bytes, file.len() as u64);

        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 6);
        let metadata = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
        assert!(metadata.iter().any(|kv| kv.key == ARROW_SCHEMA_META_KEY), "the Arrow schema is stored");
        // From `ARROW:schema`: without it the column would read back as Timestamp(µs, "+00:00").
        let created_at = reader.schema().field_with_name("created_at").unwrap().data_type().clone();
        assert_eq!(created_at, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        for (read, canonical) in reader.schema().fields().iter().zip(Table::Companies.schema().fields()) {
            assert_eq!(
                (read.name(), read.data_type(), read.is_nullable()),
                (canonical.name(), canonical.data_type(), canonical.is_nullable())
            );
        }

        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let read = concat_batches(&Table::Companies.schema(), &read).unwrap();
        assert_eq!(read, sorted_copy(Table::Companies, &companies()), "the same rows in the same order, ties included");
        let instants = read.column_by_name("created_at").unwrap().as_primitive::<TimestampMicrosecondType>();
        assert_eq!(instants.null_count(), 4);
        assert!((0..4).all(|row| instants.is_null(row)), "NULLs first");
        assert!(instants.values()[4..].windows(2).all(|pair| pair[0] <= pair[1]), "then ascending");
    }

    #[tokio::test]
    async fn a_table_file_is_byte_for_byte_what_arrow_writer_writes_from_a_sorted_copy() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        let path = store.file_path("t", "s", "companies/part-00000.parquet");
        store.write_sorted_table(&path, Table::Companies, companies(), SMALL_ROW_GROUPS).await.unwrap();
        let sorted = sorted_copy(Table::Companies, &companies());
        assert!(local_file(&path) == arrow_writer_file(Table::Companies.schema(), &[sorted]));

        let empty = store.file_path("t", "s", "calls/part-00000.parquet");
        let (rows, _) = store.write_sorted_table(&empty, Table::Calls, Vec::new(), SMALL_ROW_GROUPS).await.unwrap();
        assert_eq!(rows, 0);
        assert!(local_file(&empty) == arrow_writer_file(Table::Calls.schema(), &[]));
    }

    #[tokio::test]
    async fn a_stream_is_cut_into_row_groups_where_arrow_writer_cuts_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        let schema = Table::Companies.schema();
        let mut batches = companies();
        batches.insert(1, RecordBatch::new_empty(Arc::clone(&schema)));
        let path = store.file_path("t", "s", "kpi/view.parquet");
        let source = stream::iter(batches.clone().into_iter().map(Ok));
        let (rows, _) = store.write_batches(&path, Arc::clone(&schema), source, SMALL_ROW_GROUPS).await.unwrap();
        assert_eq!(rows, 23);
        assert!(local_file(&path) == arrow_writer_file(schema, &batches));
    }

    #[tokio::test]
    async fn a_stream_that_fails_leaves_no_file() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        let path = store.file_path("t", "s", "kpi/view.parquet");
        let items = companies().into_iter().map(Ok).chain([Err(SnapshotError::Source("the query failed".into()))]);
        let err = store.write_batches(&path, Table::Companies.schema(), stream::iter(items), SMALL_ROW_GROUPS).await.unwrap_err();
        assert!(err.to_string().contains("the query failed"), "{err}");
        assert!(!std::path::Path::new(&format!("/{path}")).exists());
    }

    #[tokio::test]
    async fn rows_handed_over_as_sorted_are_written_as_they_come_and_refused_out_of_order() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        let sorted = sorted_copy(Table::Companies, &companies());
        let in_order = vec![sorted.slice(0, 10), sorted.slice(10, 13)];
        let rows = TableRows::Sorted(stream::iter(in_order.into_iter().map(Ok)).boxed());
        let entry = store.write_table("t", "s", Table::Companies, rows).await.unwrap();
        assert_eq!(entry.rows, 23);
        let file = local_file(&store.file_path("t", "s", "companies/part-00000.parquet"));
        let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap().build().unwrap().map(Result::unwrap).collect();
        assert_eq!(concat_batches(&Table::Companies.schema(), &read).unwrap(), sorted);

        // The second batch starts before the first one ended.
        let swapped = vec![sorted.slice(10, 13), sorted.slice(0, 10)];
        let rows = TableRows::Sorted(stream::iter(swapped.into_iter().map(Ok)).boxed());
        let err = store.write_table("t", "s2", Table::Companies, rows).await.unwrap_err();
        assert!(err.to_string().contains("not in created_at order"), "{err}");
        let refused = store.file_path("t", "s2", "companies/part-00000.parquet");
        assert!(!std::path::Path::new(&format!("/{refused}")).exists(), "no file is left");
    }

}
