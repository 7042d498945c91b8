//! Reads what is stored: the current pointer, manifests, the list of snapshots, and a
//! check that a snapshot's Parquet files are intact and match the canonical schema.

use object_store::ObjectStoreExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;

use super::manifest::{FORMAT_VERSION, Manifest};
use super::{Result, SnapshotError, Store};
use crate::model::Table;

/// What [`Store::current_if_changed`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentCheck {
    /// The version seen before is still current.
    Unchanged,
    /// `CURRENT` now names `id` (`None`: no snapshot), at version `e_tag`.
    Changed { id: Option<String>, e_tag: Option<String> },
}

/// The files of a verified snapshot, per table, as the store describes them.
pub type VerifiedFiles = std::collections::BTreeMap<Table, Vec<object_store::ObjectMeta>>;

impl Store {
    /// The id `CURRENT` points at, or `None` when the tenant has no snapshot yet.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn current_id(&self, tenant: &str) -> Result<Option<String>> {
        let path = self.current_path(tenant);
        match self.object_store().get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
                let id = String::from_utf8_lossy(&bytes).trim().to_string();
                Ok((!id.is_empty()).then_some(id))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    /// `CURRENT` of `tenant` if it changed since the version `seen` (an e-tag from an
    /// earlier answer): one conditional read, which the store answers "not modified" without
    /// a body when nothing changed. This is what servers poll to follow other writers.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn current_if_changed(&self, tenant: &str, seen: Option<&str>) -> Result<CurrentCheck> {
        let path = self.current_path(tenant);
        let options = object_store::GetOptions { if_none_match: seen.map(str::to_string), ..Default::default() };
        match self.object_store().get_opts(&path, options).await {
            Ok(found) => {
                let e_tag = found.meta.e_tag.clone();
                let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
                let id = String::from_utf8_lossy(&bytes).trim().to_string();
                Ok(CurrentCheck::Changed { id: (!id.is_empty()).then_some(id), e_tag })
            }
            Err(object_store::Error::NotModified { .. }) => Ok(CurrentCheck::Unchanged),
            Err(object_store::Error::NotFound { .. }) => Ok(CurrentCheck::Changed { id: None, e_tag: None }),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    /// The manifest of the current snapshot.
    ///
    /// # Errors
    /// No `CURRENT`, a dangling one, or an unreadable manifest.
    pub async fn current_manifest(&self, tenant: &str) -> Result<Manifest> {
        let Some(id) = self.current_id(tenant).await? else {
            return Err(SnapshotError::NoCurrent { tenant: tenant.into(), path: self.current_path(tenant).to_string() });
        };
        if !self.has_manifest(tenant, &id).await? {
            return Err(SnapshotError::DanglingCurrent {
                tenant: tenant.into(),
                id,
                snapshots: self.snapshots_dir(tenant).to_string(),
            });
        }
        self.manifest(tenant, &id).await
    }

    /// Reads one snapshot's manifest.
    ///
    /// # Errors
    /// Missing, unreadable, or not a manifest this build understands.
    pub async fn manifest(&self, tenant: &str, id: &str) -> Result<Manifest> {
        let path = self.manifest_path(tenant, id);
        let read = |source| SnapshotError::Read { path: path.to_string(), source };
        let bytes = self.object_store().get(&path).await.map_err(read)?.bytes().await.map_err(read)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| SnapshotError::BadManifest { path: path.to_string(), reason: e.to_string() })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(SnapshotError::BadManifest {
                path: path.to_string(),
                reason: format!("format version {} is newer than this build reads ({FORMAT_VERSION}); upgrade salespulse", manifest.format_version),
            });
        }
        Ok(manifest)
    }

    /// Committed snapshots of a tenant, oldest first.
    ///
    /// # Errors
    /// The store cannot be listed or a manifest cannot be read.
    pub async fn list_snapshots(&self, tenant: &str) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for id in self.snapshot_ids(tenant).await? {
            if self.has_manifest(tenant, &id).await? {
                out.push(self.manifest(tenant, &id).await?);
            }
        }
        Ok(out)
    }

    /// Every snapshot folder name, committed or not, sorted (= by write time).
    pub(crate) async fn snapshot_ids(&self, tenant: &str) -> Result<Vec<String>> {
        let dir = self.snapshots_dir(tenant);
        let listing = self
            .object_store()
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| SnapshotError::Read { path: dir.to_string(), source })?;
        let mut ids: Vec<String> =
            listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        ids.sort();
        Ok(ids)
    }

    pub(crate) async fn has_manifest(&self, tenant: &str, id: &str) -> Result<bool> {
        let path = self.manifest_path(tenant, id);
        match self.object_store().head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
        }
    }

    /// Opens the footer of every file of a snapshot and checks it against the canonical
    /// schema, so a corrupt or foreign file is reported when the snapshot is loaded, with its
    /// path, rather than in the middle of a dashboard query.
    ///
    /// Returns each table's files as the store describes them (size, version), so the
    /// catalog registers exactly these files and never lists storage.
    ///
    /// # Errors
    /// The first file that is missing, unreadable or of the wrong schema.
    pub async fn verify(&self, manifest: &Manifest) -> Result<VerifiedFiles> {
        let mut verified = VerifiedFiles::new();
        for (name, entry) in &manifest.tables {
            let Some(table) = Table::from_name(name) else {
                return Err(SnapshotError::BadManifest {
                    path: self.manifest_path(&manifest.tenant, &manifest.snapshot_id).to_string(),
                    reason: format!("unknown table '{name}'"),
                });
            };
            for file in &entry.files {
                let path = self.file_path(&manifest.tenant, &manifest.snapshot_id, file);
                let meta = self
                    .object_store()
                    .head(&path)
                    .await
                    .map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
                let reader = object_store::buffered::BufReader::new(self.object_store(), &meta);
                let builder = ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(|e| SnapshotError::BadParquet { path: path.to_string(), reason: e.to_string() })?;
                let found = builder.schema();
                let expected = table.schema();
                for field in expected.fields() {
                    match found.field_with_name(field.name()) {
                        Ok(f) if f.data_type() == field.data_type() => {}
                        Ok(f) => {
                            return Err(SnapshotError::SchemaMismatch {
                                path: path.to_string(),
                                table: table.name(),
                                reason: format!("column {} is {} instead of {}", field.name(), f.data_type(), field.data_type()),
                            });
                        }
                        Err(_) => {
                            return Err(SnapshotError::SchemaMismatch {
                                path: path.to_string(),
                                table: table.name(),
                                reason: format!("column {} is missing", field.name()),
                            });
                        }
                    }
                }
                verified.entry(table).or_default().push(meta);
            }
        }
        Ok(verified)
    }

    /// Every row of one table of a snapshot, in the canonical schema (for an incremental
    /// pull that updates the previous snapshot's rows).
    ///
    /// # Errors
    /// A file is missing, unreadable or of another schema.
    pub async fn read_table(&self, manifest: &Manifest, table: Table) -> Result<Vec<arrow::array::RecordBatch>> {
        use futures::TryStreamExt;
        let Some(entry) = manifest.tables.get(table.name()) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for file in &entry.files {
            let path = self.file_path(&manifest.tenant, &manifest.snapshot_id, file);
            let bad = |reason: String| SnapshotError::BadParquet { path: path.to_string(), reason };
            let meta = self.object_store().head(&path).await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
            let reader = object_store::buffered::BufReader::new(self.object_store(), &meta);
            let stream = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| bad(e.to_string()))?.build().map_err(|e| bad(e.to_string()))?;
            let batches: Vec<arrow::array::RecordBatch> = stream.try_collect().await.map_err(|e| bad(e.to_string()))?;
            for batch in batches {
                // Same columns, canonical field metadata.
                let batch = arrow::array::RecordBatch::try_new(table.schema(), batch.columns().to_vec())
                    .map_err(|e| SnapshotError::SchemaMismatch { path: path.to_string(), table: table.name(), reason: e.to_string() })?;
                out.push(batch);
            }
        }
        Ok(out)
    }
}
