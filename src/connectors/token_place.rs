//! Where an OAuth app's tokens are kept between refreshes.
//!
//! - **A file** (the default, `[storage] oauth_tokens = "files"`): the tenant's configured
//!   token file on this machine, replaced atomically with each new pair.
//! - **The store** (`oauth_tokens = "store"`, for a fleet): one object per tenant,
//!   `<root>/<tenant>/oauth-tokens.json`, next to its snapshots, so that every refresher
//!   reads the pair the last one wrote. A refresh token is spent only under the tenant's
//!   refresh lease (`snapshot::Lease`), and the new pair is written before the new access
//!   token is used, so a single-use refresh token (amoCRM's) is never spent twice. Until
//!   the object exists, the configured token file is read as its first content (where
//!   `salespulse amocrm-auth` or the operator put the first pair).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};

/// Where a tenant's OAuth tokens live, as the refresh that builds its connector knows it.
#[derive(Debug, Clone, Default)]
pub enum TokenHome {
    /// The token files of the config.
    #[default]
    Files,
    /// The object at `path` in `store`.
    Store { store: Arc<dyn ObjectStore>, path: Path, display: String },
}

/// One app's tokens: where they are read from and written to.
#[derive(Debug, Clone)]
pub(crate) enum TokenPlace {
    File(PathBuf),
    Store { store: Arc<dyn ObjectStore>, path: Path, display: String, seed: PathBuf },
}

impl TokenPlace {
    /// The place of an app whose config names `file`, under `home`.
    pub(crate) fn of(home: &TokenHome, file: &std::path::Path) -> TokenPlace {
        match home {
            TokenHome::Files => TokenPlace::File(file.to_path_buf()),
            TokenHome::Store { store, path, display } => {
                TokenPlace::Store { store: Arc::clone(store), path: path.clone(), display: display.clone(), seed: file.to_path_buf() }
            }
        }
    }

    /// The text stored, or a message saying what could not be read.
    pub(crate) async fn read(&self) -> Result<String, String> {
        match self {
            TokenPlace::File(file) => std::fs::read_to_string(file).map_err(|e| format!("cannot read the token file {}: {e}", file.display())),
            TokenPlace::Store { store, path, display, seed } => match store.get(path).await {
                Ok(found) => {
                    let bytes = found.bytes().await.map_err(|e| format!("cannot read the tokens at {display}: {e}"))?;
                    Ok(String::from_utf8_lossy(&bytes).into_owned())
                }
                Err(object_store::Error::NotFound { .. }) => std::fs::read_to_string(seed)
                    .map_err(|e| format!("no tokens at {display} yet, and the token file {} that gives the first ones cannot be read: {e}", seed.display())),
                Err(e) => Err(format!("cannot read the tokens at {display}: {e}")),
            },
        }
    }

    /// Checks that a new pair can be stored, before the old refresh token is spent.
    pub(crate) fn check_writable(&self) -> std::io::Result<()> {
        match self {
            TokenPlace::File(file) => super::sync::check_replaceable(file),
            // The store's writes are checked by the snapshot written under the same lease.
            TokenPlace::Store { .. } => Ok(()),
        }
    }

    /// Replaces the stored pair with `bytes` (a crash leaves the old pair or the new one).
    pub(crate) async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            TokenPlace::File(file) => super::sync::replace_private_file(file, bytes),
            TokenPlace::Store { store, path, .. } => {
                store.put(path, PutPayload::from(bytes.to_vec())).await.map(|_| ()).map_err(std::io::Error::other)
            }
        }
    }
}

impl std::fmt::Display for TokenPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenPlace::File(file) => write!(f, "the token file {}", file.display()),
            TokenPlace::Store { display, .. } => write!(f, "the tokens at {display}"),
        }
    }
}
