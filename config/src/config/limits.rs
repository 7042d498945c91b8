//! The `[limits]` table: what one query, one user, one connection and one login may use,
//! each with a default ([`Limits::default`]).

use super::raw::RawLimits;
use super::{Limits, MAX_EXPRESSION_DEPTH, Mistake, parse_bytes};

/// `[limits]`, validated: every count and time above 0, sizes such as 512MiB.
pub(super) fn limits(raw: &RawLimits) -> Result<Limits, Mistake> {
    let d = Limits::default();
    let positive = |key: &'static str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(Mistake::new(key, "must be above 0".to_string())),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(Limits {
        query_memory_bytes: match &raw.query_memory {
            Some(s) => parse_bytes(s).ok_or(Mistake::new("limits.query_memory", format!("'{s}' is not a size such as 512MiB or 2GiB")))?,
            None => d.query_memory_bytes,
        },
        query_timeout: std::time::Duration::from_secs(positive("limits.query_timeout_seconds", raw.query_timeout_seconds, 60)?),
        max_concurrent_queries: positive("limits.max_concurrent_queries", raw.max_concurrent_queries.map(|v| v as u64), 16)? as usize,
        max_concurrent_queries_per_user: positive(
            "limits.max_concurrent_queries_per_user",
            raw.max_concurrent_queries_per_user.map(|v| v as u64),
            d.max_concurrent_queries_per_user as u64,
        )? as usize,
        queue_wait: std::time::Duration::from_secs(raw.queue_seconds.unwrap_or(d.queue_wait.as_secs())),
        max_result_rows: positive("limits.max_result_rows", raw.max_result_rows, d.max_result_rows)?,
        max_result_bytes: match &raw.max_result_bytes {
            Some(s) => parse_bytes(s).ok_or(Mistake::new("limits.max_result_bytes", format!("'{s}' is not a size such as 512MiB or 2GiB")))?,
            None => d.max_result_bytes,
        },
        max_sql_bytes: positive("limits.max_sql_bytes", raw.max_sql_bytes.map(|v| v as u64), d.max_sql_bytes as u64)? as usize,
        token_ttl_seconds: positive("limits.token_ttl_seconds", raw.token_ttl_seconds, d.token_ttl_seconds)?,
        failed_logins_per_minute: positive("limits.failed_logins_per_minute", raw.failed_logins_per_minute.map(u64::from), u64::from(d.failed_logins_per_minute))?
            .min(u64::from(u32::MAX)) as u32,
        max_expression_depth: match positive("limits.max_expression_depth", raw.max_expression_depth.map(|v| v as u64), d.max_expression_depth as u64)? {
            v if v > MAX_EXPRESSION_DEPTH as u64 => {
                return Err(Mistake::new("limits.max_expression_depth", format!("{v} is more than {MAX_EXPRESSION_DEPTH}, the deepest the engine's stack is known to survive")));
            }
            v => v as usize,
        },
        max_statements_per_query: positive("limits.max_statements_per_query", raw.max_statements_per_query.map(|v| v as u64), d.max_statements_per_query as u64)? as usize,
        login_timeout: std::time::Duration::from_secs(positive("limits.login_timeout_seconds", raw.login_timeout_seconds, d.login_timeout.as_secs())?),
        idle_timeout: std::time::Duration::from_secs(positive("limits.idle_timeout_seconds", raw.idle_timeout_seconds, d.idle_timeout.as_secs())?),
        max_connections_per_port: positive("limits.max_connections_per_port", raw.max_connections_per_port.map(|v| v as u64), d.max_connections_per_port as u64)? as usize,
        max_prepared_per_connection: positive("limits.max_prepared_per_connection", raw.max_prepared_per_connection.map(|v| v as u64), d.max_prepared_per_connection as u64)?
            as usize,
        max_concurrent_logins: positive("limits.max_concurrent_logins", raw.max_concurrent_logins.map(|v| v as u64), d.max_concurrent_logins as u64)? as usize,
    })
}
