//! Leads (and their trash), contacts and companies: their lists, one record by id, and a
//! lead's `_embedded` trimmed to what `with` asks.

use serde_json::Value;

use super::super::answer::Answer;
use super::super::filters::{BY_ID, Filters, PARTY_ORDER, trimmed};
use super::super::query::Query;
use super::super::{MAX_LIMIT, MockConfig, MockData};
use super::paging::{ListSpec, paged};

/// `/api/v4/leads` (with `with=only_deleted`: the trash), `/api/v4/contacts` or
/// `/api/v4/companies`, as `rest` names it.
pub(super) fn list(data: &MockData, config: &MockConfig, base: &str, path: &str, rest: &str, q: &Query) -> Answer {
    let trash = rest == "leads" && q.with().contains(&"only_deleted");
    let rows = match rest {
        "leads" if trash => &data.trash,
        "leads" => &data.leads,
        "contacts" => &data.contacts,
        _ => &data.companies,
    };
    let mut f = Filters::default();
    f.any_of(q, "id", "id", trimmed);
    // The paid "alpha" filtering: without it the account ignores these silently.
    if config.api_filter_enabled {
        f.range(q, "updated_at").range(q, "created_at");
    }
    let key = match rest {
        "contacts" => "contacts",
        "companies" => "companies",
        _ => "leads",
    };
    let spec = ListSpec { key, max_limit: MAX_LIMIT, order: if rest == "leads" { &BY_ID } else { &PARTY_ORDER } };
    if rest == "leads" && !trash {
        let with = q.with();
        let projected: Vec<Value> = rows.iter().map(|l| lead_with(l, &with)).collect();
        return paged(base, path, q, projected.iter(), &f, &spec);
    }
    paged(base, path, q, rows.iter(), &f, &spec)
}

/// `GET /api/v4/{entity}/{id}`: one lead, contact or company.
pub(super) fn one(data: &MockData, entity: &str, id: &str, q: &Query) -> Answer {
    let rows = match entity {
        "leads" => &data.leads,
        "contacts" => &data.contacts,
        _ => &data.companies,
    };
    // A-LEADS-9, A-CONT-4: no such record (deleted ones included) is a 204.
    match rows.iter().find(|r| r["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id)) {
        Some(record) if entity == "leads" => Answer::hal(&lead_with(record, &q.with())),
        Some(record) => Answer::hal(record),
        None => Answer::no_content(),
    }
}

/// A lead as a list or `GET /leads/{id}` gives it for `with`: `_embedded.source`,
/// `_embedded.catalog_elements`, `_embedded.contacts` and the loss reason only when asked
/// (A-LEADS-2, -5). `source_id` stays: the fixture pages carry it without `with=source_id`.
fn lead_with(lead: &Value, with: &[&str]) -> Value {
    let mut lead = lead.clone();
    if let Some(Value::Object(e)) = lead.get_mut("_embedded") {
        for key in ["source", "catalog_elements", "contacts", "loss_reason"] {
            if !with.contains(&key) {
                e.remove(key);
            }
        }
    }
    lead
}
