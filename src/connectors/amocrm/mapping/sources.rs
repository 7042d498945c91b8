//! Where deals come from: a deal's source (its UTM tracking fields, else amoCRM's lead
//! source), the channel it names, and the `sources` rows.

use std::collections::HashSet;

use serde_json::Value as Json;

use super::fields::{id, text};
use super::{Raw, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

/// A deal's source: its UTM tracking fields when an amoCRM form filled them (the channel
/// they name is the most precise: `utm:SOURCE:MEDIUM`), else the lead source amoCRM names
/// (`with=source`, A-LEADS-5). `(id, name, channel, is_online)`.
pub(super) fn source_of(d: &Json) -> Option<(String, String, &'static str, bool)> {
    let tracking = |code: &str| -> Option<String> {
        d.get("custom_fields_values")?.as_array()?.iter().find_map(|f| {
            let named = |key: &str| f.get(key).and_then(Json::as_str).is_some_and(|v| v.eq_ignore_ascii_case(code));
            if f.get("field_type").and_then(Json::as_str) != Some("tracking_data") || !(named("field_code") || named("field_name")) {
                return None;
            }
            f.get("values")?.as_array()?.first().and_then(|v| text(v, "value")).map(|v| v.to_lowercase())
        })
    };
    if let Some(utm_source) = tracking("utm_source") {
        let medium = tracking("utm_medium");
        let (channel, online) = utm_channel(medium.as_deref().unwrap_or(""), &utm_source);
        let name = match &medium {
            Some(m) => format!("{utm_source} / {m}"),
            None => utm_source.clone(),
        };
        return Some((format!("utm:{utm_source}:{}", medium.as_deref().unwrap_or("")), name, channel, online));
    }
    let source = id(d, "source_id")?;
    let name = d.get("_embedded").and_then(|e| e.get("source")).and_then(|s| text(s, "name")).unwrap_or_else(|| format!("source {source}"));
    let (channel, online) = name_channel(&name);
    Some((source, name, channel, online))
}

/// The channel a `utm_medium` names (the usual values; `utm_source` for messengers).
fn utm_channel(medium: &str, source: &str) -> (&'static str, bool) {
    match medium {
        "cpc" | "ppc" | "cpm" | "cpa" | "paid" | "display" | "banner" | "context" | "retargeting" => ("ads", true),
        "email" | "e-mail" | "newsletter" | "mail" => ("email", true),
        "social" | "smm" | "social-media" | "paid_social" => ("social", true),
        "referral" | "partner" | "affiliate" => ("referral", true),
        "messenger" => ("messenger", true),
        _ if ["whatsapp", "telegram", "viber"].iter().any(|m| source.contains(m)) => ("messenger", true),
        _ => ("web_form", true),
    }
}

/// The channel a source's name suggests (amoCRM names sources after their inbox: a site's
/// form, a messenger, a call-back widget); `other` when nothing matches.
fn name_channel(name: &str) -> (&'static str, bool) {
    let n = name.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["whatsapp", "telegram", "viber", "вконтакте сообщ", "avito", "авито"]) {
        ("messenger", true)
    } else if has(&["обратн", "callback", "call back"]) {
        ("callback", true)
    } else if has(&["звон", "телефон", "call", "phone", "sip"]) {
        ("phone", false)
    } else if has(&["чат", "chat", "онлайн-консульт"]) {
        ("chat", true)
    } else if has(&["почт", "mail"]) {
        ("email", true)
    } else if has(&["instagram", "facebook", "vk", "вконтакте", "одноклассники", "tiktok"]) {
        ("social", true)
    } else if has(&["сайт", "site", "форма", "form", "лендинг", "landing", "tilda", "wordpress"]) {
        ("web_form", true)
    } else if has(&["реклам", "ads", "директ", "direct", "adwords"]) {
        ("ads", true)
    } else if has(&["рекоменд", "партн", "referral", "partner"]) {
        ("referral", false)
    } else if has(&["выставк", "офис", "offline", "визит"]) {
        ("offline", false)
    } else {
        ("other", false)
    }
}

/// One row per source the deals read name (the merge keeps the previous snapshot's rows
/// for sources of deals not read again, `merge::rebuild_sources`).
pub(super) fn sources(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Sources);
    let mut seen = HashSet::new();
    for d in &raw.leads {
        let Some((source, name, channel, online)) = source_of(d) else { continue };
        if seen.insert(source.clone()) {
            append(&mut b, d, &[Cell::S(source), Cell::S(name), Cell::text(channel), Cell::B(online)])?;
        }
    }
    Ok(b)
}
