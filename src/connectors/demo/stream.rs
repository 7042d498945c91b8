//! The calls ([`STREAMED`]) handed to the snapshot writer while they are generated, in time
//! order, so a demo never holds them whole (12.7 M rows, 1.35 GB of Arrow at scale 10; the
//! other tables are 0.55 GB together). Streaming activities, tasks, stage history and deals
//! too was measured and is worse (1.9 GB peak instead of 1.4 GB, 21 s instead of 17 s at
//! scale 10): a deal makes its rows for months ahead, so they are held and sorted again
//! every day.
//!
//! The generator walks the days in order, and nothing it adds while on a day is dated before
//! that day's local midnight (leads, deals and their calls all come on or after the day that
//! made them). So after each day, a table's rows built so far and those
//! held back are sorted by the table's time column, and every row before that day's
//! midnight is final: it is sent on, the rest are held. The sort is stable, so equal times
//! keep the order the rows were made in. A row dated before what was already sent is a bug
//! of the generator and fails the demo instead of writing an unsorted file.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::model::Table;
use crate::snapshot::SnapshotError;

/// The tables sent while they are generated: their sort column is a NOT NULL timestamp.
pub(super) const STREAMED: [Table; 1] = [Table::Calls];

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
    /// Rows not sent yet, sorted; all dated at or after `sent_until`.
    held: Option<RecordBatch>,
    sent_until: i64,
}

/// A table's stream: the generator's end and the writer's end.
pub(super) fn sorted_channel(table: Table) -> (SortedOut, BoxStream<'static, Result<RecordBatch, SnapshotError>>) {
    let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
    let column = table.column_index(table.sort_column()).unwrap_or(0);
    let out = SortedOut { table, column, sender, held: None, sent_until: i64::MIN };
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
        if let Some(at) = arrow::compute::min(self.times(&built)).filter(|at| *at < self.sent_until) {
            return Err(StreamError::OutOfOrder { table: self.table.name(), at, sent_until: self.sent_until });
        }
        let pending = match self.held.take() {
            Some(held) => concat_batches(&built.schema(), [&held, &built])?,
            None => built,
        };
        let sorted = self.sorted_by_time(pending)?;
        let ready = self.times(&sorted).values().partition_point(|at| *at < until);
        if ready > 0 {
            let chunk = sorted.slice(0, ready);
            self.sender.blocking_send(Chunk::Rows(chunk)).map_err(|_| StreamError::WriterGone(self.table.name()))?;
        }
        let rest = sorted.slice(ready, sorted.num_rows() - ready);
        // A copy of the rows held back, so the batch sent on can be freed on its own.
        self.held = (rest.num_rows() > 0).then(|| compact(&rest)).transpose()?;
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

    fn times<'a>(&self, batch: &'a RecordBatch) -> &'a arrow::array::PrimitiveArray<TimestampMicrosecondType> {
        batch.column(self.column).as_primitive::<TimestampMicrosecondType>()
    }

    /// `batch` sorted by time; equal times keep their order (the column is NOT NULL).
    fn sorted_by_time(&self, batch: RecordBatch) -> Result<RecordBatch, StreamError> {
        let values = self.times(&batch).values();
        if values.windows(2).all(|w| w[0] <= w[1]) {
            return Ok(batch);
        }
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_by_key(|&i| values[i as usize]);
        Ok(take_record_batch(&batch, &UInt32Array::from(order))?)
    }
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
    let columns: Vec<ArrayRef> = batch.columns().iter().map(|c| arrow::compute::concat(&[c.as_ref() as &dyn Array])).collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
