//! Tasks (`tasks.task.list`), bound to deals and leads through `ufCrmTask`.

use serde_json::Value as Json;

use super::fields::{id, int, text, time, ts};
use super::{Mapping, Raw, append};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn tasks(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Tasks);
    for t in &raw.tasks {
        let bindings: Vec<String> = match t.get("ufCrmTask") {
            Some(Json::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let bound = |prefix: &str| bindings.iter().find_map(|b| b.strip_prefix(prefix).map(str::to_string));
        let closed = time(t, "closedDate", m);
        // 1 new, 2 pending, 3 in progress, 4 awaiting control, 5 completed, 6 deferred,
        // 7 declined.
        let status = match int(t, "status") {
            Some(1 | 2) => "new",
            Some(3) => "in_progress",
            Some(4) if closed.is_some() => "completed",
            Some(4) => "in_progress",
            Some(5) => "completed",
            Some(6) => "deferred",
            Some(7) => "cancelled",
            _ => "new",
        };
        let row = [
            id(t, "id").into(),
            text(t, "title").into(),
            id(t, "responsibleId").into(),
            id(t, "createdBy").into(),
            bound("D_").into(),
            bound("L_").into(),
            ts(t, "createdDate", m),
            ts(t, "deadline", m),
            ts(t, "dateStart", m),
            if status == "completed" { closed.map_or(Cell::Null, Cell::T) } else { Cell::Null },
            Cell::text(status),
        ];
        append(&mut b, t, "id", &row)?;
    }
    Ok(b)
}
