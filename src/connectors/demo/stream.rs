//! The tables with a NOT NULL time sort column ([`STREAMED`]: calls, activities, tasks,
//! stage history, deals, leads) handed to the snapshot writer while they are
//! generated, in time order, so a demo never holds them whole (1.9 GB of Arrow at scale 10;
//! the other tables are a few MB).
//!
//! The generator walks the days in order, and nothing it adds while on a day is dated before
//! that day's local midnight (leads, deals and their calls all come on or after the day that
//! made them). So after each day, every row held or built that is dated before that day's
//! midnight is final: it is sent on in time order, the rest are held. A deal makes its rows
//! for months ahead, so what is held is kept as sorted runs, one per day that made it, and
//! only the rows due are merged: an earlier version kept one sorted batch of everything
//! held and sorted it again every day, which was slower and bigger than not streaming these
//! tables at all. The sorts are stable and the runs stay in the order they were made, so
//! equal times keep the order the rows were made in. A row dated before what was already
//! sent is a bug of the generator and fails the demo instead of writing an unsorted file.

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::model::Table;
use crate::snapshot::SnapshotError;

/// The tables sent while they are generated: their sort column is a NOT NULL timestamp.
pub(super) const STREAMED: [Table; 6] =
    [Table::Calls, Table::Activities, Table::Tasks, Table::DealStageHistory, Table::Deals, Table::Leads];

/// Batches in flight between the generator and the writer, per table: a few days of rows.
const CHANNEL_BATCHES: usize = 4;

/// What the generator sends: sorted rows, then the end (a channel that closes without it
/// means the generator failed).
#[derive(Debug)]
pub(super) enum Chunk {
    Rows(RecordBatch),
    End,
}

/// Why streaming a table stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    #[error("the snapshot writer stopped taking the demo's {0}")]
    WriterGone(&'static str),
    #[error("the demo generator made a row of {table} dated {at} µs after sending its rows up to {sent_until} µs; rows must come day by day")]
    OutOfOrder { table: &'static str, at: i64, sent_until: i64 },
    #[error("sorting the demo's rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The generator's end of one table's stream.
#[derive(Debug)]
pub(super) struct SortedOut {
    table: Table,
    /// The table's time column (its sort column).
    column: usize,
    sender: mpsc::Sender<Chunk>,
    /// Rows not sent yet: one sorted run per flush that held some back, in the order they
    /// were made; all dated at or after `sent_until`.
    held: Vec<Run>,
    sent_until: i64,
}

/// Rows made in one flush, sorted by time, that are not all sent yet.
#[derive(Debug)]
struct Run {
    rows: RecordBatch,
    /// Rows of the buffers `rows` is a slice of (a slice keeps its parent's buffers alive).
    buffer_rows: usize,
}

/// A table's stream: the generator's end and the writer's end.
pub(super) fn sorted_channel(table: Table) -> (SortedOut, BoxStream<'static, Result<RecordBatch, SnapshotError>>) {
    let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
    let column = table.column_index(table.sort_column()).unwrap_or(0);
    let out = SortedOut { table, column, sender, held: Vec::new(), sent_until: i64::MIN };
    (out, received(table, receiver))
}

impl SortedOut {
    pub(super) fn table(&self) -> Table {
        self.table
    }

    /// Takes the rows `built` since the last flush, and sends, in order, every row held or
    /// built that is dated before `until` (no row made later may be dated before it).
    ///
    /// # Errors
    /// The writer is gone, or a built row is dated before what was already sent.
    pub(super) fn flush(&mut self, built: RecordBatch, until: i64) -> Result<(), StreamError> {
        if let Some(at) = arrow::compute::min(times(&built, self.column)).filter(|at| *at < self.sent_until) {
            return Err(StreamError::OutOfOrder { table: self.table.name(), at, sent_until: self.sent_until });
        }
        if built.num_rows() > 0 {
            let rows = sorted_by_time(built, self.column)?;
            self.held.push(Run { buffer_rows: rows.num_rows(), rows });
        }
        let mut ready = Vec::new();
        let mut kept = Vec::with_capacity(self.held.len());
        for run in self.held.drain(..) {
            let due = times(&run.rows, self.column).values().partition_point(|at| *at < until);
            if due > 0 {
                ready.push(run.rows.slice(0, due));
            }
            let left = run.rows.num_rows() - due;
            if left == 0 {
                continue;
            }
            let rest = run.rows.slice(due, left);
            // Copied once half of its buffers are sent, so what is held stays at most twice
            // the rows held.
            kept.push(if left * 2 <= run.buffer_rows {
                Run { rows: compact(&rest)?, buffer_rows: left }
            } else {
                Run { rows: rest, buffer_rows: run.buffer_rows }
            });
        }
        self.held = kept;
        if !ready.is_empty() {
            // Runs are in the order they were made, and each is sorted stably: a stable sort
            // of them in that order keeps equal times in the order the rows were made.
            let chunk = concat_batches(&self.table.schema(), &ready)?;
            let chunk = sorted_by_time(chunk, self.column)?;
            self.sender.blocking_send(Chunk::Rows(chunk)).map_err(|_| StreamError::WriterGone(self.table.name()))?;
        }
        self.sent_until = self.sent_until.max(until);
        Ok(())
    }

    /// Sends every row still held, then the end of the stream.
    ///
    /// # Errors
    /// As [`SortedOut::flush`].
    pub(super) fn finish(mut self, built: RecordBatch) -> Result<(), StreamError> {
        self.flush(built, i64::MAX)?;
        self.sender.blocking_send(Chunk::End).map_err(|_| StreamError::WriterGone(self.table.name()))
    }
}

fn times(batch: &RecordBatch, column: usize) -> &arrow::array::PrimitiveArray<TimestampMicrosecondType> {
    batch.column(column).as_primitive::<TimestampMicrosecondType>()
}

/// `batch` sorted by its time `column`; equal times keep their order (the column is NOT
/// NULL).
fn sorted_by_time(batch: RecordBatch, column: usize) -> Result<RecordBatch, StreamError> {
    let values = times(&batch, column).values();
    if values.windows(2).all(|w| w[0] <= w[1]) {
        return Ok(batch);
    }
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by_key(|&i| values[i as usize]);
    Ok(take_record_batch(&batch, &UInt32Array::from(order))?)
}

/// The writer's end: the rows until the end marker; a channel closed before it is the
/// generator's failure, never a shorter table.
fn received(table: Table, receiver: mpsc::Receiver<Chunk>) -> BoxStream<'static, Result<RecordBatch, SnapshotError>> {
    futures::stream::unfold((receiver, false), move |(mut receiver, ended)| async move {
        if ended {
            return None;
        }
        match receiver.recv().await {
            Some(Chunk::Rows(batch)) => Some((Ok(batch), (receiver, false))),
            Some(Chunk::End) => None,
            None => Some((Err(SnapshotError::Source(format!("the demo generator stopped before it made every row of {}", table.name()))), (receiver, true))),
        }
    })
    .boxed()
}

/// `batch` in buffers of its own (a slice keeps its parent's buffers alive).
fn compact(batch: &RecordBatch) -> Result<RecordBatch, StreamError> {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(|c| crate::model::owned_array(c.as_ref())).collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
