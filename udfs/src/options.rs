//! Session options of the crate, under the `salespulse` prefix of DataFusion's config:
//! `SET salespulse.call_success_threshold_seconds = 30` in a session built with
//! `SessionConfig::new().with_option_extension(SalesOptions::default())`.

use datafusion::common::config::ConfigExtension;

datafusion::common::extensions_options! {
    /// Defaults the sales functions read from the session.
    pub struct SalesOptions {
        /// The threshold `is_successful_call(duration_s)` uses when none is given, in seconds.
        pub call_success_threshold_seconds: u64, default = 60
    }
}

impl ConfigExtension for SalesOptions {
    const PREFIX: &'static str = "salespulse";
}

impl SalesOptions {
    /// Options with a given default call threshold.
    pub fn with_call_threshold(seconds: u64) -> SalesOptions {
        SalesOptions { call_success_threshold_seconds: seconds }
    }
}
