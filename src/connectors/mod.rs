//! Stage 1 of the pipeline: sources of CRM rows. Each connector turns its source into the
//! canonical tables of `model`; nothing here knows about snapshots, catalogs or servers.
//!
//! The demo generator, the CSV/JSON-lines file importer and the Bitrix24 client (with the
//! polite HTTP client CRM connectors share) and the amoCRM/Kommo client.

pub mod amocrm;
pub mod bitrix24;
pub mod demo;
pub mod files;
pub mod http;
pub mod progress;
pub mod sync;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::model::{Dataset, Table};

/// A connector failure, naming the source and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Import(#[from] files::ImportError),
    /// A CRM connector is pulled by `refresh::refresh_tenant` (it is async), not here.
    #[error("source kind '{kind}' is pulled by refresh_tenant")]
    NotAvailable { kind: &'static str },
    #[error("the files folder {path} does not exist; set [tenants.source].path to the folder holding the exports")]
    MissingFolder { path: PathBuf },
    #[error(transparent)]
    Bitrix24(#[from] bitrix24::Bitrix24Error),
    #[error(transparent)]
    AmoCrm(#[from] amocrm::AmoCrmError),
}

/// Where a tenant's rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    Demo { scale: f64, seed: u64, as_of: Option<DateTime<Utc>> },
    Files { path: PathBuf, exported_at: Option<DateTime<Utc>> },
    /// A Bitrix24 portal (async: see `refresh`).
    Bitrix24(Box<bitrix24::Bitrix24Config>),
    /// An amoCRM/Kommo account (async: see `refresh`).
    AmoCrm(Box<amocrm::AmoCrmConfig>),
}

/// One pull: the rows, the instant they describe, and a label for the manifest.
#[derive(Debug)]
pub struct Pull {
    pub dataset: Dataset,
    pub taken_at: DateTime<Utc>,
    pub source_label: String,
    /// Connector positions for the next incremental pull, kept in the manifest.
    pub cursors: std::collections::BTreeMap<String, String>,
}

impl Source {
    /// Pulls every table the source has. Blocking CPU and file work: call from a blocking
    /// thread in async code.
    ///
    /// # Errors
    /// See [`ConnectorError`].
    pub fn pull(&self, timezone: Tz) -> Result<Pull, ConnectorError> {
        match self {
            Source::Demo { scale, seed, as_of } => {
                let as_of = as_of.unwrap_or_else(Utc::now);
                let params = demo::DemoParams { scale: *scale, seed: *seed, as_of, timezone };
                Ok(Pull { dataset: demo::generate(&params), taken_at: as_of, source_label: format!("demo (seed {seed}, scale {scale})"), cursors: Default::default() })
            }
            Source::Files { path, exported_at } => {
                if !path.is_dir() {
                    return Err(ConnectorError::MissingFolder { path: path.clone() });
                }
                let dataset = files::read_folder(path, timezone, |_| true)?;
                Ok(Pull {
                    dataset,
                    taken_at: exported_at.unwrap_or_else(Utc::now),
                    source_label: format!("files: {}", path.display()),
                    cursors: Default::default(),
                })
            }
            // Network connectors are async and pulled by `refresh::refresh_tenant`.
            Source::Bitrix24(_) => Err(ConnectorError::NotAvailable { kind: "bitrix24" }),
            Source::AmoCrm(_) => Err(ConnectorError::NotAvailable { kind: "amocrm" }),
        }
    }
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
