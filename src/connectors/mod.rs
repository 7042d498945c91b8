//! Stage 1 of the pipeline: sources of CRM rows. Each connector turns its source into the
//! canonical tables of `model`; nothing here knows about snapshots, catalogs or servers.
//!
//! Every source meets one contract (`connector::Connector`: id, check, pull) and one factory
//! picks it (`connector_for`): the demo generator, the CSV/JSON-lines file importer, the
//! Bitrix24 client and the amoCRM/Kommo client (the two CRMs share the polite HTTP client
//! and the sync helpers).

pub mod amocrm;
pub mod bitrix24;
mod connector;
mod token_place;
pub mod demo;
pub mod files;
pub mod http;
pub mod progress;
pub mod sync;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use connector::{CheckReport, Connector, Pull, Streamed, connector_for};
pub use token_place::TokenHome;

use crate::model::Table;

/// A connector failure, naming the source and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Import(#[from] files::ImportError),
    #[error("the {what} task failed: {source}")]
    Task { what: &'static str, source: tokio::task::JoinError },
    #[error("the files folder {path} does not exist; set [tenants.source].path to the folder holding the exports")]
    MissingFolder { path: PathBuf },
    #[error(transparent)]
    Bitrix24(#[from] bitrix24::Bitrix24Error),
    #[error(transparent)]
    AmoCrm(#[from] amocrm::AmoCrmError),
}

/// Where a tenant's rows come from; [`connector_for`] gives its connector.
#[derive(Debug, Clone)]
pub enum Source {
    Demo { scale: f64, seed: u64, as_of: Option<DateTime<Utc>> },
    Files { path: PathBuf, exported_at: Option<DateTime<Utc>> },
    /// A Bitrix24 portal.
    Bitrix24(Box<salespulse_config::config::sources::bitrix24::Bitrix24Config>),
    /// An amoCRM/Kommo account.
    AmoCrm(Box<salespulse_config::config::sources::amocrm::AmoCrmConfig>),
}

/// Reads a tenant's `inputs` folder (sales plans, compensation, absences, feedback) and puts
/// its tables in place of what the source gave for them.
///
/// # Errors
/// The folder is missing or a file in it is bad.
pub fn merge_inputs(pull: &mut Pull, folder: &std::path::Path, timezone: Tz) -> Result<Vec<Table>, ConnectorError> {
    if !folder.is_dir() {
        return Err(ConnectorError::MissingFolder { path: folder.to_path_buf() });
    }
    let inputs = files::read_folder(folder, timezone, Table::is_input)?;
    let replaced: Vec<Table> = inputs.tables.keys().copied().collect();
    pull.dataset.tables.extend(inputs.tables);
    Ok(replaced)
}
