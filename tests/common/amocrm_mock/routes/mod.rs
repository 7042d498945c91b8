//! The `/api/v4` endpoints: [`route`] picks one by path; each list filters, sorts and pages
//! its records as the vendor's lists do.

use axum::http::StatusCode;

use super::answer::Answer;
use super::query::Query;
use super::{MockConfig, MockData};

mod account;
mod activity;
mod catalogs;
mod paging;
mod records;

/// The answer to `GET {path}?{q}` under `/api/v4/`.
pub(super) fn route(data: &MockData, config: &MockConfig, base: &str, path: &str, q: &Query) -> Answer {
    let rest = path.strip_prefix("/api/v4/").unwrap_or("").trim_end_matches('/');
    match rest {
        "account" => account::account(data, config, base),
        "users" => account::users(data, base, path, q),
        "leads/pipelines" => account::dictionary(base, path, "pipelines", &data.pipelines),
        "leads/loss_reasons" => account::dictionary(base, path, "loss_reasons", &data.loss_reasons),
        "leads" | "contacts" | "companies" => records::list(data, config, base, path, rest, q),
        "tasks" => activity::tasks(data, base, path, q),
        "leads/notes" | "contacts/notes" | "companies/notes" => activity::notes(data, base, path, rest, q),
        "events" => activity::events(data, base, path, q),
        "catalogs" => catalogs::catalogs(data, base, path, q),
        _ if rest.starts_with("catalogs/") && rest.ends_with("/elements") => catalogs::elements(data, base, path, rest, q),
        _ => match rest.split_once('/') {
            // One record by id (`GET /api/v4/{entity}/{id}`).
            Some((entity @ ("leads" | "contacts" | "companies"), id)) if id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty() => records::one(data, entity, id, q),
            _ => Answer::problem(StatusCode::NOT_FOUND, "Not Found"),
        },
    }
}
