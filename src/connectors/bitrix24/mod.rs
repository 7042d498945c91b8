//! The Bitrix24 connector: a portal's CRM, users, telephony and tasks through an incoming
//! webhook, into the canonical tables.
//!
//! - A full sync reads every entity by keyset chains in `batch` (2,500 rows per request)
//!   under the polite client's token bucket.
//! - An incremental sync reads what changed since the cursors of the previous snapshot's
//!   manifest (minus an overlap window), upserts it into the previous snapshot's rows, and
//!   every `reconcile_hours` scans ids only to drop deleted records.
//! - Small reference lists (users, departments, pipelines, stages, sources, currencies) are
//!   read in full every time.
//!
//! docs/connectors/bitrix24.md documents the mapping and the sync rules.

mod client;
mod mapping;
mod merge;
mod oauth;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::json;
use url::Url;

use client::{Client, ListSpec};
use mapping::{Links, Mapping, Raw};

use crate::config::SecretSource;
use crate::connectors::http::{HttpError, PoliteClient, RetryPolicy};
use crate::connectors::progress::ProgressHandle;
use crate::connectors::{CheckReport as SourceCheck, Connector, ConnectorError, Pull};
pub use crate::connectors::sync::{Previous, SyncReport};
use crate::model::{Dataset, RowError, Table};

pub use salespulse_input::config::sources::bitrix24::{Bitrix24Auth, Bitrix24Config, OAuthConfig};

/// A Bitrix24 failure, naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Bitrix24Error {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("Bitrix24 {method} answered in an unexpected shape: {message}")]
    Shape { method: String, message: String },
    #[error("Bitrix24 {table} record {id}: {source}")]
    Row { table: &'static str, id: String, source: RowError },
    #[error("merging the changes into the previous snapshot: {0}")]
    Merge(#[from] crate::connectors::sync::MergeError),
    #[error("the system has no random source for the phone hash key: {0}")]
    NoRandom(#[from] getrandom::Error),
}

/// The tables an incremental pull reads from the previous snapshot.
pub const PREVIOUS_TABLES: &[Table] = crate::connectors::sync::CRM_TABLES;


const CURSOR_PORTAL: &str = "bitrix24.portal";
const CURSOR_PHONE_KEY: &str = "bitrix24.phone_key";
/// Deal ids per `=ownerId` array of a product-row command (50 arrays per `batch`).
const OWNERS_PER_COMMAND: usize = 50;

/// The webhook, checked: its base URL (ending in `/`), the portal and user for labels.
struct Webhook {
    base: Url,
    portal: String,
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

fn webhook(secret: &SecretSource) -> Result<Webhook, Bitrix24Error> {
    let key = secret.describe();
    let bad = |message: String| Bitrix24Error::Config { key: key.clone(), message };
    let text = secret.resolve().map_err(bad)?;
    let mut url = Url::parse(&text).map_err(|_| bad("is not a URL; expected the webhook URL https://PORTAL/rest/USER/CODE/".into()))?;
    let host = url.host_str().unwrap_or("").to_string();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(bad(format!("must be an https:// URL (got {}://{host}/…)", url.scheme())));
    }
    let segments: Vec<String> = url.path_segments().map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    // https://PORTAL/rest/USER/CODE/ (a method name pasted after it is dropped).
    let rest = segments.iter().position(|s| s == "rest");
    let (user, code) = match rest.map(|i| (segments.get(i + 1), segments.get(i + 2))) {
        Some((Some(user), Some(code))) if user.chars().all(|c| c.is_ascii_digit()) && !code.contains('.') => (user.clone(), code.clone()),
        _ => return Err(bad(format!("expected https://{host}/rest/USER_ID/CODE/ (the webhook URL Bitrix24 shows), got a URL with path /{}/…", segments.first().map_or("", String::as_str)))),
    };
    let prefix: Vec<&str> = segments[..rest.unwrap_or(0)].iter().map(String::as_str).collect();
    let mut path = String::from("/");
    for p in prefix {
        path.push_str(p);
        path.push('/');
    }
    url.set_path(&format!("{path}rest/{user}/{code}/"));
    url.set_query(None);
    let portal = format!("{}{}", host, url.port().map(|p| format!(":{p}")).unwrap_or_default());
    Ok(Webhook { base: url, portal: format!("{portal} (webhook of user {user})") })
}

fn oauth_endpoint(cfg: &OAuthConfig) -> Result<(client::Endpoint, String), Bitrix24Error> {
    let bad = |message: String| Bitrix24Error::Config { key: cfg.key.clone(), message };
    let https = |text: &str, what: &str| -> Result<Url, Bitrix24Error> {
        let url = Url::parse(text).map_err(|_| bad(format!("{what} '{text}' is not a URL")))?;
        let host = url.host_str().unwrap_or("").to_string();
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
            return Err(bad(format!("{what} must be an https:// URL, got {text}")));
        }
        Ok(url)
    };
    let mut base = https(&cfg.portal_url, "portal_url")?;
    let trimmed = base.path().trim_end_matches('/').trim_end_matches("/rest").to_string();
    base.set_path(&format!("{trimmed}/rest/"));
    base.set_query(None);
    let token_url = https(&cfg.token_url, "oauth_token_url")?;
    let client_secret = cfg.client_secret.resolve().map_err(bad)?;
    let host = format!("{}{}", base.host_str().unwrap_or(""), base.port().map(|p| format!(":{p}")).unwrap_or_default());
    let app = oauth::OAuthApp { token_url, client_id: cfg.client_id.clone(), client_secret, token_file: cfg.token_file.clone(), key: cfg.key.clone() };
    // The token file must be there and readable before anything else.
    app.load()?;
    Ok((client::Endpoint::OAuth { base, app: Box::new(app), tokens: tokio::sync::Mutex::new(None) }, format!("{host} (OAuth app {})", cfg.client_id)))
}

fn client_for(cfg: &Bitrix24Config) -> Result<(Client, String), Bitrix24Error> {
    let (endpoint, portal, key) = match &cfg.auth {
        Bitrix24Auth::Webhook(secret) => {
            let hook = webhook(secret)?;
            (client::Endpoint::Webhook(hook.base), hook.portal, secret.describe())
        }
        Bitrix24Auth::OAuth(app) => {
            let (endpoint, portal) = oauth_endpoint(app)?;
            (endpoint, portal, app.key.clone())
        }
    };
    let policy = RetryPolicy { timeout: cfg.timeout, ..RetryPolicy::default() };
    // One pace per portal in this process (see `PoliteClient::for_account`).
    let http = PoliteClient::for_account(&format!("bitrix24 {portal}"), cfg.rate, policy)?;
    Ok((Client::new(endpoint, http, key), portal))
}

/// The scopes a full sync needs, with what each one reads.
pub const SCOPES: &[(&str, &str)] = &[
    ("crm", "deals, leads, contacts, companies, activities, stage history, pipelines, product rows"),
    ("user", "managers (user.get)"),
    ("department", "departments (department.get)"),
    ("telephony", "calls (voximplant.statistic.get)"),
    ("task", "tasks (tasks.task.list)"),
];

/// What `salespulse check` found about a webhook.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub portal: String,
    pub scopes: Vec<String>,
    pub missing: Vec<(&'static str, &'static str)>,
}

/// Probes the webhook: it answers, and it has the scopes a sync needs.
///
/// # Errors
/// The webhook is malformed or refused, or the portal does not answer.
pub async fn check(cfg: &Bitrix24Config) -> Result<CheckReport, Bitrix24Error> {
    let (client, portal) = client_for(cfg)?;
    let answer = client.call("scope", &json!({})).await?;
    let scopes: Vec<String> = answer.result.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let missing = SCOPES.iter().filter(|(s, _)| !scopes.iter().any(|have| have == s)).copied().collect();
    Ok(CheckReport { portal, scopes, missing })
}

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

/// Pulls the portal: in full, or incrementally on top of `previous` when it is a snapshot of
/// the same portal. `progress` hears of each list as it is read.
///
/// # Errors
/// See [`Bitrix24Error`]; nothing is stored by a failed pull.
pub async fn pull(cfg: &Bitrix24Config, timezone: Tz, previous: Option<Previous>, now: DateTime<Utc>, progress: ProgressHandle) -> Result<Pull, Bitrix24Error> {
    let started = std::time::Instant::now();
    let (client, portal) = client_for(cfg)?;
    let client = client.with_progress(progress);
    let previous = previous.filter(|p| p.cursors.get(CURSOR_PORTAL) == Some(&portal));
    let incremental = previous.is_some();
    let mut cursors = previous.as_ref().map(|p| p.cursors.clone()).unwrap_or_default();
    cursors.insert(CURSOR_PORTAL.into(), portal.clone());
    let phone_key = crate::connectors::sync::phone_key(&mut cursors, CURSOR_PHONE_KEY)?;
    let since = |c: &Changed| -> Option<String> {
        let cursor = cursors.get(&format!("bitrix24.{}", c.entity))?;
        let at = DateTime::parse_from_rfc3339(cursor).ok()?.with_timezone(&Utc) - cfg.overlap;
        Some(at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    };
    let after_id = |entity: &str| -> Option<String> { cursors.get(&format!("bitrix24.{entity}.id")).cloned() };

    let mut raw = Raw::default();
    let mut records = BTreeMap::new();
    let log = |entity: &'static str, n: usize, records: &mut BTreeMap<&'static str, usize>| {
        tracing::debug!(portal = %portal, entity, records = n, requests = client.http().stats().requests(), "read");
        records.insert(entity, n);
    };

    // Reference lists: always in full.
    let users_spec = ListSpec { method: "user.get", root: None, id_field: "ID", keyset_key: ">ID", filter_param: "FILTER", filter: Default::default(), params: Default::default(), start_after: None }
        .with("ADMIN_MODE", json!(true))
        .with("SORT", json!("ID"))
        .with("ORDER", json!("ASC"))
        .filter("USER_TYPE", json!("employee"));
    raw.departments = client.list_paged("department.get", None, json!({"sort": "ID", "order": "ASC"})).await?;
    log("departments", raw.departments.len(), &mut records);
    raw.categories = client.list_paged("crm.category.list", Some("categories"), json!({"entityTypeId": 2})).await?;
    raw.statuses = client.list_paged("crm.status.list", None, json!({"order": {"ENTITY_ID": "ASC", "SORT": "ASC"}})).await?;
    raw.currencies = client.list_paged("crm.currency.list", None, json!({})).await?;
    log("pipelines, stages, sources, currencies", raw.categories.len() + raw.statuses.len() + raw.currencies.len(), &mut records);

    // Changing entities: everything, or what changed since the cursors.
    let changed = |c: &Changed, spec: ListSpec| match (incremental, since(c)) {
        (true, Some(from)) => spec.filter(c.filter, json!(from)),
        _ => spec,
    };
    let crm_select = json!(["*", "UF_*"]);
    let party_select = json!(["*", "UF_*", "PHONE", "EMAIL"]);
    let tasks_spec = ListSpec {
        method: "tasks.task.list",
        root: Some("tasks"),
        id_field: "id",
        keyset_key: ">ID",
        filter_param: "filter",
        filter: Default::default(),
        params: Default::default(),
        start_after: None,
    }
    .with("order", json!({"ID": "asc"}))
    .with("select", json!(["ID", "TITLE", "STATUS", "CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE", "DATE_START", "DEADLINE", "RESPONSIBLE_ID", "CREATED_BY", "UF_CRM_TASK"]));
    // Append-only entities: after the last id seen.
    let mut history_spec = ListSpec::crm("crm.stagehistory.list").with("entityTypeId", json!(2));
    history_spec.root = Some("items");
    history_spec.start_after = if incremental { after_id("deal_stage_history") } else { None };
    let mut lead_history_spec = ListSpec::crm("crm.stagehistory.list").with("entityTypeId", json!(1));
    lead_history_spec.root = Some("items");
    lead_history_spec.start_after = if incremental { after_id("lead_stage_history") } else { None };
    let mut calls_spec = ListSpec { filter_param: "FILTER", ..ListSpec::crm("voximplant.statistic.get") };
    calls_spec.params = serde_json::Map::new();
    calls_spec = calls_spec.with("SORT", json!("ID")).with("ORDER", json!("ASC"));
    calls_spec.start_after = if incremental { after_id("calls") } else { None };

    // The lists are read side by side: the token bucket alone sets the pace, and one list's
    // wait for an answer is another's turn to ask (a portal answers a batch in about a
    // second, so one list at a time could not reach the allowed rate).
    // The amount in the account currency as the portal keeps it: not listed by
    // `crm.deal.fields`, so asked for by name.
    let deals_spec = changed(&DEALS, ListSpec::crm("crm.deal.list").with("select", json!(["*", "UF_*", "OPPORTUNITY_ACCOUNT", "ACCOUNT_CURRENCY_ID"])));
    let leads_spec = changed(&LEADS, ListSpec::crm("crm.lead.list").with("select", crm_select));
    let contacts_spec = changed(&CONTACTS, ListSpec::crm("crm.contact.list").with("select", party_select.clone()));
    let companies_spec = changed(&COMPANIES, ListSpec::crm("crm.company.list").with("select", party_select));
    let activities_spec = changed(&ACTIVITIES, ListSpec::crm("crm.activity.list").with("select", json!(["*"])));
    let changed_tasks_spec = changed(&TASKS, tasks_spec.clone());
    // Every list's first page in one batch; then the lists side by side.
    let specs = [&users_spec, &deals_spec, &leads_spec, &contacts_spec, &companies_spec, &activities_spec, &changed_tasks_spec, &history_spec, &lead_history_spec, &calls_spec];
    let mut firsts = client.first_pages(&specs).await?.into_iter();
    let mut first = || firsts.next().unwrap_or_default();
    let (f_users, f_deals, f_leads, f_contacts, f_companies, f_activities, f_tasks, f_history, f_lead_history, f_calls) =
        (first(), first(), first(), first(), first(), first(), first(), first(), first(), first());
    let (users, deals, leads, contacts, companies, activities, tasks, history, lead_history, calls) = tokio::try_join!(
        client.list_rest(&users_spec, f_users.0, f_users.1),
        client.list_rest(&deals_spec, f_deals.0, f_deals.1),
        client.list_rest(&leads_spec, f_leads.0, f_leads.1),
        client.list_rest(&contacts_spec, f_contacts.0, f_contacts.1),
        client.list_rest(&companies_spec, f_companies.0, f_companies.1),
        client.list_rest(&activities_spec, f_activities.0, f_activities.1),
        client.list_rest(&changed_tasks_spec, f_tasks.0, f_tasks.1),
        client.list_rest(&history_spec, f_history.0, f_history.1),
        client.list_rest(&lead_history_spec, f_lead_history.0, f_lead_history.1),
        client.list_rest(&calls_spec, f_calls.0, f_calls.1),
    )?;
    raw.users = users;
    log("users", raw.users.len(), &mut records);
    (raw.deals, raw.leads, raw.contacts, raw.companies, raw.activities, raw.tasks, raw.deal_history, raw.lead_history, raw.calls) =
        (deals, leads, contacts, companies, activities, tasks, history, lead_history, calls);
    for (entity, n) in [
        ("deals", raw.deals.len()),
        ("leads", raw.leads.len()),
        ("contacts", raw.contacts.len()),
        ("companies", raw.companies.len()),
        ("activities", raw.activities.len()),
        ("tasks", raw.tasks.len()),
        ("deal stage history", raw.deal_history.len()),
        ("lead status history", raw.lead_history.len()),
        ("calls", raw.calls.len()),
    ] {
        log(entity, n, &mut records);
    }

    // Product rows: the portal requires `=ownerType` and `=ownerId` in the filter, so they
    // are read by arrays of deal ids (all deals, or those that changed), one list per array,
    // many arrays per `batch`.
    let rows_spec = ListSpec {
        method: "crm.item.productrow.list",
        root: Some("productRows"),
        id_field: "id",
        keyset_key: ">id",
        filter_param: "filter",
        filter: Default::default(),
        params: Default::default(),
        start_after: None,
    }
    .with("order", json!({"id": "ASC"}))
    .filter("=ownerType", json!("D"));
    let changed_deals: Vec<String> = raw.deals.iter().filter_map(|d| mapping::id(d, "ID")).collect();
    let owner_lists: Vec<ListSpec> = changed_deals.chunks(OWNERS_PER_COMMAND).map(|chunk| rows_spec.clone().filter("=ownerId", json!(chunk))).collect();
    raw.product_rows = client.list_many(&owner_lists).await?;
    log("product rows", raw.product_rows.len(), &mut records);

    // Deleted records: list methods never return tombstones, so every incremental refresh
    // scans ids (keyset chains in `batch`, 2,500 ids a request): no record the portal had
    // deleted before the refresh began is served.
    let mut alive: BTreeMap<Table, HashSet<String>> = BTreeMap::new();
    if incremental {
        let client = &client;
        let ids = |spec: ListSpec| async move {
            let field = if spec_is_camel(&spec) { "id" } else { "ID" };
            let rows = client.list_all(&spec.with("select", json!([field.to_uppercase()]))).await?;
            Ok::<HashSet<String>, Bitrix24Error>(rows.iter().filter_map(|r| mapping::id(r, field)).collect())
        };
        let mut task_ids = tasks_spec.clone();
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
    }
    let read_seconds = started.elapsed().as_secs_f64();

    // Cursors move to the newest change seen (the portal's clock, not ours).
    let times = Mapping { timezone, loss_reason_field: None, phone_key: Vec::new() };
    for c in [&DEALS, &LEADS, &CONTACTS, &COMPANIES, &ACTIVITIES, &TASKS] {
        let list = match c.entity {
            "deals" => &raw.deals,
            "leads" => &raw.leads,
            "contacts" => &raw.contacts,
            "companies" => &raw.companies,
            "activities" => &raw.activities,
            _ => &raw.tasks,
        };
        if let Some(newest) = list.iter().filter_map(|r| mapping::time(r, c.field, &times)).max() {
            let key = format!("bitrix24.{}", c.entity);
            let newest = DateTime::<Utc>::from_timestamp_micros(newest).unwrap_or(now);
            let keep = cursors.get(&key).and_then(|old| DateTime::parse_from_rfc3339(old).ok()).is_some_and(|old| old.with_timezone(&Utc) > newest);
            if !keep {
                cursors.insert(key, newest.to_rfc3339_opts(SecondsFormat::Secs, true));
            }
        }
    }
    for (entity, list, field) in [("deal_stage_history", &raw.deal_history, "ID"), ("lead_stage_history", &raw.lead_history, "ID"), ("calls", &raw.calls, "ID")] {
        if let Some(max) = list.iter().filter_map(|r| mapping::id(r, field)).filter_map(|i| i.parse::<u64>().ok()).max() {
            cursors.insert(format!("bitrix24.{entity}.id"), max.to_string());
        }
    }

    let m = Mapping { timezone, loss_reason_field: cfg.loss_reason_field.clone(), phone_key };
    let mut links = Links::default();
    if let Some(p) = &previous {
        merge::previous_links(p, &mut links).map_err(Bitrix24Error::Merge)?;
    }
    links.add(&raw, &m);
    let fresh = mapping::map(&raw, &links, &m)?;
    let (dataset, deleted) = match &previous {
        Some(p) => merge::merge(p, fresh, &changed_deals, &alive).map_err(Bitrix24Error::Merge)?,
        None => {
            let mut dataset = Dataset::default();
            for builder in fresh {
                dataset.push(builder);
            }
            (dataset, 0)
        }
    };
    let stats = client.http().stats();
    let report = SyncReport {
        incremental,
        records,
        requests: stats.requests(),
        retries: stats.retries(),
        answers: stats.answers(),
        reconciled: incremental,
        deleted,
        read_seconds,
        seconds: started.elapsed().as_secs_f64(),
    };
    let label = format!("bitrix24: {portal}, {} sync", if incremental { "incremental" } else { "full" });
    Ok(Pull { dataset, taken_at: Utc::now(), source_label: label, cursors, sync: Some(report) })
}

/// A Bitrix24 portal as a [`Connector`].
#[derive(Debug, Clone)]
pub struct Bitrix24Connector {
    pub config: Box<Bitrix24Config>,
    pub timezone: Tz,
}

#[async_trait::async_trait]
impl Connector for Bitrix24Connector {
    fn id(&self) -> &'static str {
        "bitrix24"
    }

    fn builds_on(&self) -> &'static [Table] {
        PREVIOUS_TABLES
    }

    async fn check(&self) -> Result<SourceCheck, ConnectorError> {
        let report = check(&self.config).await?;
        let mut out = SourceCheck { facts: vec![format!("Bitrix24 portal {} answers; webhook scopes: {}", report.portal, report.scopes.join(", "))], ..Default::default() };
        if !report.missing.is_empty() {
            let missing: Vec<String> = report.missing.iter().map(|(scope, reads)| format!("'{scope}' (for {reads})")).collect();
            out.problems.push(format!("the webhook lacks the scope(s) {}; add them to the webhook in Bitrix24 (Applications → Developer resources)", missing.join(", ")));
        }
        Ok(out)
    }

    async fn pull(&self, previous: Option<Previous>, now: DateTime<Utc>, progress: ProgressHandle) -> Result<Pull, ConnectorError> {
        Ok(pull(&self.config, self.timezone, previous, now, progress).await?)
    }
}

fn spec_is_camel(spec: &ListSpec) -> bool {
    spec.id_field == "id"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::http::RateLimit;
    use std::time::Duration;

    fn cfg(url: &str) -> Bitrix24Config {
        Bitrix24Config {
            auth: Bitrix24Auth::Webhook(SecretSource::Inline { key: "tenants[0] (acme).source.webhook_url".into(), value: url.into() }),
            rate: RateLimit { requests_per_second: 2.0, burst: 10 },
            loss_reason_field: None,
            overlap: Duration::from_secs(600),
            timeout: Duration::from_secs(60),
        }
    }

    fn hook_of(c: &Bitrix24Config) -> Result<Webhook, Bitrix24Error> {
        match &c.auth {
            Bitrix24Auth::Webhook(secret) => webhook(secret),
            Bitrix24Auth::OAuth(_) => unreachable!(),
        }
    }

    #[test]
    fn webhook_urls_are_checked_and_normalised() {
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123/")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        assert_eq!(hook.portal, "acme.bitrix24.ru (webhook of user 1)");
        // A method pasted after the code is dropped; the trailing slash is added.
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123/profile.json")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        let hook = hook_of(&cfg("https://acme.bitrix24.ru/rest/1/abc123")).unwrap();
        assert_eq!(hook.base.as_str(), "https://acme.bitrix24.ru/rest/1/abc123/");
        for bad in ["http://acme.bitrix24.ru/rest/1/abc/", "https://acme.bitrix24.ru/", "https://acme.bitrix24.ru/rest/x/abc/", "not a url"] {
            let e = hook_of(&cfg(bad)).err().unwrap().to_string();
            assert!(e.starts_with("tenants[0] (acme).source.webhook_url: "), "{e}");
            assert!(!e.contains("abc"), "the secret code never appears in messages: {e}");
        }
        assert!(hook_of(&cfg("http://127.0.0.1:8080/rest/1/abc/")).is_ok());
    }
}
