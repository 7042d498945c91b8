//! `is_working_time(ts [, calendar [, employee_id]])` → BOOLEAN: whether an instant falls
//! in working time (window starts inclusive, ends exclusive).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Documentation};


use super::WorkingTimeUdf;
use super::arguments::{Resolver, instants};

pub(super) fn documentation() -> &'static Documentation {
    static DOCS: OnceLock<Documentation> = OnceLock::new();
    DOCS.get_or_init(|| {
        Documentation::builder(super::doc_section(), "Whether an instant falls in working time (window starts inclusive, ends exclusive).", "is_working_time(ts [, calendar [, employee_id]])")
            .with_argument("ts", "Timestamp.")
            .with_argument("calendar", super::CALENDAR_ARGUMENT)
            .with_argument("employee_id", super::EMPLOYEE_ARGUMENT)
            .build()
    })
}

/// `is_working_time` of a batch of `n` rows.
pub(super) fn invoke(udf: &WorkingTimeUdf, args: &[ColumnarValue], calendars: &Resolver<'_>, n: usize) -> Result<ArrayRef> {
    let (t, ok) = instants(&args[0], n)?;
    let mut valid = vec![false; n];
    let mut out = vec![false; n];
    calendars.for_each(n, |i, cal, removal| {
        if !ok[i] {
            return Ok(());
        }
        if !udf.in_coverage(cal, t[i], t[i] + 1)? {
            return Ok(());
        }
        out[i] = cal.is_working(t[i], removal);
        valid[i] = true;
        Ok(())
    })?;
    Ok(Arc::new(BooleanArray::new(out.into(), Some(NullBuffer::from(valid)))))
}
