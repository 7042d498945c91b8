//! What a write removes: leftovers of failed writes, and old snapshots beyond
//! `keep_snapshots` once no server can still be reading them.
//!
//! A server reads a snapshot until it notices that `CURRENT` moved (its follow interval) and
//! its queries on the old one finish (the query timeout). So a snapshot is deleted only when
//! it is beyond the newest `keep_snapshots`, is not current, and was replaced at least the
//! grace period ago (`storage.retention_grace_seconds`, which the config requires to exceed
//! both together). The moment it was replaced is when the next snapshot became current (its
//! `COMMITTED` marker, on the store's clock, as is "now": the marker of the commit that runs
//! retention); a snapshot whose commit never happened replaced nothing.

use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::{Result, SnapshotError, Store};

impl Store {
    /// Removes snapshot folders that have no manifest: writes that died before committing.
    /// Only the holder of the tenant's lease may call it (another process's write in progress
    /// has no manifest yet either).
    pub(super) async fn remove_leftovers(&self, tenant: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for id in self.snapshot_ids(tenant).await? {
            if !self.has_manifest(tenant, &id).await? {
                self.delete_snapshot(tenant, &id).await?;
                removed.push(id);
            }
        }
        Ok(removed)
    }

    /// Deletes the committed snapshots beyond the newest `keep`, except the current one and
    /// those replaced less than `grace` ago; returns the ids deleted. Called right after a
    /// commit, whose `COMMITTED` marker gives "now" on the store's clock.
    pub(super) async fn apply_retention(&self, tenant: &str, keep: usize, grace: Duration) -> Result<Vec<String>> {
        let current = self.current_id(tenant).await?;
        // Every snapshot with a manifest, oldest first, and when it became current (its
        // marker; none for one that never did, or one written before markers existed).
        let mut committed = Vec::new();
        for id in self.snapshot_ids(tenant).await? {
            if self.manifest_meta(tenant, &id).await?.is_some() {
                let became_current = self.object_meta(&self.committed_marker(tenant, &id)).await?.map(|m| m.last_modified);
                committed.push((id, became_current));
            }
        }
        let now = committed.iter().filter_map(|(_, at)| *at).max().unwrap_or_else(Utc::now);
        let excess = committed.len().saturating_sub(keep);
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut expired = Vec::new();
        for (i, (id, _)) in committed.iter().enumerate().take(excess) {
            // Never the current one, nor one newer than it (a write that stopped between its
            // manifest and CURRENT; kept for an operator to look at or point CURRENT to).
            if current.as_ref().is_none_or(|c| id >= c) {
                continue;
            }
            // It was replaced when the next snapshot that became current did: one that never
            // became current replaced nothing.
            let Some(replaced_at) = committed[i + 1..].iter().find_map(|(_, at)| *at) else { continue };
            if now - replaced_at < grace {
                tracing::debug!(tenant, snapshot = %id, "kept past keep_snapshots: replaced less than the grace period ago");
                continue;
            }
            self.delete_snapshot(tenant, id).await?;
            expired.push(id.clone());
        }
        Ok(expired)
    }

    async fn object_meta(&self, path: &object_store::path::Path) -> Result<Option<object_store::ObjectMeta>> {
        match self.object_store().head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    /// The store's description of a snapshot's manifest, `None` when it has none.
    async fn manifest_meta(&self, tenant: &str, id: &str) -> Result<Option<object_store::ObjectMeta>> {
        let path = self.manifest_path(tenant, id);
        match self.object_store().head(&path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    async fn delete_snapshot(&self, tenant: &str, id: &str) -> Result<()> {
        let dir = self.snapshot_dir(tenant, id);
        let store = self.object_store();
        let locations = store.list(Some(&dir)).map_ok(|m| m.location).boxed();
        store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|source| SnapshotError::Write { path: dir.to_string(), source })?;
        // Local folders keep empty directories; remove them so the layout stays clean.
        if self.base_url().scheme() == "file" {
            let folder = std::path::PathBuf::from(format!("/{dir}"));
            let _ = std::fs::remove_dir_all(folder);
        }
        Ok(())
    }
}
