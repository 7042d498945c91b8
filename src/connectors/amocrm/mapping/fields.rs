//! Field readers (ids as text, `0` and empty are none; Unix seconds as microseconds) and the
//! record parts several tables share: custom fields as JSON, the first embedded id.

use serde_json::{Map, Value as Json};

use crate::connectors::sync::Cell;

// ---- field readers ----

pub(super) fn text(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An id; `0`, empty and null mean none.
pub(in crate::connectors::amocrm) fn id(record: &Json, key: &str) -> Option<String> {
    match record.get(key)? {
        Json::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
        Json::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn int(record: &Json, key: &str) -> Option<i64> {
    match record.get(key)? {
        Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn flag(record: &Json, key: &str) -> Option<bool> {
    match record.get(key)? {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Unix seconds as microseconds, UTC.
pub(in crate::connectors::amocrm) fn seconds(record: &Json, key: &str) -> Option<i64> {
    int(record, key).filter(|t| *t > 0).and_then(|t| t.checked_mul(1_000_000))
}

pub(super) fn ts(record: &Json, key: &str) -> Cell {
    seconds(record, key).map_or(Cell::Null, Cell::T)
}

impl Cell {
    pub(super) fn or(self, other: Cell) -> Cell {
        if self == Cell::Null { other } else { self }
    }
}

pub(super) fn join_name(parts: &[Option<String>]) -> Option<String> {
    let name = parts.iter().flatten().map(String::as_str).collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

/// `custom_fields_values` as a JSON object by field name: one value as itself, several as a
/// list; dates as RFC 3339 in UTC. Phones and e-mails are left out (docs/schema.md keeps only a
/// keyed hash of numbers).
pub(super) fn custom_fields(record: &Json) -> Option<String> {
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
pub(super) fn embedded_id(record: &Json, key: &str) -> Option<String> {
    let list = record.get("_embedded")?.get(key)?.as_array()?;
    let main = list.iter().find(|c| c.get("is_main").and_then(Json::as_bool) == Some(true));
    main.or_else(|| list.first()).and_then(|c| id(c, "id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
