//! Where snapshots live: an object store (a local folder by default; `s3://`, `gs://`,
//! `az://` roots configured from the usual `AWS_*`, `GOOGLE_*`, `AZURE_*` variables) and
//! the path scheme inside it.

use std::sync::Arc;

use object_store::{ObjectStore, local::LocalFileSystem, path::Path};
use url::Url;

use super::{Result, SnapshotError};

/// A storage root.
#[derive(Debug, Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    /// The URL DataFusion resolves table locations against, e.g. `file:///` or `s3://bucket/`.
    base_url: Url,
    /// The root's path inside the store.
    prefix: Path,
    /// The root as configured, for messages.
    display: String,
}

impl Store {
    /// Opens a storage root: an absolute local folder (created if missing) or an object-store
    /// URL.
    ///
    /// # Errors
    /// The folder cannot be created, or the URL's scheme or credentials are not usable.
    pub fn open(root: &str) -> Result<Store> {
        if root.contains("://") && !root.starts_with("file://") {
            let url = Url::parse(root).map_err(|e| SnapshotError::Root { root: root.into(), reason: e.to_string() })?;
            let options = std::env::vars().filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                k.starts_with("aws_") || k.starts_with("google_") || k.starts_with("azure_")
            }).map(|(k, v)| (k.to_ascii_lowercase(), v));
            let (store, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| SnapshotError::Root {
                root: root.into(),
                reason: format!("{e}; supported roots are a local folder, s3://, gs:// and az://"),
            })?;
            let mut base_url = url.clone();
            base_url.set_path("/");
            return Ok(Store { store: Arc::from(store), base_url, prefix, display: root.into() });
        }
        let folder = root.strip_prefix("file://").unwrap_or(root);
        let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.into());
        std::fs::create_dir_all(&folder).map_err(|source| SnapshotError::CreateRoot { path: folder.clone(), source })?;
        let folder = folder.canonicalize().unwrap_or(folder);
        let prefix = Path::from_filesystem_path(&folder)
            .map_err(|e| SnapshotError::Root { root: root.into(), reason: e.to_string() })?;
        let base_url = Url::parse("file:///").map_err(|e| SnapshotError::Root { root: root.into(), reason: e.to_string() })?;
        Ok(Store { store: Arc::new(LocalFileSystem::new()), base_url, prefix, display: folder.display().to_string() })
    }

    /// A store in memory, with conditional updates as S3's (for tests of what needs them).
    #[cfg(test)]
    pub(crate) fn in_memory() -> Store {
        let base_url = Url::parse("memory:///").unwrap_or_else(|_| unreachable!("a valid URL"));
        Store { store: Arc::new(object_store::memory::InMemory::new()), base_url, prefix: Path::from("root"), display: "memory".into() }
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The URL to register the object store under in DataFusion.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub(crate) fn tenant_dir(&self, tenant: &str) -> Path {
        self.prefix.clone().join(tenant)
    }

    pub(crate) fn current_path(&self, tenant: &str) -> Path {
        self.tenant_dir(tenant).join("CURRENT")
    }

    /// Where a tenant's OAuth tokens live with `storage.oauth_tokens = "store"`.
    pub fn oauth_tokens_path(&self, tenant: &str) -> Path {
        self.tenant_dir(tenant).join("oauth-tokens.json")
    }

    pub(crate) fn snapshots_dir(&self, tenant: &str) -> Path {
        self.tenant_dir(tenant).join("snapshots")
    }

    pub(crate) fn snapshot_dir(&self, tenant: &str, id: &str) -> Path {
        self.snapshots_dir(tenant).join(id)
    }

    pub(crate) fn manifest_path(&self, tenant: &str, id: &str) -> Path {
        self.snapshot_dir(tenant, id).join("manifest.json")
    }

    /// The marker written once a snapshot became current: when, on the store's clock.
    pub(crate) fn committed_marker(&self, tenant: &str, id: &str) -> Path {
        self.snapshot_dir(tenant, id).join("COMMITTED")
    }

    /// The path of a file named in a manifest (relative to its snapshot folder).
    pub(crate) fn file_path(&self, tenant: &str, id: &str, relative: &str) -> Path {
        relative.split('/').fold(self.snapshot_dir(tenant, id), |p, part| p.join(part))
    }

    /// The folder of a snapshot's materialised KPI tables for one settings fingerprint
    /// (`catalog::kpi`): derived data, rebuilt from the snapshot whenever it is missing.
    pub(crate) fn kpi_dir(&self, tenant: &str, id: &str, fingerprint: &str) -> Path {
        self.snapshot_dir(tenant, id).join("kpi").join(fingerprint)
    }

    /// The folder URL of one table of a snapshot, for a DataFusion listing table.
    pub fn table_url(&self, tenant: &str, id: &str, table: &str) -> String {
        let dir = self.snapshot_dir(tenant, id).join(table);
        format!("{}{}/", self.base_url, dir)
    }
}
