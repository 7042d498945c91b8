//! The methods served: each one's scope, the envelope of a single call (`result`, `next`,
//! `total`, `time`, billed to the method's operating budget), and per method its result
//! with the vendor's own rules (default orders, required filters, supported entity types).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::listing::{list, param};
use super::reply::ErrorReply;
use super::server::Auth;
use super::timing::{time_object, unix_now};
use super::values::as_f64;
use super::{ERROR_INSUFFICIENT_SCOPE, ERROR_METHOD_NOT_FOUND, ERROR_NO_AUTH_FOUND, ERROR_OPERATION_TIME_LIMIT, MockConfig, MockData, MockState};

/// Every method served, with the scope it needs.
const METHODS: &[(&str, Option<&str>)] = &[
    ("scope", None),
    ("user.get", Some("user")),
    ("department.get", Some("department")),
    ("crm.category.list", Some("crm")),
    ("crm.status.list", Some("crm")),
    ("crm.currency.list", Some("crm")),
    ("crm.deal.list", Some("crm")),
    ("crm.lead.list", Some("crm")),
    ("crm.contact.list", Some("crm")),
    ("crm.company.list", Some("crm")),
    ("crm.activity.list", Some("crm")),
    ("crm.stagehistory.list", Some("crm")),
    ("crm.item.productrow.list", Some("crm")),
    ("voximplant.statistic.get", Some("telephony")),
    ("tasks.task.list", Some("task")),
];

/// A method's answer before the envelope: its result, paging and rows billed.
pub(super) struct Outcome {
    pub(super) result: Value,
    pub(super) total: Option<usize>,
    pub(super) next: Option<usize>,
    pub(super) rows: usize,
}

pub(super) fn check_method(config: &MockConfig, method: &str) -> Result<(), ErrorReply> {
    match METHODS.iter().find(|(m, _)| *m == method) {
        None => Err(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
        Some((_, Some(scope))) if !config.scopes.iter().any(|s| s == scope) => {
            Err(ErrorReply::fixture(StatusCode::FORBIDDEN, ERROR_INSUFFICIENT_SCOPE))
        }
        Some(_) => Ok(()),
    }
}

impl MockState {
    /// A request past the bucket and the faults.
    pub(super) fn serve(&self, auth: &Auth, method: &str, params: &Value, order: Option<Vec<String>>, started: f64) -> Result<Value, ErrorReply> {
        let config = self.config.lock().unwrap().clone();
        match auth {
            Auth::Webhook(code) if *code != config.webhook_code => {
                return Err(ErrorReply::fixture(StatusCode::UNAUTHORIZED, ERROR_NO_AUTH_FOUND));
            }
            Auth::Webhook(_) => {}
            Auth::OAuth(token) => self.check_access_token(token.as_deref())?,
        }
        if method == "batch" {
            return self.batch(&config, params, order, started);
        }
        check_method(&config, method)?;
        self.check_operating(method, &config)?;
        let outcome = {
            let data = self.data.lock().unwrap();
            execute(&data, &config, method, params)?
        };
        let (reset_at, used) = self.bill(method, outcome.rows, &config);
        let mut env = Map::new();
        env.insert("result".into(), outcome.result);
        if let Some(next) = outcome.next {
            env.insert("next".into(), json!(next));
        }
        if let Some(total) = outcome.total {
            env.insert("total".into(), json!(total));
        }
        env.insert("time".into(), time_object(started, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))));
        Ok(Value::Object(env))
    }

    pub(super) fn check_operating(&self, method: &str, config: &MockConfig) -> Result<(), ErrorReply> {
        if self.operating_used(method) >= config.operating_limit_seconds {
            self.rejected_operating.fetch_add(1, Ordering::Relaxed);
            return Err(ErrorReply::fixture(StatusCode::TOO_MANY_REQUESTS, ERROR_OPERATION_TIME_LIMIT));
        }
        Ok(())
    }
}

/// One method's result over `data`; the method is known and its scope granted.
pub(super) fn execute(data: &MockData, config: &MockConfig, method: &str, params: &Value) -> Result<Outcome, ErrorReply> {
    let by_id = |rows: &[Value], root: Option<&str>| list(rows, params, "ID", "ID", root, false);
    match method {
        "scope" => Ok(Outcome { result: json!(config.scopes), total: None, next: None, rows: config.scopes.len() }),
        "user.get" => by_id(&data.users, None),
        "department.get" => by_id(&data.departments, None),
        "crm.category.list" => {
            let rows: &[Value] = if entity_type_id(params) == Some(2) { &data.categories } else { &[] };
            list(rows, params, "id", "id", Some("categories"), false)
        }
        "crm.status.list" => by_id(&data.statuses, None),
        // B-CUR-1, B-CUR-2: no filter and no paging; every currency at once, `total` 0.
        "crm.currency.list" => {
            let mut all = list(&data.currencies, &json!({"order": param(params, "order").cloned().unwrap_or(json!({"SORT": "ASC"}))}), "CURRENCY", "SORT", None, false)?;
            all.total = Some(0);
            all.next = None;
            Ok(all)
        }
        "crm.deal.list" => by_id(&data.deals, None),
        "crm.lead.list" => by_id(&data.leads, None),
        "crm.contact.list" => list(&data.contacts, params, "ID", "ID", None, true),
        "crm.company.list" => list(&data.companies, params, "ID", "ID", None, true),
        // B-ACT-2: activities come by START_TIME unless an order is given.
        "crm.activity.list" => list(&data.activities, params, "ID", "START_TIME", None, false),
        "crm.stagehistory.list" => {
            // B-HIST-2: an order direction other than ASC or DESC is refused.
            if let Some(Value::Object(order)) = param(params, "order")
                && let Some((field, direction)) = order.iter().find(|(_, d)| !matches!(d.as_str(), Some("ASC" | "DESC")))
            {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_ARG_VALUE", &format!("Invalid order: allowed sort directions are ASC, DESC. But got '{}' for field '{field}'", direction.as_str().unwrap_or(""))));
            }
            // B-HIST-1: leads, deals, invoices and smart processes (dynamic ids from 128).
            let rows: &[Value] = match entity_type_id(params) {
                Some(2) => &data.deal_stage_history,
                Some(1) => &data.lead_stage_history,
                Some(5 | 31) => &[],
                Some(t) if t >= 128 => &[],
                _ => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type is not supported")),
            };
            by_id(rows, Some("items"))
        }
        "crm.item.productrow.list" => {
            // B-PR-1: the filter must name both keys, with exactly the `=` prefix (an array
            // is allowed); `@ownerId` or `ownerType` alone do not count.
            let filter = param(params, "filter").and_then(Value::as_object);
            let has = |key: &str| filter.is_some_and(|f| f.get(key).is_some_and(|v| !v.is_null() && v.as_str() != Some("")));
            if !has("=ownerType") || !has("=ownerId") {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "REQUIRED_ARG_MISSING", "Required fields: =ownerType, =ownerId"));
            }
            // Only the owners' rows are matched (the portal indexes them; a scan of every
            // row per command would make the mock, not the client, set the pace).
            let owners: HashSet<u64> = match filter.and_then(|f| f.get("=ownerId")) {
                Some(Value::Array(ids)) => ids.iter().filter_map(|v| as_f64(v).map(|f| f as u64)).collect(),
                Some(v) => as_f64(v).map(|f| f as u64).into_iter().collect(),
                None => HashSet::new(),
            };
            let rows: Vec<Value> = data.product_rows.iter().filter(|r| r["ownerId"].as_u64().is_some_and(|o| owners.contains(&o))).cloned().collect();
            list(&rows, params, "id", "id", Some("productRows"), false)
        }
        "voximplant.statistic.get" => by_id(&data.calls, None),
        "tasks.task.list" => {
            // B-TASK-1: ID descending by default; a key that cannot be sorted is refused.
            if let Some(Value::Object(order)) = param(params, "order")
                && let Some(key) = order.keys().find(|k| !TASK_SORT_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)))
            {
                return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "0", &format!("Invalid sorting key (internal error): {key}")));
            }
            list(&data.tasks, params, "id", "-id", Some("tasks"), false)
        }
        _ => Err(ErrorReply::fixture(StatusCode::NOT_FOUND, ERROR_METHOD_NOT_FOUND)),
    }
}

/// The sort keys `tasks.task.list` takes (B-TASK-1).
const TASK_SORT_KEYS: [&str; 13] = ["ID", "TITLE", "CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE", "DEADLINE", "DATE_START", "STATUS", "REAL_STATUS", "RESPONSIBLE_ID", "CREATED_BY", "PRIORITY", "SORTING"];

fn entity_type_id(params: &Value) -> Option<i64> {
    param(params, "entityTypeId").and_then(as_f64).map(|f| f as i64)
}
