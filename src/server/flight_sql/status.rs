//! The one mapping from salespulse's errors to the gRPC statuses Flight SQL clients
//! receive: authentication, query limits, query errors, tickets and handles, and updates
//! refused because salespulse is read-only.

use salespulse_config::auth::AuthError;
use salespulse_config::handle::HandleError;
use tonic::Status;

use crate::catalog::QueryError;
use crate::server::execution::Refusal;
use crate::server::limits::LimitError;

/// An error as the gRPC status a client receives.
pub(super) trait IntoStatus {
    fn status(&self) -> Status;
}

impl IntoStatus for AuthError {
    fn status(&self) -> Status {
        match self {
            AuthError::Throttled { .. } | AuthError::Busy => Status::resource_exhausted(self.to_string()),
            _ => Status::unauthenticated(self.to_string()),
        }
    }
}

/// A limit's refusal: the server is busy, or the query went past a limit.
impl IntoStatus for LimitError {
    fn status(&self) -> Status {
        match self {
            LimitError::Busy { .. } | LimitError::UserBusy { .. } | LimitError::TooManyRows { .. } | LimitError::TooManyBytes { .. } => Status::resource_exhausted(self.to_string()),
            LimitError::Timeout { .. } => Status::deadline_exceeded(self.to_string()),
        }
    }
}

impl IntoStatus for QueryError {
    fn status(&self) -> Status {
        match self {
            QueryError::TooLong { .. } | QueryError::TooDeep { .. } | QueryError::TooManyStatements { .. } => Status::invalid_argument(self.to_string()),
            QueryError::ReadOnly { .. } => Status::permission_denied(self.to_string()),
            QueryError::Plan(_) => Status::invalid_argument(self.to_string()),
            QueryError::Memory(_) => Status::resource_exhausted(self.to_string()),
            QueryError::Execution(_) => Status::internal(self.to_string()),
        }
    }
}

/// Why planning was refused: a limit, the query itself, or the planner failing.
impl IntoStatus for Refusal {
    fn status(&self) -> Status {
        match self {
            Refusal::Limit(limit) => limit.status(),
            Refusal::Query(query) => query.status(),
            Refusal::Planner(_) => Status::internal(self.to_string()),
        }
    }
}

impl IntoStatus for HandleError {
    fn status(&self) -> Status {
        match self {
            HandleError::OtherUser => Status::permission_denied(self.to_string()),
            HandleError::Foreign | HandleError::Parameters(_) => Status::invalid_argument(self.to_string()),
        }
    }
}

/// The refusal of an update statement, naming it.
pub(super) fn read_only_update(sql: &str) -> Status {
    let what: String = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ").chars().take(80).collect();
    Status::permission_denied(format!("salespulse is read-only: {what} … is not allowed (Flight SQL updates are refused; SET has no effect on a stateless protocol); run SELECT queries only"))
}
