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

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use super::AmoCrmError;
use crate::connectors::sync::{Cell, phone_hash};
use crate::model::{Table, TableBuilder, Value};

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

/// A stage's key: statuses 142 and 143 repeat in every pipeline.
pub(super) fn stage_key(pipeline: &str, status: &str) -> String {
    format!("{pipeline}:{status}")
}

/// The stages of every pipeline: kind, name, and which are entry stages.
pub(super) struct Stages {
    kind: HashMap<String, &'static str>,
    unsorted: HashSet<String>,
    entry: HashSet<String>,
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

    fn kind(&self, stage: &str) -> &'static str {
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

/// A deal's move: the deal, the step, and the (pipeline, stage) it left.
pub(super) type Move = (String, Step, Option<(String, String)>);

/// The stage steps of `lead_status_changed` events, by deal, with each event's "before"
/// stage (for the first row of a deal that had none).
pub(super) fn event_steps(events: &[Json]) -> Vec<Move> {
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
            let before = lead_status(e.get("value_before")).map(|(p, s)| (p.clone(), stage_key(&p, &s)));
            Some((deal, Step { at, stage: stage_key(&pipeline, &status), pipeline, by: id(e, "created_by") }, before))
        })
        .collect()
}

/// The request (a `leads` row) a deal is, if it entered through an entry stage.
struct Request {
    status: &'static str,
    qualified_at: Option<i64>,
    closed_at: Option<i64>,
}

fn request(deal: &Json, steps: &[Step], stages: &Stages) -> Option<Request> {
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

fn current_stage(deal: &Json) -> Option<String> {
    Some(stage_key(&id(deal, "pipeline_id")?, &id(deal, "status_id")?))
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

fn managers(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Managers);
    for u in &raw.users {
        let rights = u.get("rights").unwrap_or(&Json::Null);
        // A user in no group belongs to the account's default group 0 ("Отдел продаж").
        let department = id(rights, "group_id").or_else(|| Some("0".into()));
        let role = u.get("_embedded").and_then(|e| e.get("roles")).and_then(Json::as_array).and_then(|r| r.first()).and_then(|r| text(r, "name"));
        let row = [id(u, "id").into(), text(u, "name").into(), text(u, "email").into(), department.into(), role.into(), flag(rights, "is_active").into(), Cell::Null];
        append(&mut b, u, &row)?;
    }
    Ok(b)
}

fn departments(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Departments);
    let groups = raw.account.get("_embedded").and_then(|e| e.get("users_groups")).and_then(Json::as_array).into_iter().flatten();
    for g in groups {
        let group = g.get("id").and_then(Json::as_i64).map(|i| i.to_string());
        append(&mut b, g, &[group.into(), text(g, "name").into(), Cell::Null, Cell::Null])?;
    }
    Ok(b)
}

fn pipelines(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Pipelines);
    for p in &raw.pipelines {
        let sort = int(p, "sort").map(|s| s as i32);
        append(&mut b, p, &[id(p, "id").into(), text(p, "name").into(), sort.into(), flag(p, "is_main").into()])?;
    }
    Ok(b)
}

fn stage_rows(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
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

/// A deal's source: its UTM tracking fields when an amoCRM form filled them (the channel
/// they name is the most precise: `utm:SOURCE:MEDIUM`), else the lead source amoCRM names
/// (`with=source`, A-LEADS-5). `(id, name, channel, is_online)`.
pub(super) fn source_of(d: &Json) -> Option<(String, String, &'static str, bool)> {
    let tracking = |code: &str| -> Option<String> {
        d.get("custom_fields_values")?.as_array()?.iter().find_map(|f| {
            let named = |key: &str| f.get(key).and_then(Json::as_str).is_some_and(|v| v.eq_ignore_ascii_case(code));
            if f.get("field_type").and_then(Json::as_str) != Some("tracking_data") || !(named("field_code") || named("field_name")) {
                return None;
            }
            f.get("values")?.as_array()?.first().and_then(|v| text(v, "value")).map(|v| v.to_lowercase())
        })
    };
    if let Some(utm_source) = tracking("utm_source") {
        let medium = tracking("utm_medium");
        let (channel, online) = utm_channel(medium.as_deref().unwrap_or(""), &utm_source);
        let name = match &medium {
            Some(m) => format!("{utm_source} / {m}"),
            None => utm_source.clone(),
        };
        return Some((format!("utm:{utm_source}:{}", medium.as_deref().unwrap_or("")), name, channel, online));
    }
    let source = id(d, "source_id")?;
    let name = d.get("_embedded").and_then(|e| e.get("source")).and_then(|s| text(s, "name")).unwrap_or_else(|| format!("source {source}"));
    let (channel, online) = name_channel(&name);
    Some((source, name, channel, online))
}

/// The channel a `utm_medium` names (the usual values; `utm_source` for messengers).
fn utm_channel(medium: &str, source: &str) -> (&'static str, bool) {
    match medium {
        "cpc" | "ppc" | "cpm" | "cpa" | "paid" | "display" | "banner" | "context" | "retargeting" => ("ads", true),
        "email" | "e-mail" | "newsletter" | "mail" => ("email", true),
        "social" | "smm" | "social-media" | "paid_social" => ("social", true),
        "referral" | "partner" | "affiliate" => ("referral", true),
        "messenger" => ("messenger", true),
        _ if ["whatsapp", "telegram", "viber"].iter().any(|m| source.contains(m)) => ("messenger", true),
        _ => ("web_form", true),
    }
}

/// The channel a source's name suggests (amoCRM names sources after their inbox: a site's
/// form, a messenger, a call-back widget); `other` when nothing matches.
fn name_channel(name: &str) -> (&'static str, bool) {
    let n = name.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["whatsapp", "telegram", "viber", "вконтакте сообщ", "avito", "авито"]) {
        ("messenger", true)
    } else if has(&["обратн", "callback", "call back"]) {
        ("callback", true)
    } else if has(&["звон", "телефон", "call", "phone", "sip"]) {
        ("phone", false)
    } else if has(&["чат", "chat", "онлайн-консульт"]) {
        ("chat", true)
    } else if has(&["почт", "mail"]) {
        ("email", true)
    } else if has(&["instagram", "facebook", "vk", "вконтакте", "одноклассники", "tiktok"]) {
        ("social", true)
    } else if has(&["сайт", "site", "форма", "form", "лендинг", "landing", "tilda", "wordpress"]) {
        ("web_form", true)
    } else if has(&["реклам", "ads", "директ", "direct", "adwords"]) {
        ("ads", true)
    } else if has(&["рекоменд", "партн", "referral", "partner"]) {
        ("referral", false)
    } else if has(&["выставк", "офис", "offline", "визит"]) {
        ("offline", false)
    } else {
        ("other", false)
    }
}

/// One row per source the deals read name (the merge keeps the previous snapshot's rows
/// for sources of deals not read again, `merge::rebuild_sources`).
fn sources(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Sources);
    let mut seen = HashSet::new();
    for d in &raw.leads {
        let Some((source, name, channel, online)) = source_of(d) else { continue };
        if seen.insert(source.clone()) {
            append(&mut b, d, &[Cell::S(source), Cell::S(name), Cell::text(channel), Cell::B(online)])?;
        }
    }
    Ok(b)
}

/// Products on deals: `_embedded.catalog_elements` links into a catalog of type `products`
/// (A-PROD-1..4), named and priced by the element (the price field the link names, else
/// the `PRICE` field, A-CATEL-3).
fn deal_items(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
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

fn loss_reasons(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::LossReasons);
    for r in &raw.loss_reasons {
        append(&mut b, r, &[id(r, "id").into(), text(r, "name").into()])?;
    }
    Ok(b)
}

/// `custom_fields_values` as a JSON object by field name: one value as itself, several as a
/// list; dates as RFC 3339 in UTC. Phones and e-mails are left out (docs/schema.md keeps only a
/// keyed hash of numbers).
fn custom_fields(record: &Json) -> Option<String> {
    let fields = record.get("custom_fields_values")?.as_array()?;
    let mut out = Map::new();
    for f in fields {
        if matches!(f.get("field_code").and_then(Json::as_str), Some("PHONE" | "EMAIL")) {
            continue;
        }
        let name = text(f, "field_name").or_else(|| id(f, "field_id")).unwrap_or_default();
        let is_date = matches!(f.get("field_type").and_then(Json::as_str), Some("date" | "date_time" | "birthday"));
        let values: Vec<Json> = f
            .get("values")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("value"))
            .map(|v| match (is_date, v.as_i64()) {
                (true, Some(t)) => chrono::DateTime::from_timestamp(t, 0).map_or(v.clone(), |d| Json::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
                _ => v.clone(),
            })
            .collect();
        let value = match values.len() {
            0 => continue,
            1 => values.into_iter().next().unwrap_or(Json::Null),
            _ => Json::Array(values),
        };
        out.insert(name, value);
    }
    (!out.is_empty()).then(|| Json::Object(out).to_string())
}

/// The first id in `_embedded.KEY` (the main one for contacts).
fn embedded_id(record: &Json, key: &str) -> Option<String> {
    let list = record.get("_embedded")?.get(key)?.as_array()?;
    let main = list.iter().find(|c| c.get("is_main").and_then(Json::as_bool) == Some(true));
    main.or_else(|| list.first()).and_then(|c| id(c, "id"))
}

fn companies(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Companies);
    for c in &raw.companies {
        let row = [id(c, "id").into(), text(c, "name").into(), Cell::Null, id(c, "responsible_user_id").into(), ts(c, "created_at"), ts(c, "updated_at"), custom_fields(c).into()];
        append(&mut b, c, &row)?;
    }
    Ok(b)
}

fn contacts(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Contacts);
    for c in &raw.contacts {
        let name = text(c, "name").or_else(|| join_name(&[text(c, "first_name"), text(c, "last_name")]));
        let row = [
            id(c, "id").into(),
            name.into(),
            embedded_id(c, "companies").into(),
            id(c, "responsible_user_id").into(),
            Cell::Null,
            ts(c, "created_at"),
            ts(c, "updated_at"),
            custom_fields(c).into(),
        ];
        append(&mut b, c, &row)?;
    }
    Ok(b)
}

fn amount(d: &Json) -> Cell {
    match d.get("price") {
        Some(Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Cell::D(i128::from(i) * 100),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Cell::D((f * 100.0).round() as i128),
            _ => Cell::Null,
        },
        _ => Cell::Null,
    }
}

fn deal_row(b: &mut TableBuilder, d: &Json, stages: &Stages, is_request: bool, ctx: &Context) -> Result<(), AmoCrmError> {
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

fn lead_row(b: &mut TableBuilder, d: &Json, r: &Request, ctx: &Context) -> Result<(), AmoCrmError> {
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

fn history(ctx: &Context) -> Result<TableBuilder, AmoCrmError> {
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

/// The record a note hangs on, as (deal, contact, company).
fn owner(entity: &str, note: &Json) -> (Option<String>, Option<String>, Option<String>) {
    let of = id(note, "entity_id");
    match entity {
        "leads" => (of, None, None),
        "contacts" => (None, of, None),
        _ => (None, None, of),
    }
}

/// docs/udfs.md §2.6: `call_status` 4 is a conversation; 7 busy; 5 a wrong number; the others
/// (voicemail, call back later, not available, did not get through) did not connect.
fn call_status(status: Option<i64>, duration: i64, inbound: bool) -> &'static str {
    let unanswered = if inbound { "missed" } else { "no_answer" };
    match status {
        Some(4) => "answered",
        Some(7) => "busy",
        Some(5) => "failed",
        Some(_) => unanswered,
        None if duration > 0 => "answered",
        None => unanswered,
    }
}

fn calls(raw: &Raw, requests: &HashSet<String>, ctx: &Context) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Calls);
    for (entity, n) in &raw.notes {
        let direction = match n.get("note_type").and_then(Json::as_str) {
            Some("call_in") => "inbound",
            Some("call_out") => "outbound",
            _ => continue,
        };
        let params = n.get("params").unwrap_or(&Json::Null);
        let duration = int(params, "duration").filter(|d| *d >= 0).unwrap_or(0);
        let code = int(params, "call_status");
        let status = call_status(code, duration, direction == "inbound");
        let talk = if status == "answered" { duration } else { 0 };
        let manager = id(params, "call_responsible").filter(|m| m.chars().all(|c| c.is_ascii_digit())).or_else(|| id(n, "created_by")).or_else(|| id(n, "responsible_user_id"));
        let phone = text(params, "phone").filter(|p| p.chars().any(|c| c.is_ascii_digit())).map(|p| phone_hash(&p, &ctx.phone_key));
        let (deal, contact, company) = owner(entity, n);
        let lead = deal.clone().filter(|d| requests.contains(d));
        let row = [
            id(n, "id").into(),
            manager.into(),
            Cell::text(direction),
            Cell::text(status),
            code.map(|c| c.to_string()).into(),
            ts(n, "created_at"),
            Cell::I(talk),
            phone.into(),
            deal.into(),
            lead.into(),
            contact.into(),
            company.into(),
        ];
        append(&mut b, n, &row)?;
    }
    Ok(b)
}

fn note_kind(note_type: &str) -> (&'static str, Option<&'static str>) {
    match note_type {
        "call_in" => ("call", Some("inbound")),
        "call_out" => ("call", Some("outbound")),
        "sms_in" => ("message", Some("inbound")),
        "sms_out" => ("message", Some("outbound")),
        "common" => ("comment", None),
        "mail_message" | "amomail_message" => ("email", None),
        _ => ("other", None),
    }
}

fn activities(raw: &Raw, requests: &HashSet<String>) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Activities);
    for (entity, n) in &raw.notes {
        let (kind, direction) = note_kind(n.get("note_type").and_then(Json::as_str).unwrap_or(""));
        let (deal, contact, company) = owner(entity, n);
        let lead = deal.clone().filter(|d| requests.contains(d));
        let created = ts(n, "created_at");
        let row = [
            id(n, "id").into(),
            Cell::text(kind),
            direction.map(str::to_string).into(),
            id(n, "created_by").or_else(|| id(n, "responsible_user_id")).into(),
            deal.into(),
            lead.into(),
            contact.into(),
            company.into(),
            created.clone(),
            Cell::Null,
            created,
            Cell::B(true),
        ];
        append(&mut b, n, &row)?;
    }
    Ok(b)
}

fn tasks(raw: &Raw, requests: &HashSet<String>) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Tasks);
    for t in &raw.tasks {
        let done = flag(t, "is_completed") == Some(true);
        let deal = id(t, "entity_id").filter(|_| t.get("entity_type").and_then(Json::as_str) == Some("leads"));
        let lead = deal.clone().filter(|d| requests.contains(d));
        let row = [
            id(t, "id").into(),
            text(t, "text").into(),
            id(t, "responsible_user_id").into(),
            id(t, "created_by").into(),
            deal.into(),
            lead.into(),
            ts(t, "created_at"),
            ts(t, "complete_till"),
            Cell::Null,
            if done { ts(t, "updated_at") } else { Cell::Null },
            Cell::text(if done { "completed" } else { "new" }),
        ];
        append(&mut b, t, &row)?;
    }
    Ok(b)
}

// ---- field readers ----

fn text(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An id; `0`, empty and null mean none.
pub(super) fn id(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
        Json::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        _ => None,
    }
}

fn int(record: &Json, key: &str) -> Option<i64> {
    match record.get(key)? {
        Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(record: &Json, key: &str) -> Option<bool> {
    match record.get(key)? {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Unix seconds as microseconds, UTC.
pub(super) fn seconds(record: &Json, key: &str) -> Option<i64> {
    int(record, key).filter(|t| *t > 0).and_then(|t| t.checked_mul(1_000_000))
}

fn ts(record: &Json, key: &str) -> Cell {
    seconds(record, key).map_or(Cell::Null, Cell::T)
}

impl Cell {
    fn or(self, other: Cell) -> Cell {
        if self == Cell::Null { other } else { self }
    }
}

fn join_name(parts: &[Option<String>]) -> Option<String> {
    let name = parts.iter().flatten().map(String::as_str).collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn calls_map_the_status_codes_of_udfs_2_6() {
        assert_eq!(call_status(Some(4), 64, false), "answered");
        assert_eq!(call_status(Some(6), 0, false), "no_answer");
        assert_eq!(call_status(Some(6), 0, true), "missed");
        assert_eq!(call_status(Some(7), 12, false), "busy");
        assert_eq!(call_status(Some(5), 0, false), "failed");
        assert_eq!(call_status(None, 30, true), "answered");
    }

    #[test]
    fn custom_fields_keep_names_and_dates_but_not_phones() {
        let record = json!({"custom_fields_values": [
            {"field_id": 1, "field_name": "Сегмент", "field_type": "select", "values": [{"value": "B2B", "enum_id": 4}]},
            {"field_id": 2, "field_name": "Дата встречи", "field_type": "date", "values": [{"value": 1757030400}]},
            {"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext", "values": [{"value": "+7916"}]},
            {"field_id": 4, "field_name": "Теги", "field_type": "multiselect", "values": [{"value": "a"}, {"value": "b"}]}
        ]});
        let parsed: Json = serde_json::from_str(&custom_fields(&record).unwrap()).unwrap();
        assert_eq!(parsed, json!({"Сегмент": "B2B", "Дата встречи": "2025-09-05T00:00:00Z", "Теги": ["a", "b"]}));
        assert_eq!(custom_fields(&json!({"custom_fields_values": null})), None);
    }
}
