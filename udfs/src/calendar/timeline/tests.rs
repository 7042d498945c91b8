use super::*;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

#[test]
fn lookups_match_a_linear_sum() {
    let h = 3_600_000_000_000i64;
    let intervals = vec![(9 * h, 13 * h), (14 * h, 18 * h), (DAY_NS + 9 * h, DAY_NS + 18 * h), (3 * DAY_NS, 3 * DAY_NS + 30 * h)];
    let t = Timeline::from_intervals(&intervals);
    for probe in (0..6 * DAY_NS).step_by(h as usize / 2) {
        let linear: i64 = intervals.iter().map(|(s, e)| (probe - s).clamp(0, e - s)).sum();
        assert_eq!(t.w(probe), linear, "at {probe}");
        let slots = t.padded_slots::<5>().expect("width 2 has slots of 5");
        assert_eq!(slots.before(probe), linear, "the bucket slots at {probe}");
        assert!(t.padded_slots::<3>().is_none());
        let inside = intervals.iter().any(|(s, e)| *s <= probe && probe < *e);
        assert_eq!(t.contains(probe), inside, "at {probe}");
    }
    // Near 2100, three intervals in one bucket: each slot's constant (the time before it
    // less three starts near 4.1e18) wraps, and the lookup must still be exact, up to the
    // end of the supported range and past it to the end of the table (2^62 ns).
    let late = MAX_NS - 10 * h;
    let crowded = vec![(9 * h, 13 * h), (late, late + h), (late + 2 * h, late + 3 * h), (late + 4 * h, late + 5 * h)];
    let t = Timeline::from_intervals(&crowded);
    let slots = t.padded_slots::<7>().expect("three intervals in a bucket: slots of 7");
    let last_probes = (late - 2 * h..MAX_NS).step_by(h as usize / 4).chain([MAX_NS - 1, MAX_NS, (1 << 62) - 1]);
    for probe in (0..DAY_NS).step_by(h as usize).chain(last_probes) {
        let linear: i64 = crowded.iter().map(|(s, e)| (probe - s).clamp(0, e - s)).sum();
        assert_eq!(slots.before(probe), linear, "the bucket slots at {probe}");
        if probe < MAX_NS {
            assert_eq!(t.w(probe), linear, "at {probe}");
        }
    }
}

#[test]
fn interval_algebra() {
    assert_eq!(union(vec![(5, 7), (1, 3), (3, 4), (6, 9)]), vec![(1, 4), (5, 9)]);
    for t in [-5, 0, 9, 10, 11, 12, 13, 1 << 40] {
        assert_eq!(clamp_to(t, 10, 13), t.clamp(10, 13), "clamp {t}");
    }
    assert_eq!((clamp_to(i64::MIN, 0, 5), clamp_to(i64::MAX, 0, 5), clamp_to(7, SENTINEL, SENTINEL)), (0, 5, SENTINEL));
    assert_eq!(subtract(&[(0, 10), (20, 30)], &[(2, 3), (8, 22)]), vec![(0, 2), (3, 8), (22, 30)]);
    // An employee's working time is the calendar's less what their absences remove,
    // from the net table (absences within 1,000 days) or by bisection (further apart), and
    // the fused loop's lookup agrees with a linear sum for any width and any instant.
    let h = 3_600_000_000_000i64;
    let calendar: Vec<(i64, i64)> = (0..4_000).flat_map(|d| [(d * DAY_NS + 9 * h, d * DAY_NS + 13 * h), (d * DAY_NS + 14 * h, d * DAY_NS + 18 * h)]).collect();
    let linear = |set: &[(i64, i64)], t: i64| set.iter().map(|(s, e)| (t - s).clamp(0, e - s)).sum::<i64>();
    let timeline = Timeline::from_intervals(&calendar);
    let (slots, wide) = (timeline.padded_slots::<5>().expect("width 2"), timeline.padded_slots::<7>().expect("padded to 3"));
    let whole_windows = [(2 * DAY_NS + 9 * h, 2 * DAY_NS + 13 * h), (9 * DAY_NS + 14 * h, 9 * DAY_NS + 18 * h)];
    // An hour inside a window splits it: finer buckets keep the net table at width 2,
    // unless the absences span too many of them; then its slots are 3 wide.
    let split = [(2 * DAY_NS + 9 * h, 2 * DAY_NS + 13 * h), (3 * DAY_NS + 10 * h, 3 * DAY_NS + 11 * h), (9 * DAY_NS + 14 * h, 9 * DAY_NS + 18 * h)];
    let split_far = [split[0], split[1], split[2], (900 * DAY_NS + 14 * h, 900 * DAY_NS + 15 * h)];
    let far = [(DAY_NS + 9 * h, DAY_NS + 10 * h), (2_000 * DAY_NS + 14 * h, 2_000 * DAY_NS + 17 * h)];
    // Thirty short absences in one morning and one 900 days later: slots that wide would
    // only cost memory, so this employee is searched by bisection.
    let crowded: Vec<(i64, i64)> = (0..30).map(|i| (4 * DAY_NS + 9 * h + i * 6 * 60_000_000_000, 4 * DAY_NS + 9 * h + (i * 6 + 1) * 60_000_000_000)).chain([(904 * DAY_NS + 14 * h, 904 * DAY_NS + 15 * h)]).collect();
    let cases = [(&whole_windows[..], Some(2)), (&split[..], Some(2)), (&split_far[..], Some(3)), (&far[..], None), (&crowded[..], None)];
    let built = AtomicUsize::new(0);
    for (removed, width) in cases {
        let r = Removal::new(removed, &timeline);
        assert_eq!(r.net_width(), width);
        assert!(!r.is_empty() && r.contains(removed[0].0) && !r.contains(removed[0].1));
        let probes = (0..12 * DAY_NS).step_by(h as usize / 3).chain((890 * DAY_NS..910 * DAY_NS).step_by(h as usize)).chain((1_990 * DAY_NS..2_010 * DAY_NS).step_by(h as usize));
        for probe in probes.chain([i64::MIN, -1, MAX_NS + DAY_NS, i64::MAX]) {
            let expected = || linear(&calendar, probe) - linear(removed, probe);
            if (MIN_NS..MAX_NS).contains(&probe) {
                assert_eq!(r.working_before(&timeline, probe), expected(), "at {probe}");
            }
            // Far outside the calendar's intervals the table clamps; only the range is meaningful.
            let fused = match width {
                Some(2) => r.net_view(slots).map(|v| v.before(probe)),
                Some(_) => r.net_view(wide).map(|v| v.before(probe)),
                None => r.net_view(slots).map(|v| v.before(probe)),
            };
            assert_eq!(fused.is_some(), width.is_some());
            if (0..4_000 * DAY_NS).contains(&probe) && fused.is_some() {
                assert_eq!(fused, Some(expected()), "the net view at {probe}");
            }
            // The employee's own table, over 3,000 days of holiday data (3,684 buckets):
            // exact inside them, any value (and no panic) outside.
            let own = r.own_view::<5>(&timeline, Some((0, 3_000 * DAY_NS)), &built, usize::MAX).expect("3,000 days fit the ring");
            let value = own.before(probe);
            if (0..=3_000 * DAY_NS).contains(&probe) {
                assert_eq!(value, expected(), "the own table at {probe}");
            }
        }
        // A window split by a timed absence (`split`, `split_far`) or thirty gaps in one
        // morning (`crowded`) put more than two intervals in one bucket: that one slot
        // escapes to the exact search.
        let escapes = r.own.get().and_then(Option::as_ref).map(|t| t.slots.chunks_exact(5).filter(|s| s[1] == ESCAPE).count());
        assert_eq!(escapes, Some(usize::from(removed.len() > 2)), "escaped slots of {removed:?}");
    }
    // Holiday data longer than the ring, or none (the lookups must hold everywhere): no own
    // table, and a slot size other than the calendar's: none either.
    let own = |coverage, limit| Removal::new(&split, &timeline).own_view::<5>(&timeline, coverage, &AtomicUsize::new(0), limit).is_some();
    assert!(!own(Some((0, 3_400 * DAY_NS)), 1) && !own(None, 1) && !own(Some((0, DAY_NS)), 0));
    assert!(own(Some((0, 3_300 * DAY_NS)), 1), "4,052 buckets fit");
    assert!(Removal::new(&split, &timeline).own_view::<7>(&timeline, Some((0, DAY_NS)), &built, usize::MAX).is_none());
    // A calendar's tables stop at its limit; the next employee gets none.
    let counted = AtomicUsize::new(0);
    let (first, second) = (Removal::new(&split, &timeline), Removal::new(&far, &timeline));
    assert!(first.own_view::<5>(&timeline, Some((0, DAY_NS)), &counted, 1).is_some());
    assert!(second.own_view::<5>(&timeline, Some((0, DAY_NS)), &counted, 1).is_none());
    assert!(first.own_view::<5>(&timeline, Some((0, DAY_NS)), &counted, 1).is_some(), "a built table stays");
    // Holiday data from inside a window (so the ring starts mid-interval and wraps past
    // slot 4,095), with a whole window and a split one inside it and one before it: exact
    // from the first covered instant to the last, escapes included, and no panic for the
    // instants outside (among them those that share the escaped slot, 4,096 buckets on).
    let (from, to) = (1_000 * DAY_NS + 11 * h, 4_000 * DAY_NS);
    let removed = [(3 * DAY_NS + 10 * h, 3 * DAY_NS + 11 * h), (1_500 * DAY_NS + 9 * h, 1_500 * DAY_NS + 13 * h), (2_004 * DAY_NS + 10 * h, 2_004 * DAY_NS + 11 * h)];
    let r = Removal::new(&removed, &timeline);
    let own = r.own_view::<5>(&timeline, Some((from, to)), &built, usize::MAX).expect("3,000 days fit the ring");
    assert!((from >> CALENDAR_SHIFT) as usize % EMPLOYEE_BUCKETS + 3_684 > EMPLOYEE_BUCKETS, "the ring wraps");
    let escapes = r.own.get().and_then(Option::as_ref).map(|t| t.slots.chunks_exact(5).filter(|s| s[1] == ESCAPE).count());
    assert_eq!(escapes, Some(1), "the split window of day 2,004");
    let ring = (EMPLOYEE_BUCKETS as i64) << CALENDAR_SHIFT;
    let near = |day: i64| (day * DAY_NS..(day + 2) * DAY_NS).step_by(h as usize / 3);
    let probes = near(1_000).chain(near(1_500)).chain(near(2_003)).chain(near(3_999)).chain([from - 1, from, to - 1, to, to + 1]);
    for probe in probes.chain(near(2_003).map(|t| t + ring)) {
        let value = own.before(probe);
        if (from..=to).contains(&probe) {
            assert_eq!(value, linear(&calendar, probe) - linear(&removed, probe), "the wrapped own table at {probe}");
        }
    }
    let none = Removal::new(&[], &timeline);
    assert!(none.is_empty() && none.working_before(&timeline, 5 * DAY_NS) == timeline.w(5 * DAY_NS));
}
