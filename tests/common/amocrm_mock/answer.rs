//! One HTTP answer of the mock: status, Content-Type and body, in the shapes the vendor
//! uses (HAL+JSON, problem+json, the empty 204, the gateway's nginx HTML pages).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ERROR_BLOCKED_HTML, ERROR_UNAUTHORIZED, HAL_JSON, PROBLEM_JSON, TEXT_HTML};

/// One HTTP answer: status, Content-Type (none for a 204) and body bytes.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    content_type: Option<&'static str>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn new(status: StatusCode, content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer { status, content_type: Some(content_type), body: body.into() }
    }

    pub(super) fn json(status: StatusCode, content_type: &'static str, body: &Value) -> Answer {
        Answer::new(status, content_type, serde_json::to_vec(body).unwrap())
    }

    pub(super) fn hal(body: &Value) -> Answer {
        Answer::json(StatusCode::OK, HAL_JSON, body)
    }

    /// Code 2002 "nothing found": 204 with an empty body and no Content-Type.
    pub(super) fn no_content() -> Answer {
        Answer { status: StatusCode::NO_CONTENT, content_type: None, body: Vec::new() }
    }

    pub(super) fn problem(status: StatusCode, detail: &str) -> Answer {
        let title = status.canonical_reason().unwrap_or("Error");
        let body = json!({"title": title, "type": format!("https://httpstatus.es/{}", status.as_u16()), "status": status.as_u16(), "detail": detail});
        Answer::json(status, PROBLEM_JSON, &body)
    }

    pub(super) fn unauthorized() -> Answer {
        Answer::new(StatusCode::UNAUTHORIZED, PROBLEM_JSON, ERROR_UNAUTHORIZED)
    }

    pub(super) fn blocked() -> Answer {
        Answer::new(StatusCode::FORBIDDEN, TEXT_HTML, ERROR_BLOCKED_HTML)
    }

    pub(super) fn into_response(self) -> Response {
        match self.content_type {
            Some(ct) => (self.status, [(header::CONTENT_TYPE, ct)], self.body).into_response(),
            None => self.status.into_response(),
        }
    }
}

/// An nginx error page, as the gateway sends it.
pub(super) fn nginx_page(status: StatusCode) -> Answer {
    let s = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{s} {reason}</title></head>\r\n<body>\r\n<center><h1>{s} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    Answer::new(status, TEXT_HTML, page)
}
