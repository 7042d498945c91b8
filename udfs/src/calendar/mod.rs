//! Working calendars: a [`CalendarRegistry`] loaded from the TOML format of docs/udfs.md §3 (or
//! the built-in production calendars), plus employee absences from the file or a table.
//!
//! Each calendar builds its [`timeline::Timeline`] on first use; employees get their removal
//! tables on first use too. The registry is immutable: a reload builds a new one and the
//! UDFs are registered again with it.

mod config;
mod timeline;

pub use config::{Absence, OutsideCoverage};

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::Duration;
use chrono_tz::Tz;

use config::CalendarSpec;
pub(crate) use timeline::{CalendarView, EmployeeView, MAX_NS, MIN_NS, NetView, Removal, Timeline};
use timeline::{local_instant, owned_intervals, subtract, union};

/// The built-in calendars: the Russian federal production calendar for every Russian zone.
pub const BUILTIN_TOML: &str = include_str!("../../calendars/builtin.toml");

/// A calendar problem, found when the file is loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalendarError {
    #[error("{origin}: {place}: {message}")]
    Invalid { origin: String, place: String, message: String },
    #[error("cannot read calendar file {path}: {message}")]
    Read { path: String, message: String },
}

/// Why an evaluation has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outside {
    /// Outside the holiday data, policy "null" (or an unsupported instant).
    Null,
    /// Outside the holiday data, policy "error".
    Error,
}

/// One calendar with its lazily built timeline.
#[derive(Debug)]
pub struct Calendar {
    spec: CalendarSpec,
    timeline: OnceLock<Timeline>,
    /// Coverage as instants `[from, to)`, when the policy is not "template".
    coverage_ns: Option<(i64, i64)>,
    removals: Mutex<HashMap<String, Arc<Removal>>>,
    /// How many employees have a table of their own (see [`Calendar::employee_view`]).
    own_tables: AtomicUsize,
}

impl Calendar {
    fn new(spec: CalendarSpec) -> Calendar {
        let coverage_ns = match (spec.coverage, spec.outside_coverage) {
            (Some(_), OutsideCoverage::Template) | (None, _) => None,
            (Some((from, to)), _) => Some((
                local_instant(spec.timezone, from, 0),
                local_instant(spec.timezone, to + Duration::days(1), 0),
            )),
        };
        Calendar { spec, timeline: OnceLock::new(), coverage_ns, removals: Mutex::new(HashMap::new()), own_tables: AtomicUsize::new(0) }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn timezone(&self) -> Tz {
        self.spec.timezone
    }

    pub(crate) fn timeline(&self) -> &Timeline {
        self.timeline.get_or_init(|| Timeline::build(&self.spec))
    }

    /// Checks a half-open instant range against the holiday data.
    #[inline]
    pub(crate) fn check_range(&self, lo: i64, hi: i64) -> Result<(), Outside> {
        match self.coverage_ns {
            Some((from, to)) if lo < hi && (lo < from || hi > to) => Err(match self.spec.outside_coverage {
                OutsideCoverage::Error => Outside::Error,
                _ => Outside::Null,
            }),
            _ => Ok(()),
        }
    }

    /// Whether a range outside the holiday data is an error (rather than NULL).
    pub(crate) fn errors_outside_coverage(&self) -> bool {
        self.spec.outside_coverage == OutsideCoverage::Error
    }

    /// The instants `[from, to)` outside which the coverage policy applies (`None`: never).
    #[inline]
    pub(crate) fn coverage_ns(&self) -> Option<(i64, i64)> {
        self.coverage_ns
    }

    /// The holiday-data range, for messages.
    pub fn coverage(&self) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        self.spec.coverage
    }

    /// The removal table of an employee (empty when they have no absences).
    pub(crate) fn removal(&self, registry: &CalendarRegistry, employee: &str) -> Option<Arc<Removal>> {
        let absences = registry.absences.get(employee)?;
        let mut cache = self.removals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = cache.get(employee) {
            return Some(Arc::clone(r));
        }
        let removal = Arc::new(self.build_removal(absences));
        cache.insert(employee.to_string(), Arc::clone(&removal));
        Some(removal)
    }

    fn build_removal(&self, absences: &[Absence]) -> Removal {
        let mut absent_days = std::collections::BTreeSet::new();
        let mut timed = Vec::new();
        for a in absences {
            match a {
                Absence::Days { from, to, .. } => {
                    let mut d = *from;
                    while d <= *to {
                        absent_days.insert(d);
                        d += Duration::days(1);
                    }
                }
                Absence::Timed { start_ns, end_ns, .. } => timed.push((*start_ns, *end_ns)),
            }
        }
        // Whole days drop the windows they own, but not the overnight tail of a worked
        // neighbour that reaches into them.
        let owned: Vec<(i64, i64)> = absent_days.iter().flat_map(|d| owned_intervals(&self.spec, *d)).collect();
        let neighbours: Vec<(i64, i64)> = absent_days
            .iter()
            .flat_map(|d| [*d - Duration::days(1), *d + Duration::days(1)])
            .filter(|d| !absent_days.contains(d))
            .flat_map(|d| owned_intervals(&self.spec, d))
            .collect();
        let mut removed = subtract(&union(owned), &union(neighbours));
        let timeline = self.timeline();
        for (s, e) in union(timed) {
            removed.extend(timeline.overlapping(s.max(MIN_NS), e.min(MAX_NS)));
        }
        let removed: Vec<(i64, i64)> =
            union(removed).into_iter().map(|(s, e)| (s.max(MIN_NS), e.min(MAX_NS))).filter(|(s, e)| e > s).collect();
        Removal::new(&removed, timeline)
    }

    /// At most this many employees of a calendar get a table of their own: 42 MB with two
    /// windows a day. The tables are kept as long as the registry (as the removals are), and
    /// a dashboard that filters by employee would otherwise build one for every employee it
    /// ever shows; the rest read the smaller net tables, with the same results.
    pub(crate) const MAX_OWN_TABLES: usize = 256;

    /// A literal employee's own table with slot size `N` (see `EmployeeTable`), built on
    /// first use while the calendar has fewer than [`Calendar::MAX_OWN_TABLES`]; `None` when
    /// the calendar has no holiday data, more than 9.1 years of it, another slot size, or
    /// no room left.
    pub(crate) fn employee_view<'a, const N: usize>(&'a self, removal: &'a Removal) -> Option<EmployeeView<'a, N>> {
        removal.own_view::<N>(self.timeline(), self.coverage_ns, &self.own_tables, Self::MAX_OWN_TABLES)
    }

    /// Working nanoseconds before `t` for an employee's removal table.
    #[inline]
    pub(crate) fn w(&self, t: i64, removal: Option<&Removal>) -> i64 {
        match removal {
            Some(r) if !r.is_empty() => r.working_before(self.timeline(), t),
            _ => self.timeline().w(t),
        }
    }

    #[inline]
    pub(crate) fn is_working(&self, t: i64, removal: Option<&Removal>) -> bool {
        self.timeline().contains(t) && !removal.is_some_and(|r| r.contains(t))
    }

    /// docs/udfs.md §2.5: the earliest instant after `ts` with `n` working nanoseconds between, or
    /// (for negative `n`) the latest before. `Ok(None)` when there is none within 3660 days
    /// or the supported range.
    pub(crate) fn add(&self, ts: i64, n: i64, removal: Option<&Removal>) -> Result<Option<i64>, Outside> {
        if n == 0 {
            return Ok(Some(ts));
        }
        let horizon = 3660 * 86_400 * 1_000_000_000i64;
        let base = self.w(ts, removal);
        let found = if n > 0 {
            let target = base.saturating_add(n);
            let hi = ts.saturating_add(horizon).min(MAX_NS - 1);
            if self.w(hi, removal) < target {
                None
            } else {
                // Smallest x in [ts, hi] with W(x) >= target.
                let (mut lo, mut hi) = (ts, hi);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if self.w(mid, removal) >= target { hi = mid } else { lo = mid + 1 }
                }
                Some(lo)
            }
        } else {
            let target = base.saturating_add(n);
            let lo = ts.saturating_sub(horizon).max(MIN_NS);
            if self.w(lo, removal) > target {
                None
            } else {
                // Largest x in [lo, ts] with W(x) <= target.
                let (mut lo, mut hi) = (lo, ts);
                while lo < hi {
                    let mid = lo + (hi - lo + 1) / 2;
                    if self.w(mid, removal) <= target { lo = mid } else { hi = mid - 1 }
                }
                Some(lo)
            }
        };
        match found {
            Some(x) => {
                self.check_range(ts.min(x), ts.max(x))?;
                Ok(Some(x))
            }
            None => {
                // Nothing found: the scan ran through uncovered dates, or there is no work.
                let end = if n > 0 { ts.saturating_add(horizon).min(MAX_NS) } else { ts.saturating_sub(horizon).max(MIN_NS) };
                self.check_range(ts.min(end), ts.max(end))?;
                Ok(None)
            }
        }
    }
}

/// Calendars by name, the default calendar, and absences by employee.
#[derive(Debug)]
pub struct CalendarRegistry {
    default_calendar: String,
    calendars: HashMap<String, Arc<Calendar>>,
    absences: HashMap<String, Vec<Absence>>,
    absence_source_sql: Option<String>,
}

impl CalendarRegistry {
    /// Parses calendar-file text; `origin` (usually the file name) prefixes every error.
    ///
    /// # Errors
    /// Any validation failure of docs/udfs.md §3, naming the calendar and entry.
    pub fn from_toml(origin: &str, text: &str) -> Result<CalendarRegistry, CalendarError> {
        let parsed = config::parse(origin, text)?;
        let default_calendar = parsed
            .default_calendar
            .or_else(|| parsed.calendars.first().map(|c| c.name.clone()))
            .ok_or_else(|| CalendarError::Invalid { origin: origin.into(), place: "calendars".into(), message: "the file defines no calendar".into() })?;
        let calendars = parsed.calendars.into_iter().map(|c| (c.name.clone(), Arc::new(Calendar::new(c)))).collect();
        let mut registry = CalendarRegistry { default_calendar, calendars, absences: HashMap::new(), absence_source_sql: parsed.absence_source_sql };
        registry.add_absences(parsed.absences);
        Ok(registry)
    }

    /// Reads a calendar file.
    ///
    /// # Errors
    /// The file cannot be read or is invalid.
    pub fn from_file(path: &Path) -> Result<CalendarRegistry, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalendarError::Read { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_toml(&path.display().to_string(), &text)
    }

    /// The built-in production calendars (see `calendars/builtin.toml`), default `ru_msk`.
    pub fn builtin() -> CalendarRegistry {
        match Self::from_toml("built-in calendars", BUILTIN_TOML) {
            Ok(r) => r,
            Err(e) => unreachable!("the built-in calendars are tested: {e}"),
        }
    }

    /// Makes the calendar in `zone` the default, when there is one (the built-in calendars
    /// have one per Russian zone), so a tenant's local office hours apply without naming it.
    pub fn with_default_for_zone(mut self, zone: Tz) -> CalendarRegistry {
        let mut names: Vec<&String> = self.calendars.keys().collect();
        names.sort();
        if self.calendars[&self.default_calendar].timezone() != zone
            && let Some(name) = names.into_iter().find(|n| self.calendars[*n].timezone() == zone)
        {
            self.default_calendar = name.clone();
        }
        self
    }

    /// Adds absences (for example from the tenant's `absences` table).
    pub fn with_absences(mut self, absences: impl IntoIterator<Item = Absence>) -> CalendarRegistry {
        self.add_absences(absences);
        self
    }

    fn add_absences(&mut self, absences: impl IntoIterator<Item = Absence>) {
        for a in absences {
            self.absences.entry(a.employee().to_string()).or_default().push(a);
        }
        for c in self.calendars.values() {
            c.removals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        }
    }

    pub fn default_calendar(&self) -> &str {
        &self.default_calendar
    }

    pub fn calendar(&self, name: &str) -> Option<&Arc<Calendar>> {
        self.calendars.get(name)
    }

    /// Calendar names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.calendars.keys().cloned().collect();
        n.sort();
        n
    }

    /// The `[absence_source].sql` of the file, for the host to run and feed back through
    /// [`CalendarRegistry::with_absences`].
    pub fn absence_source_sql(&self) -> Option<&str> {
        self.absence_source_sql.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_calendars_load() {
        let r = CalendarRegistry::builtin();
        assert_eq!(r.default_calendar(), "ru_msk");
        let r = r.with_default_for_zone(chrono_tz::Asia::Novosibirsk);
        assert_eq!(r.default_calendar(), "ru_nsk");
    }

    #[test]
    fn validation_errors_name_file_calendar_and_entry() {
        let cases: &[(&str, &str)] = &[
            ("format_version = 2", "cal.toml: format_version: 2 is not supported"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"Mars/Olympus\"\n[calendars.a.week]\nmon = []", "cal.toml: calendar a: timezone 'Mars/Olympus'"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"\n[calendars.a.week]\nmon = [\"09:00-13:00\", \"12:00-18:00\"]", "calendar a: week.mon: windows 09:00-13:00 and 12:00-18:00 overlap"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"\n[calendars.a.week]\nmon = [\"09:00-09:00\"]", "start = end"),
            ("format_version = 1\n[calendars.a]\nextends = \"b\"\n[calendars.b]\nextends = \"a\"", "extends forms a cycle: a -> b -> a"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"\nholiday_sets = [\"x\", \"y\"]\n[calendars.a.week]\nmon = []\n[holiday_sets.x]\ncovers = [\"2025-01-01\", \"2025-12-31\"]\nsource = \"s\"\n[holiday_sets.y]\ncovers = [\"2027-01-01\", \"2027-12-31\"]\nsource = \"s\"", "contiguous"),
            ("format_version = 1\n[holiday_sets.x]\ncovers = [\"2025-01-01\", \"2025-12-31\"]\nsource = \"s\"\nholidays = [\"2025-11-01\"]\nworking_days = [{ date = \"2025-11-01\", like = \"mon\" }]", "holiday set x: 2025-11-01 is both a day off and a working day"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"\n[calendars.a.week]\nmon = []\n[[absences]]\nemployee = \"e\"\nfrom_date = \"2025-02-01\"\nto_date = \"2025-01-01\"", "absences[0]: to_date 2025-01-01 is before from_date 2025-02-01"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"\n[calendars.a.week]\nmon = []\n[[absences]]\nemployee = \"e\"\nstart = \"2025-01-01T10:00:00Z\"\nend = \"2025-01-01T09:00:00Z\"", "absences[0]: end must be after start"),
            ("format_version = 1\n[calendars.a]\ntimezone = \"UTC\"", "calendar a: needs a week template or a rotation"),
        ];
        for (text, expected) in cases {
            let err = CalendarRegistry::from_toml("cal.toml", text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected '{expected}' in: {err}");
        }
    }
}

#[cfg(test)]
mod width_tests {
    use super::*;

    #[test]
    fn office_calendars_need_a_narrow_lookup() {
        let r = CalendarRegistry::builtin();
        let timeline = r.calendar("ru_msk").map(|c| c.timeline());
        let slot_size = |n| timeline.is_some_and(|t| match n {
            3 => t.padded_slots::<3>().is_some() && t.width() == 1,
            5 => t.padded_slots::<5>().is_some() && t.width() == 2,
            _ => t.padded_slots::<7>().is_some() && t.width() == 3,
        });
        assert!([3, 5, 7].into_iter().any(slot_size), "ru_msk needs a lookup of width 1 to 3");
    }

    #[test]
    fn a_literal_employee_of_a_builtin_calendar_gets_a_table_of_their_own() {
        // ru_msk: two windows a day and five years of holiday data, so the SQL tests' literal
        // employees take the own table (with a timed absence that splits a window).
        let absence = Absence::Timed { employee: "m-1".into(), start_ns: 1_760_511_600_000_000_000, end_ns: 1_760_520_600_000_000_000 };
        let registry = CalendarRegistry::builtin().with_absences([absence]);
        let calendar = registry.calendar("ru_msk").expect("built in");
        let removal = calendar.removal(&registry, "m-1").expect("m-1 has an absence");
        assert_eq!(calendar.timeline().width(), 2);
        assert!(calendar.employee_view::<5>(&removal).is_some());
    }
}
