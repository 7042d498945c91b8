//! Plans made for GetFlightInfo, kept for the DoGet that follows.
//!
//! A Flight SQL client asks for a FlightInfo (the statement is planned to learn its schema)
//! and then redeems the ticket with DoGet. Without this, DoGet plans the same statement a
//! second time. The plan is kept here under the exact ticket bytes issued, for a short time
//! and for one use. The ticket itself stays self-contained (the sealed handle), so a DoGet
//! that reaches another replica, comes late, or comes a second time plans again and gets the
//! same answer. A kept plan is used only by the user it was issued to and only while every
//! tenant that user reads still serves the snapshot it was planned on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::prelude::DataFrame;

/// How long a plan waits for its DoGet: clients redeem a ticket right after GetFlightInfo.
const KEEP_FOR: Duration = Duration::from_secs(30);
/// Plans kept at most (each holds a session and a logical plan, tens of kilobytes).
const MAX_KEPT: u64 = 256;

/// (tenant, snapshot id) of every tenant a user may read, as read before planning.
pub(super) type Snapshots = Vec<(String, Option<String>)>;

struct Planned {
    user: String,
    snapshots: Snapshots,
    frame: Mutex<Option<DataFrame>>,
}

/// Plans waiting for their DoGet, by ticket.
pub(super) struct PlannedStatements {
    by_ticket: moka::sync::Cache<Vec<u8>, Arc<Planned>>,
}

impl std::fmt::Debug for PlannedStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedStatements").field("kept", &self.by_ticket.entry_count()).finish()
    }
}

impl Default for PlannedStatements {
    fn default() -> Self {
        PlannedStatements { by_ticket: moka::sync::Cache::builder().max_capacity(MAX_KEPT).time_to_live(KEEP_FOR).build() }
    }
}

impl PlannedStatements {
    /// Keeps `frame`, planned for `user` on `snapshots`, for the DoGet of `ticket`.
    pub(super) fn keep(&self, ticket: Vec<u8>, user: &str, snapshots: Snapshots, frame: DataFrame) {
        let planned = Planned { user: user.to_string(), snapshots, frame: Mutex::new(Some(frame)) };
        self.by_ticket.insert(ticket, Arc::new(planned));
    }

    /// The plan kept for `ticket`, once, if `user` asked for it and `snapshots` are still
    /// the ones it was planned on.
    pub(super) fn take(&self, ticket: &[u8], user: &str, snapshots: &Snapshots) -> Option<DataFrame> {
        let planned = self.by_ticket.remove(ticket)?;
        if planned.user != user || &planned.snapshots != snapshots {
            return None;
        }
        planned.frame.lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        let ctx = datafusion::prelude::SessionContext::new();
        futures::executor::block_on(ctx.sql("SELECT 1")).expect("plans")
    }

    fn on(id: &str) -> Snapshots {
        vec![("acme".to_string(), Some(id.to_string()))]
    }

    #[test]
    fn a_plan_serves_one_doget_of_its_user_on_its_snapshot() {
        let planned = PlannedStatements::default();
        planned.keep(b"t1".to_vec(), "ann", on("s1"), frame());
        assert!(planned.take(b"t1", "ann", &on("s1")).is_some());
        // Once only: a second DoGet plans again.
        assert!(planned.take(b"t1", "ann", &on("s1")).is_none());

        planned.keep(b"t2".to_vec(), "ann", on("s1"), frame());
        assert!(planned.take(b"t2", "bob", &on("s1")).is_none(), "another user never gets it");
        planned.keep(b"t3".to_vec(), "ann", on("s1"), frame());
        assert!(planned.take(b"t3", "ann", &on("s2")).is_none(), "after a snapshot swap the statement is planned again");
        assert!(planned.take(b"unknown", "ann", &on("s1")).is_none());
    }
}
