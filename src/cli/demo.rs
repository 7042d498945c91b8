//! `salespulse demo`: generate a demo CRM, snapshot it, and serve it as tenant `demo`
//! without authentication (loopback only unless --insecure).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use chrono::{DateTime, Utc};

use salespulse::catalog::Catalog;
use salespulse_config::config::{Limits, Role, SourceConfig, TenantConfig, default_settings, resolve_root};
use salespulse::connectors::Source;
use salespulse::follow::FollowPolicy;
use salespulse::refresh::{RefreshOptions, refresh_tenant};
use salespulse_config::auth::Authenticator;
use salespulse::snapshot::Store;

use super::info_of;
use super::refresh::{print_refresh, report_kpi_tables};
use super::serve::{Listen, Operations, run_server, stop_signal};

pub(super) async fn demo(scale: f64, seed: u64, data: &Path, as_of: Option<DateTime<Utc>>, listen: Listen, no_serve: bool, insecure: bool) -> anyhow::Result<ExitCode> {
    if !(scale > 0.0 && scale <= 100.0) {
        bail!("--scale must be above 0 and at most 100, got {scale}");
    }
    if !no_serve {
        listen.refuse_exposure(true, insecure, ["--flight-sql", "--postgres", "--http"], "the demo has no users: use 127.0.0.1, or `serve` with [[users]]")?;
    }
    let root = resolve_root(Path::new("."), &data.to_string_lossy());
    let store = Store::open(&root)?;
    // The served tenant refreshes (POST /tenants/demo/refresh) at the same scale and seed.
    let tenant = TenantConfig { source: SourceConfig::Demo { scale, seed }, ..demo_tenant() };
    println!("generating the demo CRM (scale {scale}, seed {seed}) into {}", store.display());
    let report = refresh_tenant(&store, &tenant, Source::Demo { scale, seed, as_of }, 3).await?;
    print_refresh("demo", &report);
    if no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = Arc::new(Catalog::new(store, vec![info_of(&tenant)]).with_query_memory(Some(Limits::default().query_memory_bytes as usize)));
    let started = std::time::Instant::now();
    let state = catalog.load_tenant("demo").await?;
    report_kpi_tables("demo", &state, Some(started));
    let stop = stop_signal();
    let listeners = listen.bind(["--flight-sql", "--postgres", "--http"], Role::All).await?;
    let (Some(flight_sql), Some(postgres)) = (&listeners.flight_sql, &listeners.postgres) else {
        bail!("the demo serves queries: Flight SQL and PostgreSQL listeners are bound");
    };
    let local = flight_sql.local_addr()?;
    let pg = postgres.local_addr()?;
    let http = listeners.http.local_addr()?;
    println!();
    println!("Serving tenant `demo` (no authentication) over Arrow Flight SQL on {local} and PostgreSQL on {pg}; operations over HTTP on {http}.");
    for addr in [local, pg, http] {
        if !addr.ip().is_loopback() {
            println!("WARNING: {addr} is not a loopback address; anyone who reaches it can read the data.");
        }
    }
    println!("  psql:           psql \"host={} port={} dbname=demo user=demo\" -c '\\dt crm.*'", pg.ip(), pg.port());
    println!("  ADBC (Python):  adbc_driver_flightsql.dbapi.connect(\"grpc://{local}\")");
    println!("  Grafana:        PostgreSQL datasource, host {pg}, database demo, TLS off; or the Flight SQL");
    println!("                  datasource, host {local}, secure off, metadata x-salespulse-compat = grafana");
    println!("  Superset:       datafusion+flightsql://{local}?insecure=true  (flightsql-dbapi)");
    println!("                  or postgresql://demo@{pg}/demo");
    println!("  JDBC/DBeaver:   jdbc:arrow-flight-sql://{local}?useEncryption=false  or  jdbc:postgresql://{pg}/demo");
    println!("  CLI:            salespulse query --data {} \"SELECT manager_id, count(*) FROM crm.calls GROUP BY 1\"", data.display());
    println!("  Operations:     curl http://{http}/health; curl http://{http}/metrics; curl -X POST http://{http}/tenants/demo/refresh");
    println!("Press Ctrl-C to stop.");
    let operations = Operations {
        tenants: vec![tenant],
        refresh: RefreshOptions::alone(3),
        result_cache_bytes: DEMO_RESULT_CACHE_BYTES,
        role: Role::All,
        follow: FollowPolicy { every: std::time::Duration::from_secs(5), max_per_second: 20.0 },
    };
    run_server(catalog, Arc::new(Authenticator::disabled()), listeners, Limits::default(), None, operations, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// The demo server's result cache (the config default).
const DEMO_RESULT_CACHE_BYTES: u64 = 256 << 20;

fn demo_tenant() -> TenantConfig {
    TenantConfig {
        name: "demo".into(),
        timezone: chrono_tz::Europe::Moscow,
        calendars: None,
        schedule: None,
        refresh_on_start: false,
        inputs: None,
        source: SourceConfig::Demo { scale: 1.0, seed: 42 },
        settings: default_settings(),
    }
}
