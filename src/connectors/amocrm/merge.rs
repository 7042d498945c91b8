//! An incremental pull on top of the previous snapshot: changed records replace their old
//! rows (by id), reference lists and the stage history (rebuilt from the previous rows and the
//! new events) are replaced, and deleted deals, contacts and companies are dropped with the
//! notes and tasks that hang on them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMicrosecondType;

use super::mapping::Step;
use crate::connectors::sync::{MergeError, Previous, column, keys, retain, strings};
use crate::model::{Dataset, Table, TableBuilder, Value};

/// Records deleted in the account since the previous snapshot.
#[derive(Debug, Default, Clone)]
pub(super) struct Deleted {
    pub deals: HashSet<String>,
    pub contacts: HashSet<String>,
    pub companies: HashSet<String>,
}

/// The previous snapshot's stage history, by deal.
pub(super) fn previous_history(previous: &Previous) -> Result<HashMap<String, Vec<Step>>, MergeError> {
    let table = Table::DealStageHistory;
    let mut out: HashMap<String, Vec<Step>> = HashMap::new();
    for b in previous.tables.get(&table).into_iter().flatten() {
        let (deal, pipeline, stage, by) = (column(table, b, "deal_id")?, column(table, b, "pipeline_id")?, column(table, b, "stage_id")?, column(table, b, "manager_id")?);
        let i = table.column_index("entered_at").ok_or(MergeError::Shape("deal_stage_history has no entered_at".into()))?;
        let at = b.column(i).as_primitive_opt::<TimestampMicrosecondType>().ok_or(MergeError::Shape("deal_stage_history.entered_at is not a timestamp".into()))?;
        for r in 0..b.num_rows() {
            if deal.is_null(r) || stage.is_null(r) || at.is_null(r) {
                continue;
            }
            let step = Step {
                at: at.value(r),
                pipeline: if pipeline.is_null(r) { String::new() } else { pipeline.value(r).to_string() },
                stage: stage.value(r).to_string(),
                by: by.is_valid(r).then(|| by.value(r).to_string()),
            };
            out.entry(deal.value(r).to_string()).or_default().push(step);
        }
    }
    Ok(out)
}

/// Deals of the previous snapshot that are requests (their `lead_id` is set), and every deal
/// id it has.
pub(super) fn previous_deals(previous: &Previous) -> Result<(HashSet<String>, HashSet<String>), MergeError> {
    let mut requests = HashSet::new();
    let mut all = HashSet::new();
    for b in previous.tables.get(&Table::Deals).into_iter().flatten() {
        let (deal, lead) = (column(Table::Deals, b, "deal_id")?, column(Table::Deals, b, "lead_id")?);
        for r in 0..b.num_rows() {
            if deal.is_valid(r) {
                all.insert(deal.value(r).to_string());
                if lead.is_valid(r) {
                    requests.insert(deal.value(r).to_string());
                }
            }
        }
    }
    Ok((requests, all))
}

/// Whether a table's rows are read in full every time (or rebuilt), rather than upserted.
fn replaced(table: Table) -> bool {
    matches!(
        table,
        Table::Managers | Table::Departments | Table::Pipelines | Table::Stages | Table::Sources | Table::LossReasons | Table::DealStageHistory | Table::Tasks
    )
}

/// The previous snapshot's tables with the fresh rows merged in and the deleted records
/// dropped. Returns the dataset and the number of rows dropped as deleted.
/// `fresh_deals` are the deals read in this pull: their product rows replace the old ones.
pub(super) fn merge(previous: &Previous, fresh: Vec<TableBuilder>, deleted: &Deleted, fresh_deals: &HashSet<String>) -> Result<(Dataset, usize), MergeError> {
    let mut dataset = Dataset::default();
    let mut dropped = 0;
    for mut builder in fresh {
        let table = builder.table();
        let new = builder.finish();
        let old = previous.tables.get(&table).map(Vec::as_slice).unwrap_or(&[]);
        let mut batches = if replaced(table) {
            Vec::new()
        } else if table == Table::DealItems {
            retain(old, 0, |deal| deal.is_none_or(|d| !fresh_deals.contains(d)))?.0
        } else {
            let fresh_keys = keys(std::slice::from_ref(&new), 0);
            retain(old, 0, |k| k.is_none_or(|k| !fresh_keys.contains(k)))?.0
        };
        batches.push(new);
        let gone: &[(&str, &HashSet<String>)] = match table {
            Table::Deals | Table::Leads => &[("", &deleted.deals)],
            Table::Contacts => &[("", &deleted.contacts)],
            Table::Companies => &[("", &deleted.companies)],
            Table::Calls | Table::Activities => &[("deal_id", &deleted.deals), ("contact_id", &deleted.contacts), ("company_id", &deleted.companies)],
            Table::Tasks | Table::DealItems => &[("deal_id", &deleted.deals)],
            _ => &[],
        };
        for (name, ids) in gone {
            let i = if name.is_empty() { 0 } else { table.column_index(name).ok_or_else(|| MergeError::Shape(format!("{} has no {name}", table.name())))? };
            let (kept, n) = retain(&batches, i, |k| k.is_none_or(|k| !ids.contains(k)))?;
            batches = kept;
            dropped += n;
        }
        // amoCRM unlinks a deleted contact or company from its deals without touching them.
        let links: &[(&str, &HashSet<String>)] = match table {
            Table::Deals | Table::Leads => &[("contact_id", &deleted.contacts), ("company_id", &deleted.companies)],
            Table::Contacts => &[("company_id", &deleted.companies)],
            _ => &[],
        };
        for (name, ids) in links {
            let i = table.column_index(name).ok_or_else(|| MergeError::Shape(format!("{} has no {name}", table.name())))?;
            batches = batches.iter().map(|b| unlink(b, i, ids)).collect::<Result<_, _>>()?;
        }
        let schema = table.schema();
        let entry = dataset.tables.entry(table).or_default();
        for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
            entry.push(RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())?);
        }
        if entry.is_empty() {
            entry.push(RecordBatch::new_empty(schema));
        }
    }
    rebuild_sources(&mut dataset, previous)?;
    Ok((dataset, dropped))
}

/// Sets the text `column` to NULL where it names one of `ids`.
fn unlink(batch: &RecordBatch, column: usize, ids: &HashSet<String>) -> Result<RecordBatch, MergeError> {
    if ids.is_empty() {
        return Ok(batch.clone());
    }
    let values = strings(batch, column).ok_or_else(|| MergeError::Shape(format!("column {column} is not text")))?;
    let kept: StringArray = values.iter().map(|v| v.filter(|v| !ids.contains(*v))).collect();
    let mut columns = batch.columns().to_vec();
    columns[column] = Arc::new(kept);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Sources are those the merged deals and leads name: this pull's rows (fresh names and
/// channels), else the previous snapshot's, so one no deal names any more goes.
fn rebuild_sources(dataset: &mut Dataset, previous: &Previous) -> Result<(), MergeError> {
    let mut seen = std::collections::BTreeSet::new();
    for table in [Table::Deals, Table::Leads] {
        for b in dataset.tables.get(&table).into_iter().flatten() {
            seen.extend(column(table, b, "source_id")?.iter().flatten().map(str::to_string));
        }
    }
    let known = |batches: Option<&Vec<RecordBatch>>| -> Result<Vec<(String, RecordBatch, usize)>, MergeError> {
        let mut rows = Vec::new();
        for b in batches.into_iter().flatten() {
            let ids = column(Table::Sources, b, "source_id")?;
            for r in 0..b.num_rows() {
                if ids.is_valid(r) {
                    rows.push((ids.value(r).to_string(), b.clone(), r));
                }
            }
        }
        Ok(rows)
    };
    let mut by_id: std::collections::BTreeMap<String, (RecordBatch, usize)> = std::collections::BTreeMap::new();
    for (source, b, r) in known(previous.tables.get(&Table::Sources))?.into_iter().chain(known(dataset.tables.get(&Table::Sources))?) {
        by_id.insert(source, (b, r));
    }
    let mut builder = TableBuilder::new(Table::Sources);
    for source in &seen {
        match by_id.get(source) {
            Some((b, r)) => {
                let name = column(Table::Sources, b, "name")?;
                let channel = column(Table::Sources, b, "channel")?;
                let online = b.column(Table::Sources.column_index("is_online").ok_or(MergeError::Shape("sources has no is_online".into()))?).as_boolean_opt().ok_or(MergeError::Shape("sources.is_online is not a boolean".into()))?;
                let name = name.is_valid(*r).then(|| name.value(*r));
                let channel = if channel.is_valid(*r) { channel.value(*r) } else { "other" };
                let online = online.is_valid(*r) && online.value(*r);
                let row = [Value::Str(source), name.map_or(Value::Null, Value::Str), Value::Str(channel), Value::Bool(online)];
                builder.append_row(&row)?;
            }
            None => builder.append_row(&[Value::Str(source), Value::Null, Value::Str("other"), Value::Bool(false)])?,
        }
    }
    dataset.tables.insert(Table::Sources, vec![builder.finish()]);
    Ok(())
}
