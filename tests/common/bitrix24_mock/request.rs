//! Request parameters: a body is a JSON object or, as PHP reads forms, a query string; a
//! PHP-style query (`a[b]=1&c[]=2`, in URLs and in `batch` commands) becomes that JSON.

use serde_json::{Map, Value, json};

/// The JSON object of a request body; an empty body is `{}`. A body that is not JSON is
/// read as a PHP-style query string.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Array(a)) if a.is_empty() => Ok(json!({})),
        Ok(_) => Err("The request body must be a JSON object".into()),
        Err(e) => match std::str::from_utf8(body) {
            Ok(text) if text.contains('=') && !text.trim_start().starts_with('{') => Ok(parse_php_query(text.trim())),
            _ => Err(format!("Invalid JSON: {e}")),
        },
    }
}

enum Segment {
    Key(String),
    Push,
}

/// A PHP-style urlencoded query (`order[ID]=ASC&filter[%3EID]=5&select[]=*`) as the JSON a
/// POST body would carry: `a[b]` nests objects, `a[]` appends to arrays, objects keyed
/// 0..n become arrays. Values stay strings, as PHP sees them.
pub fn parse_php_query(query: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (base, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (&key[..], ""),
        };
        if base.is_empty() {
            continue;
        }
        let mut path = vec![Segment::Key(base.to_string())];
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            let name = &inner[..end];
            path.push(if name.is_empty() { Segment::Push } else { Segment::Key(name.to_string()) });
            rest = &inner[end + 1..];
        }
        insert_at(&mut root, &path, Value::String(value.into_owned()));
    }
    listify(&mut root);
    root
}

fn insert_at(node: &mut Value, path: &[Segment], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    match (first, &*node) {
        (Segment::Push, Value::Array(_) | Value::Object(_)) | (Segment::Key(_), Value::Object(_)) => {}
        (Segment::Key(_), Value::Array(a)) => {
            let m: Map<String, Value> = a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect();
            *node = Value::Object(m);
        }
        (Segment::Push, _) => *node = Value::Array(Vec::new()),
        (Segment::Key(_), _) => *node = Value::Object(Map::new()),
    }
    let child = match (first, node) {
        (Segment::Push, Value::Array(a)) => {
            a.push(Value::Null);
            a.last_mut().unwrap()
        }
        (Segment::Push, Value::Object(m)) => {
            let k = m.len().to_string();
            m.entry(k).or_insert(Value::Null)
        }
        (Segment::Key(k), Value::Object(m)) => m.entry(k.clone()).or_insert(Value::Null),
        _ => unreachable!("the node was made a container above"),
    };
    insert_at(child, rest, value);
}

fn listify(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(listify);
            if !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string())) {
                let items = (0..m.len()).map(|i| m[&i.to_string()].clone()).collect();
                *v = Value::Array(items);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(listify),
        _ => {}
    }
}
