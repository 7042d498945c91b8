//! What a PostgreSQL client sends before it has logged in, as any client can send it: the
//! startup packet and the password message, decoded by pgwire as the server decodes them,
//! then the server's own decisions on them (reserved parameters, the tenant the database
//! name chooses, the password check). One answer or one refusal each, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::startup::{PasswordMessageFamily, Startup};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use salespulse_config::auth::Authenticator;
use salespulse_config::config::{PasswordSecret, UserConfig};
use salespulse_config::pg_login::{clip, reserved_parameter, tenant_for};
use salespulse_config::redact::redact_secrets;

fn auth() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let users = [UserConfig { name: "anna".into(), password: PasswordSecret::Plain("pass".into()), tenants: Some(vec!["acme".into()]), api_token_sha256: None, may_refresh: false }];
        Authenticator::new(&users, Some(b"fuzzing-key-0123456789"), Duration::from_secs(3600)).with_failed_login_limit(u32::MAX)
    })
}

fuzz_target!(|data: &[u8]| {
    let allowed = vec!["acme".to_string(), "beta".to_string()];
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut buf = BytesMut::from(data);
    if let Ok(Some(startup)) = Startup::decode(&mut buf, &ctx) {
        let _ = reserved_parameter(startup.parameters.keys()).map(clip);
        let user = startup.parameters.get("user").cloned().unwrap_or_default();
        if let Ok(tenant) = tenant_for(startup.parameters.get("database").map(String::as_str), &user, &allowed) {
            assert!(allowed.contains(&tenant), "a tenant outside the allowed list: {tenant}");
        }
        // What follows the startup packet: the password message.
        // pgwire 0.41 panics on a password message whose length field is under 4 (it
        // subtracts 4 from it); the server catches that panic and closes the connection
        // (src/server/postgres/connection.rs), so such inputs stop here.
        if buf.len() >= 5 && u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) < 4 {
            return;
        }
        let mut after = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        after.awaiting_frontend_startup = false;
        after.awaiting_frontend_ssl = false;
        if let Ok(Some(message)) = PasswordMessageFamily::decode(&mut buf, &after)
            && let Ok(password) = message.into_password()
        {
            let checked = auth().check_password(&user, &password.password, None);
            assert!(checked.is_err() || (user == "anna" && password.password == "pass"), "a wrong password passed");
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && !text.contains("S3CR3TMARK")
    {
        // Whatever surrounds a webhook URL in an error, its secret never survives.
        let (before, after) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i));
        let message = format!("{before}https://portal.bitrix24.ru/rest/1/S3CR3TMARK/crm.deal.list{after}");
        let redacted = redact_secrets(&message);
        assert!(!redacted.contains("S3CR3TMARK"), "the secret survived in {redacted:?}");
    }
});
