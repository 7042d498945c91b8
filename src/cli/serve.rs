//! `salespulse serve`: every tenant of a config file over Flight SQL, PostgreSQL and HTTP,
//! with their refresh schedules, following snapshots other processes commit; as a fleet's
//! query replica or refresher with `--role`. The listeners, the shutdown on SIGINT/SIGTERM,
//! and the server run that `demo` shares.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use salespulse::catalog::Catalog;
use salespulse_udfs::CalendarRegistry;
use salespulse_config::config::{Config, Limits, Role, TenantConfig};
use salespulse::catalog::kpi::Materialise;
use salespulse::follow::{FollowPolicy, follow_current};
use salespulse::refresh::{RefreshOptions, serving_refresh};
use salespulse::scheduler::{Clock, Refresher, SchedulePolicy, SystemClock, TenantSchedule, run_schedules};
use salespulse_config::auth::Authenticator;
use salespulse::server::tls::TlsIdentity;
use salespulse::server::{Listeners as ServerListeners, Server};
use salespulse::snapshot::Store;

use super::info_of;

pub(super) async fn serve(config_path: &Path, overrides: Listen<Option<SocketAddr>>, insecure: bool, role: Option<Role>, replica: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    if config.tenants.is_empty() {
        bail!("{}: no [[tenants]] configured; add one (see README)", config_path.display());
    }
    let role = role.unwrap_or(config.server.role);
    let replica = match replica {
        Some(name) => salespulse_config::config::replica_name(name).map_err(anyhow::Error::msg)?,
        None => config.server.replica.clone(),
    };
    // A replica behind a load balancer gets tickets, prepared handles and bearer tokens that
    // another replica signed: they must share the key.
    if role == Role::Query && config.server.token_secret.is_none() {
        bail!(
            "{}: server.role = \"query\" needs server.token_secret_env: every replica must sign and accept the same tickets and tokens; set it to the name of an environment variable holding one secret (16+ characters) shared by the fleet",
            config_path.display()
        );
    }
    for t in &config.tenants {
        if let Some(path) = &t.calendars {
            CalendarRegistry::from_file(path).with_context(|| format!("tenant {}: calendars", t.name))?;
        }
    }
    let store = Store::open(&config.storage.root)?;
    // Two refreshers with their own token files would spend one single-use refresh token
    // twice: a fleet keeps the tokens in the store.
    let oauth = |t: &&TenantConfig| t.source.uses_oauth();
    if role == Role::Refresh && !config.storage.oauth_tokens_in_store && config.tenants.iter().any(|t| oauth(&t)) {
        tracing::warn!("tenants sign in with OAuth and their tokens are in token files on this machine; with more than one refresher set storage.oauth_tokens = \"store\", or each refresher spends the others' refresh tokens");
    }
    // A query replica never builds KPI tables: the refresher that wrote the snapshot did.
    let materialise = if role.refreshes() { Materialise::Build } else { Materialise::UseStored };
    let catalog = Arc::new(
        Catalog::new(store, config.tenants.iter().map(info_of).collect())
            .with_query_memory(Some(config.limits.query_memory_bytes as usize))
            .with_materialise(materialise)
            .with_replica(&replica),
    );
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
    let listeners = listen.bind(["server.flight_sql", "server.postgres", "server.http"], role).await?;
    let security = format!(
        "{}, {}",
        if tls.is_some() { "TLS" } else { "no TLS" },
        if config.users.is_empty() { "without authentication".to_string() } else { format!("{} users", config.users.len()) }
    );
    match (&listeners.flight_sql, &listeners.postgres) {
        (Some(flight_sql), Some(postgres)) => tracing::info!(
            "Flight SQL on {}, PostgreSQL on {}, HTTP on {}, {security}, role {}, replica {replica}",
            flight_sql.local_addr()?,
            postgres.local_addr()?,
            listeners.http.local_addr()?,
            role.as_str()
        ),
        _ => tracing::info!("refresher: HTTP on {}, {security}, role {}, replica {replica}", listeners.http.local_addr()?, role.as_str()),
    }
    let auth = Arc::new(Authenticator::new(
        &config.users,
        config.server.token_secret.as_deref(),
        std::time::Duration::from_secs(config.limits.token_ttl_seconds),
    )
    .with_failed_login_limit(config.limits.failed_logins_per_minute));
    let operations = Operations {
        tenants: config.tenants,
        refresh: RefreshOptions::of(&config.storage, &replica),
        result_cache_bytes: config.server.result_cache_bytes,
        role,
        follow: FollowPolicy { every: config.storage.follow_every, max_per_second: config.storage.follow_requests_per_second },
    };
    run_server(catalog, auth, listeners, config.limits.clone(), tls, operations, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// The addresses the server listens on.
pub(super) struct Listen<A = SocketAddr> {
    pub(super) flight_sql: A,
    pub(super) postgres: A,
    pub(super) http: A,
}

/// Bound listeners, so a busy port is reported before anything is served. A refresher
/// binds only HTTP.
pub(super) struct Listeners {
    pub(super) flight_sql: Option<TcpListener>,
    pub(super) postgres: Option<TcpListener>,
    pub(super) http: TcpListener,
}

impl Listen {
    /// Without users, every address must be loopback unless `insecure`: otherwise anyone
    /// who can reach the port reads every tenant.
    pub(super) fn refuse_exposure(&self, no_users: bool, insecure: bool, keys: [&str; 3], fix: &str) -> anyhow::Result<()> {
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

    /// Binds the addresses `role` serves; `keys` name the option or config key of each, for
    /// messages.
    pub(super) async fn bind(&self, keys: [&str; 3], role: Role) -> anyhow::Result<Listeners> {
        let bind = |addr: SocketAddr, key: &str| {
            let key = key.to_string();
            async move { TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})")) }
        };
        let (flight_sql, postgres) = if role.serves_queries() {
            (Some(bind(self.flight_sql, keys[0]).await?), Some(bind(self.postgres, keys[1]).await?))
        } else {
            (None, None)
        };
        Ok(Listeners { flight_sql, postgres, http: bind(self.http, keys[2]).await? })
    }
}

/// How long requests in flight may run on after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a server refreshes, follows and caches besides serving.
pub(super) struct Operations {
    /// The tenants, as configured (their sources and schedules).
    pub(super) tenants: Vec<TenantConfig>,
    pub(super) refresh: RefreshOptions,
    pub(super) result_cache_bytes: u64,
    pub(super) role: Role,
    pub(super) follow: FollowPolicy,
}

/// Serves every protocol and runs the tenants' schedules until SIGINT or SIGTERM; then
/// stops accepting, lets the requests in flight finish (for up to `SHUTDOWN_GRACE`), and
/// stops scheduled refreshes (a refresh cut short leaves no snapshot: `CURRENT` moves only
/// after a complete write).
pub(super) async fn run_server(
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    listeners: Listeners,
    limits: Limits,
    tls: Option<TlsIdentity>,
    operations: Operations,
    stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> anyhow::Result<()> {
    let Operations { tenants, refresh, result_cache_bytes, role, follow } = operations;
    let replica_name = refresh.holder.clone();
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down: no new connections; requests in flight finish");
        on_signal.cancel();
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let run = serving_refresh(catalog.store().clone(), Arc::clone(&catalog), tenants.clone(), refresh);
    // Every attempt is stored beside the tenant's snapshots too: `system.refreshes` of every
    // process shows the fleet's refreshes.
    let refresher = Arc::new(
        Refresher::new(run, Arc::clone(&clock), Arc::clone(&catalog.logs().refreshes)).with_shared_history(catalog.store().clone(), &replica_name),
    );
    // Every role follows the snapshots other processes commit.
    let follower = tokio::spawn(follow_current(Arc::clone(&catalog), follow, shutdown.clone()));
    // A query replica runs no schedules: the refreshers do.
    let schedules: Vec<TenantSchedule> = tenants
        .iter()
        .filter(|_| role.refreshes())
        .map(|t| TenantSchedule {
            tenant: t.name.clone(),
            schedule: t.schedule.clone(),
            refresh_now: t.refresh_on_start && catalog.tenant(&t.name).is_some_and(|s| s.manifest.is_none()),
        })
        .collect();
    let scheduler = tokio::spawn(run_schedules(schedules, Arc::clone(&refresher), clock, SchedulePolicy::default(), shutdown.clone()));
    let server = Server::new(catalog, auth, limits, result_cache_bytes, refresher).with_tls(tls).with_role(role);
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
    let _ = follower.await;
    served?;
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM (what `docker stop` and systemd send). The handlers
/// are installed when this is called, so call it before announcing that the server listens.
pub(super) fn stop_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
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
