//! The KPI catalog (docs/metrics.md): one view per metric family in schema `kpi` of every tenant.
//!
//! Each view is a reviewable `.sql` file under `views/`, with `${…}` placeholders filled in
//! from the tenant at catalog build time: `${tz}` (its zone as a literal), `${taken_at}`
//! (the snapshot's instant, never the wall clock), `${calendar}` (its default working
//! calendar) and every setting (`${calls.success_threshold_seconds}`, …). Views are planned
//! in a session holding only this tenant, so their working-time functions use the tenant's
//! calendars and absences whoever queries them.

mod materialise;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::catalog::CatalogProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use salespulse_udfs::CalendarRegistry;

pub use materialise::{Materialise, MaterialiseReport, fingerprint, materialise};

/// The views, in dependency order (a view may read the ones before it).
pub const VIEWS: &[(&str, &str)] = &[
    ("department_tree", include_str!("views/department_tree.sql")),
    ("closed_deals", include_str!("views/closed_deals.sql")),
    ("deal_facts", include_str!("views/deal_facts.sql")),
    ("call_facts", include_str!("views/call_facts.sql")),
    ("lead_facts", include_str!("views/lead_facts.sql")),
    ("task_facts", include_str!("views/task_facts.sql")),
    ("sales_by_period", include_str!("views/sales_by_period.sql")),
    ("plan_fact", include_str!("views/plan_fact.sql")),
    ("channels", include_str!("views/channels.sql")),
    ("sources", include_str!("views/sources.sql")),
    ("funnel", include_str!("views/funnel.sql")),
    ("pipeline_now", include_str!("views/pipeline_now.sql")),
    ("pipelines_compare", include_str!("views/pipelines_compare.sql")),
    ("loss_reasons", include_str!("views/loss_reasons.sql")),
    ("client_ltv", include_str!("views/client_ltv.sql")),
    ("cohorts", include_str!("views/cohorts.sql")),
    ("abc_clients", include_str!("views/abc_clients.sql")),
    ("manager_months", include_str!("views/manager_months.sql")),
    ("salary", include_str!("views/salary.sql")),
    ("manager_scorecard", include_str!("views/manager_scorecard.sql")),
    ("manager_weekday", include_str!("views/manager_weekday.sql")),
    ("calls_daily", include_str!("views/calls_daily.sql")),
    ("activity_daily", include_str!("views/activity_daily.sql")),
    ("discipline", include_str!("views/discipline.sql")),
    ("margin", include_str!("views/margin.sql")),
    ("satisfaction", include_str!("views/satisfaction.sql")),
];

/// A view that could not be built: a bug in its SQL or a setting of the wrong shape.
#[derive(Debug, thiserror::Error)]
#[error("kpi.{view}: {message}")]
pub struct KpiError {
    pub view: String,
    pub message: String,
}

/// What the placeholders of the view files are filled with.
#[derive(Debug, Clone)]
pub struct ViewParams {
    pub tenant: String,
    pub timezone: String,
    pub taken_at: DateTime<Utc>,
    pub calendar: String,
    pub settings: BTreeMap<String, String>,
}

/// A view file's placeholder that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error("an unclosed ${{ placeholder")]
    Unclosed,
    #[error("unknown placeholder ${{{0}}}")]
    Unknown(String),
    /// Settings are pasted into SQL, so only numbers are.
    #[error("setting {setting} = '{value}' is not a number")]
    NotANumber { setting: String, value: String },
}

/// `sql` with every `${name}` replaced.
///
/// # Errors
/// A placeholder names no parameter or setting.
pub fn fill(sql: &str, params: &ViewParams) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(PlaceholderError::Unclosed)?;
        let name = &after[..end];
        let value = match name {
            "tz" => format!("'{}'", params.timezone.replace('\'', "''")),
            "taken_at" => format!("CAST('{}' AS TIMESTAMP)", params.taken_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            "calendar" => format!("'{}'", params.calendar.replace('\'', "''")),
            other => {
                let v = params.settings.get(other).ok_or_else(|| PlaceholderError::Unknown(other.to_string()))?;
                // Settings are numbers (validated with the config); refuse anything else
                // rather than paste it into SQL.
                if v.parse::<f64>().is_err() {
                    return Err(PlaceholderError::NotANumber { setting: other.to_string(), value: v.clone() });
                }
                v.clone()
            }
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A multi-line engine error ("type_coercion\ncaused by\n…") as one line.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "caused by").collect::<Vec<_>>().join(": ")
}

/// A session holding only this tenant's catalog (default schema `crm`), with its calendars,
/// in which the views are planned and materialised.
pub fn tenant_session(catalog: &Arc<dyn CatalogProvider>, calendars: Arc<CalendarRegistry>, params: &ViewParams, runtime: Arc<RuntimeEnv>) -> SessionContext {
    let mut config = SessionConfig::new().with_default_catalog_and_schema(&params.tenant, "crm").with_create_default_catalog_and_schema(false);
    let options = config.options_mut();
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    options.execution.time_zone = Some("UTC".into());
    let ctx = super::output_order::session_context(config, runtime);
    ctx.register_catalog(&params.tenant, Arc::clone(catalog));
    salespulse_udfs::register_all(&ctx, calendars);
    ctx
}

/// Plans every view in `ctx` (a [`tenant_session`]) and registers it in the tenant's `kpi`
/// schema.
///
/// # Errors
/// The first view that fails to plan.
pub async fn register_views(ctx: &SessionContext, params: &ViewParams) -> Result<(), KpiError> {
    for (name, sql) in VIEWS {
        let body = fill(sql, params).map_err(|e| KpiError { view: (*name).into(), message: e.to_string() })?;
        let statement = format!("CREATE OR REPLACE VIEW \"{}\".kpi.{name} AS {body}", params.tenant);
        let failed = |e: datafusion::error::DataFusionError| KpiError { view: (*name).into(), message: one_line(&e.strip_backtrace()) };
        ctx.sql(&statement).await.map_err(failed)?.collect().await.map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ViewParams {
        ViewParams {
            tenant: "acme".into(),
            timezone: "Europe/Moscow".into(),
            taken_at: "2026-06-15T12:00:00Z".parse().unwrap(),
            calendar: "ru_msk".into(),
            settings: salespulse_config::config::default_settings(),
        }
    }

    #[test]
    fn every_placeholder_of_every_view_is_known() {
        for (name, sql) in VIEWS {
            let filled = fill(sql, &params()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!filled.contains("${"), "{name}");
        }
        assert_eq!(fill("${tz} ${taken_at}", &params()).unwrap(), "'Europe/Moscow' CAST('2026-06-15T12:00:00.000000Z' AS TIMESTAMP)");
        assert!(fill("${nope}", &params()).is_err());
    }
}
