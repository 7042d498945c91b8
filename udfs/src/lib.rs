//! Sales UDFs for Apache DataFusion (UDFS.md contract v1), usable in any `SessionContext`.
//!
//! ```
//! let ctx = datafusion::prelude::SessionContext::new();
//! for udf in salespulse_udfs::all() {
//!     ctx.register_udf(udf);
//! }
//! ```
//!
//! This version has `is_successful_call`; the working-time functions and their calendars
//! are the next piece of work on this crate.

mod successful_call;

pub use successful_call::{IsSuccessfulCall, is_successful_call_kernel, long_enough};

use datafusion::logical_expr::ScalarUDF;

/// Every UDF of the crate.
pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(IsSuccessfulCall::default())]
}
