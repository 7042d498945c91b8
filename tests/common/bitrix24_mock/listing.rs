//! List methods: filter, order, one page of 50 (`start`/`next`/`total`, or `start=-1` with
//! no count), then `select`; and how a parameter or a record's field is found by name.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::PAGE;
use super::filter::{Condition, Op, parse_filter};
use super::methods::Outcome;
use super::reply::ErrorReply;
use super::values::{SortKey, as_f64};

/// A list method: filter, order, one page of 50, select.
pub(super) fn list(rows: &[Value], params: &Value, id_field: &str, default_sort: &str, root: Option<&str>, multi_fields: bool) -> Result<Outcome, ErrorReply> {
    let conditions = match param(params, "filter") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(Value::Object(f)) => parse_filter(f),
        Some(_) => return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "", "Parameter 'filter' must be array.")),
    };
    let (sort_field, descending) = ordering(params, default_sort);
    let start = param(params, "start").and_then(as_f64).map_or(0, |s| s as i64);
    if let Some(outcome) = keyset_page(rows, &conditions, &sort_field, descending, start, id_field, root, multi_fields, params) {
        return Ok(outcome);
    }
    let mut keyed: Vec<(SortKey, SortKey, &Value)> = rows
        .iter()
        .filter(|r| conditions.iter().all(|c| c.matches(r)))
        .map(|r| (SortKey::of(field(r, &sort_field)), SortKey::of(field(r, id_field)), r))
        .collect();
    keyed.sort_by(|a, b| {
        let primary = a.0.cmp(&b.0);
        let primary = if descending { primary.reverse() } else { primary };
        primary.then_with(|| a.1.cmp(&b.1))
    });
    let count = keyed.len();
    let (from, total, next) = if start < 0 {
        (0, 0, None)
    } else {
        let s = start as usize;
        (s, count, (s + PAGE < count).then_some(s + PAGE))
    };
    let select: Vec<&str> = match param(params, "select") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let page: Vec<Value> = keyed.iter().skip(from).take(PAGE).map(|(_, _, r)| project(r, &select, id_field, multi_fields)).collect();
    let n = page.len();
    let result = match root {
        None => Value::Array(page),
        Some(key) => json!({ key: page }),
    };
    Ok(Outcome { result, total: Some(total), next, rows: n })
}

fn numeric_id(row: &Value, id_field: &str) -> Option<u64> {
    match field(row, id_field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The keyset fast path (`start=-1`, ordered by id ascending, `>ID` in the filter) over rows
/// kept in id order: a binary search instead of filtering and sorting everything, so the
/// mock keeps up with a sync of a large portal. `None` when it does not apply.
#[allow(clippy::too_many_arguments)]
fn keyset_page(
    rows: &[Value],
    conditions: &[Condition],
    sort_field: &str,
    descending: bool,
    start: i64,
    id_field: &str,
    root: Option<&str>,
    multi_fields: bool,
    params: &Value,
) -> Option<Outcome> {
    if start >= 0 || descending || !sort_field.eq_ignore_ascii_case(id_field) {
        return None;
    }
    let after = conditions.iter().find(|c| c.field.eq_ignore_ascii_case(id_field) && matches!(c.op, Op::Gt))?;
    let after: u64 = match &after.value {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    // The generated data is in id order and tests append higher ids (checked at the ends,
    // which is what a binary search relies on here).
    let (first, last) = (numeric_id(rows.first()?, id_field)?, numeric_id(rows.last()?, id_field)?);
    if first > last {
        return None;
    }
    let from = rows.partition_point(|r| numeric_id(r, id_field).is_some_and(|id| id <= after));
    let select: Vec<&str> = match param(params, "select") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let page: Vec<Value> = rows[from..].iter().filter(|r| conditions.iter().all(|c| c.matches(r))).take(PAGE).map(|r| project(r, &select, id_field, multi_fields)).collect();
    let n = page.len();
    let result = match root {
        None => Value::Array(page),
        Some(key) => json!({ key: page }),
    };
    Some(Outcome { result, total: Some(0), next: None, rows: n })
}

/// `select` is ignored (all fields come back) except: `["ID"]` alone gives only the id, and
/// contacts/companies carry the PHONE/EMAIL/WEB/IM multi-fields only when selected.
fn project(row: &Value, select: &[&str], id_field: &str, multi_fields: bool) -> Value {
    if let [only] = select
        && only.eq_ignore_ascii_case(id_field)
    {
        return json!({ id_field: field(row, id_field).cloned().unwrap_or(Value::Null) });
    }
    let mut row = row.clone();
    if multi_fields && let Value::Object(m) = &mut row {
        for f in ["PHONE", "EMAIL", "WEB", "IM"] {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
                m.remove(f);
            }
        }
    }
    row
}

/// `order: {"ID": "ASC"}`, or `SORT` + `ORDER` strings; default ascending by `default_field`.
fn ordering(params: &Value, default_field: &str) -> (String, bool) {
    let desc = |d: &Value| d.as_str().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    match param(params, "order") {
        Some(Value::Object(m)) if !m.is_empty() => {
            let (k, d) = m.iter().next().unwrap();
            (k.clone(), desc(d))
        }
        other => match param(params, "sort").and_then(Value::as_str) {
            Some(field) => (field.to_string(), other.is_some_and(desc)),
            // B-LIST-6: a method's own default order (`-FIELD`: descending).
            None => match default_field.strip_prefix('-') {
                Some(field) => (field.to_string(), other.is_none_or(|o| !o.as_str().is_some_and(|d| d.eq_ignore_ascii_case("asc")))),
                None => (default_field.to_string(), other.is_some_and(desc)),
            },
        },
    }
}

/// A top-level parameter, its name matched case-insensitively (`filter`/`FILTER`).
pub(super) fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    let m = params.as_object()?;
    m.get(name).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A record's field, its name matched case-insensitively and ignoring underscores, so that
/// `CHANGED_DATE` finds the task's `changedDate`.
pub(super) fn field<'a>(row: &'a Value, name: &str) -> Option<&'a Value> {
    let m = row.as_object()?;
    if let Some(v) = m.get(name) {
        return Some(v);
    }
    if let Some((_, v)) = m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        return Some(v);
    }
    let norm = |s: &str| s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect::<String>();
    let wanted = norm(name);
    m.iter().find(|(k, _)| norm(k) == wanted).map(|(_, v)| v)
}
