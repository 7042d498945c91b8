//! The working-time UDFs of docs/udfs.md §2: `working_seconds`, `working_hours`,
//! `is_working_time` and `add_working_time`, over a [`CalendarRegistry`].
//!
//! Arrow plumbing only: instants of any unit and zone become nanoseconds (values outside
//! `[1970, 2100)` become NULL before any unit conversion), the calendar and employee are
//! resolved once when they are literals, and the per-row work is the O(1) lookup of
//! `calendar::timeline`.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, PrimitiveArray, StringArray, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{HashMap, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::calendar::{Calendar, CalendarRegistry, CalendarView, EmployeeView, MAX_NS, MIN_NS, NetView, Outside, Removal};

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

fn documentation(kind: WorkingTimeKind) -> &'static Documentation {
    static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        let section = DocSection { include: true, label: "Sales functions", description: Some("salespulse-udfs") };
        let calendar = "Calendar name (a literal or a column); the registry's default when omitted. An unknown name is an error.";
        let employee = "Employee id (text or integer); their absences are removed. NULL or unknown: calendar only.";
        vec![
            Documentation::builder(section.clone(), "Signed working seconds between two instants under a calendar (truncated toward zero; negative when end < start).", "working_seconds(start, end [, calendar [, employee_id]])")
                .with_argument("start", "Timestamp of any unit; a zone-less value is UTC.")
                .with_argument("end", "Timestamp of any unit.")
                .with_argument("calendar", calendar)
                .with_argument("employee_id", employee)
                .with_sql_example("SELECT avg(working_seconds(created_at, first_call_at, 'ru_msk')) / 60.0 AS minutes FROM t")
                .build(),
            Documentation::builder(section.clone(), "Working hours between two instants as a Float64, exact (not truncated).", "working_hours(start, end [, calendar [, employee_id]])")
                .with_argument("start", "Timestamp.")
                .with_argument("end", "Timestamp.")
                .with_argument("calendar", calendar)
                .with_argument("employee_id", employee)
                .build(),
            Documentation::builder(section.clone(), "Whether an instant falls in working time (window starts inclusive, ends exclusive).", "is_working_time(ts [, calendar [, employee_id]])")
                .with_argument("ts", "Timestamp.")
                .with_argument("calendar", calendar)
                .with_argument("employee_id", employee)
                .build(),
            Documentation::builder(section, "The instant `seconds` of working time after ts (before it when negative): an SLA due date. Exhausting a window lands on its end.", "add_working_time(ts, seconds [, calendar [, employee_id]])")
                .with_argument("ts", "Timestamp; the result has the same unit and zone.")
                .with_argument("seconds", "Working seconds to add (BIGINT).")
                .with_argument("calendar", calendar)
                .with_argument("employee_id", employee)
                .build(),
        ]
    });
    &docs[kind as usize]
}

impl ScalarUDFImpl for WorkingTimeUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.kind))
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
            WorkingTimeKind::Seconds | WorkingTimeKind::Hours if calendars.fixed().is_some() => {
                // The hottest case: one calendar (and employee) for the whole batch: one pass
                // over the Arrow buffers, two for a batch with rows outside the holiday data.
                let Some((cal, removal)) = calendars.fixed() else { unreachable!("checked above") };
                let (a, b) = (args.args[0].to_array(n)?, args.args[1].to_array(n)?);
                let employee = removal.as_deref().map(Employee::Literal);
                if self.kind == WorkingTimeKind::Seconds {
                    fused_working_time::<Int64Type>(self, cal, employee, &a, &b, |ns| ns / NS_PER_S)?
                } else {
                    fused_working_time::<Float64Type>(self, cal, employee, &a, &b, |ns| ns as f64 / 3.6e12)?
                }
            }
            WorkingTimeKind::Seconds | WorkingTimeKind::Hours => {
                let resolved = calendars.resolve(n)?;
                if resolved.few_tables(n) {
                    // Calendars or employees from columns with few distinct pairs (the KPI
                    // views' `manager_id`): each pair's rows are gathered and take the fused path.
                    let (a, b) = (args.args[0].to_array(n)?, args.args[1].to_array(n)?);
                    if self.kind == WorkingTimeKind::Seconds {
                        grouped_working_time::<Int64Type>(self, &resolved, &a, &b, |ns| ns / NS_PER_S)?
                    } else {
                        grouped_working_time::<Float64Type>(self, &resolved, &a, &b, |ns| ns as f64 / 3.6e12)?
                    }
                } else {
                    // Many distinct pairs (or a single row): row by row.
                    let (a, a_ok) = instants(&args.args[0], n)?;
                    let (b, b_ok) = instants(&args.args[1], n)?;
                    let mut valid = vec![false; n];
                    let mut ns = vec![0i64; n];
                    resolved.for_each(|i, cal, removal| {
                        if a_ok[i] && b_ok[i] && self.in_coverage(cal, a[i].min(b[i]), a[i].max(b[i]))? {
                            ns[i] = cal.w(b[i], removal) - cal.w(a[i], removal);
                            valid[i] = true;
                        }
                        Ok(())
                    })?;
                    let nulls = Some(NullBuffer::from(valid));
                    if self.kind == WorkingTimeKind::Seconds {
                        Arc::new(Int64Array::new(ns.into_iter().map(|v| v / NS_PER_S).collect(), nulls))
                    } else {
                        Arc::new(Float64Array::new(ns.into_iter().map(|v| v as f64 / 3.6e12).collect(), nulls))
                    }
                }
            }
            WorkingTimeKind::IsWorking => {
                let (t, ok) = instants(&args.args[0], n)?;
                let mut valid = vec![false; n];
                let mut out = vec![false; n];
                calendars.for_each(n, |i, cal, removal| {
                    if !ok[i] {
                        return Ok(());
                    }
                    if !self.in_coverage(cal, t[i], t[i] + 1)? {
                        return Ok(());
                    }
                    out[i] = cal.is_working(t[i], removal);
                    valid[i] = true;
                    Ok(())
                })?;
                Arc::new(BooleanArray::new(out.into(), Some(NullBuffer::from(valid))))
            }
            WorkingTimeKind::Add => {
                let (t, ok) = instants(&args.args[0], n)?;
                let seconds_array = args.args[1].to_array(n)?;
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
                        Err(Outside::Error) => return coverage_error(self.name(), cal),
                    }
                    Ok(())
                })?;
                from_nanos(args.args[0].data_type(), out, valid)
            }
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

/// The employee of a fused call, and where it came from: a literal employee may get a table
/// of its own (see `EmployeeTable`); employees from a column, possibly thousands, keep the
/// smaller tables.
#[derive(Clone, Copy)]
enum Employee<'a> {
    Literal(&'a Removal),
    FromColumn(&'a Removal),
}

impl<'a> Employee<'a> {
    fn removal(self) -> &'a Removal {
        match self {
            Employee::Literal(r) | Employee::FromColumn(r) => r,
        }
    }
}

/// `working_seconds` / `working_hours` for a literal calendar (and employee) over the Arrow
/// buffers: one pass for the values (unit conversion and both lookups per row, with no
/// branch: rows that will be NULL compute a meaningless value) that also checks coverage. A
/// second pass builds the validity (NULL inputs, range, coverage) 64 rows to a word, only
/// for a batch with a valid row outside the holiday data. `finish` turns working
/// nanoseconds into the result's unit.
fn fused_working_time<T: ArrowPrimitiveType>(
    udf: &WorkingTimeUdf,
    cal: &Calendar,
    employee: Option<Employee<'_>>,
    a: &ArrayRef,
    b: &ArrayRef,
    finish: impl Fn(i64) -> T::Native,
) -> Result<ArrayRef> {
    fn raw(a: &ArrayRef) -> Result<(&[i64], i64)> {
        Ok(match a.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => (a.as_primitive::<TimestampNanosecondType>().values(), 1),
            DataType::Timestamp(TimeUnit::Microsecond, _) => (a.as_primitive::<TimestampMicrosecondType>().values(), 1_000),
            DataType::Timestamp(TimeUnit::Millisecond, _) => (a.as_primitive::<TimestampMillisecondType>().values(), 1_000_000),
            DataType::Timestamp(TimeUnit::Second, _) => (a.as_primitive::<TimestampSecondType>().values(), NS_PER_S),
            other => return exec_err!("expected a timestamp, got {other}"),
        })
    }
    let (av, ap) = raw(a)?;
    let (bv, bp) = raw(b)?;
    let timeline = cal.timeline();
    let removal = employee.map(Employee::removal).filter(|r| !r.is_empty());
    let literal = matches!(employee, Some(Employee::Literal(_)));
    // The bounds each input must lie in, inclusive and in the input's own unit (a division
    // per row would dominate): the supported range, and within it the holiday data.
    let range = |per: i64| (MIN_NS.div_euclid(per), (MAX_NS - 1).div_euclid(per));
    let (a_range, b_range) = (range(ap), range(bp));
    let covered = |(lo, hi): (i64, i64), per: i64| match cal.coverage_ns() {
        None => (lo, hi),
        Some((from, to)) => (lo.max(-((-from).div_euclid(per))), hi.min(to.div_euclid(per))),
    };
    let (a_covered, b_covered) = (covered(a_range, ap), covered(b_range, bp));
    // Pass 1, the values. One loop body per slot size, so the lookup unrolls and runs
    // without a branch. Rows that will be NULL (out of range) compute a meaningless value
    // that the NULL mask hides: the table lookups wrap or clamp their index, the per-row
    // lookups clamp the instant. The pass also checks that every instant lies inside the
    // holiday data.
    let inputs = Inputs { av, ap, bv, bp, a_covered, b_covered };
    let clamped = |t: i64| t.clamp(MIN_NS, MAX_NS - 1);
    // An employee's table may need wider slots than the calendar's (a timed absence splits
    // a window); the calendar's are then padded to match.
    let width = removal.and_then(Removal::net_width).unwrap_or(0).max(timeline.width());
    macro_rules! by_slot_size {
        ($($n:literal),*) => {
            'found: {
                $(
                    // A literal employee reads a table of their own, at the calendar's width.
                    if literal && 1 + 2 * timeline.width() == $n
                        && let Some(employee) = removal.and_then(|r| cal.employee_view::<$n>(r))
                    {
                        break 'found inputs.values(employee, &finish);
                    }
                    if 1 + 2 * width == $n && let Some(slots) = timeline.padded_slots::<$n>() {
                        match removal.map(|r| r.net_view(slots)) {
                            None => break 'found inputs.values(slots, &finish),
                            Some(Some(employee)) => break 'found inputs.values(employee, &finish),
                            Some(None) => {}
                        }
                    }
                )*
                match removal {
                    None => inputs.values(PerRow(|t| timeline.w(clamped(t))), &finish),
                    Some(r) => inputs.values(PerRow(|t| r.working_before(timeline, clamped(t))), &finish),
                }
            }
        };
    }
    let (values, all_covered) = by_slot_size!(3, 5, 7, 9);
    let input_nulls = NullBuffer::union(a.nulls(), b.nulls());
    // Every instant (NULL slots included) lies inside the holiday data, so every row with
    // both inputs is valid: the common case, with no second pass. A NULL's placeholder
    // value (usually 0) is outside, so a batch with NULLs checks its other rows only.
    if all_covered || input_nulls.as_ref().is_some_and(|nulls| inputs.covered_where_valid(nulls)) {
        return Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), input_nulls)));
    }
    // Pass 2, the validity, 64 rows to a word: both instants in range, and inside the
    // holiday data (or an empty range).
    let bounds = [a_range, b_range, a_covered, b_covered];
    let (words, outside) = if ap == bp {
        validity_words::<true>(av, bv, (ap, bp), bounds)
    } else {
        validity_words::<false>(av, bv, (ap, bp), bounds)
    };
    let valid = BooleanBuffer::new(Buffer::from_vec(words), 0, av.len());
    let nulls = NullBuffer::union(input_nulls.as_ref(), Some(&NullBuffer::new(valid)));
    if outside && cal.errors_outside_coverage() {
        // Rows outside the holiday data are NULL (in `valid`), or an error under
        // outside_coverage = "error": find the first.
        for (i, (&x, &y)) in av.iter().zip(bv).enumerate() {
            if a.is_valid(i) && b.is_valid(i) && within(a_range, x) & within(b_range, y) {
                let (xn, yn) = (x * ap, y * bp);
                udf.in_coverage(cal, xn.min(yn), xn.max(yn))?;
            }
        }
    }
    Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), nulls)))
}

/// `working_seconds` / `working_hours` with calendars or employees from columns: the rows of
/// each (calendar, employee) pair are gathered, computed by [`fused_working_time`], and
/// scattered back; rows without a calendar are NULL.
fn grouped_working_time<T: ArrowPrimitiveType>(
    udf: &WorkingTimeUdf,
    resolved: &Resolved,
    a: &ArrayRef,
    b: &ArrayRef,
    finish: impl Fn(i64) -> T::Native + Copy,
) -> Result<ArrayRef> {
    let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); resolved.tables.len()];
    for (row, table) in resolved.row_table.iter().enumerate() {
        if let Some(rows) = rows_of.get_mut(*table as usize) {
            rows.push(row as u32);
        }
    }
    let mut values = vec![T::Native::default(); a.len()];
    let mut valid = vec![false; a.len()];
    for ((cal, removal), rows) in resolved.tables.iter().zip(rows_of) {
        if rows.is_empty() {
            continue;
        }
        let rows = UInt32Array::from(rows);
        let (group_a, group_b) = (take(a, &rows, None)?, take(b, &rows, None)?);
        let out = fused_working_time::<T>(udf, cal, removal.as_deref().map(Employee::FromColumn), &group_a, &group_b, finish)?;
        let out = out.as_primitive::<T>();
        for (k, row) in rows.values().iter().enumerate() {
            values[*row as usize] = out.value(k);
            valid[*row as usize] = out.is_valid(k);
        }
    }
    Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), Some(NullBuffer::from(valid)))))
}

/// Whether `x` lies in the inclusive bounds `(lo, hi)`, without a branch.
#[inline(always)]
fn within((lo, hi): (i64, i64), x: i64) -> bool {
    (x >= lo) & (x <= hi)
}

/// The validity of `working_seconds(a, b)` rows, 64 to a word: both instants in range
/// (`bounds[0]`, `bounds[1]`) and inside the holiday data (`bounds[2]`, `bounds[3]`), or equal.
/// Also whether any row in range lies outside the holiday data. `SAME_UNIT` (both inputs in
/// one unit) compares instants without converting them.
fn validity_words<const SAME_UNIT: bool>(av: &[i64], bv: &[i64], (ap, bp): (i64, i64), bounds: [(i64, i64); 4]) -> (Vec<u64>, bool) {
    let [a_range, b_range, a_covered, b_covered] = bounds;
    let mut words = Vec::with_capacity(av.len().div_ceil(64));
    let mut outside = false;
    for (a_chunk, b_chunk) in av.chunks(64).zip(bv.chunks(64)) {
        let (mut valid_word, mut outside_word) = (0u64, 0u64);
        for (bit, (&x, &y)) in a_chunk.iter().zip(b_chunk).enumerate() {
            let in_range = within(a_range, x) & within(b_range, y);
            let equal = if SAME_UNIT { x == y } else { x.wrapping_mul(ap) == y.wrapping_mul(bp) };
            let valid = (within(a_covered, x) & within(b_covered, y)) | (in_range & equal);
            valid_word |= u64::from(valid) << bit;
            outside_word |= u64::from(in_range & !valid) << bit;
        }
        words.push(valid_word);
        outside |= outside_word != 0;
    }
    (words, outside)
}

/// `W(t)` as the fused loop reads it. A trait rather than a closure so that the lookups
/// are always inlined into the loop: LLVM left a closure with two lookups as a call per
/// instant, which cost the employee path a third of its time.
trait WorkingBefore: Copy {
    fn at(self, t: i64) -> i64;
}

impl<const N: usize> WorkingBefore for CalendarView<'_, N> {
    #[inline(always)]
    fn at(self, t: i64) -> i64 {
        self.before(t)
    }
}

impl<const N: usize> WorkingBefore for NetView<'_, N> {
    #[inline(always)]
    fn at(self, t: i64) -> i64 {
        self.before(t)
    }
}

impl<const N: usize> WorkingBefore for EmployeeView<'_, N> {
    #[inline(always)]
    fn at(self, t: i64) -> i64 {
        self.before(t)
    }
}

/// Any other lookup, as a closure (tables of other widths, absences searched by bisection).
#[derive(Clone, Copy)]
struct PerRow<F>(F);

impl<F: Fn(i64) -> i64 + Copy> WorkingBefore for PerRow<F> {
    #[inline(always)]
    fn at(self, t: i64) -> i64 {
        (self.0)(t)
    }
}

/// The two instant columns of a fused call: raw values in units of `ap` and `bp`
/// nanoseconds, and the inclusive bounds of the holiday data in those units.
struct Inputs<'a> {
    av: &'a [i64],
    ap: i64,
    bv: &'a [i64],
    bp: i64,
    a_covered: (i64, i64),
    b_covered: (i64, i64),
}

impl Inputs<'_> {
    /// `finish(w(b) - w(a))` per row, and whether every instant lies in its covered bounds.
    /// An instant out of range wraps to a meaningless value; `w` must accept any `i64`.
    #[inline(always)]
    fn values<N: Copy + Default>(&self, w: impl WorkingBefore, finish: impl Fn(i64) -> N) -> (Vec<N>, bool) {
        // Both columns in one unit (the usual case) share their bounds, and a unit known at
        // compile time is a multiply by a constant: two registers fewer in a loop that is
        // short of them.
        match (self.ap, self.bp) {
            (1, 1) => self.same_unit::<1, N>(w, finish),
            (1_000, 1_000) => self.same_unit::<1_000, N>(w, finish),
            _ => self.mixed_units(w, finish),
        }
    }

    /// [`Inputs::values`] for two columns in units of `PER` ns. Coverage is tracked as the
    /// largest offset from the bounds' start (one compare and select per instant), checked
    /// once after the loop.
    #[inline(always)]
    fn same_unit<const PER: i64, N: Copy + Default>(&self, w: impl WorkingBefore, finish: impl Fn(i64) -> N) -> (Vec<N>, bool) {
        use std::hint::select_unpredictable as select;
        debug_assert_eq!(self.a_covered, self.b_covered, "one unit, one set of bounds");
        let ((lo, span, some), _) = self.coverage_checks();
        let mut furthest = 0u64;
        let mut out = vec![N::default(); self.av.len()];
        for ((o, &x), &y) in out.iter_mut().zip(self.av).zip(self.bv) {
            let (dx, dy) = (x.wrapping_sub(lo) as u64, y.wrapping_sub(lo) as u64);
            let further = select(dx > dy, dx, dy);
            furthest = select(further > furthest, further, furthest);
            *o = finish(w.at(y.wrapping_mul(PER)).wrapping_sub(w.at(x.wrapping_mul(PER))));
        }
        (out, some && furthest <= span)
    }

    /// [`Inputs::values`] for columns in different units.
    fn mixed_units<N: Copy + Default>(&self, w: impl WorkingBefore, finish: impl Fn(i64) -> N) -> (Vec<N>, bool) {
        let ((alo, aspan, a_some), (blo, bspan, b_some)) = self.coverage_checks();
        let (ap, bp) = (self.ap, self.bp);
        // Locals and a plain loop over a filled output: with the flag behind a closure's
        // reference, LLVM stored it every row and then reloaded the tables' fields, since
        // the store might have changed them.
        let mut inside = a_some & b_some;
        let mut out = vec![N::default(); self.av.len()];
        for ((o, &x), &y) in out.iter_mut().zip(self.av).zip(self.bv) {
            inside &= (x.wrapping_sub(alo) as u64 <= aspan) & (y.wrapping_sub(blo) as u64 <= bspan);
            *o = finish(w.at(y.wrapping_mul(bp)).wrapping_sub(w.at(x.wrapping_mul(ap))));
        }
        (out, inside)
    }

    /// The covered bounds of `a` and `b` as `(lo, hi - lo, nonempty)`, so that `lo <= x <= hi`
    /// is one unsigned comparison; empty bounds fail every row.
    #[inline(always)]
    fn coverage_checks(&self) -> ((i64, u64, bool), (i64, u64, bool)) {
        let check = |(lo, hi): (i64, i64)| (lo, hi.wrapping_sub(lo) as u64, lo <= hi);
        (check(self.a_covered), check(self.b_covered))
    }

    /// Whether both instants of every row that `valid` marks lie inside the holiday data,
    /// 64 rows to a word.
    fn covered_where_valid(&self, valid: &NullBuffer) -> bool {
        let ((alo, aspan, a_some), (blo, bspan, b_some)) = self.coverage_checks();
        let rows = self.av.chunks(64).zip(self.bv.chunks(64));
        let mut uncovered = 0u64;
        for ((a_chunk, b_chunk), valid_word) in rows.zip(valid.inner().bit_chunks().iter_padded()) {
            let mut covered = 0u64;
            for (bit, (&x, &y)) in a_chunk.iter().zip(b_chunk).enumerate() {
                covered |= u64::from((x.wrapping_sub(alo) as u64 <= aspan) & (y.wrapping_sub(blo) as u64 <= bspan)) << bit;
            }
            uncovered |= valid_word & !covered;
        }
        // With empty bounds nothing is covered; without valid rows nothing needs to be.
        uncovered == 0 && (a_some & b_some || valid.null_count() == valid.len())
    }
}

/// Nanoseconds of a timestamp argument and whether each is usable (not NULL, in range).
fn instants(value: &ColumnarValue, n: usize) -> Result<(Vec<i64>, Vec<bool>)> {
    let array = value.to_array(n)?;
    fn convert<T: datafusion::arrow::datatypes::ArrowPrimitiveType<Native = i64>>(a: &PrimitiveArray<T>, per: i64) -> (Vec<i64>, Vec<bool>) {
        // Range check in the native unit, before multiplying, so nothing can overflow;
        // rows that will be NULL hold 0, a valid lookup position.
        let (lo, hi) = (MIN_NS / per, MAX_NS / per);
        let mut ns = Vec::with_capacity(a.len());
        let mut ok = Vec::with_capacity(a.len());
        for &v in a.values().iter() {
            let in_range = v >= lo && v < hi;
            ns.push(if in_range { v * per } else { 0 });
            ok.push(in_range);
        }
        if let Some(nulls) = a.nulls() {
            for (o, valid) in ok.iter_mut().zip(nulls.iter()) {
                *o &= valid;
            }
        }
        (ns, ok)
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => convert(array.as_primitive::<TimestampNanosecondType>(), 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => convert(array.as_primitive::<TimestampMicrosecondType>(), 1_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => convert(array.as_primitive::<TimestampMillisecondType>(), 1_000_000),
        DataType::Timestamp(TimeUnit::Second, _) => convert(array.as_primitive::<TimestampSecondType>(), NS_PER_S),
        other => return exec_err!("expected a timestamp, got {other}"),
    })
}

/// Nanoseconds back to the argument's timestamp type.
fn from_nanos(t: DataType, ns: Vec<i64>, valid: Vec<bool>) -> ArrayRef {
    let nulls = Some(NullBuffer::from(valid));
    match t {
        DataType::Timestamp(unit, tz) => {
            let per = match unit {
                TimeUnit::Nanosecond => 1,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Second => NS_PER_S,
            };
            let values: Vec<i64> = ns.into_iter().map(|v| v.div_euclid(per)).collect();
            match unit {
                TimeUnit::Nanosecond => Arc::new(PrimitiveArray::<TimestampNanosecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Microsecond => Arc::new(PrimitiveArray::<TimestampMicrosecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Millisecond => Arc::new(PrimitiveArray::<TimestampMillisecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
                TimeUnit::Second => Arc::new(PrimitiveArray::<TimestampSecondType>::new(values.into(), nulls).with_timezone_opt(tz)),
            }
        }
        _ => Arc::new(PrimitiveArray::<TimestampNanosecondType>::new(ns.into(), nulls)),
    }
}

/// Resolves the calendar and employee of each row: once for literals, with a small cache
/// for columns.
struct Resolver<'a> {
    registry: &'a CalendarRegistry,
    calendar: Source<Option<Arc<Calendar>>>,
    employee: Source<Option<String>>,
}

enum Source<T> {
    Fixed(T),
    /// Text per row, read in place (integer employee ids are cast to their decimal text).
    Column(StringArray),
}
fn text_column(value: &ColumnarValue, n: usize) -> Result<StringArray> {
    let array = value.to_array(n)?;
    let strings = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
    Ok(strings.as_string::<i32>().clone())
}
fn scalar_text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        ScalarValue::Int64(i) => i.map(|i| i.to_string()),
        ScalarValue::Dictionary(_, v) => scalar_text(v),
        _ => None,
    }
}

impl<'a> Resolver<'a> {
    fn new(registry: &'a CalendarRegistry, calendar: Option<&ColumnarValue>, employee: Option<&ColumnarValue>, n: usize) -> Result<Self> {
        let calendar = match calendar {
            None => Source::Fixed(Some(Self::lookup(registry, registry.default_calendar())?)),
            Some(ColumnarValue::Scalar(s)) => match scalar_text(s) {
                Some(name) => Source::Fixed(Some(Self::lookup(registry, &name)?)),
                None => Source::Fixed(None),
            },
            Some(v) => Source::Column(text_column(v, n)?),
        };
        let employee = match employee {
            None => Source::Fixed(None),
            Some(ColumnarValue::Scalar(s)) => Source::Fixed(scalar_text(s)),
            Some(v) => Source::Column(text_column(v, n)?),
        };
        Ok(Self { registry, calendar, employee })
    }

    fn lookup(registry: &CalendarRegistry, name: &str) -> Result<Arc<Calendar>> {
        match registry.calendar(name) {
            Some(c) => Ok(Arc::clone(c)),
            None => exec_err!("unknown calendar '{name}'; known calendars: {}", registry.names().join(", ")),
        }
    }

    /// The calendar and removal table when both are literals (and the calendar not NULL).
    fn fixed(&self) -> Option<(&Arc<Calendar>, Option<Arc<Removal>>)> {
        match (&self.calendar, &self.employee) {
            (Source::Fixed(Some(cal)), Source::Fixed(employee)) => {
                Some((cal, employee.as_deref().and_then(|e| cal.removal(self.registry, e))))
            }
            _ => None,
        }
    }

    /// Calls `f(row, calendar, removal)` for each row whose calendar is not NULL.
    fn for_each(&self, n: usize, mut f: impl FnMut(usize, &Calendar, Option<&Removal>) -> Result<()>) -> Result<()> {
        // The common case: a literal calendar and employee, resolved once.
        if let (Source::Fixed(cal), Source::Fixed(employee)) = (&self.calendar, &self.employee) {
            let Some(cal) = cal else { return Ok(()) };
            let removal = employee.as_deref().and_then(|e| cal.removal(self.registry, e));
            for i in 0..n {
                f(i, cal, removal.as_deref())?;
            }
            return Ok(());
        }
        self.resolve(n)?.for_each(f)
    }

    /// The distinct (calendar, removal table) pairs of the rows, and each row's pair
    /// ([`Resolved::NO_CALENDAR`] for a NULL calendar). Each distinct name and pair is looked
    /// up once; rows often repeat the previous row's pair, which skips the hashing.
    fn resolve(&self, n: usize) -> Result<Resolved> {
        let mut calendars: Vec<Arc<Calendar>> = Vec::new();
        // DataFusion's HashMap (foldhash): SipHash was a third of this path's time.
        let mut calendar_ids: HashMap<&str, usize> = HashMap::default();
        if let Source::Fixed(Some(c)) = &self.calendar {
            calendars.push(Arc::clone(c));
        }
        // A table per calendar without employee (`plain`), and per calendar and employee.
        let mut tables: Vec<(Arc<Calendar>, Option<Arc<Removal>>)> = Vec::new();
        let mut plain: HashMap<usize, u32> = HashMap::default();
        let mut with_employee: HashMap<(usize, &str), u32> = HashMap::default();
        let mut row_table = Vec::with_capacity(n);
        // The previous row's (calendar name, employee id) and table.
        type Previous<'s> = Option<((Option<&'s str>, Option<&'s str>), u32)>;
        let mut previous: Previous<'_> = None;
        for i in 0..n {
            let calendar_name = match &self.calendar {
                Source::Fixed(Some(_)) => None,
                Source::Fixed(None) => {
                    row_table.push(Resolved::NO_CALENDAR);
                    continue;
                }
                Source::Column(names) if names.is_null(i) => {
                    row_table.push(Resolved::NO_CALENDAR);
                    continue;
                }
                Source::Column(names) => Some(names.value(i)),
            };
            let employee = match &self.employee {
                Source::Fixed(e) => e.as_deref(),
                Source::Column(ids) => (!ids.is_null(i)).then(|| ids.value(i)),
            };
            let key = (calendar_name, employee);
            let table = match previous {
                Some((previous_key, table)) if previous_key == key => table,
                _ => {
                    let calendar_id = match calendar_name {
                        None => 0,
                        Some(name) => match calendar_ids.get(name) {
                            Some(id) => *id,
                            None => {
                                calendars.push(Self::lookup(self.registry, name)?);
                                calendar_ids.insert(name, calendars.len() - 1);
                                calendars.len() - 1
                            }
                        },
                    };
                    let cal = &calendars[calendar_id];
                    let mut add = |removal: Option<Arc<Removal>>| {
                        tables.push((Arc::clone(cal), removal));
                        (tables.len() - 1) as u32
                    };
                    let table = match employee {
                        None => *plain.entry(calendar_id).or_insert_with(|| add(None)),
                        Some(e) => *with_employee.entry((calendar_id, e)).or_insert_with(|| add(cal.removal(self.registry, e))),
                    };
                    previous = Some((key, table));
                    table
                }
            };
            row_table.push(table);
        }
        Ok(Resolved { tables, row_table })
    }
}

/// The calendars and employees of a batch's rows, resolved: see [`Resolver::resolve`].
struct Resolved {
    tables: Vec<(Arc<Calendar>, Option<Arc<Removal>>)>,
    row_table: Vec<u32>,
}

impl Resolved {
    const NO_CALENDAR: u32 = u32::MAX;

    /// Whether the rows share few enough pairs (16 rows or more each on average) for
    /// gathering each pair's rows to pay off over resolving row by row.
    fn few_tables(&self, n: usize) -> bool {
        n > 0 && self.tables.len() * 16 <= n
    }

    /// Calls `f(row, calendar, removal)` for each row whose calendar is not NULL.
    fn for_each(&self, mut f: impl FnMut(usize, &Calendar, Option<&Removal>) -> Result<()>) -> Result<()> {
        for (i, table) in self.row_table.iter().enumerate() {
            if let Some((cal, removal)) = self.tables.get(*table as usize) {
                f(i, cal, removal.as_deref())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_of_valid_rows_reads_sliced_null_bits() {
        // 300 rows inside (0, 10) but row 180; the NULL bits are sliced from row 37, as
        // DataFusion slices batches, so row 180 is bit 143 of the slice.
        let mut av = vec![5i64; 300];
        av[180] = 100;
        let bv = vec![5i64; 300];
        let inputs = |from: usize| Inputs { av: &av[from..], ap: 1, bv: &bv[from..], bp: 1, a_covered: (0, 10), b_covered: (0, 10) };
        let nulls = |null_row: usize| NullBuffer::from((0..300).map(|i| i != null_row).collect::<Vec<bool>>()).slice(37, 263);
        assert!(inputs(37).covered_where_valid(&nulls(180)), "the row outside is NULL");
        assert!(!inputs(37).covered_where_valid(&nulls(181)), "the row outside is valid");
        // Empty bounds cover nothing, unless every row is NULL.
        let empty = Inputs { a_covered: (10, 0), b_covered: (10, 0), ..inputs(37) };
        assert!(!empty.covered_where_valid(&nulls(180)));
        assert!(empty.covered_where_valid(&NullBuffer::new_null(263)));
    }
}
