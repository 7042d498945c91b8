//! The oracle: the canonical tables' keys straight from the account's records, for the
//! connector tests to compare a sync with.

use serde_json::Value;

use super::{MockData, PRODUCTS_CATALOG};

impl MockData {
    /// What a sync of this account must give, derived from the records here and not from
    /// the connector: per table, its rows' keys (`deal_items`: `deal|deal:element` for
    /// links into the products catalog; `deal_stage_history`: `deal|rows`, one creation row
    /// and one per stage event of a live deal).
    pub fn oracle(&self) -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        use std::collections::{BTreeMap, BTreeSet};
        let ids = |rows: &[Value]| -> BTreeSet<String> { rows.iter().filter_map(|r| r["id"].as_i64()).map(|i| i.to_string()).collect() };
        let deals = ids(&self.leads);
        let (contacts, companies) = (ids(&self.contacts), ids(&self.companies));
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        out.insert("deals", deals.clone());
        out.insert("contacts", contacts.clone());
        out.insert("companies", companies.clone());
        out.insert("tasks", ids(&self.tasks));
        let live = |(entity, n): &&(String, Value)| {
            let owner = n["entity_id"].as_i64().map(|i| i.to_string()).unwrap_or_default();
            match entity.as_str() {
                "leads" => deals.contains(&owner),
                "contacts" => contacts.contains(&owner),
                _ => companies.contains(&owner),
            }
        };
        out.insert("activities", self.notes.iter().filter(live).filter_map(|(_, n)| n["id"].as_i64()).map(|i| i.to_string()).collect());
        out.insert("calls", self.notes.iter().filter(live).filter(|(_, n)| matches!(n["note_type"].as_str(), Some("call_in" | "call_out"))).filter_map(|(_, n)| n["id"].as_i64()).map(|i| i.to_string()).collect());
        let mut items = BTreeSet::new();
        for lead in &self.leads {
            for link in lead["_embedded"]["catalog_elements"].as_array().into_iter().flatten() {
                if link["metadata"]["catalog_id"] == PRODUCTS_CATALOG {
                    items.insert(format!("{0}|{0}:{1}", lead["id"], link["id"]));
                }
            }
        }
        out.insert("deal_items", items);
        let mut moves: BTreeMap<String, usize> = deals.iter().map(|d| (d.clone(), 1)).collect();
        for e in self.events.iter().filter(|e| e["type"] == "lead_status_changed") {
            if let Some(n) = e["entity_id"].as_i64().and_then(|d| moves.get_mut(&d.to_string())) {
                *n += 1;
            }
        }
        out.insert("deal_stage_history", moves.into_iter().map(|(d, n)| format!("{d}|{n}")).collect());
        out
    }
}
