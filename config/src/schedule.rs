//! A tenant's cron `schedule`, evaluated in the tenant's time zone (daylight saving time
//! handled by the zone), parsed with the config so that a bad pattern is a config error.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    timezone: Tz,
}

impl Schedule {
    /// Parses a 5-field (or 6-field, with seconds) cron pattern.
    ///
    /// # Errors
    /// The pattern is not valid cron ([`ScheduleError`]); the message says why.
    pub fn parse(pattern: &str, timezone: Tz) -> Result<Schedule, ScheduleError> {
        let cron = pattern.parse::<croner::Cron>().map_err(|source| ScheduleError::NotCron { pattern: pattern.to_string(), source })?;
        Ok(Schedule { cron, timezone })
    }

    /// The first scheduled time after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.timezone), false).ok().map(|d| d.with_timezone(&Utc))
    }
}

/// Why [`Schedule::parse`] refused a pattern.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The pattern is not cron; croner says why.
    #[error("'{pattern}' is not a cron schedule such as \"0 */2 * * *\" ({source})")]
    NotCron {
        pattern: String,
        #[source]
        source: croner::errors::CronError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_run_in_the_tenant_zone() {
        let s = Schedule::parse("0 6 * * *", chrono_tz::Europe::Moscow).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
        assert_eq!(s.next_after(t).unwrap(), Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(), "06:00 in Moscow is 03:00 UTC");
        assert_eq!(s.next_after(Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap()).unwrap(), Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0).unwrap());
        let e = Schedule::parse("every hour", chrono_tz::UTC).unwrap_err().to_string();
        assert!(e.contains("'every hour' is not a cron schedule"), "{e}");
    }
}
