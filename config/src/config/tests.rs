use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/salespulse/salespulse.toml"), text)
}

const MINIMAL: &str = r#"
[storage]
root = "./data"

[[tenants]]
name = "acme"
timezone = "Europe/Moscow"
inputs = "inputs/acme"
[tenants.source]
kind = "files"
path = "exports/acme"
exported_at = "2025-06-30T18:00:00+03:00"
[tenants.settings]
"calls.success_threshold_seconds" = 30
"#;

#[test]
fn a_valid_config_resolves_paths_against_its_folder() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.storage.root, "/etc/salespulse/data");
    assert_eq!(c.storage.keep_snapshots, 10);
    assert_eq!(c.server.flight_sql.to_string(), "127.0.0.1:50051");
    let t = &c.tenants[0];
    assert_eq!(t.timezone, chrono_tz::Europe::Moscow);
    assert_eq!(t.inputs.as_deref(), Some(Path::new("/etc/salespulse/inputs/acme")));
    assert_eq!(t.settings["calls.success_threshold_seconds"], "30");
    assert_eq!(t.settings["calls.callback_window_hours"], "24");
    match &t.source {
        SourceConfig::Files { path, exported_at } => {
            assert_eq!(path, Path::new("/etc/salespulse/exports/acme"));
            assert_eq!(exported_at.unwrap().to_rfc3339(), "2025-06-30T15:00:00+00:00");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mistakes_name_the_key_to_fix() {
    let cases: &[(&str, &str)] = &[
        (r#"[storage]
root = "x"
keep_snapshots = 1"#, "storage.keep_snapshots: must be 2 or more"),
        (r#"[storage]
root = "x"
[[tenants]]
name = "Acme"
[tenants.source]
kind = "demo""#, "tenants[0].name: 'Acme' must be lower-case"),
        (r#"[storage]
root = "x"
[[tenants]]
name = "acme"
timezone = "Moscow"
[tenants.source]
kind = "demo""#, "timezone: 'Moscow' is not an IANA time zone"),
        (r#"[storage]
root = "x"
[[tenants]]
name = "acme"
[tenants.source]
kind = "sheets""#, "unknown variant `sheets`"),
        (r#"[storage]
root = "x"
[server]
flight_sql = "localhost"
"#, "server.flight_sql: 'localhost' is not an address"),
        (r#"[storage]
root = "x"
[limits]
query_memory = "lots"
"#, "limits.query_memory: 'lots' is not a size"),
        (r#"[storage]
rot = "x""#, "unknown field `rot`"),
        (r#"[storage]
root = "x"
[[tenants]]
name = "acme"
[tenants.source]
kind = "demo"
[tenants.settings]
"calls.success_threshold_seconds" = "a minute""#, "settings.\"calls.success_threshold_seconds\": 'a minute' must be a whole number"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_hash = "plain""#, "users[0] (grafana).password_hash: is not an argon2 PHC string"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_env = "SALESPULSE_TEST_UNSET_VARIABLE"
tenants = ["*"]"#, "users[0] (grafana).password_env: environment variable SALESPULSE_TEST_UNSET_VARIABLE is not set"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$3Bxy9XW8KoEuyNVB4vT+7tgo5YFE6E4hhFdqrBXZfm0"
tenants = ["nope"]"#, "users[0] (grafana).tenants: 'nope' is not a tenant"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
tenants = ["*"]"#, "give exactly one of password_hash and password_env"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$3Bxy9XW8KoEuyNVB4vT+7tgo5YFE6E4hhFdqrBXZfm0"
api_token_sha256 = "not hex"
tenants = ["*"]"#, "users[0] (grafana).api_token_sha256: is not 64 hexadecimal digits; `salespulse api-token`"),
        (r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$3Bxy9XW8KoEuyNVB4vT+7tgo5YFE6E4hhFdqrBXZfm0"
api_token_env = "SALESPULSE_TEST_UNSET_VARIABLE"
tenants = ["*"]"#, "users[0] (grafana).api_token_env: environment variable SALESPULSE_TEST_UNSET_VARIABLE is not set"),
        (r#"[storage]
root = "x"
[server]
tls_cert = "cert.pem""#, "server.tls_cert: set both tls_cert and tls_key"),
        (r#"[storage]
root = "x"
[server]
tls_cert = "no-such-cert.pem"
tls_key = "no-such-key.pem""#, "server.tls_cert: /etc/salespulse/no-such-cert.pem is not a readable file"),
    ];
    for (text, expected) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
        assert!(err.starts_with("/etc/salespulse/salespulse.toml"), "the file is named: {err}");
    }
}

#[test]
fn api_tokens_are_kept_as_their_digest() {
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let cfg = parse(&format!(
        r#"[storage]
root = "x"
[[users]]
name = "grafana"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$3Bxy9XW8KoEuyNVB4vT+7tgo5YFE6E4hhFdqrBXZfm0"
api_token_sha256 = "{}"
tenants = ["*"]"#,
        digest.to_uppercase()
    ))
    .unwrap();
    assert_eq!(cfg.users[0].api_token_sha256, Some(crate::auth::api_token_digest("test")));
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
    assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
    assert_eq!(parse_bytes("100MB"), Some(100_000_000));
    assert_eq!(parse_bytes("x"), None);
}

fn amocrm(source: &str) -> Result<Config, ConfigError> {
    parse(&format!("[storage]\nroot = \"x\"\n[[tenants]]\nname = \"acme\"\n[tenants.source]\nkind = \"amocrm\"\n{source}"))
}

#[test]
fn amocrm_sources_parse_with_defaults_and_name_mistakes() {
    let c = amocrm("account = \"Acme.Kommo.com\"\ntoken_env = \"ACME_AMO\"").unwrap();
    let SourceConfig::AmoCrm(cfg) = &c.tenants[0].source else { panic!("{:?}", c.tenants[0].source) };
    assert_eq!(cfg.base_url, "https://acme.kommo.com");
    assert_eq!(cfg.rate.requests_per_second, 6.5);
    assert_eq!((cfg.rate.burst, cfg.currency.as_str()), (1, "RUB"));
    assert!(matches!(&cfg.auth, crate::config::sources::amocrm::AmoCrmAuth::LongLived(SecretSource::Env { name, .. }) if name == "ACME_AMO"));
    let c = amocrm("base_url = \"http://127.0.0.1:9000\"\nclient_id = \"id\"\nclient_secret_env = \"S\"\nredirect_uri = \"https://x/cb\"\noauth_token_file = \"t.json\"").unwrap();
    let SourceConfig::AmoCrm(cfg) = &c.tenants[0].source else { panic!() };
    assert!(matches!(&cfg.auth, crate::config::sources::amocrm::AmoCrmAuth::OAuth(o) if o.token_file == Path::new("/etc/salespulse/t.json")));
    for (source, expected) in [
        ("account = \"www.amocrm.ru\"\ntoken_env = \"T\"", "tenants[0] (acme).source.account: 'www.amocrm.ru' is not an account address"),
        ("account = \"acme.example.com\"\ntoken_env = \"T\"", "is not an account address"),
        ("token_env = \"T\"", "set exactly one of account"),
        ("account = \"acme.amocrm.ru\"", "source.token_env: set exactly one of token_env"),
        ("account = \"acme.amocrm.ru\"\ntoken_env = \"T\"\nrequests_per_second = 8", "at most 7 (amoCRM's limit)"),
        ("account = \"acme.amocrm.ru\"\nclient_id = \"id\"", "an OAuth integration needs client_id"),
        ("account = \"acme.amocrm.ru\"\ntoken_env = \"T\"\ncurrency = \"rubles\"", "is not an ISO 4217 code"),
    ] {
        let err = amocrm(source).unwrap_err().to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
}

#[test]
fn the_result_cache_takes_a_size_or_zero() {
    let with = |v: &str| parse(&format!("[storage]\nroot = \"x\"\n[server]\nresult_cache = \"{v}\""));
    assert_eq!(with("0").unwrap().server.result_cache_bytes, 0);
    assert_eq!(with("64MiB").unwrap().server.result_cache_bytes, 64 << 20);
    assert_eq!(parse("[storage]\nroot = \"x\"").unwrap().server.result_cache_bytes, 256 << 20);
    let err = with("lots").unwrap_err().to_string();
    assert!(err.contains("server.result_cache: 'lots' is not a size"), "{err}");
}

#[test]
fn fleet_keys_have_defaults_and_are_checked() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.role, Role::All);
    assert_eq!(c.storage.follow_every, std::time::Duration::from_secs(5));
    assert_eq!(c.storage.retention_grace, std::time::Duration::from_secs(900));
    assert_eq!(c.storage.lease, std::time::Duration::from_secs(60));
    assert!(!c.server.replica.is_empty());

    let fleet = MINIMAL.replace(
        "root = \"./data\"",
        "root = \"s3://bucket/fleet\"\nfollow_seconds = 2\nretention_grace_seconds = 120\nlease_seconds = 30\n[server]\nrole = \"query\"\nreplica = \"query-1\"",
    );
    let c = parse(&fleet).unwrap();
    assert_eq!((c.server.role, c.server.replica.as_str()), (Role::Query, "query-1"));
    assert_eq!(c.storage.lease, std::time::Duration::from_secs(30));

    let cases = [
        ("role = \"query\"", "role = \"reader\"", "server.role: 'reader' is not a role"),
        ("replica = \"query-1\"", "replica = \"query 1/\"", "server.replica: 'query 1/' is not a replica name"),
        ("lease_seconds = 30", "lease_seconds = 1", "storage.lease_seconds: must be between 3 and 3600"),
        ("follow_seconds = 2", "follow_seconds = 0", "storage.follow_seconds: must be between 0.1 and 3600"),
        // A replaced snapshot must outlive one follow round plus the longest query (60 s).
        ("retention_grace_seconds = 120", "retention_grace_seconds = 30", "storage.retention_grace_seconds: must be more than one follow round"),
    ];
    for (from, to, expected) in cases {
        let err = parse(&fleet.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(expected), "{to}: {err}");
    }
    // Many tenants stretch the follow round past follow_seconds: the grace must cover it.
    let crowded = fleet.replace("follow_seconds = 2", "follow_seconds = 2\nfollow_requests_per_second = 0.01");
    let err = parse(&crowded).unwrap_err().to_string();
    assert!(err.contains("(160 s)"), "one tenant at 0.01/s is a 100 s round, plus 60 s: {err}");
}
