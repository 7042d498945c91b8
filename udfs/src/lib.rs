//! Sales UDFs for Apache DataFusion (docs/udfs.md contract v1), usable in any `SessionContext`.
//!
//! ```
//! use std::sync::Arc;
//! use salespulse_udfs::{CalendarRegistry, register_all};
//!
//! # tokio_test_block(async {
//! let ctx = datafusion::prelude::SessionContext::new();
//! register_all(&ctx, Arc::new(CalendarRegistry::builtin()));
//! let df = ctx.sql("SELECT working_seconds(TIMESTAMP '2025-06-02T06:00:00Z', TIMESTAMP '2025-06-02T15:00:00Z', 'ru_msk')").await.unwrap();
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! - `working_seconds(start, end [, calendar [, employee_id]])` → BIGINT
//! - `working_hours(start, end [, calendar [, employee_id]])` → DOUBLE
//! - `is_working_time(ts [, calendar [, employee_id]])` → BOOLEAN
//! - `add_working_time(ts, seconds [, calendar [, employee_id]])` → TIMESTAMP
//! - `is_successful_call(duration_s [, threshold_seconds [, answered]])` → BOOLEAN
//! - `local_date(ts, zone)` → DATE, `local_start(date, zone)` → TIMESTAMP: calendar dates of
//!   a time zone (the KPI views bucket days, weeks and months by them)

pub mod calendar;
mod local_time;
mod options;
mod successful_call;
mod working_time;

pub use calendar::{Absence, CalendarError, CalendarRegistry, OutsideCoverage};
pub use local_time::{LocalDate, LocalStart};
pub use options::SalesOptions;
pub use successful_call::{IsSuccessfulCall, is_successful_call_kernel, long_enough};
pub use working_time::{WorkingTimeKind, WorkingTimeUdf};

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Every UDF of the crate, the working-time ones bound to `registry`.
pub fn udfs(registry: Arc<CalendarRegistry>) -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = [WorkingTimeKind::Seconds, WorkingTimeKind::Hours, WorkingTimeKind::IsWorking, WorkingTimeKind::Add]
        .into_iter()
        .map(|k| ScalarUDF::from(WorkingTimeUdf::new(k, Arc::clone(&registry))))
        .collect();
    out.push(ScalarUDF::from(IsSuccessfulCall::default()));
    out.push(ScalarUDF::from(LocalDate::default()));
    out.push(ScalarUDF::from(LocalStart::default()));
    out
}

/// Every UDF of the crate with the built-in calendars.
pub fn all() -> Vec<ScalarUDF> {
    udfs(Arc::new(CalendarRegistry::builtin()))
}

/// Registers every UDF in a session; call again with a new registry after a reload. To let
/// users `SET salespulse.call_success_threshold_seconds`, build the session config with
/// `with_option_extension(SalesOptions::default())`.
pub fn register_all(ctx: &SessionContext, registry: Arc<CalendarRegistry>) {
    for udf in udfs(registry) {
        ctx.register_udf(udf);
    }
}
