//! Row-at-a-time builders that turn canonical rows into Arrow record batches.
//!
//! Connectors (the demo generator, the file importer, CRM clients) produce rows as slices
//! of [`Value`]; the builder checks each value against the table's column definition
//! (type, NOT NULL, allowed enumeration values) so that a bad row is rejected with the
//! column named, before anything reaches a snapshot.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};

use super::schema::{Column, ColumnKind, Table, UTC};

/// One cell of a canonical row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
    /// A decimal's unscaled value at the column's scale (cents for money).
    Decimal(i128),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Str(s)
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value<'_> {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value<'_> {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}

/// Why a row was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("table {table} expects {expected} values per row, got {got}")]
    Width { table: &'static str, expected: usize, got: usize },
    #[error("column {column} is NOT NULL but the value is empty")]
    Null { column: &'static str },
    #[error("column {column} must be one of {allowed}, got '{value}'")]
    NotAllowed { column: &'static str, allowed: String, value: String },
    #[error("column {column} holds {expected}, got {got}")]
    Type { column: &'static str, expected: &'static str, got: String },
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Decimal(Decimal128Builder),
}

impl std::fmt::Debug for ColumnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ColumnBuilder")
    }
}

impl ColumnBuilder {
    fn new(column: &Column) -> Self {
        match column.kind {
            ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_) | ColumnKind::Json => {
                Self::Utf8(StringBuilder::new())
            }
            ColumnKind::Int32 => Self::Int32(Int32Builder::new()),
            ColumnKind::Int64 => Self::Int64(Int64Builder::new()),
            ColumnKind::Float64 => Self::Float64(Float64Builder::new()),
            ColumnKind::Bool => Self::Bool(BooleanBuilder::new()),
            ColumnKind::Timestamp => Self::Timestamp(TimestampMicrosecondBuilder::new()),
            ColumnKind::Date => Self::Date(Date32Builder::new()),
            ColumnKind::Money => Self::Decimal(Decimal128Builder::new()),
            ColumnKind::Rate => Self::Decimal(Decimal128Builder::new()),
        }
    }

    fn finish(&mut self, column: &Column) -> ArrayRef {
        match self {
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish().with_timezone(UTC)),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Decimal(b) => {
                let (precision, scale) = match column.kind {
                    ColumnKind::Rate => (6, 4),
                    _ => (18, 2),
                };
                // The precision/scale pair is a constant above, always valid.
                Arc::new(
                    b.finish()
                        .with_precision_and_scale(precision, scale)
                        .unwrap_or_else(|_| unreachable!("valid decimal precision")),
                )
            }
        }
    }
}

/// Checks one value against its column without appending it.
fn check(column: &Column, value: &Value<'_>) -> Result<(), RowError> {
    let type_error = |expected: &'static str| RowError::Type {
        column: column.name,
        expected,
        got: format!("{value:?}"),
    };
    match (column.kind, value) {
        (_, Value::Null) if !column.nullable => Err(RowError::Null { column: column.name }),
        (_, Value::Null) => Ok(()),
        (ColumnKind::Enum(allowed), Value::Str(s)) => {
            if allowed.contains(s) {
                Ok(())
            } else {
                Err(RowError::NotAllowed {
                    column: column.name,
                    allowed: allowed.join("/"),
                    value: (*s).to_string(),
                })
            }
        }
        (ColumnKind::Id | ColumnKind::Text | ColumnKind::Json, Value::Str(_)) => Ok(()),
        (ColumnKind::Id | ColumnKind::Text | ColumnKind::Json | ColumnKind::Enum(_), _) => {
            Err(type_error("text"))
        }
        (ColumnKind::Int32, Value::Int(i)) if i32::try_from(*i).is_ok() => Ok(()),
        (ColumnKind::Int32, _) => Err(type_error("a 32-bit integer")),
        (ColumnKind::Int64, Value::Int(_)) => Ok(()),
        (ColumnKind::Int64, _) => Err(type_error("an integer")),
        (ColumnKind::Float64, Value::Float(_) | Value::Int(_)) => Ok(()),
        (ColumnKind::Float64, _) => Err(type_error("a number")),
        (ColumnKind::Bool, Value::Bool(_)) => Ok(()),
        (ColumnKind::Bool, _) => Err(type_error("a boolean")),
        (ColumnKind::Timestamp, Value::Timestamp(_)) => Ok(()),
        (ColumnKind::Timestamp, _) => Err(type_error("a timestamp")),
        (ColumnKind::Date, Value::Date(_)) => Ok(()),
        (ColumnKind::Date, _) => Err(type_error("a date")),
        (ColumnKind::Money, Value::Decimal(d)) if d.unsigned_abs() < 10u128.pow(18) => Ok(()),
        (ColumnKind::Money, _) => Err(type_error("an amount with at most 16 integer digits")),
        (ColumnKind::Rate, Value::Decimal(d)) if d.unsigned_abs() < 10u128.pow(6) => Ok(()),
        (ColumnKind::Rate, _) => Err(type_error("a rate below 100 with at most 4 decimals")),
    }
}

fn append(builder: &mut ColumnBuilder, value: &Value<'_>) {
    match (builder, *value) {
        (ColumnBuilder::Utf8(b), Value::Str(s)) => b.append_value(s),
        (ColumnBuilder::Utf8(b), _) => b.append_null(),
        (ColumnBuilder::Int32(b), Value::Int(i)) => b.append_value(i as i32),
        (ColumnBuilder::Int32(b), _) => b.append_null(),
        (ColumnBuilder::Int64(b), Value::Int(i)) => b.append_value(i),
        (ColumnBuilder::Int64(b), _) => b.append_null(),
        (ColumnBuilder::Float64(b), Value::Float(f)) => b.append_value(f),
        (ColumnBuilder::Float64(b), Value::Int(i)) => b.append_value(i as f64),
        (ColumnBuilder::Float64(b), _) => b.append_null(),
        (ColumnBuilder::Bool(b), Value::Bool(v)) => b.append_value(v),
        (ColumnBuilder::Bool(b), _) => b.append_null(),
        (ColumnBuilder::Timestamp(b), Value::Timestamp(t)) => b.append_value(t),
        (ColumnBuilder::Timestamp(b), _) => b.append_null(),
        (ColumnBuilder::Date(b), Value::Date(d)) => b.append_value(d),
        (ColumnBuilder::Date(b), _) => b.append_null(),
        (ColumnBuilder::Decimal(b), Value::Decimal(d)) => b.append_value(d),
        (ColumnBuilder::Decimal(b), _) => b.append_null(),
    }
}

/// Accumulates rows of one canonical table.
#[derive(Debug)]
pub struct TableBuilder {
    table: Table,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl TableBuilder {
    pub fn new(table: Table) -> Self {
        let columns = table.columns().iter().map(ColumnBuilder::new).collect();
        Self { table, columns, rows: 0 }
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row, in the table's column order.
    ///
    /// # Errors
    /// The row has the wrong width, or a value does not fit its column; nothing of the row
    /// is appended then.
    pub fn append_row(&mut self, row: &[Value<'_>]) -> Result<(), RowError> {
        let columns = self.table.columns();
        if row.len() != columns.len() {
            return Err(RowError::Width {
                table: self.table.name(),
                expected: columns.len(),
                got: row.len(),
            });
        }
        for (column, value) in columns.iter().zip(row) {
            check(column, value)?;
        }
        for (builder, value) in self.columns.iter_mut().zip(row) {
            append(builder, value);
        }
        self.rows += 1;
        Ok(())
    }

    /// Finishes the rows appended so far into one batch and starts over.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .zip(self.table.columns())
            .map(|(b, c)| b.finish(c))
            .collect();
        self.rows = 0;
        // Every array was built from the column definitions the schema is made of, and
        // `check` enforced NOT NULL, so the batch always matches.
        RecordBatch::try_new(self.table.schema(), arrays)
            .unwrap_or_else(|e| unreachable!("builder out of step with schema: {e}"))
    }
}
