//! `batch`: up to 50 commands run in the order sent (halting on the first error if asked),
//! each billed to its own method; a command's query may use `$result[name][…]` references
//! to what an earlier command returned.

use std::fmt;

use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use super::listing::param;
use super::methods::{Outcome, check_method, execute};
use super::reply::ErrorReply;
use super::request::parse_php_query;
use super::timing::{time_object, unix_now};
use super::values::{natural_cmp, truthy};
use super::{MAX_BATCH, MockConfig, MockData, MockState};

impl MockState {
    pub(super) fn batch(&self, config: &MockConfig, params: &Value, order: Option<Vec<String>>, started: f64) -> Result<Value, ErrorReply> {
        let commands: Vec<(String, Value)> = match param(params, "cmd") {
            Some(Value::Object(m)) => {
                let names = match order {
                    Some(o) if o.len() == m.len() && o.iter().all(|n| m.contains_key(n)) => o,
                    _ => {
                        let mut names: Vec<String> = m.keys().cloned().collect();
                        names.sort_by(|a, b| natural_cmp(a, b));
                        names
                    }
                };
                names.into_iter().map(|n| (n.clone(), m[&n].clone())).collect()
            }
            Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect(),
            _ => Vec::new(),
        };
        if commands.len() > MAX_BATCH {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"));
        }
        let halt = param(params, "halt").is_some_and(truthy);
        // B-LIMIT-10: the batch itself is not billed; each nested call is, to its own
        // method, and a nested call to a method whose budget is spent fails on its own.

        let mut results = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        let mut nexts = Map::new();
        let mut times = Map::new();
        let mut rows = 0;
        {
            let data = self.data.lock().unwrap();
            for (name, command) in commands {
                let sub_start = unix_now();
                let sub_method = command.as_str().map(|c| c.split('?').next().unwrap_or("").trim_end_matches(".json").to_string()).unwrap_or_default();
                let outcome = self.check_operating(&sub_method, config).and_then(|()| self.run_command(&data, config, &command, &results));
                match outcome {
                    Ok(o) => {
                        rows += o.rows;
                        results.insert(name.clone(), o.result);
                        if let Some(t) = o.total {
                            totals.insert(name.clone(), json!(t));
                        }
                        if let Some(n) = o.next {
                            nexts.insert(name.clone(), json!(n));
                        }
                        let (reset_at, used) = self.bill(&sub_method, o.rows, config);
                        times.insert(name, time_object(sub_start, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))));
                    }
                    Err(e) => {
                        errors.insert(name, e.body);
                        if halt {
                            break;
                        }
                    }
                }
            }
        }
        let _ = rows;
        let (reset_at, used) = self.bill("batch", 0, config);
        let used = used.abs();
        // PHP encodes an empty array as `[]`, as the fixtures show.
        let php = |m: Map<String, Value>| if m.is_empty() { json!([]) } else { Value::Object(m) };
        Ok(json!({
            "result": {
                "result": php(results),
                "result_error": php(errors),
                "result_total": php(totals),
                "result_next": php(nexts),
                "result_time": php(times),
            },
            "time": time_object(started, unix_now(), (!config.omit_operating).then_some((Some(reset_at), used))),
        }))
    }

    fn run_command(&self, data: &MockData, config: &MockConfig, command: &Value, results: &Map<String, Value>) -> Result<Outcome, ErrorReply> {
        let Some(text) = command.as_str() else {
            return Err(ErrorReply::new(StatusCode::BAD_REQUEST, "INVALID_ARG_VALUE", "A batch command must be a string"));
        };
        let (method, query) = text.split_once('?').unwrap_or((text, ""));
        let method = method.strip_suffix(".json").unwrap_or(method);
        MockState::count(&self.sub_calls, method);
        if method == "batch" {
            return Err(ErrorReply::new(StatusCode::METHOD_NOT_ALLOWED, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Batch call is not allowed"));
        }
        check_method(config, method)?;
        let mut params = parse_php_query(query);
        substitute_references(&mut params, results);
        execute(data, config, method, &params)
    }
}

/// The command names of a `batch` body in the order they were sent (serde_json here has
/// no `preserve_order`, so its maps are sorted).
pub(super) fn batch_order(body: &[u8]) -> Option<Vec<String>> {
    struct Names(Vec<String>);
    impl<'de> Deserialize<'de> for Names {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Names;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object or array of commands")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        names.push(k);
                    }
                    Ok(Names(names))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while seq.next_element::<IgnoredAny>()?.is_some() {
                        names.push(names.len().to_string());
                    }
                    Ok(Names(names))
                }
            }
            d.deserialize_any(V)
        }
    }
    #[derive(Deserialize)]
    struct Body {
        cmd: Option<Names>,
    }
    serde_json::from_slice::<Body>(body).ok()?.cmd.map(|n| n.0)
}

/// Replaces `$result[cmd][k1][k2]…` in every string value with what the earlier command
/// `cmd` returned (its `result` part). A string that is one whole reference takes the
/// referenced value itself; references inside longer strings are spliced in as text. A
/// reference that cannot be resolved becomes the empty string.
///
/// The mock substitutes after URL-decoding, so a reference works percent-encoded or not.
pub fn substitute_references(v: &mut Value, results: &Map<String, Value>) {
    match v {
        Value::String(s) if s.contains("$result[") => *v = resolve_references(s, results),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute_references(x, results)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute_references(x, results)),
        _ => {}
    }
}

const REFERENCE: &str = "$result";

fn resolve_references(s: &str, results: &Map<String, Value>) -> Value {
    if let Some(after) = s.strip_prefix(REFERENCE) {
        let (keys, used) = bracket_keys(after);
        if used == after.len() && !keys.is_empty() {
            return match lookup(results, &keys) {
                None | Some(Value::Null) => Value::String(String::new()),
                Some(v) => v.clone(),
            };
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$result[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + REFERENCE.len()..];
        let (keys, used) = bracket_keys(after);
        out.push_str(&match lookup(results, &keys) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        });
        rest = &after[used.max(1)..];
    }
    out.push_str(rest);
    Value::String(out)
}

/// `[a][b]['c']` → (["a", "b", "c"], bytes consumed).
fn bracket_keys(s: &str) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut pos = 0;
    while s[pos..].starts_with('[') {
        let Some(end) = s[pos + 1..].find(']') else { break };
        let key = &s[pos + 1..pos + 1 + end];
        keys.push(key.trim_matches(|c| c == '"' || c == '\'').to_string());
        pos += end + 2;
    }
    (keys, pos)
}

fn lookup<'a>(results: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (name, path) = keys.split_first()?;
    let mut cur = results.get(name)?;
    for k in path {
        cur = match cur {
            Value::Array(a) => a.get(k.parse::<usize>().ok()?)?,
            Value::Object(m) => m.get(k)?,
            _ => return None,
        };
    }
    Some(cur)
}
