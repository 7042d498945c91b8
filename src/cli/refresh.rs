//! `salespulse refresh`: pull each tenant's source now, write a snapshot with its KPI
//! tables, and commit it, under the tenant's lease (a tenant another process refreshes now
//! is skipped); running servers follow the commit. The refresh report `demo` prints too.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use salespulse::catalog::Catalog;
use salespulse_config::config::{Config, TenantConfig};
use salespulse::history::refreshes::{Outcome, RefreshRecord, Trigger};
use salespulse::refresh::{RefreshOptions, RefreshReport, refresh_tenant_with, source_of};
use salespulse::snapshot::Store;

use super::{info_of, progress};

pub(super) async fn refresh(config_path: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let tenants: Vec<&TenantConfig> = match only {
        Some(name) => vec![config.tenant(name).with_context(|| {
            let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            format!("no tenant '{name}' in {}; tenants: {}", config_path.display(), names.join(", "))
        })?],
        None => config.tenants.iter().collect(),
    };
    let store = Store::open(&config.storage.root)?;
    let options = RefreshOptions::of(&config.storage, &config.server.replica);
    let mut failed = 0;
    for t in tenants {
        println!("{}: refreshing from {} ...", t.name, t.source.kind());
        let progress = Arc::new(progress::RefreshProgress::for_stderr(&t.name));
        // The KPI tables are built into the snapshot before it is committed, so every server
        // that follows the commit finds them.
        let catalog = Catalog::new(store.clone(), vec![info_of(t)]);
        let started_at = chrono::Utc::now();
        let refreshed = refresh_tenant_with(&store, t, source_of(t), &options, Arc::clone(&progress) as _, Some(&catalog)).await;
        progress.finish();
        let (outcome, error, summary) = match &refreshed {
            Ok(report) => (Outcome::Ok, None, Some(report.summary())),
            Err(e) if e.is_held_elsewhere() => (Outcome::Skipped, Some(e.to_string()), None),
            Err(e) => (Outcome::Failed, Some(salespulse_config::redact::redact_secrets(&e.to_string())), None),
        };
        match refreshed {
            Ok(report) => {
                print_refresh(&t.name, &report);
                if let Some(state) = &report.served {
                    report_kpi_tables(&t.name, state, None);
                }
            }
            // Another process refreshes this tenant now: its snapshot is the one to wait for.
            Err(e) if e.is_held_elsewhere() => println!("{}: skipped: {e}", t.name),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}; the previous snapshot is still served");
            }
        }
        // Cron runs show in every server's system.refreshes.
        let record = RefreshRecord {
            tenant: t.name.clone(),
            started_at,
            finished_at: chrono::Utc::now(),
            outcome,
            error,
            summary,
            trigger: Trigger::Command,
            replica: config.server.replica.clone(),
        };
        salespulse::scheduler::store_attempt(&store, &record).await;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The KPI tables' outcome; `started` times a build done apart from the refresh.
pub(super) fn report_kpi_tables(tenant: &str, state: &salespulse::catalog::TenantState, started: Option<std::time::Instant>) {
    match (&state.problem, started) {
        (Some(problem), _) => eprintln!("warning: {problem}"),
        (None, Some(started)) => println!("{tenant}: KPI tables ready in {:.2} s", started.elapsed().as_secs_f64()),
        (None, None) => println!("{tenant}: KPI tables ready"),
    }
}

pub(super) fn print_refresh(tenant: &str, r: &RefreshReport) {
    let m = &r.report.manifest;
    let rows = m.total_rows();
    if r.streamed {
        println!(
            "{tenant}: snapshot {} of {rows} rows from {} in {:.2} s (made and written together = {:.0} rows/s)",
            m.snapshot_id,
            m.source,
            r.seconds,
            rows as f64 / r.seconds.max(1e-9),
        );
    } else {
        println!(
            "{tenant}: snapshot {} of {rows} rows from {} in {:.2} s (pull {:.2} s, write {:.2} s = {:.0} rows/s)",
            m.snapshot_id,
            m.source,
            r.seconds,
            r.seconds - r.write_seconds,
            r.write_seconds,
            rows as f64 / r.write_seconds.max(1e-9),
        );
    }
    for (name, entry) in &m.tables {
        println!("  {name:<20} {:>10} rows {:>12} bytes", entry.rows, entry.bytes);
    }
    if let Some(sync) = &r.sync {
        let answers: Vec<String> = sync.answers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "  {} sync: {} requests ({}) in {:.1} s, {} retries, mapped in {:.1} s{}",
            if sync.incremental { "incremental" } else { "full" },
            sync.requests,
            answers.join(", "),
            sync.read_seconds,
            sync.retries,
            sync.seconds - sync.read_seconds,
            if sync.reconciled { format!(", ids scanned for deletions: {} rows removed", sync.deleted) } else { String::new() },
        );
        let read: Vec<String> = sync.records.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  records read: {}", read.join(", "));
    }
    if !r.inputs_replaced.is_empty() {
        let names: Vec<&str> = r.inputs_replaced.iter().map(|t| t.name()).collect();
        println!("  from the inputs folder: {}", names.join(", "));
    }
    for id in &r.report.cleaned {
        println!("  removed the leftover of a failed write: {id}");
    }
    for id in &r.report.expired {
        println!("  retention removed snapshot {id}");
    }
}
