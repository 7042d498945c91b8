//! The fast path of UDFS.md §4.1: a calendar's working set as sorted disjoint UTC intervals
//! with prefix sums and a UTC-day bucket index, built once; evaluating `W(t)` (working
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

/// `clamp(d, 0, len)` for `len >= 0`, without a branch. Random instants make the comparisons
/// of `i64::clamp` unpredictable, and one mispredicted branch costs more than a whole lookup.
#[inline(always)]
pub(crate) fn clamp_to_len(d: i64, len: i64) -> i64 {
    let d = d & !(d >> 63);
    let over = d - len;
    len + (over & (over >> 63))
}

/// `W(t)` from a timeline's [`Timeline::day_slots`]: one slot, addressed by `t` alone, and
/// no branch. For `t` outside `[MIN_NS, MAX_NS)` the result is meaningless (the index is
/// clamped to the last slot), never a panic: callers mask those rows.
#[inline(always)]
pub(crate) fn w_in<const N: usize>(slots: &[[i64; N]], t: i64) -> i64 {
    let last = slots.len().saturating_sub(1);
    let slot = &slots[((t as u64) / DAY_NS as u64).min(last as u64) as usize];
    let mut sum = slot[0];
    let mut j = 1;
    while j + 1 < N {
        sum += clamp_to_len(t.wrapping_sub(slot[j]), slot[j + 1]);
        j += 2;
    }
    sum
}

/// The working set of one calendar, ready for O(1) lookups.
#[derive(Debug)]
pub(crate) struct Timeline {
    starts: Vec<i64>,
    lens: Vec<i64>,
    /// `cum[k]` = working time of intervals `0..k`.
    cum: Vec<i64>,
    /// Per UTC day since the epoch: the first interval that ends after the day starts.
    first: Vec<u32>,
    /// How many intervals a lookup scans from `first` (the arrays are padded by this many).
    k: usize,
    n: usize,
    /// The hot path's copy of the above, one slot of `1 + 2k` values per UTC day:
    /// `cum[first[d]]`, then `(start, len)` of intervals `first[d]..first[d] + k`. A lookup
    /// reads one slot whose address it computes from `t` alone: no dependent load.
    slots: Vec<i64>,
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
        let n = intervals.len();
        let mut starts: Vec<i64> = intervals.iter().map(|i| i.0).collect();
        let mut lens: Vec<i64> = intervals.iter().map(|i| i.1 - i.0).collect();
        let mut cum = Vec::with_capacity(n + 1);
        let mut total = 0;
        cum.push(0);
        for l in &lens {
            total += l;
            cum.push(total);
        }
        let buckets = (MAX_NS / DAY_NS) as usize;
        let mut first = Vec::with_capacity(buckets);
        let mut k_needed = 1;
        let mut i = 0;
        for b in 0..buckets as i64 {
            let bucket_start = b * DAY_NS;
            while i < n && intervals[i].1 <= bucket_start {
                i += 1;
            }
            first.push(i as u32);
            let bucket_end = bucket_start + DAY_NS;
            let mut j = i;
            while j < n && intervals[j].0 < bucket_end {
                j += 1;
            }
            k_needed = k_needed.max(j - i);
        }
        starts.extend(std::iter::repeat_n(SENTINEL, k_needed));
        lens.extend(std::iter::repeat_n(0, k_needed));
        let mut slots = Vec::with_capacity(first.len() * (1 + 2 * k_needed));
        for &f in &first {
            let f = f as usize;
            slots.push(cum[f]);
            for j in 0..k_needed {
                slots.push(starts[f + j]);
                slots.push(lens[f + j]);
            }
        }
        Timeline { starts, lens, cum, first, k: k_needed, n, slots }
    }

    /// Working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn w(&self, t: i64) -> i64 {
        let i = self.first[(t / DAY_NS) as usize] as usize;
        let mut sum = self.cum[i];
        for j in 0..self.k {
            sum += clamp_to_len(t - self.starts[i + j], self.lens[i + j]);
        }
        sum
    }

    /// The day slots as arrays of `N = 1 + 2 * width` values, for [`w_in`]; `None` when `N`
    /// is not this timeline's slot size.
    pub(crate) fn day_slots<const N: usize>(&self) -> Option<&[[i64; N]]> {
        if N != 1 + 2 * self.k {
            return None;
        }
        let (slots, rest) = self.slots.as_chunks::<N>();
        rest.is_empty().then_some(slots)
    }

    /// Whether `t` lies in the working set.
    #[inline]
    pub(crate) fn contains(&self, t: i64) -> bool {
        let i = self.first[(t / DAY_NS) as usize] as usize;
        (0..self.k).any(|j| self.starts[i + j] <= t && t < self.starts[i + j] + self.lens[i + j])
    }

    /// The intervals of the working set that overlap `[s, e)`.
    pub(crate) fn overlapping(&self, s: i64, e: i64) -> Vec<(i64, i64)> {
        let from = self.starts[..self.n].partition_point(|x| *x < s).saturating_sub(1);
        (from..self.n)
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
    cum: Vec<i64>,
}

impl Removal {
    /// A first, empty interval long before any supported instant, so that every lookup has
    /// an interval before it and [`Removal::before`] needs no branch.
    const FLOOR: i64 = -(1 << 62);

    pub(crate) fn new(intervals: &[(i64, i64)]) -> Removal {
        let all = std::iter::once((Self::FLOOR, Self::FLOOR)).chain(intervals.iter().copied());
        let mut cum = vec![0];
        let mut total = 0;
        for (s, e) in all.clone() {
            total += e - s;
            cum.push(total);
        }
        Removal { starts: all.clone().map(|i| i.0).collect(), ends: all.map(|i| i.1).collect(), cum }
    }

    /// Removed working nanoseconds before `t`; `t` must be in `[MIN_NS, MAX_NS)`.
    #[inline]
    pub(crate) fn before(&self, t: i64) -> i64 {
        // At least 1: the floor interval starts before every supported `t`.
        let idx = self.starts.partition_point(|s| *s < t).max(1);
        self.cum[idx] - (self.ends[idx - 1] - t).max(0)
    }

    #[inline]
    pub(crate) fn contains(&self, t: i64) -> bool {
        let idx = self.starts.partition_point(|s| *s <= t);
        idx > 0 && t < self.ends[idx - 1]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.starts.len() <= 1
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
            let slots = t.day_slots::<5>().expect("width 2 has slots of 5");
            assert_eq!(w_in(slots, probe), linear, "the day slots at {probe}");
            assert!(t.day_slots::<3>().is_none());
            let inside = intervals.iter().any(|(s, e)| *s <= probe && probe < *e);
            assert_eq!(t.contains(probe), inside, "at {probe}");
        }
    }

    #[test]
    fn interval_algebra() {
        assert_eq!(union(vec![(5, 7), (1, 3), (3, 4), (6, 9)]), vec![(1, 4), (5, 9)]);
        for d in [-5, 0, 1, 2, 3, 4, 1 << 40] {
            assert_eq!(clamp_to_len(d, 3), d.clamp(0, 3), "clamp {d}");
        }
        assert_eq!(subtract(&[(0, 10), (20, 30)], &[(2, 3), (8, 22)]), vec![(0, 2), (3, 8), (22, 30)]);
        let r = Removal::new(&[(10, 20), (30, 40)]);
        assert_eq!((r.before(5), r.before(15), r.before(25), r.before(35), r.before(50)), (0, 5, 10, 15, 20));
        assert!(r.contains(10) && !r.contains(20) && r.contains(39));
    }
}
