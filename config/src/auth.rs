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

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{PasswordSecret, UserConfig};

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

/// Failed password checks per client address over the last minute. An address with
/// `per_minute` of them is refused without a check until the oldest is a minute old, so a
/// password cannot be guessed at argon2's speed. (governor, the rate limiter the CRM
/// clients use, has no way to look at a key without spending from it; a login that
/// succeeds must not count.)
#[derive(Debug)]
struct FailedLogins {
    per_minute: u32,
    recent: std::sync::Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl FailedLogins {
    /// Counts an attempt from `peer` as failed before it is checked, in one step with the
    /// limit check, so concurrent attempts cannot all pass the limit; `Err` with the wait
    /// when the address is over it. A check that succeeds gives its attempt back
    /// ([`FailedLogins::forgive`]).
    fn reserve(&self, peer: IpAddr) -> Result<Instant, Duration> {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() > 10_000 {
            recent.retain(|_, failures| failures.back().is_some_and(|t| t.elapsed() < FAILURE_WINDOW));
        }
        let failures = recent.entry(peer).or_default();
        while failures.front().is_some_and(|t| t.elapsed() >= FAILURE_WINDOW) {
            failures.pop_front();
        }
        if failures.len() >= self.per_minute as usize {
            return Err(failures.front().map_or(FAILURE_WINDOW, |oldest| FAILURE_WINDOW.saturating_sub(oldest.elapsed())));
        }
        let now = Instant::now();
        failures.push_back(now);
        Ok(now)
    }

    /// Takes back the attempt [`FailedLogins::reserve`] counted at `at`.
    fn forgive(&self, peer: IpAddr, at: Instant) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(failures) = recent.get_mut(&peer)
            && let Some(i) = failures.iter().rposition(|t| *t == at)
        {
            failures.remove(i);
        }
    }
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

    /// Waits until fewer than `max_checks` password checks run, and holds a turn until the
    /// guard is dropped; `None` at once when as many more already wait ([`WAITING_PER_CHECK`]
    /// per running check), so waiting checks cannot fill the blocking threads.
    fn check_turn(&self) -> Option<CheckTurn<'_>> {
        let (count, freed) = &self.checks;
        let mut state = count.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (running, waiting) = &mut *state;
        if *running >= self.max_checks {
            if *waiting >= self.max_checks * WAITING_PER_CHECK {
                return None;
            }
            *waiting += 1;
            while state.0 >= self.max_checks {
                state = freed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            state.1 -= 1;
        }
        state.0 += 1;
        Some(CheckTurn { checks: &self.checks })
    }

    fn verify_password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        let Some(account) = self.accounts.get(user) else {
            // Spend the same work as a real check so user names cannot be probed by timing:
            // an argon2 check when accounts have hashes, a MAC otherwise.
            let _ = self.equal_secrets(password.as_bytes(), b"no such user");
            if let Some(decoy) = self.decoy_hash.as_deref().and_then(|phc| PasswordHash::new(phc).ok()) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &decoy);
            }
            let _ = self.api_tokens.get(&api_token_digest(password));
            return Err(AuthError::WrongPassword);
        };
        let ok = match &account.password {
            PasswordSecret::Plain(expected) => self.equal_secrets(password.as_bytes(), expected.as_bytes()),
            PasswordSecret::Hash(phc) => PasswordHash::new(phc)
                .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
                .unwrap_or(false),
        };
        // A user's API token also works as the password (Basic handshakes and PostgreSQL from
        // tools that can only send a user and a password).
        let ok = ok || self.api_tokens.get(&api_token_digest(password)).is_some_and(|owner| owner == user);
        if ok { Ok(account.principal(user)) } else { Err(AuthError::WrongPassword) }
    }

    /// Constant-time equality of two secrets of any length: compares their MACs.
    fn equal_secrets(&self, given: &[u8], expected: &[u8]) -> bool {
        let expected_mac = self.mac(expected);
        let mut mac = self.hmac();
        mac.update(given);
        mac.verify_slice(&expected_mac).is_ok()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// A bearer token for `principal`, valid for the configured time.
    pub fn issue_token(&self, principal: &Principal) -> String {
        let now = (self.clock)();
        let expires = now.checked_add(self.token_ttl).unwrap_or(now);
        let expires = expires.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body = format!("{}.{expires}", URL_BASE64.encode(principal.user.as_bytes()));
        let signature = URL_BASE64.encode(self.mac(body.as_bytes()));
        format!("sp1.{body}.{signature}")
    }

    fn check_token(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(rest) = token.strip_prefix("sp1.") else { return self.check_api_token(token) };
        let (body, signature) = rest.rsplit_once('.').ok_or(AuthError::BadToken)?;
        let signature = URL_BASE64.decode(signature).map_err(|_| AuthError::BadToken)?;
        let mut mac = self.hmac();
        mac.update(body.as_bytes());
        mac.verify_slice(&signature).map_err(|_| AuthError::BadToken)?;
        let (user, expires) = body.split_once('.').ok_or(AuthError::BadToken)?;
        let user = String::from_utf8(URL_BASE64.decode(user).map_err(|_| AuthError::BadToken)?).map_err(|_| AuthError::BadToken)?;
        let expires: u64 = expires.parse().map_err(|_| AuthError::BadToken)?;
        let now = (self.clock)().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
        if now >= expires {
            return Err(AuthError::Expired);
        }
        // A token outlives neither its account nor the account's tenant list.
        let account = self.accounts.get(&user).ok_or(AuthError::BadToken)?;
        Ok(account.principal(&user))
    }

    /// The owner of a static API token. The token is looked up by its SHA-256, so the lookup's
    /// timing tells nothing about the stored tokens.
    fn check_api_token(&self, token: &str) -> Result<Principal, AuthError> {
        let user = self.api_tokens.get(&api_token_digest(token)).ok_or(AuthError::BadToken)?;
        let account = self.accounts.get(user).ok_or(AuthError::BadToken)?;
        Ok(account.principal(user))
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

    /// Signs `payload` for a ticket or handle: the payload followed by its 32-byte MAC.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut sealed = payload.to_vec();
        sealed.extend_from_slice(&self.mac(payload));
        sealed
    }

    /// The payload of a sealed ticket, or `None` when the MAC does not match.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let split = sealed.len().checked_sub(32)?;
        let (payload, signature) = sealed.split_at(split);
        let mut mac = self.hmac();
        mac.update(payload);
        mac.verify_slice(signature).ok()?;
        Some(payload)
    }
}

/// A turn at checking a password (see [`Authenticator::check_turn`]).
struct CheckTurn<'a> {
    /// (running, waiting) and the signal of a freed turn.
    checks: &'a (std::sync::Mutex<(usize, usize)>, std::sync::Condvar),
}

/// Checks that may wait for a turn, per check running.
const WAITING_PER_CHECK: usize = 8;

impl Drop for CheckTurn<'_> {
    fn drop(&mut self) {
        let (count, freed) = self.checks;
        let mut state = count.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        freed.notify_one();
    }
}

/// An argon2 hash (default parameters, as `salespulse hash-password` writes) of a password
/// derived from the server's key: nobody knows it, and checking it costs what a real check
/// costs.
fn decoy_hash(key: &[u8]) -> Option<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let digest = sha2::Digest::finalize(<Sha256 as sha2::Digest>::new_with_prefix(key));
    let salt = SaltString::encode_b64(&digest[..16]).ok()?;
    Argon2::default().hash_password(&digest[16..], &salt).ok().map(|h| h.to_string())
}

/// The SHA-256 of a static API token, as `api_token_sha256` holds it.
pub fn api_token_digest(token: &str) -> [u8; 32] {
    <Sha256 as sha2::Digest>::digest(token.as_bytes()).into()
}

/// A new random static API token (`spk_` and 43 URL-safe characters: 256 bits) and its
/// SHA-256 in hexadecimal, for `api_token_sha256`.
///
/// # Errors
/// The OS has no randomness.
pub fn new_api_token() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the token: {e}"))?;
    let token = format!("spk_{}", URL_BASE64.encode(bytes));
    let hex = api_token_digest(&token).iter().map(|b| format!("{b:02x}")).collect();
    Ok((token, hex))
}

/// An argon2id PHC string for `password` with a random salt, for `password_hash`.
///
/// # Errors
/// The OS has no randomness for the salt, or argon2 refuses the input.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
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
mod tests {
    use super::*;

    fn users() -> Vec<UserConfig> {
        vec![
            UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("s3cret-pass".into()), tenants: Some(vec!["acme".into()]), api_token_sha256: None, may_refresh: false },
            UserConfig {
                name: "admin".into(),
                password: PasswordSecret::Hash(hash_password("admin-pass").unwrap()),
                tenants: None,
                api_token_sha256: None,
                may_refresh: true,
            },
        ]
    }

    #[test]
    fn static_api_tokens_work_as_bearer_and_as_the_password_of_their_user_only() {
        let (token, hex) = new_api_token().unwrap();
        assert!(token.starts_with("spk_") && token.len() == 47, "{token}");
        assert_eq!(hex.len(), 64);
        let mut users = users();
        users[0].api_token_sha256 = Some(api_token_digest(&token));
        let auth = Authenticator::new(&users, Some(b"0123456789abcdef"), Duration::from_secs(60));
        assert_eq!(auth.check_header(Some(&format!("Bearer {token}")), None).unwrap().user, "grafana");
        assert_eq!(auth.check_header(Some(&format!("Bearer {token}")), None).unwrap().tenants, Some(vec!["acme".to_string()]));
        assert!(matches!(auth.check_header(Some(&format!("Bearer {token}x")), None), Err(AuthError::BadToken)));
        assert!(matches!(auth.check_header(Some("Bearer spk_guess"), None), Err(AuthError::BadToken)));
        assert_eq!(auth.check_password("grafana", &token, None).unwrap().user, "grafana");
        assert!(matches!(auth.check_password("admin", &token, None), Err(AuthError::WrongPassword)), "another user's token is no password");
        let (other, _) = new_api_token().unwrap();
        assert_ne!(other, token);
    }

    #[test]
    fn basic_is_decoded_with_and_without_padding() {
        let padded = base64::engine::general_purpose::STANDARD.encode("admin:password");
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("admin:password");
        assert_ne!(padded, unpadded);
        for encoded in [padded, unpadded] {
            assert_eq!(
                parse_authorization(&format!("Basic {encoded}")),
                Ok(Credentials::Basic { user: "admin".into(), password: "password".into() })
            );
        }
        assert_eq!(parse_authorization("bearer abc"), Ok(Credentials::Bearer("abc".into())));
        assert_eq!(parse_authorization("Basic !!!"), Err(AuthError::Malformed));
        assert_eq!(parse_authorization("Token"), Err(AuthError::Malformed));
    }

    #[test]
    fn passwords_plain_and_argon2() {
        let auth = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::from_secs(60));
        assert_eq!(auth.check_password("grafana", "s3cret-pass", None).map(|p| p.tenants), Ok(Some(vec!["acme".into()])));
        assert_eq!(auth.check_password("grafana", "wrong", None), Err(AuthError::WrongPassword));
        assert_eq!(auth.check_password("nobody", "s3cret-pass", None), Err(AuthError::WrongPassword));
        assert!(auth.check_password("admin", "admin-pass", None).is_ok());
        assert_eq!(auth.check_password("admin", "admin-pass!", None), Err(AuthError::WrongPassword));
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgery() {
        let auth = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::from_secs(60));
        let principal = auth.check_password("grafana", "s3cret-pass", None).unwrap();
        let token = auth.issue_token(&principal);
        assert_eq!(auth.check_header(Some(&format!("Bearer {token}")), None), Ok(principal.clone()));
        // Another key (another server, or a restart without token_secret_env) refuses it.
        let other = Authenticator::new(&users(), Some(b"another key 12345"), Duration::from_secs(60));
        assert_eq!(other.check_header(Some(&format!("Bearer {token}")), None), Err(AuthError::BadToken));
        // Changing the user inside the token breaks the signature.
        let forged = token.replacen(&URL_BASE64.encode("grafana"), &URL_BASE64.encode("admin"), 1);
        assert_eq!(auth.check_header(Some(&format!("Bearer {forged}")), None), Err(AuthError::BadToken));
        let expired = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::ZERO);
        let old = expired.issue_token(&principal);
        assert_eq!(expired.check_header(Some(&format!("Bearer {old}")), None), Err(AuthError::Expired));
        assert_eq!(auth.check_header(None, None), Err(AuthError::Missing));
        assert_eq!(auth.check_header(Some("Bearer None"), None), Err(AuthError::BadToken));
    }

    #[test]
    fn an_address_with_too_many_failed_logins_is_refused_without_a_check() {
        let auth = Authenticator::new(&users(), Some(b"k"), Duration::from_secs(60)).with_failed_login_limit(3);
        let (attacker, other) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        // Successes do not count.
        for _ in 0..5 {
            assert!(auth.check_password("grafana", "s3cret-pass", attacker).is_ok());
        }
        for _ in 0..3 {
            assert_eq!(auth.check_password("grafana", "guess", attacker), Err(AuthError::WrongPassword));
        }
        // Now even the right password is refused from that address, with the wait named...
        let refused = auth.check_password("grafana", "s3cret-pass", attacker);
        assert!(matches!(refused, Err(AuthError::Throttled { seconds }) if (1..=60).contains(&seconds)), "{refused:?}");
        assert!(refused.unwrap_err().to_string().contains("too many failed logins"));
        assert!(matches!(auth.check_header(Some(&format!("Basic {}", LENIENT_BASE64.encode("grafana:s3cret-pass"))), attacker), Err(AuthError::Throttled { .. })));
        // ...while other addresses and bearer tokens go on.
        assert!(auth.check_password("grafana", "s3cret-pass", other).is_ok());
        let token = auth.issue_token(&Principal { user: "grafana".into(), tenants: Some(vec!["acme".into()]), may_refresh: false });
        assert!(auth.check_header(Some(&format!("Bearer {token}")), attacker).is_ok());
    }

    #[test]
    fn disabled_ignores_whatever_is_sent() {
        let auth = Authenticator::disabled();
        assert_eq!(auth.check_header(Some("Bearer None"), None), Ok(Principal::anonymous()));
        assert_eq!(auth.check_header(None, None), Ok(Principal::anonymous()));
    }

    #[test]
    fn sealed_payloads() {
        let auth = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::from_secs(60));
        let sealed = auth.seal(b"{\"sql\":\"select 1\"}");
        assert_eq!(auth.open(&sealed), Some(&b"{\"sql\":\"select 1\"}"[..]));
        let mut tampered = sealed.clone();
        tampered[3] ^= 1;
        assert_eq!(auth.open(&tampered), None);
        assert_eq!(auth.open(b"short"), None);
    }

    #[test]
    fn concurrent_wrong_passwords_cannot_pass_the_limit_together() {
        // Every guess counts before it is checked: 48 at once, limit 10, 10 checked at most.
        let auth = std::sync::Arc::new(Authenticator::new(&users(), Some(b"k"), Duration::from_secs(60)).with_failed_login_limit(10).with_concurrent_checks(2));
        let attacker = Some(IpAddr::from([10, 0, 0, 9]));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(48));
        let threads: Vec<_> = (0..48)
            .map(|_| {
                let (auth, barrier) = (std::sync::Arc::clone(&auth), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    auth.check_password("admin", "guess", attacker)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let checked = results.iter().filter(|r| **r == Err(AuthError::WrongPassword)).count();
        let throttled = results.iter().filter(|r| matches!(r, Err(AuthError::Throttled { .. }))).count();
        assert_eq!((checked, throttled), (10, 38), "{results:?}");
        // No turn is left taken.
        assert_eq!(*auth.checks.0.lock().unwrap(), (0, 0));
    }

    #[test]
    fn an_unknown_user_costs_an_argon2_check_when_accounts_have_hashes() {
        let with_hash = Authenticator::new(&users(), Some(b"k"), Duration::from_secs(60));
        let decoy = with_hash.decoy_hash.as_deref().expect("a decoy hash");
        assert!(PasswordHash::new(decoy).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2")), "{decoy}");
        assert_eq!(with_hash.check_password("nobody", "x", None), Err(AuthError::WrongPassword));
        let plain_only: Vec<UserConfig> = users().into_iter().filter(|u| matches!(u.password, PasswordSecret::Plain(_))).collect();
        assert!(Authenticator::new(&plain_only, Some(b"k"), Duration::from_secs(60)).decoy_hash.is_none());
    }

    #[test]
    fn tokens_expire_on_the_injected_clock() {
        let now = std::sync::Arc::new(std::sync::Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)));
        let clock = {
            let now = std::sync::Arc::clone(&now);
            std::sync::Arc::new(move || *now.lock().unwrap())
        };
        let auth = Authenticator::new(&users(), Some(b"k"), Duration::from_secs(60)).with_clock(clock);
        let token = auth.issue_token(&Principal { user: "grafana".into(), tenants: None, may_refresh: false });
        assert!(auth.check_header(Some(&format!("Bearer {token}")), None).is_ok());
        *now.lock().unwrap() += Duration::from_secs(59);
        assert!(auth.check_header(Some(&format!("Bearer {token}")), None).is_ok());
        *now.lock().unwrap() += Duration::from_secs(1);
        assert_eq!(auth.check_header(Some(&format!("Bearer {token}")), None), Err(AuthError::Expired));
    }
}
