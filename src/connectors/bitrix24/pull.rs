//! One Bitrix24 pull, phase by phase: plan the lists (everything, or what changed since the
//! previous snapshot's cursors), read them (product rows by deal-id arrays after the deals),
//! reconcile deletions (an id scan on every incremental pull, side by side with the reading),
//! advance the cursors, map and merge into the previous snapshot's rows, and report.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::client::{Client, ListSpec};
use super::mapping::{self, Links, Mapping, Raw};
use super::{Bitrix24Config, Bitrix24Error, CURSOR_PHONE_KEY, CURSOR_PORTAL, merge};
use crate::connectors::Pull;
use crate::connectors::sync::{Previous, SyncReport};
use crate::model::{Dataset, Table};

/// Deal ids per `=ownerId` array of a product-row command (50 arrays per `batch`).
const OWNERS_PER_COMMAND: usize = 50;

/// The modification cursor of an entity: the field it is filtered on and the key in the
/// manifest.
struct Changed {
    entity: &'static str,
    filter: &'static str,
    field: &'static str,
}

const DEALS: Changed = Changed { entity: "deals", filter: ">=DATE_MODIFY", field: "DATE_MODIFY" };
const LEADS: Changed = Changed { entity: "leads", filter: ">=DATE_MODIFY", field: "DATE_MODIFY" };
const CONTACTS: Changed = Changed { entity: "contacts", filter: ">=DATE_MODIFY", field: "DATE_MODIFY" };
const COMPANIES: Changed = Changed { entity: "companies", filter: ">=DATE_MODIFY", field: "DATE_MODIFY" };
const ACTIVITIES: Changed = Changed { entity: "activities", filter: ">=LAST_UPDATED", field: "LAST_UPDATED" };
const TASKS: Changed = Changed { entity: "tasks", filter: ">=CHANGED_DATE", field: "changedDate" };

/// The lists one pull reads, each with its filter and cursor.
struct Plan {
    incremental: bool,
    cursors: BTreeMap<String, String>,
    phone_key: Vec<u8>,
    users: ListSpec,
    deals: ListSpec,
    leads: ListSpec,
    contacts: ListSpec,
    companies: ListSpec,
    activities: ListSpec,
    /// All tasks' fields, without a change filter (the id scan starts from it).
    all_tasks: ListSpec,
    tasks: ListSpec,
    deal_history: ListSpec,
    lead_history: ListSpec,
    calls: ListSpec,
}

/// Phase 1: the lists, in full or after the cursors of `previous` (a snapshot of this
/// portal), re-reading `overlap` before each modification cursor.
fn plan(cfg: &Bitrix24Config, portal: &str, previous: Option<&Previous>) -> Result<Plan, Bitrix24Error> {
    let incremental = previous.is_some();
    let mut cursors = previous.map(|p| p.cursors.clone()).unwrap_or_default();
    cursors.insert(CURSOR_PORTAL.into(), portal.to_string());
    let phone_key = crate::connectors::sync::phone_key(&mut cursors, CURSOR_PHONE_KEY)?;
    let since = |c: &Changed| -> Option<String> {
        let cursor = cursors.get(&format!("bitrix24.{}", c.entity))?;
        let at = DateTime::parse_from_rfc3339(cursor).ok()?.with_timezone(&Utc) - cfg.overlap;
        Some(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    };
    let changed = |c: &Changed, spec: ListSpec| match (incremental, since(c)) {
        (true, Some(from)) => spec.filter(c.filter, json!(from)),
        _ => spec,
    };
    // Append-only entities: after the last id seen.
    let after_id = |entity: &str| -> Option<String> { if incremental { cursors.get(&format!("bitrix24.{entity}.id")).cloned() } else { None } };
    let history = |entity_type: i64, cursor: &str| {
        let mut spec = ListSpec::crm("crm.stagehistory.list").with("entityTypeId", json!(entity_type));
        spec.root = Some("items");
        spec.start_after = after_id(cursor);
        spec
    };
    let mut calls = ListSpec { filter_param: "FILTER", ..ListSpec::crm("voximplant.statistic.get") };
    calls.params = serde_json::Map::new();
    calls = calls.with("SORT", json!("ID")).with("ORDER", json!("ASC"));
    calls.start_after = after_id("calls");
    let all_tasks = ListSpec { method: "tasks.task.list", root: Some("tasks"), id_field: "id", keyset_key: ">ID", filter_param: "filter", filter: Default::default(), params: Default::default(), start_after: None }
        .with("order", json!({"ID": "asc"}))
        .with("select", json!(["ID", "TITLE", "STATUS", "CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE", "DATE_START", "DEADLINE", "RESPONSIBLE_ID", "CREATED_BY", "UF_CRM_TASK"]));
    let crm_select = json!(["*", "UF_*"]);
    let party_select = json!(["*", "UF_*", "PHONE", "EMAIL"]);
    Ok(Plan {
        users: ListSpec { method: "user.get", root: None, id_field: "ID", keyset_key: ">ID", filter_param: "FILTER", filter: Default::default(), params: Default::default(), start_after: None }
            .with("ADMIN_MODE", json!(true))
            .with("SORT", json!("ID"))
            .with("ORDER", json!("ASC"))
            .filter("USER_TYPE", json!("employee")),
        // The amount in the account currency as the portal keeps it: not listed by
        // `crm.deal.fields`, so asked for by name.
        deals: changed(&DEALS, ListSpec::crm("crm.deal.list").with("select", json!(["*", "UF_*", "OPPORTUNITY_ACCOUNT", "ACCOUNT_CURRENCY_ID"]))),
        leads: changed(&LEADS, ListSpec::crm("crm.lead.list").with("select", crm_select)),
        contacts: changed(&CONTACTS, ListSpec::crm("crm.contact.list").with("select", party_select.clone())),
        companies: changed(&COMPANIES, ListSpec::crm("crm.company.list").with("select", party_select)),
        activities: changed(&ACTIVITIES, ListSpec::crm("crm.activity.list").with("select", json!(["*"]))),
        tasks: changed(&TASKS, all_tasks.clone()),
        all_tasks,
        deal_history: history(2, "deal_stage_history"),
        lead_history: history(1, "lead_stage_history"),
        calls,
        incremental,
        cursors,
        phone_key,
    })
}

/// Phase 2: every list. Reference lists by plain paging; every other list's first page in
/// one `batch`, then the lists side by side (the token bucket alone sets the pace, and one
/// list's wait for an answer is another's turn to ask); the product rows of the deals read
/// follow the deals, by `=ownerId` arrays (the portal requires `=ownerType` and `=ownerId`).
async fn read(client: &Client, plan: &Plan, records: &mut BTreeMap<&'static str, usize>) -> Result<Raw, Bitrix24Error> {
    let mut raw = Raw {
        departments: client.list_paged("department.get", None, json!({"sort": "ID", "order": "ASC"})).await?,
        categories: client.list_paged("crm.category.list", Some("categories"), json!({"entityTypeId": 2})).await?,
        statuses: client.list_paged("crm.status.list", None, json!({"order": {"ENTITY_ID": "ASC", "SORT": "ASC"}})).await?,
        currencies: client.list_paged("crm.currency.list", None, json!({})).await?,
        ..Raw::default()
    };
    let p = plan;
    let specs = [&p.users, &p.deals, &p.leads, &p.contacts, &p.companies, &p.activities, &p.tasks, &p.deal_history, &p.lead_history, &p.calls];
    let mut firsts = client.first_pages(&specs).await?.into_iter();
    let mut first = || firsts.next().unwrap_or_default();
    let (users, deals, leads, contacts, companies, activities, tasks, deal_history, lead_history, calls) =
        (first(), first(), first(), first(), first(), first(), first(), first(), first(), first());
    // Product rows follow the deals (the portal wants their ids) while the other lists are
    // still being read.
    let deals_then_rows = async {
        let deals = client.list_rest(&p.deals, deals).await?;
        let rows = ListSpec { method: "crm.item.productrow.list", root: Some("productRows"), id_field: "id", keyset_key: ">id", filter_param: "filter", filter: Default::default(), params: Default::default(), start_after: None }
            .with("order", json!({"id": "ASC"}))
            .filter("=ownerType", json!("D"));
        let deal_ids: Vec<String> = deals.iter().filter_map(|d| mapping::id(d, "ID")).collect();
        let owner_lists: Vec<ListSpec> = deal_ids.chunks(OWNERS_PER_COMMAND).map(|chunk| rows.clone().filter("=ownerId", json!(chunk))).collect();
        let product_rows = client.list_many(&owner_lists).await?;
        Ok::<_, Bitrix24Error>((deals, product_rows))
    };
    let ((deals, product_rows), users, leads, contacts, companies, activities, tasks, deal_history, lead_history, calls) = tokio::try_join!(
        deals_then_rows,
        client.list_rest(&p.users, users),
        client.list_rest(&p.leads, leads),
        client.list_rest(&p.contacts, contacts),
        client.list_rest(&p.companies, companies),
        client.list_rest(&p.activities, activities),
        client.list_rest(&p.tasks, tasks),
        client.list_rest(&p.deal_history, deal_history),
        client.list_rest(&p.lead_history, lead_history),
        client.list_rest(&p.calls, calls),
    )?;
    (raw.users, raw.deals, raw.product_rows, raw.leads, raw.contacts, raw.companies, raw.activities, raw.tasks, raw.deal_history, raw.lead_history, raw.calls) =
        (users, deals, product_rows, leads, contacts, companies, activities, tasks, deal_history, lead_history, calls);
    for (entity, n) in [
        ("departments", raw.departments.len()),
        ("pipelines, stages, sources, currencies", raw.categories.len() + raw.statuses.len() + raw.currencies.len()),
        ("users", raw.users.len()),
        ("deals", raw.deals.len()),
        ("leads", raw.leads.len()),
        ("contacts", raw.contacts.len()),
        ("companies", raw.companies.len()),
        ("activities", raw.activities.len()),
        ("tasks", raw.tasks.len()),
        ("deal stage history", raw.deal_history.len()),
        ("lead status history", raw.lead_history.len()),
        ("calls", raw.calls.len()),
        ("product rows", raw.product_rows.len()),
    ] {
        tracing::debug!(entity, records = n, requests = client.http().stats().requests(), "read");
        records.insert(entity, n);
    }
    Ok(raw)
}

/// Phase 3: the ids the portal still has, for an incremental pull (list methods never
/// return tombstones): an id-only keyset scan of each record list (2,500 ids a request), so
/// no record deleted before the pull began is served. Empty for a full pull.
async fn reconcile(client: &Client, plan: &Plan) -> Result<BTreeMap<Table, HashSet<String>>, Bitrix24Error> {
    let mut alive = BTreeMap::new();
    if !plan.incremental {
        return Ok(alive);
    }
    let ids = |spec: ListSpec| async move {
        let field = if spec.id_field == "id" { "id" } else { "ID" };
        let rows = client.list_all(&spec.with("select", json!(["ID"]))).await?;
        Ok::<HashSet<String>, Bitrix24Error>(rows.iter().filter_map(|r| mapping::id(r, field)).collect())
    };
    let mut task_ids = plan.all_tasks.clone();
    task_ids.params.remove("select");
    let (deals, leads, contacts, companies, activities, tasks) = tokio::try_join!(
        ids(ListSpec::crm("crm.deal.list")),
        ids(ListSpec::crm("crm.lead.list")),
        ids(ListSpec::crm("crm.contact.list")),
        ids(ListSpec::crm("crm.company.list")),
        ids(ListSpec::crm("crm.activity.list")),
        ids(task_ids),
    )?;
    alive.extend([(Table::Deals, deals), (Table::Leads, leads), (Table::Contacts, contacts), (Table::Companies, companies), (Table::Activities, activities), (Table::Tasks, tasks)]);
    Ok(alive)
}

/// Phase 4: the cursors move to the newest change seen (the portal's clock, not ours) and
/// to the last id of each append-only list; a cursor never moves back.
fn advance_cursors(cursors: &mut BTreeMap<String, String>, raw: &Raw, timezone: Tz, now: DateTime<Utc>) {
    let times = Mapping { timezone, loss_reason_field: None, phone_key: Vec::new() };
    for (c, list) in [(&DEALS, &raw.deals), (&LEADS, &raw.leads), (&CONTACTS, &raw.contacts), (&COMPANIES, &raw.companies), (&ACTIVITIES, &raw.activities), (&TASKS, &raw.tasks)] {
        if let Some(newest) = list.iter().filter_map(|r| mapping::time(r, c.field, &times)).max() {
            let key = format!("bitrix24.{}", c.entity);
            let newest = DateTime::<Utc>::from_timestamp_micros(newest).unwrap_or(now);
            let keep = cursors.get(&key).and_then(|old| DateTime::parse_from_rfc3339(old).ok()).is_some_and(|old| old.with_timezone(&Utc) > newest);
            if !keep {
                cursors.insert(key, newest.to_rfc3339_opts(SecondsFormat::Secs, true));
            }
        }
    }
    for (entity, list) in [("deal_stage_history", &raw.deal_history), ("lead_stage_history", &raw.lead_history), ("calls", &raw.calls)] {
        if let Some(max) = list.iter().filter_map(|r| mapping::id(r, "ID")).filter_map(|i| i.parse::<u64>().ok()).max() {
            cursors.insert(format!("bitrix24.{entity}.id"), max.to_string());
        }
    }
}

/// Phase 5: the records into the canonical tables, merged into the previous snapshot's rows
/// (changed records replace theirs, deleted ones go with what hangs on them). Returns the
/// dataset and the rows dropped as deleted.
fn map_and_merge(raw: &Raw, previous: Option<&Previous>, m: &Mapping, alive: &BTreeMap<Table, HashSet<String>>) -> Result<(Dataset, usize), Bitrix24Error> {
    let mut links = Links::default();
    if let Some(p) = previous {
        merge::previous_links(p, &mut links)?;
    }
    links.add(raw, m);
    let fresh = mapping::map(raw, &links, m)?;
    let changed_deals: Vec<String> = raw.deals.iter().filter_map(|d| mapping::id(d, "ID")).collect();
    Ok(match previous {
        Some(p) => merge::merge(p, fresh, &changed_deals, alive, &links.lead_qualified)?,
        None => {
            let mut dataset = Dataset::default();
            for builder in fresh {
                dataset.push(builder);
            }
            (dataset, 0)
        }
    })
}

/// Pulls the portal: in full, or incrementally on top of `previous` when it is a snapshot of
/// the same portal. `progress` hears of each list as it is read.
///
/// # Errors
/// See [`Bitrix24Error`]; nothing is stored by a failed pull.
pub(super) async fn pull(cfg: &Bitrix24Config, timezone: Tz, previous: Option<Previous>, now: DateTime<Utc>, client: Client, portal: String) -> Result<Pull, Bitrix24Error> {
    let started = std::time::Instant::now();
    let previous = previous.filter(|p| p.cursors.get(CURSOR_PORTAL) == Some(&portal));
    let mut plan = plan(cfg, &portal, previous.as_ref())?;
    let mut records = BTreeMap::new();
    // The id scan runs beside the reading: a record created meanwhile is kept (fresh rows
    // are never dropped), one deleted meanwhile may stay until the next refresh.
    let (raw, alive) = tokio::try_join!(read(&client, &plan, &mut records), reconcile(&client, &plan))?;
    let read_seconds = started.elapsed().as_secs_f64();
    advance_cursors(&mut plan.cursors, &raw, timezone, now);
    let m = Mapping { timezone, loss_reason_field: cfg.loss_reason_field.clone(), phone_key: std::mem::take(&mut plan.phone_key) };
    let (dataset, deleted) = map_and_merge(&raw, previous.as_ref(), &m, &alive)?;
    // Phase 6: the report.
    let report = SyncReport::new(plan.incremental, records, client.http().stats(), deleted, read_seconds, started);
    let label = format!("bitrix24: {portal}, {} sync", if plan.incremental { "incremental" } else { "full" });
    Ok(Pull { dataset, streamed: None, taken_at: Utc::now(), source_label: label, cursors: plan.cursors, sync: Some(report) })
}
