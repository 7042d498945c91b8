//! One Parquet file written row group by row group: each row group's columns are encoded in
//! parallel on the blocking pool, and the row group's bytes go to the object store as soon
//! as it closes, so a file is never held whole in memory.
//!
//! The file is the one `ArrowWriter` (and so `AsyncArrowWriter`) writes with the same
//! properties, byte for byte: the file writer and the column-writer factory come from
//! `ArrowWriter::into_serialized_writer` (its Parquet schema, its `ARROW:schema` key-value
//! metadata), and every column writer receives the same arrays in the same order as
//! `ArrowWriter` would hand them over. What changes is who encodes: one blocking task per
//! column of a row group, at most one per core across the whole process
//! ([`encoding_slots`]), so the next row group's columns start while the previous one's last
//! columns finish and its bytes upload.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::error::ArrowError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Result, SnapshotError};

/// Upload parts of one file in flight at once (each up to the `BufWriter`'s 10 MiB), so a
/// slow store holds back the encoder instead of piling parts up in memory.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// The rows of one row group, column by column, as they will be handed to the encoders.
#[derive(Debug)]
pub(super) struct RowGroup {
    rows: usize,
    columns: Vec<ColumnRows>,
}

/// One column's rows of a row group.
#[derive(Debug)]
enum ColumnRows {
    /// Consecutive slices of the column (the batches of a stream), encoded one after another.
    Slices(Vec<ArrayRef>),
    /// Rows picked from the column's batches, as `(batch, row)` positions in output order.
    /// The encoding task gathers them itself, so only one column of one row group is ever
    /// copied at a time.
    Picked { batches: Vec<ArrayRef>, positions: Arc<[(usize, usize)]> },
}

impl RowGroup {
    /// A row group of consecutive batches (or slices of them), all of the file's width.
    fn of_slices(batches: &[RecordBatch], width: usize) -> RowGroup {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let columns = (0..width)
            .map(|c| ColumnRows::Slices(batches.iter().map(|b| Arc::clone(b.column(c))).collect()))
            .collect();
        RowGroup { rows, columns }
    }

    /// A row group of the rows of `batches` at `positions` (`(batch, row)`, in output order).
    pub(super) fn picked(batches: &[RecordBatch], width: usize, positions: Vec<(usize, usize)>) -> RowGroup {
        let rows = positions.len();
        let positions: Arc<[(usize, usize)]> = positions.into();
        let columns = (0..width)
            .map(|c| ColumnRows::Picked {
                batches: batches.iter().map(|b| Arc::clone(b.column(c))).collect(),
                positions: Arc::clone(&positions),
            })
            .collect();
        RowGroup { rows, columns }
    }
}

impl ColumnRows {
    /// The arrays to encode, in order.
    fn into_arrays(self) -> Result<Vec<ArrayRef>, ArrowError> {
        match self {
            ColumnRows::Slices(arrays) => Ok(arrays),
            ColumnRows::Picked { batches, positions } => {
                let parts: Vec<&dyn Array> = batches.iter().map(|array| array.as_ref()).collect();
                Ok(vec![interleave(&parts, &positions[..])?])
            }
        }
    }

    /// Roughly how much there is to encode, to start the biggest columns first.
    fn estimated_bytes(&self) -> usize {
        match self {
            ColumnRows::Slices(arrays) => arrays.iter().map(|a| a.get_array_memory_size()).sum(),
            ColumnRows::Picked { batches, positions } => {
                let bytes: usize = batches.iter().map(|a| a.get_array_memory_size()).sum();
                let rows: usize = batches.iter().map(|a| a.len()).sum();
                bytes / rows.max(1) * positions.len()
            }
        }
    }
}

/// Cuts a stream of batches into row groups of `row_group_rows` rows (the last one may be
/// shorter), slicing batches at the boundaries exactly as `ArrowWriter` does, so each
/// column writer receives the same arrays it would from `ArrowWriter`.
pub(super) fn row_groups_of<S>(path: &Path, width: usize, batches: S, row_group_rows: usize) -> impl Stream<Item = Result<RowGroup>>
where
    S: Stream<Item = Result<RecordBatch>>,
{
    let cutter = RowGroupCutter {
        path: path.clone(),
        width,
        batches: Box::pin(batches),
        pending: Vec::new(),
        pending_rows: 0,
        row_group_rows: row_group_rows.max(1),
        ended: false,
    };
    futures::stream::unfold(cutter, |mut cutter| async move { cutter.next_row_group().await.map(|next| (next, cutter)) })
}

/// The state of [`row_groups_of`].
struct RowGroupCutter<S> {
    path: Path,
    width: usize,
    batches: Pin<Box<S>>,
    /// Rows read from the stream but not yet in a row group, in order.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_group_rows: usize,
    ended: bool,
}

impl<S: Stream<Item = Result<RecordBatch>>> RowGroupCutter<S> {
    async fn next_row_group(&mut self) -> Option<Result<RowGroup>> {
        while !self.ended && self.pending_rows < self.row_group_rows {
            match self.batches.next().await {
                Some(Ok(batch)) => {
                    if let Err(e) = self.check_width(&batch) {
                        return Some(Err(e));
                    }
                    if batch.num_rows() > 0 {
                        self.pending_rows += batch.num_rows();
                        self.pending.push(batch);
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => self.ended = true,
            }
        }
        (self.pending_rows > 0).then(|| Ok(self.cut()))
    }

    fn check_width(&self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() == self.width {
            return Ok(());
        }
        Err(SnapshotError::BatchShape { path: self.path.to_string(), columns: batch.num_columns(), expected: self.width })
    }

    /// Takes the first `row_group_rows` pending rows (all of them at the end) as a row group.
    fn cut(&mut self) -> RowGroup {
        let mut wanted = self.pending_rows.min(self.row_group_rows);
        self.pending_rows -= wanted;
        let mut taken = Vec::new();
        let mut rest = Vec::new();
        for batch in self.pending.drain(..) {
            let rows = batch.num_rows();
            if wanted == 0 {
                rest.push(batch);
            } else if rows <= wanted {
                wanted -= rows;
                taken.push(batch);
            } else {
                taken.push(batch.slice(0, wanted));
                rest.push(batch.slice(wanted, rows - wanted));
                wanted = 0;
            }
        }
        self.pending = rest;
        RowGroup::of_slices(&taken, self.width)
    }
}

/// How many CPU-bound snapshot tasks (column encodings, sorts) run at once in this process:
/// one per core. Shared by every file being written, so concurrent refreshes and KPI builds
/// split the cores instead of multiplying threads, and the query runtime keeps its workers.
fn encoding_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Arc::new(Semaphore::new(cores))
    });
    Arc::clone(slots)
}

/// Runs CPU-bound `work` on the blocking pool as soon as an encoding slot is free; the slot
/// is held until `work` returns. `file` names what the work is for, in errors.
pub(super) async fn spawn_in_slot<T, F>(file: &Path, work: F) -> Result<JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = encoding_slots()
        .acquire_owned()
        .await
        .map_err(|e| SnapshotError::EncodeTask { path: file.to_string(), reason: e.to_string() })?;
    Ok(tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    }))
}

/// Waits for a task started by [`spawn_in_slot`].
pub(super) async fn join_task<T>(file: &Path, task: JoinHandle<T>) -> Result<T> {
    task.await.map_err(|e| SnapshotError::EncodeTask { path: file.to_string(), reason: e.to_string() })
}

/// Writes `row_groups` as one Parquet file at `path` with `props`; returns its rows and
/// bytes. The store's put (or multipart completion) makes the file appear whole or not at
/// all; on failure the upload is aborted.
pub(super) async fn write_file<S>(store: Arc<dyn ObjectStore>, path: &Path, schema: SchemaRef, props: WriterProperties, row_groups: S) -> Result<(u64, u64)>
where
    S: Stream<Item = Result<RowGroup>>,
{
    let mut file = ParquetUpload::create(store, path, schema, props)?;
    if let Err(e) = file.write_row_groups(row_groups).await {
        file.abandon().await;
        return Err(e);
    }
    file.finish().await
}

/// A Parquet file being written: the file writer (buffering into memory until a row group
/// closes), the factory of its column writers, and the upload its bytes go to.
struct ParquetUpload {
    path: Path,
    schema: SchemaRef,
    /// For each Parquet leaf column, in order, the Arrow field it belongs to.
    leaf_fields: Vec<usize>,
    file: SerializedFileWriter<Vec<u8>>,
    column_writers: ArrowRowGroupWriterFactory,
    upload: BufWriter,
    row_groups_started: usize,
    rows: u64,
}

/// A row group whose columns are being encoded: one task per Arrow field, in field order.
struct RowGroupEncoding {
    rows: usize,
    tasks: Vec<JoinHandle<Result<Vec<ArrowColumnChunk>, ParquetError>>>,
}

impl ParquetUpload {
    fn create(store: Arc<dyn ObjectStore>, path: &Path, schema: SchemaRef, props: WriterProperties) -> Result<ParquetUpload> {
        let encode = |source| SnapshotError::Encode { path: path.to_string(), source };
        // The same construction as `ArrowWriter`'s: Parquet schema, `ARROW:schema` metadata.
        let options = ArrowWriterOptions::new().with_properties(props);
        let writer = ArrowWriter::try_new_with_options(Vec::new(), Arc::clone(&schema), options).map_err(encode)?;
        let (file, column_writers) = writer.into_serialized_writer().map_err(encode)?;
        let descr = file.schema_descr();
        let leaf_fields = (0..descr.num_columns()).map(|leaf| descr.get_column_root_idx(leaf)).collect();
        let upload = BufWriter::new(store, path.clone()).with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        Ok(ParquetUpload { path: path.clone(), schema, leaf_fields, file, column_writers, upload, row_groups_started: 0, rows: 0 })
    }

    /// Encodes and uploads every row group: row group N+1's columns are started before N is
    /// appended and uploaded, so the cores stay busy while N's bytes go out.
    async fn write_row_groups<S>(&mut self, row_groups: S) -> Result<()>
    where
        S: Stream<Item = Result<RowGroup>>,
    {
        let mut row_groups = std::pin::pin!(row_groups);
        let mut previous: Option<RowGroupEncoding> = None;
        while let Some(row_group) = row_groups.next().await {
            let started = self.start_row_group(row_group?).await?;
            if let Some(done) = previous.replace(started) {
                self.write_row_group(done).await?;
            }
        }
        match previous {
            Some(last) => self.write_row_group(last).await,
            None => Ok(()),
        }
    }

    /// Starts one encoding task per column, biggest first, each as soon as a slot is free.
    async fn start_row_group(&mut self, row_group: RowGroup) -> Result<RowGroupEncoding> {
        let writers = self.column_writers.create_column_writers(self.row_groups_started).map_err(|e| self.encode_error(e))?;
        self.row_groups_started += 1;
        let rows = row_group.rows;
        let mut started = Vec::new();
        for job in self.column_jobs(row_group.columns, writers) {
            let field = job.field_index;
            started.push((field, spawn_in_slot(&self.path, move || job.encode()).await?));
        }
        started.sort_by_key(|(field, _)| *field);
        Ok(RowGroupEncoding { rows, tasks: started.into_iter().map(|(_, task)| task).collect() })
    }

    /// One job per Arrow field with the writers of its leaf columns, biggest first.
    fn column_jobs(&self, columns: Vec<ColumnRows>, writers: Vec<ArrowColumnWriter>) -> Vec<ColumnJob> {
        let mut writers_by_field: Vec<Vec<ArrowColumnWriter>> = columns.iter().map(|_| Vec::new()).collect();
        for (writer, field) in writers.into_iter().zip(&self.leaf_fields) {
            if let Some(field_writers) = writers_by_field.get_mut(*field) {
                field_writers.push(writer);
            }
        }
        let mut jobs: Vec<ColumnJob> = columns
            .into_iter()
            .zip(writers_by_field)
            .zip(self.schema.fields().iter())
            .enumerate()
            .map(|(field_index, ((rows, writers), field))| ColumnJob { field_index, field: Arc::clone(field), rows, writers })
            .collect();
        jobs.sort_by_cached_key(|job| std::cmp::Reverse(job.rows.estimated_bytes()));
        jobs
    }

    /// Waits for a row group's columns, appends them to the file in column order and
    /// uploads the bytes the file writer produced.
    async fn write_row_group(&mut self, encoding: RowGroupEncoding) -> Result<()> {
        let mut chunks = Vec::new();
        for task in encoding.tasks {
            let encoded = join_task(&self.path, task).await?;
            chunks.extend(encoded.map_err(|e| self.encode_error(e))?);
        }
        let bytes = self.append_row_group(chunks).map_err(|e| self.encode_error(e))?;
        self.rows += encoding.rows as u64;
        self.upload.put(bytes).await.map_err(|source| SnapshotError::Write { path: self.path.to_string(), source })
    }

    fn append_row_group(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<Bytes, ParquetError> {
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(self.take_written())
    }

    /// What the file writer has written since the last call (as `AsyncArrowWriter` does:
    /// bytes still in the writer's small internal buffer follow in a later call).
    fn take_written(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.file.inner_mut()))
    }

    /// Writes the footer and completes the upload; returns the file's rows and bytes.
    async fn finish(mut self) -> Result<(u64, u64)> {
        if let Err(source) = self.file.finish() {
            self.abandon().await;
            return Err(SnapshotError::Encode { path: self.path.to_string(), source });
        }
        let footer = self.take_written();
        self.upload.put(footer).await.map_err(|source| SnapshotError::Write { path: self.path.to_string(), source })?;
        self.upload.shutdown().await.map_err(|source| SnapshotError::Upload { path: self.path.to_string(), source })?;
        Ok((self.rows, self.file.bytes_written() as u64))
    }

    /// Aborts the upload (a multipart upload's parts are discarded); a failure to do so only
    /// leaves parts the store expires, so it is logged, not returned.
    async fn abandon(&mut self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(path = %self.path, "aborting the upload of a failed file: {e}");
        }
    }

    fn encode_error(&self, source: ParquetError) -> SnapshotError {
        SnapshotError::Encode { path: self.path.to_string(), source }
    }
}

/// One Arrow field of one row group and the writers of its leaf columns.
struct ColumnJob {
    field_index: usize,
    field: FieldRef,
    rows: ColumnRows,
    writers: Vec<ArrowColumnWriter>,
}

impl ColumnJob {
    /// Gathers the column's rows (when picked) and encodes them; CPU-bound, run on the
    /// blocking pool.
    fn encode(self) -> Result<Vec<ArrowColumnChunk>, ParquetError> {
        let ColumnJob { field, rows, mut writers, .. } = self;
        for array in rows.into_arrays()? {
            let leaves = compute_leaves(field.as_ref(), &array)?;
            if leaves.len() != writers.len() {
                return Err(ParquetError::General(format!(
                    "column {} has {} leaf columns but {} writers",
                    field.name(),
                    leaves.len(),
                    writers.len()
                )));
            }
            for (writer, leaf) in writers.iter_mut().zip(&leaves) {
                writer.write(leaf)?;
            }
        }
        writers.into_iter().map(ArrowColumnWriter::close).collect()
    }
}
