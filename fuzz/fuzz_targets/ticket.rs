//! Statement tickets and prepared-statement handles as a client can send them: arbitrary
//! bytes (forged, truncated, altered), and arbitrary payloads under a valid signature (what a
//! leaked key would allow: the JSON and the bound-parameter IPC must still never panic).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use salespulse::config::{PasswordSecret, UserConfig};
use salespulse::server::auth::{Authenticator, Principal};
use salespulse::server::flight_sql::redeem_for_fuzzing;

fn auth() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let users = [UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("pass".into()), tenants: Some(vec!["acme".into()]) }];
        Authenticator::new(&users, Some(b"fuzzing-key-0123456789"), Duration::from_secs(3600))
    })
}

fuzz_target!(|data: &[u8]| {
    let principal = Principal { user: "grafana".into(), tenants: Some(vec!["acme".into()]) };
    let Some((mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 { rest.to_vec() } else { auth().seal(rest) };
    let _ = redeem_for_fuzzing(&bytes, auth(), &principal);
});
