//! A connection's `TimeZone` (`SET TIME ZONE 'Europe/Moscow'`, Metabase's report time zone),
//! applied as PostgreSQL applies it to `timestamp with time zone` values: truncating to a day
//! or a month (`date_trunc`), extracting fields, casting to a date and rendering happen in the
//! session's zone, while the instants and comparisons stay the same.
//!
//! An analyzer rule of the connection's query context puts a projection above every table
//! scan that returns zoned timestamps, casting them to the session's zone; DataFusion's
//! functions then work in that zone and the results are sent with its offset. A connection
//! in UTC (the default) gets no rule.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, col};
use datafusion::optimizer::AnalyzerRule;

/// The rule for a connection's `TimeZone`, or none for UTC or a zone chrono-tz does not know.
pub(super) fn rule(time_zone: Option<&str>) -> Option<Arc<dyn AnalyzerRule + Send + Sync>> {
    let name = time_zone?.trim().trim_matches('\'');
    let zone = chrono_tz::Tz::from_str(name).ok()?;
    if matches!(zone, chrono_tz::Tz::UTC | chrono_tz::Tz::Etc__UTC | chrono_tz::Tz::GMT | chrono_tz::Tz::Etc__GMT | chrono_tz::Tz::Zulu) {
        return None;
    }
    Some(Arc::new(SessionTimeZone { zone: Arc::from(zone.name()) }))
}

#[derive(Debug)]
struct SessionTimeZone {
    zone: Arc<str>,
}

impl SessionTimeZone {
    fn zoned(&self, data_type: &DataType) -> Option<DataType> {
        match data_type {
            DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != self.zone.as_ref() => Some(DataType::Timestamp(*unit, Some(Arc::clone(&self.zone)))),
            _ => None,
        }
    }
}

impl AnalyzerRule for SessionTimeZone {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
            let schema = Arc::clone(&scan.projected_schema);
            if !schema.fields().iter().any(|f| self.zoned(f.data_type()).is_some()) {
                return Ok(Transformed::no(node));
            }
            let columns: Vec<Expr> = schema
                .columns()
                .into_iter()
                .zip(schema.fields().iter())
                .map(|(column, field)| {
                    let name = column.name.clone();
                    let expr = col(column);
                    match self.zoned(field.data_type()) {
                        Some(to) => cast(expr, to).alias(name),
                        None => expr,
                    }
                })
                .collect();
            // Keep the scan's qualifier on the projected columns.
            let qualified: Vec<Expr> = columns
                .into_iter()
                .zip(schema.iter())
                .map(|(expr, (qualifier, field))| match (qualifier, &expr) {
                    (Some(q), Expr::Alias(_)) => expr.unalias().alias_qualified(Some(q.clone()), field.name()),
                    _ => expr,
                })
                .collect();
            let projected = LogicalPlanBuilder::from(node).project(qualified)?.build()?;
            Ok(Transformed::yes(projected))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "salespulse_postgresql_session_time_zone"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_unknown_zones_need_no_rule() {
        assert!(rule(None).is_none());
        assert!(rule(Some("UTC")).is_none());
        assert!(rule(Some("Mars/Olympus")).is_none());
        assert!(rule(Some("'Europe/Moscow'")).is_some());
    }
}
