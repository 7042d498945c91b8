//! Shared fixtures: a demo snapshot on disk and a Flight SQL server on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::FlightInfo;
use futures::TryStreamExt;
use salespulse::catalog::{Catalog, TenantInfo};
use salespulse::connectors::Source;
use salespulse_config::config::{default_settings, PasswordSecret, SourceConfig, TenantConfig};
use salespulse::connectors::demo::{DemoParams, generate};
use salespulse::model::Dataset;
use salespulse::refresh::refresh_tenant;
use salespulse_config::config::UserConfig;
use salespulse_config::auth::Authenticator;
use salespulse::server::cache::ResultCache;
use salespulse::server::limits::QueryGate;
use salespulse_config::config::Limits;
use salespulse::scheduler::{Refresher, SystemClock};
use salespulse::server::{Listeners, Server};
use salespulse::snapshot::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub mod amocrm_mock;
pub mod bitrix24_mock;
pub mod pg_wire;

pub const SCALE: f64 = 0.01;
pub const SEED: u64 = 42;
pub const AS_OF: &str = "2026-06-15T12:00:00Z";

/// Serves `app` on `listener` until the returned sender is dropped or sent to: the mock
/// CRMs' server loop.
pub fn serve_until_dropped(listener: TcpListener, app: axum::Router) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

pub fn demo_params() -> DemoParams {
    DemoParams { scale: SCALE, seed: SEED, as_of: AS_OF.parse().unwrap(), timezone: chrono_tz::Europe::Moscow }
}

/// The rows the demo snapshot of the fixtures holds, generated in-process.
pub fn demo_dataset() -> Dataset {
    generate(&demo_params())
}

pub fn tenant(name: &str) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        timezone: chrono_tz::Europe::Moscow,
        calendars: None,
        schedule: None,
        refresh_on_start: false,
        inputs: None,
        source: SourceConfig::Demo { scale: SCALE, seed: SEED },
        settings: default_settings(),
    }
}

/// Tenant `acme` (Moscow) with a CRM source, refreshed once into `store` (3 snapshots kept);
/// the error as its one-line message.
pub async fn refresh_crm(store: &Store, source: SourceConfig) -> Result<salespulse::refresh::RefreshReport, String> {
    let t = TenantConfig { name: "acme".into(), source, ..tenant("acme") };
    refresh_tenant(store, &t, salespulse::refresh::source_of(&t), 3).await.map_err(|e| e.to_string())
}

pub fn info(name: &str) -> TenantInfo {
    let t = tenant(name);
    TenantInfo { name: t.name, timezone: t.timezone, settings: t.settings, calendars: None }
}

/// Writes a demo snapshot for `tenant` under `root`.
pub async fn write_demo(store: &Store, tenant_name: &str) -> salespulse::snapshot::Manifest {
    let source = Source::Demo { scale: SCALE, seed: SEED, as_of: Some(AS_OF.parse().unwrap()) };
    refresh_tenant(store, &tenant(tenant_name), source, 3).await.unwrap().report.manifest
}

/// A server on 127.0.0.1:0 over a temporary storage root.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The PostgreSQL port.
    pub pg_addr: SocketAddr,
    /// The HTTP port.
    pub http_addr: SocketAddr,
    pub catalog: Arc<Catalog>,
    /// The query slots and limits of both protocols.
    pub gate: Arc<QueryGate>,
    /// The result cache both protocols share (64 MiB).
    pub cache: Arc<ResultCache>,
    pub root: tempfile::TempDir,
    /// How far [`TestServer::advance_clock`] moved the clock tokens are issued and checked
    /// against.
    clock_skew: Arc<std::sync::Mutex<std::time::Duration>>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves the given tenants; those in `with_data` get a demo snapshot first.
    pub async fn spawn(tenants: &[&str], with_data: &[&str]) -> TestServer {
        Self::spawn_with_users(tenants, with_data, Vec::new()).await
    }

    /// As [`TestServer::spawn`], with these `[[users]]` (authentication on when not empty).
    pub async fn spawn_with_users(tenants: &[&str], with_data: &[&str], users: Vec<UserConfig>) -> TestServer {
        Self::spawn_limited(tenants, with_data, users, Limits::default()).await
    }

    /// As [`TestServer::spawn_with_users`], under these `[limits]` (both protocols share them).
    pub async fn spawn_limited(tenants: &[&str], with_data: &[&str], users: Vec<UserConfig>, limits: Limits) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().to_str().unwrap()).unwrap();
        for t in with_data {
            write_demo(&store, t).await;
        }
        let catalog = Arc::new(Catalog::new(store, tenants.iter().map(|t| info(t)).collect()).with_query_memory(Some(limits.query_memory_bytes as usize)));
        for t in tenants {
            catalog.load_tenant(t).await.unwrap();
        }
        let clock_skew = Arc::new(std::sync::Mutex::new(std::time::Duration::ZERO));
        let skew = Arc::clone(&clock_skew);
        let clock = Arc::new(move || std::time::SystemTime::now() + *skew.lock().unwrap());
        let auth = Arc::new(
            Authenticator::new(&users, Some(b"integration-test-key"), std::time::Duration::from_secs(limits.token_ttl_seconds))
                .with_failed_login_limit(limits.failed_logins_per_minute)
                .with_clock(clock),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pg_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pg_addr = pg_listener.local_addr().unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        // The library's server, as `salespulse serve` runs it; refreshes write demo snapshots.
        let run = salespulse::refresh::serving_refresh(catalog.store().clone(), Arc::clone(&catalog), tenants.iter().map(|t| tenant(t)).collect(), salespulse::refresh::RefreshOptions::alone(3));
        let refresher = Arc::new(Refresher::new(run, Arc::new(SystemClock), Arc::clone(&catalog.logs().refreshes)));
        let server = Arc::new(Server::new(Arc::clone(&catalog), auth, limits, 64 << 20, refresher));
        let (cache, gate) = (Arc::clone(server.cache()), Arc::clone(server.gate()));
        let token = shutdown.clone();
        let listeners = Listeners { flight_sql: Some(listener), postgres: Some(pg_listener), http: http_listener };
        let handle = tokio::spawn(async move {
            server.serve(listeners, token).await.unwrap();
        });
        TestServer { addr, pg_addr, http_addr, catalog, cache, gate, root, clock_skew, shutdown, handle: Some(handle) }
    }

    /// Moves the clock bearer tokens are issued and checked against on by `by`, so a test of
    /// their expiry needs no sleep.
    pub fn advance_clock(&self, by: std::time::Duration) {
        *self.clock_skew.lock().unwrap() += by;
    }

    pub async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        FlightSqlServiceClient::new(channel)
    }

    pub async fn shutdown_and_wait(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Redeems the single endpoint of a FlightInfo.
pub async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    assert_eq!(info.endpoint.len(), 1, "exactly one endpoint");
    assert!(info.endpoint[0].location.is_empty(), "no locations");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)))?;
    stream.try_collect().await
}

/// Runs a statement and returns the advertised schema with the batches.
pub async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<(arrow::datatypes::Schema, Vec<RecordBatch>), String> {
    let info = client.execute(sql.to_string(), None).await.map_err(|e| e.to_string())?;
    let schema = info.clone().try_decode_schema().map_err(|e| e.to_string())?;
    let batches = fetch(client, info).await.map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// What a sync told its progress receiver, per list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListSeen {
    pub expected: Option<u64>,
    pub rows: u64,
    pub requests: u64,
    pub started: u32,
    pub finished: u32,
}

/// A progress receiver that keeps every call.
#[derive(Debug, Default)]
pub struct RecordedProgress {
    pub lists: std::sync::Mutex<std::collections::BTreeMap<String, ListSeen>>,
}

impl RecordedProgress {
    pub fn list(&self, name: &str) -> ListSeen {
        self.lists.lock().unwrap().get(name).cloned().unwrap_or_else(|| panic!("no progress for list {name:?}: {:?}", self.lists.lock().unwrap().keys().collect::<Vec<_>>()))
    }
}

impl salespulse::connectors::progress::Progress for RecordedProgress {
    fn list_started(&self, list: &str, expected_rows: Option<u64>) {
        let mut lists = self.lists.lock().unwrap();
        let seen = lists.entry(list.to_string()).or_default();
        assert_eq!(seen.started, seen.finished, "{list} started again before it finished");
        seen.started += 1;
        seen.expected = expected_rows;
    }

    fn page_read(&self, list: &str, rows: u64) {
        let mut lists = self.lists.lock().unwrap();
        let seen = lists.get_mut(list).unwrap_or_else(|| panic!("rows of {list} before it started"));
        assert!(seen.started > seen.finished, "rows of {list} after it finished");
        seen.rows += rows;
        seen.requests += 1;
    }

    fn list_finished(&self, list: &str) {
        let mut lists = self.lists.lock().unwrap();
        let seen = lists.get_mut(list).unwrap_or_else(|| panic!("{list} finished before it started"));
        seen.finished += 1;
    }
}

/// [`refresh_crm`] with a progress receiver that records what the sync told it.
pub async fn refresh_crm_recorded(store: &Store, source: SourceConfig) -> (salespulse::refresh::RefreshReport, Arc<RecordedProgress>) {
    let t = TenantConfig { name: "acme".into(), source, ..tenant("acme") };
    let progress = Arc::new(RecordedProgress::default());
    let report = salespulse::refresh::refresh_tenant_with_progress(store, &t, salespulse::refresh::source_of(&t), 3, Arc::clone(&progress) as _).await.unwrap();
    (report, progress)
}

/// Checks a snapshot against a mock CRM's oracle (`MockData::oracle`): every table's keys
/// equal (`deal_items`: `deal|item`; `deal_stage_history`: `deal|rows`), every
/// `deals.amount_base` entry present, and exactly the oracle's leads qualified.
pub async fn assert_matches_oracle(store: &Store, manifest: &salespulse::snapshot::Manifest, oracle: &std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>>) {
    use arrow::array::Array;
    use arrow::util::display::array_value_to_string;
    use std::collections::{BTreeMap, BTreeSet};
    let cells = |batches: &[arrow::array::RecordBatch], columns: &[&str]| -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for b in batches {
            let idx: Vec<usize> = columns.iter().map(|c| b.schema().index_of(c).unwrap()).collect();
            for r in 0..b.num_rows() {
                out.push(idx.iter().map(|i| if b.column(*i).is_null(r) { String::new() } else { array_value_to_string(b.column(*i), r).unwrap() }).collect());
            }
        }
        out
    };
    for (key, expected) in oracle {
        let (table, what) = key.split_once('.').unwrap_or((key, ""));
        let t = salespulse::model::Table::from_name(table).unwrap_or_else(|| panic!("no table {table}"));
        let batches = store.read_table(manifest, t).await.unwrap();
        let first = t.schema().field(0).name().clone();
        let found: BTreeSet<String> = match (table, what) {
            ("deal_items", _) => cells(&batches, &["deal_id", "item_id"]).into_iter().map(|c| c.join("|")).collect(),
            ("deal_stage_history", _) => {
                let mut n: BTreeMap<String, usize> = BTreeMap::new();
                for c in cells(&batches, &["deal_id"]) {
                    *n.entry(c[0].clone()).or_default() += 1;
                }
                n.into_iter().map(|(d, n)| format!("{d}|{n}")).collect()
            }
            ("deals", "amount_base") => {
                let all: BTreeSet<String> = cells(&batches, &["deal_id", "amount_base"]).into_iter().map(|c| c.join("|")).collect();
                let missing: Vec<&String> = expected.iter().filter(|e| !all.contains(*e)).collect();
                assert!(missing.is_empty(), "deals.amount_base differs from what the CRM reports: {:?}", &missing[..missing.len().min(5)]);
                continue;
            }
            ("leads", "qualified") => cells(&batches, &["lead_id", "qualified_at"]).into_iter().filter(|c| !c[1].is_empty()).map(|c| c[0].clone()).collect(),
            _ => cells(&batches, &[first.as_str()]).into_iter().map(|c| c[0].clone()).collect(),
        };
        let extra: Vec<&String> = found.difference(expected).take(5).collect();
        let missing: Vec<&String> = expected.difference(&found).take(5).collect();
        assert!(extra.is_empty() && missing.is_empty(), "{key}: the snapshot has {} rows the CRM does not ({extra:?}…) and lacks {} it has ({missing:?}…)", found.difference(expected).count(), expected.difference(&found).count());
    }
}

/// A user whose password is `<name>-pass`, reading `tenants` (all when `None`).
pub fn user(name: &str, tenants: Option<&[&str]>) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: PasswordSecret::Plain(format!("{name}-pass")),
        tenants: tenants.map(|t| t.iter().map(|s| s.to_string()).collect()),
        api_token_sha256: None,
        may_refresh: false,
    }
}
