//! Deals, their stage history (the `lead_status_changed` events as steps), and the products
//! on them (catalog elements).

use std::collections::HashSet;

use serde_json::Value as Json;

use super::fields::{custom_fields, embedded_id, id, seconds, text, ts};
use super::pipelines::{Stages, stage_key};
use super::sources::source_of;
use super::{Context, Raw, Step, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn current_stage(deal: &Json) -> Option<String> {
    Some(stage_key(&id(deal, "pipeline_id")?, &id(deal, "status_id")?))
}

pub(super) fn amount(d: &Json) -> Cell {
    match d.get("price") {
        Some(Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Cell::D(i128::from(i) * 100),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Cell::D((f * 100.0).round() as i128),
            _ => Cell::Null,
        },
        _ => Cell::Null,
    }
}

pub(super) fn deal_row(b: &mut TableBuilder, d: &Json, stages: &Stages, is_request: bool, ctx: &Context) -> Result<(), AmoCrmError> {
    let stage = current_stage(d);
    let status = stage.as_deref().map_or("open", |s| stages.kind(s));
    let closed = if status == "open" { Cell::Null } else { ts(d, "closed_at").or(ts(d, "updated_at")) };
    let amount = amount(d);
    let currency = if amount == Cell::Null { Cell::Null } else { Cell::text(&ctx.currency) };
    let row = [
        id(d, "id").into(),
        text(d, "name").into(),
        id(d, "pipeline_id").into(),
        stage.into(),
        Cell::text(status),
        amount.clone(),
        currency,
        amount,
        id(d, "responsible_user_id").into(),
        embedded_id(d, "contacts").into(),
        embedded_id(d, "companies").into(),
        if is_request { id(d, "id").into() } else { Cell::Null },
        source_of(d).map(|s| s.0).into(),
        if status == "lost" { id(d, "loss_reason_id").into() } else { Cell::Null },
        ts(d, "created_at"),
        ts(d, "updated_at"),
        closed,
        custom_fields(d).into(),
    ];
    append(b, d, &row)
}

pub(super) fn history(ctx: &Context) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::DealStageHistory);
    let mut deals: Vec<&String> = ctx.history.keys().collect();
    deals.sort();
    for deal in deals {
        for s in &ctx.history[deal] {
            let row = [Cell::S(deal.clone()), Cell::S(s.pipeline.clone()), Cell::S(s.stage.clone()), Cell::T(s.at), s.by.clone().into()];
            append(&mut b, &Json::Null, &row)?;
        }
    }
    Ok(b)
}

/// A deal's move from one stage to another, as a `lead_status_changed` event tells it.
pub(in crate::connectors::amocrm) struct Move {
    pub(in crate::connectors::amocrm) deal: String,
    pub(in crate::connectors::amocrm) step: Step,
    /// The stage it left, when the event names it.
    pub(in crate::connectors::amocrm) left: Option<StageRef>,
}

/// A stage by its pipeline and its stage key.
pub(in crate::connectors::amocrm) struct StageRef {
    pub(in crate::connectors::amocrm) pipeline: String,
    pub(in crate::connectors::amocrm) stage: String,
}

/// The stage steps of `lead_status_changed` events, by deal, with each event's "before"
/// stage (for the first row of a deal that had none).
pub(in crate::connectors::amocrm) fn event_steps(events: &[Json]) -> Vec<Move> {
    let lead_status = |v: Option<&Json>| -> Option<(String, String)> {
        let s = v?.as_array()?.first()?.get("lead_status")?;
        Some((id(s, "pipeline_id")?, id(s, "id")?))
    };
    events
        .iter()
        .filter_map(|e| {
            let deal = id(e, "entity_id")?;
            let (pipeline, status) = lead_status(e.get("value_after"))?;
            let at = seconds(e, "created_at")?;
            let left = lead_status(e.get("value_before")).map(|(p, s)| StageRef { stage: stage_key(&p, &s), pipeline: p });
            Some(Move { deal, step: Step { at, stage: stage_key(&pipeline, &status), pipeline, by: id(e, "created_by") }, left })
        })
        .collect()
}

/// Products on deals: `_embedded.catalog_elements` links into a catalog of type `products`
/// (A-PROD-1..4), named and priced by the element (the price field the link names, else
/// the `PRICE` field, A-CATEL-3).
pub(super) fn deal_items(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let products: HashSet<String> = raw.catalogs.iter().filter(|c| c.get("type").and_then(Json::as_str) == Some("products")).filter_map(|c| id(c, "id")).collect();
    let mut b = TableBuilder::new(Table::DealItems);
    for d in &raw.leads {
        let Some(deal) = id(d, "id") else { continue };
        let links = d.get("_embedded").and_then(|e| e.get("catalog_elements")).and_then(Json::as_array).into_iter().flatten();
        for link in links {
            let meta = link.get("metadata").unwrap_or(&Json::Null);
            let (Some(element), Some(catalog)) = (id(link, "id"), id(meta, "catalog_id")) else { continue };
            if !products.contains(&catalog) {
                continue;
            }
            let record = raw.elements.get(&element);
            let quantity = meta.get("quantity").and_then(|q| q.as_f64().or_else(|| q.as_str().and_then(|s| s.trim().parse().ok())));
            let price = record.and_then(|r| element_price(r, id(meta, "price_id").as_deref()));
            let row = [
                Cell::S(deal.clone()),
                Cell::S(format!("{deal}:{element}")),
                Cell::S(element),
                record.and_then(|r| text(r, "name")).into(),
                quantity.map_or(Cell::Null, Cell::F),
                price.map_or(Cell::Null, Cell::D),
                Cell::Null,
            ];
            append(&mut b, d, &row)?;
        }
    }
    Ok(b)
}

/// An element's unit price in cents: the field `price_id` names, else the one coded PRICE.
fn element_price(element: &Json, price_id: Option<&str>) -> Option<i128> {
    let fields = element.get("custom_fields_values")?.as_array()?;
    let field = match price_id {
        Some(wanted) => fields.iter().find(|f| id(f, "field_id").as_deref() == Some(wanted)),
        None => fields.iter().find(|f| f.get("field_code").and_then(Json::as_str) == Some("PRICE")),
    }?;
    let value = field.get("values")?.as_array()?.first()?.get("value")?;
    let number = match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().replace(',', ".").parse().ok(),
        _ => None,
    }?;
    (number.is_finite() && number.abs() < 1e15).then(|| (number * 100.0).round() as i128)
}
