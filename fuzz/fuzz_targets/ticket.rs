//! Statement tickets and prepared-statement handles as a client can send them: arbitrary
//! bytes (forged, truncated, altered), and arbitrary payloads under a valid signature (what a
//! leaked key would allow: the JSON and the bound-parameter IPC must still never panic).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use salespulse_config::auth::Authenticator;
use salespulse_config::config::{PasswordSecret, UserConfig};
use salespulse_config::handle::QueryHandle;

fn auth() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let users = [UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("pass".into()), tenants: Some(vec!["acme".into()]), api_token_sha256: None, may_refresh: false }];
        Authenticator::new(&users, Some(b"fuzzing-key-0123456789"), Duration::from_secs(3600))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    // Even first bytes: the bytes as a client sent them. Odd: the rest, signed.
    let bytes = if mode % 2 == 0 { rest.to_vec() } else { auth().seal(rest) };
    if let Ok(handle) = QueryHandle::open_sealed(&bytes, auth(), "grafana") {
        if let Ok(Some(batch)) = handle.parameter_batch() {
            // What the server does next with a decoded row: re-encode it into a handle.
            let mut again = handle.clone();
            let _ = again.set_parameter_batch(Some(&batch));
        }
    }
});
