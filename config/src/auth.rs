//! Who is asking: the `[[users]]` accounts, shared by every protocol.
//!
//! A request carries `authorization: Basic …` (checked against the user's argon2 hash or
//! password, in constant time) or `Bearer …` (a token this server signed at a Flight SQL
//! handshake: user, expiry and an HMAC-SHA256 over both). Without `[[users]]` the server
//! runs without authentication: every request is the anonymous principal, which reads every
//! tenant, and whatever credentials a client sends (`Bearer None` included) are ignored.
//!
//! The same key signs statement tickets and prepared-statement handles, so a ticket is
//! self-contained (any replica with the key can redeem it) and bound to its user.
//!
//! Layout: this file holds the accounts and the checks every request goes through;
//! `passwords` checks (and hashes) passwords, `failed_logins` throttles an address that
//! guesses, `tokens` issues and checks bearer tokens and static API tokens, and `seal` is the
//! HMAC key at work (constant-time comparison, sealed tickets).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::Sha256;

use crate::config::{PasswordSecret, UserConfig};

mod failed_logins;
mod passwords;
mod seal;
mod tokens;

use failed_logins::FailedLogins;
use passwords::decoy_hash;
pub use passwords::{HashPasswordError, hash_password};
pub use tokens::{ApiTokenError, NewApiToken, api_token_digest, new_api_token};

/// Standard base64 that accepts input with or without `=` padding: Go clients send
/// unpadded Basic credentials, Java and C++ padded ones.
const LENIENT_BASE64: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));
const URL_BASE64: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a request was refused. Messages never contain the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("authentication required: send a user name and password (Basic) or the bearer token from the handshake")]
    Missing,
    #[error("the authorization header is not 'Basic <base64 user:password>' or 'Bearer <token>'")]
    Malformed,
    #[error("wrong user name or password")]
    WrongPassword,
    #[error("the bearer token is not valid for this server; log in again with user name and password")]
    BadToken,
    #[error("the bearer token expired; log in again with user name and password")]
    Expired,
    #[error("too many failed logins from this address; try again in {seconds} s")]
    Throttled { seconds: u64 },
    #[error("too many logins are being checked at once; try again in a moment")]
    Busy,
}

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// The tenants this principal may read; `None` for all.
    pub tenants: Option<Vec<String>>,
    /// Whether the principal may start refreshes of the tenants it reads.
    pub may_refresh: bool,
}

impl Principal {
    /// The principal of a server without `[[users]]`.
    pub fn anonymous() -> Principal {
        // Without users the server is the operator's own (loopback unless --insecure).
        Principal { user: "anonymous".into(), tenants: None, may_refresh: true }
    }

    pub fn may_read(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|list| list.iter().any(|t| t == tenant))
    }
}

struct Account {
    password: PasswordSecret,
    tenants: Option<Vec<String>>,
    may_refresh: bool,
}

impl Account {
    fn principal(&self, user: &str) -> Principal {
        Principal { user: user.to_string(), tenants: self.tenants.clone(), may_refresh: self.may_refresh }
    }
}

/// Checks credentials and signs tokens.
pub struct Authenticator {
    accounts: HashMap<String, Account>,
    /// Static API tokens by their SHA-256, to their user.
    api_tokens: HashMap<[u8; 32], String>,
    key: Vec<u8>,
    token_ttl: Duration,
    failed: FailedLogins,
    /// Password checks running now, at most `max_checks` (argon2 takes ~19 MiB each).
    checks: (std::sync::Mutex<(usize, usize)>, std::sync::Condvar),
    max_checks: usize,
    /// An argon2 hash of a random password, checked for unknown users so that a user name
    /// cannot be probed by timing when accounts have argon2 hashes.
    decoy_hash: Option<String>,
    /// The clock tokens are issued and checked against (tests move it).
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.accounts.keys().collect::<Vec<_>>())
            .field("token_ttl", &self.token_ttl)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `users`; an empty list turns authentication off. Without a
    /// configured `secret` a random key is drawn, so tokens end with the process.
    pub fn new(users: &[UserConfig], secret: Option<&[u8]>, token_ttl: Duration) -> Authenticator {
        let key = match secret {
            Some(s) => s.to_vec(),
            None => {
                let mut key = vec![0u8; 32];
                if getrandom::fill(&mut key).is_err() {
                    // No OS randomness: fall back to the clock and the process id, which still
                    // differ per start; tokens then only guard against casual forgery.
                    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
                    key = sha2::Digest::finalize(<Sha256 as sha2::Digest>::new_with_prefix(format!("{nanos}:{}", std::process::id()))).to_vec();
                }
                key
            }
        };
        let accounts = users
            .iter()
            .map(|u| (u.name.clone(), Account { password: u.password.clone(), tenants: u.tenants.clone(), may_refresh: u.may_refresh }))
            .collect();
        let api_tokens = users.iter().filter_map(|u| u.api_token_sha256.map(|d| (d, u.name.clone()))).collect();
        let failed = FailedLogins { per_minute: crate::config::Limits::default().failed_logins_per_minute, recent: Default::default() };
        let decoy_hash = users.iter().any(|u| matches!(u.password, PasswordSecret::Hash(_))).then(|| decoy_hash(&key)).flatten();
        Authenticator {
            accounts,
            api_tokens,
            key,
            token_ttl,
            failed,
            checks: Default::default(),
            max_checks: crate::config::Limits::default().max_concurrent_logins,
            decoy_hash,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// At most `max` password checks run at once (`limits.max_concurrent_logins`); more
    /// wait their turn.
    pub fn with_concurrent_checks(mut self, max: usize) -> Authenticator {
        self.max_checks = max.max(1);
        self
    }

    /// Issues and checks tokens against `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Authenticator {
        self.clock = clock;
        self
    }

    /// Refuses an address after `per_minute` failed logins in a minute
    /// (`limits.failed_logins_per_minute`).
    pub fn with_failed_login_limit(mut self, per_minute: u32) -> Authenticator {
        self.failed.per_minute = per_minute.max(1);
        self
    }

    /// No accounts: every request is anonymous.
    pub fn disabled() -> Authenticator {
        Authenticator::new(&[], None, Duration::from_secs(86_400))
    }

    pub fn enabled(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// Checks a user name and password sent from `peer`. Argon2 is deliberately slow: call
    /// this from a blocking-friendly context. A failure is logged (user and address, never
    /// the password) and counted against the address.
    ///
    /// # Errors
    /// [`AuthError::WrongPassword`] for an unknown user or a wrong password alike;
    /// [`AuthError::Throttled`] when the address failed too often in the last minute.
    pub fn check_password(&self, user: &str, password: &str, peer: Option<IpAddr>) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        let reserved = match peer.map(|p| self.failed.reserve(p)) {
            Some(Err(wait)) => {
                tracing::warn!(user, peer = ?peer, "login refused without a check: too many failed logins from this address");
                return Err(AuthError::Throttled { seconds: wait.as_secs().max(1) });
            }
            Some(Ok(at)) => peer.map(|p| (p, at)),
            None => None,
        };
        let checked = match self.check_turn() {
            Some(_turn) => self.verify_password(user, password),
            None => {
                // Not a failure of this address: its attempt is given back.
                if let Some((p, at)) = reserved {
                    self.failed.forgive(p, at);
                }
                return Err(AuthError::Busy);
            }
        };
        match (&checked, reserved) {
            (Ok(_), Some((p, at))) => self.failed.forgive(p, at),
            (Err(_), _) => tracing::warn!(user, peer = ?peer, "failed login: wrong user name or password"),
            _ => {}
        }
        checked
    }

    /// The principal of a request with this `authorization` header value, from `peer`.
    ///
    /// # Errors
    /// See [`AuthError`]; never when authentication is off.
    pub fn check_header(&self, header: Option<&str>, peer: Option<IpAddr>) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        match parse_authorization(header.ok_or(AuthError::Missing)?)? {
            Credentials::Basic { user, password } => self.check_password(&user, &password, peer),
            Credentials::Bearer(token) => self.check_token(&token),
        }
    }
}

/// Credentials as sent in an `authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Parses `Basic <base64(user:password)>` (padded or not) or `Bearer <token>`; the scheme
/// is case-insensitive.
///
/// # Errors
/// [`AuthError::Malformed`].
pub fn parse_authorization(value: &str) -> Result<Credentials, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = LENIENT_BASE64.decode(rest).map_err(|_| AuthError::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(AuthError::Malformed)?;
        Ok(Credentials::Basic { user: user.to_string(), password: password.to_string() })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Credentials::Bearer(rest.to_string()))
    } else {
        Err(AuthError::Malformed)
    }
}

#[cfg(test)]
mod tests;
