//! Field readers, tolerant of the portal's string/number/empty variants: ids as text (`"0"`
//! and `""` are none), money in cents, instants in UTC; and a record's custom fields as JSON.

use chrono::{NaiveDateTime, TimeZone};
use serde_json::{Map, Value as Json};

use super::Mapping;
use crate::connectors::files::{parse_decimal, parse_timestamp};
use crate::connectors::sync::Cell;

/// The custom fields of a record (`UF_…`, `ufCrm…`) that hold a value, as a JSON object.
pub(super) fn custom_fields(record: &Json) -> Option<String> {
    let obj = record.as_object()?;
    let custom: Map<String, Json> = obj
        .iter()
        .filter(|(k, v)| (k.starts_with("UF_") || k.starts_with("ufCrm")) && !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!custom.is_empty()).then(|| Json::Object(custom).to_string())
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

pub(super) fn scalar_id(v: &Json) -> Option<String> {
    match v {
        Json::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        Json::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
        _ => None,
    }
}

/// An id where `0` is a real value (category 0).
pub(super) fn scalar_id_or_zero(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A reference: `"0"`, `""` and null mean none.
pub(in crate::connectors::bitrix24) fn id(record: &Json, key: &str) -> Option<String> {
    record.get(key).and_then(scalar_id)
}

pub(super) fn int(record: &Json, key: &str) -> Option<i64> {
    match record.get(key)? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn number(record: &Json, key: &str) -> Option<f64> {
    match record.get(key)? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn flag(record: &Json, key: &str) -> Option<bool> {
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
pub(super) fn money(record: &Json, key: &str) -> Option<i128> {
    let t = text(record, key)?;
    parse_decimal(&t, 2).ok().or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| (f * 100.0).round() as i128))
}

/// A value of a custom field as text (a list field may hold an array).
pub(super) fn field_text(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::Array(items) => items.iter().find_map(scalar_id),
        other => scalar_id(other),
    }
}

/// An instant: ISO with the portal's offset, or the portal's display formats
/// (`24.08.2023 13:19:39`, `2024-08-29 10:30:11`) in its zone.
pub(in crate::connectors::bitrix24) fn time(record: &Json, key: &str, m: &Mapping) -> Option<i64> {
    let t = text(record, key)?;
    if let Ok(micros) = parse_timestamp(&t, m.timezone) {
        return Some(micros);
    }
    let naive = NaiveDateTime::parse_from_str(&t, "%d.%m.%Y %H:%M:%S").ok()?;
    m.timezone.from_local_datetime(&naive).earliest().map(|d| d.timestamp_micros())
}

pub(super) fn ts(record: &Json, key: &str, m: &Mapping) -> Cell {
    time(record, key, m).map_or(Cell::Null, Cell::T)
}

pub(super) fn join_name(parts: &[Option<String>]) -> Option<String> {
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
}
