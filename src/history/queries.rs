//! The audit of queries: who ran what, when, for how long, and how many rows went back.
//! Each finished query is one structured log line (target `salespulse::audit`) and one
//! record in memory, which `system.queries` shows to the user who ran it (and to nobody
//! else). The log keeps the newest [`QUERY_LOG_CAPACITY`] records of this process; in a
//! fleet each replica keeps its own, named by `server.replica`.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Records kept in memory, over all users.
pub const QUERY_LOG_CAPACITY: usize = 10_000;
/// SQL longer than this is kept cut, with a note of its length.
const SQL_KEPT: usize = 4_096;

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Every row went to the client.
    Ok,
    /// It failed: bad SQL, a refusal, a limit, or an engine error.
    Failed,
    /// The client went away before the last row.
    Cancelled,
}

impl QueryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryOutcome::Ok => "ok",
            QueryOutcome::Failed => "failed",
            QueryOutcome::Cancelled => "cancelled",
        }
    }
}

/// The front end a query came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    FlightSql,
    Postgres,
}

impl Protocol {
    /// The name `system.queries`, the audit line and `/metrics` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::FlightSql => "flight_sql",
            Protocol::Postgres => "postgres",
        }
    }
}

/// One query.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub started_at: DateTime<Utc>,
    pub user: String,
    pub protocol: Protocol,
    /// The tenant (database) the query addressed.
    pub tenant: Option<String>,
    pub sql: String,
    pub seconds: f64,
    pub rows: u64,
    pub outcome: QueryOutcome,
    pub error: Option<String>,
    /// Answered from the result cache.
    pub cached: bool,
}

/// The newest queries of this process.
#[derive(Debug, Default)]
pub struct QueryLog {
    records: Mutex<VecDeque<QueryRecord>>,
    /// The name of this process in a fleet (`server.replica`), shown with every record.
    replica: std::sync::RwLock<Option<String>>,
}

impl QueryLog {
    /// Names this process (`server.replica`): `system.queries` shows it on every row, so a
    /// user behind a load balancer sees which replica ran each query.
    pub fn set_replica(&self, name: &str) {
        if let Ok(mut replica) = self.replica.write() {
            *replica = Some(name.to_string());
        }
    }

    /// This process's name, `local` unless set.
    pub fn replica(&self) -> String {
        self.replica.read().ok().and_then(|r| r.clone()).unwrap_or_else(|| "local".to_string())
    }

    /// Logs `record` and keeps it.
    pub fn record(&self, mut record: QueryRecord) {
        clip(&mut record.sql, SQL_KEPT);
        // An error can quote what the client sent (a 900 KB identifier): kept as short as the
        // SQL, so 10,000 records stay within a few tens of megabytes.
        if let Some(error) = record.error.as_mut() {
            clip(error, SQL_KEPT);
        }
        clip(&mut record.user, 256);
        tracing::info!(
            target: "salespulse::audit",
            user = %record.user,
            protocol = record.protocol.as_str(),
            tenant = record.tenant.as_deref().unwrap_or(""),
            rows = record.rows,
            ms = (record.seconds * 1000.0).round() as u64,
            outcome = record.outcome.as_str(),
            cached = record.cached,
            error = record.error.as_deref().unwrap_or(""),
            sql = %record.sql,
            "query"
        );
        if let Ok(mut records) = self.records.lock() {
            if records.len() >= QUERY_LOG_CAPACITY {
                records.pop_front();
            }
            records.push_back(record);
        }
    }

    /// `user`'s queries, oldest first.
    pub fn records_of(&self, user: &str) -> Vec<QueryRecord> {
        self.records.lock().map(|r| r.iter().filter(|q| q.user == user).cloned().collect()).unwrap_or_default()
    }
}

/// Cuts `text` to at most `max` bytes (on a character boundary), saying how long it was.
fn clip(text: &mut String, max: usize) {
    if text.len() > max {
        let cut = (0..=max).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        *text = format!("{}… ({} bytes in all)", &text[..cut], text.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_kept_as_short_as_sql() {
        let log = QueryLog::default();
        let huge = format!("table '{}' not found", "x".repeat(900_000));
        log.record(QueryRecord { error: Some(huge), outcome: QueryOutcome::Failed, ..record("anna", "SELECT 1") });
        let kept = log.records_of("anna");
        let error = kept[0].error.as_deref().unwrap_or_default();
        assert!(error.len() < SQL_KEPT + 64, "{} bytes kept", error.len());
        assert!(error.ends_with("(900018 bytes in all)"), "{}", &error[error.len() - 40..]);
    }

    fn record(user: &str, sql: &str) -> QueryRecord {
        QueryRecord {
            started_at: Utc::now(),
            user: user.into(),
            protocol: Protocol::FlightSql,
            tenant: Some("acme".into()),
            sql: sql.into(),
            seconds: 0.01,
            rows: 1,
            outcome: QueryOutcome::Ok,
            error: None,
            cached: false,
        }
    }

    #[test]
    fn each_user_sees_only_their_queries_and_long_sql_is_cut() {
        let log = QueryLog::default();
        log.record(record("anna", "SELECT 1"));
        log.record(record("boris", "SELECT 2"));
        log.record(record("anna", &format!("SELECT '{}'", "я".repeat(5000))));
        let anna = log.records_of("anna");
        assert_eq!(anna.len(), 2);
        assert_eq!(anna[0].sql, "SELECT 1");
        assert!(anna[1].sql.ends_with("… (10009 bytes in all)") && anna[1].sql.len() < 4200, "{}", anna[1].sql.len());
        assert_eq!(log.records_of("boris").len(), 1);
        assert!(log.records_of("nobody").is_empty());
    }

    #[test]
    fn the_oldest_go_first_when_full() {
        let log = QueryLog::default();
        for i in 0..QUERY_LOG_CAPACITY + 5 {
            log.record(record("anna", &format!("SELECT {i}")));
        }
        let kept = log.records_of("anna");
        assert_eq!(kept.len(), QUERY_LOG_CAPACITY);
        assert_eq!(kept[0].sql, "SELECT 5");
    }
}
