//! What this process has done: its refresh attempts ([`refreshes`]) and its queries
//! ([`queries`]), kept in memory and bounded.
//!
//! A leaf module: the scheduler and the query front ends write here, and the catalog's
//! `system` schema, `/health` and `/metrics` read from here, so none of them imports
//! another for it.

pub mod queries;
pub mod refreshes;

use std::sync::Arc;

pub use queries::QueryLog;
pub use refreshes::RefreshLog;

/// The two logs of one process, shared by whoever writes and reads them.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub refreshes: Arc<RefreshLog>,
    pub queries: Arc<QueryLog>,
}
