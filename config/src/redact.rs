//! Secrets out of messages: an error that reaches `/health`, `system.refreshes`, a log line
//! or a client must not carry a webhook secret or a token, whatever produced it (a CRM's
//! redirect `Location`, a URL in a transport error, an echoed header).
//!
//! Every URL keeps its scheme and host and loses its path, query and user info (a Bitrix24
//! webhook is `https://PORTAL/rest/USER/SECRET/`); a bearer or basic credential keeps its
//! kind only; `name=value` pairs whose name says token, secret, password, code or key keep
//! their name only.

/// `text` with the secrets it may hold replaced by `…`.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        let end = after.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '}' | ',')).unwrap_or(after.len());
        let url = &after[..end];
        let authority = url.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        out.push_str(host);
        if url.len() > authority.len() || authority.contains('@') {
            out.push_str("/…");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    redact_credentials(&out)
}

fn redact_credentials(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut hide_next = false;
    for word in text.split(' ') {
        if hide_next && !word.is_empty() {
            words.push("…".to_string());
            hide_next = false;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if lower == "bearer" || lower == "basic" {
            hide_next = true;
            words.push(word.to_string());
            continue;
        }
        words.push(redact_pairs(word));
    }
    words.join(" ")
}

/// `access_token=abc&x=1` → `access_token=…&x=1`.
fn redact_pairs(word: &str) -> String {
    const SECRET_NAMES: [&str; 6] = ["token", "secret", "password", "code", "key", "auth"];
    if !word.contains('=') {
        return word.to_string();
    }
    word.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_NAMES.iter().any(|s| name.to_ascii_lowercase().contains(s)) => format!("{name}=…"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn webhook_urls_tokens_and_pairs_lose_their_secrets() {
        let e = "the portal answers with a redirect to https://new.bitrix24.ru/rest/1/s3cr3tc0de/crm.deal.list (moved?)";
        let r = redact_secrets(e);
        assert!(!r.contains("s3cr3tc0de"), "{r}");
        assert!(r.contains("https://new.bitrix24.ru/…"), "{r}");
        assert_eq!(redact_secrets("GET https://user:pw@h.example/x?access_token=abc failed"), "GET https://h.example/… failed");
        assert_eq!(redact_secrets("header Authorization: Bearer abc.def.ghi was refused"), "header Authorization: Bearer … was refused");
        assert_eq!(redact_secrets("client_secret=xyz&grant_type=refresh_token"), "client_secret=…&grant_type=refresh_token");
        assert_eq!(redact_secrets("nothing secret here: 3 deals"), "nothing secret here: 3 deals");
        assert_eq!(redact_secrets("https://acme.amocrm.ru"), "https://acme.amocrm.ru");
        // Whatever the input, no panic.
        for s in ["://", "a://", "://@", "x=", "=", "Bearer", "ф://ё/ж?token=й"] {
            let _ = redact_secrets(s);
        }
    }
}
