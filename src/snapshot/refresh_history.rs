//! Every process's refresh attempts of a tenant, kept in the store beside its snapshots
//! (`<root>/<tenant>/refreshes/<finished at>-<replica>.json`, one small object per attempt),
//! so `system.refreshes` shows the fleet's refreshes and cron `salespulse refresh` runs,
//! across restarts. Bounded: a write deletes the oldest beyond the number kept. The objects'
//! content is the history module's business; here they are bytes.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload, path::Path};

use super::{Result, SnapshotError, Store};

/// Reads of one listing at once.
const READS_AT_ONCE: usize = 16;

impl Store {
    fn refreshes_dir(&self, tenant: &str) -> Path {
        self.tenant_dir(tenant).join("refreshes")
    }

    /// Stores one attempt of `tenant` made by `replica`, then deletes the oldest attempts
    /// beyond `keep`.
    ///
    /// # Errors
    /// The store cannot be written or listed.
    pub async fn append_refresh(&self, tenant: &str, finished_at: DateTime<Utc>, replica: &str, json: Vec<u8>, keep: usize) -> Result<()> {
        let dir = self.refreshes_dir(tenant);
        let name = format!("{}-{replica}.json", finished_at.format("%Y%m%dT%H%M%S%6fZ"));
        let path = dir.clone().join(name);
        self.object_store().put(&path, PutPayload::from(json)).await.map_err(|source| SnapshotError::Write { path: path.to_string(), source })?;
        let names = self.refresh_objects(&dir).await?;
        if names.len() > keep {
            let excess = names.len() - keep;
            let oldest: Vec<Path> = names.into_iter().take(excess).collect();
            let old = futures::stream::iter(oldest.into_iter().map(Ok)).boxed();
            self.object_store()
                .delete_stream(old)
                .try_collect::<Vec<_>>()
                .await
                .map_err(|source| SnapshotError::Write { path: dir.to_string(), source })?;
        }
        Ok(())
    }

    /// The names of `tenant`'s stored attempts, oldest first. Objects are never rewritten:
    /// a name read once can be kept.
    ///
    /// # Errors
    /// The store cannot be listed.
    pub async fn refresh_names(&self, tenant: &str) -> Result<Vec<String>> {
        let dir = self.refreshes_dir(tenant);
        Ok(self.refresh_objects(&dir).await?.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// The stored attempts named `names` (from [`Store::refresh_names`]), in that order.
    ///
    /// # Errors
    /// An object cannot be read.
    pub async fn read_refreshes(&self, tenant: &str, names: &[String]) -> Result<Vec<Vec<u8>>> {
        let dir = self.refreshes_dir(tenant);
        let store = self.object_store();
        let paths: Vec<Path> = names.iter().map(|name| dir.clone().join(name.as_str())).collect();
        futures::stream::iter(paths)
            .map(|path| {
                let store = std::sync::Arc::clone(&store);
                async move {
                    let read = |source| SnapshotError::Read { path: path.to_string(), source };
                    let bytes = store.get(&path).await.map_err(read)?.bytes().await.map_err(read)?;
                    Ok(bytes.to_vec())
                }
            })
            .buffered(READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// The attempt objects of a folder, oldest first (their names start with the time).
    async fn refresh_objects(&self, dir: &Path) -> Result<Vec<Path>> {
        let mut names: Vec<Path> = self
            .object_store()
            .list(Some(dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|source| SnapshotError::Read { path: dir.to_string(), source })?;
        names.sort();
        Ok(names)
    }
}
