//! The server's HMAC-SHA256 key at work: constant-time comparison of secrets, the MACs that
//! sign bearer tokens, and sealed ticket payloads (the payload followed by its MAC).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Authenticator;

impl Authenticator {
    /// Constant-time equality of two secrets of any length: compares their MACs.
    pub(super) fn equal_secrets(&self, given: &[u8], expected: &[u8]) -> bool {
        let expected_mac = self.mac(expected);
        let mut mac = self.hmac();
        mac.update(given);
        mac.verify_slice(&expected_mac).is_ok()
    }

    pub(super) fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    pub(super) fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
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
