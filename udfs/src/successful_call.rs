//! `is_successful_call(duration_s [, threshold_seconds [, answered]]) -> BOOLEAN` (docs/udfs.md §2.6).
//!
//! A call is successful when it is strictly longer than the threshold (60 s by default) and,
//! when `answered` is given, answered: `answered AND duration_s > threshold_seconds` under
//! SQL three-valued logic. A negative duration is invalid data and gives NULL; a negative
//! threshold is an error. Durations compare as integers, or as floats when either side is
//! a float.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The default threshold: a successful call is longer than a minute.
pub(crate) const DEFAULT_THRESHOLD_SECONDS: u64 = 60;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsSuccessfulCall {
    signature: Signature,
}

impl Default for IsSuccessfulCall {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// `duration_s > threshold_seconds`; `None` is SQL NULL, and a negative duration is NULL.
pub fn long_enough(duration: Option<f64>, threshold: Option<f64>) -> Option<bool> {
    match (duration, threshold) {
        (Some(d), _) if d < 0.0 => None,
        (Some(d), Some(t)) => Some(d > t),
        _ => None,
    }
}

/// The full rule with `answered`: SQL `answered AND long_enough`.
pub fn is_successful_call_kernel(duration: Option<f64>, threshold: Option<f64>, answered: Option<bool>) -> Option<bool> {
    match (answered, long_enough(duration, threshold)) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || matches!(t, DataType::Null | DataType::Decimal128(..))
}

impl ScalarUDFImpl for IsSuccessfulCall {
    fn name(&self) -> &str {
        "is_successful_call"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn is_nullable(&self, _args: &[datafusion::logical_expr::Expr], _schema: &dyn datafusion::common::ExprSchema) -> bool {
        true
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() || arg_types.len() > 3 {
            return plan_err!("is_successful_call takes (duration_s [, threshold_seconds [, answered]]), got {} arguments", arg_types.len());
        }
        let numbers = &arg_types[..arg_types.len().min(2)];
        if let Some(bad) = numbers.iter().find(|t| !is_numeric(t)) {
            return plan_err!("is_successful_call: duration and threshold must be numbers, got {bad}");
        }
        let number = if numbers.iter().any(|t| t.is_floating() || matches!(t, DataType::Decimal128(..))) {
            DataType::Float64
        } else {
            DataType::Int64
        };
        let mut out = vec![number; numbers.len()];
        if let Some(answered) = arg_types.get(2) {
            if !matches!(answered, DataType::Boolean | DataType::Null) {
                return plan_err!("is_successful_call: answered must be a boolean, got {answered}");
            }
            out.push(DataType::Boolean);
        }
        Ok(out)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let as_f64 = |a: &ArrayRef| -> Result<Vec<Option<f64>>> {
            let floats = cast(a, &DataType::Float64)?;
            Ok(floats.as_primitive::<Float64Type>().iter().collect())
        };
        let durations = as_f64(&arrays[0])?;
        let thresholds = match arrays.get(1) {
            Some(a) => {
                let t = as_f64(a)?;
                if t.iter().flatten().any(|t| *t < 0.0) {
                    return exec_err!("is_successful_call: threshold_seconds must be >= 0");
                }
                t
            }
            None => {
                let threshold = args
                    .config_options
                    .extensions
                    .get::<crate::SalesOptions>()
                    .map_or(DEFAULT_THRESHOLD_SECONDS, |o| o.call_success_threshold_seconds);
                vec![Some(threshold as f64); rows]
            }
        };
        let answered: Option<&BooleanArray> = arrays.get(2).map(|a| a.as_boolean());
        let out: BooleanArray = (0..arrays[0].len())
            .map(|i| match answered {
                Some(b) => is_successful_call_kernel(durations[i], thresholds[i], (!b.is_null(i)).then(|| b.value(i))),
                None => long_enough(durations[i], thresholds[i]),
            })
            .collect();
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let array: ArrayRef = Arc::new(out);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_valued_and() {
        assert_eq!(is_successful_call_kernel(Some(61.0), Some(60.0), Some(true)), Some(true));
        assert_eq!(is_successful_call_kernel(Some(61.0), Some(60.0), Some(false)), Some(false));
        assert_eq!(is_successful_call_kernel(None, Some(60.0), Some(false)), Some(false));
        assert_eq!(is_successful_call_kernel(None, Some(60.0), Some(true)), None);
        assert_eq!(is_successful_call_kernel(Some(45.0), Some(60.0), None), Some(false));
        assert_eq!(is_successful_call_kernel(Some(61.0), Some(60.0), None), None);
        assert_eq!(long_enough(Some(61.0), Some(60.0)), Some(true));
        assert_eq!(is_successful_call_kernel(Some(-1.0), Some(60.0), Some(true)), None);
        assert_eq!(is_successful_call_kernel(Some(60.0), Some(60.0), Some(true)), Some(false));
    }
}
