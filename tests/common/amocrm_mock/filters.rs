//! `filter[…]` conditions (ranges, lists, flags) and the `order[…]` fields each list accepts,
//! with the sort that applies them.

use std::cmp::Ordering as CmpOrdering;

use serde_json::Value;

use super::query::Query;

#[derive(Debug)]
enum Cond {
    /// from ≤ field ≤ to, both ends inclusive and optional; a record without it fails.
    Range(&'static str, Option<i64>, Option<i64>),
    /// The field (a number or a string, compared as text) is one of these.
    AnyOf(&'static str, Vec<String>),
    Flag(&'static str, bool),
}

#[derive(Debug, Default)]
pub(super) struct Filters(Vec<Cond>);

impl Filters {
    /// `filter[name][from]`, `filter[name][to]`, or `filter[name]=ts` (that second only).
    pub(super) fn range(&mut self, q: &Query, field: &'static str) -> &mut Self {
        let num = |path: &[&str]| q.get(path).and_then(|v| v.trim().parse::<i64>().ok());
        let exact = num(&["filter", field]);
        let from = num(&["filter", field, "from"]).or(exact);
        let to = num(&["filter", field, "to"]).or(exact);
        if from.is_some() || to.is_some() {
            self.0.push(Cond::Range(field, from, to));
        }
        self
    }

    /// `filter[name]` (single or array) against the record's `field`.
    pub(super) fn any_of(&mut self, q: &Query, name: &str, field: &'static str, normalize: fn(&str) -> String) -> &mut Self {
        let values: Vec<String> = q.list(&["filter", name]).into_iter().map(normalize).collect();
        if !values.is_empty() {
            self.0.push(Cond::AnyOf(field, values));
        }
        self
    }

    /// `filter[field]=1|0|true|false`.
    pub(super) fn flag(&mut self, q: &Query, field: &'static str) -> &mut Self {
        let flag = match q.get(&["filter", field]).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "1" || v == "true" => Some(true),
            Some(v) if v == "0" || v == "false" => Some(false),
            _ => None,
        };
        if let Some(f) = flag {
            self.0.push(Cond::Flag(field, f));
        }
        self
    }

    pub(super) fn matches(&self, row: &Value) -> bool {
        self.0.iter().all(|c| match c {
            Cond::Range(field, from, to) => row[*field].as_i64().is_some_and(|v| from.is_none_or(|f| v >= f) && to.is_none_or(|t| v <= t)),
            Cond::AnyOf(field, values) => text(&row[*field]).is_some_and(|v| values.contains(&v)),
            Cond::Flag(field, f) => row[*field].as_bool() == Some(*f),
        })
    }
}

pub(super) fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

/// `leads` → `lead` (events name entities in the singular).
pub(super) fn singular(s: &str) -> String {
    match s.trim() {
        "leads" => "lead".into(),
        "contacts" => "contact".into(),
        "companies" => "company".into(),
        other => other.into(),
    }
}

/// `lead` → `leads` (URLs name entities in the plural).
pub(super) fn plural(entity: &str) -> &str {
    match entity {
        "lead" => "leads",
        "contact" => "contacts",
        "company" => "companies",
        other => other,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Numbers numerically, strings as text, null first.
fn compare_values(a: &Value, b: &Value) -> CmpOrdering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(CmpOrdering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => CmpOrdering::Equal,
        (Value::Null, _) => CmpOrdering::Less,
        (_, Value::Null) => CmpOrdering::Greater,
        _ => CmpOrdering::Equal,
    }
}

/// The orders a list accepts and its default.
#[derive(Debug)]
pub(super) struct OrderSpec {
    pub(super) fields: &'static [&'static str],
    /// (field, descending) when no accepted `order[…]` is given.
    default: (&'static str, bool),
    /// Ties on the field go by id in the same direction (events), else by id ascending.
    tie_follows: bool,
}

// The documented sort fields (A-LEADS-1, A-CONT-1, A-TASKS-2, A-NOTES-1); another is refused
// with 400 (what the API does with one is not documented, so a connector must not send it).
pub(super) const BY_ID: OrderSpec = OrderSpec { fields: &["id", "created_at", "updated_at"], default: ("id", false), tie_follows: false };
pub(super) const PARTY_ORDER: OrderSpec = OrderSpec { fields: &["id", "updated_at"], default: ("id", false), tie_follows: false };
pub(super) const TASK_ORDER: OrderSpec = OrderSpec { fields: &["id", "created_at", "complete_till"], default: ("id", false), tie_follows: false };
pub(super) const NOTE_ORDER: OrderSpec = OrderSpec { fields: &["id", "updated_at"], default: ("id", false), tie_follows: false };
pub(super) const EVENT_ORDER: OrderSpec = OrderSpec { fields: &["created_at", "id"], default: ("created_at", true), tie_follows: true };

pub(super) fn sort_rows(rows: &mut [&Value], q: &Query, spec: &OrderSpec) {
    let (field, desc) = q.order().filter(|(f, _)| spec.fields.iter().any(|x| x == f)).unwrap_or(spec.default);
    let tie_desc = spec.tie_follows && desc;
    rows.sort_by(|a, b| {
        let primary = compare_values(&a[field], &b[field]);
        let primary = if desc { primary.reverse() } else { primary };
        primary.then_with(|| {
            let tie = compare_values(&a["id"], &b["id"]);
            if tie_desc { tie.reverse() } else { tie }
        })
    });
}
