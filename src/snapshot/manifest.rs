//! `manifest.json`: what a snapshot holds. Versioned by `format_version`; readers refuse a
//! newer format rather than misread it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub(super) const FORMAT_VERSION: u32 = 1;

/// The description of one committed snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub snapshot_id: String,
    pub tenant: String,
    /// The "as of" of the data: every "now" in a KPI view is this instant.
    pub taken_at: DateTime<Utc>,
    /// When the snapshot was written.
    pub written_at: DateTime<Utc>,
    /// Where the rows came from, e.g. `demo (seed 42, scale 1)` or `files: /exports/acme`.
    pub source: String,
    /// The canonical schema version (docs/schema.md contract).
    pub schema_version: u32,
    pub tables: BTreeMap<String, TableEntry>,
    /// Connector positions for the next incremental pull (empty for full loads).
    #[serde(default)]
    pub sync_cursors: BTreeMap<String, String>,
}

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub rows: u64,
    pub bytes: u64,
    /// Files relative to the snapshot folder.
    pub files: Vec<String>,
    /// The column each file is sorted by (ascending, nulls first).
    pub sorted_by: String,
}

impl Manifest {
    /// Rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }
}
