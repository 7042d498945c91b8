//! The command line (docs/design.md § Command line and configuration): `demo`, `serve`,
//! `refresh`, `query`, `check` and the credential helpers. This module holds the clap
//! definitions and the dispatch; each command's code is in its own module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) mod progress;
mod check;
mod credentials;
mod demo;
mod query;
mod refresh;
mod serve;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use salespulse::catalog::TenantInfo;
use salespulse_config::config::TenantConfig;

use serve::Listen;

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
        /// Overrides [server].role: `all` (serve and refresh), `query` (a replica that never
        /// refreshes) or `refresh` (runs the refreshes, serves only HTTP).
        #[arg(long, env = "SALESPULSE_ROLE", value_parser = ["all", "query", "refresh"])]
        role: Option<String>,
        /// Overrides [server].replica: this process's name in leases, logs and
        /// system.queries.
        #[arg(long, env = "SALESPULSE_REPLICA")]
        replica: Option<String>,
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
            demo::demo(scale, seed, &data, as_of, Listen { flight_sql, postgres, http }, no_serve, insecure).await
        }
        Command::Serve { config, flight_sql, postgres, http, insecure, role, replica } => {
            let role = role.as_deref().and_then(salespulse_config::config::Role::parse);
            serve::serve(&config, Listen { flight_sql, postgres, http }, insecure, role, replica.as_deref()).await
        }
        Command::Refresh { config, tenant } => refresh::refresh(&config, tenant.as_deref()).await,
        Command::Query { config, data, tenant, calendars, format, sql } => {
            query::query(config.as_deref(), data.as_deref(), tenant.as_deref(), calendars.as_deref(), format, &sql).await
        }
        Command::Check { config } => check::check(&config).await,
        Command::HashPassword => credentials::hash_password(),
        Command::ApiToken => credentials::api_token(),
        Command::AmocrmAuth { config, tenant, code } => credentials::amocrm_auth(&config, tenant.as_deref(), &code).await,
    }
}

fn info_of(t: &TenantConfig) -> TenantInfo {
    TenantInfo { name: t.name.clone(), timezone: t.timezone, settings: t.settings.clone(), calendars: t.calendars.clone() }
}
