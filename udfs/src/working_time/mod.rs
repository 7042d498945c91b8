//! The working-time UDFs of docs/udfs.md §2: `working_seconds`, `working_hours`,
//! `is_working_time` and `add_working_time`, over a [`CalendarRegistry`].
//!
//! Arrow plumbing only: instants of any unit and zone become nanoseconds (values outside
//! `[1970, 2100)` become NULL before any unit conversion), the calendar and employee are
//! resolved once when they are literals, and the per-row work is the O(1) lookup of
//! `calendar::timeline`.

//!
//! One file per function: [`working_seconds`] (also `working_hours`, the same kernel),
//! [`is_working_time`], [`add_working_time`]; [`arguments`] turns the arguments into
//! nanoseconds and calendars.

mod add_working_time;
mod arguments;
mod is_working_time;
mod working_seconds;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::calendar::{Calendar, CalendarRegistry, Outside};

use arguments::Resolver;

const NS_PER_S: i64 = 1_000_000_000;

/// Which function an instance computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkingTimeKind {
    Seconds,
    Hours,
    IsWorking,
    Add,
}

impl WorkingTimeKind {
    fn name(self) -> &'static str {
        match self {
            Self::Seconds => "working_seconds",
            Self::Hours => "working_hours",
            Self::IsWorking => "is_working_time",
            Self::Add => "add_working_time",
        }
    }

    /// How many leading arguments come before `[calendar [, employee_id]]`.
    fn fixed(self) -> usize {
        match self {
            Self::IsWorking => 1,
            _ => 2,
        }
    }
}

/// One working-time UDF bound to a registry snapshot.
#[derive(Debug)]
pub struct WorkingTimeUdf {
    kind: WorkingTimeKind,
    registry: Arc<CalendarRegistry>,
    signature: Signature,
}

impl PartialEq for WorkingTimeUdf {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.registry, &other.registry)
    }
}
impl Eq for WorkingTimeUdf {}
impl std::hash::Hash for WorkingTimeUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        Arc::as_ptr(&self.registry).hash(state);
    }
}

impl WorkingTimeUdf {
    pub fn new(kind: WorkingTimeKind, registry: Arc<CalendarRegistry>) -> Self {
        Self { kind, registry, signature: Signature::user_defined(Volatility::Immutable) }
    }
}
fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}
/// The section every working-time function is listed under.
fn doc_section() -> DocSection {
    DocSection { include: true, label: "Sales functions", description: Some("salespulse-udfs") }
}

const CALENDAR_ARGUMENT: &str = "Calendar name (a literal or a column); the registry's default when omitted. An unknown name is an error.";
const EMPLOYEE_ARGUMENT: &str = "Employee id (text or integer); their absences are removed. NULL or unknown: calendar only.";

impl ScalarUDFImpl for WorkingTimeUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            WorkingTimeKind::Seconds => working_seconds::documentation_seconds(),
            WorkingTimeKind::Hours => working_seconds::documentation_hours(),
            WorkingTimeKind::IsWorking => is_working_time::documentation(),
            WorkingTimeKind::Add => add_working_time::documentation(),
        })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let fixed = self.kind.fixed();
        if arg_types.len() < fixed || arg_types.len() > fixed + 2 {
            let usage = match self.kind {
                WorkingTimeKind::IsWorking => "(ts [, calendar [, employee_id]])",
                WorkingTimeKind::Add => "(ts, seconds [, calendar [, employee_id]])",
                _ => "(start, end [, calendar [, employee_id]])",
            };
            return plan_err!("{name} takes {usage}, got {} arguments", arg_types.len());
        }
        let mut out = Vec::with_capacity(arg_types.len());
        for (i, t) in arg_types.iter().enumerate() {
            let seconds_arg = self.kind == WorkingTimeKind::Add && i == 1;
            let coerced = match (i, t) {
                (_, DataType::Timestamp(..)) if i < fixed && !seconds_arg => t.clone(),
                (_, DataType::Null) if i < fixed && !seconds_arg => DataType::Timestamp(TimeUnit::Nanosecond, None),
                (_, _) if i < fixed && !seconds_arg => {
                    return plan_err!("{name}: argument {} must be a timestamp, got {t}; cast it, e.g. CAST(x AS TIMESTAMP)", i + 1);
                }
                (_, t) if seconds_arg && (t.is_integer() || *t == DataType::Null) => DataType::Int64,
                (_, t) if seconds_arg => return plan_err!("{name}: seconds must be an integer, got {t}"),
                (i, t) if i == fixed && is_string(t) => DataType::Utf8,
                (i, t) if i == fixed => return plan_err!("{name}: calendar must be text, got {t}"),
                (_, t) if is_string(t) => DataType::Utf8,
                (_, t) if t.is_integer() => DataType::Int64,
                (_, t) => return plan_err!("{name}: employee_id must be text or an integer, got {t}"),
            };
            out.push(coerced);
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            WorkingTimeKind::Seconds => DataType::Int64,
            WorkingTimeKind::Hours => DataType::Float64,
            WorkingTimeKind::IsWorking => DataType::Boolean,
            WorkingTimeKind::Add => match arg_types.first() {
                Some(t @ DataType::Timestamp(..)) => t.clone(),
                _ => DataType::Timestamp(TimeUnit::Nanosecond, None),
            },
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { rows };
        let fixed = self.kind.fixed();
        let calendars = Resolver::new(&self.registry, args.args.get(fixed), args.args.get(fixed + 1), n)?;
        let result: ArrayRef = match self.kind {
            WorkingTimeKind::Seconds | WorkingTimeKind::Hours => working_seconds::invoke(self, &args.args, &calendars, n)?,
            WorkingTimeKind::IsWorking => is_working_time::invoke(self, &args.args, &calendars, n)?,
            WorkingTimeKind::Add => add_working_time::invoke(self, &args.args, &calendars, n)?,
        };
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

impl WorkingTimeUdf {
    /// Whether `[lo, hi)` is inside the calendar's holiday data; an error under
    /// `outside_coverage = "error"`.
    #[inline]
    fn in_coverage(&self, cal: &Calendar, lo: i64, hi: i64) -> Result<bool> {
        match cal.check_range(lo, hi) {
            Ok(()) => Ok(true),
            Err(Outside::Null) => Ok(false),
            Err(Outside::Error) => coverage_error(self.name(), cal).map(|_| false),
        }
    }
}

fn coverage_error(name: &str, cal: &Calendar) -> Result<()> {
    let range = cal.coverage().map(|(a, b)| format!("{a}..{b}")).unwrap_or_default();
    exec_err!("{name}: the range touches dates outside the holiday data of calendar '{}' ({range})", cal.name())
}
