//! The `authorization` header as any client can send it (Basic, Bearer, tokens forged or
//! truncated, arbitrary bytes): a principal or one refusal, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use salespulse_config::auth::{Authenticator, Principal};
use salespulse_config::config::{PasswordSecret, UserConfig};

fn auth() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let users = [
            UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("pass".into()), tenants: Some(vec!["acme".into()]), api_token_sha256: None, may_refresh: false },
            UserConfig { name: "admin".into(), password: PasswordSecret::Plain("admin-pass".into()), tenants: None, api_token_sha256: None, may_refresh: false },
        ];
        // No throttling: every input must reach the checks.
        Authenticator::new(&users, Some(b"fuzzing-key-0123456789"), Duration::from_secs(3600)).with_failed_login_limit(u32::MAX)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let _ = auth().check_header(Some(header), None);
    // A valid token with fuzzed bytes appended or spliced in must not pass as another user
    // (admin, who may read every tenant).
    let token = auth().issue_token(&Principal { user: "grafana".into(), tenants: None, may_refresh: false });
    if let Ok(p) = auth().check_header(Some(&format!("Bearer {token}{header}")), None) {
        assert_eq!(p.user, "grafana", "a grafana token with {header:?} appended passed as {}", p.user);
    }
});
