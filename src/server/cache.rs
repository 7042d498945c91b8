//! The result cache: dashboards re-run the same queries every few seconds, so a finished
//! result is kept and sent again without executing the query. One cache serves both
//! protocols: Flight SQL ([`crate::server::flight_sql`]) and PostgreSQL
//! ([`crate::server::postgres`], whose `result_cache` module says what its key adds).
//!
//! - **Key.** The normalized SQL (whitespace collapsed), the bound parameters and the output
//!   profile (which names the protocol, so Flight SQL and PostgreSQL results never mix). It
//!   also holds the user's tenant list and the snapshot id of **every** tenant that user may
//!   read, as they were *before* the query was planned. A refresh changes the snapshot id,
//!   so a result of an older snapshot can never match again. The ids are read before
//!   planning, so a result planned on a newer snapshot can at worst be stored under an older
//!   key, which is never asked for again.
//! - **Bounded in bytes** (moka, weighed by the batches' memory). A result larger than an
//!   eighth of the cache is sent and not kept. What is kept are Arrow batches: each protocol
//!   encodes them per request.
//! - **Kept only when read to the end** ([`Recorder`]): a result that failed, was stopped by
//!   a limit (rows, bytes, time), or that the client did not read to its end is not kept.
//! - **Left out:** queries whose answer changes without a new snapshot (`system.*`,
//!   `information_schema`, `pg_catalog`, the clock, random numbers), judged on the text
//!   first ([`ResultCache::key`]) and on the planned query after ([`plan_is_cacheable_in`]).
//! - **Off** with `result_cache = "0"`: no key is made, for either protocol.
//!
//! Hits and misses go to `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// A cached result.
#[derive(Debug, Clone)]
pub struct CachedResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl CachedResult {
    fn bytes(&self) -> usize {
        self.batches.iter().map(crate::server::execution::result_bytes).sum()
    }

    /// The number of rows of the result.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Hits, misses and what was left out.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Queries that are never cached (see the module docs).
    pub uncacheable: AtomicU64,
}

/// Finished results by key, bounded in bytes.
pub struct ResultCache {
    entries: moka::sync::Cache<String, Arc<CachedResult>>,
    max_entry_bytes: usize,
    stats: CacheStats,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache").field("entries", &self.entries.entry_count()).field("stats", &self.stats).finish()
    }
}

/// What the key of a query is made of.
#[derive(Debug)]
pub struct CacheKey<'a> {
    pub sql: &'a str,
    /// The bound parameters, as text.
    pub parameters: &'a str,
    pub profile: &'a str,
    /// The user's tenants (`None`: all).
    pub tenants: Option<&'a [String]>,
    /// (tenant, snapshot id) of every tenant the user may read, read before planning.
    pub snapshots: &'a [(String, Option<String>)],
}

impl ResultCache {
    /// A cache of up to `capacity_bytes`; 0 turns it off.
    pub fn new(capacity_bytes: u64) -> ResultCache {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_key: &String, value: &Arc<CachedResult>| u32::try_from(value.bytes()).unwrap_or(u32::MAX))
            .build();
        ResultCache { entries, max_entry_bytes: usize::try_from(capacity_bytes / 8).unwrap_or(usize::MAX), stats: CacheStats::default() }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The key of a query, or `None` when its answer may change without a new snapshot (or
    /// the cache is off).
    pub fn key(&self, k: &CacheKey<'_>) -> Option<String> {
        if self.max_entry_bytes == 0 {
            return None;
        }
        let sql = normalize(k.sql);
        // Quoted names are the same names: `"system".queries` is `system.queries`.
        let lower = sql.to_lowercase().replace('"', "");
        const VOLATILE: &[&str] = &[
            "system.", "information_schema", "pg_catalog", "now(", "current_date", "current_time", "localtime", "today(", "random(", "uuid(", "pg_", "version(",
        ];
        if VOLATILE.iter().any(|v| lower.contains(v)) {
            self.stats.uncacheable.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let snapshots: Vec<String> = k.snapshots.iter().map(|(t, s)| format!("{t}={}", s.as_deref().unwrap_or("-"))).collect();
        let tenants = k.tenants.map_or_else(|| "*".to_string(), |t| t.join(","));
        Some(format!("{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}", snapshots.join(","), tenants, k.profile, k.parameters, sql))
    }

    /// The result under `key`, counting the hit or miss.
    pub fn get(&self, key: &str) -> Option<Arc<CachedResult>> {
        let found = self.entries.get(key);
        let counter = if found.is_some() { &self.stats.hits } else { &self.stats.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps a finished result, unless it is too large to be worth its room.
    pub fn insert(&self, key: String, result: CachedResult) {
        if result.bytes() <= self.max_entry_bytes {
            self.entries.insert(key, Arc::new(result));
        }
    }

    /// Whether a result of `bytes` so far may still be kept.
    pub fn fits(&self, bytes: usize) -> bool {
        bytes <= self.max_entry_bytes
    }
}

/// Collects a result while it streams to the client, and keeps it once the client has read
/// it all without an error (and while it fits).
#[derive(Debug)]
pub struct Recorder {
    cache: Arc<ResultCache>,
    key: Option<String>,
    schema: SchemaRef,
    kept: std::sync::Mutex<Option<(usize, Vec<RecordBatch>)>>,
    failed: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// A recorder for the result of `key` (`None`: nothing is kept, errors are still seen).
    pub fn new(cache: Arc<ResultCache>, key: Option<String>, schema: SchemaRef) -> Recorder {
        let kept = std::sync::Mutex::new(key.is_some().then(|| (0, Vec::new())));
        Recorder { cache, key, schema, kept, failed: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Sees one batch, or an error (`None`); returns true for the first error.
    pub fn record(&self, batch: Option<&RecordBatch>) -> bool {
        if let Ok(mut kept) = self.kept.lock() {
            match (batch, kept.as_mut()) {
                (Some(batch), Some((bytes, list))) => {
                    // A kept batch of the engine's string views would pin whole Parquet
                    // pages: keep a compact copy.
                    let batch = compact_views(batch);
                    *bytes += crate::server::execution::result_bytes(&batch);
                    list.push(batch);
                    if !self.cache.fits(*bytes) {
                        *kept = None;
                    }
                }
                (None, _) => *kept = None,
                (Some(_), None) => {}
            }
        }
        batch.is_none() && !self.failed.swap(true, Ordering::Relaxed)
    }

    /// The stream ended: keeps the result unless it failed or outgrew the cache; returns
    /// whether the query succeeded.
    pub fn finish(&self) -> bool {
        let kept = self.kept.lock().ok().and_then(|mut k| k.take());
        if self.failed.load(Ordering::Relaxed) {
            return false;
        }
        if let (Some(key), Some((_, batches))) = (self.key.clone(), kept) {
            self.cache.insert(key, CachedResult { schema: Arc::clone(&self.schema), batches });
        }
        true
    }
}

/// The SQL with runs of whitespace collapsed and a trailing `;` dropped. Text in quotes is
/// left as it is.
fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut space = false;
    for c in sql.trim().trim_end_matches(';').trim_end().chars() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => space = true,
            None => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Whether a planned query's result depends only on the snapshots and the SQL: it reads no
/// `system`, `information_schema` or `pg_catalog` table (their rows depend on the user and
/// the moment) and calls no volatile function. A table named without a schema is judged
/// in `crm`, where Flight SQL sessions resolve such names.
pub fn plan_is_cacheable(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    plan_is_cacheable_in(plan, "crm")
}

/// [`plan_is_cacheable`] for a session whose names without a schema resolve in
/// `default_schema`: a PostgreSQL connection's `search_path` may make that `system` or
/// `information_schema`, and `FROM queries` then reads `system.queries`.
pub fn plan_is_cacheable_in(plan: &datafusion::logical_expr::LogicalPlan, default_schema: &str) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut cacheable = true;
    let visited = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && is_live_schema(scan.table_name.schema().unwrap_or(default_schema))
        {
            cacheable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        if node.expressions().iter().any(datafusion::logical_expr::Expr::is_volatile) {
            cacheable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    visited.is_ok() && cacheable
}

/// A schema whose tables answer what is true now, for whoever asks, not what a snapshot holds.
fn is_live_schema(schema: &str) -> bool {
    matches!(schema.to_ascii_lowercase().as_str(), "system" | "information_schema" | "pg_catalog")
}

/// `batch` with its `Utf8View` columns copied into buffers of their own (`gc`), so it holds
/// only its strings; other batches are returned as they are (a cheap clone).
fn compact_views(batch: &RecordBatch) -> RecordBatch {
    use arrow::array::AsArray;
    if !batch.columns().iter().any(|c| c.as_string_view_opt().is_some()) {
        return batch.clone();
    }
    let columns: Vec<arrow::array::ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            Some(views) => Arc::new(views.gc()) as arrow::array::ArrayRef,
            None => Arc::clone(c),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).unwrap_or_else(|_| batch.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(sql: &'a str, snapshots: &'a [(String, Option<String>)]) -> CacheKey<'a> {
        CacheKey { sql, parameters: "", profile: "standard", tenants: None, snapshots }
    }

    #[test]
    fn keys_ignore_layout_but_not_quoted_text_snapshots_or_rights() {
        let cache = ResultCache::new(1 << 20);
        let s1 = [("acme".to_string(), Some("s1".to_string()))];
        let s2 = [("acme".to_string(), Some("s2".to_string()))];
        let a = cache.key(&key("SELECT  1\n FROM t ;", &s1)).unwrap();
        assert_eq!(a, cache.key(&key("SELECT 1 FROM t", &s1)).unwrap());
        assert_ne!(a, cache.key(&key("SELECT 1 FROM t", &s2)).unwrap(), "another snapshot, another key");
        assert_ne!(cache.key(&key("SELECT 'a  b'", &s1)), cache.key(&key("SELECT 'a b'", &s1)), "quoted text is kept");
        let mine = ["acme".to_string()];
        assert_ne!(a, cache.key(&CacheKey { tenants: Some(&mine), ..key("SELECT 1 FROM t", &s1) }).unwrap());
        assert_eq!(cache.key(&key("SELECT * FROM system.refreshes", &s1)), None);
        assert_eq!(cache.key(&key("SELECT now()", &s1)), None);
        assert_eq!(cache.key(&key("SELECT localtimestamp", &s1)), None);
        assert_eq!(ResultCache::new(0).key(&key("SELECT 1", &s1)), None, "capacity 0: off");
    }

    #[tokio::test]
    async fn a_table_named_without_a_schema_is_judged_where_it_resolves() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;
        use datafusion::prelude::{SessionConfig, SessionContext};
        // A session whose default schema is `system` (a PostgreSQL `search_path = system`).
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_default_catalog_and_schema("datafusion", "system"));
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        ctx.register_table("queries", Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap())).unwrap();
        for sql in ["SELECT n FROM queries", "SELECT n FROM system.queries", "SELECT n FROM datafusion.system.queries"] {
            let plan = ctx.sql(sql).await.unwrap().into_unoptimized_plan();
            assert!(!plan_is_cacheable_in(&plan, "system"), "{sql}");
        }
        let plan = ctx.sql("SELECT 1 AS one").await.unwrap().into_unoptimized_plan();
        assert!(plan_is_cacheable_in(&plan, "system"));
    }
}
