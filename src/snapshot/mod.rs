//! Stage 3 of the pipeline: immutable Parquet snapshots in an object store.
//!
//! Layout (plain Parquet folders that Spark, Trino or DuckDB read as they are):
//!
//! ```text
//! <root>/<tenant>/snapshots/<snapshot_id>/<table>/part-00000.parquet
//! <root>/<tenant>/snapshots/<snapshot_id>/manifest.json
//! <root>/<tenant>/snapshots/<snapshot_id>/COMMITTED   written once it became current
//! <root>/<tenant>/CURRENT                      the id of the snapshot being served
//! <root>/<tenant>/LEASE                        who refreshes the tenant now (see [`lease`])
//! ```
//!
//! A write puts every table file first (and the KPI tables its writer builds), then
//! `manifest.json`, then swaps `CURRENT` (see [`writer`]). A crash at any point leaves the
//! previous snapshot served; the folder of a snapshot without a manifest is a leftover that
//! the next write (holding the lease) removes. Retention keeps a replaced snapshot for a
//! grace period, so servers still reading it finish (see [`retention`]).
//!
//! Fed by the connectors' `model::Dataset`; read by `catalog`.

mod encode;
mod lease;
mod manifest;
mod reader;
mod refresh_history;
mod retention;
mod store;
mod writer;

pub use manifest::{Manifest, TableEntry};
pub use reader::{CurrentCheck, VerifiedFiles};
pub use lease::Lease;
pub use store::Store;
pub use writer::{CurrentVersion, TableRows, Uncommitted, WriteOptions, WriteReport};

use std::path::PathBuf;

/// A failure reading or writing snapshots, naming the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("storage root '{root}' is not usable: {reason}")]
    Root { root: String, reason: String },
    #[error("cannot create storage folder {path}: {source}")]
    CreateRoot { path: PathBuf, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: String, source: object_store::Error },
    #[error("encoding {path} as Parquet: {source}")]
    Encode { path: String, source: parquet::errors::ParquetError },
    #[error("encoding {path} as Parquet: an encoding task failed: {reason}")]
    EncodeTask { path: String, reason: String },
    #[error("completing the upload of {path}: {source}")]
    Upload { path: String, source: std::io::Error },
    #[error("writing {path}: a batch of {columns} columns does not fit the file's {expected} columns")]
    BatchShape { path: String, columns: usize, expected: usize },
    #[error("sorting table {table}: {source}")]
    Sort { table: &'static str, source: arrow::error::ArrowError },
    #[error("reading {path}: {source}")]
    Read { path: String, source: object_store::Error },
    #[error("{path} is not a valid snapshot manifest ({reason}); restore it from a backup or run `salespulse refresh` to write a new snapshot")]
    BadManifest { path: String, reason: String },
    #[error("{path} is not a readable Parquet file ({reason}); restore it or run `salespulse refresh` to write a new snapshot")]
    BadParquet { path: String, reason: String },
    #[error("{path} does not match the canonical schema of table {table}: {reason}")]
    SchemaMismatch { path: String, table: &'static str, reason: String },
    #[error("tenant {tenant} has no current snapshot ({path} is missing); run `salespulse refresh` or `salespulse demo` first")]
    NoCurrent { tenant: String, path: String },
    #[error("CURRENT of tenant {tenant} names snapshot '{id}', which has no manifest; restore the snapshot or point CURRENT at one listed under {snapshots}")]
    DanglingCurrent { tenant: String, id: String, snapshots: String },
    #[error("another refresh of tenant {tenant} committed while this one was writing; snapshot {id} was not made current (run refresh again)")]
    CommitConflict { tenant: String, id: String },
    #[error("a refresh of tenant {tenant} is running on {holder} (its lease lasts until {until}); this one was not started")]
    LeaseHeld { tenant: String, holder: String, until: chrono::DateTime<chrono::Utc> },
    #[error("the refresh lease of tenant {tenant} was lost ({reason}); nothing was committed, and the process holding it now refreshes")]
    LeaseLost { tenant: String, reason: String },
    #[error("the refresh lease of tenant {tenant} changed hands four times while this process tried to take it; try again")]
    LeaseContended { tenant: String },
    #[error("the snapshot source failed: {0}")]
    Source(String),
}

pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;
