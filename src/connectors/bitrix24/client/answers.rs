//! Sorting an answer into done, passing and final: the error codes and limits of
//! docs/connectors/bitrix24-conformance.md § B-GEN and § B-LIMIT, for whole calls and for the
//! commands of a `batch`.

use serde_json::Value;

use super::{Client, Endpoint, Reply};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::http::{Answer, Verdict};

impl Client {
    /// Sorts an answer into done, passing and final: the error codes and limits of
    /// docs/connectors/bitrix24-conformance.md § B-GEN and § B-LIMIT.
    pub(super) fn judge(&self, method: &str, answer: Answer) -> Verdict<Reply> {
        let status = answer.status;
        if status.is_redirection() {
            // The Location of a moved portal holds the webhook secret: only its host is told.
            let to = salespulse_config::redact::redact_secrets(answer.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("?"));
            return Verdict::Fail(format!(
                "the portal answers with a redirect to {to} (the portal's address changed?); update the webhook URL in {}",
                self.credential_key
            ));
        }
        if answer.is_html() {
            return Verdict::Retry { reason: format!("HTTP {status} with an HTML page instead of JSON"), after: answer.retry_after() };
        }
        let parsed: Value = match serde_json::from_slice(&answer.body) {
            Ok(v) => v,
            Err(e) if status.is_success() => return Verdict::Retry { reason: format!("HTTP {status} with a cut-off or invalid JSON body ({e})"), after: None },
            Err(_) if status.is_server_error() || status.as_u16() == 429 => {
                return Verdict::Retry { reason: format!("HTTP {status}: {}", answer.excerpt()), after: answer.retry_after() };
            }
            Err(_) => return Verdict::Fail(format!("HTTP {status} with a body that is not JSON: {}", answer.excerpt())),
        };
        match parsed.get("error").filter(|e| !e.is_null()) {
            None if status.is_success() && parsed.get("result").is_some() => Verdict::Done(Reply::Ok(parsed)),
            None if status.is_server_error() => Verdict::Retry { reason: format!("HTTP {status}"), after: answer.retry_after() },
            None => Verdict::Fail(format!("HTTP {status} without a result: {}", answer.excerpt())),
            Some(code) => {
                let code = match code {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let description = parsed.get("error_description").and_then(Value::as_str).unwrap_or("").to_string();
                match self.classify(method, &code, &description, status.as_u16()) {
                    ErrorKind::Passing => Verdict::Retry { reason: format!("{code}: {description}"), after: answer.retry_after() },
                    ErrorKind::OperatingLimit => Verdict::Retry { reason: format!("{code}: {description}"), after: self.until_reset(method) },
                    ErrorKind::Final(message) => Verdict::Fail(message),
                    ErrorKind::Expired => Verdict::Done(Reply::Expired),
                }
            }
        }
    }

    pub(super) fn classify(&self, method: &str, code: &str, description: &str, status: u16) -> ErrorKind {
        let key = &self.credential_key;
        match code {
            "QUERY_LIMIT_EXCEEDED" | "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => ErrorKind::Passing,
            "OPERATION_TIME_LIMIT" => ErrorKind::OperatingLimit,
            "expired_token" | "invalid_token" if matches!(self.endpoint, Endpoint::OAuth { .. }) => ErrorKind::Expired,
            "NO_AUTH_FOUND" | "INVALID_CREDENTIALS" | "expired_token" | "invalid_token" | "WRONG_AUTH_TYPE" => ErrorKind::Final(format!(
                "the portal refused the credentials ({code}: {description}); check {key}{}",
                if matches!(self.endpoint, Endpoint::Webhook(_)) { " (the current webhook URL, https://PORTAL/rest/USER/CODE/)" } else { "" }
            )),
            "insufficient_scope" | "ACCESS_DENIED" | "user_access_error" => ErrorKind::Final(format!(
                "the webhook may not call {method} ({code}); give it the scope '{}' in Bitrix24 (Applications → Developer resources → the webhook) or use one that has it; `salespulse check` lists what is missing",
                scope_of(method)
            )),
            "ERROR_METHOD_NOT_FOUND" => ErrorKind::Final(format!(
                "the portal has no method {method} for this webhook; it usually means the webhook lacks the scope '{}'",
                scope_of(method)
            )),
            "OVERLOAD_LIMIT" => ErrorKind::Final("the portal blocked REST access (OVERLOAD_LIMIT, a manual block); contact Bitrix24 support".into()),
            "PORTAL_DELETED" => ErrorKind::Final(format!("the portal is deleted (PORTAL_DELETED); check the webhook URL in {key}")),
            _ if status >= 500 => ErrorKind::Passing,
            _ => ErrorKind::Final(format!("{method} was refused: {} {description}", if code.is_empty() { "(no code)" } else { code })),
        }
    }
}

/// A sub-command's `{error, error_description}` (the code may be empty or a number).
pub(super) fn error_of(e: &Value) -> (String, String) {
    let code = match e.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    (code, e.get("error_description").and_then(Value::as_str).unwrap_or("").to_string())
}

/// What a refusal means: retry soon, retry once the method's time budget is free, refresh
/// the OAuth token, or give up with this message.
pub(super) enum ErrorKind {
    Passing,
    OperatingLimit,
    Expired,
    Final(String),
}

/// The webhook scope a method needs.
pub(super) fn scope_of(method: &str) -> &'static str {
    match method {
        m if m.starts_with("crm.") => "crm",
        m if m.starts_with("user.") => "user",
        m if m.starts_with("department.") => "department",
        m if m.starts_with("voximplant.") => "telephony",
        m if m.starts_with("tasks.") => "task",
        _ => "crm",
    }
}

pub(super) fn shape(method: &str, message: &str) -> Bitrix24Error {
    Bitrix24Error::Shape { method: method.into(), message: message.into() }
}
