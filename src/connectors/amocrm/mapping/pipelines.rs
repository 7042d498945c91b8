//! The pipelines, their stages (keyed `PIPELINE:STATUS`, with their kind and which are entry
//! stages) and the loss reasons.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::fields::{flag, id, int, text};
use super::{Raw, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

/// A stage's key: statuses 142 and 143 repeat in every pipeline.
pub(in crate::connectors::amocrm) fn stage_key(pipeline: &str, status: &str) -> String {
    format!("{pipeline}:{status}")
}

/// The stages of every pipeline: kind, name, and which are entry stages.
pub(super) struct Stages {
    kind: HashMap<String, &'static str>,
    pub(super) unsorted: HashSet<String>,
    pub(super) entry: HashSet<String>,
}

impl Stages {
    pub(super) fn new(pipelines: &[Json]) -> Stages {
        let mut stages = Stages { kind: HashMap::new(), unsorted: HashSet::new(), entry: HashSet::new() };
        for p in pipelines {
            let Some(pipeline) = id(p, "id") else { continue };
            let mut first_regular: Option<(i64, String)> = None;
            for s in statuses(p) {
                let Some(status) = id(s, "id") else { continue };
                let key = stage_key(&pipeline, &status);
                stages.kind.insert(key.clone(), status_kind(&status));
                if int(s, "type") == Some(1) {
                    stages.unsorted.insert(key.clone());
                    stages.entry.insert(key.clone());
                } else if status_kind(&status) == "open" {
                    let sort = int(s, "sort").unwrap_or(i64::MAX);
                    if first_regular.as_ref().is_none_or(|(best, _)| sort < *best) {
                        first_regular = Some((sort, key));
                    }
                }
            }
            if let Some((_, key)) = first_regular {
                stages.entry.insert(key);
            }
        }
        stages
    }

    pub(super) fn kind(&self, stage: &str) -> &'static str {
        self.kind.get(stage).copied().unwrap_or_else(|| status_kind(stage.rsplit(':').next().unwrap_or("")))
    }
}

fn status_kind(status: &str) -> &'static str {
    match status {
        "142" => "won",
        "143" => "lost",
        _ => "open",
    }
}

fn statuses(pipeline: &Json) -> impl Iterator<Item = &Json> {
    pipeline.get("_embedded").and_then(|e| e.get("statuses")).and_then(Json::as_array).into_iter().flatten()
}

pub(super) fn pipelines(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Pipelines);
    for p in &raw.pipelines {
        let sort = int(p, "sort").map(|s| s as i32);
        append(&mut b, p, &[id(p, "id").into(), text(p, "name").into(), sort.into(), flag(p, "is_main").into()])?;
    }
    Ok(b)
}

pub(super) fn stage_rows(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Stages);
    for p in &raw.pipelines {
        let Some(pipeline) = id(p, "id") else { continue };
        for s in statuses(p) {
            let Some(status) = id(s, "id") else { continue };
            let sort = int(s, "sort").map(|v| v as i32);
            let row = [Cell::S(stage_key(&pipeline, &status)), Cell::text(&pipeline), text(s, "name").into(), sort.into(), Cell::text(status_kind(&status))];
            append(&mut b, s, &row)?;
        }
    }
    Ok(b)
}

pub(super) fn loss_reasons(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::LossReasons);
    for r in &raw.loss_reasons {
        append(&mut b, r, &[id(r, "id").into(), text(r, "name").into()])?;
    }
    Ok(b)
}
