//! The `[[users]]` accounts: a name, a password (an argon2 hash or an environment variable),
//! an optional static API token, and the tenants each may read.

use super::raw::RawUser;
use super::{Mistake, PasswordSecret, TenantConfig, UserConfig};

/// Every `[[users]]` entry, validated against the file's tenants.
pub(super) fn users(raw: Vec<RawUser>, tenants: &[TenantConfig]) -> Result<Vec<UserConfig>, Mistake> {
    let mut users: Vec<UserConfig> = Vec::new();
    for (i, u) in raw.into_iter().enumerate() {
        let user = user(i, u, &users, tenants)?;
        users.push(user);
    }
    Ok(users)
}

/// `users[i]`: a name no user before it (`earlier`) has, its password, API token and tenants.
fn user(i: usize, u: RawUser, earlier: &[UserConfig], tenants: &[TenantConfig]) -> Result<UserConfig, Mistake> {
    let key = |k: &str| format!("users[{i}] ({}).{k}", u.name);
    if u.name.is_empty() || u.name.chars().any(|c| c.is_control() || c == ':') {
        return Err(Mistake::new(format!("users[{i}].name"), "must be a non-empty name without ':' or control characters".into()));
    }
    if earlier.iter().any(|other| other.name == u.name) {
        return Err(Mistake::new(key("name"), format!("user '{}' is defined twice", u.name)));
    }
    let password = password(u.password_hash, u.password_env, &key)?;
    let api_token_sha256 = api_token_sha256(u.api_token_sha256, u.api_token_env, &key)?;
    let allowed = allowed_tenants(u.tenants, tenants, &key)?;
    Ok(UserConfig { name: u.name, password, tenants: allowed, api_token_sha256, may_refresh: u.refresh })
}

/// `password_hash` (an argon2 PHC string) or `password_env` (a variable holding the
/// password), exactly one.
fn password(hash: Option<String>, env: Option<String>, key: &impl Fn(&str) -> String) -> Result<PasswordSecret, Mistake> {
    Ok(match (hash, env) {
        (Some(hash), None) => {
            argon2::PasswordHash::new(&hash).map_err(|e| {
                Mistake::new(key("password_hash"), format!("is not an argon2 PHC string such as $argon2id$v=19$m=19456,t=2,p=1$…: {e}"))
            })?;
            PasswordSecret::Hash(hash)
        }
        (None, Some(var)) => match std::env::var(&var) {
            Ok(p) if !p.is_empty() => PasswordSecret::Plain(p),
            _ => return Err(Mistake::new(key("password_env"), format!("environment variable {var} is not set or empty"))),
        },
        _ => return Err(Mistake::new(key("password_hash"), "give exactly one of password_hash and password_env".into())),
    })
}

/// The static API token's digest: `api_token_sha256` as written, or the digest of
/// `api_token_env`'s token (16 characters or more); at most one of them.
fn api_token_sha256(hex: Option<String>, env: Option<String>, key: &impl Fn(&str) -> String) -> Result<Option<[u8; 32]>, Mistake> {
    Ok(match (hex, env) {
        (None, None) => None,
        (Some(hex), None) => Some(parse_sha256(&hex).ok_or_else(|| {
            Mistake::new(key("api_token_sha256"), "is not 64 hexadecimal digits; `salespulse api-token` prints a token and its digest".into())
        })?),
        (None, Some(var)) => match std::env::var(&var) {
            Ok(t) if t.len() >= 16 => Some(crate::auth::api_token_digest(&t)),
            Ok(t) if !t.is_empty() => {
                return Err(Mistake::new(key("api_token_env"), format!("environment variable {var} holds a token of {} characters; an API token has 16 or more (`salespulse api-token` makes one)", t.len())));
            }
            _ => return Err(Mistake::new(key("api_token_env"), format!("environment variable {var} is not set or empty"))),
        },
        (Some(_), Some(_)) => return Err(Mistake::new(key("api_token_sha256"), "give at most one of api_token_sha256 and api_token_env".into())),
    })
}

/// The tenants a user may read: `None` for `["*"]`, else a non-empty list of this file's
/// tenants.
fn allowed_tenants(listed: Vec<String>, tenants: &[TenantConfig], key: &impl Fn(&str) -> String) -> Result<Option<Vec<String>>, Mistake> {
    Ok(if listed.iter().any(|t| t == "*") {
        None
    } else {
        if listed.is_empty() {
            return Err(Mistake::new(key("tenants"), "list the tenants this user may read, or [\"*\"] for all".into()));
        }
        for t in &listed {
            if !tenants.iter().any(|known| &known.name == t) {
                return Err(Mistake::new(key("tenants"), format!("'{t}' is not a tenant of this file")));
            }
        }
        Some(listed)
    })
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
