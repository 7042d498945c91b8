//! What every CRM connector's sync shares: the previous snapshot it builds on, the report of
//! what it did, the keyed phone hash, the cells rows are mapped into, and the row filters an
//! incremental merge uses on the previous snapshot's batches.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{Table, Value};

/// The tables a CRM connector fills (the others, such as plans, come from `inputs`); an
/// incremental pull reads them from the previous snapshot.
pub const CRM_TABLES: &[Table] = &[
    Table::Managers,
    Table::Departments,
    Table::Pipelines,
    Table::Stages,
    Table::Sources,
    Table::LossReasons,
    Table::Companies,
    Table::Contacts,
    Table::Leads,
    Table::Deals,
    Table::DealStageHistory,
    Table::DealItems,
    Table::Calls,
    Table::Activities,
    Table::Tasks,
];

/// Merging a pull into the previous snapshot failed: the previous snapshot's tables are not
/// shaped as this version writes them (a snapshot of another version, or damaged), or a
/// merged table does not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the previous snapshot's table does not have the expected shape: {0}; delete the tenant's current snapshot (or restore a good one) so that the next refresh is a full sync")]
    Shape(String),
    #[error("rebuilding a merged table: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Row(#[from] crate::model::RowError),
}

/// The previous snapshot, for an incremental pull.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub cursors: BTreeMap<String, String>,
    pub tables: BTreeMap<Table, Vec<RecordBatch>>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub incremental: bool,
    /// Records read per entity in this pull.
    pub records: BTreeMap<&'static str, usize>,
    pub requests: u64,
    pub retries: u64,
    /// Answers by status (`200`, `503`, `timeout`, …).
    pub answers: BTreeMap<String, u64>,
    /// Whether deletions were looked for (an id scan, delete events, the trash), and how many
    /// rows were dropped.
    pub reconciled: bool,
    pub deleted: usize,
    /// Reading the CRM (every request), then the whole pull with mapping and merging.
    pub read_seconds: f64,
    pub seconds: f64,
}

impl SyncReport {
    /// The report of an incremental (ids or events reconciled) or full pull, with the
    /// client's counters, started at `started` and done reading after `read_seconds`.
    pub fn new(incremental: bool, records: BTreeMap<&'static str, usize>, stats: &crate::connectors::http::HttpStats, deleted: usize, read_seconds: f64, started: std::time::Instant) -> SyncReport {
        SyncReport {
            incremental,
            records,
            requests: stats.requests(),
            retries: stats.retries(),
            answers: stats.answers(),
            reconciled: incremental,
            deleted,
            read_seconds,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// The key of `phone_hash` kept in the cursors under `cursor` (hex), or a fresh random one.
/// The key stays with the snapshots so hashes stay comparable from one sync to the next.
///
/// # Errors
/// The system has no random source.
pub fn phone_key(cursors: &mut BTreeMap<String, String>, cursor: &str) -> Result<Vec<u8>, getrandom::Error> {
    let kept = cursors.get(cursor).and_then(|hex| decode_hex(hex)).filter(|k| k.len() == 32);
    let key = match kept {
        Some(key) => key,
        None => {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key)?;
            key
        }
    };
    cursors.insert(cursor.into(), key.iter().map(|b| format!("{b:02x}")).collect());
    Ok(key)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// The keyed hash of a phone number's digits (docs/schema.md `phone_hash`): a Russian `8XXXXXXXXXX`
/// counts as `7XXXXXXXXXX`, so a callback matches the missed call whichever way it was dialled.
pub fn phone_hash(phone: &str, key: &[u8]) -> String {
    let mut digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('8') {
        digits.replace_range(0..1, "7");
    }
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(digits.as_bytes());
    mac.finalize().into_bytes()[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// One cell of a row being mapped (owned, so rows can be built from temporaries).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    S(String),
    I(i64),
    F(f64),
    B(bool),
    /// Microseconds, UTC.
    T(i64),
    /// Cents.
    D(i128),
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell::S(s.to_string())
    }

    pub fn value(&self) -> Value<'_> {
        match self {
            Cell::Null => Value::Null,
            Cell::S(s) => Value::Str(s),
            Cell::I(i) => Value::Int(*i),
            Cell::F(f) => Value::Float(*f),
            Cell::B(b) => Value::Bool(*b),
            Cell::T(t) => Value::Timestamp(*t),
            Cell::D(d) => Value::Decimal(*d),
        }
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Cell {
        v.map_or(Cell::Null, Cell::S)
    }
}
impl From<Option<&String>> for Cell {
    fn from(v: Option<&String>) -> Cell {
        v.map_or(Cell::Null, |s| Cell::S(s.clone()))
    }
}
impl From<Option<i32>> for Cell {
    fn from(v: Option<i32>) -> Cell {
        v.map_or(Cell::Null, |i| Cell::I(i64::from(i)))
    }
}
impl From<Option<bool>> for Cell {
    fn from(v: Option<bool>) -> Cell {
        v.map_or(Cell::Null, Cell::B)
    }
}
impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Cell {
        v.map_or(Cell::Null, Cell::F)
    }
}

/// A text column of a batch.
pub fn strings(batch: &RecordBatch, column: usize) -> Option<&StringArray> {
    batch.column(column).as_string_opt::<i32>()
}

/// A text column of a canonical table's batch, by name.
///
/// # Errors
/// The table has no such column, or it is not text.
pub fn column<'a>(table: Table, batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, MergeError> {
    let i = table.column_index(name).ok_or_else(|| MergeError::Shape(format!("{} has no column {name}", table.name())))?;
    strings(batch, i).ok_or_else(|| MergeError::Shape(format!("{}.{name} is not text", table.name())))
}

/// Every value of a text column.
pub fn keys(batches: &[RecordBatch], column: usize) -> HashSet<String> {
    let mut out = HashSet::new();
    for b in batches {
        if let Some(col) = strings(b, column) {
            out.extend(col.iter().flatten().map(str::to_string));
        }
    }
    out
}

/// Keeps the rows whose text `column` passes `keep`; returns the rows and how many were
/// dropped.
///
/// # Errors
/// The column is not text.
pub fn retain(batches: &[RecordBatch], column: usize, keep: impl Fn(Option<&str>) -> bool) -> Result<(Vec<RecordBatch>, usize), MergeError> {
    let mut out = Vec::new();
    let mut dropped = 0;
    for b in batches {
        let col = strings(b, column).ok_or_else(|| MergeError::Shape(format!("column {column} of a previous table is not text")))?;
        let mask: BooleanArray = (0..col.len()).map(|i| Some(keep(col.is_valid(i).then(|| col.value(i))))).collect();
        dropped += mask.iter().filter(|k| *k == Some(false)).count();
        out.push(filter_record_batch(b, &mask)?);
    }
    Ok((out, dropped))
}

/// Checks that `path` can be replaced (its folder is writable), before anything that would
/// need to replace it is spent.
///
/// # Errors
/// The folder does not take a new file.
pub fn check_replaceable(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe = dir.join(format!(".{}.probe", file_name(path)));
    std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe))
}

/// Replaces `path` atomically with `bytes`, readable by its owner only: a temporary file,
/// fsync, rename, fsync of the folder. A crash leaves the old file or the new one. For
/// files holding secrets (single-use OAuth refresh tokens).
///
/// # Errors
/// The file cannot be written or renamed.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name(path)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "tokens".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_key_is_kept_and_hashes_ignore_the_dialling_form() {
        let mut cursors = BTreeMap::new();
        let key = phone_key(&mut cursors, "x.phone_key").unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(phone_key(&mut cursors, "x.phone_key").unwrap(), key, "a kept key is reused");
        assert_eq!(phone_hash("8 (916) 555-00-00", &key), phone_hash("+79165550000", &key));
        assert_ne!(phone_hash("+79165550000", &key), phone_hash("+79165550001", &key));
        cursors.insert("x.phone_key".into(), "zz".into());
        assert_ne!(phone_key(&mut cursors, "x.phone_key").unwrap(), key, "a broken key is replaced");
    }
}
