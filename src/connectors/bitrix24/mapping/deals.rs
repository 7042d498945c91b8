//! Deals (with amounts in the account currency), their stage history, and their product
//! rows.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::fields::{custom_fields, field_text, flag, id, money, number, scalar_id_or_zero, text, time, ts};
use super::{Mapping, Raw, append};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn deal_status(d: &Json) -> &'static str {
    match text(d, "STAGE_SEMANTIC_ID").as_deref() {
        Some("S") => "won",
        Some("F") => "lost",
        _ => "open",
    }
}

/// Exchange rates into the account currency (`crm.currency.list`: AMOUNT of the base
/// currency per AMOUNT_CNT units).
pub(super) struct Rates {
    base: Option<String>,
    per_unit: HashMap<String, f64>,
}

impl Rates {
    pub(super) fn new(currencies: &[Json]) -> Rates {
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

pub(super) fn deals(raw: &Raw, rates: &Rates, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
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

pub(super) fn deal_history(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::DealStageHistory);
    for h in &raw.deal_history {
        let pipeline = scalar_id_or_zero(h.get("CATEGORY_ID"));
        // The history does not say who moved the deal.
        let row = [id(h, "OWNER_ID").into(), pipeline.into(), id(h, "STAGE_ID").into(), ts(h, "CREATED_TIME", m), Cell::Null];
        append(&mut b, h, "ID", &row)?;
    }
    Ok(b)
}

pub(super) fn deal_items(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_convert_into_the_account_currency() {
        let rates = Rates::new(&[json!({"CURRENCY": "RUB", "AMOUNT": "1.0000", "AMOUNT_CNT": 1, "BASE": "Y"}), json!({"CURRENCY": "USD", "AMOUNT": "90.0000", "AMOUNT_CNT": 1, "BASE": "N"}), json!({"CURRENCY": "KZT", "AMOUNT": "18.0000", "AMOUNT_CNT": 100, "BASE": "N"})]);
        assert_eq!(rates.to_base(100, Some("USD")), Some(9000));
        assert_eq!(rates.to_base(10000, Some("KZT")), Some(1800));
        assert_eq!(rates.to_base(100, Some("RUB")), Some(100));
        assert_eq!(rates.to_base(100, Some("XXX")), None);
    }
}
