//! The memory a query may hold (`limits.query_memory`): each served session gets its own
//! DataFusion memory pool of that size and no spill files, so a query over the limit fails
//! with a message naming the limit while every other query goes on. A PostgreSQL
//! connection's session runs one query at a time, so its pool is that query's.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManager, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;

/// A fixed-size pool whose refusal says which limit was hit and what to do.
#[derive(Debug)]
pub(super) struct QueryMemoryPool {
    inner: GreedyMemoryPool,
    limit: usize,
}

impl std::fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryMemoryPool({} bytes)", self.limit)
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "salespulse query pool"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional).map_err(|_| {
            DataFusionError::ResourcesExhausted(format!(
                "the query needs more than {} of memory, the per-query limit (limits.query_memory), in {}; filter with WHERE, aggregate before joining, or add LIMIT",
                human_bytes(self.limit),
                reservation.consumer().name()
            ))
        })
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// `1 GiB`, `8 MiB`, `512 KiB`, `100 bytes`.
fn human_bytes(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value.fract() == 0.0 { format!("{value:.0} {unit}") } else { format!("{value:.1} {unit}") };
        }
    }
    format!("{bytes} bytes")
}

/// Memory the KPI build may hold before its sorts and aggregations spill to disk. The build
/// runs one view at a time; at scale 10 it peaked at 2.6 GB without a budget, and the
/// process now stays under 1 GB (BENCHMARKS.md, "Memory").
pub(super) const KPI_BUILD_MEMORY: usize = 384 << 20;

/// The KPI build's runtime: `shared`'s object stores and caches, a fair pool of
/// [`KPI_BUILD_MEMORY`] that spills to the OS temp folder.
pub(super) fn kpi_build_runtime(shared: &Arc<RuntimeEnv>) -> Arc<RuntimeEnv> {
    Arc::new(RuntimeEnv {
        memory_pool: Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(KPI_BUILD_MEMORY)),
        disk_manager: Arc::clone(&shared.disk_manager),
        cache_manager: Arc::clone(&shared.cache_manager),
        object_store_registry: Arc::clone(&shared.object_store_registry),
    })
}

/// Where the sessions of a catalog get their runtime: shared object stores and caches, and
/// a pool of its own per session when there is a limit.
#[derive(Debug)]
pub(super) struct QueryRuntimes {
    shared: Arc<RuntimeEnv>,
    limit: Option<usize>,
    no_spill: Arc<DiskManager>,
}

impl QueryRuntimes {
    pub(super) fn new(shared: Arc<RuntimeEnv>) -> QueryRuntimes {
        // Building a disabled disk manager touches no disk and cannot fail in practice; if it
        // did, the shared one (spilling to the OS temp folder) is the fallback.
        let no_spill = DiskManager::builder().with_mode(DiskManagerMode::Disabled).build().map(Arc::new).unwrap_or_else(|_| Arc::clone(&shared.disk_manager));
        QueryRuntimes { shared, limit: None, no_spill }
    }

    pub(super) fn with_limit(mut self, bytes: Option<usize>) -> QueryRuntimes {
        self.limit = bytes;
        self
    }

    pub(super) fn shared(&self) -> &Arc<RuntimeEnv> {
        &self.shared
    }

    /// The runtime of one new session.
    pub(super) fn for_session(&self) -> Arc<RuntimeEnv> {
        match self.limit {
            None => Arc::clone(&self.shared),
            Some(limit) => Arc::new(RuntimeEnv {
                memory_pool: Arc::new(QueryMemoryPool { inner: GreedyMemoryPool::new(limit), limit }),
                disk_manager: Arc::clone(&self.no_spill),
                cache_manager: Arc::clone(&self.shared.cache_manager),
                object_store_registry: Arc::clone(&self.shared.object_store_registry),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}
