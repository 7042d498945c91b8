//! The `[server]` table: the three listening addresses, the secret that signs tokens, the TLS
//! files and the result cache's size.

use std::net::SocketAddr;
use std::path::Path;

use super::raw::RawServer;
use super::{Mistake, Role, ServerConfig, TlsFiles, parse_bytes};

/// `[server]`, validated; the TLS files are resolved against `base`.
pub(super) fn server(raw: &RawServer, base: &Path) -> Result<ServerConfig, Mistake> {
    let flight_sql = address("server.flight_sql", raw.flight_sql.as_deref(), "127.0.0.1:50051")?;
    let postgres = address("server.postgres", raw.postgres.as_deref(), "127.0.0.1:5433")?;
    let http = address("server.http", raw.http.as_deref(), "127.0.0.1:8080")?;
    let token_secret = token_secret(raw.token_secret_env.as_deref())?;
    let tls = tls(raw.tls_cert.as_deref(), raw.tls_key.as_deref(), base)?;
    let result_cache_bytes = result_cache_bytes(raw.result_cache.as_deref())?;
    let role = match raw.role.as_deref() {
        None => Role::All,
        Some(r) => Role::parse(r).ok_or_else(|| Mistake::new("server.role", format!("'{r}' is not a role; use \"all\", \"query\" or \"refresh\"")))?,
    };
    let replica = match raw.replica.as_deref() {
        Some(name) => replica_name("server.replica", name)?,
        None => default_replica(),
    };
    Ok(ServerConfig { flight_sql, postgres, http, result_cache_bytes, token_secret, tls, role, replica })
}

/// A replica name: 1 to 63 letters, digits, `.`, `_` or `-` (it is part of object names and
/// log lines).
pub(super) fn replica_name(key: &str, name: &str) -> Result<String, Mistake> {
    let ok = !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(name.to_string()) } else { Err(Mistake::new(key, format!("'{name}' is not a replica name: use 1 to 63 letters, digits, '.', '_' or '-'"))) }
}

/// `$HOSTNAME` (a Kubernetes pod's name), else the host name, else `local`.
fn default_replica() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_file = || std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string());
    from_env.or_else(from_file).and_then(|n| replica_name("server.replica", &n).ok()).unwrap_or_else(|| "local".to_string())
}

/// A listening address, `default` when the key is not set.
fn address(key: &str, value: Option<&str>, default: &str) -> Result<SocketAddr, Mistake> {
    let v = value.unwrap_or(default);
    v.parse().map_err(|_| Mistake::new(key, format!("'{v}' is not an address such as {default}")))
}

/// `token_secret_env`: the environment variable holding the key that signs tokens, 16
/// characters or more.
fn token_secret(var: Option<&str>) -> Result<Option<Vec<u8>>, Mistake> {
    Ok(match var {
        Some(var) => {
            let value = std::env::var(var).unwrap_or_default();
            if value.len() < 16 {
                return Err(Mistake::new("server.token_secret_env", format!("environment variable {var} must hold a secret of 16 or more characters")));
            }
            Some(value.into_bytes())
        }
        None => None,
    })
}

/// `tls_cert` and `tls_key`: both readable PEM files, or neither.
fn tls(cert: Option<&str>, key: Option<&str>, base: &Path) -> Result<Option<TlsFiles>, Mistake> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles { cert: base.join(cert), key: base.join(key) };
            for (k, file) in [("server.tls_cert", &files.cert), ("server.tls_key", &files.key)] {
                if !file.is_file() {
                    return Err(Mistake::new(k, format!("{} is not a readable file", file.display())));
                }
            }
            Some(files)
        }
        (None, None) => None,
        _ => return Err(Mistake::new("server.tls_cert", "set both tls_cert and tls_key (PEM files), or neither".into())),
    })
}

/// `result_cache`: a size, 0 to turn the cache off, 256 MiB when not set.
fn result_cache_bytes(value: Option<&str>) -> Result<u64, Mistake> {
    Ok(match value {
        Some(s) if s.trim() == "0" => 0,
        Some(s) => parse_bytes(s).ok_or_else(|| Mistake::new("server.result_cache", format!("'{s}' is not a size such as 256MiB, or 0 to turn the cache off")))?,
        None => 256 << 20,
    })
}
