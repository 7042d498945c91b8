//! Requests: a deal that entered through an entry stage is also a `leads` row with the same
//! id (new, in progress, converted once it moved on, junk when lost before that).

use serde_json::Value as Json;

use super::deals::{amount, current_stage};
use super::fields::{custom_fields, embedded_id, id, seconds, text, ts};
use super::pipelines::Stages;
use super::sources::source_of;
use super::{Context, Step, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::TableBuilder;

/// The request (a `leads` row) a deal is, if it entered through an entry stage.
pub(super) struct Request {
    status: &'static str,
    qualified_at: Option<i64>,
    closed_at: Option<i64>,
}

pub(super) fn request(deal: &Json, steps: &[Step], stages: &Stages) -> Option<Request> {
    let first = steps.first()?;
    if !stages.entry.contains(&first.stage) {
        return None;
    }
    let current = current_stage(deal)?;
    let qualified = steps.iter().find(|s| !stages.entry.contains(&s.stage) && stages.kind(&s.stage) != "lost");
    Some(match qualified {
        Some(step) => Request { status: "converted", qualified_at: Some(step.at), closed_at: Some(step.at) },
        None if stages.kind(&current) == "lost" => Request { status: "junk", qualified_at: None, closed_at: seconds(deal, "closed_at").or_else(|| seconds(deal, "updated_at")) },
        None if stages.unsorted.contains(&current) => Request { status: "new", qualified_at: None, closed_at: None },
        None => Request { status: "in_progress", qualified_at: None, closed_at: None },
    })
}

pub(super) fn lead_row(b: &mut TableBuilder, d: &Json, r: &Request, ctx: &Context) -> Result<(), AmoCrmError> {
    let amount = amount(d);
    let currency = if amount == Cell::Null { Cell::Null } else { Cell::text(&ctx.currency) };
    let at = |t: Option<i64>| t.map_or(Cell::Null, Cell::T);
    let row = [
        id(d, "id").into(),
        text(d, "name").into(),
        Cell::text(r.status),
        current_stage(d).into(),
        source_of(d).map(|s| s.0).into(),
        id(d, "responsible_user_id").into(),
        embedded_id(d, "contacts").into(),
        embedded_id(d, "companies").into(),
        amount,
        currency,
        ts(d, "created_at"),
        ts(d, "updated_at"),
        at(r.qualified_at),
        at(r.closed_at),
        if r.status == "converted" { id(d, "id").into() } else { Cell::Null },
        custom_fields(d).into(),
    ];
    append(b, d, &row)
}

#[cfg(test)]
mod tests {
    use super::super::pipelines::stage_key;
    use super::*;
    use serde_json::json;

    fn pipelines() -> Vec<Json> {
        vec![json!({"id": 7, "name": "Sales", "sort": 1, "is_main": true, "_embedded": {"statuses": [
            {"id": 10, "name": "Unsorted", "sort": 10, "type": 1},
            {"id": 20, "name": "First contact", "sort": 20, "type": 0},
            {"id": 30, "name": "Talks", "sort": 30, "type": 0},
            {"id": 142, "name": "Won", "sort": 10000, "type": 0},
            {"id": 143, "name": "Lost", "sort": 11000, "type": 0}
        ]}})]
    }

    fn step(at: i64, status: &str) -> Step {
        Step { at: at * 1_000_000, pipeline: "7".into(), stage: stage_key("7", status), by: None }
    }

    #[test]
    fn requests_follow_the_entry_stages() {
        let stages = Stages::new(&pipelines());
        let deal = |status: i64| json!({"id": 1, "pipeline_id": 7, "status_id": status, "created_at": 100, "updated_at": 500, "closed_at": 400});
        // Still unsorted, or taken into the first stage.
        assert_eq!(request(&deal(10), &[step(100, "10")], &stages).unwrap().status, "new");
        assert_eq!(request(&deal(20), &[step(100, "10"), step(150, "20")], &stages).unwrap().status, "in_progress");
        // Moved past the entry stages: converted at that move.
        let r = request(&deal(143), &[step(100, "20"), step(200, "30"), step(400, "143")], &stages).unwrap();
        assert_eq!((r.status, r.qualified_at), ("converted", Some(200_000_000)));
        // Lost straight from the entry stages: junk, closed when the deal was.
        let r = request(&deal(143), &[step(100, "10"), step(400, "143")], &stages).unwrap();
        assert_eq!((r.status, r.closed_at), ("junk", Some(400_000_000)));
        // Created further down the pipeline (an import): a deal only.
        assert!(request(&deal(30), &[step(100, "30")], &stages).is_none());
    }
}
