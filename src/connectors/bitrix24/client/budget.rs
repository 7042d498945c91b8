//! Each method's time budget (B-LIMIT): the `operating_reset_at` of its last envelope or
//! batch command, and how long to wait until the portal frees it.

use std::time::Duration;

use serde_json::{Value, json};

use super::Client;

impl Client {
    /// Remembers `operating_reset_at` of the method's envelope.
    pub(super) fn note_time(&self, method: &str, envelope: &Value) {
        let Some(reset) = envelope.pointer("/time/operating_reset_at") else { return };
        let at = match reset {
            Value::Number(n) => n.as_f64(),
            // One doc example has it as an ISO string.
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp() as f64).or_else(|| s.parse().ok()),
            _ => None,
        };
        if let (Some(at), Ok(mut map)) = (at, self.reset_at.lock()) {
            map.insert(method.to_string(), at);
        }
    }

    /// Remembers the `operating_reset_at` of each command of a `batch` answer under the
    /// command's method: nested calls are billed to their own methods (B-LIMIT-10).
    pub(super) fn note_command_times<'a>(&self, batch_result: &Value, commands: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (name, method) in commands {
            if let Some(time) = batch_result.pointer(&format!("/result_time/{name}")) {
                self.note_time(method, &json!({ "time": time }));
            }
        }
    }

    /// How long until the method's time budget frees up, from its last `operating_reset_at`;
    /// `None` (the backoff decides) when no envelope of the method named one.
    pub(super) fn until_reset(&self, method: &str) -> Option<Duration> {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let at = self.reset_at.lock().ok().and_then(|m| m.get(method).copied())?;
        Some(if at > now { Duration::from_secs_f64((at - now).min(900.0) + 1.0) } else { Duration::from_secs(1) })
    }
}
