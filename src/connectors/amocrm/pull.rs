//! One amoCRM pull, phase by phase: plan the lists (everything, or what changed since the
//! previous snapshot's cursor), read them side by side (then records restored or relinked,
//! by id, and the products on the deals read), reconcile deletions and restores, rebuild the
//! stage history, map and merge into the previous snapshot's rows, advance the cursors, and
//! report.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::client::{Client, ListSpec};
use super::mapping::{self, Context, Raw, Step};
use super::{AmoCrmConfig, AmoCrmError, CURSOR_ACCOUNT, CURSOR_FULL_SYNC, CURSOR_PHONE_KEY, CURSOR_SYNCED_TO, account, api_filter, describe, merge};
use crate::connectors::Pull;
use crate::connectors::http::HttpError;
use crate::connectors::sync::{Previous, SyncReport};

/// The lists one pull reads.
struct Plan {
    incremental: bool,
    cursors: BTreeMap<String, String>,
    phone_key: Vec<u8>,
    users: ListSpec,
    pipelines: ListSpec,
    loss_reasons: ListSpec,
    leads: ListSpec,
    contacts: ListSpec,
    companies: ListSpec,
    tasks: ListSpec,
    notes: [ListSpec; 3],
    stage_events: ListSpec,
    deletion_events: ListSpec,
    trash: ListSpec,
}

/// Phase 1: the lists, in full or after the cursor of `previous` (a snapshot of this
/// account, when a full pull is not due). `filtered`: the account has the paid API filter.
fn plan(cfg: &AmoCrmConfig, account_id: String, previous: Option<&Previous>, now: DateTime<Utc>, filtered: bool) -> Result<Plan, AmoCrmError> {
    let synced_to = previous.and_then(|p| p.cursors.get(CURSOR_SYNCED_TO)).and_then(|c| DateTime::parse_from_rfc3339(c).ok()).map(|c| c.with_timezone(&Utc));
    let full_due = previous
        .and_then(|p| p.cursors.get(CURSOR_FULL_SYNC))
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .is_none_or(|at| now.signed_duration_since(at.with_timezone(&Utc)).to_std().unwrap_or_default() >= cfg.full_sync_every);
    let since = synced_to.filter(|_| !full_due).map(|at| (at - cfg.overlap).timestamp());
    let incremental = previous.is_some() && since.is_some();
    let mut cursors = previous.filter(|_| incremental).map(|p| p.cursors.clone()).unwrap_or_default();
    cursors.insert(CURSOR_ACCOUNT.into(), account_id);
    let phone_key = crate::connectors::sync::phone_key(&mut cursors, CURSOR_PHONE_KEY)?;
    let until = now.timestamp();
    // Records: everything, or what changed since the cursor.
    let changed = |spec: ListSpec, paid_filter: bool| match since {
        None => spec.with("order[id]", "asc"),
        Some(from) if filtered || !paid_filter => spec.with("filter[updated_at][from]", from).with("filter[updated_at][to]", until).with("order[updated_at]", "asc"),
        // No API filter on this account: newest first, until the cursor.
        Some(from) => ListSpec { stop_below: Some(from), ..spec.with("order[updated_at]", "desc") },
    };
    let notes = |path: &'static str| changed(ListSpec::new(path, "notes", 250), false);
    let events = |types: &[&str]| {
        let mut spec = ListSpec::new("/api/v4/events", "events", 100);
        for (i, t) in types.iter().enumerate() {
            spec = spec.with(&format!("filter[type][{i}]"), t);
        }
        if let Some(from) = since {
            spec = spec.with("filter[created_at][from]", from);
        }
        spec.with("filter[created_at][to]", until)
    };
    Ok(Plan {
        // Reference lists: in full every time.
        users: ListSpec::new("/api/v4/users", "users", 250).with("with", "role,group"),
        pipelines: ListSpec::new("/api/v4/leads/pipelines", "pipelines", 250),
        loss_reasons: ListSpec::new("/api/v4/leads/loss_reasons", "loss_reasons", 250),
        leads: changed(ListSpec::new("/api/v4/leads", "leads", 250).with("with", LEAD_WITH), true),
        contacts: changed(ListSpec::new("/api/v4/contacts", "contacts", 250), true),
        companies: changed(ListSpec::new("/api/v4/companies", "companies", 250), true),
        // Tasks are read in full every time: amoCRM deletes a contact's or a company's tasks
        // with it and logs no event for them, so only the whole list says which are gone.
        // They sort by id, created_at or complete_till only (A-TASKS-2).
        tasks: ListSpec::new("/api/v4/tasks", "tasks", 250).with("order[id]", "asc"),
        notes: [notes("/api/v4/leads/notes"), notes("/api/v4/contacts/notes"), notes("/api/v4/companies/notes")],
        stage_events: events(&["lead_status_changed"]),
        deletion_events: events(&DELETION_EVENTS),
        trash: ListSpec::new("/api/v4/leads", "leads", 250).with("with", "only_deleted"),
        incremental,
        cursors,
        phone_key,
    })
}

/// What phase 2 read besides the records: the deletion events and the trash.
struct Deletions {
    events: Vec<Value>,
    trash: Vec<Value>,
}

/// Phase 2: every list side by side (the token bucket alone sets the pace); for an
/// incremental pull also the deletion events and the trash.
async fn read(client: &Client, plan: &Plan, account: Value, records: &mut BTreeMap<&'static str, usize>) -> Result<(Raw, Deletions), AmoCrmError> {
    let deletions = async {
        if plan.incremental {
            tokio::try_join!(client.list(&plan.deletion_events), client.list(&plan.trash))
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    let [lead_notes, contact_notes, company_notes] = &plan.notes;
    let (users, pipelines, loss_reasons, leads, contacts, companies, tasks, (n_leads, n_contacts, n_companies), status_events, (events, trash)) = tokio::try_join!(
        client.list(&plan.users),
        client.list(&plan.pipelines),
        client.list(&plan.loss_reasons),
        client.list(&plan.leads),
        client.list(&plan.contacts),
        client.list(&plan.companies),
        client.list(&plan.tasks),
        async { tokio::try_join!(client.list(lead_notes), client.list(contact_notes), client.list(company_notes)) },
        client.list(&plan.stage_events),
        deletions,
    )?;
    let mut raw = Raw {
        account,
        users,
        pipelines,
        loss_reasons,
        leads: dedupe(leads),
        contacts: dedupe(contacts),
        companies: dedupe(companies),
        tasks: dedupe(tasks),
        notes: Vec::new(),
        status_events,
        catalogs: Vec::new(),
        elements: HashMap::new(),
    };
    for (entity, list) in [("leads", n_leads), ("contacts", n_contacts), ("companies", n_companies)] {
        raw.notes.extend(dedupe(list).into_iter().map(|n| (entity, n)));
    }
    for (entity, n) in [
        ("users", raw.users.len()),
        ("pipelines", raw.pipelines.len()),
        ("loss reasons", raw.loss_reasons.len()),
        ("deals", raw.leads.len()),
        ("contacts", raw.contacts.len()),
        ("companies", raw.companies.len()),
        ("tasks", raw.tasks.len()),
        ("notes", raw.notes.len()),
        ("stage events", raw.status_events.len()),
        ("deletions", events.len() + trash.len()),
    ] {
        tracing::debug!(entity, records = n, "read");
        records.insert(entity, n);
    }
    Ok((raw, Deletions { events, trash }))
}

/// Phase 3: what was deleted since the cursor (delete events and the trash, unless the
/// record is back), and, read into `raw`: records restored from the trash (their
/// `updated_at` unchanged) by id with their notes and stage events, deals whose links
/// changed by id, then the products on every deal read.
async fn reconcile(client: &Client, plan: &Plan, raw: &mut Raw, deletions: &Deletions, records: &mut BTreeMap<&'static str, usize>) -> Result<merge::Deleted, AmoCrmError> {
    let (mut deleted, restored) = deleted_and_restored(&deletions.events);
    let in_trash: HashSet<String> = deletions.trash.iter().filter_map(|t| mapping::id(t, "id")).collect();
    deleted.deals.extend(in_trash.iter().filter(|d| !restored.deals.contains(*d)).cloned());
    if plan.incremental {
        read_restored(client, &restored, raw).await?;
        // A restored record's note may also have changed inside the window: once each.
        let notes = std::mem::take(&mut raw.notes);
        for entity in ["leads", "contacts", "companies"] {
            let of_entity: Vec<Value> = notes.iter().filter(|(e, _)| *e == entity).map(|(_, n)| n.clone()).collect();
            raw.notes.extend(dedupe(of_entity).into_iter().map(|n| (entity, n)));
        }
        read_deals_by_id(client, &relinked_deals(&deletions.events), raw).await?;
        records.insert("restored", restored.deals.len() + restored.contacts.len() + restored.companies.len());
    }
    read_products(client, raw).await?;
    records.insert("products", raw.elements.len());
    let present = |rows: &[Value]| -> HashSet<String> { rows.iter().filter_map(|r| mapping::id(r, "id")).collect() };
    let (fresh_deals, fresh_contacts, fresh_companies) = (present(&raw.leads), present(&raw.contacts), present(&raw.companies));
    deleted.deals.retain(|d| !fresh_deals.contains(d));
    deleted.contacts.retain(|c| !fresh_contacts.contains(c));
    deleted.companies.retain(|c| !fresh_companies.contains(c));
    Ok(deleted)
}

/// Each deal's steps through the stages.
type History = HashMap<String, Vec<Step>>;

/// Phase 4: every deal's stage history, oldest first: the previous snapshot's rows, the new
/// stage events, and a creation row for each deal without one (the stage before its first
/// move, else its current stage); deleted deals' go.
fn stage_history(previous: &Previous, raw: &Raw, deleted: &merge::Deleted) -> Result<(History, HashSet<String>), AmoCrmError> {
    let mut history = merge::previous_history(previous)?;
    let (requests_before, deals_before) = merge::previous_deals(previous)?;
    let had_history: HashSet<String> = history.keys().cloned().collect();
    let mut first_before: HashMap<String, (i64, (String, String))> = HashMap::new();
    for mapping::Move { deal, step, left } in mapping::event_steps(&raw.status_events) {
        if let Some(left) = left
            && first_before.get(&deal).is_none_or(|(at, _)| step.at < *at)
        {
            first_before.insert(deal.clone(), (step.at, (left.pipeline, left.stage)));
        }
        let steps = history.entry(deal).or_default();
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    let fresh_deals: HashSet<String> = raw.leads.iter().filter_map(|d| mapping::id(d, "id")).collect();
    for d in &raw.leads {
        let Some(deal) = mapping::id(d, "id") else { continue };
        if had_history.contains(&deal) {
            continue;
        }
        let created = mapping::seconds(d, "created_at").unwrap_or(0);
        let (pipeline, stage) = match first_before.get(&deal) {
            Some((_, before)) => before.clone(),
            None => {
                let pipeline = mapping::id(d, "pipeline_id").unwrap_or_default();
                let stage = mapping::stage_key(&pipeline, &mapping::id(d, "status_id").unwrap_or_default());
                (pipeline, stage)
            }
        };
        history.entry(deal).or_default().insert(0, Step { at: created, pipeline, stage, by: mapping::id(d, "created_by") });
    }
    let alive: HashSet<&String> = deals_before.iter().chain(fresh_deals.iter()).filter(|d| !deleted.deals.contains(*d)).collect();
    history.retain(|deal, _| alive.contains(deal));
    for steps in history.values_mut() {
        // The creation row first, then the moves in time order.
        steps.sort_by_key(|s| s.at);
    }
    Ok((history, requests_before))
}

/// Pulls the account through `client` (see `super::pull`).
pub(super) async fn pull(cfg: &AmoCrmConfig, previous: Option<Previous>, now: DateTime<Utc>, client: Client, host: &str) -> Result<Pull, AmoCrmError> {
    let started = std::time::Instant::now();
    let account = account(&client).await?;
    let account_id = mapping::id(&account, "id").ok_or_else(|| AmoCrmError::Shape { path: "/api/v4/account".into(), message: "no account id".into() })?;
    let label = describe(&account, host);
    let previous = previous.filter(|p| p.cursors.get(CURSOR_ACCOUNT) == Some(&account_id));
    let mut plan = plan(cfg, account_id, previous.as_ref(), now, api_filter(&account))?;
    let previous = previous.filter(|_| plan.incremental).unwrap_or_default();
    let mut records = BTreeMap::new();
    let (mut raw, deletions) = read(&client, &plan, account, &mut records).await?;
    let deleted = reconcile(&client, &plan, &mut raw, &deletions, &mut records).await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let (history, requests_before) = stage_history(&previous, &raw, &deleted)?;

    // Phase 5: map and merge.
    let ctx = Context { phone_key: std::mem::take(&mut plan.phone_key), currency: account_currency(&raw.account).unwrap_or_else(|| cfg.currency.clone()), history, requests_before };
    let (fresh, _) = mapping::map(&raw, &ctx)?;
    let fresh_deals: HashSet<String> = raw.leads.iter().filter_map(|d| mapping::id(d, "id")).collect();
    let (dataset, dropped) = merge::merge(&previous, fresh, &deleted, &fresh_deals)?;

    // Phase 6: the cursors (the start of this pull) and the report.
    let mut cursors = plan.cursors;
    cursors.insert(CURSOR_SYNCED_TO.into(), now.to_rfc3339_opts(SecondsFormat::Secs, true));
    if !plan.incremental {
        cursors.insert(CURSOR_FULL_SYNC.into(), now.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    let report = SyncReport::new(plan.incremental, records, client.http().stats(), dropped, read_seconds, started);
    let label = format!("amocrm: {label}, {} sync", if plan.incremental { "incremental" } else { "full" });
    Ok(Pull { dataset, streamed: None, taken_at: now, source_label: label, cursors, sync: Some(report) })
}

/// The events that delete a record or bring it back from the trash (A-EVENTS-4; tasks are
/// read in full).
const DELETION_EVENTS: [&str; 8] = ["lead_deleted", "lead_restored", "contact_deleted", "contact_restored", "company_deleted", "company_restored", "entity_linked", "entity_unlinked"];

/// What a deal is read with: its contacts, loss reason, source (id and name) and products.
const LEAD_WITH: &str = "contacts,loss_reason,source_id,source,catalog_elements";

/// Deals a link changed (a product or a contact linked or unlinked, A-EVENTS-9): a link
/// need not touch the deal's `updated_at`, so they are read again by id.
fn relinked_deals(events: &[Value]) -> HashSet<String> {
    events
        .iter()
        .filter(|e| matches!(e.get("type").and_then(Value::as_str), Some("entity_linked" | "entity_unlinked")) && e.get("entity_type").and_then(Value::as_str) == Some("lead"))
        .filter_map(|e| mapping::id(e, "entity_id"))
        .collect()
}

/// Reads deals by id (a 404: deleted since) unless already read, into `raw.leads`.
async fn read_deals_by_id(client: &Client, ids: &HashSet<String>, raw: &mut Raw) -> Result<(), AmoCrmError> {
    let fresh: HashSet<String> = raw.leads.iter().filter_map(|r| mapping::id(r, "id")).collect();
    let wanted: Vec<&String> = ids.iter().filter(|i| !fresh.contains(*i)).collect();
    raw.leads.extend(get_by_id(client, "/api/v4/leads", LEAD_WITH, &wanted).await?);
    Ok(())
}

/// Records by id, several requests in flight (the shared token bucket sets the pace); a
/// 204 or 404 (deleted since) is left out.
async fn get_by_id(client: &Client, path: &str, with: &str, ids: &[&String]) -> Result<Vec<Value>, AmoCrmError> {
    let query: Vec<(String, String)> = if with.is_empty() { Vec::new() } else { vec![("with".into(), with.into())] };
    let mut out = Vec::new();
    for chunk in ids.chunks(BY_ID_IN_FLIGHT) {
        let found = futures::future::try_join_all(chunk.iter().map(|id| get_one(client, path, &query, id))).await?;
        out.extend(found.into_iter().flatten());
    }
    Ok(out)
}

async fn get_one(client: &Client, path: &str, query: &[(String, String)], id: &str) -> Result<Option<Value>, AmoCrmError> {
    client.get(&format!("{path}/{id}"), query).await.or_else(|e| if is_not_found(&e) { Ok(None) } else { Err(e) })
}

/// Requests in flight when records are read one by one.
const BY_ID_IN_FLIGHT: usize = 6;

/// The products on the deals read: which catalogs hold products (one request), then the
/// linked elements of those, by id (50 a request; element pages may lack `next`, A-PAGE-7).
async fn read_products(client: &Client, raw: &mut Raw) -> Result<(), AmoCrmError> {
    let mut linked: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for d in &raw.leads {
        for link in d.get("_embedded").and_then(|e| e.get("catalog_elements")).and_then(Value::as_array).into_iter().flatten() {
            if let (Some(element), Some(catalog)) = (mapping::id(link, "id"), link.get("metadata").and_then(|m| mapping::id(m, "catalog_id"))) {
                linked.entry(catalog).or_default().insert(element);
            }
        }
    }
    if linked.is_empty() {
        return Ok(());
    }
    raw.catalogs = client.list(&ListSpec::new("/api/v4/catalogs", "catalogs", 250)).await?;
    let products: HashSet<String> = raw.catalogs.iter().filter(|c| c.get("type").and_then(Value::as_str) == Some("products")).filter_map(|c| mapping::id(c, "id")).collect();
    for (catalog, elements) in linked.iter().filter(|(c, _)| products.contains(*c)) {
        let elements: Vec<&String> = elements.iter().collect();
        for chunk in elements.chunks(50) {
            let mut spec = ListSpec::new(format!("/api/v4/catalogs/{catalog}/elements"), "elements", 250);
            spec.full_page_continues = true;
            for (i, id) in chunk.iter().enumerate() {
                spec = spec.with(&format!("filter[id][{i}]"), id);
            }
            for e in client.list(&spec).await? {
                if let Some(id) = mapping::id(&e, "id") {
                    raw.elements.insert(id, e);
                }
            }
        }
    }
    Ok(())
}

/// Records deleted (last event a deletion) and restored (last event a restore) since the
/// cursor, from the deletion events in time order.
fn deleted_and_restored(events: &[Value]) -> (merge::Deleted, merge::Deleted) {
    let mut ordered: Vec<(i64, String, &str, String)> = events
        .iter()
        .filter_map(|e| Some((e.get("created_at").and_then(Value::as_i64).unwrap_or(0), mapping::id(e, "id").unwrap_or_default(), e.get("type")?.as_str()?, mapping::id(e, "entity_id")?)))
        .collect();
    ordered.sort();
    let mut last: BTreeMap<(&str, String), bool> = BTreeMap::new();
    for (_, _, kind, id) in &ordered {
        let (entity, action) = kind.split_once('_').unwrap_or((kind, ""));
        last.insert((entity, id.clone()), action == "deleted");
    }
    let (mut deleted, mut restored) = (merge::Deleted::default(), merge::Deleted::default());
    for ((entity, id), gone) in last {
        let set = if gone { &mut deleted } else { &mut restored };
        match entity {
            "lead" => set.deals.insert(id),
            "contact" => set.contacts.insert(id),
            "company" => set.companies.insert(id),
            _ => false,
        };
    }
    (deleted, restored)
}

/// Reads the records restored from the trash (each by id: a list filter by id needs the
/// paid API filter), their notes (a filter notes always have) and, for deals, every stage
/// event (their history was dropped with them), into `raw`. Tasks are read in full anyway.
async fn read_restored(client: &Client, restored: &merge::Deleted, raw: &mut Raw) -> Result<(), AmoCrmError> {
    let fresh: HashSet<String> = raw.leads.iter().chain(&raw.contacts).chain(&raw.companies).filter_map(|r| mapping::id(r, "id")).collect();
    for (ids, path, with, entity) in [
        (&restored.deals, "/api/v4/leads", LEAD_WITH, "leads"),
        (&restored.contacts, "/api/v4/contacts", "", "contacts"),
        (&restored.companies, "/api/v4/companies", "", "companies"),
    ] {
        let ids: Vec<&String> = ids.iter().collect();
        let wanted: Vec<&String> = ids.iter().filter(|id| !fresh.contains(**id)).copied().collect();
        let records = get_by_id(client, path, with, &wanted).await?;
        match entity {
            "leads" => raw.leads.extend(records),
            "contacts" => raw.contacts.extend(records),
            _ => raw.companies.extend(records),
        }
        for chunk in ids.chunks(50) {
            let mut notes = ListSpec::new(notes_path(entity), "notes", 250).with("order[id]", "asc");
            for (i, id) in chunk.iter().enumerate() {
                notes = notes.with(&format!("filter[entity_id][{i}]"), id);
            }
            raw.notes.extend(client.list(&notes).await?.into_iter().map(|n| (notes_entity(entity), n)));
        }
        if entity == "leads" {
            // `filter[entity_id]` takes at most 10 ids, with exactly one `filter[entity]`.
            for chunk in ids.chunks(10) {
                let mut events = ListSpec::new("/api/v4/events", "events", 100).with("filter[entity]", "lead").with("filter[type][0]", "lead_status_changed");
                for (i, id) in chunk.iter().enumerate() {
                    events = events.with(&format!("filter[entity_id][{i}]"), id);
                }
                raw.status_events.extend(client.list(&events).await?);
            }
        }
    }
    raw.leads = dedupe(std::mem::take(&mut raw.leads));
    Ok(())
}

fn notes_path(entity: &str) -> &'static str {
    match entity {
        "leads" => "/api/v4/leads/notes",
        "contacts" => "/api/v4/contacts/notes",
        _ => "/api/v4/companies/notes",
    }
}

fn notes_entity(entity: &str) -> &'static str {
    match entity {
        "leads" => "leads",
        "contacts" => "contacts",
        _ => "companies",
    }
}

/// A 404 for one record: it went again (deleted after its restore).
fn is_not_found(e: &AmoCrmError) -> bool {
    matches!(e, AmoCrmError::Http(HttpError::Refused { message, .. }) if message.contains("(404"))
}

/// Keeps one row per id, the most recently updated.
pub(super) fn dedupe(rows: Vec<Value>) -> Vec<Value> {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Value> = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(id) = mapping::id(&row, "id") else {
            out.push(row);
            continue;
        };
        match by_id.get(&id) {
            Some(&i) => {
                let newer = |r: &Value| r.get("updated_at").and_then(Value::as_i64).unwrap_or(0);
                if newer(&row) >= newer(&out[i]) {
                    out[i] = row;
                }
            }
            None => {
                by_id.insert(id, out.len());
                out.push(row);
            }
        }
    }
    out
}

fn account_currency(account: &Value) -> Option<String> {
    account.get("currency").and_then(Value::as_str).filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic())).map(str::to_uppercase)
}
