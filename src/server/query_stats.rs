//! Query counts, errors and latencies by protocol, for `/metrics`. The families are the
//! Prometheus client's own, shared with every scrape's registry.

use std::time::Instant;

use crate::history::queries::Protocol;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 5 ms to about 41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Queries by protocol (`flight_sql`, `postgres`) and whether the result cache answered.
#[derive(Debug, Clone)]
pub struct QueryStats {
    /// Seconds per query, by protocol and `cached` (`true`, `false`).
    pub latency: Family<Labels, Histogram, fn() -> Histogram>,
    /// Queries that failed, by protocol.
    pub errors: Family<Labels, Counter>,
}

impl Default for QueryStats {
    fn default() -> Self {
        QueryStats { latency: Family::new_with_constructor(latency_histogram), errors: Family::default() }
    }
}

impl QueryStats {
    /// Records a query that ended now.
    pub fn observe(&self, protocol: Protocol, started: Instant, ok: bool, cached: bool) {
        if ok {
            let labels = vec![("protocol".to_string(), protocol.as_str().to_string()), ("cached".to_string(), cached.to_string())];
            self.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        } else {
            self.errors.get_or_create(&vec![("protocol".to_string(), protocol.as_str().to_string())]).inc();
        }
    }
}
