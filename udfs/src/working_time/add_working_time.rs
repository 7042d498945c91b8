//! `add_working_time(ts, seconds [, calendar [, employee_id]])` → TIMESTAMP: the instant
//! `seconds` of working time after `ts` (before it when negative), an SLA due date.

use std::sync::OnceLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarUDFImpl};

use crate::calendar::Outside;

use super::arguments::{Resolver, from_nanos, instants};
use super::{NS_PER_S, WorkingTimeUdf, coverage_error};

pub(super) fn documentation() -> &'static Documentation {
    static DOCS: OnceLock<Documentation> = OnceLock::new();
    DOCS.get_or_init(|| {
        Documentation::builder(super::doc_section(), "The instant `seconds` of working time after ts (before it when negative): an SLA due date. Exhausting a window lands on its end.", "add_working_time(ts, seconds [, calendar [, employee_id]])")
            .with_argument("ts", "Timestamp; the result has the same unit and zone.")
            .with_argument("seconds", "Working seconds to add (BIGINT).")
            .with_argument("calendar", super::CALENDAR_ARGUMENT)
            .with_argument("employee_id", super::EMPLOYEE_ARGUMENT)
            .build()
    })
}

/// `add_working_time` of a batch of `n` rows.
pub(super) fn invoke(udf: &WorkingTimeUdf, args: &[ColumnarValue], calendars: &Resolver<'_>, n: usize) -> Result<ArrayRef> {
    let (t, ok) = instants(&args[0], n)?;
    let seconds_array = args[1].to_array(n)?;
    let seconds = seconds_array.as_primitive::<Int64Type>();
    let mut valid = vec![false; n];
    let mut out = vec![0i64; n];
    calendars.for_each(n, |i, cal, removal| {
        if !ok[i] || seconds.is_null(i) {
            return Ok(());
        }
        let delta = seconds.value(i).saturating_mul(NS_PER_S);
        match cal.add(t[i], delta, removal) {
            Ok(Some(x)) => {
                out[i] = x;
                valid[i] = true;
            }
            Ok(None) | Err(Outside::Null) => {}
            Err(Outside::Error) => return coverage_error(udf.name(), cal),
        }
        Ok(())
    })?;
    Ok(from_nanos(args[0].data_type(), out, valid))
}
