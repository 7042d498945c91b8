//! Paged lists: `limit` and `page`, the `_links` of a page, the 204 past the end, and the
//! vendor's phantom `next` on an exactly full last page.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::answer::Answer;
use super::super::filters::{EVENT_ORDER, Filters, OrderSpec, sort_rows};
use super::super::query::Query;
use super::super::{DEFAULT_LIMIT, ERROR_LIMIT, ERROR_VALIDATION, MAX_LIMIT, PROBLEM_JSON, fixture_json};

/// A paged list: its `_embedded` key, its largest `limit`, its orders.
#[derive(Debug)]
pub(super) struct ListSpec {
    pub(super) key: &'static str,
    pub(super) max_limit: usize,
    pub(super) order: &'static OrderSpec,
}

/// `limit` (default 50; 0 or not a number: the default) or the 422 when above `max`.
pub(super) fn parse_limit(q: &Query, max: usize) -> Result<usize, Answer> {
    let limit = q.get(&["limit"]).and_then(|l| l.trim().parse::<usize>().ok()).filter(|&l| l > 0).unwrap_or(DEFAULT_LIMIT);
    if limit <= max {
        return Ok(limit);
    }
    if max == MAX_LIMIT {
        return Err(Answer::new(StatusCode::UNPROCESSABLE_ENTITY, PROBLEM_JSON, ERROR_LIMIT));
    }
    let mut body = fixture_json(ERROR_LIMIT);
    body["detail"] = json!(format!("Limit {max} per page"));
    Err(Answer::json(StatusCode::UNPROCESSABLE_ENTITY, PROBLEM_JSON, &body))
}

/// `page` (1-based; default 1).
pub(super) fn parse_page(q: &Query) -> usize {
    q.get(&["page"]).and_then(|p| p.trim().parse::<usize>().ok()).filter(|&p| p >= 1).unwrap_or(1)
}

pub(super) fn href(base: &str, path: &str, q: &Query, page: usize) -> Value {
    json!({"href": format!("{base}{path}?{}", q.with_page(page))})
}

/// `self`, and from page 2 on `first` and `prev`, as the vendor's page 2 has them.
pub(super) fn page_links(base: &str, path: &str, q: &Query, page: usize) -> Map<String, Value> {
    let mut links = Map::new();
    links.insert("self".into(), href(base, path, q, page));
    if page > 1 {
        links.insert("first".into(), href(base, path, q, 1));
        links.insert("prev".into(), href(base, path, q, page - 1));
    }
    links
}

/// Filters, sorts and pages `rows`. An empty page is the 204; a full page has `next` even
/// when nothing follows (the vendor's phantom next, amocrm-api-php#193).
pub(super) fn paged<'a>(base: &str, path: &str, q: &Query, rows: impl Iterator<Item = &'a Value>, filters: &Filters, spec: &ListSpec) -> Answer {
    let limit = match parse_limit(q, spec.max_limit) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let page = parse_page(q);
    if let Some((field, _)) = q.order()
        && spec.order.fields != EVENT_ORDER.fields
        && !spec.order.fields.contains(&field)
    {
        let mut body = fixture_json(ERROR_VALIDATION);
        body["validation-errors"][0]["errors"] = json!([{"code": "NotSupportedChoice", "path": format!("order.{field}"), "detail": "The value you selected is not a valid choice."}]);
        return Answer::json(StatusCode::BAD_REQUEST, PROBLEM_JSON, &body);
    }
    let mut hits: Vec<&Value> = rows.filter(|r| filters.matches(r)).collect();
    sort_rows(&mut hits, q, spec.order);
    let rows: Vec<Value> = hits.iter().skip((page - 1).saturating_mul(limit)).take(limit).map(|r| (*r).clone()).collect();
    if rows.is_empty() {
        return Answer::no_content();
    }
    let mut links = page_links(base, path, q, page);
    if rows.len() == limit {
        links.insert("next".into(), href(base, path, q, page + 1));
    }
    Answer::hal(&json!({"_page": page, "_links": links, "_embedded": {spec.key: rows}}))
}
