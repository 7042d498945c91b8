//! A fleet on one bucket (issue 25): moto_server as the S3 store, a mock Bitrix24 portal that
//! counts CRM requests, two `serve --role query` and two `serve --role refresh` processes of
//! the real binary on loopback: one refresh per tenant (the lease), replicas follow CURRENT,
//! tickets cross replicas, a SIGKILLed refresher's lease is taken over, no half-served snapshot.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use arrow_flight::sql::client::FlightSqlServiceClient;
use salespulse::snapshot::Store;
use salespulse_config::config::SourceConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::common::bitrix24_mock::{MockBitrix24, MockData};

const BUCKET: &str = "salespulse-fleet";
const TENANT: &str = "northwind";
const USER: &str = "fleet";
const PASSWORD: &str = "fleet-pass";
/// 32 characters, in every process's environment: tickets and tokens verify on every replica.
const TOKEN_SECRET: &str = "fleet-test-secret-0123456789abcd";
const FOLLOW_SECONDS: u64 = 1;
const LEASE_SECONDS: u64 = 5;
/// Deals of the generated portal; at 2 requests/s (burst 1) a pull takes several seconds.
const DEALS: usize = 120;
/// How long loading a followed snapshot from the bucket may add to the follow interval.
const LOAD_MARGIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server: scripts/test.sh runs the fleet tests after installing the clients"]
async fn two_query_replicas_and_two_refreshers_share_one_bucket() {
    let (_moto, endpoint) = start_moto().await;
    let one_pull = requests_of_one_full_pull().await;
    assert!(one_pull >= 4, "a full pull of {DEALS} deals takes {one_pull} requests: too few to be seen mid-refresh; raise DEALS");
    let portal = MockBitrix24::start(crate::bitrix24::fast_portal(), MockData::generated(DEALS)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &portal.webhook_url);
    let env = fleet_env(&endpoint);
    let queries = [serve(&config, "query", "query-1", &env).await, serve(&config, "query", "query-2", &env).await];
    let mut refreshers = [serve(&config, "refresh", "refresher-1", &env).await, serve(&config, "refresh", "refresher-2", &env).await];
    let http = reqwest::Client::new();

    // (1) The same refresh asked of both refreshers at once: the lease lets exactly one pull
    // (200) and refuses the other (409), and the portal sees the requests of ONE pull.
    let before = portal.state.requests();
    let (a, b) = tokio::join!(post_refresh(http.clone(), refreshers[0].http()), post_refresh(http.clone(), refreshers[1].http()));
    let committed = Instant::now();
    let ((status_a, body_a), (status_b, body_b)) = (a.unwrap(), b.unwrap());
    let mut statuses = [status_a, status_b];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "refresher-1: {body_a}\nrefresher-2: {body_b}");
    assert_eq!(portal.state.requests() - before, one_pull, "the portal saw other than one pull's requests");
    let first = snapshot_of(if status_a == 200 { &body_a } else { &body_b });

    // (2) Both query replicas follow CURRENT to it within the follow interval.
    wait_serving(&queries, &first, committed).await;

    // (6) Probes: 200 without credentials on every process, no tenant name in any answer.
    for p in queries.iter().chain(refreshers.iter()) {
        assert_probes(&http, p).await;
    }

    // A query replica never refreshes: a refresh asked of it is refused, and nothing is pulled.
    let before = portal.state.requests();
    let (status, body) = post_refresh(http.clone(), queries[0].http()).await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("query-only")), "{body}");
    assert_eq!(portal.state.requests(), before);

    // (3) A ticket from replica 1, redeemed on replica 2 with replica 1's bearer token.
    ticket_crosses_replicas(queries[0].flight_sql(), queries[1].flight_sql(), &first).await;

    // (5) From now on, both query replicas answer the one-statement consistency query in a
    // loop while snapshots swap under them.
    let stop = CancellationToken::new();
    let watchers: Vec<_> = queries.iter().map(|q| tokio::spawn(watch(q.flight_sql(), stop.clone()))).collect();

    // (4) Refresher 1 SIGKILLed mid-refresh: its lease outlives it, so refresher 2 is refused
    // at once; after lease_seconds refresher 2 takes the lease over and its snapshot lands.
    add_deals(&portal, 3, 1);
    let before = portal.state.requests();
    let doomed = tokio::spawn(post_refresh(http.clone(), refreshers[0].http()));
    wait_until("the portal sees refresher-1's pull", || portal.state.requests() >= before + 2).await;
    refreshers[0].kill();
    doomed.abort();
    let (status, body) = post_refresh(http.clone(), refreshers[1].http()).await.unwrap();
    assert_eq!(status, 409, "the killed refresher's lease should still hold: {body}");
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS)).await;
    let body = refresh_until_ok(&http, refreshers[1].http(), Duration::from_secs(3 * LEASE_SECONDS)).await;
    let second = snapshot_of(&body);
    wait_serving(&queries, &second, Instant::now()).await;
    // The killed refresher's half-written folder was a leftover: the next write under the
    // lease removed it. Every snapshot folder in the bucket is a committed one.
    let keys = bucket_keys(&http, &endpoint, &format!("fleet/{TENANT}/snapshots/")).await;
    let folders: BTreeSet<&str> = keys.iter().filter_map(|k| k.split('/').nth(3)).collect();
    for folder in &folders {
        assert!(keys.contains(&format!("fleet/{TENANT}/snapshots/{folder}/manifest.json")), "a leftover without a manifest: {folder}\n{keys:#?}");
    }

    // One more refresh: keep_snapshots = 2 lets retention run while the loops query; the
    // grace period keeps files a replica may still read.
    add_deals(&portal, 2, 2);
    let body = refresh_until_ok(&http, refreshers[1].http(), Duration::ZERO).await;
    let third = snapshot_of(&body);
    wait_serving(&queries, &third, Instant::now()).await;
    assert_eq!(BTreeSet::from([&first, &second, &third]).len(), 3, "three distinct snapshots");

    // Every process's attempts are in every replica's system.refreshes: the refusals by the
    // lease, and the refreshes that landed, each with the replica that made it.
    let mut client = flight(queries[1].flight_sql(), true).await;
    let sql = format!("SELECT replica, outcome, snapshot_id FROM {TENANT}.system.refreshes WHERE outcome = 'ok' ORDER BY finished_at");
    let (_, batches) = crate::common::query(&mut client, &sql).await.unwrap();
    let landed: Vec<String> = batches.iter().flat_map(|b| (0..b.num_rows()).map(move |i| array_value_to_string(b.column(2), i).unwrap())).collect();
    assert_eq!(landed, [first.clone(), second.clone(), third.clone()]);
    let sql = format!("SELECT count(*) FROM {TENANT}.system.refreshes WHERE outcome = 'skipped' AND error LIKE '%is running on refresher-%'");
    let (_, batches) = crate::common::query(&mut client, &sql).await.unwrap();
    assert!(first_row(&batches).is_some_and(|r| r[0].parse::<u32>().unwrap() >= 2), "the two refusals by the lease: {batches:?}");

    // (5) No query failed, none answered counts of another snapshot than its own, and each
    // loop ran from the first snapshot to the last.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for (watcher, q) in watchers.into_iter().zip(&queries) {
        let seen = watcher.await.unwrap().unwrap_or_else(|e| panic!("{}: {e}", q.name));
        assert!(seen.contains(&first) && seen.contains(&third), "{} answered from {seen:?} only", q.name);
    }
}

/// The fleet examples' configs are valid configs of this build: the compose file's, and
/// the one inside the Kubernetes ConfigMap, with the environment their manifests give.
#[test]
fn the_fleet_examples_configs_are_valid() {
    // SAFETY: set before any thread reads them, and only ever to these values.
    unsafe {
        std::env::set_var("SALESPULSE_TOKEN_SECRET", TOKEN_SECRET);
        std::env::set_var("SALESPULSE_GRAFANA_PASSWORD", "example-password");
        std::env::set_var("SALESPULSE_OPS_PASSWORD", "example-password");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let compose = root.join("compose/salespulse.toml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let config = salespulse_config::config::Config::parse(&compose, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.storage.oauth_tokens_in_store && config.server.token_secret.is_some());
    // The ConfigMap's `salespulse.toml: |` block, de-indented.
    let manifest = std::fs::read_to_string(root.join("kubernetes/configmap.yaml")).unwrap();
    let mut lines = manifest.lines().skip_while(|l| !l.trim_start().starts_with("salespulse.toml: |")).skip(1).peekable();
    let indent = lines.peek().map(|l| l.len() - l.trim_start().len()).unwrap();
    let block: Vec<&str> = lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent).map(|l| l.get(indent..).unwrap_or("")).collect();
    let path = Path::new("/etc/salespulse/salespulse.toml");
    let config = salespulse_config::config::Config::parse(path, &block.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.storage.root.starts_with("s3://") && !config.tenants.is_empty());
}

/// A child process, SIGKILLed and reaped when dropped; its stderr lines (the tracing log) are
/// kept for the addresses and for failure messages.
struct Proc {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    flight_sql: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stderr, lines) = (child.stderr.take().unwrap(), Arc::clone(&log));
        // Drained to the end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Proc { name: name.to_string(), child, log, flight_sql: None, http: None }
    }

    /// The first log line containing `needle`, waiting up to a minute.
    async fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.log.lock().unwrap().iter().find(|l| l.contains(needle)).cloned();
            if let Some(line) = found {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before logging '{needle}':\n{}", self.name, self.log_tail());
            }
            assert!(Instant::now() < deadline, "{} did not log '{needle}' within a minute:\n{}", self.name, self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    }

    fn http(&self) -> SocketAddr { self.http.unwrap_or_else(|| panic!("{} serves no HTTP", self.name)) }

    fn flight_sql(&self) -> SocketAddr { self.flight_sql.unwrap_or_else(|| panic!("{} serves no Flight SQL", self.name)) }

    /// SIGKILL: no shutdown, no lease release.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server (SALESPULSE_MOTO_SERVER, else the test venv's) on a free loopback port, with
/// the bucket created; its endpoint.
async fn start_moto() -> (Proc, String) {
    let binary = std::env::var_os("SALESPULSE_MOTO_SERVER").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"), PathBuf::from);
    assert!(binary.is_file(), "no moto_server at {}: set SALESPULSE_MOTO_SERVER, or install the test clients as scripts/test.sh does", binary.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_arg = port.to_string();
    let mut cmd = Command::new(binary);
    cmd.args(["-H", "127.0.0.1", "-p", port_arg.as_str()]);
    let mut moto = Proc::spawn("moto_server", cmd);
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // moto creates a bucket on a plain, unsigned `PUT /<bucket>`; it fails until moto listens.
    loop {
        match http.put(format!("{endpoint}/{BUCKET}")).send().await {
            Ok(r) if r.status().is_success() => return (moto, endpoint),
            other => {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    panic!("moto_server exited ({status}):\n{}", moto.log_tail());
                }
                assert!(Instant::now() < deadline, "moto_server at {endpoint} never created the bucket: {other:?}\n{}", moto.log_tail());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every key under `prefix` in the bucket (moto answers unsigned ListObjectsV2 requests).
async fn bucket_keys(http: &reqwest::Client, endpoint: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{endpoint}/{BUCKET}?list-type=2&prefix={prefix}");
        if let Some(t) = &token {
            url.push_str(&format!("&continuation-token={t}"));
        }
        let text = http.get(url).send().await.unwrap().text().await.unwrap();
        let between = |open: &str, close: &str| -> Vec<String> {
            text.split(open).skip(1).filter_map(|rest| rest.split(close).next().map(str::to_string)).collect()
        };
        keys.extend(between("<Key>", "</Key>"));
        token = between("<NextContinuationToken>", "</NextContinuationToken>").into_iter().next();
        if token.is_none() {
            return keys;
        }
    }
}

/// The requests one full pull of the generated portal takes, measured in-process against an
/// identical portal (the fleet's own first refresh must take exactly as many).
async fn requests_of_one_full_pull() -> u64 {
    let reference = MockBitrix24::start(crate::bitrix24::fast_portal(), MockData::generated(DEALS)).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().to_string_lossy()).unwrap();
    let source = SourceConfig::Bitrix24(Box::new(crate::bitrix24::config(&reference.webhook_url)));
    crate::common::refresh_crm(&store, source).await.unwrap();
    reference.state.requests()
}

/// The fleet's config: snapshots in the bucket, a fast follow, a short lease, one user who may
/// refresh, and the tenant pulled from the mock portal at 2 requests/s (never on start).
fn write_config(dir: &Path, webhook_url: &str) -> PathBuf {
    let path = dir.join("fleet.toml");
    let text = format!(
        r#"[storage]
root = "s3://{BUCKET}/fleet"
keep_snapshots = 2
follow_seconds = {FOLLOW_SECONDS}
retention_grace_seconds = 8
lease_seconds = {LEASE_SECONDS}
[server]
flight_sql = "127.0.0.1:0"
postgres = "127.0.0.1:0"
http = "127.0.0.1:0"
token_secret_env = "SALESPULSE_TOKEN_SECRET"
[limits]
query_timeout_seconds = 5
[[users]]
name = "{USER}"
password_env = "SALESPULSE_FLEET_PASSWORD"
tenants = ["*"]
refresh = true
[[tenants]]
name = "{TENANT}"
timezone = "Europe/Moscow"
refresh_on_start = false
[tenants.source]
kind = "bitrix24"
webhook_url = "{webhook_url}"
requests_per_second = 2
burst = 1
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The environment of every salespulse process: moto's endpoint and credentials, the shared
/// token secret, the user's password.
fn fleet_env(endpoint: &str) -> Vec<(&'static str, String)> {
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT", endpoint), ("AWS_ALLOW_HTTP", "true")]
        .into_iter()
        .chain([("SALESPULSE_TOKEN_SECRET", TOKEN_SECRET), ("SALESPULSE_FLEET_PASSWORD", PASSWORD), ("RUST_LOG", "info")])
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

/// `salespulse serve --role <role> --replica <replica>`, once it logs where it listens
/// ("Flight SQL on …, PostgreSQL on …, HTTP on …", or "refresher: HTTP on …").
async fn serve(config: &Path, role: &str, replica: &str, env: &[(&'static str, String)]) -> Proc {
    let config = config.to_string_lossy().into_owned();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_salespulse"));
    cmd.args(["serve", "--config", config.as_str(), "--role", role, "--replica", replica]).envs(env.iter().cloned());
    let mut p = Proc::spawn(replica, cmd);
    let line = p.wait_for("HTTP on ").await;
    p.http = Some(addr_after(&line, "HTTP on ").unwrap_or_else(|| panic!("{replica}: no HTTP address in: {line}")));
    p.flight_sql = addr_after(&line, "Flight SQL on ");
    assert_eq!(p.flight_sql.is_some(), role == "query", "{replica} ({role}): {line}");
    p
}

/// The address after `label` in a log line, up to the next ',' or space.
fn addr_after(line: &str, label: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split([',', ' ']).next()?.parse().ok()
}

async fn post_refresh(http: reqwest::Client, addr: SocketAddr) -> reqwest::Result<(u16, Value)> {
    let r = http.post(format!("http://{addr}/tenants/{TENANT}/refresh")).basic_auth(USER, Some(PASSWORD)).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json::<Value>().await?))
}

/// Refreshes on `addr` until it answers 200 (its body); 409 (a lease held elsewhere) is
/// retried for `patience`, anything else fails.
async fn refresh_until_ok(http: &reqwest::Client, addr: SocketAddr, patience: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = post_refresh(http.clone(), addr).await.unwrap();
        match status {
            200 => return body,
            409 if start.elapsed() < patience => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => panic!("refresh on {addr}: {status} {body} after {:?}", start.elapsed()),
        }
    }
}

fn snapshot_of(body: &Value) -> String {
    body["snapshot_id"].as_str().unwrap_or_else(|| panic!("no snapshot_id in {body}")).to_string()
}

/// New deals modified `day` days into 2026 (after every cursor), so the next incremental
/// refresh's snapshot has other counts than the one before.
fn add_deals(portal: &MockBitrix24, n: u64, day: u32) {
    let at = format!("2026-01-{:02}T10:00:00+03:00", 14 + day);
    let mut data = portal.state.data.lock().unwrap();
    let next = data.deals.iter().filter_map(|d| d["ID"].as_str()?.parse::<u64>().ok()).max().unwrap() + 1;
    for id in next..next + n {
        let mut deal = data.deals[0].clone();
        deal["ID"] = json!(id.to_string());
        deal["DATE_CREATE"] = json!(at);
        deal["DATE_MODIFY"] = json!(at);
        data.deals.push(deal);
    }
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Flight SQL client of `addr`, signed in as the fleet's user (Basic, then its bearer token)
/// when `sign_in`.
async fn flight(addr: SocketAddr, sign_in: bool) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap());
    if sign_in {
        client.handshake(USER, PASSWORD).await.unwrap();
    }
    client
}

/// The first row's cells as text, if any row came.
fn first_row(batches: &[RecordBatch]) -> Option<Vec<String>> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    Some(b.columns().iter().map(|c| array_value_to_string(c, 0).unwrap()).collect())
}

fn current_sql() -> String {
    format!("SELECT snapshot_id FROM {TENANT}.system.snapshots WHERE is_current")
}

/// One statement: the snapshot served, two tables' row counts, and the rows that snapshot's
/// manifest lists for them (system.tables). A half-swapped catalog answers a mismatch.
fn consistency_sql() -> String {
    let listed = |t: &str| format!("(SELECT \"rows\" FROM {TENANT}.system.tables WHERE table_name = '{t}') AS listed_{t}");
    format!(
        "SELECT s.snapshot_id, (SELECT count(*) FROM {TENANT}.crm.deals) AS deals, {}, (SELECT count(*) FROM {TENANT}.crm.calls) AS calls, {} FROM {TENANT}.system.snapshots s WHERE s.is_current",
        listed("deals"),
        listed("calls")
    )
}

/// (2) Every replica serves `snapshot` within the follow interval (plus loading) of `since`.
async fn wait_serving(replicas: &[Proc], snapshot: &str, since: Instant) {
    let within = Duration::from_secs(FOLLOW_SECONDS) + LOAD_MARGIN;
    for r in replicas {
        let mut client = flight(r.flight_sql(), true).await;
        loop {
            // Errors count as "not yet": before the first snapshot the tenant has no tables.
            let serving = crate::common::query(&mut client, &current_sql()).await.map(|(_, batches)| first_row(&batches));
            if matches!(&serving, Ok(Some(row)) if row[0] == snapshot) {
                break;
            }
            assert!(since.elapsed() < within, "{} serves {serving:?}, not {snapshot}, {:?} after its commit:\n{}", r.name, since.elapsed(), r.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// (3) A ticket from `one`'s GetFlightInfo redeemed with DoGet on `two`, under `one`'s bearer
/// token: tickets and tokens are signed with the shared secret.
async fn ticket_crosses_replicas(one: SocketAddr, two: SocketAddr, snapshot: &str) {
    let mut first = flight(one, true).await;
    let info = first.execute(current_sql(), None).await.unwrap();
    let mut second = flight(two, false).await;
    second.set_token(first.token().unwrap().clone());
    let batches = crate::common::fetch(&mut second, info).await.unwrap();
    assert_eq!(first_row(&batches), Some(vec![snapshot.to_string()]));
}

/// (6) /health/live, /health/ready and anonymous /health: 200, never a tenant's name.
async fn assert_probes(http: &reqwest::Client, p: &Proc) {
    for path in ["/health/live", "/health/ready", "/health"] {
        let r = http.get(format!("http://{}{path}", p.http())).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{} {path}: {body}", p.name);
        assert!(!body.contains(TENANT), "{} {path} names the tenant: {body}", p.name);
    }
}

/// (5) Runs [`consistency_sql`] on `addr` until `stop`: every answer's counts equal its own
/// snapshot's listed rows, and no query fails. The snapshots seen, or the first failure.
async fn watch(addr: SocketAddr, stop: CancellationToken) -> Result<BTreeSet<String>, String> {
    let mut client = flight(addr, true).await;
    let mut seen = BTreeSet::new();
    while !stop.is_cancelled() {
        let (_, batches) = crate::common::query(&mut client, &consistency_sql()).await.map_err(|e| format!("a query failed: {e}"))?;
        let row = first_row(&batches).ok_or_else(|| "the current snapshot gave no row".to_string())?;
        if row[1] != row[2] || row[3] != row[4] {
            return Err(format!("snapshot {} half-served: deals {} (listed {}), calls {} (listed {})", row[0], row[1], row[2], row[3], row[4]));
        }
        seen.insert(row[0].clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(seen)
}
