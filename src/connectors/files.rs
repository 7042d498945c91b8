//! The files connector: canonical tables from a folder of CSV or JSON-lines exports.
//!
//! One file per table, named after it: `deals.csv`, `calls.jsonl` (`.ndjson` and `.json`
//! are read as JSON lines too). CSV files have a header row naming the columns (any order,
//! case-insensitive; `,` or `;` separated; a UTF-8 BOM is fine). Every value is checked
//! against docs/schema.md; the first bad value stops the import with the file, line, column and
//! reason, and nothing is written. The same reader loads a tenant's `inputs` folder.
//!
//! Value formats: empty = NULL; timestamps in RFC 3339 (`2025-06-30T18:00:00+03:00`) or
//! without an offset (`2025-06-30 18:00:00`, read in the tenant's time zone); dates as
//! `YYYY-MM-DD`; amounts as `1234.50` or `1234,50` (at most 2 decimals, 4 for rates);
//! booleans as true/false, 1/0, yes/no; enumerations case-insensitively.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::model::{Column, ColumnKind, Dataset, Table, TableBuilder, Value, date_to_days};

/// Why an import failed; the message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("{path}: '{stem}' is not a table of the canonical schema; name files after one of: {expected}")]
    UnknownTable { path: PathBuf, stem: String, expected: String },
    #[error("{path}: table {table} is not accepted here; this folder takes: {expected}")]
    TableNotAllowed { path: PathBuf, table: &'static str, expected: String },
    #[error("{first} and {second} both hold table {table}; keep one")]
    TwoFiles { first: PathBuf, second: PathBuf, table: &'static str },
    #[error("{path}: the header names column '{column}', which table {table} does not have (columns: {expected})")]
    UnknownColumn { path: PathBuf, table: &'static str, column: String, expected: String },
    #[error("{path}: the header has no column {column}, which is required (NOT NULL)")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{path}: the header names column {column} twice")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{path}, line {line}: {reason}")]
    Syntax { path: PathBuf, line: u64, reason: String },
    #[error("{path}, line {line}, column {column}: {reason}")]
    Value { path: PathBuf, line: u64, column: String, reason: String },
}

/// Reads every table file of a folder. `accept` says which tables this folder may hold.
///
/// # Errors
/// See [`ImportError`]: the first problem found stops the import.
pub fn read_folder(folder: &Path, timezone: Tz, accept: impl Fn(Table) -> bool) -> Result<Dataset, ImportError> {
    let entries = std::fs::read_dir(folder).map_err(|source| ImportError::Folder { path: folder.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ImportError::Folder { path: folder.to_path_buf(), source })?;
        files.push(entry.path());
    }
    files.sort();
    let mut found: Vec<(Table, PathBuf)> = Vec::new();
    for path in files {
        if Format::of(&path).is_none() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let Some(table) = Table::from_name(&stem.to_lowercase()) else {
            return Err(ImportError::UnknownTable { path, stem, expected: Table::names_list() });
        };
        if !accept(table) {
            let expected = Table::ALL.iter().filter(|t| accept(**t)).map(|t| t.name()).collect::<Vec<_>>().join(", ");
            return Err(ImportError::TableNotAllowed { path, table: table.name(), expected });
        }
        if let Some((_, first)) = found.iter().find(|(t, _)| *t == table) {
            return Err(ImportError::TwoFiles { first: first.clone(), second: path, table: table.name() });
        }
        found.push((table, path));
    }
    let mut dataset = Dataset::default();
    for (table, path) in found {
        let builder = match Format::of(&path) {
            Some(Format::Csv) => read_csv(&path, table, timezone)?,
            _ => read_json_lines(&path, table, timezone)?,
        };
        dataset.push(builder);
    }
    Ok(dataset)
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    JsonLines,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, ImportError> {
    let mut bytes = std::fs::read(path).map_err(|source| ImportError::File { path: path.to_path_buf(), source })?;
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    Ok(bytes)
}

/// Maps header names to column positions, checking unknown, duplicate and missing columns.
fn map_header(path: &Path, table: Table, names: &[String]) -> Result<Vec<usize>, ImportError> {
    let columns = table.columns();
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let wanted = name.trim().to_lowercase();
        let Some(index) = columns.iter().position(|c| c.name == wanted) else {
            return Err(ImportError::UnknownColumn {
                path: path.to_path_buf(),
                table: table.name(),
                column: name.clone(),
                expected: columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
            });
        };
        if positions.contains(&index) {
            return Err(ImportError::DuplicateColumn { path: path.to_path_buf(), column: name.clone() });
        }
        positions.push(index);
    }
    if let Some(missing) = columns.iter().enumerate().find(|(i, c)| !c.nullable && !positions.contains(i)) {
        return Err(ImportError::MissingColumn { path: path.to_path_buf(), column: missing.1.name });
    }
    Ok(positions)
}

fn read_csv(path: &Path, table: Table, tz: Tz) -> Result<TableBuilder, ImportError> {
    let bytes = read_bytes(path)?;
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = if !first_line.contains(&b',') && first_line.contains(&b';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(&bytes[..]);
    let syntax = |line: u64, e: csv::Error| ImportError::Syntax { path: path.to_path_buf(), line, reason: e.to_string() };
    let header: Vec<String> = reader.headers().map_err(|e| syntax(1, e))?.iter().map(str::to_string).collect();
    let positions = map_header(path, table, &header)?;
    let columns = table.columns();
    let mut builder = TableBuilder::new(table);
    let mut texts: Vec<Option<String>> = vec![None; columns.len()];
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            syntax(line, e)
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        texts.iter_mut().for_each(|t| *t = None);
        for (field, &index) in record.iter().zip(&positions) {
            texts[index] = (!field.trim().is_empty()).then(|| field.to_string());
        }
        append_texts(&mut builder, path, line, columns, &texts, tz)?;
    }
    Ok(builder)
}

fn read_json_lines(path: &Path, table: Table, tz: Tz) -> Result<TableBuilder, ImportError> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|e| ImportError::Syntax {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("the file is not UTF-8 text ({e})"),
    })?;
    let columns = table.columns();
    let mut builder = TableBuilder::new(table);
    let mut texts: Vec<Option<String>> = vec![None; columns.len()];
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).map_err(|e| ImportError::Syntax {
            path: path.to_path_buf(),
            line,
            reason: format!("not a JSON object: {e}"),
        })?;
        texts.iter_mut().for_each(|t| *t = None);
        let names: Vec<String> = object.keys().cloned().collect();
        let positions = map_header(path, table, &names).or_else(|e| match e {
            // Missing required keys are reported per value below, with the line.
            ImportError::MissingColumn { .. } => Ok(names.iter().filter_map(|n| table.column_index(&n.to_lowercase())).collect()),
            other => Err(other),
        })?;
        for ((_, value), &index) in object.iter().zip(&positions) {
            texts[index] = json_text(value);
        }
        append_texts(&mut builder, path, line, columns, &texts, tz)?;
    }
    Ok(builder)
}

/// A JSON value as the text the CSV path would see (objects and arrays as JSON text).
fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.trim().is_empty() => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn append_texts(
    builder: &mut TableBuilder,
    path: &Path,
    line: u64,
    columns: &[Column],
    texts: &[Option<String>],
    tz: Tz,
) -> Result<(), ImportError> {
    let mut enum_values: Vec<String> = Vec::new();
    let mut values: Vec<Value<'_>> = Vec::with_capacity(columns.len());
    let value_error = |column: &Column, reason: String| ImportError::Value {
        path: path.to_path_buf(),
        line,
        column: column.name.to_string(),
        reason,
    };
    // Enumerations are matched case-insensitively: keep the lower-cased copies alive.
    for (column, text) in columns.iter().zip(texts) {
        if let (ColumnKind::Enum(_), Some(t)) = (column.kind, text) {
            enum_values.push(t.trim().to_lowercase());
        }
    }
    let mut next_enum = enum_values.iter();
    for (column, text) in columns.iter().zip(texts) {
        let value = match text {
            None => Value::Null,
            Some(t) => match column.kind {
                ColumnKind::Enum(_) => Value::Str(next_enum.next().map_or("", String::as_str)),
                _ => parse_value(column.kind, t, tz).map_err(|reason| value_error(column, reason.to_string()))?,
            },
        };
        values.push(value);
    }
    builder.append_row(&values).map_err(|e| {
        let column = match &e {
            crate::model::RowError::Null { column }
            | crate::model::RowError::NotAllowed { column, .. }
            | crate::model::RowError::Type { column, .. } => (*column).to_string(),
            crate::model::RowError::Width { .. } => String::new(),
        };
        ImportError::Value { path: path.to_path_buf(), line, column, reason: e.to_string() }
    })
}

/// Why one cell's text is not a value of its column; the caller adds the file, line and
/// column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected a JSON object such as {{\"field\": 1}}, got '{0}'")]
    NotJsonObject(String),
    #[error("expected a whole number, got '{0}'")]
    NotWholeNumber(String),
    #[error("expected a number, got '{0}'")]
    NotNumber(String),
    #[error("expected true or false, got '{0}'")]
    NotBoolean(String),
    #[error("expected a date as YYYY-MM-DD, got '{0}'")]
    NotDate(String),
    #[error("expected a timestamp such as 2025-06-30T18:00:00+03:00 or 2025-06-30 18:00:00, got '{0}'")]
    NotTimestamp(String),
    #[error("'{text}' does not exist in time zone {zone}")]
    NoSuchLocalTime { text: String, zone: Tz },
    #[error("expected an amount such as 1234.50, got '{0}'")]
    NotAmount(String),
    #[error("'{text}' has more than {scale} decimal places")]
    TooManyDecimals { text: String, scale: u32 },
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// Parses one non-empty text value for a column kind (text kinds borrow the input).
fn parse_value(kind: ColumnKind, text: &str, tz: Tz) -> Result<Value<'_>, ValueError> {
    let t = text.trim();
    match kind {
        ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_) => Ok(Value::Str(text)),
        ColumnKind::Json => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(serde_json::Value::Object(_)) => Ok(Value::Str(text)),
            _ => Err(ValueError::NotJsonObject(t.to_string())),
        },
        ColumnKind::Int32 | ColumnKind::Int64 => {
            t.parse::<i64>().map(Value::Int).map_err(|_| ValueError::NotWholeNumber(t.to_string()))
        }
        ColumnKind::Float64 => t
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| ValueError::NotNumber(t.to_string())),
        ColumnKind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => Ok(Value::Bool(true)),
            "false" | "f" | "0" | "no" | "n" => Ok(Value::Bool(false)),
            _ => Err(ValueError::NotBoolean(t.to_string())),
        },
        ColumnKind::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(|d| Value::Date(date_to_days(d)))
            .map_err(|_| ValueError::NotDate(t.to_string())),
        ColumnKind::Timestamp => parse_timestamp(t, tz).map(Value::Timestamp),
        ColumnKind::Money | ColumnKind::Rate => parse_decimal(t, kind.scale().unwrap_or(2)).map(Value::Decimal),
    }
}

/// An instant in microseconds; text without an offset is wall-clock time in `tz`.
pub fn parse_timestamp(t: &str, tz: Tz) -> Result<i64, ValueError> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Ok(dt.timestamp_micros());
        }
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)));
    let Some(naive) = naive else {
        return Err(ValueError::NotTimestamp(t.to_string()));
    };
    match tz.from_local_datetime(&naive).earliest() {
        Some(dt) => Ok(dt.timestamp_micros()),
        // A wall time in a DST gap moves forward by the gap (the "compatible" rule).
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|dt| dt.timestamp_micros())
            .ok_or_else(|| ValueError::NoSuchLocalTime { text: t.to_string(), zone: tz }),
    }
}

/// A decimal as its unscaled integer at `scale` digits: "1 234,5" at scale 2 is 123450.
pub fn parse_decimal(t: &str, scale: u32) -> Result<i128, ValueError> {
    let cleaned: String = t.chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
    let cleaned = if cleaned.contains('.') { cleaned } else { cleaned.replace(',', ".") };
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = !whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()) && fraction.chars().all(|c| c.is_ascii_digit());
    if !valid {
        return Err(ValueError::NotAmount(t.to_string()));
    }
    if fraction.len() > scale as usize {
        return Err(ValueError::TooManyDecimals { text: t.to_string(), scale });
    }
    if whole.len() > 16 {
        return Err(ValueError::TooLarge(t.to_string()));
    }
    let padded = format!("{whole}{fraction:0<width$}", width = scale as usize);
    let value: i128 = padded.parse().map_err(|_| ValueError::NotAmount(t.to_string()))?;
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_scale() {
        assert_eq!(parse_decimal("1234.5", 2), Ok(123_450));
        assert_eq!(parse_decimal("1 234,50", 2), Ok(123_450));
        assert_eq!(parse_decimal("-0.05", 4), Ok(-500));
        assert!(parse_decimal("1.234", 2).is_err());
        assert!(parse_decimal("12a", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
    }

    #[test]
    fn timestamps_without_offset_are_local() {
        let tz: Tz = "Europe/Moscow".parse().unwrap();
        let with_offset = parse_timestamp("2025-06-30T18:00:00+03:00", tz).unwrap();
        assert_eq!(parse_timestamp("2025-06-30 18:00:00", tz).unwrap(), with_offset);
        assert_eq!(parse_timestamp("2025-06-30T15:00:00Z", tz).unwrap(), with_offset);
        assert!(parse_timestamp("30.06.2025", tz).is_err());
    }
}

/// The files source as a connector: every pull reads the whole folder (on a blocking
/// thread); `check` reads it too and counts the rows.
#[derive(Debug, Clone)]
pub struct FilesConnector {
    pub path: PathBuf,
    pub exported_at: Option<chrono::DateTime<chrono::Utc>>,
    pub timezone: Tz,
}

impl FilesConnector {
    async fn read(&self) -> Result<Dataset, super::ConnectorError> {
        if !self.path.is_dir() {
            return Err(super::ConnectorError::MissingFolder { path: self.path.clone() });
        }
        let (path, timezone) = (self.path.clone(), self.timezone);
        let read = tokio::task::spawn_blocking(move || read_folder(&path, timezone, |_| true)).await.map_err(|e| super::ConnectorError::Task { what: "file import", source: e })?;
        Ok(read?)
    }
}

#[async_trait::async_trait]
impl super::Connector for FilesConnector {
    fn id(&self) -> &'static str {
        "files"
    }

    async fn check(&self) -> Result<super::CheckReport, super::ConnectorError> {
        let dataset = self.read().await?;
        Ok(super::CheckReport { rows: dataset.tables.keys().map(|k| (k.name().to_string(), dataset.rows(*k))).collect(), ..Default::default() })
    }

    async fn pull(&self, _previous: Option<super::sync::Previous>, now: chrono::DateTime<chrono::Utc>, _progress: super::progress::ProgressHandle) -> Result<super::Pull, super::ConnectorError> {
        let dataset = self.read().await?;
        Ok(super::Pull { dataset, streamed: None, taken_at: self.exported_at.unwrap_or(now), source_label: format!("files: {}", self.path.display()), cursors: Default::default(), sync: None })
    }
}
