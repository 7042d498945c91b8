//! Flight SQL end to end with the arrow-flight client: metadata, queries, types, errors.

use std::collections::HashSet;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use arrow_flight::{Ticket, sql::{ProstMessageExt, TicketStatementQuery}};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use salespulse::model::Table;
use salespulse::snapshot::Store;

use crate::common::{TestServer, demo_dataset, fetch, query, rows, write_demo};

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.column_by_name(column).unwrap().as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn metadata_lists_every_tenant_without_a_catalog_filter() {
    let server = TestServer::spawn(&["acme", "demo"], &["acme", "demo"]).await;
    let mut client = server.client().await;

    let info = client.get_catalogs().await.unwrap();
    let catalogs = strings(&fetch(&mut client, info).await.unwrap(), "catalog_name");
    assert_eq!(catalogs, vec!["acme", "demo"]);

    let info = client.get_db_schemas(CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: None }).await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let pairs: HashSet<(String, String)> =
        strings(&batches, "catalog_name").into_iter().zip(strings(&batches, "db_schema_name")).collect();
    for catalog in ["acme", "demo"] {
        for schema in ["crm", "kpi", "system"] {
            assert!(pairs.contains(&(catalog.into(), schema.into())), "missing {catalog}.{schema} in {pairs:?}");
        }
    }

    // Grafana's table list: no catalog, its two type spellings.
    let request = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: Some("crm".into()),
        table_name_filter_pattern: None,
        table_types: vec!["BASE TABLE".into(), "table".into()],
        include_schema: false,
    };
    let info = client.get_tables(request).await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let demo_tables: HashSet<String> = strings(&batches, "catalog_name")
        .into_iter()
        .zip(strings(&batches, "table_name"))
        .filter(|(c, _)| c == "demo")
        .map(|(_, t)| t)
        .collect();
    let expected: HashSet<String> = Table::ALL.iter().map(|t| t.name().to_string()).collect();
    assert_eq!(demo_tables, expected);

    // Column lists (Superset, Grafana's builder): include_schema with JDBC's "TABLE".
    let request = CommandGetTables {
        catalog: Some("demo".into()),
        db_schema_filter_pattern: Some("crm".into()),
        table_name_filter_pattern: Some("calls".into()),
        table_types: vec!["TABLE".into()],
        include_schema: true,
    };
    let info = client.get_tables(request).await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(rows(&batches), 1);
    let bytes = batches[0].column_by_name("table_schema").unwrap().as_binary::<i32>().value(0).to_vec();
    let schema = arrow_flight::IpcMessage(bytes.into());
    let schema = arrow::datatypes::Schema::try_from(schema).unwrap();
    assert_eq!(&schema, Table::Calls.schema().as_ref());

    let info = client.get_table_types().await.unwrap();
    assert_eq!(strings(&fetch(&mut client, info).await.unwrap(), "table_type"), vec!["BASE TABLE", "VIEW"]);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn row_counts_and_types_match_the_generator() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let expected = demo_dataset();
    for table in Table::ALL {
        let (schema, batches) = query(&mut client, &format!("SELECT count(*) AS n FROM crm.{}", table.name())).await.unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        let n = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(n as usize, expected.rows(*table), "rows of crm.{}", table.name());
        // Every column arrives with its canonical type, nullability included.
        let (schema, batches) = query(&mut client, &format!("SELECT * FROM crm.{} LIMIT 3", table.name())).await.unwrap();
        assert_eq!(&schema, table.schema().as_ref(), "advertised schema of crm.{}", table.name());
        for b in &batches {
            assert_eq!(b.schema().as_ref(), table.schema().as_ref(), "streamed schema of crm.{}", table.name());
        }
    }
    // Unqualified names resolve in the tenant's crm schema; computed columns are client-safe.
    let (schema, _) = query(&mut client, "SELECT now() AS t, CAST('x' AS VARCHAR) AS s, lower(name) AS l, 1.5::float AS f FROM managers LIMIT 1").await.unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(3).data_type(), &DataType::Float64);
    // The example query, and a multi-batch result streamed in full.
    let (_, batches) = query(&mut client, "SELECT manager_id, count(*) FROM crm.calls GROUP BY 1").await.unwrap();
    assert!(rows(&batches) > 50);
    let (_, batches) = query(&mut client, "SELECT * FROM crm.calls").await.unwrap();
    assert!(batches.len() > 1, "streamed in several batches");
    assert_eq!(rows(&batches), expected.rows(Table::Calls));
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn an_empty_result_still_carries_its_schema() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let info = client.execute("SELECT call_id, started_at, duration_seconds FROM crm.calls WHERE 1 = 0".into(), None).await.unwrap();
    let advertised = info.clone().try_decode_schema().unwrap();
    assert_eq!(advertised.fields().len(), 3);
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = client.do_get(ticket).await.unwrap();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b.unwrap());
    }
    assert_eq!(rows(&batches), 0);
    assert_eq!(stream.schema().map(|s| s.as_ref()), Some(&advertised), "DoGet schema equals the FlightInfo schema");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn bad_queries_get_clear_errors_and_the_server_keeps_serving() {
    let server = TestServer::spawn(&["demo", "empty"], &["demo"]).await;
    let mut client = server.client().await;
    let cases = [
        ("SELECT * FROM crm.no_such_table", "not found"),
        ("SELEC 1", "SQL error"),
        ("CREATE TABLE x AS SELECT 1", "read-only"),
        ("DROP TABLE crm.calls", "read-only"),
        ("INSERT INTO crm.departments VALUES ('x', 'y', NULL, NULL)", "read-only"),
        ("SET datafusion.execution.batch_size = 1", "read-only"),
        ("SELECT count(*) FROM empty.crm.calls", "no current snapshot"),
        ("SELECT * FROM crm.calls WHERE no_such_column = 1", "no_such_column"),
    ];
    for (sql, expected) in cases {
        let err = query(&mut client, sql).await.unwrap_err();
        assert!(err.contains(expected), "{sql}: expected '{expected}' in: {err}");
    }
    // A ticket this server did not issue.
    let forged = TicketStatementQuery { statement_handle: b"garbage".to_vec().into() };
    let err = client.do_get(Ticket::new(forged.as_any().encode_to_vec())).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not issued by this server"), "{err}");
    let (_, batches) = query(&mut client, "SELECT 1 AS one").await.unwrap();
    assert_eq!(rows(&batches), 1, "still serving");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn handshake_returns_a_bearer_token_in_the_headers() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    client.handshake("grafana", "any").await.unwrap();
    assert!(client.token().is_some_and(|t| !t.is_empty()));
    let (_, batches) = query(&mut client, "SELECT 1").await.unwrap();
    assert_eq!(rows(&batches), 1);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_query_running_during_a_swap_finishes_on_the_old_snapshot() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let before = demo_dataset().rows(Table::Calls);
    let info = client.execute("SELECT call_id FROM crm.calls".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = client.do_get(ticket).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() < before, "the result spans several batches");

    // A new, different snapshot lands and is swapped in.
    let store = Store::open(server.root.path().to_str().unwrap()).unwrap();
    let source = salespulse::connectors::Source::Demo { scale: 0.02, seed: 7, as_of: Some(crate::common::AS_OF.parse().unwrap()) };
    salespulse::refresh::refresh_tenant(&store, &crate::common::tenant("demo"), source, 3).await.unwrap();
    server.catalog.load_tenant("demo").await.unwrap();

    let rest: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(first.num_rows() + rows(&rest), before, "the running query saw only the old snapshot");
    let (_, batches) = query(&mut client, "SELECT count(*) FROM crm.calls").await.unwrap();
    let after = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0) as usize;
    assert_ne!(after, before, "new queries see the new snapshot");
    server.shutdown_and_wait().await;
}

/// A statement planned on a snapshot whose files were deleted before its rows were read (a
/// replica that had not followed yet, a grace too short): it runs again, once, on the
/// snapshot CURRENT names, instead of failing with "not found".
#[tokio::test]
async fn a_query_whose_snapshot_is_gone_before_any_row_runs_on_the_current_one() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let served = server.catalog.tenant("demo").unwrap().manifest.clone().unwrap();
    // Planned now (GetFlightInfo keeps the plan for the DoGet), on the served snapshot.
    let info = client.execute("SELECT count(*), sum(duration_seconds) FROM crm.calls".into(), None).await.unwrap();
    // Another process commits a new snapshot, and the served one's files are deleted.
    let store = Store::open(server.root.path().to_str().unwrap()).unwrap();
    let source = salespulse::connectors::Source::Demo { scale: 0.02, seed: 7, as_of: Some(crate::common::AS_OF.parse().unwrap()) };
    let newer = salespulse::refresh::refresh_tenant(&store, &crate::common::tenant("demo"), source, 3).await.unwrap().report.manifest;
    std::fs::remove_dir_all(server.root.path().join("demo/snapshots").join(&served.snapshot_id)).unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let counted = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0) as u64;
    assert_eq!(counted, newer.tables["calls"].rows, "answered from the snapshot CURRENT names");
    assert_eq!(server.catalog.tenant("demo").unwrap().manifest.as_ref().unwrap().snapshot_id, newer.snapshot_id, "and the tenant now serves it");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_corrupt_file_is_reported_and_the_previous_snapshot_is_served() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let store = Store::open(server.root.path().to_str().unwrap()).unwrap();
    let first = store.current_manifest("demo").await.unwrap();
    let second = write_demo(&store, "demo").await;
    assert_ne!(first.snapshot_id, second.snapshot_id);
    // Damage the new snapshot's calls file.
    let file = server.root.path().join("demo/snapshots").join(&second.snapshot_id).join("calls/part-00000.parquet");
    std::fs::write(&file, b"this is not parquet").unwrap();
    let state = server.catalog.load_tenant("demo").await.unwrap();
    let problem = state.problem.clone().unwrap();
    assert!(problem.contains("calls/part-00000.parquet") && problem.contains("not a readable Parquet file"), "{problem}");
    assert!(problem.contains(&format!("serving the previous snapshot {}", first.snapshot_id)), "{problem}");
    assert_eq!(state.manifest.as_ref().unwrap().snapshot_id, first.snapshot_id);

    let mut client = server.client().await;
    let (_, batches) = query(&mut client, "SELECT count(*) FROM crm.calls").await.unwrap();
    assert_eq!(rows(&batches), 1, "still serving");
    let (_, batches) = query(&mut client, "SELECT snapshot_id FROM system.snapshots WHERE is_current").await.unwrap();
    assert_eq!(strings(&batches, "snapshot_id"), vec![first.snapshot_id.clone()]);
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn a_missing_current_pointer_leaves_the_tenant_empty_with_a_reason() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    std::fs::remove_file(server.root.path().join("demo/CURRENT")).unwrap();
    let state = server.catalog.load_tenant("demo").await.unwrap();
    let problem = state.problem.clone().unwrap_or_default();
    assert!(problem.contains("CURRENT is missing") && problem.contains("serving the previous snapshot"), "{problem}");
    let mut client = server.client().await;
    let (_, batches) = query(&mut client, "SELECT 1").await.unwrap();
    assert_eq!(rows(&batches), 1, "still serving");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn repeated_queries_are_answered_from_the_cache_until_a_refresh() {
    use std::sync::atomic::Ordering;
    let server = TestServer::spawn(&["acme"], &["acme"]).await;
    let mut client = server.client().await;
    let count = |batches: &[RecordBatch]| batches[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0);
    let (_, first) = query(&mut client, "SELECT count(*) AS n FROM crm.deals").await.unwrap();
    // The same query laid out differently is the same query.
    let (_, second) = query(&mut client, "SELECT  count(*) AS n\n  FROM crm.deals ;").await.unwrap();
    assert_eq!(count(&first), count(&second));
    let stats = server.cache.stats();
    assert_eq!((stats.hits.load(Ordering::Relaxed), stats.misses.load(Ordering::Relaxed)), (1, 1));
    // Answers that change without a refresh are never kept.
    query(&mut client, "SELECT count(*) FROM system.snapshots").await.unwrap();
    assert_eq!(stats.uncacheable.load(Ordering::Relaxed), 1);

    // A refresh brings other deals: the same query misses and returns the new count.
    let store = server.catalog.store().clone();
    let mut tenant = crate::common::tenant("acme");
    tenant.source = salespulse_config::config::SourceConfig::Demo { scale: 0.01, seed: 4242 };
    salespulse::refresh::refresh_tenant(&store, &tenant, salespulse::refresh::source_of(&tenant), 3).await.unwrap();
    server.catalog.load_tenant("acme").await.unwrap();
    let (_, third) = query(&mut client, "SELECT count(*) AS n FROM crm.deals").await.unwrap();
    assert_eq!((stats.hits.load(Ordering::Relaxed), stats.misses.load(Ordering::Relaxed)), (1, 2));
    let ctx = server.catalog.session(Some("acme"));
    let fresh = ctx.sql("SELECT count(*) AS n FROM crm.deals").await.unwrap().collect().await.unwrap();
    assert_eq!(count(&third), count(&fresh));
    assert_ne!(count(&third), count(&first), "another seed, another number of deals");
}
