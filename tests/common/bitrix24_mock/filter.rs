//! Filters: each key's prefix (`>=`, `!@`, `%`, …) is the comparison, the rest the field;
//! a record matches when every condition holds.

use std::cmp::Ordering as CmpOrdering;

use serde_json::{Map, Value};

use super::listing::field;
use super::values::{compare_values, text, values_equal};

/// How a condition compares (the prefix of its key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Like,
}

#[derive(Debug)]
pub(super) struct Condition {
    pub(super) field: String,
    pub(super) op: Op,
    pub(super) value: Value,
}

pub(super) fn parse_filter(filter: &Map<String, Value>) -> Vec<Condition> {
    const PREFIXES: [(&str, Op); 10] = [
        ("!@", Op::NotIn),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("@", Op::In),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("!", Op::Ne),
        ("%", Op::Like),
    ];
    filter
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("logic"))
        .map(|(key, value)| {
            let (op, name) = PREFIXES.iter().find_map(|(p, op)| key.strip_prefix(p).map(|rest| (*op, rest))).unwrap_or((Op::Eq, key.as_str()));
            Condition { field: name.to_string(), op, value: value.clone() }
        })
        .collect()
}

impl Condition {
    pub(super) fn matches(&self, row: &Value) -> bool {
        let found = field(row, &self.field);
        // Record values that are arrays (UF_DEPARTMENT, ufCrmTask) match when any element does.
        let values: Vec<&Value> = match found {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
        };
        let wanted: Vec<&Value> = match &self.value {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let equal_any = || values.iter().any(|v| wanted.iter().any(|w| values_equal(v, w)));
        let compare = |accept: fn(CmpOrdering) -> bool| {
            // An empty value for a comparison is what an unresolved `$result[…]` reference
            // of a batch becomes; the portal then drops the condition, so it always holds.
            if self.value.as_str() == Some("") {
                return true;
            }
            values.iter().any(|v| compare_values(v, &self.value).is_some_and(accept))
        };
        match self.op {
            Op::Eq | Op::In => equal_any(),
            Op::Ne | Op::NotIn => !equal_any(),
            Op::Gt => compare(|o| o == CmpOrdering::Greater),
            Op::Ge => compare(|o| o != CmpOrdering::Less),
            Op::Lt => compare(|o| o == CmpOrdering::Less),
            Op::Le => compare(|o| o != CmpOrdering::Greater),
            Op::Like => {
                let needle = text(&self.value).unwrap_or_default().to_lowercase();
                values.iter().any(|v| text(v).is_some_and(|t| t.to_lowercase().contains(&needle)))
            }
        }
    }
}
