//! Notes: the `call_in`/`call_out` ones are calls, and every note is an activity, on the deal,
//! contact or company it hangs on.

use std::collections::HashSet;

use serde_json::Value as Json;

use super::fields::{id, int, text, ts};
use super::{Context, Raw, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::{Cell, phone_hash};
use crate::model::{Table, TableBuilder};

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

pub(super) fn calls(raw: &Raw, requests: &HashSet<String>, ctx: &Context) -> Result<TableBuilder, AmoCrmError> {
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

pub(super) fn activities(raw: &Raw, requests: &HashSet<String>) -> Result<TableBuilder, AmoCrmError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_map_the_status_codes_of_udfs_2_6() {
        assert_eq!(call_status(Some(4), 64, false), "answered");
        assert_eq!(call_status(Some(6), 0, false), "no_answer");
        assert_eq!(call_status(Some(6), 0, true), "missed");
        assert_eq!(call_status(Some(7), 12, false), "busy");
        assert_eq!(call_status(Some(5), 0, false), "failed");
        assert_eq!(call_status(None, 30, true), "answered");
    }
}
