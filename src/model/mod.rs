//! Stage 2 of the pipeline: the canonical CRM tables (docs/schema.md) as Arrow schemas, and
//! builders that turn connector rows into record batches.
//!
//! Connectors feed this module; the snapshot writer consumes its batches. It imports no
//! other stage.

mod builder;
mod schema;

pub use builder::{RowError, TableBuilder, Value};
pub use schema::*;

use arrow::array::RecordBatch;
use std::collections::BTreeMap;

/// Every table of one pull, as finished batches (tables a source did not produce are empty).
#[derive(Debug, Default, Clone)]
pub struct Dataset {
    pub tables: BTreeMap<Table, Vec<RecordBatch>>,
}

impl Dataset {
    /// Rows of one table.
    pub fn rows(&self, table: Table) -> usize {
        self.tables.get(&table).map_or(0, |b| b.iter().map(RecordBatch::num_rows).sum())
    }

    /// Adds the rows of a builder to the dataset.
    pub fn push(&mut self, mut builder: TableBuilder) {
        let batch = builder.finish();
        self.tables.entry(builder.table()).or_default().push(batch);
    }
}

/// Days since the Unix epoch of a calendar date.
pub fn date_to_days(date: chrono::NaiveDate) -> i32 {
    const EPOCH_DAYS_FROM_CE: i32 = 719_163;
    chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE
}

/// `array`'s rows in buffers of their own. A slice, and the result of `concat` of one array,
/// keep the whole parent buffers alive; a `take` of `Utf8View`/`BinaryView` keeps every data
/// buffer of its input, so those are compacted (`gc`) instead.
///
/// # Errors
/// Arrow refused to copy the array's type.
pub fn owned_array(array: &dyn arrow::array::Array) -> Result<arrow::array::ArrayRef, arrow::error::ArrowError> {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    match array.data_type() {
        DataType::Utf8View => Ok(std::sync::Arc::new(array.as_string_view().gc())),
        DataType::BinaryView => Ok(std::sync::Arc::new(array.as_binary_view().gc())),
        _ => arrow::compute::take(array, &arrow::array::UInt64Array::from_iter_values(0..array.len() as u64), None),
    }
}
