//! The fast path of docs/udfs.md §4.1: a calendar's working set as sorted disjoint UTC intervals
//! with prefix sums and a bucket index (about 19.5 h buckets), built once; evaluating `W(t)` (working
//! nanoseconds before `t`) is then O(1) and branch-free. All time-zone and DST work
//! happens here, at build time.
//!
//! Employees with absences get their own working time `W_e(t) = W(t) - A_e(t)` as a small
//! table over the buckets their absences span (`A_e` is the removed working time).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::config::{CalendarSpec, Pattern, Window};

/// Supported instants: `[1970-01-01Z, 2100-01-01Z)`, in nanoseconds.
pub(crate) const MIN_NS: i64 = 0;
pub(crate) const MAX_NS: i64 = 4_102_444_800 * 1_000_000_000;
/// Lookups bucket instants by `t >> shift`, so that finding an instant's bucket is a shift,
/// not a division by a day. Calendars use buckets of 2^46 ns (about 19.5 hours); an
/// employee's table may use finer ones, down to 2^42 ns (about 73 minutes).
const CALENDAR_SHIFT: u32 = 46;
const FINEST_SHIFT: u32 = 42;
const SENTINEL: i64 = i64::MAX / 4;
/// The slots of a calendar's table: a power of two, from the epoch to 2116, past `MAX_NS`.
const CALENDAR_BUCKETS: usize = ((MAX_NS >> CALENDAR_SHIFT) as usize + 1).next_power_of_two();
/// The slots of an employee's own table ([`EmployeeTable`]): a ring of calendar-sized buckets,
/// addressed as a calendar's are, that holds holiday data of up to 9.1 years.
const EMPLOYEE_BUCKETS: usize = 4_096;
/// The first start of a slot whose bucket holds more intervals than the slot has room for;
/// real starts are never negative.
const ESCAPE: i64 = i64::MIN;

/// The instant of local wall time `date 00:00 + seconds` by the "compatible" rule: a time in
/// a fold takes the earlier instant, a time in a gap moves forward by the gap's length.
pub(crate) fn local_instant(tz: Tz, date: NaiveDate, seconds: u32) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::seconds(i64::from(seconds));
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return t.timestamp_nanos_opt().unwrap_or(0);
    }
    // In a gap: read the wall time with the offset in force before the gap.
    let mut probe = naive;
    for _ in 0..48 {
        probe -= Duration::hours(1);
        if let Some(before) = tz.from_local_datetime(&probe).earliest() {
            let offset = chrono::Offset::fix(before.offset()).local_minus_utc();
            return (naive - Duration::seconds(i64::from(offset))).and_utc().timestamp_nanos_opt().unwrap_or(0);
        }
    }
    naive.and_utc().timestamp_nanos_opt().unwrap_or(0)
}

/// The windows of one local date (§2.2 day resolution, steps 1-5).
pub(crate) fn day_windows(spec: &CalendarSpec, date: NaiveDate) -> Vec<Window> {
    if let Some(w) = spec.overrides.get(&date) {
        return w.clone();
    }
    if spec.non_working.contains(&date) {
        return Vec::new();
    }
    let mut windows = match (&spec.pattern, spec.working_days.get(&date)) {
        (Pattern::Week(days), Some(like)) => days[like.num_days_from_monday() as usize].clone(),
        (Pattern::Week(days), None) => days[date.weekday().num_days_from_monday() as usize].clone(),
        (Pattern::Rotation { anchor, days }, _) => {
            let len = days.len() as i64;
            let index = (date - *anchor).num_days().rem_euclid(len);
            days[index as usize].clone()
        }
    };
    if spec.short_day_minutes > 0 && spec.short_days.contains(&date) {
        let mut cut = spec.short_day_minutes * 60;
        for w in windows.iter_mut().rev() {
            let take = cut.min(w.end - w.start);
            w.end -= take;
            cut -= take;
            if cut == 0 {
                break;
            }
        }
        windows.retain(|w| w.end > w.start);
    }
    windows
}

/// The instant intervals of the windows a date owns.
pub(crate) fn owned_intervals(spec: &CalendarSpec, date: NaiveDate) -> Vec<(i64, i64)> {
    day_windows(spec, date)
        .into_iter()
        .map(|w| (local_instant(spec.timezone, date, w.start), local_instant(spec.timezone, date, w.end)))
        .filter(|(s, e)| e > s)
        .collect()
}

/// Sorts and merges intervals into a disjoint union (touching intervals merge).
pub(crate) fn union(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a \ b` for disjoint sorted interval lists.
pub(crate) fn subtract(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut cur = s;
        for &(bs, be) in b.iter().filter(|(bs, be)| *be > s && *bs < e) {
            if bs > cur {
                out.push((cur, bs));
            }
            cur = cur.max(be);
        }
        if cur < e {
            out.push((cur, e));
        }
    }
    out
}

/// `t` clamped to `[start, end]`, without a branch: random instants make the comparisons
/// unpredictable, and one mispredicted branch costs more than a whole lookup. Written as two
/// selects because LLVM turns `max`/`min` patterns back into branches inside loops. The
/// length of `[start, end)` before `t` is `clamp_to(t, start, end) - start`; slots keep the
/// `- start` in their constant, so each interval costs two compares and two selects.
#[inline(always)]
pub(crate) fn clamp_to(t: i64, start: i64, end: i64) -> i64 {
    use std::hint::select_unpredictable as select;
    let above = select(t > start, t, start);
    select(above < end, above, end)
}

/// A bucket index over sorted disjoint intervals, for lookups with no dependent load and no
/// data-dependent branch. Buckets are `2^shift` ns long, numbered by `t >> shift`;
/// each of `first_bucket..first_bucket + buckets` has one slot of `1 + 2k` values: a constant,
/// then `(start, end)` of the `k` intervals from the first that ends after the bucket starts
/// (padded with empty ones). The constant is the summed length of the intervals that end
/// before the bucket, less the `k` starts, so that the length before `t` is the constant plus
/// `t` clamped to each interval (see [`clamp_to`]). For a calendar's table, which starts at
/// bucket 0 and ends after `MAX_NS`, every supported instant has its own slot; a table over
/// part of the time line (an employee's) is read only inside its buckets.
#[derive(Debug)]
pub(crate) struct BucketSlots {
    shift: u32,
    first_bucket: i64,
    k: usize,
    slots: Vec<i64>,
}

impl BucketSlots {
    /// The first bucket and the number of buckets from the first interval's to the last
    /// one's; `None` for no intervals.
    fn span(intervals: &[(i64, i64)], shift: u32) -> Option<(i64, i64)> {
        let (first, last) = (intervals.first()?, intervals.last()?);
        let first_bucket = first.0 >> shift;
        Some((first_bucket, ((last.1 - 1) >> shift) - first_bucket + 1))
    }

    /// Slots over `buckets` buckets from `first_bucket`, at least `min_k` wide (so that two
    /// tables can share a loop), for intervals with `base` of length before the first one.
    fn over(intervals: &[(i64, i64)], shift: u32, first_bucket: i64, buckets: usize, min_k: usize, base: i64) -> BucketSlots {
        let cum = prefix_sums(intervals, base);
        let touching: Vec<(i64, usize, usize)> = touching(intervals, shift, first_bucket, buckets as i64).collect();
        let k = touching.iter().map(|(_, i, j)| j - i).fold(min_k.max(1), usize::max);
        let slots = touching.iter().flat_map(|&(_, i, _)| slot_values(intervals, &cum, i, k)).collect();
        BucketSlots { shift, first_bucket, k, slots }
    }

    /// The slots as arrays of `N = 1 + 2 * k` values; `None` for another `N`.
    pub(crate) fn view<const N: usize>(&self) -> Option<SlotView<'_, N>> {
        if N != 1 + 2 * self.k {
            return None;
        }
        let (slots, rest) = self.slots.as_chunks::<N>();
        (rest.is_empty() && !slots.is_empty()).then(|| SlotView { shift: self.shift, first_bucket: self.first_bucket, last: slots.len() as i64 - 1, slots })
    }

    fn buckets(&self) -> i64 {
        (self.slots.len() / (1 + 2 * self.k)) as i64
    }

    /// The summed length before `t`, for any `k` (the loops that know `k` use [`SlotView`]).
    pub(crate) fn before(&self, t: i64) -> i64 {
        let stride = 1 + 2 * self.k;
        let bucket = ((t >> self.shift) - self.first_bucket).max(0).min(self.buckets() - 1) as usize;
        let slot = &self.slots[bucket * stride..(bucket + 1) * stride];
        slot[1..].chunks_exact(2).fold(slot[0], |sum, p| sum.wrapping_add(clamp_to(t, p[0], p[1])))
    }
}

/// `base` followed by the running total of the intervals' lengths: `cum[i]` is the length
/// before interval `i`.
fn prefix_sums(intervals: &[(i64, i64)], base: i64) -> Vec<i64> {
    let mut cum = Vec::with_capacity(intervals.len() + 1);
    cum.push(base);
    for (s, e) in intervals {
        cum.push(cum[cum.len() - 1] + (e - s));
    }
    cum
}

/// Each bucket of `first_bucket..first_bucket + buckets` (`2^shift` ns long) with the range
/// `i..j` of the sorted intervals that touch it: from the first that ends after the bucket
/// starts to the last that starts before it ends.
fn touching(intervals: &[(i64, i64)], shift: u32, first_bucket: i64, buckets: i64) -> impl Iterator<Item = (i64, usize, usize)> + '_ {
    let mut i = 0;
    (first_bucket..first_bucket + buckets).map(move |bucket| {
        let bucket_start = bucket << shift;
        while i < intervals.len() && intervals[i].1 <= bucket_start {
            i += 1;
        }
        let mut j = i;
        while j < intervals.len() && intervals[j].0 < bucket_start + (1 << shift) {
            j += 1;
        }
        (bucket, i, j)
    })
}

/// The `1 + 2k` values of a slot whose intervals start at `first` (see [`BucketSlots`]): the
/// constant, then `k` (start, end) pairs, padded with empty ones.
fn slot_values(intervals: &[(i64, i64)], cum: &[i64], first: usize, k: usize) -> impl Iterator<Item = i64> {
    let pairs = (first..first + k).map(|j| intervals.get(j).copied().unwrap_or((SENTINEL, SENTINEL)));
    let constant = pairs.clone().fold(cum[first], |constant, (start, _)| constant.wrapping_sub(start));
    std::iter::once(constant).chain(pairs.flat_map(|(start, end)| [start, end]))
}

/// [`BucketSlots`] with the slot size fixed at compile time, so a lookup unrolls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotView<'a, const N: usize> {
    shift: u32,
    first_bucket: i64,
    last: i64,
    slots: &'a [[i64; N]],
}

/// A calendar's slots with the slot size fixed at compile time. Calendar tables start at
/// bucket 0 (the epoch) with buckets of `2^CALENDAR_SHIFT` ns and hold a power of two of
/// slots, so the slot of `t` is one shift and one mask by constants, with no bounds check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CalendarView<'a, const N: usize> {
    slots: &'a [[i64; N]; CALENDAR_BUCKETS],
}

impl<const N: usize> CalendarView<'_, N> {
    /// Working time before `t`: one slot, addressed by `t` alone, and no data-dependent
    /// branch. Exact for `t` in `[0, 2^62)`, which holds `[MIN_NS, MAX_NS)`; any other `t`
    /// reads some slot and gives a meaningless value (callers mask those rows), never a panic.
    #[inline(always)]
    pub(crate) fn before(self, t: i64) -> i64 {
        sum_slot(&self.slots[self.bucket(t)], t)
    }

    /// The slot index of `t`: instants outside `[0, 2^62)` wrap around the table.
    #[inline(always)]
    fn bucket(self, t: i64) -> usize {
        (t >> CALENDAR_SHIFT) as usize & (CALENDAR_BUCKETS - 1)
    }
}

/// The summed length before `t` of one slot: its constant plus `t` clamped to each `(start, end)`.
#[inline(always)]
fn sum_slot<const N: usize>(slot: &[i64; N], t: i64) -> i64 {
    let mut sum = slot[0];
    let mut j = 1;
    while j + 1 < N {
        sum = sum.wrapping_add(clamp_to(t, slot[j], slot[j + 1]));
        j += 2;
    }
    sum
}

/// The working set of one calendar, ready for O(1) lookups.
#[derive(Debug)]
pub(crate) struct Timeline {
    /// The sorted disjoint intervals, as starts and lengths.
    starts: Vec<i64>,
    lens: Vec<i64>,
    /// One slot per bucket from the epoch to past `MAX_NS` (see [`BucketSlots`], [`CalendarView`]).
    buckets: BucketSlots,
    /// The same slots padded to widths 2 to 4 (index `width - 2`), built when an employee's
    /// table needs a wider slot than the calendar's own: a timed absence inside a window
    /// splits it in two, and both tables must share one slot size.
    wider: [OnceLock<BucketSlots>; 3],
}

impl Timeline {
    pub(crate) fn build(spec: &CalendarSpec) -> Timeline {
        let first_date = NaiveDate::from_ymd_opt(1969, 12, 30).unwrap_or_default();
        let last_date = NaiveDate::from_ymd_opt(2100, 1, 2).unwrap_or_default();
        let mut raw = Vec::with_capacity(100_000);
        let mut date = first_date;
        while date <= last_date {
            raw.extend(owned_intervals(spec, date));
            date += Duration::days(1);
        }
        let intervals: Vec<(i64, i64)> = union(raw)
            .into_iter()
            .map(|(s, e)| (s.max(MIN_NS), e.min(MAX_NS)))
            .filter(|(s, e)| e > s)
            .collect();
        Self::from_intervals(&intervals)
    }

    pub(crate) fn from_intervals(intervals: &[(i64, i64)]) -> Timeline {
        Timeline {
            starts: intervals.iter().map(|i| i.0).collect(),
            lens: intervals.iter().map(|i| i.1 - i.0).collect(),
            buckets: BucketSlots::over(intervals, CALENDAR_SHIFT, 0, CALENDAR_BUCKETS, 1, 0),
            wider: Default::default(),
        }
    }

    /// Working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn w(&self, t: i64) -> i64 {
        self.buckets.before(t)
    }

    /// The bucket slots with `N = 1 + 2 * width` values each, padded when the calendar's own
    /// are narrower (built on first use); `None` when they are wider, or beyond width 4.
    pub(crate) fn padded_slots<const N: usize>(&self) -> Option<CalendarView<'_, N>> {
        let view = self.slots_of_width((N - 1) / 2)?.view::<N>()?;
        Some(CalendarView { slots: view.slots.try_into().ok()? })
    }

    fn slots_of_width(&self, width: usize) -> Option<&BucketSlots> {
        if width <= self.buckets.k {
            return Some(&self.buckets);
        }
        let wider = self.wider.get(width.checked_sub(2)?)?;
        Some(wider.get_or_init(|| {
            let intervals: Vec<(i64, i64)> = self.starts.iter().zip(&self.lens).map(|(s, l)| (*s, s + l)).collect();
            BucketSlots::over(&intervals, CALENDAR_SHIFT, 0, CALENDAR_BUCKETS, width, 0)
        }))
    }

    /// The lookup width: how many intervals one bucket's slot holds.
    pub(crate) fn width(&self) -> usize {
        self.buckets.k
    }

    /// Whether `t` lies in the working set.
    #[inline]
    pub(crate) fn contains(&self, t: i64) -> bool {
        let i = self.starts.partition_point(|s| *s <= t);
        i > 0 && t - self.starts[i - 1] < self.lens[i - 1]
    }

    /// The intervals of the working set that overlap `[s, e)`.
    pub(crate) fn overlapping(&self, s: i64, e: i64) -> Vec<(i64, i64)> {
        let from = self.starts.partition_point(|x| *x < s).saturating_sub(1);
        (from..self.starts.len())
            .take_while(|k| self.starts[*k] < e)
            .map(|k| (self.starts[k].max(s), (self.starts[k] + self.lens[k]).min(e)))
            .filter(|(a, b)| b > a)
            .collect()
    }
}

/// An employee's absences against one calendar: the working time they remove, and the
/// employee's own working time `W_e(t) = W(t) - A_e(t)` in bucket slots over the buckets the
/// absences span, so that the fused loop reads one slot per instant as for a calendar.
#[derive(Debug)]
pub(crate) struct Removal {
    starts: Vec<i64>,
    ends: Vec<i64>,
    /// `cum[i]` = removed time of intervals `0..i`.
    cum: Vec<i64>,
    /// `W_e` over the absences' buckets, when those are at most [`Removal::MAX_NET_BUCKETS`];
    /// otherwise lookups search `starts`.
    net: Option<BucketSlots>,
    /// `W_e` over all of the holiday data, built on first use by a literal employee.
    own: OnceLock<Option<EmployeeTable>>,
}

impl Removal {
    /// A server caches one table per employee and calendar: bucket slots over ten years of HR
    /// history for thousands of employees would take hundreds of MB, so a longer span
    /// searches instead. 1,280 buckets are 1,040 days of calendar-sized buckets: about 50 KB
    /// with slots of width 2, 92 KB at the widest the fused loop reads.
    const MAX_NET_BUCKETS: i64 = 1_280;
    /// The widest slots the fused loop reads (`N` = 9); a wider table would only cost memory.
    const MAX_NET_WIDTH: usize = 4;

    /// `removed`: sorted disjoint intervals inside the calendar's working set.
    pub(crate) fn new(removed: &[(i64, i64)], calendar: &Timeline) -> Removal {
        let cum = prefix_sums(removed, 0);
        let net_table = |shift: u32| {
            let (first_bucket, buckets) = BucketSlots::span(removed, shift).filter(|(_, n)| *n <= Self::MAX_NET_BUCKETS)?;
            let (from, to) = (first_bucket << shift, (first_bucket + buckets) << shift);
            let working = subtract(&calendar.overlapping(from, to), removed);
            // Nothing is removed before the first absence's bucket.
            Some(BucketSlots::over(&working, shift, first_bucket, buckets as usize, calendar.width(), calendar.w(from)))
        };
        // A timed absence inside a window splits it, and a bucket may then hold one interval
        // more than the calendar's slots: finer buckets keep the calendar's width (the fused
        // loop's cost grows with it) as long as they fit in the table's budget.
        let net = (FINEST_SHIFT..=CALENDAR_SHIFT)
            .rev()
            .filter_map(net_table)
            .find(|net| net.k == calendar.width())
            .or_else(|| net_table(CALENDAR_SHIFT))
            .filter(|net| net.k <= Self::MAX_NET_WIDTH);
        Removal { starts: removed.iter().map(|i| i.0).collect(), ends: removed.iter().map(|i| i.1).collect(), cum, net, own: OnceLock::new() }
    }

    /// The employee's own table over the holiday data `coverage` (see [`EmployeeTable`]), with
    /// the calendar's slot size `N`; `None` for another size, for no holiday data (the lookups
    /// must then hold for any instant), for holiday data longer than the table's ring, or
    /// when `built` (the calendar's count of own tables) has reached `limit`. Built on first
    /// use and kept with the removal; `calendar` and `coverage` must be the removal's own
    /// calendar's, as the first call decides for good.
    pub(crate) fn own_view<'a, const N: usize>(
        &'a self,
        calendar: &'a Timeline,
        coverage: Option<(i64, i64)>,
        built: &AtomicUsize,
        limit: usize,
    ) -> Option<EmployeeView<'a, N>> {
        let table = self
            .own
            .get_or_init(|| {
                let table = EmployeeTable::build(self, calendar, coverage?)?;
                built.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1)).ok()?;
                Some(table)
            })
            .as_ref()?;
        let (slots, _) = table.slots.as_chunks::<N>();
        Some(EmployeeView { slots: slots.try_into().ok()?, removal: self, calendar })
    }

    /// The employee's working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn working_before(&self, calendar: &Timeline, t: i64) -> i64 {
        let removed = match &self.net {
            Some(net) if (t >> net.shift) < net.first_bucket => 0,
            Some(net) if (t >> net.shift) < net.first_bucket + net.buckets() => return net.before(t),
            _ => {
                let idx = self.starts.partition_point(|s| *s < t);
                if idx == 0 { 0 } else { self.cum[idx] - (self.ends[idx - 1] - t).max(0) }
            }
        };
        calendar.w(t) - removed
    }

    /// The slot width of the employee's net table (at least the calendar's), if it has one.
    pub(crate) fn net_width(&self) -> Option<usize> {
        self.net.as_ref().map(|n| n.k)
    }

    /// The employee's lookup for a loop that knows the slot size `N`, with the calendar's
    /// `slots` of that size; `None` when the net table has another size or none.
    pub(crate) fn net_view<'a, const N: usize>(&'a self, calendar: CalendarView<'a, N>) -> Option<NetView<'a, N>> {
        let net = self.net.as_ref()?.view::<N>()?;
        Some(NetView { calendar, net, removed: self.cum.last().copied().unwrap_or(0) })
    }

    #[inline]
    pub(crate) fn contains(&self, t: i64) -> bool {
        let idx = self.starts.partition_point(|s| *s <= t);
        idx > 0 && t < self.ends[idx - 1]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// An employee's `W_e(t)` with the slot size fixed at compile time: the net table's slot
/// inside the absences' buckets, else the calendar's less what the absences removed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetView<'a, const N: usize> {
    calendar: CalendarView<'a, N>,
    net: SlotView<'a, N>,
    /// All the removed time, subtracted after the last absence.
    removed: i64,
}

impl<const N: usize> NetView<'_, N> {
    /// One slot read per instant, as for a calendar: which table it comes from is chosen with
    /// selects, since instants fall in and out of the absences' span unpredictably. Any `t`
    /// is accepted, as for [`CalendarView::before`].
    #[inline(always)]
    pub(crate) fn before(self, t: i64) -> i64 {
        use std::hint::select_unpredictable as select;
        let in_net = (t >> self.net.shift).wrapping_sub(self.net.first_bucket);
        let inside = (in_net as u64) <= self.net.last as u64;
        let net_slot = &self.net.slots[select(inside, in_net, 0) as usize];
        let calendar_slot = &self.calendar.slots[self.calendar.bucket(t)];
        let removed = select(in_net > self.net.last, self.removed, 0);
        sum_slot(select(inside, net_slot, calendar_slot), t) - removed
    }
}

/// An employee's working time `W_e` over the whole holiday data in one table, addressed as a
/// calendar's is, so that a lookup costs what a calendar's does: for a query that names the
/// employee, where the two-table [`NetView`] spends about ten more instructions per instant
/// choosing a table. Its slots have the calendar's width; a bucket where a timed absence splits
/// a window holds one interval more, and its slot sends the lookup to the removal's exact
/// search instead ([`ESCAPE`]): a branch that is rarely taken, so well predicted.
///
/// The table is a ring of [`EMPLOYEE_BUCKETS`] slots, addressed by `(t >> 46) mod 4,096`: every
/// instant of the holiday data gets its own slot (at most 9.1 years of it), and instants
/// outside it read some slot, which is harmless since those rows are NULL. It takes 164 KB
/// for a calendar with two windows a day, so it is built for a literal employee only, and
/// the per-row and grouped paths (thousands of employees from a column) keep the smaller
/// net table.
#[derive(Debug)]
pub(crate) struct EmployeeTable {
    /// `EMPLOYEE_BUCKETS` slots of `1 + 2 * k` values, `k` being the calendar's width.
    slots: Vec<i64>,
}

impl EmployeeTable {
    /// The table over the instants `[from, to]` (inclusive: a row's bounds check admits the
    /// end); `None` when they span more buckets than the ring holds.
    fn build(removal: &Removal, calendar: &Timeline, (from, to): (i64, i64)) -> Option<EmployeeTable> {
        let (from, to) = (from.max(MIN_NS), to.min(MAX_NS - 1));
        let first_bucket = from >> CALENDAR_SHIFT;
        let buckets = (to >> CALENDAR_SHIFT) - first_bucket + 1;
        if from > to || buckets > EMPLOYEE_BUCKETS as i64 {
            return None;
        }
        let (lo, hi) = (first_bucket << CALENDAR_SHIFT, (first_bucket + buckets) << CALENDAR_SHIFT);
        let removed: Vec<(i64, i64)> = removal.starts.iter().copied().zip(removal.ends.iter().copied()).collect();
        let working = subtract(&calendar.overlapping(lo, hi), &removed);
        let cum = prefix_sums(&working, removal.working_before(calendar, lo));
        let k = calendar.width();
        let stride = 1 + 2 * k;
        let mut slots = vec![0; EMPLOYEE_BUCKETS * stride];
        for (bucket, i, j) in touching(&working, CALENDAR_SHIFT, first_bucket, buckets) {
            let at = (bucket as usize & (EMPLOYEE_BUCKETS - 1)) * stride;
            let slot = &mut slots[at..at + stride];
            if j - i > k {
                slot[1] = ESCAPE;
            } else {
                slot.iter_mut().zip(slot_values(&working, &cum, i, k)).for_each(|(to, value)| *to = value);
            }
        }
        Some(EmployeeTable { slots })
    }
}

/// A literal employee's `W_e(t)` from their [`EmployeeTable`], with the slot size fixed at
/// compile time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmployeeView<'a, const N: usize> {
    slots: &'a [[i64; N]; EMPLOYEE_BUCKETS],
    removal: &'a Removal,
    calendar: &'a Timeline,
}

impl<const N: usize> EmployeeView<'_, N> {
    /// One slot read per instant, as for a calendar; a slot marked [`ESCAPE`] sends the
    /// instant to the exact search. Any `t` is accepted; it is exact inside the holiday data.
    #[inline(always)]
    pub(crate) fn before(self, t: i64) -> i64 {
        let slot = &self.slots[(t >> CALENDAR_SHIFT) as usize & (EMPLOYEE_BUCKETS - 1)];
        if slot[1] == ESCAPE { self.escaped(t) } else { sum_slot(slot, t) }
    }

    #[cold]
    #[inline(never)]
    fn escaped(self, t: i64) -> i64 {
        self.removal.working_before(self.calendar, t.clamp(MIN_NS, MAX_NS - 1))
    }
}

#[cfg(test)]
mod tests;
