//! The fast path of UDFS.md §4.1: a calendar's working set as sorted disjoint UTC intervals
//! with prefix sums and a bucket index (about 19.5 h buckets), built once; evaluating `W(t)` (working
//! nanoseconds before `t`) is then O(1) and branch-free. All time-zone and DST work
//! happens here, at build time.
//!
//! Employees with absences get a small table of removed working time, `A_e(t)`, so that
//! `W_e(t) = W(t) - A_e(t)`.

use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::config::{CalendarSpec, Pattern, Window};

/// Supported instants: `[1970-01-01Z, 2100-01-01Z)`, in nanoseconds.
pub(crate) const MIN_NS: i64 = 0;
pub(crate) const MAX_NS: i64 = 4_102_444_800 * 1_000_000_000;
const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// Lookups bucket instants by `t >> BUCKET_SHIFT`: buckets of 2^46 ns (about 19.5 hours), so
/// that finding an instant's bucket is a shift, not a division by a day.
const BUCKET_SHIFT: u32 = 46;
const BUCKET_NS: i64 = 1 << BUCKET_SHIFT;
const SENTINEL: i64 = i64::MAX / 4;

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

/// How much of `[start, end)` lies before `t`, without a branch: random instants make the
/// comparisons unpredictable, and one mispredicted branch costs more than a whole lookup.
/// Written as two selects on `t >= bound` (rather than `clamp(t - start, 0, len)`) because
/// LLVM turns `max`/`min` patterns back into branches inside loops. Any `t` is accepted:
/// the subtractions wrap, and an empty interval gives 0.
#[inline(always)]
pub(crate) fn part_before(t: i64, start: i64, end: i64) -> i64 {
    use std::hint::select_unpredictable as select;
    select(t >= start, t.wrapping_sub(start), 0).wrapping_sub(select(t >= end, t.wrapping_sub(end), 0))
}

/// A bucket index over sorted disjoint intervals, for lookups with no dependent load and no
/// data-dependent branch. Buckets are `2^BUCKET_SHIFT` ns long, numbered by `t >> BUCKET_SHIFT`;
/// each of `first_bucket..first_bucket + buckets` has one slot of `1 + 2k` values: the summed
/// length of the intervals that end before the bucket starts, then `(start, end)` of the `k`
/// intervals from there (padded with empty ones). Instants before the first bucket or after
/// the last read the nearest slot, which gives the right sum there too.
#[derive(Debug)]
pub(crate) struct BucketSlots {
    first_bucket: i64,
    k: usize,
    slots: Vec<i64>,
}

impl BucketSlots {
    /// Slots for the buckets from the first interval's to the last one's, at least `min_k`
    /// wide (so that two tables can share a loop); `None` for no intervals or more than
    /// `max_buckets` buckets.
    fn new(intervals: &[(i64, i64)], min_k: usize, max_buckets: i64) -> Option<BucketSlots> {
        let (first, last) = (intervals.first()?, intervals.last()?);
        let first_bucket = first.0 >> BUCKET_SHIFT;
        let buckets = ((last.1 - 1) >> BUCKET_SHIFT) - first_bucket + 1;
        (buckets <= max_buckets).then(|| Self::over(intervals, first_bucket, buckets as usize, min_k))
    }

    fn over(intervals: &[(i64, i64)], first_bucket: i64, buckets: usize, min_k: usize) -> BucketSlots {
        let n = intervals.len();
        let mut cum = Vec::with_capacity(n + 1);
        cum.push(0);
        for (s, e) in intervals {
            cum.push(cum[cum.len() - 1] + (e - s));
        }
        let mut firsts = Vec::with_capacity(buckets);
        let mut k = min_k.max(1);
        let mut i = 0;
        for bucket in first_bucket..first_bucket + buckets as i64 {
            let bucket_start = bucket << BUCKET_SHIFT;
            while i < n && intervals[i].1 <= bucket_start {
                i += 1;
            }
            firsts.push(i);
            let mut j = i;
            while j < n && intervals[j].0 < bucket_start + BUCKET_NS {
                j += 1;
            }
            k = k.max(j - i);
        }
        let mut slots = Vec::with_capacity(buckets * (1 + 2 * k));
        for f in firsts {
            slots.push(cum[f]);
            for j in f..f + k {
                let (start, end) = intervals.get(j).copied().unwrap_or((SENTINEL, SENTINEL));
                slots.push(start);
                slots.push(end);
            }
        }
        BucketSlots { first_bucket, k, slots }
    }

    /// The slots as arrays of `N = 1 + 2 * k` values; `None` for another `N`.
    pub(crate) fn view<const N: usize>(&self) -> Option<SlotView<'_, N>> {
        if N != 1 + 2 * self.k {
            return None;
        }
        let (slots, rest) = self.slots.as_chunks::<N>();
        (rest.is_empty() && !slots.is_empty()).then(|| SlotView { first_bucket: self.first_bucket, last: slots.len() as i64 - 1, slots })
    }

    /// The summed length before `t`, for any `k` (the loops that know `k` use [`SlotView`]).
    pub(crate) fn before(&self, t: i64) -> i64 {
        let stride = 1 + 2 * self.k;
        let last = (self.slots.len() / stride) as i64 - 1;
        let bucket = ((t >> BUCKET_SHIFT) - self.first_bucket).max(0).min(last) as usize;
        let slot = &self.slots[bucket * stride..(bucket + 1) * stride];
        slot[0] + slot[1..].chunks_exact(2).map(|p| part_before(t, p[0], p[1])).sum::<i64>()
    }
}

/// [`BucketSlots`] with the slot size fixed at compile time, so a lookup unrolls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotView<'a, const N: usize> {
    first_bucket: i64,
    last: i64,
    slots: &'a [[i64; N]],
}

impl<const N: usize> SlotView<'_, N> {
    /// The summed length of the intervals before `t`: one slot, addressed by `t` alone, and
    /// no data-dependent branch. Any `t` is accepted; one outside `[MIN_NS, MAX_NS)` gives a
    /// meaningless value (callers mask those rows), never a panic. For a table whose
    /// lookups fall inside it (a calendar's, which spans every supported instant): the
    /// index is clamped with branches that never mispredict there and cost less than selects.
    #[inline(always)]
    pub(crate) fn before(self, t: i64) -> i64 {
        let bucket = ((t >> BUCKET_SHIFT) - self.first_bucket).max(0).min(self.last);
        self.sum(bucket, t)
    }

    /// [`SlotView::before`] for a table that lookups often fall outside of (an employee's
    /// absences span a few months of the data's years): the index is clamped with selects,
    /// since branches on it would mispredict.
    #[inline(always)]
    pub(crate) fn before_unpredictable(self, t: i64) -> i64 {
        use std::hint::select_unpredictable as select;
        let bucket = (t >> BUCKET_SHIFT) - self.first_bucket;
        let bucket = select(bucket < 0, 0, bucket);
        self.sum(select(bucket > self.last, self.last, bucket), t)
    }

    #[inline(always)]
    fn sum(self, bucket: i64, t: i64) -> i64 {
        let slot = &self.slots[bucket as usize];
        let mut sum = slot[0];
        let mut j = 1;
        while j + 1 < N {
            sum += part_before(t, slot[j], slot[j + 1]);
            j += 2;
        }
        sum
    }
}

/// The working set of one calendar, ready for O(1) lookups.
#[derive(Debug)]
pub(crate) struct Timeline {
    /// The sorted disjoint intervals, as starts and lengths.
    starts: Vec<i64>,
    lens: Vec<i64>,
    /// One slot per bucket from the epoch to `MAX_NS` (see [`BucketSlots`]).
    buckets: BucketSlots,
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
            buckets: BucketSlots::over(intervals, 0, (MAX_NS >> BUCKET_SHIFT) as usize + 1, 1),
        }
    }

    /// Working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn w(&self, t: i64) -> i64 {
        self.buckets.before(t)
    }

    /// The bucket slots with `N = 1 + 2 * width` values each; `None` for another `N`.
    pub(crate) fn bucket_slots<const N: usize>(&self) -> Option<SlotView<'_, N>> {
        self.buckets.view::<N>()
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

/// Working time an employee's absences remove from a calendar's working set.
#[derive(Debug)]
pub(crate) struct Removal {
    starts: Vec<i64>,
    ends: Vec<i64>,
    /// `cum[i]` = removed time of intervals `0..i`.
    cum: Vec<i64>,
    /// Bucket slots from the first absence to the last, when that is at most
    /// [`Removal::MAX_SLOT_DAYS`] days; otherwise lookups search `starts`.
    buckets: Option<BucketSlots>,
}

impl Removal {
    /// A server caches one table per employee and calendar: bucket slots over ten years of HR
    /// history for thousands of employees would take hundreds of MB, so a longer span
    /// searches instead (about 40 KB per table at most).
    const MAX_SLOT_DAYS: i64 = 1_000;

    /// Sorted disjoint intervals; the bucket slots are at least `min_k` wide so that they can
    /// share a loop with the calendar's.
    pub(crate) fn new(intervals: &[(i64, i64)], min_k: usize) -> Removal {
        let mut cum = Vec::with_capacity(intervals.len() + 1);
        cum.push(0);
        for (s, e) in intervals {
            cum.push(cum[cum.len() - 1] + (e - s));
        }
        Removal {
            starts: intervals.iter().map(|i| i.0).collect(),
            ends: intervals.iter().map(|i| i.1).collect(),
            cum,
            buckets: BucketSlots::new(intervals, min_k, Self::MAX_SLOT_DAYS * DAY_NS / BUCKET_NS),
        }
    }

    /// Removed working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn before(&self, t: i64) -> i64 {
        if let Some(buckets) = &self.buckets {
            return buckets.before(t);
        }
        let idx = self.starts.partition_point(|s| *s < t);
        if idx == 0 {
            return 0;
        }
        self.cum[idx] - (self.ends[idx - 1] - t).max(0)
    }

    /// The bucket slots with `N` values each, for loops that know the width.
    pub(crate) fn bucket_slots<const N: usize>(&self) -> Option<SlotView<'_, N>> {
        self.buckets.as_ref()?.view::<N>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_a_linear_sum() {
        let h = 3_600_000_000_000i64;
        let intervals = vec![(9 * h, 13 * h), (14 * h, 18 * h), (DAY_NS + 9 * h, DAY_NS + 18 * h), (3 * DAY_NS, 3 * DAY_NS + 30 * h)];
        let t = Timeline::from_intervals(&intervals);
        for probe in (0..6 * DAY_NS).step_by(h as usize / 2) {
            let linear: i64 = intervals.iter().map(|(s, e)| (probe - s).clamp(0, e - s)).sum();
            assert_eq!(t.w(probe), linear, "at {probe}");
            let slots = t.bucket_slots::<5>().expect("width 2 has slots of 5");
            assert_eq!(slots.before(probe), linear, "the bucket slots at {probe}");
            assert!(t.bucket_slots::<3>().is_none());
            let inside = intervals.iter().any(|(s, e)| *s <= probe && probe < *e);
            assert_eq!(t.contains(probe), inside, "at {probe}");
        }
    }

    #[test]
    fn interval_algebra() {
        assert_eq!(union(vec![(5, 7), (1, 3), (3, 4), (6, 9)]), vec![(1, 4), (5, 9)]);
        for t in [-5, 0, 9, 10, 11, 12, 13, 1 << 40] {
            assert_eq!(part_before(t, 10, 13), (t - 10).clamp(0, 3), "part before {t}");
        }
        assert_eq!((part_before(i64::MIN, 0, 5), part_before(i64::MAX, 0, 5), part_before(7, SENTINEL, SENTINEL)), (0, 5, 0));
        assert_eq!(subtract(&[(0, 10), (20, 30)], &[(2, 3), (8, 22)]), vec![(0, 2), (3, 8), (22, 30)]);
        let r = Removal::new(&[(10, 20), (30, 40)], 1);
        assert_eq!((r.before(5), r.before(15), r.before(25), r.before(35), r.before(50)), (0, 5, 10, 15, 20));
        assert!(r.contains(10) && !r.contains(20) && r.contains(39));
        assert!(Removal::new(&[], 2).is_empty() && Removal::new(&[], 2).before(7) == 0);
        // Several days and a wider table: the bucket slots agree with a linear sum anywhere.
        let h = 3_600_000_000_000i64;
        let removed = [(2 * DAY_NS + 9 * h, 2 * DAY_NS + 13 * h), (2 * DAY_NS + 14 * h, 4 * DAY_NS), (9 * DAY_NS + h, 9 * DAY_NS + 2 * h)];
        let r = Removal::new(&removed, 3);
        let view = r.bucket_slots::<7>().expect("width 3");
        assert!(r.bucket_slots::<5>().is_none());
        for probe in (0..12 * DAY_NS).step_by(h as usize / 3) {
            let linear: i64 = removed.iter().map(|(s, e)| (probe - s).clamp(0, e - s)).sum();
            assert_eq!((r.before(probe), view.before(probe)), (linear, linear), "at {probe}");
        }
        // Absences years apart keep no bucket slots, and search instead.
        let far = [(DAY_NS + h, DAY_NS + 2 * h), (2_000 * DAY_NS, 2_000 * DAY_NS + 3 * h)];
        let r = Removal::new(&far, 1);
        assert!(r.bucket_slots::<3>().is_none() && !r.is_empty());
        for probe in [0, DAY_NS + h, DAY_NS + 3 * h / 2, 5 * DAY_NS, 2_000 * DAY_NS + h, 3_000 * DAY_NS] {
            let linear: i64 = far.iter().map(|(s, e)| (probe - s).clamp(0, e - s)).sum();
            assert_eq!(r.before(probe), linear, "at {probe}");
        }
    }
}
