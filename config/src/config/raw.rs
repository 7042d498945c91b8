//! The configuration file as serde reads it, before any check: one struct per table, with
//! the defaults serde fills in. [`super::Config::parse`] validates these into the public types.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) root: String,
    #[serde(default = "default_keep")]
    pub(super) keep_snapshots: i64,
    pub(super) follow_seconds: Option<f64>,
    pub(super) follow_requests_per_second: Option<f64>,
    pub(super) retention_grace_seconds: Option<u64>,
    pub(super) lease_seconds: Option<u64>,
    pub(super) oauth_tokens: Option<String>,
}

fn default_keep() -> i64 {
    10
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) flight_sql: Option<String>,
    pub(super) postgres: Option<String>,
    pub(super) http: Option<String>,
    pub(super) result_cache: Option<String>,
    pub(super) token_secret_env: Option<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) role: Option<String>,
    pub(super) replica: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: String,
    pub(super) password_env: Option<String>,
    pub(super) password_hash: Option<String>,
    pub(super) api_token_env: Option<String>,
    pub(super) api_token_sha256: Option<String>,
    #[serde(default)]
    pub(super) tenants: Vec<String>,
    /// Whether the user may start refreshes (`POST /tenants/{name}/refresh`), which spend the
    /// CRM's request quota; reading a tenant does not include it.
    #[serde(default)]
    pub(super) refresh: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) query_memory: Option<String>,
    pub(super) query_timeout_seconds: Option<u64>,
    pub(super) max_concurrent_queries: Option<usize>,
    pub(super) max_concurrent_queries_per_user: Option<usize>,
    pub(super) queue_seconds: Option<u64>,
    pub(super) max_result_rows: Option<u64>,
    pub(super) max_result_bytes: Option<String>,
    pub(super) max_sql_bytes: Option<usize>,
    pub(super) token_ttl_seconds: Option<u64>,
    pub(super) failed_logins_per_minute: Option<u32>,
    pub(super) max_expression_depth: Option<usize>,
    pub(super) max_statements_per_query: Option<usize>,
    pub(super) login_timeout_seconds: Option<u64>,
    pub(super) idle_timeout_seconds: Option<u64>,
    pub(super) max_connections_per_port: Option<usize>,
    pub(super) max_prepared_per_connection: Option<usize>,
    pub(super) max_concurrent_logins: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub(super) name: String,
    #[serde(default = "default_timezone")]
    pub(super) timezone: String,
    pub(super) calendars: Option<String>,
    pub(super) schedule: Option<String>,
    pub(super) refresh_on_start: Option<bool>,
    pub(super) inputs: Option<String>,
    pub(super) source: RawSource,
    #[serde(default)]
    pub(super) settings: BTreeMap<String, toml::Value>,
}

fn default_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
// The CRM variants' fields are accepted and checked for shape now; their connectors read them.
#[allow(dead_code, clippy::large_enum_variant)]
pub(super) enum RawSource {
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
