//! `local_date(ts, 'Europe/Moscow') -> DATE`: the calendar date of an instant in a time zone,
//! and `local_start(date, 'Europe/Moscow') -> TIMESTAMP`: the instant that date starts there.
//!
//! The KPI views bucket days, weeks and months by the tenant's local dates (docs/schema.md:
//! "local time"). The zone must be a literal; any timestamp unit and annotation is read as
//! an instant.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Date32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalDate {
    signature: Signature,
}

impl Default for LocalDate {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// The time-zone argument of `function`: a text literal naming an IANA zone.
fn zone_argument(function: &str, arg: &ColumnarValue) -> Result<Tz> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(zone))) => match zone.parse::<Tz>() {
            Ok(tz) => Ok(tz),
            Err(_) => exec_err!("{function}: '{zone}' is not an IANA time zone such as Europe/Moscow"),
        },
        _ => exec_err!("{function}: the time zone must be a text literal such as 'Europe/Moscow'"),
    }
}

/// A scalar result for a scalar input, else the array.
fn shaped(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?));
    }
    Ok(ColumnarValue::Array(array))
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");

impl ScalarUDFImpl for LocalDate {
    fn name(&self) -> &str {
        "local_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(..) | DataType::Null, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8] => {
                Ok(vec![DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), DataType::Utf8])
            }
            _ => plan_err!("local_date takes (timestamp, time_zone), got {arg_types:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let tz = zone_argument("local_date", &args.args[1])?;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows)?;
        let micros = cast(&input, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let out: Date32Array = micros
            .iter()
            .map(|v| {
                let instant = DateTime::from_timestamp_micros(v?)?;
                let local = instant.with_timezone(&tz).date_naive();
                i32::try_from(local.signed_duration_since(EPOCH).num_days()).ok()
            })
            .collect();
        shaped(Arc::new(out), scalar)
    }
}

/// `local_start(date, 'Europe/Moscow') -> TIMESTAMP`: the instant a local date begins in a
/// time zone (the earliest valid local time of that day), in UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalStart {
    signature: Signature,
}

impl Default for LocalStart {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for LocalStart {
    fn name(&self) -> &str {
        "local_start"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Date32 | DataType::Date64 | DataType::Null, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8] => {
                Ok(vec![DataType::Date32, DataType::Utf8])
            }
            _ => plan_err!("local_start takes (date, time_zone), got {arg_types:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use chrono::TimeZone;
        let tz = zone_argument("local_start", &args.args[1])?;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows)?;
        let days = input.as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let out: datafusion::arrow::array::TimestampMicrosecondArray = days
            .iter()
            .map(|d| {
                let date = EPOCH.checked_add_signed(chrono::Duration::days(i64::from(d?)))?;
                // Midnight may not exist (a DST jump at 00:00): take the first valid minute.
                (0..24 * 60).find_map(|m| {
                    let local = date.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(m);
                    tz.from_local_datetime(&local).earliest().map(|t| t.timestamp_micros())
                })
            })
            .collect();
        shaped(Arc::new(out.with_timezone("UTC")), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn dates_follow_the_zone() {
        let ctx = SessionContext::new();
        ctx.register_udf(ScalarUDF::from(LocalDate::default()));
        let batches = ctx
            .sql("SELECT CAST(local_date(TIMESTAMP '2026-03-31T21:30:00Z', 'Europe/Moscow') AS VARCHAR) AS msk, \
                  CAST(local_date(TIMESTAMP '2026-03-31T21:30:00Z', 'UTC') AS VARCHAR) AS utc")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = |i: usize| cast(batches[0].column(i), &DataType::Utf8).unwrap();
        assert_eq!(text(0).as_string::<i32>().value(0), "2026-04-01");
        assert_eq!(text(1).as_string::<i32>().value(0), "2026-03-31");
        assert!(!text(0).is_null(0));
    }

    #[tokio::test]
    async fn local_start_is_local_midnight() {
        let ctx = SessionContext::new();
        ctx.register_udf(ScalarUDF::from(LocalStart::default()));
        let batches = ctx
            .sql("SELECT CAST(local_start(DATE '2026-04-01', 'Europe/Moscow') AS VARCHAR)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = cast(batches[0].column(0), &DataType::Utf8).unwrap();
        assert_eq!(text.as_string::<i32>().value(0), "2026-03-31T21:00:00Z");
    }
}
