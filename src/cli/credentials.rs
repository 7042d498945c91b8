//! The credential helpers: `hash-password` and `api-token` for [[users]], and `amocrm-auth`
//! for an amoCRM tenant's first OAuth token pair.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use salespulse_config::config::{Config, SourceConfig, TenantConfig};

pub(super) fn hash_password() -> anyhow::Result<ExitCode> {
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

pub(super) fn api_token() -> anyhow::Result<ExitCode> {
    let salespulse_config::auth::NewApiToken { token, sha256_hex: digest } = salespulse_config::auth::new_api_token().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("token:            {token}");
    println!("api_token_sha256 = \"{digest}\"");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn amocrm_auth(config_path: &Path, tenant: Option<&str>, code: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let candidates: Vec<&TenantConfig> = config.tenants.iter().filter(|t| matches!(t.source, SourceConfig::AmoCrm(_))).filter(|t| tenant.is_none_or(|n| t.name == n)).collect();
    let t = match candidates.as_slice() {
        [one] => *one,
        [] => anyhow::bail!("no amoCRM tenant{} in {}", tenant.map(|n| format!(" named {n}")).unwrap_or_default(), config_path.display()),
        _ => anyhow::bail!("several amoCRM tenants in {}; name one with --tenant", config_path.display()),
    };
    let SourceConfig::AmoCrm(cfg) = &t.source else { anyhow::bail!("tenant {} is not an amoCRM tenant", t.name) };
    let store = salespulse::snapshot::Store::open(&config.storage.root)?;
    let tokens = salespulse::refresh::token_home(&store, &t.name, config.storage.oauth_tokens_in_store);
    let saved_to = salespulse::connectors::amocrm::authorize(cfg, &tokens, code).await.map_err(|e| anyhow::anyhow!("tenant {}: {e}", t.name))?;
    println!("{}: amoCRM tokens saved to {saved_to}; `salespulse refresh` can sync now", t.name);
    Ok(ExitCode::SUCCESS)
}
