//! The deal funnels: pipelines (deal categories), their stages, the lead sources with their
//! channels, and the loss reasons (a custom field's values, or the failure stages).

use serde_json::Value as Json;

use super::deals::deal_status;
use super::fields::{field_text, flag, id, int, scalar_id_or_zero, text};
use super::{Mapping, Raw, append};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn pipelines(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Pipelines);
    let mut has_general = false;
    for c in &raw.categories {
        let pipeline = scalar_id_or_zero(c.get("id"));
        has_general |= pipeline.as_deref() == Some("0");
        let sort = int(c, "sort").map(|s| s as i32);
        let row = [pipeline.into(), text(c, "name").into(), sort.into(), flag(c, "isDefault").into()];
        append(&mut b, c, "id", &row)?;
    }
    // Category 0 ("General") holds deals on every portal, listed or not.
    if !has_general {
        let is_default = !raw.categories.iter().any(|c| flag(c, "isDefault") == Some(true));
        append(&mut b, &Json::Null, "id", &[Cell::text("0"), Cell::text("General"), Cell::I(0), Cell::B(is_default)])?;
    }
    Ok(b)
}

/// The pipeline of a deal stage list (`DEAL_STAGE` is pipeline 0, `DEAL_STAGE_5` pipeline 5).
fn stage_pipeline(entity: &str) -> Option<String> {
    if entity == "DEAL_STAGE" {
        return Some("0".into());
    }
    entity.strip_prefix("DEAL_STAGE_").filter(|n| n.chars().all(|c| c.is_ascii_digit())).map(str::to_string)
}

fn stage_kind(s: &Json) -> &'static str {
    let semantics = text(s, "SEMANTICS").or_else(|| s.get("EXTRA").and_then(|e| text(e, "SEMANTICS")));
    match semantics.as_deref() {
        Some("S" | "success") => "won",
        Some("F" | "failure" | "apology") => "lost",
        _ => "open",
    }
}

pub(super) fn stage_rows(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Stages);
    for s in &raw.statuses {
        let Some(pipeline) = text(s, "ENTITY_ID").and_then(|e| stage_pipeline(&e)) else { continue };
        let sort = int(s, "SORT").map(|v| v as i32);
        let row = [id(s, "STATUS_ID").into(), Cell::text(&pipeline), text(s, "NAME").into(), sort.into(), Cell::text(stage_kind(s))];
        append(&mut b, s, "STATUS_ID", &row)?;
    }
    Ok(b)
}

/// Channel and online flag of a source id: the portal's built-in ids, `other` for custom
/// ones (`UC_…`).
fn channel(source: &str) -> (&'static str, bool) {
    match source {
        "CALL" => ("phone", false),
        "EMAIL" => ("email", true),
        "WEB" | "WEBFORM" | "STORE" => ("web_form", true),
        "CALLBACK" => ("callback", true),
        "ADVERTISING" | "RC_GENERATOR" => ("ads", true),
        "PARTNER" | "RECOMMENDATION" => ("referral", false),
        "TRADE_SHOW" => ("offline", false),
        "BOOKING" => ("web_form", true),
        s if s.contains("OPENLINE") || s.contains("IMOL") || s.contains("WZ") => ("messenger", true),
        _ => ("other", false),
    }
}

pub(super) fn sources(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Sources);
    for s in raw.statuses.iter().filter(|s| text(s, "ENTITY_ID").as_deref() == Some("SOURCE")) {
        let source = id(s, "STATUS_ID");
        let (channel, online) = channel(source.as_deref().unwrap_or(""));
        let row = [source.into(), text(s, "NAME").into(), Cell::text(channel), Cell::B(online)];
        append(&mut b, s, "STATUS_ID", &row)?;
    }
    Ok(b)
}

/// Failure stages by id, with names.
pub(super) struct StageInfo {
    failure: Vec<(String, String)>,
}

impl StageInfo {
    pub(super) fn new(statuses: &[Json]) -> StageInfo {
        let failure = statuses
            .iter()
            .filter(|s| text(s, "ENTITY_ID").and_then(|e| stage_pipeline(&e)).is_some() && stage_kind(s) == "lost")
            .filter_map(|s| Some((id(s, "STATUS_ID")?, text(s, "NAME").unwrap_or_default())))
            .collect();
        StageInfo { failure }
    }
}

pub(super) fn loss_reasons(raw: &Raw, stages: &StageInfo, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::LossReasons);
    match &m.loss_reason_field {
        // The values of the configured field on lost deals (the field's list labels are
        // what the portal stores for a list field shown as text).
        Some(field) => {
            let mut seen: Vec<String> = raw.deals.iter().filter(|d| deal_status(d) == "lost").filter_map(|d| field_text(d, field)).collect();
            seen.sort();
            seen.dedup();
            for reason in seen {
                append(&mut b, &Json::Null, "", &[Cell::text(&reason), Cell::text(&reason)])?;
            }
        }
        None => {
            for (stage, name) in &stages.failure {
                append(&mut b, &Json::Null, "", &[Cell::text(stage), Cell::text(name)])?;
            }
        }
    }
    Ok(b)
}
