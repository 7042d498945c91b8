//! The Flight SQL calls BI clients make beyond plain statements (docs/clients.md): prepared
//! statements with parameters, SqlInfo, keys, type info, the Grafana profile, unknown
//! actions, and authentication with tenant isolation.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UnionArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, UInt32Type};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandGetPrimaryKeys, CommandGetXdbcTypeInfo, ProstMessageExt, TicketStatementQuery};
use arrow_flight::{Action, Ticket};
use base64::Engine;
use futures::TryStreamExt;
use prost::Message;
use salespulse_config::config::{PasswordSecret, UserConfig};
use tonic::transport::Channel;

use crate::common::{TestServer, fetch, query, rows};

fn count(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0)
}

#[tokio::test]
async fn prepared_statements_bind_parameters_and_stay_stateless() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let (_, expected) = query(&mut client, "SELECT count(*) AS n FROM crm.deals WHERE amount > 100000 AND status = 'won'").await.unwrap();

    let mut prepared = client.prepare("SELECT count(*) AS n FROM crm.deals WHERE amount > $1 AND status = $2".into(), None).await.unwrap();
    // JDBC treats an empty dataset schema as an UPDATE: it must be the real one.
    let dataset = prepared.dataset_schema().unwrap().clone();
    assert_eq!(dataset.fields().len(), 1);
    assert_eq!(dataset.field(0).name(), "n");
    assert_eq!(prepared.parameter_schema().unwrap().fields().len(), 2);

    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Float64, true), Field::new("$2", DataType::Utf8, true)])),
        vec![Arc::new(Float64Array::from(vec![100000.0])), Arc::new(StringArray::from(vec!["won"]))],
    )
    .unwrap();
    prepared.set_parameters(params).unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = fetch(&mut client, info.clone()).await.unwrap();
    assert_eq!(count(&batches), count(&expected));
    assert!(count(&batches) > 0, "the fixture has won deals above 100,000");

    // The ticket is self-contained: a second connection redeems it.
    let mut other = server.client().await;
    let again = fetch(&mut other, info).await.unwrap();
    assert_eq!(count(&again), count(&expected));
    prepared.close().await.unwrap();

    // A parameter count that does not match is reported when bound or executed.
    let mut wrong = client.prepare("SELECT $1 + $2 AS s".into(), None).await.unwrap();
    let one = RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)])), vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    wrong.set_parameters(one).unwrap();
    let err = wrong.execute().await.unwrap_err().to_string();
    assert!(err.contains("$2") || err.to_lowercase().contains("placeholder") || err.to_lowercase().contains("param"), "{err}");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn sql_info_keys_and_type_info_answer_with_spec_schemas() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;

    let info = client.get_sql_info(vec![]).await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let ids: Vec<u32> = batches.iter().flat_map(|b| b.column(0).as_primitive::<UInt32Type>().values().to_vec()).collect();
    for id in [0, 1, 2, 3, 8, 504, 508, 509, 510, 511, 512] {
        assert!(ids.contains(&id), "SqlInfo id {id} missing");
    }
    assert_eq!(&ids[17..22], &[508, 509, 510, 511, 512], "Grafana reads rows 17-21 as lists");
    let values = batches[0].column(1).as_any().downcast_ref::<UnionArray>().unwrap();
    assert_eq!(values.type_id(ids.iter().position(|i| *i == 8).unwrap()), 3, "id 8 in the int32 branch");

    let info = client
        .get_primary_keys(CommandGetPrimaryKeys { catalog: None, db_schema: Some("crm".into()), table: "deals".into() })
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["catalog_name", "db_schema_name", "table_name", "column_name", "key_name", "key_sequence"]);
    assert_eq!(rows(&fetch(&mut client, info).await.unwrap()), 0);

    let info = client.get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None }).await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    let types: Vec<String> = batches[0].column(0).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect();
    for t in ["BIGINT", "VARCHAR", "TIMESTAMP", "DECIMAL", "BOOLEAN"] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn the_grafana_profile_sends_nanosecond_timestamps_and_floats() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let mut client = server.client().await;
    let sql = "SELECT created_at AS time, amount, CAST(created_at AS DATE) AS day, title FROM crm.deals ORDER BY deal_id LIMIT 3";
    let (standard, _) = query(&mut client, sql).await.unwrap();
    assert_eq!(standard.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    assert!(matches!(standard.field(1).data_type(), DataType::Decimal128(..)));
    assert_eq!(standard.field(2).data_type(), &DataType::Date32);

    client.set_header("x-salespulse-compat", "grafana");
    let (grafana, batches) = query(&mut client, sql).await.unwrap();
    assert_eq!(grafana.field(0).data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())));
    assert_eq!(grafana.field(1).data_type(), &DataType::Float64);
    assert_eq!(grafana.field(2).data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())));
    assert_eq!(grafana.field(3).data_type(), &DataType::Utf8);
    assert_eq!(rows(&batches), 3);
    assert_eq!(batches[0].schema().as_ref(), &grafana, "the stream carries the advertised schema");
    server.shutdown_and_wait().await;
}

#[tokio::test]
async fn session_actions_are_unimplemented_not_invalid() {
    let server = TestServer::spawn(&["demo"], &["demo"]).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut raw = FlightServiceClient::new(channel);
    for action in ["CloseSession", "GetSessionOptions", "SetSessionOptions", "CancelFlightInfo"] {
        let status = raw.do_action(Action { r#type: action.into(), body: Default::default() }).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{action}");
    }
    server.shutdown_and_wait().await;
}

fn users() -> Vec<UserConfig> {
    vec![
        UserConfig { name: "grafana".into(), password: PasswordSecret::Plain("grafana-pass".into()), tenants: Some(vec!["acme".into()]), api_token_sha256: None, may_refresh: false },
        UserConfig { name: "admin".into(), password: PasswordSecret::Plain("admin-pass".into()), tenants: None, api_token_sha256: None, may_refresh: false },
    ]
}

#[tokio::test]
async fn users_log_in_and_see_only_their_tenants() {
    let server = TestServer::spawn_with_users(&["acme", "demo"], &["acme", "demo"], users()).await;

    // No credentials, then a wrong password: refused with a message naming the fix.
    let mut anonymous = server.client().await;
    let err = query(&mut anonymous, "SELECT 1").await.unwrap_err();
    assert!(err.contains("authentication required"), "{err}");
    let err = anonymous.handshake("grafana", "wrong").await.unwrap_err().to_string();
    assert!(err.contains("wrong user name or password"), "{err}");

    // Go clients send unpadded Basic credentials, on every call if they like.
    let mut go_style = server.client().await;
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("grafana:grafana-pass");
    assert!(!unpadded.ends_with('='));
    go_style.set_header("authorization", format!("Basic {unpadded}"));
    let (_, batches) = query(&mut go_style, "SELECT count(*) FROM crm.deals").await.unwrap();
    assert!(count(&batches) > 0);

    // The handshake's bearer token; grafana sees acme only.
    let mut grafana = server.client().await;
    grafana.handshake("grafana", "grafana-pass").await.unwrap();
    let info = grafana.get_catalogs().await.unwrap();
    let batches = fetch(&mut grafana, info).await.unwrap();
    let catalogs: Vec<String> = batches[0].column(0).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect();
    assert_eq!(catalogs, ["acme"]);
    let err = query(&mut grafana, "SELECT count(*) FROM demo.crm.deals").await.unwrap_err();
    assert!(err.contains("demo"), "another tenant cannot be named: {err}");
    let err = query(&mut grafana, "SELECT table_catalog FROM information_schema.tables WHERE table_catalog = 'demo'").await;
    assert_eq!(err.map(|(_, b)| rows(&b)), Ok(0), "nor reached through information_schema");
    grafana.set_header("database", "demo");
    let err = query(&mut grafana, "SELECT 1").await.unwrap_err();
    assert!(err.contains("unknown database 'demo'") && err.contains("acme"), "{err}");

    // A ticket issued to admin is useless to grafana, and a forged one to anybody.
    let mut admin = server.client().await;
    admin.handshake("admin", "admin-pass").await.unwrap();
    let info = admin.execute("SELECT count(*) FROM demo.crm.deals".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut grafana = server.client().await;
    grafana.handshake("grafana", "grafana-pass").await.unwrap();
    let err = grafana.do_get(ticket.clone()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("another user"), "{err}");
    let any = arrow_flight::sql::Any::decode(ticket.ticket.as_ref()).unwrap();
    let mut forged = TicketStatementQuery::decode(any.value.as_ref()).unwrap();
    let mut handle = forged.statement_handle.to_vec();
    let at = handle.iter().position(|b| *b == b'a').unwrap();
    handle[at] = b'b';
    forged.statement_handle = handle.into();
    let err = admin.do_get(Ticket::new(forged.as_any().encode_to_vec())).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not issued by this server"), "{err}");
    let batches: Vec<RecordBatch> = admin.do_get(ticket).await.unwrap().try_collect().await.unwrap();
    assert!(count(&batches) > 0, "the owner redeems it");
    assert!(batches[0].column(0).len() == 1);
    server.shutdown_and_wait().await;
}
