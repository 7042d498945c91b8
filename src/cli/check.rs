//! `salespulse check`: validate a config file and probe every tenant's source, inputs
//! folder, calendars and current snapshot.

use std::path::Path;
use std::process::ExitCode;

use salespulse_udfs::CalendarRegistry;
use salespulse_config::config::Config;
use salespulse::refresh::source_of;
use salespulse::snapshot::Store;

pub(super) async fn check(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    println!("config {}: valid, {} tenant(s)", config_path.display(), config.tenants.len());
    let store = Store::open(&config.storage.root)?;
    println!("storage {}: reachable", store.display());
    let mut problems = 0;
    for t in &config.tenants {
        let tokens = salespulse::refresh::token_home(&store, &t.name, config.storage.oauth_tokens_in_store);
        let connector = salespulse::connectors::connector_for(source_of(t), t.timezone, tokens);
        // With the tokens in the store, probing may exchange a refresh token: only under the
        // tenant's lease, as a refresh would.
        let lease = if config.storage.oauth_tokens_in_store && t.source.uses_oauth() {
            match store.acquire_lease(&t.name, &config.server.replica, config.storage.lease).await {
                Ok(lease) => Some(lease),
                Err(e) => {
                    println!("{}: source not probed now: {e}", t.name);
                    continue;
                }
            }
        } else {
            None
        };
        let checked = connector.check().await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        let probe = match checked {
            Ok(report) => {
                for fact in &report.facts {
                    println!("{}: {fact}", t.name);
                }
                let mut rows = report.rows;
                match (&t.inputs, report.problems.is_empty()) {
                    // The inputs folder is read as a refresh reads it.
                    (Some(folder), true) => match salespulse::connectors::files::read_folder(folder, t.timezone, salespulse::model::Table::is_input) {
                        Ok(inputs) => {
                            rows.extend(inputs.tables.keys().map(|k| (k.name().to_string(), inputs.rows(*k))));
                            Ok(rows)
                        }
                        Err(e) => Err(format!("inputs {}: {e}", folder.display())),
                    },
                    (_, true) => Ok(rows),
                    (_, false) => Err(report.problems.join("; ")),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match probe {
            Ok(tables) if tables.is_empty() => println!("{}: source {} ok", t.name, t.source.kind()),
            Ok(tables) => {
                let listed: Vec<String> = tables.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("{}: source {} ok ({})", t.name, t.source.kind(), listed.join(", "));
            }
            Err(e) => {
                problems += 1;
                println!("{}: source {} FAILED: {e}", t.name, t.source.kind());
            }
        }
        if let Some(path) = &t.calendars {
            match CalendarRegistry::from_file(path) {
                Ok(r) => println!("{}: calendars {} ok ({})", t.name, path.display(), r.names().join(", ")),
                Err(e) => {
                    problems += 1;
                    println!("{}: calendars FAILED: {e}", t.name);
                }
            }
        }
        match store.current_manifest(&t.name).await {
            Ok(m) => match store.verify(&m).await {
                Ok(_) => println!("{}: current snapshot {} ({} rows, taken at {})", t.name, m.snapshot_id, m.total_rows(), m.taken_at),
                Err(e) => {
                    problems += 1;
                    println!("{}: current snapshot {} is damaged: {e}", t.name, m.snapshot_id);
                }
            },
            Err(e) => println!("{}: {e}", t.name),
        }
    }
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
