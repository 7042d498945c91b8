//! One refresh per tenant across every process on a store: the lease object
//! `<root>/<tenant>/LEASE`, taken with a conditional put, renewed while the refresh runs,
//! taken over by another process once it has expired (its refresher crashed), and deleted
//! when the refresh ends.
//!
//! On a store with conditional updates (S3, MinIO, R2, GCS, Azure) taking, renewing and
//! taking over are compare-and-swap writes: two processes never both hold a lease. A local
//! folder can create an object only if it is absent but cannot update one conditionally:
//! there a renewal re-reads the lease and overwrites it, and an expired lease is deleted and
//! created again, which guards one machine's processes (a cron `refresh` beside `serve`)
//! but not two that take over the same expired lease in the same instant.
//!
//! Expiry is the holder's wall-clock time written in the lease: the processes' clocks must
//! agree to well within the lease's length (NTP does).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, path::Path};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Result, SnapshotError, Store};

/// What the lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseBody {
    /// The replica name of the process holding it (`server.replica`).
    holder: String,
    /// A random value of this take: a holder that restarted does not own its old lease.
    token: String,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A held lease on one tenant's refreshes. Renewed in the background every third of its
/// length; [`Lease::lost`] fires when a renewal finds it taken or cannot renew it in time.
/// Dropping it stops the renewals (the lease then expires); [`Lease::release`] deletes it.
#[derive(Debug)]
pub struct Lease {
    inner: Arc<Held>,
    renewer: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Held {
    store: Store,
    tenant: String,
    path: Path,
    /// What we last wrote (a renewal changes it only once the write succeeded).
    body: Mutex<LeaseBody>,
    /// The version of our last write, for the next conditional update. Held across each
    /// renewal's write: the background renewal and [`Lease::confirm`] never send the same
    /// version at once (one would be refused as if the lease were taken).
    version: tokio::sync::Mutex<UpdateVersion>,
    /// Until when the lease is surely ours: the start of the last write that succeeded plus
    /// the lease's length, on this process's monotonic clock.
    valid_until: Mutex<tokio::time::Instant>,
    ttl: Duration,
    lost: CancellationToken,
}

impl Store {
    pub(crate) fn lease_path(&self, tenant: &str) -> Path {
        self.tenant_dir(tenant).join("LEASE")
    }

    /// Takes the refresh lease of `tenant` for `holder`, for `ttl`, renewed until dropped.
    ///
    /// # Errors
    /// [`SnapshotError::LeaseHeld`] when another process holds an unexpired lease; a storage
    /// failure otherwise.
    pub async fn acquire_lease(&self, tenant: &str, holder: &str, ttl: Duration) -> Result<Lease> {
        let path = self.lease_path(tenant);
        let store = self.object_store();
        // One token for every round: a write of ours that the store's client retried (its
        // answer lost) is recognised as ours, not as another holder's.
        let token = random_token();
        // A few rounds: each lost race re-reads what the winner wrote.
        for _ in 0..4 {
            let started = tokio::time::Instant::now();
            let now = Utc::now();
            let body = LeaseBody { holder: holder.to_string(), token: token.clone(), acquired_at: now, expires_at: expires(now, ttl) };
            let payload = to_payload(&body, &path)?;
            let mode = match store.get(&path).await {
                Err(object_store::Error::NotFound { .. }) => PutMode::Create,
                Err(source) => return Err(SnapshotError::Read { path: path.to_string(), source }),
                Ok(found) => {
                    let meta = found.meta.clone();
                    let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
                    // An unreadable lease is treated as expired: it protects nothing.
                    match serde_json::from_slice::<LeaseBody>(&bytes) {
                        Ok(existing) if existing.token == token => {
                            let version = UpdateVersion { e_tag: meta.e_tag, version: meta.version };
                            return Ok(self.held(tenant, holder, path, existing, version, started, ttl));
                        }
                        Ok(existing) if existing.expires_at > now => {
                            return Err(SnapshotError::LeaseHeld { tenant: tenant.into(), holder: existing.holder, until: existing.expires_at });
                        }
                        _ => {}
                    }
                    PutMode::Update(UpdateVersion { e_tag: meta.e_tag, version: meta.version })
                }
            };
            let written = match store.put_opts(&path, payload.clone(), PutOptions { mode: mode.clone(), ..Default::default() }).await {
                Ok(put) => put,
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => continue,
                // A local folder: delete the expired lease, then create ours if still absent.
                Err(object_store::Error::NotImplemented { .. }) if matches!(mode, PutMode::Update(_)) => {
                    match store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(source) => return Err(SnapshotError::Write { path: path.to_string(), source }),
                    }
                    match store.put_opts(&path, payload, PutOptions { mode: PutMode::Create, ..Default::default() }).await {
                        Ok(put) => put,
                        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => continue,
                        Err(source) => return Err(SnapshotError::Write { path: path.to_string(), source }),
                    }
                }
                Err(source) => return Err(SnapshotError::Write { path: path.to_string(), source }),
            };
            let version = UpdateVersion { e_tag: written.e_tag, version: written.version };
            return Ok(self.held(tenant, holder, path.clone(), body, version, started, ttl));
        }
        Err(SnapshotError::LeaseContended { tenant: tenant.into() })
    }

    /// A lease just written (the write started at `started`), renewed from now on.
    #[allow(clippy::too_many_arguments)]
    fn held(&self, tenant: &str, holder: &str, path: Path, body: LeaseBody, version: UpdateVersion, started: tokio::time::Instant, ttl: Duration) -> Lease {
        let held = Arc::new(Held {
            store: self.clone(),
            tenant: tenant.to_string(),
            path,
            body: Mutex::new(body),
            version: tokio::sync::Mutex::new(version),
            valid_until: Mutex::new(started + ttl),
            ttl,
            lost: CancellationToken::new(),
        });
        let renewer = tokio::spawn(renew_until_lost(Arc::clone(&held)));
        tracing::debug!(tenant, holder, "refresh lease taken");
        Lease { inner: held, renewer }
    }

    /// Who holds the refresh lease of `tenant` and until when, if anyone does now.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn lease_holder(&self, tenant: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        let path = self.lease_path(tenant);
        match self.object_store().get(&path).await {
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(SnapshotError::Read { path: path.to_string(), source }),
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: path.to_string(), source })?;
                Ok(serde_json::from_slice::<LeaseBody>(&bytes).ok().filter(|b| b.expires_at > Utc::now()).map(|b| (b.holder, b.expires_at)))
            }
        }
    }
}

impl Lease {
    /// Fires when the lease is lost: taken by another process, or not renewed in time.
    pub fn lost(&self) -> CancellationToken {
        self.inner.lost.clone()
    }

    /// Renews the lease now and confirms it is still ours: the last check before a
    /// snapshot is committed.
    ///
    /// # Errors
    /// [`SnapshotError::LeaseLost`] when it is not ours any more.
    pub async fn confirm(&self) -> Result<()> {
        if self.inner.lost.is_cancelled() {
            return Err(self.inner.lost_error("it expired or was taken over while the refresh ran"));
        }
        self.inner.renew().await?;
        // Renewed now: it stays ours for at least two thirds of its length, far longer than
        // the commit that follows.
        Ok(())
    }

    /// Stops renewing and deletes the lease if it is still ours, so the next refresh of the
    /// tenant anywhere can start at once.
    pub async fn release(self) {
        self.renewer.abort();
        let held = &self.inner;
        let ours = {
            let token = held.body.lock().map(|b| b.token.clone()).unwrap_or_default();
            match held.store.object_store().get(&held.path).await {
                Ok(found) => match found.bytes().await {
                    Ok(bytes) => serde_json::from_slice::<LeaseBody>(&bytes).is_ok_and(|b| b.token == token),
                    Err(e) => {
                        tracing::warn!(tenant = %held.tenant, "releasing the refresh lease: {e}; it expires by itself");
                        false
                    }
                },
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => {
                    tracing::warn!(tenant = %held.tenant, "releasing the refresh lease: {e}; it expires by itself");
                    false
                }
            }
        };
        if ours && let Err(e) = held.store.object_store().delete(&held.path).await {
            tracing::warn!(tenant = %held.tenant, "releasing the refresh lease: {e}; it expires by itself");
        }
        // A local folder keeps directories: a refresh that wrote nothing leaves none behind
        // (`remove_dir` removes only an empty one).
        if held.store.base_url().scheme() == "file" {
            let _ = std::fs::remove_dir(format!("/{}", held.store.tenant_dir(&held.tenant)));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Held {
    fn lost_error(&self, reason: &str) -> SnapshotError {
        SnapshotError::LeaseLost { tenant: self.tenant.clone(), reason: reason.to_string() }
    }

    /// Extends the lease by its length with a conditional update of our last version. The
    /// lease's state changes only once the write succeeded.
    async fn renew(&self) -> Result<()> {
        let mut version = self.version.lock().await;
        let started = tokio::time::Instant::now();
        let now = Utc::now();
        let body = {
            let mut body = self.body.lock().map_err(|_| self.lost_error("its state was poisoned"))?.clone();
            body.expires_at = expires(now, self.ttl);
            body
        };
        let payload = to_payload(&body, &self.path)?;
        let store = self.store.object_store();
        let put = store.put_opts(&self.path, payload.clone(), PutOptions { mode: PutMode::Update(version.clone()), ..Default::default() }).await;
        let written = match put {
            Ok(put) => UpdateVersion { e_tag: put.e_tag, version: put.version },
            // Refused: taken over, or our own write whose answer was lost and that the
            // store's client sent again. The lease says which.
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => match self.read_if_ours(&body).await? {
                Some(ours) => ours,
                None => {
                    self.lost.cancel();
                    return Err(self.lost_error("another process took it over"));
                }
            },
            // A local folder: check it is still ours, then overwrite.
            Err(object_store::Error::NotImplemented { .. }) => {
                let token = self.body.lock().map(|b| b.token.clone()).unwrap_or_default();
                let still_ours = match store.get(&self.path).await {
                    Ok(found) => {
                        let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: self.path.to_string(), source })?;
                        serde_json::from_slice::<LeaseBody>(&bytes).is_ok_and(|b| b.token == token)
                    }
                    Err(object_store::Error::NotFound { .. }) => false,
                    Err(source) => return Err(SnapshotError::Read { path: self.path.to_string(), source }),
                };
                if !still_ours {
                    self.lost.cancel();
                    return Err(self.lost_error("another process took it over"));
                }
                let put = store
                    .put_opts(&self.path, payload, PutOptions { mode: PutMode::Overwrite, ..Default::default() })
                    .await
                    .map_err(|source| SnapshotError::Write { path: self.path.to_string(), source })?;
                UpdateVersion { e_tag: put.e_tag, version: put.version }
            }
            Err(source) => return Err(SnapshotError::Write { path: self.path.to_string(), source }),
        };
        *version = written;
        if let Ok(mut b) = self.body.lock() {
            *b = body;
        }
        if let Ok(mut until) = self.valid_until.lock() {
            *until = started + self.ttl;
        }
        Ok(())
    }

    /// The version of the stored lease when it is exactly `body` (ours, as just written).
    async fn read_if_ours(&self, body: &LeaseBody) -> Result<Option<UpdateVersion>> {
        match self.store.object_store().get(&self.path).await {
            Ok(found) => {
                let meta = found.meta.clone();
                let bytes = found.bytes().await.map_err(|source| SnapshotError::Read { path: self.path.to_string(), source })?;
                let stored = serde_json::from_slice::<LeaseBody>(&bytes).ok();
                let ours = stored.is_some_and(|b| b.token == body.token && b.expires_at == body.expires_at);
                Ok(ours.then_some(UpdateVersion { e_tag: meta.e_tag, version: meta.version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(SnapshotError::Read { path: self.path.to_string(), source }),
        }
    }

    /// When the lease may run out: its last successful renewal's reach, less a margin for
    /// clocks and the store's own delay.
    fn deadline(&self) -> tokio::time::Instant {
        let margin = self.ttl / 6;
        self.valid_until.lock().map(|until| *until - margin).unwrap_or_else(|_| tokio::time::Instant::now())
    }
}

/// Renews every third of the lease's length. No renewal, nor the wait for one, reaches past
/// the moment the lease may run out (its last successful renewal's reach, less a margin for
/// clocks and the store's delay): then the lease is lost, and the refresh stops before
/// another process, which may take it over from then on, could pull the same CRM.
async fn renew_until_lost(held: Arc<Held>) {
    let every = held.ttl / 3;
    loop {
        let next = (tokio::time::Instant::now() + every).min(held.deadline());
        tokio::time::sleep_until(next).await;
        if tokio::time::Instant::now() >= held.deadline() {
            tracing::warn!(tenant = %held.tenant, "the refresh lease could not be renewed before it runs out; this refresh stops");
            held.lost.cancel();
            return;
        }
        match tokio::time::timeout_at(held.deadline(), held.renew()).await {
            Ok(Ok(())) => {}
            Ok(Err(SnapshotError::LeaseLost { .. })) => {
                tracing::warn!(tenant = %held.tenant, "the refresh lease was taken over by another process; this refresh stops");
                return;
            }
            Ok(Err(e)) => tracing::warn!(tenant = %held.tenant, "renewing the refresh lease: {e}"),
            Err(_) => tracing::warn!(tenant = %held.tenant, "renewing the refresh lease: the store did not answer in time"),
        }
    }
}

fn expires(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::seconds(60))
}

fn to_payload(body: &LeaseBody, path: &Path) -> Result<PutPayload> {
    serde_json::to_vec(body).map(PutPayload::from).map_err(|e| SnapshotError::BadManifest { path: path.to_string(), reason: e.to_string() })
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().to_string_lossy()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_held_lease_refuses_a_second_holder_until_released() {
        let (_dir, store) = store();
        let lease = store.acquire_lease("acme", "refresher-1", Duration::from_secs(30)).await.unwrap();
        match store.acquire_lease("acme", "refresher-2", Duration::from_secs(30)).await {
            Err(SnapshotError::LeaseHeld { holder, .. }) => assert_eq!(holder, "refresher-1"),
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
        assert_eq!(store.lease_holder("acme").await.unwrap().map(|h| h.0).as_deref(), Some("refresher-1"));
        lease.confirm().await.unwrap();
        lease.release().await;
        assert!(store.lease_holder("acme").await.unwrap().is_none());
        store.acquire_lease("acme", "refresher-2", Duration::from_secs(30)).await.unwrap().release().await;
    }

    /// On a store with conditional updates (as S3): the background renewals and a
    /// confirmation never race each other into a refusal, and a takeover is a
    /// compare-and-swap that the old holder's next renewal finds.
    #[tokio::test]
    async fn with_conditional_updates_renewals_do_not_collide_and_a_takeover_is_seen() {
        let store = Store::in_memory();
        let lease = store.acquire_lease("acme", "refresher-1", Duration::from_secs(3)).await.unwrap();
        for _ in 0..20 {
            lease.confirm().await.unwrap();
            tokio::time::sleep(Duration::from_millis(75)).await;
        }
        assert!(!lease.lost().is_cancelled());
        match store.acquire_lease("acme", "refresher-2", Duration::from_secs(3)).await {
            Err(SnapshotError::LeaseHeld { holder, .. }) => assert_eq!(holder, "refresher-1"),
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
        // The holder stops renewing (as if killed); its lease runs out and is taken over.
        lease.renewer.abort();
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let taken = store.acquire_lease("acme", "refresher-2", Duration::from_secs(3)).await.unwrap();
        assert!(matches!(lease.confirm().await, Err(SnapshotError::LeaseLost { .. })));
        assert!(lease.lost().is_cancelled());
        taken.confirm().await.unwrap();
        taken.release().await;
        assert!(store.lease_holder("acme").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_old_holder_finds_it_lost() {
        let (_dir, store) = store();
        let crashed = store.acquire_lease("acme", "refresher-1", Duration::from_secs(3)).await.unwrap();
        // The holder stops renewing (as if killed); its lease runs out.
        crashed.renewer.abort();
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let taken = store.acquire_lease("acme", "refresher-2", Duration::from_secs(30)).await.unwrap();
        let err = crashed.confirm().await.unwrap_err();
        assert!(matches!(err, SnapshotError::LeaseLost { .. }), "{err}");
        assert!(crashed.lost().is_cancelled());
        // The old holder's release leaves the new holder's lease alone.
        crashed.release().await;
        assert_eq!(store.lease_holder("acme").await.unwrap().map(|h| h.0).as_deref(), Some("refresher-2"));
        taken.release().await;
    }
}
