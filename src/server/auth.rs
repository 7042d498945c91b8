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

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// The tenants this principal may read; `None` for all.
    pub tenants: Option<Vec<String>>,
}

impl Principal {
    /// The principal of a server without `[[users]]`.
    pub fn anonymous() -> Principal {
        Principal { user: "anonymous".into(), tenants: None }
    }

    pub fn may_read(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|list| list.iter().any(|t| t == tenant))
    }
}

struct Account {
    password: PasswordSecret,
    tenants: Option<Vec<String>>,
}

/// Checks credentials and signs tokens.
pub struct Authenticator {
    accounts: HashMap<String, Account>,
    key: Vec<u8>,
    token_ttl: Duration,
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
            .map(|u| (u.name.clone(), Account { password: u.password.clone(), tenants: u.tenants.clone() }))
            .collect();
        Authenticator { accounts, key, token_ttl }
    }

    /// No accounts: every request is anonymous.
    pub fn disabled() -> Authenticator {
        Authenticator::new(&[], None, Duration::from_secs(86_400))
    }

    pub fn enabled(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// Checks a user name and password. Argon2 is deliberately slow: call this from a
    /// blocking-friendly context.
    ///
    /// # Errors
    /// [`AuthError::WrongPassword`] for an unknown user or a wrong password alike.
    pub fn check_password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        let Some(account) = self.accounts.get(user) else {
            // Spend the same work as a real check so user names cannot be probed by timing.
            let _ = self.equal_secrets(password.as_bytes(), b"no such user");
            return Err(AuthError::WrongPassword);
        };
        let ok = match &account.password {
            PasswordSecret::Plain(expected) => self.equal_secrets(password.as_bytes(), expected.as_bytes()),
            PasswordSecret::Hash(phc) => PasswordHash::new(phc)
                .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
                .unwrap_or(false),
        };
        if ok { Ok(Principal { user: user.to_string(), tenants: account.tenants.clone() }) } else { Err(AuthError::WrongPassword) }
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
        let expires = SystemTime::now().checked_add(self.token_ttl).unwrap_or(SystemTime::now());
        let expires = expires.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body = format!("{}.{expires}", URL_BASE64.encode(principal.user.as_bytes()));
        let signature = URL_BASE64.encode(self.mac(body.as_bytes()));
        format!("sp1.{body}.{signature}")
    }

    fn check_token(&self, token: &str) -> Result<Principal, AuthError> {
        let rest = token.strip_prefix("sp1.").ok_or(AuthError::BadToken)?;
        let (body, signature) = rest.rsplit_once('.').ok_or(AuthError::BadToken)?;
        let signature = URL_BASE64.decode(signature).map_err(|_| AuthError::BadToken)?;
        let mut mac = self.hmac();
        mac.update(body.as_bytes());
        mac.verify_slice(&signature).map_err(|_| AuthError::BadToken)?;
        let (user, expires) = body.split_once('.').ok_or(AuthError::BadToken)?;
        let user = String::from_utf8(URL_BASE64.decode(user).map_err(|_| AuthError::BadToken)?).map_err(|_| AuthError::BadToken)?;
        let expires: u64 = expires.parse().map_err(|_| AuthError::BadToken)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
        if now >= expires {
            return Err(AuthError::Expired);
        }
        // A token outlives neither its account nor the account's tenant list.
        let account = self.accounts.get(&user).ok_or(AuthError::BadToken)?;
        Ok(Principal { user, tenants: account.tenants.clone() })
    }

    /// The principal of a request with this `authorization` header value.
    ///
    /// # Errors
    /// See [`AuthError`]; never when authentication is off.
    pub fn check_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        match parse_authorization(header.ok_or(AuthError::Missing)?)? {
            Credentials::Basic { user, password } => self.check_password(&user, &password),
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
            UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("s3cret-pass".into()), tenants: Some(vec!["acme".into()]) },
            UserConfig {
                name: "admin".into(),
                password: PasswordSecret::Hash(hash_password("admin-pass").unwrap()),
                tenants: None,
            },
        ]
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
        assert_eq!(auth.check_password("grafana", "s3cret-pass").map(|p| p.tenants), Ok(Some(vec!["acme".into()])));
        assert_eq!(auth.check_password("grafana", "wrong"), Err(AuthError::WrongPassword));
        assert_eq!(auth.check_password("nobody", "s3cret-pass"), Err(AuthError::WrongPassword));
        assert!(auth.check_password("admin", "admin-pass").is_ok());
        assert_eq!(auth.check_password("admin", "admin-pass!"), Err(AuthError::WrongPassword));
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgery() {
        let auth = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::from_secs(60));
        let principal = auth.check_password("grafana", "s3cret-pass").unwrap();
        let token = auth.issue_token(&principal);
        assert_eq!(auth.check_header(Some(&format!("Bearer {token}"))), Ok(principal.clone()));
        // Another key (another server, or a restart without token_secret_env) refuses it.
        let other = Authenticator::new(&users(), Some(b"another key 12345"), Duration::from_secs(60));
        assert_eq!(other.check_header(Some(&format!("Bearer {token}"))), Err(AuthError::BadToken));
        // Changing the user inside the token breaks the signature.
        let forged = token.replacen(&URL_BASE64.encode("grafana"), &URL_BASE64.encode("admin"), 1);
        assert_eq!(auth.check_header(Some(&format!("Bearer {forged}"))), Err(AuthError::BadToken));
        let expired = Authenticator::new(&users(), Some(b"0123456789abcdef"), Duration::ZERO);
        let old = expired.issue_token(&principal);
        assert_eq!(expired.check_header(Some(&format!("Bearer {old}"))), Err(AuthError::Expired));
        assert_eq!(auth.check_header(None), Err(AuthError::Missing));
        assert_eq!(auth.check_header(Some("Bearer None")), Err(AuthError::BadToken));
    }

    #[test]
    fn disabled_ignores_whatever_is_sent() {
        let auth = Authenticator::disabled();
        assert_eq!(auth.check_header(Some("Bearer None")), Ok(Principal::anonymous()));
        assert_eq!(auth.check_header(None), Ok(Principal::anonymous()));
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
}
