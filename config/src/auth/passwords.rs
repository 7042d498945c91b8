//! Password checks: a user's argon2 hash or plain password (or API token), a decoy argon2
//! check for unknown users so names cannot be probed by timing, and at most a few checks at
//! once; and new argon2 hashes for `password_hash`.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::Sha256;

use super::{AuthError, Authenticator, Principal, api_token_digest};
use crate::config::PasswordSecret;

impl Authenticator {
    /// Waits until fewer than `max_checks` password checks run, and holds a turn until the
    /// guard is dropped; `None` at once when as many more already wait ([`WAITING_PER_CHECK`]
    /// per running check), so waiting checks cannot fill the blocking threads.
    pub(super) fn check_turn(&self) -> Option<CheckTurn<'_>> {
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

    pub(super) fn verify_password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
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
}

/// A turn at checking a password (see [`Authenticator::check_turn`]).
pub(super) struct CheckTurn<'a> {
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
pub(super) fn decoy_hash(key: &[u8]) -> Option<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let digest = sha2::Digest::finalize(<Sha256 as sha2::Digest>::new_with_prefix(key));
    let salt = SaltString::encode_b64(&digest[..16]).ok()?;
    Argon2::default().hash_password(&digest[16..], &salt).ok().map(|h| h.to_string())
}

/// An argon2id PHC string for `password` with a random salt, for `password_hash`.
///
/// # Errors
/// The OS has no randomness for the salt, or argon2 refuses the input ([`HashPasswordError`]).
pub fn hash_password(password: &str) -> Result<String, HashPasswordError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|reason| HashPasswordError::NoRandomness { reason })?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt).map_err(|source| HashPasswordError::EncodeSalt { source })?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|source| HashPasswordError::Hash { source })
}

/// Why [`hash_password`] made no hash. The messages are what `salespulse hash-password`
/// prints after "hashing failed: ".
#[derive(Debug, thiserror::Error)]
pub enum HashPasswordError {
    /// The OS has no randomness for the salt. (`getrandom::Error` is an `std::error::Error`
    /// only with getrandom's `std` feature, so it is shown, not chained as the source.)
    #[error("no randomness for the salt: {reason}")]
    NoRandomness { reason: getrandom::Error },
    /// argon2 refused to encode the salt.
    #[error("{source}")]
    EncodeSalt {
        #[source]
        source: argon2::password_hash::Error,
    },
    /// argon2 refused to hash the password.
    #[error("{source}")]
    Hash {
        #[source]
        source: argon2::password_hash::Error,
    },
}
