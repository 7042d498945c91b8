//! The TOML configuration (docs/design.md "Command line and configuration"): parsed raw with
//! serde, then validated into [`Config`] with one clear message per mistake.
//!
//! Relative paths (storage root, files folders, inputs, calendars) are resolved against
//! the folder of the configuration file, so a config works from any working directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

pub mod sources;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    storage: RawStorage,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    root: String,
    #[serde(default = "default_keep")]
    keep_snapshots: i64,
}

fn default_keep() -> i64 {
    10
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    flight_sql: Option<String>,
    postgres: Option<String>,
    http: Option<String>,
    result_cache: Option<String>,
    token_secret_env: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_env: Option<String>,
    password_hash: Option<String>,
    api_token_env: Option<String>,
    api_token_sha256: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
    /// Whether the user may start refreshes (`POST /tenants/{name}/refresh`), which spend the
    /// CRM's request quota; reading a tenant does not include it.
    #[serde(default)]
    refresh: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    query_memory: Option<String>,
    query_timeout_seconds: Option<u64>,
    max_concurrent_queries: Option<usize>,
    max_concurrent_queries_per_user: Option<usize>,
    queue_seconds: Option<u64>,
    max_result_rows: Option<u64>,
    max_result_bytes: Option<String>,
    max_sql_bytes: Option<usize>,
    token_ttl_seconds: Option<u64>,
    failed_logins_per_minute: Option<u32>,
    max_expression_depth: Option<usize>,
    max_statements_per_query: Option<usize>,
    login_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_connections_per_port: Option<usize>,
    max_prepared_per_connection: Option<usize>,
    max_concurrent_logins: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    calendars: Option<String>,
    schedule: Option<String>,
    refresh_on_start: Option<bool>,
    inputs: Option<String>,
    source: RawSource,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

fn default_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
// The CRM variants' fields are accepted and checked for shape now; their connectors read them.
#[allow(dead_code, clippy::large_enum_variant)]
enum RawSource {
    Demo {
        #[serde(default = "default_scale")]
        scale: f64,
        #[serde(default = "default_seed")]
        seed: u64,
    },
    Files {
        path: String,
        exported_at: Option<String>,
    },
    Bitrix24 {
        webhook_url: Option<String>,
        webhook_url_env: Option<String>,
        webhook_url_file: Option<String>,
        requests_per_second: Option<f64>,
        burst: Option<u32>,
        loss_reason_field: Option<String>,
        overlap_minutes: Option<u32>,
        reconcile_hours: Option<u32>,
        timeout_seconds: Option<u64>,
        portal_url: Option<String>,
        client_id: Option<String>,
        client_secret_env: Option<String>,
        client_secret_file: Option<String>,
        token_file: Option<String>,
        oauth_token_url: Option<String>,
    },
    Amocrm {
        account: Option<String>,
        base_url: Option<String>,
        token: Option<String>,
        token_env: Option<String>,
        token_file: Option<String>,
        client_id: Option<String>,
        client_secret_env: Option<String>,
        client_secret_file: Option<String>,
        redirect_uri: Option<String>,
        oauth_token_file: Option<String>,
        requests_per_second: Option<f64>,
        overlap_minutes: Option<u32>,
        full_sync_hours: Option<u32>,
        timeout_seconds: Option<u64>,
        max_429_in_a_row: Option<u32>,
        currency: Option<String>,
    },
}

fn default_scale() -> f64 {
    1.0
}
fn default_seed() -> u64 {
    42
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
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub flight_sql: SocketAddr,
    pub postgres: SocketAddr,
    /// `/health`, `/metrics` and on-demand refresh.
    pub http: SocketAddr,
    /// The Flight SQL result cache's size in bytes (0: off).
    pub result_cache_bytes: u64,
    /// The key that signs bearer tokens and tickets, from `server.token_secret_env`; when
    /// absent a random key is drawn at start, and tokens end with the process.
    pub token_secret: Option<Vec<u8>>,
    /// PEM certificate chain and private key: TLS on every protocol when set.
    pub tls: Option<TlsFiles>,
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

/// Where a secret (a webhook URL, a token) is read from when a refresh needs it; never
/// stored in snapshots or logged.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file itself (discouraged; the file must then be private).
    Inline { key: String, value: String },
    /// An environment variable.
    Env { key: String, name: String },
    /// A file holding the secret (Docker and Kubernetes secrets).
    File { key: String, path: PathBuf },
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SecretSource {
    /// Where the secret is configured, for messages: `tenants[0] (acme).source.webhook_url_env (ACME_HOOK)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Inline { key, .. } => key.clone(),
            Self::Env { key, name } => format!("{key} (environment variable {name})"),
            Self::File { key, path } => format!("{key} ({})", path.display()),
        }
    }

    /// The secret, trimmed.
    ///
    /// # Errors
    /// The variable is unset or the file unreadable; the message names what to set.
    pub fn resolve(&self) -> Result<String, String> {
        let value = match self {
            Self::Inline { value, .. } => value.clone(),
            Self::Env { name, .. } => std::env::var(name).map_err(|_| format!("the environment variable {name} is not set; set it ({})", self.describe()))?,
            Self::File { path, .. } => std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e} ({})", path.display(), self.describe()))?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(value)
    }
}

impl SourceConfig {
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
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let invalid = |key: &str, message: String| ConfigError::Invalid { path: path.to_path_buf(), key: key.to_string(), message };
        let storage = StorageConfig {
            root: resolve_root(&base, &raw.storage.root),
            keep_snapshots: usize::try_from(raw.storage.keep_snapshots)
                .ok()
                .filter(|k| *k >= 2)
                .ok_or_else(|| invalid("storage.keep_snapshots", format!("must be 2 or more, got {}", raw.storage.keep_snapshots)))?,
        };
        let address = |key: &str, value: Option<&str>, default: &str| -> Result<SocketAddr, ConfigError> {
            let v = value.unwrap_or(default);
            v.parse().map_err(|_| invalid(key, format!("'{v}' is not an address such as {default}")))
        };
        let flight_sql = address("server.flight_sql", raw.server.flight_sql.as_deref(), "127.0.0.1:50051")?;
        let postgres = address("server.postgres", raw.server.postgres.as_deref(), "127.0.0.1:5433")?;
        let http = address("server.http", raw.server.http.as_deref(), "127.0.0.1:8080")?;
        let token_secret = match &raw.server.token_secret_env {
            Some(var) => {
                let value = std::env::var(var).unwrap_or_default();
                if value.len() < 16 {
                    return Err(invalid("server.token_secret_env", format!("environment variable {var} must hold a secret of 16 or more characters")));
                }
                Some(value.into_bytes())
            }
            None => None,
        };
        let tls = match (&raw.server.tls_cert, &raw.server.tls_key) {
            (Some(cert), Some(key)) => {
                let files = TlsFiles { cert: base.join(cert), key: base.join(key) };
                for (k, file) in [("server.tls_cert", &files.cert), ("server.tls_key", &files.key)] {
                    if !file.is_file() {
                        return Err(invalid(k, format!("{} is not a readable file", file.display())));
                    }
                }
                Some(files)
            }
            (None, None) => None,
            _ => return Err(invalid("server.tls_cert", "set both tls_cert and tls_key (PEM files), or neither".into())),
        };
        let result_cache_bytes = match &raw.server.result_cache {
            Some(s) if s.trim() == "0" => 0,
            Some(s) => parse_bytes(s).ok_or_else(|| invalid("server.result_cache", format!("'{s}' is not a size such as 256MiB, or 0 to turn the cache off")))?,
            None => 256 << 20,
        };
        let server = ServerConfig { flight_sql, postgres, http, result_cache_bytes, token_secret, tls };
        let limits = limits(&raw.limits).map_err(|(key, message)| invalid(key, message))?;
        let mut tenants: Vec<TenantConfig> = Vec::new();
        for (i, t) in raw.tenants.into_iter().enumerate() {
            let key = |k: &str| format!("tenants[{i}] ({}).{k}", t.name);
            let key_of = key;
            if !is_valid_tenant_name(&t.name) {
                return Err(invalid(
                    &format!("tenants[{i}].name"),
                    format!("'{}' must be lower-case letters, digits and _, starting with a letter (it is the SQL catalog name)", t.name),
                ));
            }
            if tenants.iter().any(|other| other.name == t.name) {
                return Err(invalid(&key("name"), format!("tenant '{}' is defined twice", t.name)));
            }
            let timezone: Tz = t.timezone.parse().map_err(|_| {
                invalid(&key("timezone"), format!("'{}' is not an IANA time zone such as Europe/Moscow", t.timezone))
            })?;
            let source = match t.source {
                RawSource::Demo { scale, seed } => {
                    if !(scale > 0.0 && scale <= 100.0) {
                        return Err(invalid(&key("source.scale"), format!("must be above 0 and at most 100, got {scale}")));
                    }
                    SourceConfig::Demo { scale, seed }
                }
                RawSource::Files { path: folder, exported_at } => SourceConfig::Files {
                    path: base.join(folder),
                    exported_at: exported_at
                        .map(|s| {
                            DateTime::parse_from_rfc3339(&s).map(|d| d.with_timezone(&Utc)).map_err(|_| {
                                invalid(&key("source.exported_at"), format!("'{s}' is not an RFC 3339 time such as 2025-06-30T18:00:00+03:00"))
                            })
                        })
                        .transpose()?,
                },
                RawSource::Bitrix24 {
                    webhook_url,
                    webhook_url_env,
                    webhook_url_file,
                    requests_per_second,
                    burst,
                    loss_reason_field,
                    overlap_minutes,
                    reconcile_hours,
                    timeout_seconds,
                    portal_url,
                    client_id,
                    client_secret_env,
                    client_secret_file,
                    token_file,
                    oauth_token_url,
                } => {
                    use sources::bitrix24::{Bitrix24Auth, OAuthConfig};
                    let oauth = portal_url.is_some() || client_id.is_some() || token_file.is_some();
                    let auth = match (webhook_url, webhook_url_env, webhook_url_file) {
                        (Some(value), None, None) if !oauth => Bitrix24Auth::Webhook(SecretSource::Inline { key: key("source.webhook_url"), value }),
                        (None, Some(name), None) if !oauth => Bitrix24Auth::Webhook(SecretSource::Env { key: key("source.webhook_url_env"), name }),
                        (None, None, Some(file)) if !oauth => Bitrix24Auth::Webhook(SecretSource::File { key: key("source.webhook_url_file"), path: base.join(file) }),
                        (None, None, None) if oauth => {
                            let (Some(portal_url), Some(client_id), Some(token_file)) = (portal_url, client_id, token_file) else {
                                return Err(invalid(&key("source.portal_url"), "an OAuth app needs portal_url, client_id, client_secret_env (or client_secret_file) and token_file".into()));
                            };
                            let client_secret = match (client_secret_env, client_secret_file) {
                                (Some(name), None) => SecretSource::Env { key: key("source.client_secret_env"), name },
                                (None, Some(file)) => SecretSource::File { key: key("source.client_secret_file"), path: base.join(file) },
                                _ => return Err(invalid(&key("source.client_secret_env"), "set exactly one of client_secret_env and client_secret_file".into())),
                            };
                            Bitrix24Auth::OAuth(OAuthConfig {
                                portal_url,
                                client_id,
                                client_secret,
                                token_file: base.join(token_file),
                                token_url: oauth_token_url.unwrap_or_else(|| "https://oauth.bitrix.info/oauth/token/".into()),
                                key: key("source (OAuth app)"),
                            })
                        }
                        _ => {
                            return Err(invalid(
                                &key("source.webhook_url_env"),
                                "set exactly one of webhook_url_env (an environment variable holding https://PORTAL/rest/USER/CODE/), webhook_url_file or webhook_url; or, for an OAuth app, portal_url, client_id, client_secret_env and token_file".into(),
                            ));
                        }
                    };
                    let rate = sources::RateLimit { requests_per_second: requests_per_second.unwrap_or(2.0), burst: burst.unwrap_or(10) };
                    if !(rate.requests_per_second > 0.0 && rate.requests_per_second <= 50.0) {
                        return Err(invalid(&key("source.requests_per_second"), format!("must be above 0 and at most 50, got {}", rate.requests_per_second)));
                    }
                    if rate.burst == 0 || rate.burst > 250 {
                        return Err(invalid(&key("source.burst"), format!("must be 1 to 250, got {}", rate.burst)));
                    }
                    if let Some(field) = &loss_reason_field
                        && !(field.starts_with("UF_CRM_") && field.len() > 7)
                    {
                        return Err(invalid(&key("source.loss_reason_field"), format!("'{field}' is not a deal custom field; use its name such as UF_CRM_1753862633986")));
                    }
                    let timeout = timeout_seconds.unwrap_or(60);
                    if !(5..=600).contains(&timeout) {
                        return Err(invalid(&key("source.timeout_seconds"), format!("must be 5 to 600, got {timeout}")));
                    }
                    if reconcile_hours.is_some() {
                        // Accepted so that older configs still start; it no longer applies.
                        tracing::warn!(key = %key("source.reconcile_hours"), "reconcile_hours is no longer used: every incremental refresh scans ids for deleted records; remove the line");
                    }
                    SourceConfig::Bitrix24(Box::new(sources::bitrix24::Bitrix24Config {
                        auth,
                        rate,
                        loss_reason_field,
                        overlap: std::time::Duration::from_secs(u64::from(overlap_minutes.unwrap_or(10)) * 60),
                        timeout: std::time::Duration::from_secs(timeout),
                    }))
                }
                RawSource::Amocrm {
                    account,
                    base_url,
                    token,
                    token_env,
                    token_file,
                    client_id,
                    client_secret_env,
                    client_secret_file,
                    redirect_uri,
                    oauth_token_file,
                    requests_per_second,
                    overlap_minutes,
                    full_sync_hours,
                    timeout_seconds,
                    max_429_in_a_row,
                    currency,
                } => {
                    use sources::amocrm::{AmoCrmAuth, AmoCrmConfig, OAuthConfig};
                    let (base_url, base_key) = match (account, base_url) {
                        (Some(account), None) => {
                            let host = account.trim().trim_start_matches("https://").trim_end_matches('/').to_lowercase();
                            let sub = ["amocrm.ru", "amocrm.com", "kommo.com"].iter().find_map(|d| host.strip_suffix(&format!(".{d}")));
                            match sub {
                                Some(sub) if !sub.is_empty() && sub != "www" && !sub.contains('.') && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                                    (format!("https://{host}"), key("source.account"))
                                }
                                _ => {
                                    return Err(invalid(
                                        &key("source.account"),
                                        format!("'{account}' is not an account address; use SUBDOMAIN.amocrm.ru, SUBDOMAIN.amocrm.com or SUBDOMAIN.kommo.com (the address in the browser), or set base_url for a proxy"),
                                    ));
                                }
                            }
                        }
                        (None, Some(url)) => (url, key("source.base_url")),
                        _ => return Err(invalid(&key("source.account"), "set exactly one of account (SUBDOMAIN.amocrm.ru) and base_url (a proxy's address)".into())),
                    };
                    let oauth = client_id.is_some() || oauth_token_file.is_some() || redirect_uri.is_some();
                    let auth = match (token, token_env, token_file) {
                        (Some(value), None, None) if !oauth => AmoCrmAuth::LongLived(SecretSource::Inline { key: key("source.token"), value }),
                        (None, Some(name), None) if !oauth => AmoCrmAuth::LongLived(SecretSource::Env { key: key("source.token_env"), name }),
                        (None, None, Some(file)) if !oauth => AmoCrmAuth::LongLived(SecretSource::File { key: key("source.token_file"), path: base.join(file) }),
                        (None, None, None) if oauth => {
                            let (Some(client_id), Some(redirect_uri), Some(token_file)) = (client_id, redirect_uri, oauth_token_file) else {
                                return Err(invalid(&key("source.client_id"), "an OAuth integration needs client_id, client_secret_env (or client_secret_file), redirect_uri and oauth_token_file".into()));
                            };
                            let client_secret = match (client_secret_env, client_secret_file) {
                                (Some(name), None) => SecretSource::Env { key: key("source.client_secret_env"), name },
                                (None, Some(file)) => SecretSource::File { key: key("source.client_secret_file"), path: base.join(file) },
                                _ => return Err(invalid(&key("source.client_secret_env"), "set exactly one of client_secret_env and client_secret_file".into())),
                            };
                            AmoCrmAuth::OAuth(OAuthConfig { client_id, client_secret, redirect_uri, token_file: base.join(token_file), key: key("source (OAuth integration)") })
                        }
                        _ => {
                            return Err(invalid(
                                &key("source.token_env"),
                                "set exactly one of token_env (an environment variable holding a long-lived token), token_file or token; or, for an OAuth integration, client_id, client_secret_env, redirect_uri and oauth_token_file".into(),
                            ));
                        }
                    };
                    let requests_per_second = requests_per_second.unwrap_or(6.5);
                    if !(requests_per_second > 0.0 && requests_per_second <= 7.0) {
                        return Err(invalid(&key("source.requests_per_second"), format!("must be above 0 and at most 7 (amoCRM's limit), got {requests_per_second}")));
                    }
                    let timeout = timeout_seconds.unwrap_or(60);
                    if !(5..=600).contains(&timeout) {
                        return Err(invalid(&key("source.timeout_seconds"), format!("must be 5 to 600, got {timeout}")));
                    }
                    if max_429_in_a_row.is_some() {
                        // Accepted so that older configs still start; it no longer applies.
                        tracing::warn!(key = %key("source.max_429_in_a_row"), "max_429_in_a_row is no longer used: a 429 pauses every request to the account for the wait amoCRM names, and only amoCRM's block page stops a sync; remove the line");
                    }
                    let currency = currency.unwrap_or_else(|| "RUB".into()).to_uppercase();
                    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
                        return Err(invalid(&key("source.currency"), format!("'{currency}' is not an ISO 4217 code such as RUB")));
                    }
                    SourceConfig::AmoCrm(Box::new(AmoCrmConfig {
                        base_url,
                        base_key,
                        auth,
                        rate: sources::RateLimit { requests_per_second, burst: 1 },
                        overlap: std::time::Duration::from_secs(u64::from(overlap_minutes.unwrap_or(10)) * 60),
                        full_sync_every: std::time::Duration::from_secs(u64::from(full_sync_hours.unwrap_or(168)) * 3600),
                        timeout: std::time::Duration::from_secs(timeout),
                        currency,
                    }))
                }
            };
            let mut settings = default_settings();
            for (name, value) in t.settings {
                let text = match value {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                settings.insert(name, text);
            }
            for key in ["calls.success_threshold_seconds", "calls.callback_window_hours", "sla.first_response_minutes", "discipline.stale_days"] {
                let value = &settings[key];
                if value.parse::<u32>().is_err() {
                    return Err(invalid(&key_of(&format!("settings.\"{key}\"")), format!("'{value}' must be a whole number (seconds, hours, minutes or days), 0 or more")));
                }
            }
            let share = |key: &str| settings[key].parse::<f64>().ok().filter(|v| *v > 0.0 && *v <= 1.0);
            match (share("abc.a_share"), share("abc.b_share")) {
                (Some(a), Some(b)) if a <= b => {}
                _ => {
                    return Err(invalid(
                        &key_of("settings.\"abc.a_share\""),
                        format!("abc.a_share ({}) and abc.b_share ({}) must be fractions with 0 < a ≤ b ≤ 1", settings["abc.a_share"], settings["abc.b_share"]),
                    ));
                }
            }
            let schedule = t
                .schedule
                .as_deref()
                .map(|pattern| crate::schedule::Schedule::parse(pattern, timezone))
                .transpose()
                .map_err(|message| invalid(&key_of("schedule"), message))?;
            tenants.push(TenantConfig {
                name: t.name,
                timezone,
                calendars: t.calendars.map(|c| base.join(c)),
                schedule,
                refresh_on_start: t.refresh_on_start.unwrap_or(true),
                inputs: t.inputs.map(|p| base.join(p)),
                source,
                settings,
            });
        }
        let users = users(raw.users, &tenants).map_err(|(key, message)| invalid(&key, message))?;
        Ok(Config { path: path.to_path_buf(), storage, server, limits, users, tenants })
    }

    /// The tenant of that name.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// 32 bytes from 64 hexadecimal digits.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

fn users(raw: Vec<RawUser>, tenants: &[TenantConfig]) -> Result<Vec<UserConfig>, (String, String)> {
    let mut users: Vec<UserConfig> = Vec::new();
    for (i, u) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("users[{i}] ({}).{k}", u.name);
        if u.name.is_empty() || u.name.chars().any(|c| c.is_control() || c == ':') {
            return Err((format!("users[{i}].name"), "must be a non-empty name without ':' or control characters".into()));
        }
        if users.iter().any(|other| other.name == u.name) {
            return Err((key("name"), format!("user '{}' is defined twice", u.name)));
        }
        let password = match (u.password_hash, u.password_env) {
            (Some(hash), None) => {
                argon2::PasswordHash::new(&hash).map_err(|e| {
                    (key("password_hash"), format!("is not an argon2 PHC string such as $argon2id$v=19$m=19456,t=2,p=1$…: {e}"))
                })?;
                PasswordSecret::Hash(hash)
            }
            (None, Some(var)) => match std::env::var(&var) {
                Ok(p) if !p.is_empty() => PasswordSecret::Plain(p),
                _ => return Err((key("password_env"), format!("environment variable {var} is not set or empty"))),
            },
            _ => return Err((key("password_hash"), "give exactly one of password_hash and password_env".into())),
        };
        let api_token_sha256 = match (u.api_token_sha256, u.api_token_env) {
            (None, None) => None,
            (Some(hex), None) => Some(parse_sha256(&hex).ok_or_else(|| {
                (key("api_token_sha256"), "is not 64 hexadecimal digits; `salespulse api-token` prints a token and its digest".into())
            })?),
            (None, Some(var)) => match std::env::var(&var) {
                Ok(t) if t.len() >= 16 => Some(crate::auth::api_token_digest(&t)),
                Ok(t) if !t.is_empty() => {
                    return Err((key("api_token_env"), format!("environment variable {var} holds a token of {} characters; an API token has 16 or more (`salespulse api-token` makes one)", t.len())));
                }
                _ => return Err((key("api_token_env"), format!("environment variable {var} is not set or empty"))),
            },
            (Some(_), Some(_)) => return Err((key("api_token_sha256"), "give at most one of api_token_sha256 and api_token_env".into())),
        };
        let allowed = if u.tenants.iter().any(|t| t == "*") {
            None
        } else {
            if u.tenants.is_empty() {
                return Err((key("tenants"), "list the tenants this user may read, or [\"*\"] for all".into()));
            }
            for t in &u.tenants {
                if !tenants.iter().any(|known| &known.name == t) {
                    return Err((key("tenants"), format!("'{t}' is not a tenant of this file")));
                }
            }
            Some(u.tenants)
        };
        users.push(UserConfig { name: u.name, password, tenants: allowed, api_token_sha256, may_refresh: u.refresh });
    }
    Ok(users)
}

/// A storage root as written: URLs stay, local paths become absolute against `base`.
pub fn resolve_root(base: &Path, root: &str) -> String {
    if root.contains("://") {
        return root.to_string();
    }
    let path = base.join(root);
    std::path::absolute(&path).unwrap_or(path).to_string_lossy().into_owned()
}

fn limits(raw: &RawLimits) -> Result<Limits, (&'static str, String)> {
    let d = Limits::default();
    let positive = |key: &'static str, v: Option<u64>, default: u64| match v {
        Some(0) => Err((key, "must be above 0".to_string())),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(Limits {
        query_memory_bytes: match &raw.query_memory {
            Some(s) => parse_bytes(s).ok_or(("limits.query_memory", format!("'{s}' is not a size such as 512MiB or 2GiB")))?,
            None => d.query_memory_bytes,
        },
        query_timeout: std::time::Duration::from_secs(positive("limits.query_timeout_seconds", raw.query_timeout_seconds, 60)?),
        max_concurrent_queries: positive("limits.max_concurrent_queries", raw.max_concurrent_queries.map(|v| v as u64), 16)? as usize,
        max_concurrent_queries_per_user: positive(
            "limits.max_concurrent_queries_per_user",
            raw.max_concurrent_queries_per_user.map(|v| v as u64),
            d.max_concurrent_queries_per_user as u64,
        )? as usize,
        queue_wait: std::time::Duration::from_secs(raw.queue_seconds.unwrap_or(d.queue_wait.as_secs())),
        max_result_rows: positive("limits.max_result_rows", raw.max_result_rows, d.max_result_rows)?,
        max_result_bytes: match &raw.max_result_bytes {
            Some(s) => parse_bytes(s).ok_or(("limits.max_result_bytes", format!("'{s}' is not a size such as 512MiB or 2GiB")))?,
            None => d.max_result_bytes,
        },
        max_sql_bytes: positive("limits.max_sql_bytes", raw.max_sql_bytes.map(|v| v as u64), d.max_sql_bytes as u64)? as usize,
        token_ttl_seconds: positive("limits.token_ttl_seconds", raw.token_ttl_seconds, d.token_ttl_seconds)?,
        failed_logins_per_minute: positive("limits.failed_logins_per_minute", raw.failed_logins_per_minute.map(u64::from), u64::from(d.failed_logins_per_minute))?
            .min(u64::from(u32::MAX)) as u32,
        max_expression_depth: match positive("limits.max_expression_depth", raw.max_expression_depth.map(|v| v as u64), d.max_expression_depth as u64)? {
            v if v > MAX_EXPRESSION_DEPTH as u64 => {
                return Err(("limits.max_expression_depth", format!("{v} is more than {MAX_EXPRESSION_DEPTH}, the deepest the engine's stack is known to survive")));
            }
            v => v as usize,
        },
        max_statements_per_query: positive("limits.max_statements_per_query", raw.max_statements_per_query.map(|v| v as u64), d.max_statements_per_query as u64)? as usize,
        login_timeout: std::time::Duration::from_secs(positive("limits.login_timeout_seconds", raw.login_timeout_seconds, d.login_timeout.as_secs())?),
        idle_timeout: std::time::Duration::from_secs(positive("limits.idle_timeout_seconds", raw.idle_timeout_seconds, d.idle_timeout.as_secs())?),
        max_connections_per_port: positive("limits.max_connections_per_port", raw.max_connections_per_port.map(|v| v as u64), d.max_connections_per_port as u64)? as usize,
        max_prepared_per_connection: positive("limits.max_prepared_per_connection", raw.max_prepared_per_connection.map(|v| v as u64), d.max_prepared_per_connection as u64)?
            as usize,
        max_concurrent_logins: positive("limits.max_concurrent_logins", raw.max_concurrent_logins.map(|v| v as u64), d.max_concurrent_logins as u64)? as usize,
    })
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
