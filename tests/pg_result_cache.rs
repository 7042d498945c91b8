//! The result cache over PostgreSQL (Grafana's PostgreSQL panels re-run the same queries):
//! a repeated query is a hit with the same rows, a refresh makes it a miss with the new
//! data, what changes without a refresh is never kept, users of other tenants never share
//! an entry, and a portal read in part is not kept as the whole result.

use std::sync::atomic::Ordering;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use salespulse_config::config::{Limits, SourceConfig};

use crate::common::{TestServer, user};
use crate::common::pg_wire::{Msg, Pg, error_of, rows_of};

/// Logs in without a password (no `[[users]]`) to `database`.
async fn connect(server: &TestServer, database: &str) -> Pg {
    let mut pg = Pg::connect(server.pg_addr).await;
    pg.startup(&[("user", "demo"), ("database", database)]).await;
    let (seen, ready) = pg.until_ready().await;
    assert!(ready, "login failed: {seen:?}");
    pg
}


fn hits(server: &TestServer) -> u64 {
    server.cache.stats().hits.load(Ordering::Relaxed)
}

/// The rows of a statement that must succeed.
fn ok_rows(seen: &[Msg]) -> Vec<Vec<Option<String>>> {
    assert!(error_of(seen).is_none(), "{seen:?}");
    rows_of(seen)
}

fn one_value(seen: &[Msg]) -> String {
    let rows = ok_rows(seen);
    assert_eq!(rows.len(), 1, "{seen:?}");
    rows[0][0].clone().unwrap_or_default()
}

/// `sql`'s one count as the engine answers it on `tenant`'s current snapshot.
async fn engine_count(server: &TestServer, tenant: &str, sql: &str) -> String {
    let batches = server.catalog.session(Some(tenant)).sql(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0).to_string()
}

/// Refreshes `tenant` with demo data of another seed (another number of deals) and serves it.
async fn refresh_with_other_data(server: &TestServer, tenant: &str) {
    let store = server.catalog.store().clone();
    let mut config = crate::common::tenant(tenant);
    config.source = SourceConfig::Demo { scale: 0.01, seed: 4242 };
    salespulse::refresh::refresh_tenant(&store, &config, salespulse::refresh::source_of(&config), 3).await.unwrap();
    server.catalog.load_tenant(tenant).await.unwrap();
}

#[tokio::test]
async fn a_repeated_postgresql_query_is_a_hit_with_the_same_rows() {
    let server = TestServer::spawn(&["acme"], &["acme"]).await;
    let mut pg = connect(&server, "acme").await;
    let sql = "SELECT status, count(*) AS n FROM crm.deals GROUP BY status ORDER BY status";
    let first = ok_rows(&pg.simple(sql).await);
    assert!(!first.is_empty());
    assert_eq!(hits(&server), 0);
    assert_eq!(ok_rows(&pg.simple(sql).await), first);
    assert_eq!(hits(&server), 1, "the second run is answered from the cache");

    // The extended protocol (Grafana's pgx) keeps its own entry, also hit the second time.
    assert_eq!(ok_rows(&pg.extended(sql).await), first);
    assert_eq!(hits(&server), 1, "simple and extended queries do not share an entry");
    assert_eq!(ok_rows(&pg.extended(sql).await), first);
    assert_eq!(hits(&server), 2);

    // The hit is in the audit as cached, on the PostgreSQL protocol.
    let audit = ok_rows(&pg.simple("SELECT sql, cached, protocol FROM system.queries ORDER BY started_at").await);
    let runs: Vec<(bool, String)> = audit
        .iter()
        .filter(|r| r[0].as_deref() == Some(sql))
        .map(|r| (matches!(r[1].as_deref(), Some("t" | "true")), r[2].clone().unwrap_or_default()))
        .collect();
    assert!(runs.len() >= 2, "{audit:?}");
    assert_eq!(runs[0], (false, "postgres".to_string()), "{audit:?}");
    assert_eq!(runs[1], (true, "postgres".to_string()), "{audit:?}");

    // A time zone changes what plans compute: another entry.
    assert!(error_of(&pg.simple("SET TIME ZONE 'Europe/Moscow'").await).is_none());
    assert_eq!(ok_rows(&pg.simple(sql).await), first);
    assert_eq!(hits(&server), 2, "another time zone, another entry");
    assert_eq!(ok_rows(&pg.simple(sql).await), first);
    assert_eq!(hits(&server), 3);
    // How values are written is applied to the kept batches when they are sent: same entry.
    assert!(error_of(&pg.simple("SET extra_float_digits = 3").await).is_none());
    assert_eq!(ok_rows(&pg.simple(sql).await), first);
    assert_eq!(hits(&server), 4);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn after_a_refresh_the_same_postgresql_query_is_a_miss_with_the_new_data() {
    let server = TestServer::spawn(&["acme"], &["acme"]).await;
    let mut pg = connect(&server, "acme").await;
    let sql = "SELECT count(*) AS n FROM crm.deals";
    let before = one_value(&pg.simple(sql).await);
    assert_eq!(one_value(&pg.simple(sql).await), before);
    assert_eq!(one_value(&pg.extended(sql).await), before);
    assert_eq!(one_value(&pg.extended(sql).await), before);
    assert_eq!(hits(&server), 2);

    refresh_with_other_data(&server, "acme").await;
    let fresh = engine_count(&server, "acme", sql).await;
    assert_ne!(fresh, before, "another seed, another number of deals");
    assert_eq!(one_value(&pg.simple(sql).await), fresh);
    assert_eq!(one_value(&pg.extended(sql).await), fresh);
    assert_eq!(hits(&server), 2, "a new snapshot, a new key: both protocols ran the query again");
    // The new result is kept in turn.
    assert_eq!(one_value(&pg.simple(sql).await), fresh);
    assert_eq!(hits(&server), 3);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn what_changes_without_a_refresh_is_never_kept_over_postgresql() {
    let server = TestServer::spawn(&["acme"], &["acme"]).await;
    let mut pg = connect(&server, "acme").await;
    for sql in ["SELECT count(*) FROM system.queries", "SELECT count(*) FROM pg_catalog.pg_class", "SELECT count(*) FROM information_schema.tables"] {
        for _ in 0..2 {
            ok_rows(&pg.simple(sql).await);
        }
    }
    for _ in 0..2 {
        ok_rows(&pg.extended("SELECT count(*) FROM system.queries").await);
    }
    // Statements other than queries.
    for sql in ["SHOW timezone", "EXPLAIN SELECT count(*) FROM crm.deals"] {
        for _ in 0..2 {
            ok_rows(&pg.simple(sql).await);
        }
    }
    assert_eq!(hits(&server), 0);
    // A `search_path` that resolves names in `system`: the text names no system table, the
    // plan does. Each run counts the one before it.
    assert!(error_of(&pg.simple("SET search_path = system").await).is_none());
    let sql = "SELECT count(*) AS n FROM queries";
    let first: u64 = one_value(&pg.simple(sql).await).parse().unwrap();
    let second: u64 = one_value(&pg.simple(sql).await).parse().unwrap();
    assert!(second > first, "{second} after {first}: a stale count was sent");
    let third: u64 = one_value(&pg.extended(sql).await).parse().unwrap();
    let fourth: u64 = one_value(&pg.extended(sql).await).parse().unwrap();
    assert!(fourth > third, "{fourth} after {third}: a stale count was sent");
    assert_eq!(hits(&server), 0);
    // A query of the snapshot is kept.
    assert!(error_of(&pg.simple("RESET search_path").await).is_none());
    let deals = "SELECT count(*) AS n FROM crm.deals";
    assert_eq!(one_value(&pg.simple(deals).await), one_value(&pg.simple(deals).await));
    assert_eq!(hits(&server), 1);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn users_of_other_tenants_never_share_a_postgresql_entry() {
    let users = vec![user("anna", Some(&["acme"])), user("alex", Some(&["acme"])), user("boris", Some(&["beta"])), user("vera", Some(&["acme", "beta"])), user("root", None)];
    let server = TestServer::spawn_limited(&["acme", "beta"], &["acme", "beta"], users, Limits::default()).await;
    refresh_with_other_data(&server, "beta").await;
    // One text, no tenant named: it reads the tenant of the connection's database.
    let sql = "SELECT count(*) AS n FROM crm.deals";
    let (acme, beta) = (engine_count(&server, "acme", sql).await, engine_count(&server, "beta", sql).await);
    assert_ne!(acme, beta);

    let mut anna = Pg::login(server.pg_addr, "anna", "anna-pass", "acme").await;
    assert_eq!(one_value(&anna.simple(sql).await), acme);
    // alex reads the same tenants: the entry is his too.
    let mut alex = Pg::login(server.pg_addr, "alex", "alex-pass", "acme").await;
    assert_eq!(one_value(&alex.simple(sql).await), acme);
    assert_eq!(hits(&server), 1);
    // Another tenant list, or another database, is another entry.
    let mut boris = Pg::login(server.pg_addr, "boris", "boris-pass", "beta").await;
    assert_eq!(one_value(&boris.simple(sql).await), beta, "boris got acme's rows");
    let mut vera = Pg::login(server.pg_addr, "vera", "vera-pass", "beta").await;
    assert_eq!(one_value(&vera.simple(sql).await), beta);
    let mut vera_acme = Pg::login(server.pg_addr, "vera", "vera-pass", "acme").await;
    assert_eq!(one_value(&vera_acme.simple(sql).await), acme);
    let mut root = Pg::login(server.pg_addr, "root", "root-pass", "beta").await;
    assert_eq!(one_value(&root.simple(sql).await), beta);
    assert_eq!(hits(&server), 1, "no user of another tenant list or database got a hit");
    // Each entry serves its own kind again.
    assert_eq!(one_value(&boris.simple(sql).await), beta);
    assert_eq!(one_value(&anna.simple(sql).await), acme);
    assert_eq!(hits(&server), 3);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_portal_read_in_part_is_not_kept_as_the_whole_result() {
    let server = TestServer::spawn(&["acme"], &["acme"]).await;
    let mut pg = connect(&server, "acme").await;
    let sql = "SELECT deal_id FROM crm.deals ORDER BY deal_id";
    let all = ok_rows(&pg.simple(sql).await);
    assert!(all.len() > 2, "{} rows", all.len());
    // One row of the portal, then Sync: the portal is suspended with the rest.
    pg.send(&Pg::partial_bytes(sql, 1)).await;
    let (seen, ready) = pg.until_ready().await;
    assert!(ready && rows_of(&seen).len() == 1, "{seen:?}");
    let before = hits(&server);
    // The same query, Executed in full: not answered with the one row read before.
    assert_eq!(ok_rows(&pg.extended(sql).await), all);
    assert_eq!(hits(&server), before, "the portal read in part left nothing in the cache");
    // Read to its end, the result is kept.
    assert_eq!(ok_rows(&pg.extended(sql).await), all);
    assert_eq!(hits(&server), before + 1);
    server.shutdown_and_wait().await;
}
