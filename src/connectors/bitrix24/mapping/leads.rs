//! Leads: their status through the lead funnel (`crm.status.list`, `ENTITY_ID` STATUS), when
//! they qualified, and the deal they converted into.

use serde_json::Value as Json;

use super::fields::{custom_fields, id, int, money, text, ts};
use super::{Links, Mapping, Raw, append};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

/// The lead statuses (`crm.status.list`, `ENTITY_ID` STATUS): a lead is qualified when it
/// reaches the last process status before success ("Processed" by default), or converts.
pub(super) struct LeadFunnel {
    qualified: Option<String>,
}

impl LeadFunnel {
    pub(super) fn new(statuses: &[Json]) -> LeadFunnel {
        let mut process: Vec<(i64, String)> = statuses
            .iter()
            .filter(|s| text(s, "ENTITY_ID").as_deref() == Some("STATUS"))
            .filter(|s| !matches!(text(s, "SEMANTICS").as_deref(), Some("S" | "F")) && s.pointer("/EXTRA/SEMANTICS").and_then(Json::as_str).is_none_or(|x| x == "process"))
            .filter_map(|s| Some((int(s, "SORT").unwrap_or(0), text(s, "STATUS_ID")?)))
            .collect();
        process.sort();
        // The first process status is where leads come in: it never qualifies.
        let qualified = if process.len() >= 2 { process.last().map(|(_, id)| id.clone()) } else { None };
        LeadFunnel { qualified }
    }

    /// A history row (or a lead) at a qualifying status: success, or the last process one.
    pub(super) fn qualifies(&self, record: &Json) -> bool {
        text(record, "STATUS_SEMANTIC_ID").as_deref() == Some("S") || (self.qualified.is_some() && text(record, "STATUS_ID") == self.qualified)
    }

    fn status(&self, l: &Json) -> &'static str {
        match (text(l, "STATUS_SEMANTIC_ID").as_deref(), text(l, "STATUS_ID").as_deref()) {
            (Some("S"), _) | (_, Some("CONVERTED")) => "converted",
            (Some("F"), _) | (_, Some("JUNK")) => "junk",
            (_, Some("NEW") | None) => "new",
            (_, status) if status.is_some() && status == self.qualified.as_deref() => "qualified",
            _ => "in_progress",
        }
    }
}

pub(super) fn leads(raw: &Raw, links: &Links, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Leads);
    let funnel = LeadFunnel::new(&raw.statuses);
    for l in &raw.leads {
        let lead = id(l, "ID");
        let status = funnel.status(l);
        let closed = if matches!(status, "converted" | "junk") { ts(l, "DATE_CLOSED", m) } else { Cell::Null };
        let converted = lead.as_ref().and_then(|i| links.lead_deal.get(i));
        let qualified_at = lead.as_ref().and_then(|i| links.lead_qualified.get(i)).map_or(Cell::Null, |at| Cell::T(*at));
        let amount = money(l, "OPPORTUNITY");
        let custom = custom_fields(l);
        let row = [
            lead.into(),
            text(l, "TITLE").into(),
            Cell::text(status),
            text(l, "STATUS_ID").into(),
            id(l, "SOURCE_ID").into(),
            id(l, "ASSIGNED_BY_ID").into(),
            id(l, "CONTACT_ID").into(),
            id(l, "COMPANY_ID").into(),
            amount.map_or(Cell::Null, Cell::D),
            text(l, "CURRENCY_ID").into(),
            ts(l, "DATE_CREATE", m),
            ts(l, "DATE_MODIFY", m),
            // The portal keeps no qualification time on the lead: its status history does.
            qualified_at,
            closed,
            converted.into(),
            custom.into(),
        ];
        append(&mut b, l, "ID", &row)?;
    }
    Ok(b)
}
