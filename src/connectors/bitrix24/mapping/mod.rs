//! Bitrix24 records (JSON, as the portal sends them) into the canonical tables of docs/schema.md.
//! docs/connectors/bitrix24.md is the same mapping in prose; change both together.
//!
//! The portal sends nearly every scalar as a string (`"ID": "37"`, `"OPPORTUNITY":
//! "19999.99"`), `"0"` or `""` for an empty reference, and times with the portal's offset
//! (some in its display format); everything is normalised here: ids as text, money as
//! decimals, instants in UTC.
//!
//! One file per family of tables, in the order `map` writes them: `people.rs` (managers,
//! departments, companies, contacts), `pipelines.rs` (pipelines, stages, sources, loss
//! reasons), `leads.rs`, `deals.rs` (deals, stage history, product rows), `calls.rs` (calls,
//! activities), `tasks.rs`; `fields.rs` reads the portal's values.

mod calls;
mod deals;
mod fields;
mod leads;
mod people;
mod pipelines;
mod tasks;

use std::collections::HashMap;

use chrono_tz::Tz;
use serde_json::Value as Json;

use super::Bitrix24Error;
use crate::connectors::sync::Cell;
pub(super) use crate::connectors::sync::phone_hash;
use crate::model::{TableBuilder, Value};
use calls::{activities, calls};
use deals::{Rates, deal_history, deal_items, deals};
use fields::int;
pub(super) use fields::{id, time};
use leads::{LeadFunnel, leads};
use people::{companies, contacts, departments, managers};
use pipelines::{StageInfo, loss_reasons, pipelines, sources, stage_rows};
use tasks::tasks;

/// What the portal returned, entity by entity, before mapping.
#[derive(Debug, Default, Clone)]
pub(super) struct Raw {
    pub users: Vec<Json>,
    pub departments: Vec<Json>,
    pub categories: Vec<Json>,
    pub statuses: Vec<Json>,
    pub currencies: Vec<Json>,
    pub deals: Vec<Json>,
    pub leads: Vec<Json>,
    pub contacts: Vec<Json>,
    pub companies: Vec<Json>,
    pub activities: Vec<Json>,
    pub deal_history: Vec<Json>,
    /// `crm.stagehistory.list` items of leads (`entityTypeId` 1).
    pub lead_history: Vec<Json>,
    pub calls: Vec<Json>,
    pub tasks: Vec<Json>,
    pub product_rows: Vec<Json>,
}

/// Links between entities that a record does not carry itself; in an incremental pull they
/// come from the previous snapshot's rows too.
#[derive(Debug, Default, Clone)]
pub(super) struct Links {
    /// Activity id → (owner type id, owner id): calls reach their deal through it.
    pub activity_owner: HashMap<String, (u8, String)>,
    /// Lead id → the first deal converted from it.
    pub lead_deal: HashMap<String, String>,
    /// Lead id → when it first reached a qualifying status (µs), from the lead status
    /// history (and the previous snapshot's `qualified_at`).
    pub lead_qualified: HashMap<String, i64>,
}

impl Links {
    /// Adds the links of freshly pulled records (they win over older ones).
    pub(super) fn add(&mut self, raw: &Raw, m: &Mapping) {
        let qualifying = LeadFunnel::new(&raw.statuses);
        for h in &raw.lead_history {
            let (Some(lead), Some(at)) = (id(h, "OWNER_ID"), time(h, "CREATED_TIME", m)) else { continue };
            if qualifying.qualifies(h) {
                let first = self.lead_qualified.entry(lead).or_insert(at);
                *first = (*first).min(at);
            }
        }
        for a in &raw.activities {
            if let (Some(id), Some(owner), Some(kind)) = (id(a, "ID"), id(a, "OWNER_ID"), int(a, "OWNER_TYPE_ID")) {
                self.activity_owner.insert(id, (kind as u8, owner));
            }
        }
        let mut deals: Vec<(u64, String, String)> = raw
            .deals
            .iter()
            .filter_map(|d| Some((id(d, "ID")?.parse().unwrap_or(u64::MAX), id(d, "ID")?, id(d, "LEAD_ID")?)))
            .collect();
        deals.sort();
        for (_, deal, lead) in deals {
            self.lead_deal.entry(lead).or_insert(deal);
        }
    }
}

/// How records map, beyond the records themselves.
#[derive(Debug, Clone)]
pub(super) struct Mapping {
    /// The portal's zone, for the few times sent without an offset.
    pub timezone: Tz,
    /// A deal field (`UF_CRM_…`) holding the loss reason; the failure stage otherwise.
    pub loss_reason_field: Option<String>,
    /// The key of `phone_hash`, kept with the snapshots so hashes stay comparable.
    pub phone_key: Vec<u8>,
}

/// Maps every entity of `raw` into the tables it feeds.
///
/// # Errors
/// A record misses a field the canonical table requires (its id, a creation time).
pub(super) fn map(raw: &Raw, links: &Links, m: &Mapping) -> Result<Vec<TableBuilder>, Bitrix24Error> {
    let rates = Rates::new(&raw.currencies);
    let stages = StageInfo::new(&raw.statuses);
    Ok(vec![
        managers(raw, m)?,
        departments(raw)?,
        pipelines(raw)?,
        stage_rows(raw)?,
        sources(raw)?,
        loss_reasons(raw, &stages, m)?,
        companies(raw, m)?,
        contacts(raw, m)?,
        leads(raw, links, m)?,
        deals(raw, &rates, m)?,
        deal_history(raw, m)?,
        deal_items(raw)?,
        calls(raw, links, m)?,
        activities(raw, m)?,
        tasks(raw, m)?,
    ])
}

fn append(b: &mut TableBuilder, record: &Json, key: &str, row: &[Cell]) -> Result<(), Bitrix24Error> {
    let values: Vec<Value<'_>> = row.iter().map(Cell::value).collect();
    b.append_row(&values).map_err(|source| Bitrix24Error::Row {
        table: b.table().name(),
        id: record.get(key).map(|v| v.to_string()).unwrap_or_default(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_hash_by_digits() {
        assert_eq!(phone_hash("+7 (916) 555-00-00", b"k"), phone_hash("89165550000", b"k"));
        assert_ne!(phone_hash("+79165550000", b"k"), phone_hash("+79165550000", b"other"));
    }
}
