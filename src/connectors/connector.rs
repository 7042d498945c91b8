//! The contract every source meets, and the one factory that picks a source's connector.
//!
//! A connector says what it is (`id`), probes its source (`check` → a [`CheckReport`]), and
//! pulls it (`pull(previous, now, progress)` → one [`Pull`]): in full, or on top of the
//! previous snapshot's rows and cursors when it `builds_on` them. The refresh and the `check`
//! command only ever see this trait; adding a CRM touches its own folder and one line of
//! [`connector_for`].

use super::token_place::TokenHome;
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::progress::ProgressHandle;
use super::sync::{Previous, SyncReport};
use super::{ConnectorError, Source, amocrm, bitrix24, demo, files};
use arrow::array::RecordBatch;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::model::{Dataset, Table};
use crate::snapshot::SnapshotError;

/// One pull: the rows, the instant they describe, a label for the manifest, the cursors of
/// the next incremental pull, and (for a CRM) what the sync did.
#[derive(Debug)]
pub struct Pull {
    pub dataset: Dataset,
    /// Tables still being made when the pull returns (the demo's calls); `dataset` is then
    /// empty and the rest of the tables come from [`Streamed::rest`].
    pub streamed: Option<Streamed>,
    pub taken_at: DateTime<Utc>,
    pub source_label: String,
    /// Connector positions for the next incremental pull, kept in the manifest.
    pub cursors: BTreeMap<String, String>,
    pub sync: Option<SyncReport>,
}

/// Tables a source hands over while it still makes them, so they are written as they come
/// and never held whole, and the rest of its tables when it is done.
pub struct Streamed {
    /// Tables whose rows arrive in the table's sort order.
    pub sorted: Vec<(Table, BoxStream<'static, Result<RecordBatch, SnapshotError>>)>,
    /// Every other table, once the source is done.
    pub rest: BoxFuture<'static, Result<Dataset, SnapshotError>>,
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables: Vec<&str> = self.sorted.iter().map(|(t, _)| t.name()).collect();
        f.debug_struct("Streamed").field("sorted", &tables).finish_non_exhaustive()
    }
}

/// What `check` found: facts to show, and problems (each names what to fix).
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub facts: Vec<String>,
    pub problems: Vec<String>,
    /// Rows per table, for a source that was read in full to check it (files).
    pub rows: BTreeMap<String, usize>,
}

/// A source of CRM rows.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The source kind, as the config names it (`demo`, `files`, `bitrix24`, `amocrm`).
    fn id(&self) -> &'static str;

    /// The previous snapshot's tables an incremental pull builds on; none: every pull is
    /// full and no previous snapshot is read.
    fn builds_on(&self) -> &'static [Table] {
        &[]
    }

    /// Probes the source without writing anything.
    ///
    /// # Errors
    /// The source cannot be reached or refuses the credentials.
    async fn check(&self) -> Result<CheckReport, ConnectorError>;

    /// Pulls every table the source has; `previous` is the current snapshot when the
    /// connector `builds_on` it and one exists.
    ///
    /// # Errors
    /// See [`ConnectorError`]; nothing is stored by a failed pull.
    async fn pull(&self, previous: Option<Previous>, now: DateTime<Utc>, progress: ProgressHandle) -> Result<Pull, ConnectorError>;
}

/// The connector of a source, for a tenant in `timezone`, whose OAuth tokens (if any) live
/// in `tokens`.
pub fn connector_for(source: Source, timezone: Tz, tokens: TokenHome) -> Box<dyn Connector> {
    match source {
        Source::Demo { scale, seed, as_of } => Box::new(demo::DemoConnector { scale, seed, as_of, timezone }),
        Source::Files { path, exported_at } => Box::new(files::FilesConnector { path, exported_at, timezone }),
        Source::Bitrix24(config) => Box::new(bitrix24::Bitrix24Connector { config, timezone, tokens }),
        Source::AmoCrm(config) => Box::new(amocrm::AmoCrmConnector { config, tokens }),
    }
}
