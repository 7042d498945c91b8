//! `working_seconds(start, end [, calendar [, employee_id]])` → BIGINT and
//! `working_hours(...)` → DOUBLE: one kernel, W(end) − W(start), fused over the Arrow
//! buffers for a literal calendar, gathered per (calendar, employee) pair for columns.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, PrimitiveArray, UInt32Array};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, Documentation};

use crate::calendar::{Calendar, CalendarView, EmployeeView, MAX_NS, MIN_NS, NetView, Removal};

use super::arguments::{Employee, Resolved, Resolver, instants};
use super::{NS_PER_S, WorkingTimeKind, WorkingTimeUdf};

pub(super) fn documentation_seconds() -> &'static Documentation {
    static DOCS: OnceLock<Documentation> = OnceLock::new();
    DOCS.get_or_init(|| {
        Documentation::builder(super::doc_section(), "Signed working seconds between two instants under a calendar (truncated toward zero; negative when end < start).", "working_seconds(start, end [, calendar [, employee_id]])")
            .with_argument("start", "Timestamp of any unit; a zone-less value is UTC.")
            .with_argument("end", "Timestamp of any unit.")
            .with_argument("calendar", super::CALENDAR_ARGUMENT)
            .with_argument("employee_id", super::EMPLOYEE_ARGUMENT)
            .with_sql_example("SELECT avg(working_seconds(created_at, first_call_at, 'ru_msk')) / 60.0 AS minutes FROM t")
            .build()
    })
}

pub(super) fn documentation_hours() -> &'static Documentation {
    static DOCS: OnceLock<Documentation> = OnceLock::new();
    DOCS.get_or_init(|| {
        Documentation::builder(super::doc_section(), "Working hours between two instants as a Float64, exact (not truncated).", "working_hours(start, end [, calendar [, employee_id]])")
            .with_argument("start", "Timestamp.")
            .with_argument("end", "Timestamp.")
            .with_argument("calendar", super::CALENDAR_ARGUMENT)
            .with_argument("employee_id", super::EMPLOYEE_ARGUMENT)
            .build()
    })
}

/// `working_seconds` or `working_hours` (by `udf.kind`) of a batch of `n` rows.
pub(super) fn invoke(udf: &WorkingTimeUdf, args: &[ColumnarValue], calendars: &Resolver<'_>, n: usize) -> Result<ArrayRef> {
    if let Some((cal, removal)) = calendars.fixed() {
        // The hottest case: one calendar (and employee) for the whole batch: one pass
        // over the Arrow buffers, two for a batch with rows outside the holiday data.
        let (a, b) = (args[0].to_array(n)?, args[1].to_array(n)?);
        let employee = removal.as_deref().map(Employee::Literal);
        return if udf.kind == WorkingTimeKind::Seconds {
            fused_working_time::<Int64Type>(udf, cal, employee, &a, &b, |ns| ns / NS_PER_S)
        } else {
            fused_working_time::<Float64Type>(udf, cal, employee, &a, &b, |ns| ns as f64 / 3.6e12)
        };
    }
    let resolved = calendars.resolve(n)?;
    if resolved.few_tables(n) {
        // Calendars or employees from columns with few distinct pairs (the KPI
        // views' `manager_id`): each pair's rows are gathered and take the fused path.
        let (a, b) = (args[0].to_array(n)?, args[1].to_array(n)?);
        if udf.kind == WorkingTimeKind::Seconds {
            grouped_working_time::<Int64Type>(udf, &resolved, &a, &b, |ns| ns / NS_PER_S)
        } else {
            grouped_working_time::<Float64Type>(udf, &resolved, &a, &b, |ns| ns as f64 / 3.6e12)
        }
    } else {
        // Many distinct pairs (or a single row): row by row.
        let (a, a_ok) = instants(&args[0], n)?;
        let (b, b_ok) = instants(&args[1], n)?;
        let mut valid = vec![false; n];
        let mut ns = vec![0i64; n];
        resolved.for_each(|i, cal, removal| {
            if a_ok[i] && b_ok[i] && udf.in_coverage(cal, a[i].min(b[i]), a[i].max(b[i]))? {
                ns[i] = cal.w(b[i], removal) - cal.w(a[i], removal);
                valid[i] = true;
            }
            Ok(())
        })?;
        let nulls = Some(NullBuffer::from(valid));
        if udf.kind == WorkingTimeKind::Seconds {
            Ok(Arc::new(Int64Array::new(ns.into_iter().map(|v| v / NS_PER_S).collect(), nulls)))
        } else {
            Ok(Arc::new(Float64Array::new(ns.into_iter().map(|v| v as f64 / 3.6e12).collect(), nulls)))
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
