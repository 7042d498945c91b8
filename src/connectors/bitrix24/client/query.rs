//! A list command's query string for `batch`, PHP style (`filter[%3EID]=5&order[ID]=ASC&select[]=*`).

use serde_json::Value;

use super::ListSpec;

pub(super) fn percent(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The first page of a list with its count (`start=0`).
pub(super) fn command_query_counted(spec: &ListSpec) -> String {
    let mut parts = Vec::new();
    for (key, value) in &spec.params {
        flatten(&percent(key), value, &mut parts);
    }
    for (key, value) in &spec.filter {
        flatten(&format!("{}[{}]", spec.filter_param, percent(key)), value, &mut parts);
    }
    parts.push("start=0".into());
    parts.join("&")
}

/// A batch command's query, PHP style (`filter[%3EID]=5&order[ID]=ASC&select[]=*&start=-1`).
/// `after` goes in as it is: a `$result[…]` reference must stay literal for the portal to
/// substitute it.
pub(super) fn command_query(spec: &ListSpec, after: &str) -> String {
    let mut parts = Vec::new();
    for (key, value) in &spec.params {
        flatten(&percent(key), value, &mut parts);
    }
    for (key, value) in &spec.filter {
        flatten(&format!("{}[{}]", spec.filter_param, percent(key)), value, &mut parts);
    }
    parts.push(format!("{}[{}]={after}", spec.filter_param, percent(spec.keyset_key)));
    parts.push("start=-1".into());
    parts.join("&")
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}[{}]", percent(k)), v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                flatten(&format!("{prefix}[]"), v, out);
            }
        }
        Value::String(s) => out.push(format!("{prefix}={}", percent(s))),
        Value::Null => out.push(format!("{prefix}=")),
        other => out.push(format!("{prefix}={other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_commands_are_php_queries_with_literal_references() {
        let spec = ListSpec::crm("crm.deal.list").with("select", json!(["*", "UF_*"])).filter(">=DATE_MODIFY", json!("2025-09-01T00:00:00+03:00"));
        let q = command_query(&spec, "$result[c00][49][ID]");
        assert_eq!(
            q,
            "order[ID]=ASC&select[]=*&select[]=UF_*&filter[%3E%3DDATE_MODIFY]=2025-09-01T00%3A00%3A00%2B03%3A00&filter[%3EID]=$result[c00][49][ID]&start=-1"
        );
    }
}
