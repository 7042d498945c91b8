//! Tasks, notes (of leads, contacts or companies) and events: their lists, each with its own
//! filters and orders.

use axum::http::StatusCode;
use serde_json::json;

use super::super::answer::Answer;
use super::super::filters::{EVENT_ORDER, Filters, NOTE_ORDER, TASK_ORDER, singular, trimmed};
use super::super::query::Query;
use super::super::{ERROR_VALIDATION, MAX_EVENTS_LIMIT, MAX_LIMIT, MockData, PROBLEM_JSON, fixture_json};
use super::paging::{ListSpec, paged};

/// `/api/v4/tasks`.
pub(super) fn tasks(data: &MockData, base: &str, path: &str, q: &Query) -> Answer {
    let mut f = Filters::default();
    f.any_of(q, "id", "id", trimmed)
        .range(q, "updated_at")
        .range(q, "created_at")
        .any_of(q, "entity_type", "entity_type", trimmed)
        .any_of(q, "entity_id", "entity_id", trimmed)
        .any_of(q, "responsible_user_id", "responsible_user_id", trimmed)
        .flag(q, "is_completed");
    paged(base, path, q, data.tasks.iter(), &f, &ListSpec { key: "tasks", max_limit: MAX_LIMIT, order: &TASK_ORDER })
}

/// `/api/v4/leads/notes`, `/api/v4/contacts/notes` or `/api/v4/companies/notes`, as `rest`
/// names it.
pub(super) fn notes(data: &MockData, base: &str, path: &str, rest: &str, q: &Query) -> Answer {
    let entity = rest.split('/').next().unwrap_or_default();
    let mut f = Filters::default();
    f.any_of(q, "id", "id", trimmed).any_of(q, "note_type", "note_type", trimmed).any_of(q, "entity_id", "entity_id", trimmed).range(q, "updated_at");
    let rows = data.notes.iter().filter(|(e, _)| e == entity).map(|(_, n)| n);
    paged(base, path, q, rows, &f, &ListSpec { key: "notes", max_limit: MAX_LIMIT, order: &NOTE_ORDER })
}

/// `/api/v4/events`: newest first unless ordered otherwise.
pub(super) fn events(data: &MockData, base: &str, path: &str, q: &Query) -> Answer {
    // A-EVENTS-1: `filter[entity_id]` takes at most 10 ids and needs exactly one
    // `filter[entity]`.
    let entity_ids = q.list(&["filter", "entity_id"]).len();
    if entity_ids > 0 && (entity_ids > 10 || q.list(&["filter", "entity"]).len() != 1) {
        let mut body = fixture_json(ERROR_VALIDATION);
        body["validation-errors"][0]["errors"] = json!([{"code": "InvalidFilter", "path": "filter.entity_id", "detail": "entity_id needs exactly one filter[entity] and at most 10 ids"}]);
        return Answer::json(StatusCode::BAD_REQUEST, PROBLEM_JSON, &body);
    }
    let mut f = Filters::default();
    f.any_of(q, "id", "id", trimmed)
        .any_of(q, "type", "type", trimmed)
        .any_of(q, "entity", "entity_type", singular)
        .any_of(q, "entity_id", "entity_id", trimmed)
        .any_of(q, "created_by", "created_by", trimmed)
        .range(q, "created_at");
    paged(base, path, q, data.events.iter(), &f, &ListSpec { key: "events", max_limit: MAX_EVENTS_LIMIT, order: &EVENT_ORDER })
}
