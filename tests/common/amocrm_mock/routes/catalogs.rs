//! Catalogs and their elements.

use axum::http::StatusCode;
use serde_json::Value;

use super::super::answer::Answer;
use super::super::filters::{BY_ID, Filters, trimmed};
use super::super::query::Query;
use super::super::{MAX_LIMIT, MockData};
use super::paging::{ListSpec, paged};

/// `/api/v4/catalogs`.
pub(super) fn catalogs(data: &MockData, base: &str, path: &str, q: &Query) -> Answer {
    let spec = ListSpec { key: "catalogs", max_limit: MAX_LIMIT, order: &BY_ID };
    paged(base, path, q, data.catalogs.iter(), &Filters::default(), &spec)
}

/// `/api/v4/catalogs/{id}/elements`, the catalog as `rest` names it.
pub(super) fn elements(data: &MockData, base: &str, path: &str, rest: &str, q: &Query) -> Answer {
    let catalog = rest.trim_start_matches("catalogs/").trim_end_matches("/elements");
    let rows = data.catalog_elements.iter().filter(|e| e["catalog_id"].as_i64().map(|c| c.to_string()).as_deref() == Some(catalog));
    let mut f = Filters::default();
    f.any_of(q, "id", "id", trimmed);
    // A-PAGE-7: element pages come without a `next` link, even when full.
    let mut answer = paged(base, path, q, rows, &f, &ListSpec { key: "elements", max_limit: MAX_LIMIT, order: &BY_ID });
    if answer.status == StatusCode::OK {
        let mut v: Value = serde_json::from_slice(&answer.body).unwrap();
        if let Some(links) = v["_links"].as_object_mut() {
            links.remove("next");
        }
        answer = Answer::hal(&v);
    }
    answer
}
