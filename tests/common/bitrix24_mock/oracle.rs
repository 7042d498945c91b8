//! The oracle: what a sync of a portal must give (the canonical tables' keys), derived
//! straight from the portal's records and not from the connector.

use serde_json::Value;

use super::MockData;
use super::values::text;

impl MockData {
    /// What a sync of this portal must give, derived from the records here and not from
    /// the connector: per table, its rows' keys (`deal_items`: `deal|item`;
    /// `deal_stage_history`: `deal|rows`); deals'
    /// `amount_base` where the portal reports one (`deals.amount_base` as `id|amount`); and
    /// the leads qualified by their status history (`leads.qualified`).
    pub fn oracle(&self) -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        use std::collections::{BTreeMap, BTreeSet};
        let ids = |rows: &[Value], key: &str| -> BTreeSet<String> { rows.iter().map(|r| text(&r[key]).unwrap_or_default()).collect() };
        let deals = ids(&self.deals, "ID");
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        out.insert("deals", deals.clone());
        out.insert("leads", ids(&self.leads, "ID"));
        out.insert("contacts", ids(&self.contacts, "ID"));
        out.insert("companies", ids(&self.companies, "ID"));
        out.insert("activities", ids(&self.activities, "ID"));
        out.insert("tasks", ids(&self.tasks, "id"));
        out.insert("calls", self.calls.iter().map(|c| text(&c["CALL_ID"]).or_else(|| text(&c["ID"])).unwrap_or_default()).collect());
        out.insert(
            "deal_items",
            self.product_rows.iter().filter(|p| p["ownerType"] == "D" && deals.contains(&text(&p["ownerId"]).unwrap_or_default())).map(|p| format!("{}|{}", text(&p["ownerId"]).unwrap_or_default(), text(&p["id"]).unwrap_or_default())).collect(),
        );
        let mut moves: BTreeMap<String, usize> = BTreeMap::new();
        for h in self.deal_stage_history.iter().filter(|h| deals.contains(&text(&h["OWNER_ID"]).unwrap_or_default())) {
            *moves.entry(text(&h["OWNER_ID"]).unwrap_or_default()).or_default() += 1;
        }
        out.insert("deal_stage_history", moves.into_iter().map(|(deal, n)| format!("{deal}|{n}")).collect());
        out.insert("deals.amount_base", self.deals.iter().filter_map(|d| Some(format!("{}|{}", text(&d["ID"])?, text(&d["OPPORTUNITY_ACCOUNT"])?))).collect());
        // The funnel's last process status ("PROCESSED") or a success status qualifies.
        let leads = ids(&self.leads, "ID");
        out.insert(
            "leads.qualified",
            self.lead_stage_history.iter().filter(|h| h["STATUS_SEMANTIC_ID"] == "S" || h["STATUS_ID"] == "PROCESSED").filter_map(|h| text(&h["OWNER_ID"])).filter(|l| leads.contains(l)).collect(),
        );
        out
    }
}
