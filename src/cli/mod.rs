//! The command line (docs/design.md § Command line and configuration): `demo`, `serve`,
//! `refresh`, `query`, `check`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) mod progress;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use futures::TryStreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use salespulse::catalog::{Catalog, TenantInfo, plan_query};
use salespulse_udfs::CalendarRegistry;
use salespulse_config::config::{Config, Limits, SourceConfig, TenantConfig, default_settings, is_valid_tenant_name, resolve_root};
use salespulse::connectors::Source;
use salespulse::refresh::{RefreshReport, refresh_tenant, refresh_tenant_with_progress, serving_refresh, source_of};
use salespulse::scheduler::{Clock, Refresher, SchedulePolicy, SystemClock, TenantSchedule, run_schedules};
use salespulse_config::auth::Authenticator;
use salespulse::server::tls::TlsIdentity;
use salespulse::server::{Listeners as ServerListeners, Server};
use salespulse::snapshot::Store;

#[derive(Debug, Parser)]
#[command(name = "salespulse", version, about = "SQL over your CRM: Parquet snapshots served over Arrow Flight SQL")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a demo CRM, snapshot it under --data, and serve it as tenant `demo`.
    Demo {
        /// 1.0 is about 1 M calls a year.
        #[arg(long, default_value_t = 1.0, env = "SALESPULSE_DEMO_SCALE")]
        scale: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "./data", env = "SALESPULSE_DATA")]
        data: PathBuf,
        /// The snapshot time (RFC 3339); now by default. Fix it to get identical data.
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        #[arg(long, default_value = "127.0.0.1:50051", env = "SALESPULSE_FLIGHT_SQL")]
        flight_sql: SocketAddr,
        /// The PostgreSQL wire protocol address.
        #[arg(long, default_value = "127.0.0.1:5433", env = "SALESPULSE_POSTGRES")]
        postgres: SocketAddr,
        /// The HTTP endpoint (/health, /metrics, POST /tenants/demo/refresh).
        #[arg(long, default_value = "127.0.0.1:8080", env = "SALESPULSE_HTTP")]
        http: SocketAddr,
        /// Write the snapshot and exit without serving.
        #[arg(long)]
        no_serve: bool,
        /// Serve on a non-loopback address although the demo has no users (anyone who can
        /// reach it reads the data).
        #[arg(long)]
        insecure: bool,
    },
    /// Serve every tenant of a config file.
    Serve {
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: PathBuf,
        /// Overrides [server].flight_sql.
        #[arg(long)]
        flight_sql: Option<SocketAddr>,
        /// Overrides [server].postgres.
        #[arg(long)]
        postgres: Option<SocketAddr>,
        /// Overrides [server].http.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Serve on a non-loopback address without [[users]] (anyone who can reach it reads
        /// every tenant); without it such a config is refused.
        #[arg(long)]
        insecure: bool,
    },
    /// Pull each tenant's source now and write a snapshot.
    Refresh {
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: PathBuf,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Run one SQL query and print the result.
    Query {
        #[arg(long, env = "SALESPULSE_CONFIG", conflicts_with = "data")]
        config: Option<PathBuf>,
        /// A storage root with snapshots (one folder per tenant), without a config file.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The default catalog for unqualified names.
        #[arg(long)]
        tenant: Option<String>,
        /// A calendar file (docs/udfs.md §3) for the working-time functions, instead of the
        /// tenants' own or the built-in calendars.
        #[arg(long)]
        calendars: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        sql: String,
    },
    /// Validate a config file and probe every tenant's source and snapshots.
    Check {
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: PathBuf,
    },
    /// Read a password from standard input and print its argon2id hash for
    /// `password_hash` in [[users]].
    HashPassword,
    /// Make a new random API token: prints the token (give it to the client, e.g. Grafana's
    /// or Superset's `token`; it is not stored) and its SHA-256 for `api_token_sha256` in
    /// [[users]].
    ApiToken,
    /// Exchange an amoCRM OAuth authorization code (from the integration's redirect, valid
    /// 20 minutes) for the tenant's first token pair, written to its oauth_token_file.
    AmocrmAuth {
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: PathBuf,
        /// The tenant whose integration it is (the only amoCRM tenant by default).
        #[arg(long)]
        tenant: Option<String>,
        /// The `code` parameter of the redirect.
        #[arg(long)]
        code: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo { scale, seed, data, as_of, flight_sql, postgres, http, no_serve, insecure } => {
            demo(scale, seed, &data, as_of, Listen { flight_sql, postgres, http }, no_serve, insecure).await
        }
        Command::Serve { config, flight_sql, postgres, http, insecure } => serve(&config, Listen { flight_sql, postgres, http }, insecure).await,
        Command::Refresh { config, tenant } => refresh(&config, tenant.as_deref()).await,
        Command::Query { config, data, tenant, calendars, format, sql } => {
            query(config.as_deref(), data.as_deref(), tenant.as_deref(), calendars.as_deref(), format, &sql).await
        }
        Command::Check { config } => check(&config).await,
        Command::HashPassword => hash_password(),
        Command::ApiToken => api_token(),
        Command::AmocrmAuth { config, tenant, code } => amocrm_auth(&config, tenant.as_deref(), &code).await,
    }
}

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

fn info_of(t: &TenantConfig) -> TenantInfo {
    TenantInfo { name: t.name.clone(), timezone: t.timezone, settings: t.settings.clone(), calendars: t.calendars.clone() }
}

fn report_kpi_tables(tenant: &str, state: &salespulse::catalog::TenantState, started: std::time::Instant) {
    match &state.problem {
        Some(problem) => eprintln!("warning: {problem}"),
        None => println!("{tenant}: KPI tables ready in {:.2} s", started.elapsed().as_secs_f64()),
    }
}

fn print_refresh(tenant: &str, r: &RefreshReport) {
    let m = &r.report.manifest;
    let rows = m.total_rows();
    println!(
        "{tenant}: snapshot {} of {rows} rows from {} in {:.2} s (pull {:.2} s, write {:.2} s = {:.0} rows/s)",
        m.snapshot_id,
        m.source,
        r.seconds,
        r.seconds - r.write_seconds,
        r.write_seconds,
        rows as f64 / r.write_seconds.max(1e-9),
    );
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

/// The addresses the server listens on.
struct Listen<A = SocketAddr> {
    flight_sql: A,
    postgres: A,
    http: A,
}

/// Bound listeners, so a busy port is reported before anything is served.
struct Listeners {
    flight_sql: TcpListener,
    postgres: TcpListener,
    http: TcpListener,
}

impl Listen {
    /// Without users, every address must be loopback unless `insecure`: otherwise anyone
    /// who can reach the port reads every tenant.
    fn refuse_exposure(&self, no_users: bool, insecure: bool, keys: [&str; 3], fix: &str) -> anyhow::Result<()> {
        if !no_users {
            return Ok(());
        }
        for (addr, key) in [self.flight_sql, self.postgres, self.http].into_iter().zip(keys) {
            if addr.ip().is_loopback() {
                continue;
            }
            if insecure {
                tracing::warn!("{addr} ({key}) is reachable from other machines and there is no authentication (--insecure): anyone who reaches it can read every tenant");
            } else {
                bail!("refusing to serve {addr} ({key}) without authentication: it is reachable from other machines, and anyone there could read every tenant; {fix}, or pass --insecure if a firewall or proxy guards the port");
            }
        }
        Ok(())
    }

    /// Binds the three addresses; `keys` name the option or config key of each, for messages.
    async fn bind(&self, keys: [&str; 3]) -> anyhow::Result<Listeners> {
        let bind = |addr: SocketAddr, key: &str| {
            let key = key.to_string();
            async move { TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})")) }
        };
        Ok(Listeners { flight_sql: bind(self.flight_sql, keys[0]).await?, postgres: bind(self.postgres, keys[1]).await?, http: bind(self.http, keys[2]).await? })
    }
}

async fn demo(scale: f64, seed: u64, data: &Path, as_of: Option<DateTime<Utc>>, listen: Listen, no_serve: bool, insecure: bool) -> anyhow::Result<ExitCode> {
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
    report_kpi_tables("demo", &state, started);
    let stop = stop_signal();
    let listeners = listen.bind(["--flight-sql", "--postgres", "--http"]).await?;
    let local = listeners.flight_sql.local_addr()?;
    let pg = listeners.postgres.local_addr()?;
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
    let operations = Operations { tenants: vec![tenant], keep_snapshots: 3, result_cache_bytes: DEMO_RESULT_CACHE_BYTES };
    run_server(catalog, Arc::new(Authenticator::disabled()), listeners, Limits::default(), None, operations, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// How long requests in flight may run on after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The demo server's result cache (the config default).
const DEMO_RESULT_CACHE_BYTES: u64 = 256 << 20;

/// What a server refreshes and caches besides serving.
struct Operations {
    /// The tenants, as configured (their sources and schedules).
    tenants: Vec<TenantConfig>,
    keep_snapshots: usize,
    result_cache_bytes: u64,
}

/// Serves every protocol and runs the tenants' schedules until SIGINT or SIGTERM; then
/// stops accepting, lets the requests in flight finish (for up to `SHUTDOWN_GRACE`), and
/// stops scheduled refreshes (a refresh cut short leaves no snapshot: `CURRENT` moves only
/// after a complete write).
async fn run_server(
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    listeners: Listeners,
    limits: Limits,
    tls: Option<TlsIdentity>,
    operations: Operations,
    stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> anyhow::Result<()> {
    let Operations { tenants, keep_snapshots, result_cache_bytes } = operations;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down: no new connections; requests in flight finish");
        on_signal.cancel();
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let run = serving_refresh(catalog.store().clone(), Arc::clone(&catalog), tenants.clone(), keep_snapshots);
    let refresher = Arc::new(Refresher::new(run, Arc::clone(&clock), Arc::clone(&catalog.logs().refreshes)));
    let schedules: Vec<TenantSchedule> = tenants
        .iter()
        .map(|t| TenantSchedule {
            tenant: t.name.clone(),
            schedule: t.schedule.clone(),
            refresh_now: t.refresh_on_start && catalog.tenant(&t.name).is_some_and(|s| s.manifest.is_none()),
        })
        .collect();
    let scheduler = tokio::spawn(run_schedules(schedules, Arc::clone(&refresher), clock, SchedulePolicy::default(), shutdown.clone()));
    let server = Server::new(catalog, auth, limits, result_cache_bytes, refresher).with_tls(tls);
    let listeners = ServerListeners { flight_sql: listeners.flight_sql, postgres: listeners.postgres, http: listeners.http };
    let servers = server.serve(listeners, shutdown.clone());
    // Requests in flight get SHUTDOWN_GRACE to finish after the signal; then they are cut.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        done = servers => done,
        () = grace => {
            tracing::warn!("requests still running {} s after the stop signal were cut off", SHUTDOWN_GRACE.as_secs());
            return Ok(());
        }
    };
    let _ = scheduler.await;
    served?;
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM (what `docker stop` and systemd send). The handlers
/// are installed when this is called, so call it before announcing that the server listens.
fn stop_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            return Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn serve(config_path: &Path, overrides: Listen<Option<SocketAddr>>, insecure: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    if config.tenants.is_empty() {
        bail!("{}: no [[tenants]] configured; add one (see README)", config_path.display());
    }
    for t in &config.tenants {
        if let Some(path) = &t.calendars {
            CalendarRegistry::from_file(path).with_context(|| format!("tenant {}: calendars", t.name))?;
        }
    }
    let store = Store::open(&config.storage.root)?;
    let catalog = Arc::new(Catalog::new(store, config.tenants.iter().map(info_of).collect()).with_query_memory(Some(config.limits.query_memory_bytes as usize)));
    for t in &config.tenants {
        let state = catalog.load_tenant(&t.name).await?;
        match (&state.manifest, &state.problem) {
            (Some(m), None) => tracing::info!(tenant = %t.name, snapshot = %m.snapshot_id, rows = m.total_rows(), "serving"),
            (_, Some(p)) => tracing::warn!(tenant = %t.name, "{p}"),
            (None, None) => {}
        }
    }
    let listen = Listen {
        flight_sql: overrides.flight_sql.unwrap_or(config.server.flight_sql),
        postgres: overrides.postgres.unwrap_or(config.server.postgres),
        http: overrides.http.unwrap_or(config.server.http),
    };
    listen.refuse_exposure(config.users.is_empty(), insecure, ["server.flight_sql", "server.postgres", "server.http"], "add [[users]] to the config")?;
    let tls = config.server.tls.as_ref().map(TlsIdentity::load).transpose()?;
    let stop = stop_signal();
    let listeners = listen.bind(["server.flight_sql", "server.postgres", "server.http"]).await?;
    tracing::info!(
        "Flight SQL on {}, PostgreSQL on {}, HTTP on {}, {}, {}",
        listeners.flight_sql.local_addr()?,
        listeners.postgres.local_addr()?,
        listeners.http.local_addr()?,
        if tls.is_some() { "TLS" } else { "no TLS" },
        if config.users.is_empty() { "without authentication".to_string() } else { format!("{} users", config.users.len()) }
    );
    let auth = Arc::new(Authenticator::new(
        &config.users,
        config.server.token_secret.as_deref(),
        std::time::Duration::from_secs(config.limits.token_ttl_seconds),
    )
    .with_failed_login_limit(config.limits.failed_logins_per_minute));
    let operations = Operations { tenants: config.tenants, keep_snapshots: config.storage.keep_snapshots, result_cache_bytes: config.server.result_cache_bytes };
    run_server(catalog, auth, listeners, config.limits.clone(), tls, operations, stop).await?;
    Ok(ExitCode::SUCCESS)
}

async fn refresh(config_path: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
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

async fn query(
    config_path: Option<&Path>,
    data: Option<&Path>,
    tenant: Option<&str>,
    calendars: Option<&Path>,
    format: Format,
    sql: &str,
) -> anyhow::Result<ExitCode> {
    let calendar_registry = match calendars {
        Some(path) => Some(Arc::new(CalendarRegistry::from_file(path)?)),
        None => None,
    };
    let (store, mut infos, limits) = match (config_path, data) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            let infos = config.tenants.iter().map(info_of).collect();
            (Some(Store::open(&config.storage.root)?), infos, config.limits)
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!("--data {}: no such folder; run `salespulse demo` first or point --data at a storage root", dir.display());
            }
            let infos = tenants_in_folder(dir)?;
            (Some(Store::open(&resolve_root(Path::new("."), &dir.to_string_lossy()))?), infos, Limits::default())
        }
        (None, None) => (None, Vec::new(), Limits::default()),
    };
    if let Some(t) = tenant
        && !infos.iter().any(|i| i.name == t)
    {
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        bail!("--tenant {t}: no such tenant; available: {}", if names.is_empty() { "none".into() } else { names.join(", ") });
    }
    let store = match store {
        Some(s) => s,
        None => Store::open(&std::env::temp_dir().join("salespulse-empty").to_string_lossy())?,
    };
    if let Some(path) = calendars {
        for info in &mut infos {
            info.calendars = Some(path.to_path_buf());
        }
    }
    // A one-off query uses stored KPI tables but does not spend time building missing ones.
    let mut catalog = Catalog::new(store, infos.clone()).with_materialise(salespulse::catalog::kpi::Materialise::UseStored);
    if let Some(registry) = calendar_registry {
        catalog = catalog.with_fallback_calendars(registry);
    }
    for info in &infos {
        let state = catalog.load_tenant(&info.name).await?;
        if let Some(p) = &state.problem {
            eprintln!("warning: {p}");
        }
    }
    let ctx = catalog.session(tenant);
    let df = plan_query(&ctx, sql, salespulse::catalog::TextLimits::of(&limits), || catalog.missing_snapshot_hint()).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = df.execute_stream().await?.try_collect().await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            writeln!(out, "{table}")?;
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(0 rows; columns: {})", names.join(", "))?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
            for b in &batches {
                writer.write(b)?;
            }
        }
        Format::Json => {
            // Every column in every line, NULL as `null` (arrow leaves NULL keys out by
            // default; jq, pandas and other tools' JSON lines keep them).
            let mut writer = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::LineDelimited>(&mut out);
            for b in &batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The tenants of a storage root: its sub-folders with a valid tenant name.
fn tenants_in_folder(dir: &Path) -> anyhow::Result<Vec<TenantInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read --data {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && is_valid_tenant_name(&name) {
            out.push(TenantInfo {
                name,
                calendars: None,
                timezone: chrono_tz::UTC,
                settings: default_settings(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn check(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    println!("config {}: valid, {} tenant(s)", config_path.display(), config.tenants.len());
    let store = Store::open(&config.storage.root)?;
    println!("storage {}: reachable", store.display());
    let mut problems = 0;
    for t in &config.tenants {
        let connector = salespulse::connectors::connector_for(source_of(t), t.timezone);
        let probe = match connector.check().await {
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
                Ok(()) => println!("{}: current snapshot {} ({} rows, taken at {})", t.name, m.snapshot_id, m.total_rows(), m.taken_at),
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

async fn amocrm_auth(config_path: &Path, tenant: Option<&str>, code: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let candidates: Vec<&TenantConfig> = config.tenants.iter().filter(|t| matches!(t.source, SourceConfig::AmoCrm(_))).filter(|t| tenant.is_none_or(|n| t.name == n)).collect();
    let t = match candidates.as_slice() {
        [one] => *one,
        [] => anyhow::bail!("no amoCRM tenant{} in {}", tenant.map(|n| format!(" named {n}")).unwrap_or_default(), config_path.display()),
        _ => anyhow::bail!("several amoCRM tenants in {}; name one with --tenant", config_path.display()),
    };
    let SourceConfig::AmoCrm(cfg) = &t.source else { anyhow::bail!("tenant {} is not an amoCRM tenant", t.name) };
    let file = salespulse::connectors::amocrm::authorize(cfg, code).await.map_err(|e| anyhow::anyhow!("tenant {}: {e}", t.name))?;
    println!("{}: amoCRM tokens saved to {}; `salespulse refresh` can sync now", t.name, file.display());
    Ok(ExitCode::SUCCESS)
}

fn api_token() -> anyhow::Result<ExitCode> {
    let (token, digest) = salespulse_config::auth::new_api_token().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("token:            {token}");
    println!("api_token_sha256 = \"{digest}\"");
    Ok(ExitCode::SUCCESS)
}

fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("the password is empty; pipe it in, e.g. `printf '%s' \"$PASSWORD\" | salespulse hash-password`");
    }
    let hash = salespulse_config::auth::hash_password(password).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
