//! Where a secret (a webhook URL, a token, an OAuth client secret) is read from when a
//! refresh needs it, and why reading it failed.

use std::path::PathBuf;

/// Where a secret (a webhook URL, a token) is read from when a refresh needs it; never
/// stored in snapshots or logged.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file itself (discouraged; the file must then be private).
    Inline { key: String, value: String },
    /// An environment variable.
    Env { key: String, name: String },
    /// A file holding the secret (Docker and Kubernetes secrets).
    File { key: String, path: PathBuf },
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SecretSource {
    /// Where the secret is configured, for messages: `tenants[0] (acme).source.webhook_url_env (ACME_HOOK)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Inline { key, .. } => key.clone(),
            Self::Env { key, name } => format!("{key} (environment variable {name})"),
            Self::File { key, path } => format!("{key} ({})", path.display()),
        }
    }

    /// The secret, trimmed.
    ///
    /// # Errors
    /// The variable is unset, the file unreadable or the secret empty ([`SecretError`]); the
    /// message names what to set.
    pub fn resolve(&self) -> Result<String, SecretError> {
        let value = match self {
            Self::Inline { value, .. } => value.clone(),
            Self::Env { name, .. } => std::env::var(name).map_err(|source| SecretError::EnvUnset { name: name.clone(), configured_at: self.describe(), source })?,
            Self::File { path, .. } => std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable { path: path.clone(), configured_at: self.describe(), source })?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(SecretError::Empty { configured_at: self.describe() });
        }
        Ok(value)
    }
}

/// Why [`SecretSource::resolve`] found no secret. Each message names where the secret is
/// configured ([`SecretSource::describe`]), so the user knows what to set.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or does not hold Unicode).
    #[error("the environment variable {name} is not set; set it ({configured_at})")]
    EnvUnset {
        name: String,
        configured_at: String,
        #[source]
        source: std::env::VarError,
    },
    /// The file cannot be read.
    #[error("cannot read {path}: {source} ({configured_at})")]
    Unreadable {
        path: PathBuf,
        configured_at: String,
        #[source]
        source: std::io::Error,
    },
    /// The secret is empty once trimmed.
    #[error("{configured_at} is empty")]
    Empty { configured_at: String },
}
