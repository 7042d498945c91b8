use argon2::PasswordHash;

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
    let NewApiToken { token, sha256_hex: hex } = new_api_token().unwrap();
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
    let other = new_api_token().unwrap().token;
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
