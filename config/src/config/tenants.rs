//! The `[[tenants]]` entries: a name that can be an SQL catalog, a time zone, the
//! `[tenants.source]` (in `source`), the `[tenants.settings]` over the defaults, and the
//! refresh schedule.

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;

use super::raw::RawTenant;
use super::{Mistake, TenantConfig, default_settings, is_valid_tenant_name};

mod source;

/// Every `[[tenants]]` entry, validated; paths are resolved against `base`.
pub(super) fn tenants(raw: Vec<RawTenant>, base: &Path) -> Result<Vec<TenantConfig>, Mistake> {
    let mut tenants: Vec<TenantConfig> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let tenant = tenant(i, t, &tenants, base)?;
        tenants.push(tenant);
    }
    Ok(tenants)
}

/// `tenants[i]`: a name no tenant before it (`earlier`) has, then its time zone, source,
/// settings and schedule, in that order.
fn tenant(i: usize, t: RawTenant, earlier: &[TenantConfig], base: &Path) -> Result<TenantConfig, Mistake> {
    let key = |k: &str| format!("tenants[{i}] ({}).{k}", t.name);
    if !is_valid_tenant_name(&t.name) {
        return Err(Mistake::new(
            format!("tenants[{i}].name"),
            format!("'{}' must be lower-case letters, digits and _, starting with a letter (it is the SQL catalog name)", t.name),
        ));
    }
    if earlier.iter().any(|other| other.name == t.name) {
        return Err(Mistake::new(key("name"), format!("tenant '{}' is defined twice", t.name)));
    }
    let timezone: Tz = t.timezone.parse().map_err(|_| {
        Mistake::new(key("timezone"), format!("'{}' is not an IANA time zone such as Europe/Moscow", t.timezone))
    })?;
    let source = source::source(t.source, &key, base)?;
    let settings = settings(t.settings, &key)?;
    let schedule = t
        .schedule
        .as_deref()
        .map(|pattern| crate::schedule::Schedule::parse(pattern, timezone))
        .transpose()
        .map_err(|e| Mistake::new(key("schedule"), e.to_string()))?;
    Ok(TenantConfig {
        name: t.name,
        timezone,
        calendars: t.calendars.map(|c| base.join(c)),
        schedule,
        refresh_on_start: t.refresh_on_start.unwrap_or(true),
        inputs: t.inputs.map(|p| base.join(p)),
        source,
        settings,
    })
}

/// `[tenants.settings]` over [`default_settings`], as text; the whole numbers and the ABC
/// shares of docs/metrics.md must parse.
fn settings(raw: BTreeMap<String, toml::Value>, key_of: &impl Fn(&str) -> String) -> Result<BTreeMap<String, String>, Mistake> {
    let mut settings = default_settings();
    for (name, value) in raw {
        let text = match value {
            toml::Value::String(s) => s,
            other => other.to_string(),
        };
        settings.insert(name, text);
    }
    for key in ["calls.success_threshold_seconds", "calls.callback_window_hours", "sla.first_response_minutes", "discipline.stale_days"] {
        let value = &settings[key];
        if value.parse::<u32>().is_err() {
            return Err(Mistake::new(key_of(&format!("settings.\"{key}\"")), format!("'{value}' must be a whole number (seconds, hours, minutes or days), 0 or more")));
        }
    }
    let share = |key: &str| settings[key].parse::<f64>().ok().filter(|v| *v > 0.0 && *v <= 1.0);
    match (share("abc.a_share"), share("abc.b_share")) {
        (Some(a), Some(b)) if a <= b => {}
        _ => {
            return Err(Mistake::new(
                key_of("settings.\"abc.a_share\""),
                format!("abc.a_share ({}) and abc.b_share ({}) must be fractions with 0 < a ≤ b ≤ 1", settings["abc.a_share"], settings["abc.b_share"]),
            ));
        }
    }
    Ok(settings)
}
