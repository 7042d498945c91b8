//! The TOML configuration (docs/design.md "Command line and configuration"): parsed raw with
//! serde (`raw`), then validated into [`Config`] one table at a time, with one clear message
//! per mistake: `[storage]` here, then `server`, `limits`, `tenants` and `users`.
//!
//! Relative paths (storage root, files folders, inputs, calendars) are resolved against
//! the folder of the configuration file, so a config works from any working directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use raw::{RawConfig, RawStorage};

mod limits;
mod raw;
mod secret;
mod server;
pub mod sources;
mod tenants;
mod users;

pub use secret::{SecretError, SecretSource};

/// A configuration mistake, naming the file and the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

/// A mistake one table's check found: the key to fix and what is wrong with its value.
/// [`Config::parse`] adds the file's path ([`ConfigError::Invalid`]).
struct Mistake {
    key: String,
    message: String,
}

impl Mistake {
    fn new(key: impl Into<String>, message: String) -> Mistake {
        Mistake { key: key.into(), message }
    }

    fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Invalid { path: path.to_path_buf(), key: self.key, message: self.message }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub storage: StorageConfig,
    pub server: ServerConfig,
    pub limits: Limits,
    /// Accounts for every protocol; none means the server runs without authentication.
    pub users: Vec<UserConfig>,
    pub tenants: Vec<TenantConfig>,
}

/// One account of `[[users]]`.
#[derive(Clone)]
pub struct UserConfig {
    pub name: String,
    pub password: PasswordSecret,
    /// The tenants this user may read; `None` for every tenant (`tenants = ["*"]`).
    pub tenants: Option<Vec<String>>,
    /// The SHA-256 of the user's static API token (`api_token_sha256`, or the digest of
    /// `api_token_env`'s value): a bearer token that does not expire, for clients that take
    /// a token and never log in (Grafana's and flightsql-dbapi's `token`, HTTP).
    pub api_token_sha256: Option<[u8; 32]>,
    /// Whether the user may start refreshes of the tenants they read (`refresh = true`).
    pub may_refresh: bool,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig").field("name", &self.name).field("tenants", &self.tenants).finish_non_exhaustive()
    }
}

/// How a user's password is checked. `Debug` never prints the secret.
#[derive(Clone)]
pub enum PasswordSecret {
    /// An argon2 PHC string (`$argon2id$…`), checked by argon2.
    Hash(String),
    /// A password read from an environment variable at start-up.
    Plain(String),
}

impl std::fmt::Debug for PasswordSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hash(_) => "Hash(…)",
            Self::Plain(_) => "Plain(…)",
        })
    }
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// A local folder (absolute) or an object-store URL (`s3://`, `gs://`, `az://`).
    pub root: String,
    /// How many committed snapshots to keep per tenant (at least 2, so the one a running
    /// query reads survives the next commit).
    pub keep_snapshots: usize,
    /// How often a server checks each tenant's `CURRENT` for a snapshot another process
    /// committed (one conditional read per tenant).
    pub follow_every: std::time::Duration,
    /// The most `CURRENT` checks a process makes per second: with more tenants than
    /// `follow_every` allows, each tenant is checked less often.
    pub follow_requests_per_second: f64,
    /// A snapshot that stopped being current is deleted by retention only this long after.
    pub retention_grace: std::time::Duration,
    /// How long a refresh's lease on its tenant lasts without renewal.
    pub lease: std::time::Duration,
    /// OAuth tokens live in the store (`oauth_tokens = "store"`, for a fleet: every
    /// refresher reads the pair the last one wrote), not in each tenant's token file.
    pub oauth_tokens_in_store: bool,
}

/// What a `serve` process does (`server.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Serves queries and runs the refreshes (one machine).
    #[default]
    All,
    /// Serves queries; never refreshes (a replica behind a load balancer).
    Query,
    /// Runs the refreshes; serves only HTTP (health, metrics, on-demand refresh).
    Refresh,
}

/// A `--replica` name from the command line, checked as `server.replica` is.
///
/// # Errors
/// The name is empty, too long, or has a character outside letters, digits, `.`, `_`, `-`.
pub fn replica_name(name: &str) -> Result<String, String> {
    server::replica_name("--replica", name).map_err(|m| format!("{}: {}", m.key, m.message))
}

impl Role {
    /// The role as written in the config or on the command line.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "all" => Some(Role::All),
            "query" => Some(Role::Query),
            "refresh" => Some(Role::Refresh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Query => "query",
            Role::Refresh => "refresh",
        }
    }

    pub fn serves_queries(self) -> bool {
        self != Role::Refresh
    }

    pub fn refreshes(self) -> bool {
        self != Role::Query
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub flight_sql: SocketAddr,
    pub postgres: SocketAddr,
    /// `/health`, `/metrics` and on-demand refresh.
    pub http: SocketAddr,
    /// The result cache's size in bytes, shared by Flight SQL and PostgreSQL (0: off for both).
    pub result_cache_bytes: u64,
    /// The key that signs bearer tokens and tickets, from `server.token_secret_env`; when
    /// absent a random key is drawn at start, and tokens end with the process.
    pub token_secret: Option<Vec<u8>>,
    /// PEM certificate chain and private key: TLS on every protocol when set.
    pub tls: Option<TlsFiles>,
    pub role: Role,
    /// This process's name: the holder of its leases, `system.queries.replica`, logs.
    pub replica: String,
}

/// The PEM files of `server.tls_cert` and `server.tls_key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The deepest `limits.max_expression_depth` may be set. The default (200) is what a debug
/// build survives on a 2 MiB stack with room to spare (an `OR` chain of 200 comparisons,
/// depth about 400, overflowed one; the security tests run queries at the default limit);
/// the server's worker threads have 8 MiB and a release build's frames are far smaller, so
/// up to this many is safe there.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// Query limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory one query may hold (its own DataFusion memory pool); over it the query fails.
    pub query_memory_bytes: u64,
    /// From the start of execution to the last row sent.
    pub query_timeout: std::time::Duration,
    /// Queries running at once, over all users.
    pub max_concurrent_queries: usize,
    /// Queries one user runs at once.
    pub max_concurrent_queries_per_user: usize,
    /// How long a query waits for a free slot before it is refused.
    pub queue_wait: std::time::Duration,
    pub max_result_rows: u64,
    /// Bytes of a result (Arrow memory of its batches).
    pub max_result_bytes: u64,
    pub max_sql_bytes: usize,
    pub token_ttl_seconds: u64,
    /// Failed logins one client address may make in a minute before it is refused.
    pub failed_logins_per_minute: u32,
    /// How deep a statement's expressions may nest (estimated from its tokens, before it is
    /// parsed): deeper ones would overflow the engine's stack.
    pub max_expression_depth: usize,
    /// Statements in one PostgreSQL simple query (`SELECT 1; SELECT 2`).
    pub max_statements_per_query: usize,
    /// From a connection's first byte to a finished login.
    pub login_timeout: std::time::Duration,
    /// How long a logged-in connection may wait between requests before it is closed.
    pub idle_timeout: std::time::Duration,
    /// Open connections per port (Flight SQL, PostgreSQL, HTTP each); more are refused.
    pub max_connections_per_port: usize,
    /// Prepared statements, portals and cursors one PostgreSQL connection may keep.
    pub max_prepared_per_connection: usize,
    /// Password checks (argon2, about 19 MiB each) running at once; more wait their turn.
    pub max_concurrent_logins: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            query_memory_bytes: 1 << 30,
            query_timeout: std::time::Duration::from_secs(60),
            max_concurrent_queries: 16,
            max_concurrent_queries_per_user: 8,
            queue_wait: std::time::Duration::from_secs(10),
            max_result_rows: 1_000_000,
            max_result_bytes: 1 << 30,
            max_sql_bytes: 1_000_000,
            token_ttl_seconds: 86_400,
            failed_logins_per_minute: 10,
            max_expression_depth: 200,
            max_statements_per_query: 32,
            login_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(900),
            max_connections_per_port: 256,
            max_prepared_per_connection: 256,
            max_concurrent_logins: 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The SQL catalog name.
    pub name: String,
    pub timezone: Tz,
    pub calendars: Option<PathBuf>,
    /// When `serve` refreshes the tenant (cron, in the tenant's zone).
    pub schedule: Option<crate::schedule::Schedule>,
    /// Whether `serve` refreshes a tenant that has no snapshot yet as it starts.
    pub refresh_on_start: bool,
    pub inputs: Option<PathBuf>,
    pub source: SourceConfig,
    /// The thresholds of docs/metrics.md and other settings, as text.
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Demo { scale: f64, seed: u64 },
    Files { path: PathBuf, exported_at: Option<DateTime<Utc>> },
    Bitrix24(Box<sources::bitrix24::Bitrix24Config>),
    AmoCrm(Box<sources::amocrm::AmoCrmConfig>),
}

impl SourceConfig {
    /// Whether the source signs in with an OAuth app, whose refresh tokens change on use.
    pub fn uses_oauth(&self) -> bool {
        match self {
            Self::Bitrix24(c) => matches!(c.auth, sources::bitrix24::Bitrix24Auth::OAuth(_)),
            Self::AmoCrm(c) => matches!(c.auth, sources::amocrm::AmoCrmAuth::OAuth(_)),
            Self::Demo { .. } | Self::Files { .. } => false,
        }
    }

    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Demo { .. } => "demo",
            Self::Files { .. } => "files",
            Self::Bitrix24(_) => "bitrix24",
            Self::AmoCrm(_) => "amocrm",
        }
    }
}

/// Default settings of every tenant (docs/metrics.md), overridden by `[tenants.settings]`.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("calls.success_threshold_seconds", "60"),
    ("calls.callback_window_hours", "24"),
    ("sla.first_response_minutes", "15"),
    ("discipline.stale_days", "3"),
    ("abc.a_share", "0.80"),
    ("abc.b_share", "0.95"),
];

/// The default settings as a map.
pub fn default_settings() -> BTreeMap<String, String> {
    DEFAULT_SETTINGS.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

/// Whether a name can be a tenant (an SQL catalog): lower-case ASCII letters, digits and `_`,
/// starting with a letter, so it needs no quoting in SQL.
pub fn is_valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, or a value is wrong; the error names the
    /// key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Validates configuration text; `path` is used for messages and relative paths.
    /// The tables are checked in this order, and the first mistake is the error.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let invalid = |mistake: Mistake| mistake.in_file(path);
        let storage = storage(&raw.storage, &base).map_err(invalid)?;
        let server = server::server(&raw.server, &base).map_err(invalid)?;
        let limits = limits::limits(&raw.limits).map_err(invalid)?;
        let tenants = tenants::tenants(raw.tenants, &base).map_err(invalid)?;
        check_grace(&storage, &limits, tenants.len()).map_err(invalid)?;
        let users = users::users(raw.users, &tenants).map_err(invalid)?;
        Ok(Config { path: path.to_path_buf(), storage, server, limits, users, tenants })
    }

    /// The tenant of that name.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// `[storage]`: the root (local paths made absolute against `base`), how many snapshots to
/// keep and for how long after they are replaced, how often to follow `CURRENT`, and the
/// refresh lease.
fn storage(raw: &RawStorage, base: &Path) -> Result<StorageConfig, Mistake> {
    let follow_seconds = raw.follow_seconds.unwrap_or(5.0);
    if !(0.1..=3600.0).contains(&follow_seconds) {
        return Err(Mistake::new("storage.follow_seconds", format!("must be between 0.1 and 3600, got {follow_seconds}")));
    }
    let follow_requests_per_second = raw.follow_requests_per_second.unwrap_or(20.0);
    if !(0.01..=10_000.0).contains(&follow_requests_per_second) {
        return Err(Mistake::new("storage.follow_requests_per_second", format!("must be between 0.01 and 10000, got {follow_requests_per_second}")));
    }
    let oauth_tokens_in_store = match raw.oauth_tokens.as_deref() {
        None | Some("files") => false,
        Some("store") => true,
        Some(other) => return Err(Mistake::new("storage.oauth_tokens", format!("'{other}' is not a place for tokens; use \"files\" (each tenant's token file) or \"store\" (next to its snapshots, for a fleet)"))),
    };
    let lease_seconds = raw.lease_seconds.unwrap_or(60);
    if !(3..=3600).contains(&lease_seconds) {
        return Err(Mistake::new("storage.lease_seconds", format!("must be between 3 and 3600, got {lease_seconds}")));
    }
    Ok(StorageConfig {
        root: resolve_root(base, &raw.root),
        keep_snapshots: usize::try_from(raw.keep_snapshots)
            .ok()
            .filter(|k| *k >= 2)
            .ok_or_else(|| Mistake::new("storage.keep_snapshots", format!("must be 2 or more, got {}", raw.keep_snapshots)))?,
        follow_every: std::time::Duration::from_secs_f64(follow_seconds),
        follow_requests_per_second,
        retention_grace: std::time::Duration::from_secs(raw.retention_grace_seconds.unwrap_or(900)),
        lease: std::time::Duration::from_secs(lease_seconds),
        oauth_tokens_in_store,
    })
}

/// A replaced snapshot must outlive the servers still reading it: one follow round to
/// notice the new one (longer than `follow_seconds` when the request budget stretches it
/// over many tenants), plus the longest query.
fn check_grace(storage: &StorageConfig, limits: &Limits, tenants: usize) -> Result<(), Mistake> {
    let round = storage.follow_every.max(std::time::Duration::from_secs_f64(tenants as f64 / storage.follow_requests_per_second));
    let needed = round + limits.query_timeout;
    if storage.retention_grace <= needed {
        return Err(Mistake::new(
            "storage.retention_grace_seconds",
            format!(
                "must be more than one follow round (storage.follow_seconds, or tenants / storage.follow_requests_per_second when longer) + limits.query_timeout_seconds ({:.0} s), got {} s: a server may still read a replaced snapshot that long",
                needed.as_secs_f64().ceil(),
                storage.retention_grace.as_secs()
            ),
        ));
    }
    Ok(())
}

/// A storage root as written: URLs stay, local paths become absolute against `base`.
pub fn resolve_root(base: &Path, root: &str) -> String {
    if root.contains("://") {
        return root.to_string();
    }
    let path = base.join(root);
    std::path::absolute(&path).unwrap_or(path).to_string_lossy().into_owned()
}

/// "1GiB", "512MiB", "100MB", "1048576" to bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes >= 1.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests;
