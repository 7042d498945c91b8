//! Every `is_successful_call` vector of UDFS.md (`vectors.json`, copied from the spec)
//! through SQL, plus the argument checks.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::prelude::SessionContext;

fn ctx() -> SessionContext {
    let ctx = SessionContext::new();
    for udf in salespulse_udfs::all() {
        ctx.register_udf(udf);
    }
    ctx
}

fn sql_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Bool(b) => b.to_string().to_uppercase(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => format!("'{s}'"),
        other => panic!("unexpected argument {other}"),
    }
}

async fn eval(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Option<bool>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let column = batches[0].column(0).as_boolean();
    Ok(column.is_valid(0).then(|| column.value(0)))
}

#[tokio::test]
async fn spec_vectors_pass_through_sql() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ctx = ctx();
    let mut checked = 0;
    for v in spec["vectors"].as_array().unwrap() {
        if v["function"] != "is_successful_call" {
            continue;
        }
        let args: Vec<String> = v["args"].as_array().unwrap().iter().map(sql_literal).collect();
        let sql = format!("SELECT is_successful_call({})", args.join(", "));
        let got = eval(&ctx, &sql).await;
        match v.get("expected_error") {
            Some(_) => assert!(got.is_err(), "{}: {sql} should fail", v["id"]),
            None => assert_eq!(got.unwrap(), v["expected"].as_bool(), "{}: {sql}", v["id"]),
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} vectors");
}

#[tokio::test]
async fn columns_floats_and_errors() {
    let ctx = ctx();
    let sql = "SELECT is_successful_call(d, 60, a) FROM (VALUES (61, true), (61, false), (30, NULL), (NULL, false), (61.5, true)) AS t(d, a)";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let col = batches[0].column(0).as_boolean();
    let got: Vec<Option<bool>> = col.iter().collect();
    assert_eq!(got, vec![Some(true), Some(false), Some(false), Some(false), Some(true)]);
    assert_eq!(eval(&ctx, "SELECT is_successful_call(60.5, 60)").await.unwrap(), Some(true));
    let err = eval(&ctx, "SELECT is_successful_call(61, -1)").await.unwrap_err().to_string();
    assert!(err.contains("threshold_seconds must be >= 0"), "{err}");
    let err = eval(&ctx, "SELECT is_successful_call('long')").await.unwrap_err().to_string();
    assert!(err.contains("must be numbers"), "{err}");
}
