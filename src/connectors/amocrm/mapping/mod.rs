//! amoCRM records (HAL JSON, Unix seconds) into the canonical tables of docs/schema.md.
//! docs/connectors/amocrm.md is the same mapping in prose; change both together.
//!
//! - amoCRM's "leads" are deals. Those that entered through the pipeline's entry stages
//!   (the unsorted stage, or the first regular stage) are also requests: a `leads` row with
//!   the same id, converted once the deal moved on, junk when it was lost before that.
//! - Statuses 142 (won) and 143 (lost) exist in every pipeline with the same id, so a stage
//!   is keyed `PIPELINE:STATUS`.
//! - Stage history is the `lead_status_changed` events; the first row (the stage the deal
//!   was created in) is the first event's "before", or the current stage when it never moved.
//! - Calls are `call_in`/`call_out` notes; every note is an activity.
//!
//! One file per family of tables, in the order `map` writes them: `people.rs` (managers,
//! departments, companies, contacts), `pipelines.rs` (pipelines, stages, loss reasons),
//! `sources.rs`, `leads.rs` (requests), `deals.rs` (deals, stage history, products),
//! `notes.rs` (calls, activities), `tasks.rs`; `fields.rs` reads the values.

mod deals;
mod fields;
mod leads;
mod notes;
mod people;
mod pipelines;
mod sources;
mod tasks;

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder, Value};
pub(super) use deals::{Move, event_steps};
use deals::{deal_items, deal_row, history};
pub(super) use fields::{id, seconds};
use leads::{lead_row, request};
use notes::{activities, calls};
use people::{companies, contacts, departments, managers};
pub(super) use pipelines::stage_key;
use pipelines::{Stages, loss_reasons, pipelines, stage_rows};
use sources::sources;
use tasks::tasks;

/// What the account returned, entity by entity, before mapping.
#[derive(Debug, Default, Clone)]
pub(super) struct Raw {
    pub account: Json,
    pub users: Vec<Json>,
    pub pipelines: Vec<Json>,
    pub loss_reasons: Vec<Json>,
    pub leads: Vec<Json>,
    pub contacts: Vec<Json>,
    pub companies: Vec<Json>,
    pub tasks: Vec<Json>,
    /// Notes with the kind of record they hang on: `leads`, `contacts` or `companies`.
    pub notes: Vec<(&'static str, Json)>,
    /// `lead_status_changed` events.
    pub status_events: Vec<Json>,
    /// `/api/v4/catalogs`: which catalogs hold products.
    pub catalogs: Vec<Json>,
    /// Catalog elements linked to the deals read, by id.
    pub elements: HashMap<String, Json>,
}

/// One entry of a deal into a stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Step {
    /// Microseconds, UTC.
    pub at: i64,
    pub pipeline: String,
    /// `PIPELINE:STATUS`.
    pub stage: String,
    pub by: Option<String>,
}

/// What mapping needs beyond the records themselves.
#[derive(Debug, Clone, Default)]
pub(super) struct Context {
    pub phone_key: Vec<u8>,
    /// The account's currency (ISO 4217).
    pub currency: String,
    /// Every deal's stage history, oldest first (the previous snapshot's rows merged with
    /// this pull's events).
    pub history: HashMap<String, Vec<Step>>,
    /// Deals known to be requests from the previous snapshot (their `lead_id` is set).
    pub requests_before: HashSet<String>,
}

/// Maps every entity of `raw` into the tables it feeds; also returns the deals that are
/// requests.
///
/// # Errors
/// A record misses a field the canonical table requires (its id, a creation time).
pub(super) fn map(raw: &Raw, ctx: &Context) -> Result<(Vec<TableBuilder>, HashSet<String>), AmoCrmError> {
    let stages = Stages::new(&raw.pipelines);
    let mut requests: HashSet<String> = ctx.requests_before.clone();
    let mut leads = TableBuilder::new(Table::Leads);
    let mut deals = TableBuilder::new(Table::Deals);
    for d in &raw.leads {
        let deal = id(d, "id");
        let steps = deal.as_ref().and_then(|i| ctx.history.get(i)).map(Vec::as_slice).unwrap_or(&[]);
        let request = request(d, steps, &stages);
        if let (Some(deal), Some(_)) = (&deal, &request) {
            requests.insert(deal.clone());
        } else if let Some(deal) = &deal {
            requests.remove(deal);
        }
        deal_row(&mut deals, d, &stages, request.is_some(), ctx)?;
        if let Some(r) = request {
            lead_row(&mut leads, d, &r, ctx)?;
        }
    }
    let builders = vec![
        managers(raw)?,
        departments(raw)?,
        pipelines(raw)?,
        stage_rows(raw)?,
        sources(raw)?,
        loss_reasons(raw)?,
        companies(raw)?,
        contacts(raw)?,
        leads,
        deals,
        history(ctx)?,
        deal_items(raw)?,
        calls(raw, &requests, ctx)?,
        activities(raw, &requests)?,
        tasks(raw, &requests)?,
    ];
    Ok((builders, requests))
}

fn append(b: &mut TableBuilder, record: &Json, row: &[Cell]) -> Result<(), AmoCrmError> {
    let values: Vec<Value<'_>> = row.iter().map(Cell::value).collect();
    b.append_row(&values).map_err(|source| AmoCrmError::Row { table: b.table().name(), id: id(record, "id").unwrap_or_default(), source })
}
