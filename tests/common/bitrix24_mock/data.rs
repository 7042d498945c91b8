//! The portal's records from the fixture files ([`MockData::fixtures`]), the synthetic ones
//! no fixture file has (currencies, SOURCE statuses, product rows, account amounts), and
//! the helpers that read and move records (also used by `generated.rs`).

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde_json::{Value, json};

use super::timing::iso;
use super::values::as_f64;
use super::{DEAL_FAST_START_MINUS1, DEAL_PAGE1, DEAL_PAGE2_LAST, MockData, fixture_rows};

const PRODUCTS: [(u64, &str); 5] =
    [(7, "CRM license, 1 year"), (8, "Implementation"), (9, "Training day"), (10, "Support package"), (11, "Telephony module")];

pub(super) fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub(super) fn date_of(row: &Value, name: &str) -> DateTime<FixedOffset> {
    at(row[name].as_str().unwrap_or_else(|| panic!("{name} of {row}")))
}

pub(super) fn str_of<'a>(row: &'a Value, name: &str) -> &'a str {
    row[name].as_str().unwrap_or("")
}

/// Moves every ISO date-time field of a record by `delta`.
pub(super) fn shift_dates(row: &mut Value, delta: TimeDelta) {
    if let Value::Object(m) = row {
        for v in m.values_mut() {
            if let Value::String(s) = v
                && let Ok(t) = DateTime::parse_from_rfc3339(s)
            {
                *v = Value::String(iso(t + delta));
            }
        }
    }
}

pub(super) fn by_id(rows: &[Value], id: &str) -> Value {
    rows.iter().find(|r| str_of(r, "ID") == id).unwrap().clone()
}

pub(super) fn contact_phone(k: usize) -> String {
    format!("+7916{:07}", 5_550_000 + k)
}

pub(super) fn company_phone(c: usize) -> String {
    format!("+7495{:07}", 1_230_000 + c)
}

pub(super) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `crm.status.list` rows of ENTITY_ID SOURCE (no fixture file has them).
fn source_statuses() -> Vec<Value> {
    [
        ("CALL", "Call"),
        ("EMAIL", "E-mail"),
        ("WEB", "Website"),
        ("ADVERTISING", "Advertising"),
        ("PARTNER", "Partner"),
        ("RECOMMENDATION", "Recommendation"),
        ("CALLBACK", "Callback"),
        ("OTHER", "Other"),
    ]
    .iter()
    .enumerate()
    .map(|(k, (id, name))| {
        json!({
            "ID": (301 + 2 * k).to_string(), "ENTITY_ID": "SOURCE", "STATUS_ID": id, "NAME": name,
            "NAME_INIT": name, "SORT": ((k + 1) * 10).to_string(), "SYSTEM": "Y", "CATEGORY_ID": null,
            "COLOR": null, "SEMANTICS": null,
        })
    })
    .collect()
}

fn currencies() -> Vec<Value> {
    vec![
        json!({"CURRENCY": "RUB", "AMOUNT_CNT": 1, "AMOUNT": "1.0000", "BASE": "Y", "SORT": 100}),
        json!({"CURRENCY": "USD", "AMOUNT_CNT": 1, "AMOUNT": "90.0000", "BASE": "N", "SORT": 200}),
        json!({"CURRENCY": "EUR", "AMOUNT_CNT": 1, "AMOUNT": "100.0000", "BASE": "N", "SORT": 300}),
    ]
}

/// The rate of a deal's last save (portals keep `OPPORTUNITY_ACCOUNT` at it): today's rate
/// of `crm.currency.list` moved by up to ±3 % by the deal's id, so converting at today's
/// rates is off for most foreign-currency deals.
fn rate_at_save(currency: &str, deal_id: u64) -> f64 {
    let today = rate(currency);
    if today == 1.0 { 1.0 } else { today * (1.0 + ((splitmix(deal_id) % 601) as f64 - 300.0) / 10_000.0) }
}

/// Sets `OPPORTUNITY_ACCOUNT` and `ACCOUNT_CURRENCY_ID` (RUB) as a portal reports them.
pub fn account_amount(deal: &mut Value) {
    let amount = as_f64(&deal["OPPORTUNITY"]).unwrap_or(0.0);
    let id: u64 = str_of(deal, "ID").parse().unwrap_or(0);
    let account = (amount * rate_at_save(str_of(deal, "CURRENCY_ID"), id) * 100.0).round() / 100.0;
    deal["OPPORTUNITY_ACCOUNT"] = json!(format!("{account:.2}"));
    deal["ACCOUNT_CURRENCY_ID"] = json!("RUB");
}

fn rate(currency: &str) -> f64 {
    match currency {
        "USD" => 90.0,
        "EUR" => 100.0,
        _ => 1.0,
    }
}

/// `crm.item.productrow.list` items summing to each deal's OPPORTUNITY: even-indexed deals
/// get two rows (30 % ×2 + the rest ×1), odd ones one row. Ids from 1.
pub(super) fn product_rows_for(deals: &[Value]) -> Vec<Value> {
    let mut rows = Vec::new();
    for (i, deal) in deals.iter().enumerate() {
        let cents = (as_f64(&deal["OPPORTUNITY"]).unwrap_or(0.0) * 100.0).round() as i64;
        let currency = str_of(deal, "CURRENCY_ID");
        let owner: u64 = str_of(deal, "ID").parse().unwrap();
        let lines = if i % 2 == 0 {
            let a = cents * 3 / 10;
            vec![(a, 2.0), (cents - 2 * a, 1.0)]
        } else {
            vec![(cents, 1.0)]
        };
        for (k, (price_cents, quantity)) in lines.into_iter().enumerate() {
            let (product_id, product_name) = PRODUCTS[(i + k) % PRODUCTS.len()];
            let price = price_cents as f64 / 100.0;
            rows.push(json!({
                "id": rows.len() + 1, "ownerId": owner, "ownerType": "D", "productId": product_id,
                "productName": product_name, "price": price, "priceAccount": (price * rate(currency) * 100.0).round() / 100.0,
                "priceExclusive": price, "priceNetto": price, "priceBrutto": price, "quantity": quantity,
                "discountTypeId": 2, "discountRate": 0.0, "discountSum": 0.0, "taxRate": null, "taxIncluded": "N",
                "customized": "Y", "measureCode": 796, "measureName": "pcs", "sort": 10 * (k + 1), "type": 1, "storeId": 0,
            }));
        }
    }
    rows
}

impl MockData {
    /// The records of the fixture files (deals of page 1, page 2 and the start=-1 page, by
    /// ID once). No fixture file has currencies, SOURCE statuses or product rows: those are
    /// the synthetic ones [`MockData::generated`] also has.
    pub fn fixtures() -> MockData {
        let mut deals: Vec<Value> = Vec::new();
        for page in [DEAL_PAGE1, DEAL_PAGE2_LAST, DEAL_FAST_START_MINUS1] {
            for d in fixture_rows(page, None) {
                if !deals.iter().any(|x| x["ID"] == d["ID"]) {
                    deals.push(d);
                }
            }
        }
        let mut statuses = fixture_rows(fixture!("crm.status.list_DEAL_STAGE.json"), None);
        statuses.extend(fixture_rows(fixture!("crm.status.list_DEAL_STAGE_1.json"), None));
        statuses.extend(fixture_rows(fixture!("crm.status.list_STATUS.json"), None));
        statuses.extend(source_statuses());
        // The fixture deals are the docs' examples, without OPPORTUNITY_ACCOUNT: the
        // connector converts those at crm.currency.list's rates.
        MockData {
            users: fixture_rows(fixture!("user.get.json"), None),
            departments: fixture_rows(fixture!("department.get.json"), None),
            categories: fixture_rows(fixture!("crm.category.list_entityTypeId_2.json"), Some("categories")),
            statuses,
            currencies: currencies(),
            product_rows: product_rows_for(&deals),
            deals,
            leads: fixture_rows(fixture!("crm.lead.list.json"), None),
            contacts: fixture_rows(fixture!("crm.contact.list.json"), None),
            companies: fixture_rows(fixture!("crm.company.list.json"), None),
            activities: fixture_rows(fixture!("crm.activity.list.json"), None),
            deal_stage_history: fixture_rows(fixture!("crm.stagehistory.list_deals.json"), Some("items")),
            lead_stage_history: fixture_rows(fixture!("crm.stagehistory.list_leads.json"), Some("items")),
            calls: fixture_rows(fixture!("voximplant.statistic.get.json"), None),
            tasks: fixture_rows(fixture!("tasks.task.list.json"), Some("tasks")),
        }
    }
}
