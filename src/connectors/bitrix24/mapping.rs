//! Bitrix24 records (JSON, as the portal sends them) into the canonical tables of docs/schema.md.
//! docs/connectors/bitrix24.md is the same mapping in prose; change both together.
//!
//! The portal sends nearly every scalar as a string (`"ID": "37"`, `"OPPORTUNITY":
//! "19999.99"`), `"0"` or `""` for an empty reference, and times with the portal's offset
//! (some in its display format); everything is normalised here: ids as text, money as
//! decimals, instants in UTC.

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{Map, Value as Json};

use super::Bitrix24Error;
use crate::connectors::files::{parse_decimal, parse_timestamp};
use crate::connectors::sync::Cell;
pub(super) use crate::connectors::sync::phone_hash;
use crate::model::{Table, TableBuilder, Value};

/// What the portal returned, entity by entity, before mapping.
#[derive(Debug, Default, Clone)]
pub(super) struct Raw {
    pub users: Vec<Json>,
    pub departments: Vec<Json>,
    pub categories: Vec<Json>,
    pub statuses: Vec<Json>,
    pub currencies: Vec<Json>,
    pub deals: Vec<Json>,
    pub leads: Vec<Json>,
    pub contacts: Vec<Json>,
    pub companies: Vec<Json>,
    pub activities: Vec<Json>,
    pub deal_history: Vec<Json>,
    /// `crm.stagehistory.list` items of leads (`entityTypeId` 1).
    pub lead_history: Vec<Json>,
    pub calls: Vec<Json>,
    pub tasks: Vec<Json>,
    pub product_rows: Vec<Json>,
}

/// Links between entities that a record does not carry itself; in an incremental pull they
/// come from the previous snapshot's rows too.
#[derive(Debug, Default, Clone)]
pub(super) struct Links {
    /// Activity id → (owner type id, owner id): calls reach their deal through it.
    pub activity_owner: HashMap<String, (u8, String)>,
    /// Lead id → the first deal converted from it.
    pub lead_deal: HashMap<String, String>,
    /// Lead id → when it first reached a qualifying status (µs), from the lead status
    /// history (and the previous snapshot's `qualified_at`).
    pub lead_qualified: HashMap<String, i64>,
}

impl Links {
    /// Adds the links of freshly pulled records (they win over older ones).
    pub(super) fn add(&mut self, raw: &Raw, m: &Mapping) {
        let qualifying = LeadFunnel::new(&raw.statuses);
        for h in &raw.lead_history {
            let (Some(lead), Some(at)) = (id(h, "OWNER_ID"), time(h, "CREATED_TIME", m)) else { continue };
            if qualifying.qualifies(h) {
                let first = self.lead_qualified.entry(lead).or_insert(at);
                *first = (*first).min(at);
            }
        }
        for a in &raw.activities {
            if let (Some(id), Some(owner), Some(kind)) = (id(a, "ID"), id(a, "OWNER_ID"), int(a, "OWNER_TYPE_ID")) {
                self.activity_owner.insert(id, (kind as u8, owner));
            }
        }
        let mut deals: Vec<(u64, String, String)> = raw
            .deals
            .iter()
            .filter_map(|d| Some((id(d, "ID")?.parse().unwrap_or(u64::MAX), id(d, "ID")?, id(d, "LEAD_ID")?)))
            .collect();
        deals.sort();
        for (_, deal, lead) in deals {
            self.lead_deal.entry(lead).or_insert(deal);
        }
    }
}

/// How records map, beyond the records themselves.
#[derive(Debug, Clone)]
pub(super) struct Mapping {
    /// The portal's zone, for the few times sent without an offset.
    pub timezone: Tz,
    /// A deal field (`UF_CRM_…`) holding the loss reason; the failure stage otherwise.
    pub loss_reason_field: Option<String>,
    /// The key of `phone_hash`, kept with the snapshots so hashes stay comparable.
    pub phone_key: Vec<u8>,
}

/// Maps every entity of `raw` into the tables it feeds.
///
/// # Errors
/// A record misses a field the canonical table requires (its id, a creation time).
pub(super) fn map(raw: &Raw, links: &Links, m: &Mapping) -> Result<Vec<TableBuilder>, Bitrix24Error> {
    let rates = Rates::new(&raw.currencies);
    let stages = StageInfo::new(&raw.statuses);
    Ok(vec![
        managers(raw, m)?,
        departments(raw)?,
        pipelines(raw)?,
        stage_rows(raw)?,
        sources(raw)?,
        loss_reasons(raw, &stages, m)?,
        companies(raw, m)?,
        contacts(raw, m)?,
        leads(raw, links, m)?,
        deals(raw, &rates, m)?,
        deal_history(raw, m)?,
        deal_items(raw)?,
        calls(raw, links, m)?,
        activities(raw, m)?,
        tasks(raw, m)?,
    ])
}

fn append(b: &mut TableBuilder, record: &Json, key: &str, row: &[Cell]) -> Result<(), Bitrix24Error> {
    let values: Vec<Value<'_>> = row.iter().map(Cell::value).collect();
    b.append_row(&values).map_err(|source| Bitrix24Error::Row {
        table: b.table().name(),
        id: record.get(key).map(|v| v.to_string()).unwrap_or_default(),
        source,
    })
}

fn managers(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Managers);
    for u in &raw.users {
        let name = join_name(&[text(u, "NAME"), text(u, "LAST_NAME")]);
        let department = match u.get("UF_DEPARTMENT") {
            Some(Json::Array(ids)) => ids.first().and_then(scalar_id),
            Some(other) => scalar_id(other),
            None => None,
        };
        let row = [
            id(u, "ID").into(),
            name.into(),
            text(u, "EMAIL").into(),
            department.into(),
            text(u, "WORK_POSITION").into(),
            flag(u, "ACTIVE").into(),
            time(u, "DATE_REGISTER", m).map_or(Cell::Null, Cell::T),
        ];
        append(&mut b, u, "ID", &row)?;
    }
    Ok(b)
}

fn departments(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Departments);
    for d in &raw.departments {
        let row = [id(d, "ID").into(), text(d, "NAME").into(), id(d, "PARENT").into(), id(d, "UF_HEAD").into()];
        append(&mut b, d, "ID", &row)?;
    }
    Ok(b)
}

fn pipelines(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Pipelines);
    let mut has_general = false;
    for c in &raw.categories {
        let pipeline = scalar_id_or_zero(c.get("id"));
        has_general |= pipeline.as_deref() == Some("0");
        let sort = int(c, "sort").map(|s| s as i32);
        let row = [pipeline.into(), text(c, "name").into(), sort.into(), flag(c, "isDefault").into()];
        append(&mut b, c, "id", &row)?;
    }
    // Category 0 ("General") holds deals on every portal, listed or not.
    if !has_general {
        let is_default = !raw.categories.iter().any(|c| flag(c, "isDefault") == Some(true));
        append(&mut b, &Json::Null, "id", &[Cell::text("0"), Cell::text("General"), Cell::I(0), Cell::B(is_default)])?;
    }
    Ok(b)
}

/// The pipeline of a deal stage list (`DEAL_STAGE` is pipeline 0, `DEAL_STAGE_5` pipeline 5).
fn stage_pipeline(entity: &str) -> Option<String> {
    if entity == "DEAL_STAGE" {
        return Some("0".into());
    }
    entity.strip_prefix("DEAL_STAGE_").filter(|n| n.chars().all(|c| c.is_ascii_digit())).map(str::to_string)
}

fn stage_kind(s: &Json) -> &'static str {
    let semantics = text(s, "SEMANTICS").or_else(|| s.get("EXTRA").and_then(|e| text(e, "SEMANTICS")));
    match semantics.as_deref() {
        Some("S" | "success") => "won",
        Some("F" | "failure" | "apology") => "lost",
        _ => "open",
    }
}

fn stage_rows(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Stages);
    for s in &raw.statuses {
        let Some(pipeline) = text(s, "ENTITY_ID").and_then(|e| stage_pipeline(&e)) else { continue };
        let sort = int(s, "SORT").map(|v| v as i32);
        let row = [id(s, "STATUS_ID").into(), Cell::text(&pipeline), text(s, "NAME").into(), sort.into(), Cell::text(stage_kind(s))];
        append(&mut b, s, "STATUS_ID", &row)?;
    }
    Ok(b)
}

/// Channel and online flag of a source id: the portal's built-in ids, `other` for custom
/// ones (`UC_…`).
fn channel(source: &str) -> (&'static str, bool) {
    match source {
        "CALL" => ("phone", false),
        "EMAIL" => ("email", true),
        "WEB" | "WEBFORM" | "STORE" => ("web_form", true),
        "CALLBACK" => ("callback", true),
        "ADVERTISING" | "RC_GENERATOR" => ("ads", true),
        "PARTNER" | "RECOMMENDATION" => ("referral", false),
        "TRADE_SHOW" => ("offline", false),
        "BOOKING" => ("web_form", true),
        s if s.contains("OPENLINE") || s.contains("IMOL") || s.contains("WZ") => ("messenger", true),
        _ => ("other", false),
    }
}

fn sources(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Sources);
    for s in raw.statuses.iter().filter(|s| text(s, "ENTITY_ID").as_deref() == Some("SOURCE")) {
        let source = id(s, "STATUS_ID");
        let (channel, online) = channel(source.as_deref().unwrap_or(""));
        let row = [source.into(), text(s, "NAME").into(), Cell::text(channel), Cell::B(online)];
        append(&mut b, s, "STATUS_ID", &row)?;
    }
    Ok(b)
}

/// Failure stages by id, with names.
struct StageInfo {
    failure: Vec<(String, String)>,
}

impl StageInfo {
    fn new(statuses: &[Json]) -> StageInfo {
        let failure = statuses
            .iter()
            .filter(|s| text(s, "ENTITY_ID").and_then(|e| stage_pipeline(&e)).is_some() && stage_kind(s) == "lost")
            .filter_map(|s| Some((id(s, "STATUS_ID")?, text(s, "NAME").unwrap_or_default())))
            .collect();
        StageInfo { failure }
    }
}

fn loss_reasons(raw: &Raw, stages: &StageInfo, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::LossReasons);
    match &m.loss_reason_field {
        // The values of the configured field on lost deals (the field's list labels are
        // what the portal stores for a list field shown as text).
        Some(field) => {
            let mut seen: Vec<String> = raw.deals.iter().filter(|d| deal_status(d) == "lost").filter_map(|d| field_text(d, field)).collect();
            seen.sort();
            seen.dedup();
            for reason in seen {
                append(&mut b, &Json::Null, "", &[Cell::text(&reason), Cell::text(&reason)])?;
            }
        }
        None => {
            for (stage, name) in &stages.failure {
                append(&mut b, &Json::Null, "", &[Cell::text(stage), Cell::text(name)])?;
            }
        }
    }
    Ok(b)
}

fn custom_fields(record: &Json) -> Option<String> {
    let obj = record.as_object()?;
    let custom: Map<String, Json> = obj
        .iter()
        .filter(|(k, v)| (k.starts_with("UF_") || k.starts_with("ufCrm")) && !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!custom.is_empty()).then(|| Json::Object(custom).to_string())
}

fn companies(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Companies);
    for c in &raw.companies {
        let custom = custom_fields(c);
        let row = [
            id(c, "ID").into(),
            text(c, "TITLE").into(),
            text(c, "INDUSTRY").into(),
            id(c, "ASSIGNED_BY_ID").into(),
            ts(c, "DATE_CREATE", m),
            ts(c, "DATE_MODIFY", m),
            custom.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}

fn contacts(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Contacts);
    for c in &raw.contacts {
        let name = join_name(&[text(c, "NAME"), text(c, "LAST_NAME")]);
        let custom = custom_fields(c);
        let row = [
            id(c, "ID").into(),
            name.into(),
            id(c, "COMPANY_ID").into(),
            id(c, "ASSIGNED_BY_ID").into(),
            id(c, "SOURCE_ID").into(),
            ts(c, "DATE_CREATE", m),
            ts(c, "DATE_MODIFY", m),
            custom.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}

/// The lead statuses (`crm.status.list`, `ENTITY_ID` STATUS): a lead is qualified when it
/// reaches the last process status before success ("Processed" by default), or converts.
pub(super) struct LeadFunnel {
    qualified: Option<String>,
}

impl LeadFunnel {
    pub(super) fn new(statuses: &[Json]) -> LeadFunnel {
        let mut process: Vec<(i64, String)> = statuses
            .iter()
            .filter(|s| text(s, "ENTITY_ID").as_deref() == Some("STATUS"))
            .filter(|s| !matches!(text(s, "SEMANTICS").as_deref(), Some("S" | "F")) && s.pointer("/EXTRA/SEMANTICS").and_then(Json::as_str).is_none_or(|x| x == "process"))
            .filter_map(|s| Some((int(s, "SORT").unwrap_or(0), text(s, "STATUS_ID")?)))
            .collect();
        process.sort();
        // The first process status is where leads come in: it never qualifies.
        let qualified = if process.len() >= 2 { process.last().map(|(_, id)| id.clone()) } else { None };
        LeadFunnel { qualified }
    }

    /// A history row (or a lead) at a qualifying status: success, or the last process one.
    fn qualifies(&self, record: &Json) -> bool {
        text(record, "STATUS_SEMANTIC_ID").as_deref() == Some("S") || (self.qualified.is_some() && text(record, "STATUS_ID") == self.qualified)
    }

    fn status(&self, l: &Json) -> &'static str {
        match (text(l, "STATUS_SEMANTIC_ID").as_deref(), text(l, "STATUS_ID").as_deref()) {
            (Some("S"), _) | (_, Some("CONVERTED")) => "converted",
            (Some("F"), _) | (_, Some("JUNK")) => "junk",
            (_, Some("NEW") | None) => "new",
            (_, status) if status.is_some() && status == self.qualified.as_deref() => "qualified",
            _ => "in_progress",
        }
    }
}

fn leads(raw: &Raw, links: &Links, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Leads);
    let funnel = LeadFunnel::new(&raw.statuses);
    for l in &raw.leads {
        let lead = id(l, "ID");
        let status = funnel.status(l);
        let closed = if matches!(status, "converted" | "junk") { ts(l, "DATE_CLOSED", m) } else { Cell::Null };
        let converted = lead.as_ref().and_then(|i| links.lead_deal.get(i));
        let qualified_at = lead.as_ref().and_then(|i| links.lead_qualified.get(i)).map_or(Cell::Null, |at| Cell::T(*at));
        let amount = money(l, "OPPORTUNITY");
        let custom = custom_fields(l);
        let row = [
            lead.into(),
            text(l, "TITLE").into(),
            Cell::text(status),
            text(l, "STATUS_ID").into(),
            id(l, "SOURCE_ID").into(),
            id(l, "ASSIGNED_BY_ID").into(),
            id(l, "CONTACT_ID").into(),
            id(l, "COMPANY_ID").into(),
            amount.map_or(Cell::Null, Cell::D),
            text(l, "CURRENCY_ID").into(),
            ts(l, "DATE_CREATE", m),
            ts(l, "DATE_MODIFY", m),
            // The portal keeps no qualification time on the lead: its status history does.
            qualified_at,
            closed,
            converted.into(),
            custom.into(),
        ];
        append(&mut b, l, "ID", &row)?;
    }
    Ok(b)
}

pub(super) fn deal_status(d: &Json) -> &'static str {
    match text(d, "STAGE_SEMANTIC_ID").as_deref() {
        Some("S") => "won",
        Some("F") => "lost",
        _ => "open",
    }
}

/// Exchange rates into the account currency (`crm.currency.list`: AMOUNT of the base
/// currency per AMOUNT_CNT units).
struct Rates {
    base: Option<String>,
    per_unit: HashMap<String, f64>,
}

impl Rates {
    fn new(currencies: &[Json]) -> Rates {
        let mut per_unit = HashMap::new();
        let mut base = None;
        for c in currencies {
            let Some(code) = text(c, "CURRENCY") else { continue };
            if flag(c, "BASE") == Some(true) {
                base = Some(code.clone());
            }
            let amount = number(c, "AMOUNT");
            let count = number(c, "AMOUNT_CNT").filter(|n| *n > 0.0).unwrap_or(1.0);
            if let Some(amount) = amount.filter(|a| *a > 0.0) {
                per_unit.insert(code, amount / count);
            }
        }
        if let Some(b) = &base {
            per_unit.insert(b.clone(), 1.0);
        }
        Rates { base, per_unit }
    }

    /// `cents` of `currency` in the account currency (`None` for an unknown currency).
    fn to_base(&self, cents: i128, currency: Option<&str>) -> Option<i128> {
        match (currency, &self.base) {
            (None, _) => Some(cents),
            (Some(c), Some(b)) if c == b => Some(cents),
            (Some(c), _) => self.per_unit.get(c).map(|rate| (cents as f64 * rate).round() as i128),
        }
    }
}

fn deals(raw: &Raw, rates: &Rates, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Deals);
    for d in &raw.deals {
        let status = deal_status(d);
        let amount = money(d, "OPPORTUNITY");
        let currency = text(d, "CURRENCY_ID");
        // As the portal reports it (`OPPORTUNITY_ACCOUNT` in `ACCOUNT_CURRENCY_ID`, fixed at
        // the rate of the deal's last save); converted at today's rates only when absent.
        // (Only in the account currency of today: a deal saved before the base currency
        // changed reports in the old one and is converted instead.)
        let reported = money(d, "OPPORTUNITY_ACCOUNT").filter(|_| text(d, "ACCOUNT_CURRENCY_ID").is_some_and(|c| rates.base.as_ref().is_none_or(|b| *b == c)));
        let amount_base = reported.or_else(|| amount.and_then(|a| rates.to_base(a, currency.as_deref())));
        let loss_reason = match (status, &m.loss_reason_field) {
            ("lost", Some(field)) => field_text(d, field),
            ("lost", None) => id(d, "STAGE_ID"),
            _ => None,
        };
        // A closed deal stops moving, so its last move is its close.
        let closed = if status == "open" { Cell::Null } else { time(d, "MOVED_TIME", m).or_else(|| time(d, "CLOSEDATE", m)).map_or(Cell::Null, Cell::T) };
        let custom = custom_fields(d);
        let row = [
            id(d, "ID").into(),
            text(d, "TITLE").into(),
            Some(scalar_id_or_zero(d.get("CATEGORY_ID")).unwrap_or_else(|| "0".into())).into(),
            id(d, "STAGE_ID").into(),
            Cell::text(status),
            amount.map_or(Cell::Null, Cell::D),
            currency.into(),
            amount_base.map_or(Cell::Null, Cell::D),
            id(d, "ASSIGNED_BY_ID").into(),
            id(d, "CONTACT_ID").into(),
            id(d, "COMPANY_ID").into(),
            id(d, "LEAD_ID").into(),
            id(d, "SOURCE_ID").into(),
            loss_reason.into(),
            ts(d, "DATE_CREATE", m),
            ts(d, "DATE_MODIFY", m),
            closed,
            custom.into(),
        ];
        append(&mut b, d, "ID", &row)?;
    }
    Ok(b)
}

fn deal_history(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::DealStageHistory);
    for h in &raw.deal_history {
        let pipeline = scalar_id_or_zero(h.get("CATEGORY_ID"));
        // The history does not say who moved the deal.
        let row = [id(h, "OWNER_ID").into(), pipeline.into(), id(h, "STAGE_ID").into(), ts(h, "CREATED_TIME", m), Cell::Null];
        append(&mut b, h, "ID", &row)?;
    }
    Ok(b)
}

fn deal_items(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::DealItems);
    for p in raw.product_rows.iter().filter(|p| text(p, "ownerType").as_deref().is_none_or(|t| t == "D")) {
        let price = money(p, "price");
        let row = [
            id(p, "ownerId").into(),
            id(p, "id").into(),
            id(p, "productId").into(),
            text(p, "productName").into(),
            number(p, "quantity").into(),
            price.map_or(Cell::Null, Cell::D),
            // Bitrix24 keeps no purchase cost on a product row.
            Cell::Null,
        ];
        append(&mut b, p, "id", &row)?;
    }
    Ok(b)
}

/// docs/udfs.md §2.6: `200` is answered; the other codes map to why the call did not connect.
fn call_status(code: &str) -> &'static str {
    match code {
        "200" => "answered",
        "304" => "missed",
        "486" => "busy",
        "603" | "603-S" | "480" | "503" | "484" => "no_answer",
        _ => "failed",
    }
}

fn calls(raw: &Raw, links: &Links, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Calls);
    for c in &raw.calls {
        let call = id(c, "CALL_ID").or_else(|| id(c, "ID"));
        // 1 outgoing, 2 incoming, 3 incoming redirected, 4 callback, 5 information call.
        let direction = match int(c, "CALL_TYPE") {
            Some(2 | 3) => "inbound",
            _ => "outbound",
        };
        let code = text(c, "CALL_FAILED_CODE").unwrap_or_default();
        let phone = text(c, "PHONE_NUMBER").map(|p| phone_hash(&p, &m.phone_key));
        let deal = id(c, "CRM_ACTIVITY_ID").and_then(|a| links.activity_owner.get(&a)).filter(|(kind, _)| *kind == 2).map(|(_, owner)| owner.clone());
        let (entity, entity_id) = (text(c, "CRM_ENTITY_TYPE").unwrap_or_default(), id(c, "CRM_ENTITY_ID"));
        let pick = |kind: &str| if entity == kind { entity_id.clone() } else { None };
        let (lead, contact, company) = (pick("LEAD"), pick("CONTACT"), pick("COMPANY"));
        let row = [
            call.into(),
            id(c, "PORTAL_USER_ID").into(),
            Cell::text(direction),
            Cell::text(call_status(&code)),
            Some(code.clone()).filter(|c| !c.is_empty()).into(),
            ts(c, "CALL_START_DATE", m),
            Cell::I(int(c, "CALL_DURATION").unwrap_or(0).max(0)),
            phone.into(),
            deal.into(),
            lead.into(),
            contact.into(),
            company.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}

fn activity_kind(a: &Json) -> &'static str {
    let provider = text(a, "PROVIDER_ID").unwrap_or_default();
    match int(a, "TYPE_ID") {
        Some(1) => "meeting",
        Some(2) => "call",
        Some(3) => "task",
        Some(4) => "email",
        _ => match provider.as_str() {
            "VOXIMPLANT_CALL" | "CALL_LIST" => "call",
            "CRM_TODO" | "TASKS" | "TASKS_TASK" => "task",
            "IMOPENLINES_SESSION" | "CRM_SMS" | "CRM_NOTIFICATION" | "WHATSAPP" => "message",
            "CRM_MEETING" | "ZOOM" => "meeting",
            "CRM_EMAIL" => "email",
            _ => "other",
        },
    }
}

fn activities(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Activities);
    for a in &raw.activities {
        let owner = id(a, "OWNER_ID");
        let of = |kind: i64| if int(a, "OWNER_TYPE_ID") == Some(kind) { owner.clone() } else { None };
        let completed = flag(a, "COMPLETED").unwrap_or(false);
        let direction = match int(a, "DIRECTION") {
            Some(1) => Some("inbound"),
            Some(2) => Some("outbound"),
            _ => None,
        };
        let completed_at = if completed { time(a, "END_TIME", m).or_else(|| time(a, "LAST_UPDATED", m)) } else { None };
        let row = [
            id(a, "ID").into(),
            Cell::text(activity_kind(a)),
            direction.map_or(Cell::Null, Cell::text),
            id(a, "RESPONSIBLE_ID").into(),
            of(2).into(),
            of(1).into(),
            of(3).into(),
            of(4).into(),
            ts(a, "CREATED", m),
            ts(a, "DEADLINE", m),
            completed_at.map_or(Cell::Null, Cell::T),
            Cell::B(completed),
        ];
        append(&mut b, a, "ID", &row)?;
    }
    Ok(b)
}

fn tasks(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Tasks);
    for t in &raw.tasks {
        let bindings: Vec<String> = match t.get("ufCrmTask") {
            Some(Json::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let bound = |prefix: &str| bindings.iter().find_map(|b| b.strip_prefix(prefix).map(str::to_string));
        let closed = time(t, "closedDate", m);
        // 1 new, 2 pending, 3 in progress, 4 awaiting control, 5 completed, 6 deferred,
        // 7 declined.
        let status = match int(t, "status") {
            Some(1 | 2) => "new",
            Some(3) => "in_progress",
            Some(4) if closed.is_some() => "completed",
            Some(4) => "in_progress",
            Some(5) => "completed",
            Some(6) => "deferred",
            Some(7) => "cancelled",
            _ => "new",
        };
        let row = [
            id(t, "id").into(),
            text(t, "title").into(),
            id(t, "responsibleId").into(),
            id(t, "createdBy").into(),
            bound("D_").into(),
            bound("L_").into(),
            ts(t, "createdDate", m),
            ts(t, "deadline", m),
            ts(t, "dateStart", m),
            if status == "completed" { closed.map_or(Cell::Null, Cell::T) } else { Cell::Null },
            Cell::text(status),
        ];
        append(&mut b, t, "id", &row)?;
    }
    Ok(b)
}

// ---- field readers: tolerant of the portal's string/number/empty variants ----

/// A text field; empty strings, `{}` and nulls are absent.
pub(super) fn text(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn scalar_id(v: &Json) -> Option<String> {
    match v {
        Json::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        Json::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
        _ => None,
    }
}

/// An id where `0` is a real value (category 0).
fn scalar_id_or_zero(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A reference: `"0"`, `""` and null mean none.
pub(super) fn id(record: &Json, key: &str) -> Option<String> {
    record.get(key).and_then(scalar_id)
}

fn int(record: &Json, key: &str) -> Option<i64> {
    match record.get(key)? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn number(record: &Json, key: &str) -> Option<f64> {
    match record.get(key)? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(record: &Json, key: &str) -> Option<bool> {
    match record.get(key)? {
        Json::Bool(b) => Some(*b),
        Json::String(s) => match s.as_str() {
            "Y" | "y" | "1" | "true" => Some(true),
            "N" | "n" | "0" | "false" => Some(false),
            _ => None,
        },
        Json::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Money in cents: "19999.99", "100.0000" (more places are rounded), or a number.
fn money(record: &Json, key: &str) -> Option<i128> {
    let t = text(record, key)?;
    parse_decimal(&t, 2).ok().or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| (f * 100.0).round() as i128))
}

/// A value of a custom field as text (a list field may hold an array).
fn field_text(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::Array(items) => items.iter().find_map(scalar_id),
        other => scalar_id(other),
    }
}

/// An instant: ISO with the portal's offset, or the portal's display formats
/// (`24.08.2023 13:19:39`, `2024-08-29 10:30:11`) in its zone.
pub(super) fn time(record: &Json, key: &str, m: &Mapping) -> Option<i64> {
    let t = text(record, key)?;
    if let Ok(micros) = parse_timestamp(&t, m.timezone) {
        return Some(micros);
    }
    let naive = NaiveDateTime::parse_from_str(&t, "%d.%m.%Y %H:%M:%S").ok()?;
    m.timezone.from_local_datetime(&naive).earliest().map(|d| d.timestamp_micros())
}

fn ts(record: &Json, key: &str, m: &Mapping) -> Cell {
    time(record, key, m).map_or(Cell::Null, Cell::T)
}

fn join_name(parts: &[Option<String>]) -> Option<String> {
    let name = parts.iter().flatten().map(String::as_str).collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> Mapping {
        Mapping { timezone: chrono_tz::Europe::Moscow, loss_reason_field: None, phone_key: b"k".to_vec() }
    }

    #[test]
    fn portal_values_are_normalised() {
        let r = json!({"A": "0", "B": "", "C": "37", "D": 5, "T": "24.08.2023 13:19:39", "U": "2025-09-01T14:00:00+03:00", "M": "0.0000", "N": "19999.99"});
        assert_eq!(id(&r, "A"), None);
        assert_eq!(id(&r, "B"), None);
        assert_eq!(id(&r, "C").as_deref(), Some("37"));
        assert_eq!(id(&r, "D").as_deref(), Some("5"));
        assert_eq!(time(&r, "T", &mapping()), Some(1_692_872_379_000_000));
        assert_eq!(time(&r, "U", &mapping()), Some(1_756_724_400_000_000));
        assert_eq!(money(&r, "M"), Some(0));
        assert_eq!(money(&r, "N"), Some(1_999_999));
    }

    #[test]
    fn phone_numbers_hash_by_digits() {
        assert_eq!(phone_hash("+7 (916) 555-00-00", b"k"), phone_hash("89165550000", b"k"));
        assert_ne!(phone_hash("+79165550000", b"k"), phone_hash("+79165550000", b"other"));
    }

    #[test]
    fn rates_convert_into_the_account_currency() {
        let rates = Rates::new(&[json!({"CURRENCY": "RUB", "AMOUNT": "1.0000", "AMOUNT_CNT": 1, "BASE": "Y"}), json!({"CURRENCY": "USD", "AMOUNT": "90.0000", "AMOUNT_CNT": 1, "BASE": "N"}), json!({"CURRENCY": "KZT", "AMOUNT": "18.0000", "AMOUNT_CNT": 100, "BASE": "N"})]);
        assert_eq!(rates.to_base(100, Some("USD")), Some(9000));
        assert_eq!(rates.to_base(10000, Some("KZT")), Some(1800));
        assert_eq!(rates.to_base(100, Some("RUB")), Some(100));
        assert_eq!(rates.to_base(100, Some("XXX")), None);
    }
}
