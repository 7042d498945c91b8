//! The account (`/api/v4/account`) and its dictionaries: users, pipelines, loss reasons.

use serde_json::{Value, json};

use super::super::answer::Answer;
use super::super::query::Query;
use super::super::{MAX_LIMIT, MockConfig, MockData};
use super::paging::{href, page_links, parse_limit, parse_page};

/// `/api/v4/account`: the configured `is_api_filter_enabled`, `_links` at the mock.
pub(super) fn account(data: &MockData, config: &MockConfig, base: &str) -> Answer {
    let mut account = data.account.clone();
    account["is_api_filter_enabled"] = json!(config.api_filter_enabled);
    account["_links"] = json!({"self": {"href": format!("{base}/api/v4/account")}});
    Answer::hal(&account)
}

/// `/api/v4/users`: paged, with `_total_items` and `_page_count`; `next` only when a page follows.
pub(super) fn users(data: &MockData, base: &str, path: &str, q: &Query) -> Answer {
    let limit = match parse_limit(q, MAX_LIMIT) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let page = parse_page(q);
    let total = data.users.len();
    let page_count = total.div_ceil(limit);
    let rows: Vec<Value> = data.users.iter().skip((page - 1).saturating_mul(limit)).take(limit).cloned().collect();
    if rows.is_empty() {
        return Answer::no_content();
    }
    let mut links = page_links(base, path, q, page);
    if page < page_count {
        links.insert("next".into(), href(base, path, q, page + 1));
    }
    Answer::hal(&json!({"_total_items": total, "_page": page, "_page_count": page_count, "_links": links, "_embedded": {"users": rows}}))
}

/// Pipelines and loss reasons: everything at once, with `_total_items`, no `_page`.
pub(super) fn dictionary(base: &str, path: &str, key: &str, rows: &[Value]) -> Answer {
    Answer::hal(&json!({
        "_total_items": rows.len(),
        "_links": {"self": {"href": format!("{base}{}", path.trim_end_matches('/'))}},
        "_embedded": {key: rows},
    }))
}
