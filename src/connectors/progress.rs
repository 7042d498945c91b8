//! What a CRM sync reports while it reads: one call per list started, per request's rows,
//! and per list finished, so `salespulse refresh` can draw progress bars (or print log
//! lines) without the connectors knowing how. A server's refresh reports to [`Silent`].
//!
//! Lists are named by what they hold (`deals`, `leads/notes`); a name that starts twice in
//! one sync (product rows read in chunks, events read for two purposes) adds up.

use std::fmt::Debug;
use std::sync::Arc;

/// Receives a sync's progress. Calls come from concurrent list readers.
pub trait Progress: Send + Sync + Debug {
    /// A list starts; `expected_rows` when the CRM counted it (Bitrix24 does, amoCRM does not).
    fn list_started(&self, list: &str, expected_rows: Option<u64>);
    /// One request of `list` came back with `rows` rows.
    fn page_read(&self, list: &str, rows: u64);
    /// `list` is read to its end.
    fn list_finished(&self, list: &str);
}

/// Progress that nobody watches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn list_started(&self, _: &str, _: Option<u64>) {}
    fn page_read(&self, _: &str, _: u64) {}
    fn list_finished(&self, _: &str) {}
}

/// A shared progress receiver.
pub type ProgressHandle = Arc<dyn Progress>;

/// The receiver for nobody.
pub fn silent() -> ProgressHandle {
    Arc::new(Silent)
}
