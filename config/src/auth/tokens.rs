//! Bearer tokens: the ones this server signs at a Flight SQL handshake (user, expiry and an
//! HMAC over both) and the static API tokens of `[[users]]`, kept as their SHA-256.

use std::time::UNIX_EPOCH;

use base64::Engine;
use hmac::Mac;
use sha2::Sha256;

use super::{AuthError, Authenticator, Principal, URL_BASE64};

impl Authenticator {
    /// A bearer token for `principal`, valid for the configured time.
    pub fn issue_token(&self, principal: &Principal) -> String {
        let now = (self.clock)();
        let expires = now.checked_add(self.token_ttl).unwrap_or(now);
        let expires = expires.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body = format!("{}.{expires}", URL_BASE64.encode(principal.user.as_bytes()));
        let signature = URL_BASE64.encode(self.mac(body.as_bytes()));
        format!("sp1.{body}.{signature}")
    }

    pub(super) fn check_token(&self, token: &str) -> Result<Principal, AuthError> {
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
}

/// The SHA-256 of a static API token, as `api_token_sha256` holds it.
pub fn api_token_digest(token: &str) -> [u8; 32] {
    <Sha256 as sha2::Digest>::digest(token.as_bytes()).into()
}

/// A new random static API token and its SHA-256 in hexadecimal, for `api_token_sha256`.
///
/// # Errors
/// The OS has no randomness ([`ApiTokenError`]).
pub fn new_api_token() -> Result<NewApiToken, ApiTokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|reason| ApiTokenError::NoRandomness { reason })?;
    let token = format!("spk_{}", URL_BASE64.encode(bytes));
    let sha256_hex = api_token_digest(&token).iter().map(|b| format!("{b:02x}")).collect();
    Ok(NewApiToken { token, sha256_hex })
}

/// A static API token as `salespulse api-token` prints it. `Debug` never prints the token.
pub struct NewApiToken {
    /// `spk_` and 43 URL-safe characters (256 bits): what the client sends.
    pub token: String,
    /// The token's SHA-256 in hexadecimal: what the config keeps (`api_token_sha256`).
    pub sha256_hex: String,
}

impl std::fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiToken").field("sha256_hex", &self.sha256_hex).finish_non_exhaustive()
    }
}

/// Why [`new_api_token`] made no token.
#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    /// The OS has no randomness. (`getrandom::Error` is an `std::error::Error` only with
    /// getrandom's `std` feature, so it is shown, not chained as the source.)
    #[error("no randomness for the token: {reason}")]
    NoRandomness { reason: getrandom::Error },
}
