//! Tasks, on the deal (and so the request) they are set on.

use std::collections::HashSet;

use serde_json::Value as Json;

use super::fields::{flag, id, text, ts};
use super::{Raw, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn tasks(raw: &Raw, requests: &HashSet<String>) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Tasks);
    for t in &raw.tasks {
        let done = flag(t, "is_completed") == Some(true);
        let deal = id(t, "entity_id").filter(|_| t.get("entity_type").and_then(Json::as_str) == Some("leads"));
        let lead = deal.clone().filter(|d| requests.contains(d));
        let row = [
            id(t, "id").into(),
            text(t, "text").into(),
            id(t, "responsible_user_id").into(),
            id(t, "created_by").into(),
            deal.into(),
            lead.into(),
            ts(t, "created_at"),
            ts(t, "complete_till"),
            Cell::Null,
            if done { ts(t, "updated_at") } else { Cell::Null },
            Cell::text(if done { "completed" } else { "new" }),
        ];
        append(&mut b, t, &row)?;
    }
    Ok(b)
}
