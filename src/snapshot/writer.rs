//! Writes a dataset as a new snapshot and makes it current.
//!
//! 1. Remove leftovers of earlier failed writes (snapshot folders without a manifest).
//! 2. For each table: sort by its main time column, write zstd Parquet with row-group
//!    statistics to `<snapshot>/<table>/part-00000.parquet`.
//! 3. Write `manifest.json`.
//! 4. Swap `CURRENT` to the new id: a conditional put against the version read before, so
//!    two writers cannot silently overwrite each other (stores without conditional updates,
//!    such as a local folder, get an atomic overwrite).
//! 5. Apply retention: keep the newest `keep_snapshots` committed snapshots and never the
//!    current one.
//!
//! Until step 4 succeeds, readers keep serving the previous snapshot.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, path::Path};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::manifest::{FORMAT_VERSION, Manifest, TableEntry};
use super::{Result, SnapshotError, Store};
use crate::model::{SCHEMA_VERSION, Table};

/// Rows per Parquet row group: small enough for time-range pruning, large enough to scan fast.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How to describe and keep the snapshot being written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub tenant: String,
    pub taken_at: DateTime<Utc>,
    pub source: String,
    pub sync_cursors: BTreeMap<String, String>,
    pub keep_snapshots: usize,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub manifest: Manifest,
    /// Leftover folders of failed writes that were removed.
    pub cleaned: Vec<String>,
    /// Old snapshots removed by retention.
    pub expired: Vec<String>,
}

impl Store {
    /// Writes every table of `tables` (a stream, so a source that fails part-way aborts the
    /// snapshot before it is committed) as a new snapshot and makes it current. Tables the
    /// stream does not yield are written empty.
    ///
    /// # Errors
    /// Any storage, encoding or source failure; the previous snapshot stays current and the
    /// partial folder is left for the next write to clean up.
    pub async fn write_snapshot<S>(&self, options: &WriteOptions, tables: S) -> Result<WriteReport>
    where
        S: Stream<Item = Result<(Table, Vec<RecordBatch>)>>,
    {
        let tenant = options.tenant.as_str();
        let cleaned = self.remove_leftovers(tenant).await?;
        let written_at = Utc::now();
        let id = new_snapshot_id(written_at);
        let mut entries = BTreeMap::new();
        let mut tables = std::pin::pin!(tables);
        while let Some(next) = tables.next().await {
            let (table, batches) = next?;
            let entry = self.write_table(tenant, &id, table, batches).await?;
            entries.insert(table.name().to_string(), entry);
        }
        for table in Table::ALL {
            if !entries.contains_key(table.name()) {
                let entry = self.write_table(tenant, &id, *table, Vec::new()).await?;
                entries.insert(table.name().to_string(), entry);
            }
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            snapshot_id: id.clone(),
            tenant: tenant.to_string(),
            taken_at: options.taken_at,
            written_at,
            source: options.source.clone(),
            schema_version: SCHEMA_VERSION,
            tables: entries,
            sync_cursors: options.sync_cursors.clone(),
        };
        let manifest_path = self.manifest_path(tenant, &id);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| SnapshotError::BadManifest {
            path: manifest_path.to_string(),
            reason: e.to_string(),
        })?;
        self.put(&manifest_path, json.into(), PutMode::Overwrite).await?;
        self.commit_current(tenant, &id).await?;
        let expired = self.apply_retention(tenant, options.keep_snapshots).await?;
        Ok(WriteReport { manifest, cleaned, expired })
    }

    async fn write_table(&self, tenant: &str, id: &str, table: Table, batches: Vec<RecordBatch>) -> Result<TableEntry> {
        let schema = table.schema();
        let batch = concat_batches(&schema, &batches).map_err(|source| SnapshotError::Sort { table: table.name(), source })?;
        drop(batches);
        let sorted = sort_batch(table, batch)?;
        let relative = format!("{}/part-00000.parquet", table.name());
        let path = self.file_path(tenant, id, &relative);
        let (rows, bytes) = self.write_parquet(&path, schema, futures::stream::iter([Ok(sorted)])).await?;
        Ok(TableEntry { rows, bytes, files: vec![relative], sorted_by: table.sort_column().to_string() })
    }

    /// Writes a stream of batches as one zstd Parquet file at `path` (row groups of
    /// [`ROW_GROUP_ROWS`], page statistics), returning its rows and bytes. The file appears
    /// only when complete (the store's put is atomic).
    ///
    /// # Errors
    /// The stream fails, or the file cannot be encoded or stored.
    pub(crate) async fn write_parquet<S>(&self, path: &Path, schema: arrow::datatypes::SchemaRef, batches: S) -> Result<(u64, u64)>
    where
        S: Stream<Item = Result<RecordBatch>>,
    {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("salespulse {}", env!("CARGO_PKG_VERSION")))
            .build();
        let encode = |source| SnapshotError::Encode { path: path.to_string(), source };
        let sink = object_store::buffered::BufWriter::new(self.object_store(), path.clone());
        let mut writer = AsyncArrowWriter::try_new(sink, schema, Some(props)).map_err(encode)?;
        let mut rows = 0u64;
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            // The writer cuts row groups at ROW_GROUP_ROWS.
            writer.write(&batch).await.map_err(encode)?;
        }
        writer.close().await.map_err(encode)?;
        let meta = self.object_store().head(path).await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
        Ok((rows, meta.size))
    }

    async fn put(&self, path: &Path, payload: PutPayload, mode: PutMode) -> Result<object_store::PutResult> {
        self.object_store()
            .put_opts(path, payload, PutOptions { mode, ..Default::default() })
            .await
            .map_err(|source| SnapshotError::Write { path: path.to_string(), source })
    }

    /// Points `CURRENT` at `id`: compare-and-swap where the store supports it.
    async fn commit_current(&self, tenant: &str, id: &str) -> Result<()> {
        let path = self.current_path(tenant);
        let store = self.object_store();
        let mode = match store.get(&path).await {
            Ok(existing) => PutMode::Update(UpdateVersion {
                e_tag: existing.meta.e_tag.clone(),
                version: existing.meta.version.clone(),
            }),
            Err(object_store::Error::NotFound { .. }) => PutMode::Create,
            Err(source) => return Err(SnapshotError::Read { path: path.to_string(), source }),
        };
        let payload = PutPayload::from(format!("{id}\n"));
        let result = store.put_opts(&path, payload.clone(), PutOptions { mode, ..Default::default() }).await;
        match result {
            Ok(_) => Ok(()),
            // A local folder has no conditional update; its overwrite is an atomic rename.
            Err(object_store::Error::NotImplemented { .. }) => self.put(&path, payload, PutMode::Overwrite).await.map(|_| ()),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                Err(SnapshotError::CommitConflict { tenant: tenant.into(), id: id.into() })
            }
            Err(source) => Err(SnapshotError::Write { path: path.to_string(), source }),
        }
    }

    /// Removes snapshot folders that have no manifest: writes that died before committing.
    async fn remove_leftovers(&self, tenant: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for id in self.snapshot_ids(tenant).await? {
            if !self.has_manifest(tenant, &id).await? {
                self.delete_snapshot(tenant, &id).await?;
                removed.push(id);
            }
        }
        Ok(removed)
    }

    async fn apply_retention(&self, tenant: &str, keep: usize) -> Result<Vec<String>> {
        let current = self.current_id(tenant).await?;
        let mut committed = Vec::new();
        for id in self.snapshot_ids(tenant).await? {
            if self.has_manifest(tenant, &id).await? {
                committed.push(id);
            }
        }
        // Ids sort by write time.
        let excess = committed.len().saturating_sub(keep);
        let mut expired = Vec::new();
        for id in committed.into_iter().take(excess) {
            if Some(&id) != current.as_ref() {
                self.delete_snapshot(tenant, &id).await?;
                expired.push(id);
            }
        }
        Ok(expired)
    }

    async fn delete_snapshot(&self, tenant: &str, id: &str) -> Result<()> {
        let dir = self.snapshot_dir(tenant, id);
        let store = self.object_store();
        let locations = store.list(Some(&dir)).map_ok(|m| m.location).boxed();
        store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|source| SnapshotError::Write { path: dir.to_string(), source })?;
        // Local folders keep empty directories; remove them so the layout stays clean.
        if self.base_url().scheme() == "file" {
            let folder = std::path::PathBuf::from(format!("/{dir}"));
            let _ = std::fs::remove_dir_all(folder);
        }
        Ok(())
    }
}

/// Sorts a table's rows by its sort column (nulls first), keeping ties in input order.
fn sort_batch(table: Table, batch: RecordBatch) -> Result<RecordBatch> {
    let Some(index) = table.column_index(table.sort_column()) else {
        return Ok(batch);
    };
    if batch.num_rows() < 2 {
        return Ok(batch);
    }
    let sort = |source| SnapshotError::Sort { table: table.name(), source };
    let indices = sort_to_indices(batch.column(index), Some(SortOptions { descending: false, nulls_first: true }), None).map_err(sort)?;
    take_record_batch(&batch, &indices).map_err(sort)
}

/// A new snapshot id: the UTC write time to the millisecond (so ids sort by age) and a
/// random suffix against collisions.
fn new_snapshot_id(at: DateTime<Utc>) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let suffix = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{suffix:04x}", at.format("%Y%m%dT%H%M%S%3fZ"))
}
