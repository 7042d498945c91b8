//! The portal's answers other than results: JSON error bodies (a fixture's, or a code and a
//! description) and the nginx-style HTML pages a portal under load sends.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fixture_json;

/// An error answer: its HTTP status and JSON body.
pub(super) struct ErrorReply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl ErrorReply {
    pub(super) fn fixture(status: StatusCode, text: &str) -> ErrorReply {
        ErrorReply { status, body: fixture_json(text) }
    }

    pub(super) fn new(status: StatusCode, code: &str, description: &str) -> ErrorReply {
        ErrorReply { status, body: json!({"error": code, "error_description": description}) }
    }
}

pub(super) fn reply(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

pub(super) fn reply_error(e: ErrorReply) -> Response {
    reply(e.status, serde_json::to_vec(&e.body).unwrap())
}

pub(super) fn html_page(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let reason = code.canonical_reason().unwrap_or("Error");
    let s = code.as_u16();
    let page = format!(
        "<html>\r\n<head><title>{s} {reason}</title></head>\r\n<body>\r\n<center><h1>{s} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}
