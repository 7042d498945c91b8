//! The working calendar: weekends and RU holidays, local office hours (09:00-18:00 in the
//! tenant's zone), and the time units every part of the generator counts in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};
use rand::Rng;

use super::Generator;

/// RU public holidays (fixed dates) used by the demo's working calendar.
const HOLIDAYS: &[(u32, u32)] =
    &[(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8), (2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)];

pub(super) fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
        && !HOLIDAYS.contains(&(date.month(), date.day()))
}

const MINUTE_US: i64 = 60_000_000;
pub(super) const DAY_US: i64 = 86_400_000_000;

impl Generator {
    /// The instant of a local wall-clock time (earliest on a fold, shifted on a gap).
    pub(super) fn local(&self, date: NaiveDate, seconds: u32) -> i64 {
        let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds.min(86_399), 0)
            .unwrap_or(NaiveTime::MIN);
        let naive = date.and_time(time);
        match self.tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.timestamp_micros(),
            None => (naive + Duration::hours(1)).and_utc().timestamp_micros(),
        }
    }

    pub(super) fn local_date(&self, us: i64) -> NaiveDate {
        DateTime::from_timestamp_micros(us)
            .map(|t| t.with_timezone(&self.tz).date_naive())
            .unwrap_or(self.first_day)
    }

    /// A random instant within office hours (09:00-18:00, fewer calls over lunch).
    pub(super) fn office_time(&mut self, date: NaiveDate) -> i64 {
        let mut minute = self.rng.random_range(9 * 60..18 * 60);
        if (13 * 60..14 * 60).contains(&minute) && self.chance(0.6) {
            minute = self.rng.random_range(14 * 60..18 * 60);
        }
        let second = self.rng.random_range(0..60);
        self.local(date, minute * 60 + second)
    }

    /// `minutes` of office time after `start` (skipping nights, weekends and holidays).
    pub(super) fn after_office_minutes(&self, start: i64, minutes: f64) -> i64 {
        let mut left = (minutes * MINUTE_US as f64) as i64;
        let mut date = self.local_date(start);
        let mut t = start;
        for _ in 0..60 {
            if is_working_day(date) {
                let open = self.local(date, 9 * 3600);
                let close = self.local(date, 18 * 3600);
                let from = t.max(open);
                if from < close {
                    if from + left <= close {
                        return from + left;
                    }
                    left -= close - from;
                }
            }
            date += Duration::days(1);
            t = self.local(date, 0);
        }
        t
    }
}
