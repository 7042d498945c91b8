//! The amoCRM / Kommo connector: an account's deals ("leads"), contacts, companies, tasks,
//! notes (calls) and stage events through API v4, into the canonical tables.
//!
//! - Every list is read page by page (250 rows, events 100) along `_links.next`; a 204 ends
//!   it. The lists are read side by side under the polite client's token bucket, which stays
//!   under the vendor's 7 requests per second.
//! - The token bucket is shared by every refresh of the account in the process. A 429 (or
//!   any answer naming a wait) pauses every request to the account for that wait; no
//!   number of 429s stops a sync, only the 403 block page does, at once.
//! - An incremental sync reads what changed since the previous snapshot's cursor (minus an
//!   overlap, for writes the API shows late): with the account's API filter where it has
//!   one, else a scan by `updated_at` descending that stops at the cursor. Deletions and
//!   restores come from the `*_deleted`/`*_restored` events and the trash; a restored record
//!   is read again by id with its notes and stage events. Tasks are read in full (a deleted
//!   contact's tasks go without an event). Every `full_sync_hours` the sync is a full one.
//!
//! docs/connectors/amocrm.md documents the setup, the mapping and the sync rules.

mod client;
mod mapping;
mod merge;
mod oauth;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use url::Url;

use client::{Auth, Client, ListSpec};
use mapping::{Context, Raw, Step};

use crate::connectors::http::{HttpError, PoliteClient, RetryPolicy};
use crate::connectors::{CheckReport as SourceCheck, Connector, ConnectorError, Pull};
pub use crate::connectors::sync::{Previous, SyncReport};
use crate::model::{RowError, Table};

pub use salespulse_input::config::sources::amocrm::{AmoCrmAuth, AmoCrmConfig, OAuthConfig};

/// An amoCRM failure, naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AmoCrmError {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("{0}")]
    Blocked(String),
    #[error("amoCRM {path} answered in an unexpected shape: {message}")]
    Shape { path: String, message: String },
    #[error("amoCRM {table} record {id}: {source}")]
    Row { table: &'static str, id: String, source: RowError },
    #[error("merging the changes into the previous snapshot: {0}")]
    Merge(#[from] crate::connectors::sync::MergeError),
    #[error("the system has no random source for the phone hash key: {0}")]
    NoRandom(#[from] getrandom::Error),
}

/// The tables an incremental pull reads from the previous snapshot.
pub const PREVIOUS_TABLES: &[Table] = crate::connectors::sync::CRM_TABLES;


const CURSOR_ACCOUNT: &str = "amocrm.account";
const CURSOR_PHONE_KEY: &str = "amocrm.phone_key";
const CURSOR_SYNCED_TO: &str = "amocrm.synced_to";
const CURSOR_FULL_SYNC: &str = "amocrm.full_sync_at";

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

/// The account's base URL, checked.
fn base_url(cfg: &AmoCrmConfig) -> Result<Url, AmoCrmError> {
    let bad = |message: String| AmoCrmError::Config { key: cfg.base_key.clone(), message };
    let mut url = Url::parse(&cfg.base_url).map_err(|_| bad(format!("'{}' is not a URL; expected https://SUBDOMAIN.amocrm.ru", cfg.base_url)))?;
    let host = url.host_str().unwrap_or("").to_string();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(bad(format!("must be an https:// address (got {}://{host})", url.scheme())));
    }
    url.set_path("/");
    url.set_query(None);
    Ok(url)
}

fn client_for(cfg: &AmoCrmConfig) -> Result<(Client, String), AmoCrmError> {
    let base = base_url(cfg)?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let policy = RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() };
    // One pace per account in this process: refreshes of it, back to back or side by side,
    // share the token bucket and any pause the account asked for.
    let http = PoliteClient::for_account(&format!("amocrm {host}"), cfg.rate, policy)?;
    let auth = match &cfg.auth {
        AmoCrmAuth::LongLived(secret) => {
            let key = secret.describe();
            let token = secret.resolve().map_err(|message| AmoCrmError::Config { key: key.clone(), message })?;
            Auth::LongLived { token, key }
        }
        AmoCrmAuth::OAuth(o) => {
            let app = oauth_app(o, &base)?;
            let tokens = app.load()?;
            Auth::OAuth { app: Box::new(app), tokens: tokio::sync::Mutex::new(tokens) }
        }
    };
    Ok((Client::new(base, auth, http), host))
}

fn oauth_app(o: &OAuthConfig, base: &Url) -> Result<oauth::OAuthApp, AmoCrmError> {
    let client_secret = o.client_secret.resolve().map_err(|message| AmoCrmError::Config { key: o.key.clone(), message })?;
    let mut token_url = base.clone();
    token_url.set_path("/oauth2/access_token");
    Ok(oauth::OAuthApp {
        token_url,
        client_id: o.client_id.clone(),
        client_secret,
        redirect_uri: o.redirect_uri.clone(),
        token_file: o.token_file.clone(),
        key: o.key.clone(),
    })
}

/// Exchanges an OAuth authorization code (from the integration's redirect, valid 20
/// minutes) for the first token pair, and writes it to the token file.
///
/// # Errors
/// The tenant does not use an OAuth integration, or amoCRM refuses the code.
pub async fn authorize(cfg: &AmoCrmConfig, code: &str) -> Result<PathBuf, AmoCrmError> {
    let AmoCrmAuth::OAuth(o) = &cfg.auth else {
        return Err(AmoCrmError::Config { key: cfg.base_key.clone(), message: "this tenant signs in with a long-lived token; an authorization code is for OAuth integrations (client_id, client_secret_env, redirect_uri, token_file)".into() });
    };
    let base = base_url(cfg)?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let http = PoliteClient::for_account(&format!("amocrm {host}"), cfg.rate, RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() })?;
    oauth_app(o, &base)?.exchange_code(&http, code.trim()).await?;
    Ok(o.token_file.clone())
}

/// What `salespulse check` found about an account.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub account: String,
    pub api_filter: bool,
    /// Users readable (the token's user is an admin), or why not.
    pub users: Result<usize, String>,
}

/// Probes the account: it answers to the token, whether it has API filtering, and whether
/// the token's user may read the users list.
///
/// # Errors
/// The address or token is wrong, or the account does not answer.
pub async fn check(cfg: &AmoCrmConfig) -> Result<CheckReport, AmoCrmError> {
    let (client, host) = client_for(cfg)?;
    let account = account(&client).await?;
    let users = client.list(&ListSpec::new("/api/v4/users", "users", 250)).await.map(|u| u.len()).map_err(|e| e.to_string());
    Ok(CheckReport { account: describe(&account, &host), api_filter: api_filter(&account), users })
}

async fn account(client: &Client) -> Result<Value, AmoCrmError> {
    let query = [("with".to_string(), "users_groups,task_types,datetime_settings,is_api_filter_enabled".to_string())];
    client.get("/api/v4/account", &query).await?.ok_or_else(|| AmoCrmError::Shape { path: "/api/v4/account".into(), message: "no content".into() })
}

fn describe(account: &Value, host: &str) -> String {
    let id = mapping::id(account, "id").unwrap_or_default();
    format!("{host} (account {id})")
}

fn api_filter(account: &Value) -> bool {
    account.get("is_api_filter_enabled").and_then(Value::as_bool).unwrap_or(false)
}

/// Keeps one row per id, the most recently updated.
fn dedupe(rows: Vec<Value>) -> Vec<Value> {
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

/// Pulls the account: in full, or incrementally on top of `previous` when it is a snapshot
/// of the same account and a full sync is not due. `progress` hears of each list as it is
/// read.
///
/// # Errors
/// See [`AmoCrmError`]; nothing is stored by a failed pull.
pub async fn pull(cfg: &AmoCrmConfig, previous: Option<Previous>, now: DateTime<Utc>, progress: crate::connectors::progress::ProgressHandle) -> Result<Pull, AmoCrmError> {
    let started = std::time::Instant::now();
    let (client, host) = client_for(cfg)?;
    let client = client.with_progress(progress);
    let account = account(&client).await?;
    let account_id = mapping::id(&account, "id").ok_or_else(|| AmoCrmError::Shape { path: "/api/v4/account".into(), message: "no account id".into() })?;
    let label = describe(&account, &host);
    let previous = previous.filter(|p| p.cursors.get(CURSOR_ACCOUNT) == Some(&account_id));
    let synced_to = previous.as_ref().and_then(|p| p.cursors.get(CURSOR_SYNCED_TO)).and_then(|c| DateTime::parse_from_rfc3339(c).ok()).map(|c| c.with_timezone(&Utc));
    let full_due = previous
        .as_ref()
        .and_then(|p| p.cursors.get(CURSOR_FULL_SYNC))
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .is_none_or(|at| now.signed_duration_since(at.with_timezone(&Utc)).to_std().unwrap_or_default() >= cfg.full_sync_every);
    let since = synced_to.filter(|_| !full_due).map(|at| (at - cfg.overlap).timestamp());
    let previous = previous.filter(|_| since.is_some());
    let incremental = previous.is_some();
    let mut cursors = previous.as_ref().map(|p| p.cursors.clone()).unwrap_or_default();
    cursors.insert(CURSOR_ACCOUNT.into(), account_id);
    let phone_key = crate::connectors::sync::phone_key(&mut cursors, CURSOR_PHONE_KEY)?;
    let until = now.timestamp();
    let filtered = api_filter(&account);

    // Reference lists: in full every time.
    let users_spec = ListSpec::new("/api/v4/users", "users", 250).with("with", "role,group");
    let pipelines_spec = ListSpec::new("/api/v4/leads/pipelines", "pipelines", 250);
    let reasons_spec = ListSpec::new("/api/v4/leads/loss_reasons", "loss_reasons", 250);
    // Records: everything, or what changed since the cursor.
    let changed = |spec: ListSpec, paid_filter: bool| match since {
        None => spec.with("order[id]", "asc"),
        Some(from) if filtered || !paid_filter => spec.with("filter[updated_at][from]", from).with("filter[updated_at][to]", until).with("order[updated_at]", "asc"),
        // No API filter on this account: newest first, until the cursor.
        Some(from) => ListSpec { stop_below: Some(from), ..spec.with("order[updated_at]", "desc") },
    };
    let leads_spec = changed(ListSpec::new("/api/v4/leads", "leads", 250).with("with", LEAD_WITH), true);
    let contacts_spec = changed(ListSpec::new("/api/v4/contacts", "contacts", 250), true);
    let companies_spec = changed(ListSpec::new("/api/v4/companies", "companies", 250), true);
    // Tasks are read in full every time: amoCRM deletes a contact's or a company's tasks
    // with it and logs no event for them, so only the whole list says which are gone. They
    // sort by id, created_at or complete_till only (A-TASKS-2).
    let tasks_spec = ListSpec::new("/api/v4/tasks", "tasks", 250).with("order[id]", "asc");
    let notes = |path: &'static str| changed(ListSpec::new(path, "notes", 250), false);
    let (lead_notes, contact_notes, company_notes) = (notes("/api/v4/leads/notes"), notes("/api/v4/contacts/notes"), notes("/api/v4/companies/notes"));
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
    let status_spec = events(&["lead_status_changed"]);
    let deleted_spec = events(&DELETION_EVENTS);
    let trash_spec = ListSpec::new("/api/v4/leads", "leads", 250).with("with", "only_deleted");
    let deletions = async {
        if incremental {
            tokio::try_join!(client.list(&deleted_spec), client.list(&trash_spec))
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    // Side by side: the token bucket alone sets the pace.
    let (users, pipelines, loss_reasons, leads, contacts, companies, tasks, (n_leads, n_contacts, n_companies), status_events, (deleted_events, trash)) = tokio::try_join!(
        client.list(&users_spec),
        client.list(&pipelines_spec),
        client.list(&reasons_spec),
        client.list(&leads_spec),
        client.list(&contacts_spec),
        client.list(&companies_spec),
        client.list(&tasks_spec),
        async { tokio::try_join!(client.list(&lead_notes), client.list(&contact_notes), client.list(&company_notes)) },
        client.list(&status_spec),
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
    let mut records = BTreeMap::new();
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
        ("deletions", deleted_events.len() + trash.len()),
    ] {
        tracing::debug!(account = %label, entity, records = n, "read");
        records.insert(entity, n);
    }

    // Deleted since the cursor: delete events and the trash, unless the record is back;
    // records restored from the trash (their `updated_at` unchanged) are read again by id,
    // with their notes, tasks and stage events.
    let (mut deleted, restored) = deleted_and_restored(&deleted_events);
    let in_trash: HashSet<String> = trash.iter().filter_map(|t| mapping::id(t, "id")).collect();
    deleted.deals.extend(in_trash.iter().filter(|d| !restored.deals.contains(*d)).cloned());
    if incremental {
        read_restored(&client, &restored, &mut raw).await?;
        read_deals_by_id(&client, &relinked_deals(&deleted_events), &mut raw).await?;
        records.insert("restored", restored.deals.len() + restored.contacts.len() + restored.companies.len());
    }
    read_products(&client, &mut raw).await?;
    records.insert("products", raw.elements.len());
    let read_seconds = started.elapsed().as_secs_f64();
    let present = |rows: &[Value]| -> HashSet<String> { rows.iter().filter_map(|r| mapping::id(r, "id")).collect() };
    let (fresh_deals, fresh_contacts, fresh_companies) = (present(&raw.leads), present(&raw.contacts), present(&raw.companies));
    deleted.deals.retain(|d| !fresh_deals.contains(d));
    deleted.contacts.retain(|c| !fresh_contacts.contains(c));
    deleted.companies.retain(|c| !fresh_companies.contains(c));

    // The stage history: the previous rows, the new events, a first row for new deals.
    let previous = previous.unwrap_or_default();
    let mut history = merge::previous_history(&previous).map_err(AmoCrmError::Merge)?;
    let (requests_before, deals_before) = merge::previous_deals(&previous).map_err(AmoCrmError::Merge)?;
    let had_history: HashSet<String> = history.keys().cloned().collect();
    let mut first_before: HashMap<String, (i64, (String, String))> = HashMap::new();
    for (deal, step, before) in mapping::event_steps(&raw.status_events) {
        if let Some(before) = before
            && first_before.get(&deal).is_none_or(|(at, _)| step.at < *at)
        {
            first_before.insert(deal.clone(), (step.at, before));
        }
        let steps = history.entry(deal).or_default();
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
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

    let ctx = Context { phone_key, currency: account_currency(&raw.account).unwrap_or_else(|| cfg.currency.clone()), history, requests_before };
    let (fresh, _) = mapping::map(&raw, &ctx)?;
    let fresh_deals: HashSet<String> = raw.leads.iter().filter_map(|d| mapping::id(d, "id")).collect();
    let (dataset, dropped) = merge::merge(&previous, fresh, &deleted, &fresh_deals).map_err(AmoCrmError::Merge)?;

    cursors.insert(CURSOR_SYNCED_TO.into(), now.to_rfc3339_opts(SecondsFormat::Secs, true));
    if !incremental {
        cursors.insert(CURSOR_FULL_SYNC.into(), now.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    let stats = client.http().stats();
    let report = SyncReport {
        incremental,
        records,
        requests: stats.requests(),
        retries: stats.retries(),
        answers: stats.answers(),
        reconciled: incremental,
        deleted: dropped,
        read_seconds,
        seconds: started.elapsed().as_secs_f64(),
    };
    let label = format!("amocrm: {label}, {} sync", if incremental { "incremental" } else { "full" });
    Ok(Pull { dataset, taken_at: now, source_label: label, cursors, sync: Some(report) })
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
    let query = vec![("with".to_string(), LEAD_WITH.to_string())];
    for id in ids.iter().filter(|i| !fresh.contains(*i)) {
        if let Some(lead) = client.get(&format!("/api/v4/leads/{id}"), &query).await.or_else(|e| if is_not_found(&e) { Ok(None) } else { Err(e) })? {
            raw.leads.push(lead);
        }
    }
    Ok(())
}

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
        for id in &ids {
            let query: Vec<(String, String)> = if with.is_empty() { Vec::new() } else { vec![("with".into(), with.into())] };
            let Some(record) = client.get(&format!("{path}/{id}"), &query).await.or_else(|e| if is_not_found(&e) { Ok(None) } else { Err(e) })? else { continue };
            if fresh.contains(*id) {
                continue;
            }
            match entity {
                "leads" => raw.leads.push(record),
                "contacts" => raw.contacts.push(record),
                _ => raw.companies.push(record),
            }
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

/// An amoCRM/Kommo account as a [`Connector`].
#[derive(Debug, Clone)]
pub struct AmoCrmConnector {
    pub config: Box<AmoCrmConfig>,
}

#[async_trait::async_trait]
impl Connector for AmoCrmConnector {
    fn id(&self) -> &'static str {
        "amocrm"
    }

    fn builds_on(&self) -> &'static [Table] {
        PREVIOUS_TABLES
    }

    async fn check(&self) -> Result<SourceCheck, ConnectorError> {
        let report = check(&self.config).await?;
        let filter = if report.api_filter { "with API filtering" } else { "without API filtering (incremental syncs scan by update time)" };
        let mut out = SourceCheck { facts: vec![format!("amoCRM account {} answers, {filter}", report.account)], ..Default::default() };
        match report.users {
            Ok(n) => out.facts.push(format!("{n} users readable")),
            Err(e) => out.problems.push(format!("the users list is not readable ({e}); the token must belong to an account administrator")),
        }
        Ok(out)
    }

    async fn pull(&self, previous: Option<Previous>, now: DateTime<Utc>, progress: crate::connectors::progress::ProgressHandle) -> Result<Pull, ConnectorError> {
        Ok(pull(&self.config, previous, now, progress).await?)
    }
}

fn account_currency(account: &Value) -> Option<String> {
    account.get("currency").and_then(Value::as_str).filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic())).map(str::to_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use crate::connectors::http::RateLimit;
    use std::time::Duration;

    fn cfg(url: &str) -> AmoCrmConfig {
        AmoCrmConfig {
            base_url: url.into(),
            base_key: "tenants[0] (acme).source.account".into(),
            auth: AmoCrmAuth::LongLived(SecretSource::Inline { key: "tenants[0] (acme).source.token".into(), value: "t0k3n".into() }),
            rate: RateLimit { requests_per_second: 6.5, burst: 1 },
            overlap: Duration::from_secs(600),
            full_sync_every: Duration::from_secs(7 * 86400),
            timeout: Duration::from_secs(60),
            currency: "RUB".into(),
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(base_url(&cfg("https://acme.amocrm.ru/api/v4/")).unwrap().as_str(), "https://acme.amocrm.ru/");
        assert!(base_url(&cfg("http://127.0.0.1:9000")).is_ok());
        for bad in ["http://acme.amocrm.ru", "acme", "ftp://x"] {
            let e = base_url(&cfg(bad)).unwrap_err().to_string();
            assert!(e.starts_with("tenants[0] (acme).source.account: "), "{e}");
        }
    }

    #[test]
    fn duplicates_keep_the_latest_update() {
        let rows = vec![serde_json::json!({"id": 1, "updated_at": 5, "v": "old"}), serde_json::json!({"id": 2}), serde_json::json!({"id": 1, "updated_at": 9, "v": "new"})];
        let out = dedupe(rows);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["v"], "new");
    }
}
