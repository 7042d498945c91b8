//! Calls (`voximplant.statistic.get`, linked to their deal through the CRM activity) and
//! activities (`crm.activity.list`).

use serde_json::Value as Json;

use super::fields::{flag, id, int, text, time, ts};
use super::{Links, Mapping, Raw, append, phone_hash};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

/// docs/udfs.md §2.6: `200` is answered; the other codes map to why the call did not connect.
fn call_status(code: &str) -> &'static str {
    match code {
        "200" => "answered",
        "304" => "missed",
        "486" => "busy",
        "603" | "603-S" | "480" | "503" | "484" => "no_answer",
        _ => "failed",
    }
}

pub(super) fn calls(raw: &Raw, links: &Links, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Calls);
    for c in &raw.calls {
        let call = id(c, "CALL_ID").or_else(|| id(c, "ID"));
        // 1 outgoing, 2 incoming, 3 incoming redirected, 4 callback, 5 information call.
        let direction = match int(c, "CALL_TYPE") {
            Some(2 | 3) => "inbound",
            _ => "outbound",
        };
        let code = text(c, "CALL_FAILED_CODE").unwrap_or_default();
        let phone = text(c, "PHONE_NUMBER").map(|p| phone_hash(&p, &m.phone_key));
        let deal = id(c, "CRM_ACTIVITY_ID").and_then(|a| links.activity_owner.get(&a)).filter(|(kind, _)| *kind == 2).map(|(_, owner)| owner.clone());
        let (entity, entity_id) = (text(c, "CRM_ENTITY_TYPE").unwrap_or_default(), id(c, "CRM_ENTITY_ID"));
        let pick = |kind: &str| if entity == kind { entity_id.clone() } else { None };
        let (lead, contact, company) = (pick("LEAD"), pick("CONTACT"), pick("COMPANY"));
        let row = [
            call.into(),
            id(c, "PORTAL_USER_ID").into(),
            Cell::text(direction),
            Cell::text(call_status(&code)),
            Some(code.clone()).filter(|c| !c.is_empty()).into(),
            ts(c, "CALL_START_DATE", m),
            Cell::I(int(c, "CALL_DURATION").unwrap_or(0).max(0)),
            phone.into(),
            deal.into(),
            lead.into(),
            contact.into(),
            company.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}

fn activity_kind(a: &Json) -> &'static str {
    let provider = text(a, "PROVIDER_ID").unwrap_or_default();
    match int(a, "TYPE_ID") {
        Some(1) => "meeting",
        Some(2) => "call",
        Some(3) => "task",
        Some(4) => "email",
        _ => match provider.as_str() {
            "VOXIMPLANT_CALL" | "CALL_LIST" => "call",
            "CRM_TODO" | "TASKS" | "TASKS_TASK" => "task",
            "IMOPENLINES_SESSION" | "CRM_SMS" | "CRM_NOTIFICATION" | "WHATSAPP" => "message",
            "CRM_MEETING" | "ZOOM" => "meeting",
            "CRM_EMAIL" => "email",
            _ => "other",
        },
    }
}

pub(super) fn activities(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Activities);
    for a in &raw.activities {
        let owner = id(a, "OWNER_ID");
        let of = |kind: i64| if int(a, "OWNER_TYPE_ID") == Some(kind) { owner.clone() } else { None };
        let completed = flag(a, "COMPLETED").unwrap_or(false);
        let direction = match int(a, "DIRECTION") {
            Some(1) => Some("inbound"),
            Some(2) => Some("outbound"),
            _ => None,
        };
        let completed_at = if completed { time(a, "END_TIME", m).or_else(|| time(a, "LAST_UPDATED", m)) } else { None };
        let row = [
            id(a, "ID").into(),
            Cell::text(activity_kind(a)),
            direction.map_or(Cell::Null, Cell::text),
            id(a, "RESPONSIBLE_ID").into(),
            of(2).into(),
            of(1).into(),
            of(3).into(),
            of(4).into(),
            ts(a, "CREATED", m),
            ts(a, "DEADLINE", m),
            completed_at.map_or(Cell::Null, Cell::T),
            Cell::B(completed),
        ];
        append(&mut b, a, "ID", &row)?;
    }
    Ok(b)
}
