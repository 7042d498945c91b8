//! `salespulse refresh`: pull each tenant's source now, write a snapshot, and build its KPI
//! tables; the refresh report `demo` prints too.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use salespulse::catalog::Catalog;
use salespulse_config::config::{Config, TenantConfig};
use salespulse::refresh::{RefreshReport, refresh_tenant_with_progress, source_of};
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
    let mut failed = 0;
    for t in tenants {
        println!("{}: refreshing from {} ...", t.name, t.source.kind());
        let progress = Arc::new(progress::RefreshProgress::for_stderr(&t.name));
        let refreshed = refresh_tenant_with_progress(&store, t, source_of(t), config.storage.keep_snapshots, Arc::clone(&progress) as _).await;
        progress.finish();
        match refreshed {
            Ok(report) => {
                print_refresh(&t.name, &report);
                // Materialise the KPI tables now, so a server start or reload finds them.
                let started = std::time::Instant::now();
                let catalog = Catalog::new(store.clone(), vec![info_of(t)]);
                let state = catalog.load_tenant(&t.name).await?;
                report_kpi_tables(&t.name, &state, started);
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}; the previous snapshot is still served");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub(super) fn report_kpi_tables(tenant: &str, state: &salespulse::catalog::TenantState, started: std::time::Instant) {
    match &state.problem {
        Some(problem) => eprintln!("warning: {problem}"),
        None => println!("{tenant}: KPI tables ready in {:.2} s", started.elapsed().as_secs_f64()),
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
