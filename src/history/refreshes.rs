//! The refresh attempts of this process: the newest [`LOG_LIMIT`] in full, and running totals
//! per tenant. The scheduler's [`Refresher`](crate::scheduler::Refresher) writes them;
//! `/health` and `/metrics` read them. Each attempt is also stored beside the tenant's
//! snapshots ([`RefreshRecord::to_json`], the newest [`STORED_PER_TENANT`] per tenant), and
//! `system.refreshes` reads those: every process's attempts, cron runs included.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Attempts kept in the store per tenant (every process's).
pub const STORED_PER_TENANT: usize = 200;

/// How a refresh attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    /// Another refresh of the tenant was running.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// What a successful refresh produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshSummary {
    pub snapshot_id: String,
    pub rows: u64,
    /// CRM requests (0 for files and demo sources), answers by status, retries.
    pub requests: u64,
    pub answers: BTreeMap<String, u64>,
    pub retries: u64,
}

/// One attempt, as `system.refreshes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub tenant: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub summary: Option<RefreshSummary>,
    /// Why it ran.
    pub trigger: Trigger,
    /// The process that ran it (`server.replica`).
    pub replica: String,
}

impl RefreshRecord {
    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored attempt; `None` for an object this build cannot read.
    pub fn from_json(bytes: &[u8]) -> Option<RefreshRecord> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Why a refresh ran, as `system.refreshes.triggered_by` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The tenant's schedule came due.
    Schedule,
    /// The server started and the tenant had no snapshot.
    Start,
    /// A failed attempt was tried again.
    Retry,
    /// `POST /tenants/{name}/refresh`.
    Http,
    /// The `salespulse refresh` command (cron).
    Command,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Start => "start",
            Trigger::Retry => "retry",
            Trigger::Http => "http",
            Trigger::Command => "command",
        }
    }
}

/// The attempts kept in memory (the newest).
pub(crate) const LOG_LIMIT: usize = 1000;

/// Every refresh attempt of this process: the newest in full, and running totals for
/// `/metrics` (counters never go down, whatever the log drops).
#[derive(Debug, Default)]
pub struct RefreshLog {
    records: Mutex<VecDeque<RefreshRecord>>,
    totals: Mutex<BTreeMap<String, TenantTotals>>,
}

/// Running totals of one tenant's refreshes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantTotals {
    /// Attempts by outcome (`ok`, `failed`, `skipped`).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Seconds spent in refreshes that ran.
    pub seconds: f64,
    /// CRM answers by status, and retries.
    pub answers: BTreeMap<String, u64>,
    pub retries: u64,
}

impl RefreshLog {
    pub(crate) fn push(&self, record: RefreshRecord) {
        if let Ok(mut totals) = self.totals.lock() {
            let t = totals.entry(record.tenant.clone()).or_default();
            *t.outcomes.entry(record.outcome.as_str()).or_default() += 1;
            if record.outcome != Outcome::Skipped {
                t.seconds += (record.finished_at - record.started_at).to_std().unwrap_or_default().as_secs_f64();
            }
            if let Some(s) = &record.summary {
                for (status, n) in &s.answers {
                    *t.answers.entry(status.clone()).or_default() += n;
                }
                t.retries += s.retries;
            }
        }
        if let Ok(mut log) = self.records.lock() {
            if log.len() >= LOG_LIMIT {
                log.pop_front();
            }
            log.push_back(record);
        }
    }

    /// Every logged attempt of `tenant` (all tenants with `None`), oldest first.
    pub fn records(&self, tenant: Option<&str>) -> Vec<RefreshRecord> {
        self.records.lock().map(|l| l.iter().filter(|r| tenant.is_none_or(|t| r.tenant == t)).cloned().collect()).unwrap_or_default()
    }

    /// The newest attempt of `tenant`.
    pub fn last(&self, tenant: &str) -> Option<RefreshRecord> {
        self.records.lock().ok().and_then(|l| l.iter().rev().find(|r| r.tenant == tenant).cloned())
    }

    /// Running totals by tenant.
    pub fn totals(&self) -> BTreeMap<String, TenantTotals> {
        self.totals.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

