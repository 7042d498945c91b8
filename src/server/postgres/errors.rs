//! The one mapping from salespulse's errors to PostgreSQL errors and their SQLSTATEs: query
//! errors, limits, refusals of the shared execution path, and text that does not parse
//! (refused as read-only when it is a write).

use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};

use crate::catalog::QueryError;
use crate::server::execution::Refusal;
use crate::server::limits::LimitError;

/// An error with this severity, SQLSTATE and message.
pub(super) fn user_error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.to_string(), code.to_string(), message)))
}

/// A limit's refusal as a PostgreSQL error: `53000`-class for slots and size, `57014`
/// (query_canceled) for the timeout, as PostgreSQL's `statement_timeout` does.
pub(super) fn limit_error(e: &LimitError) -> PgWireError {
    let code = match e {
        LimitError::Busy { .. } | LimitError::UserBusy { .. } => "53300",
        LimitError::Timeout { .. } => "57014",
        LimitError::TooManyRows { .. } | LimitError::TooManyBytes { .. } => "54000",
    };
    user_error("ERROR", code, e.to_string())
}

/// What a client is told of an error.
pub(super) fn pg_message(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => info.message.clone(),
        other => other.to_string(),
    }
}

/// A query error as a PostgreSQL error with its SQLSTATE.
pub(super) fn query_error(e: &QueryError) -> PgWireError {
    let code = match e {
        QueryError::TooLong { .. } | QueryError::TooDeep { .. } | QueryError::TooManyStatements { .. } => "54000",
        QueryError::ReadOnly { .. } => "25006",
        QueryError::Plan(_) => "42P01",
        QueryError::Memory(_) => "53200",
        QueryError::Execution(_) => "XX000",
    };
    let code = match e {
        QueryError::Plan(text) if !(text.contains("not found") || text.contains("does not exist")) => "42601",
        _ => code,
    };
    user_error("ERROR", code, e.to_string())
}

/// The statement keywords that write or change the server, for text that does not parse
/// (`CREATE EXTERNAL TABLE …`, `COPY … STORED AS …`): refused as read-only, not as a syntax
/// error.
fn write_keyword(sql: &str) -> Option<String> {
    let first: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    const WRITES: [&str; 18] = [
        "CREATE", "DROP", "ALTER", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "GRANT", "REVOKE", "VACUUM", "ANALYZE", "CLUSTER", "REINDEX", "COMMENT",
        "LOAD", "CALL",
    ];
    let explain = first == "EXPLAIN";
    let what = if explain {
        sql.split_whitespace().map(str::to_ascii_uppercase).find(|w| WRITES.contains(&w.as_str()) && w != "ANALYZE")?
    } else {
        WRITES.contains(&first.as_str()).then_some(first)?
    };
    Some(what)
}

pub(super) fn parse_error(sql: &str, e: impl std::fmt::Display) -> PgWireError {
    match write_keyword(sql) {
        Some(what) => query_error(&QueryError::ReadOnly { what }),
        None => user_error("ERROR", "42601", format!("syntax error: {e}")),
    }
}

/// A refusal of the shared execution path as a PostgreSQL error.
pub(super) fn refusal_error(e: &Refusal) -> PgWireError {
    match e {
        Refusal::Limit(limit) => limit_error(limit),
        Refusal::Query(query) => query_error(query),
        Refusal::Planner(_) => user_error("ERROR", "XX000", e.to_string()),
    }
}
