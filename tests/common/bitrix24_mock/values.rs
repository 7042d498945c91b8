//! How the portal reads a JSON value: as a number (numeric strings too), an RFC 3339 instant,
//! a Y/N flag or text; comparisons and sort keys built on those readings.

use std::cmp::Ordering as CmpOrdering;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

pub(super) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            let numeric = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c)) && s.bytes().any(|c| c.is_ascii_digit());
            if numeric { s.parse().ok() } else { None }
        }
        _ => None,
    }
}

fn as_instant(v: &Value) -> Option<DateTime<FixedOffset>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "true" | "1" => Some(true),
            "n" | "false" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn truthy(v: &Value) -> bool {
    as_bool(v).unwrap_or(false)
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "Y" } else { "N" }.into()),
        _ => None,
    }
}

/// Numbers when both sides are numeric, instants when both are RFC 3339, else strings.
pub(super) fn compare_values(a: &Value, b: &Value) -> Option<CmpOrdering> {
    if let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) {
        return x.partial_cmp(&y);
    }
    if let (Some(x), Some(y)) = (as_instant(a), as_instant(b)) {
        return Some(x.cmp(&y));
    }
    Some(text(a)?.cmp(&text(b)?))
}

pub(super) fn values_equal(a: &Value, b: &Value) -> bool {
    if a.is_boolean() || b.is_boolean() {
        return matches!((as_bool(a), as_bool(b)), (Some(x), Some(y)) if x == y);
    }
    compare_values(a, b) == Some(CmpOrdering::Equal)
}

/// A sort key computed once per row.
#[derive(Debug)]
pub(super) enum SortKey {
    Missing,
    Num(f64),
    Time(DateTime<FixedOffset>),
    Text(String),
}

impl SortKey {
    pub(super) fn of(v: Option<&Value>) -> SortKey {
        match v {
            None | Some(Value::Null) => SortKey::Missing,
            Some(v) => {
                if let Some(f) = as_f64(v) {
                    SortKey::Num(f)
                } else if let Some(t) = as_instant(v) {
                    SortKey::Time(t)
                } else {
                    text(v).map_or(SortKey::Missing, SortKey::Text)
                }
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Missing => 0,
            SortKey::Num(_) => 1,
            SortKey::Time(_) => 2,
            SortKey::Text(_) => 3,
        }
    }

    pub(super) fn cmp(&self, other: &SortKey) -> CmpOrdering {
        match (self, other) {
            (SortKey::Num(a), SortKey::Num(b)) => a.partial_cmp(b).unwrap_or(CmpOrdering::Equal),
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// `c2` before `c10`: a non-digit prefix, then the numeric suffix.
pub(super) fn natural_cmp(a: &str, b: &str) -> CmpOrdering {
    let split = |s: &str| {
        let digits = s.len() - s.bytes().rev().take_while(u8::is_ascii_digit).count();
        (s[..digits].to_string(), s[digits..].parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}
