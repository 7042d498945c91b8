//! An incremental pull on top of the previous snapshot: changed records replace their old
//! rows (by id), append-only ones are added, reference lists are replaced, and records the
//! id scan no longer finds are dropped with what hangs on them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};

use super::Previous;
use super::mapping::Links;
use crate::connectors::sync::{MergeError, keys, retain, strings};
use crate::model::{Dataset, Table, TableBuilder};

/// How a table's rows combine with the previous snapshot's.
enum Rule {
    /// The pull reads the whole list every time.
    Replace,
    /// Rows are records keyed by their first column; fresh ones win.
    Upsert,
    /// Rows are added after a cursor; dropped with their deal.
    Append,
    /// Rows of a deal come together: a changed deal's rows replace its old ones.
    PerDeal,
}

fn rule(table: Table) -> Rule {
    match table {
        Table::Managers | Table::Departments | Table::Pipelines | Table::Stages | Table::Sources => Rule::Replace,
        Table::DealStageHistory => Rule::Append,
        Table::DealItems => Rule::PerDeal,
        _ => Rule::Upsert,
    }
}

/// Links from the previous snapshot's rows: activity owners and converted leads.
pub(super) fn previous_links(previous: &Previous, links: &mut Links) -> Result<(), MergeError> {
    for b in previous.tables.get(&Table::Activities).into_iter().flatten() {
        let column = |name: &str| -> Result<&arrow::array::StringArray, MergeError> {
            let i = Table::Activities.column_index(name).ok_or_else(|| MergeError::Shape(format!("activities has no {name}")))?;
            strings(b, i).ok_or_else(|| MergeError::Shape(format!("activities.{name} is not text")))
        };
        let (ids, deal, lead, contact, company) = (column("activity_id")?, column("deal_id")?, column("lead_id")?, column("contact_id")?, column("company_id")?);
        for i in 0..b.num_rows() {
            let owner = [(2u8, deal), (1, lead), (3, contact), (4, company)].into_iter().find(|(_, c)| c.is_valid(i)).map(|(k, c)| (k, c.value(i).to_string()));
            if let (true, Some(owner)) = (ids.is_valid(i), owner) {
                links.activity_owner.insert(ids.value(i).to_string(), owner);
            }
        }
    }
    for b in previous.tables.get(&Table::Leads).into_iter().flatten() {
        let lead = strings(b, 0).ok_or(MergeError::Shape("leads.lead_id is not text".into()))?;
        let at = Table::Leads
            .column_index("qualified_at")
            .and_then(|i| b.column(i).as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>())
            .ok_or(MergeError::Shape("leads.qualified_at is not a timestamp".into()))?;
        for i in 0..b.num_rows() {
            if lead.is_valid(i) && at.is_valid(i) {
                links.lead_qualified.insert(lead.value(i).to_string(), at.value(i));
            }
        }
    }
    let mut pairs = Vec::new();
    for b in previous.tables.get(&Table::Deals).into_iter().flatten() {
        let deal = Table::Deals.column_index("deal_id").and_then(|i| strings(b, i)).ok_or(MergeError::Shape("deals.deal_id is not text".into()))?;
        let lead = Table::Deals.column_index("lead_id").and_then(|i| strings(b, i)).ok_or(MergeError::Shape("deals.lead_id is not text".into()))?;
        for i in 0..b.num_rows() {
            if deal.is_valid(i) && lead.is_valid(i) {
                pairs.push((deal.value(i).parse::<u64>().unwrap_or(u64::MAX), deal.value(i).to_string(), lead.value(i).to_string()));
            }
        }
    }
    pairs.sort();
    for (_, deal, lead) in pairs {
        links.lead_deal.entry(lead).or_insert(deal);
    }
    Ok(())
}

/// The previous snapshot's tables with the fresh rows merged in. `alive` holds, for the
/// tables whose ids were scanned, every id the portal still has. Returns the dataset and
/// the number of rows dropped as deleted.
/// `qualified` is every lead's first qualification known (previous snapshot and this pull's
/// status history): a lead not read again, or read before its history row, gets it too.
pub(super) fn merge(
    previous: &Previous,
    fresh: Vec<TableBuilder>,
    changed_deals: &[String],
    alive: &BTreeMap<Table, HashSet<String>>,
    qualified: &std::collections::HashMap<String, i64>,
) -> Result<(Dataset, usize), MergeError> {
    let mut dataset = Dataset::default();
    let mut deleted = 0;
    let live_deals = alive.get(&Table::Deals);
    let changed: HashSet<&str> = changed_deals.iter().map(String::as_str).collect();
    for mut builder in fresh {
        let table = builder.table();
        let new = builder.finish();
        let old = previous.tables.get(&table).map(Vec::as_slice).unwrap_or(&[]);
        let (kept, dropped) = match rule(table) {
            Rule::Replace => (Vec::new(), 0),
            Rule::Upsert => {
                let fresh_keys = keys(std::slice::from_ref(&new), 0);
                let live = alive.get(&table);
                let (kept, _) = retain(old, 0, |k| k.is_none_or(|k| !fresh_keys.contains(k)))?;
                match live {
                    Some(live) => retain(&kept, 0, |k| k.is_some_and(|k| live.contains(k)))?,
                    None => (kept, 0),
                }
            }
            Rule::Append => match live_deals {
                Some(live) => retain(old, 0, |k| k.is_some_and(|k| live.contains(k)))?,
                None => (old.to_vec(), 0),
            },
            Rule::PerDeal => {
                let (kept, _) = retain(old, 0, |k| k.is_none_or(|k| !changed.contains(k)))?;
                match live_deals {
                    Some(live) => retain(&kept, 0, |k| k.is_some_and(|k| live.contains(k)))?,
                    None => (kept, 0),
                }
            }
        };
        deleted += dropped;
        let schema = table.schema();
        let entry = dataset.tables.entry(table).or_default();
        for b in kept.into_iter().filter(|b| b.num_rows() > 0) {
            entry.push(RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())?);
        }
        entry.push(new);
    }
    relink_converted_leads(&mut dataset)?;
    requalify_leads(&mut dataset, qualified)?;
    if let Some(live) = live_deals {
        // Deals read in this pull are alive even when the id scan (which runs beside the
        // reading) did not see them yet: a call on a deal created meanwhile keeps its link.
        let mut live = live.clone();
        live.extend(changed_deals.iter().cloned());
        unlink_deleted_deals(&mut dataset, &live)?;
    }
    Ok((dataset, deleted))
}

/// Calls keep their row when their deal is deleted, but no longer point at it (the portal
/// deletes the deal's activities, through which a call reaches its deal).
fn unlink_deleted_deals(dataset: &mut Dataset, live: &HashSet<String>) -> Result<(), MergeError> {
    let column = Table::Calls.column_index("deal_id").ok_or(MergeError::Shape("calls has no deal_id".into()))?;
    let Some(calls) = dataset.tables.get_mut(&Table::Calls) else { return Ok(()) };
    for batch in calls.iter_mut() {
        let deals = strings(batch, column).ok_or(MergeError::Shape("calls.deal_id is not text".into()))?;
        let kept: arrow::array::StringArray = deals.iter().map(|d| d.filter(|d| live.contains(*d))).collect();
        let mut columns = batch.columns().to_vec();
        columns[column] = Arc::new(kept);
        *batch = RecordBatch::try_new(batch.schema(), columns)?;
    }
    Ok(())
}

/// `leads.qualified_at`: the earliest of the row's own and the one `qualified` knows.
fn requalify_leads(dataset: &mut Dataset, qualified: &std::collections::HashMap<String, i64>) -> Result<(), MergeError> {
    let column = Table::Leads.column_index("qualified_at").ok_or(MergeError::Shape("leads has no qualified_at".into()))?;
    let Some(leads) = dataset.tables.get_mut(&Table::Leads) else { return Ok(()) };
    for batch in leads.iter_mut() {
        let ids = strings(batch, 0).ok_or(MergeError::Shape("leads.lead_id is not text".into()))?;
        let own = batch.column(column).as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>().ok_or(MergeError::Shape("leads.qualified_at is not a timestamp".into()))?;
        let timezone = own.timezone().map(Arc::<str>::from);
        let merged: arrow::array::TimestampMicrosecondArray = (0..batch.num_rows())
            .map(|i| {
                let known = ids.is_valid(i).then(|| qualified.get(ids.value(i)).copied()).flatten();
                let mine = own.is_valid(i).then(|| own.value(i));
                match (mine, known) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[column] = Arc::new(merged.with_timezone_opt(timezone));
        *batch = RecordBatch::try_new(batch.schema(), columns)?;
    }
    Ok(())
}

/// `leads.converted_deal_id` from the merged deals: a lead converted since, or whose deal
/// was deleted, is right without the lead itself having changed.
fn relink_converted_leads(dataset: &mut Dataset) -> Result<(), MergeError> {
    let deals = Previous { cursors: BTreeMap::new(), tables: BTreeMap::from([(Table::Deals, dataset.tables.get(&Table::Deals).cloned().unwrap_or_default())]) };
    let mut links = Links::default();
    previous_links(&deals, &mut links)?;
    let column = Table::Leads.column_index("converted_deal_id").ok_or(MergeError::Shape("leads has no converted_deal_id".into()))?;
    let Some(leads) = dataset.tables.get_mut(&Table::Leads) else { return Ok(()) };
    for batch in leads.iter_mut() {
        let ids = strings(batch, 0).ok_or(MergeError::Shape("leads.lead_id is not text".into()))?;
        let linked: arrow::array::StringArray = (0..batch.num_rows()).map(|i| if ids.is_valid(i) { links.lead_deal.get(ids.value(i)).map(String::as_str) } else { None }).collect();
        let mut columns = batch.columns().to_vec();
        columns[column] = Arc::new(linked);
        *batch = RecordBatch::try_new(batch.schema(), columns)?;
    }
    Ok(())
}
