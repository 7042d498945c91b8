//! The calendar file (docs/udfs.md §3, `format_version = 1`): parsed with serde, then validated
//! and resolved (`extends`, holiday sets) into [`CalendarSpec`]s. Every mistake is reported
//! here, at load time, naming the file, the calendar (or holiday set or absence) and the
//! offending entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::CalendarError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    format_version: u32,
    default_calendar: Option<String>,
    #[serde(default)]
    holiday_sets: BTreeMap<String, RawHolidaySet>,
    #[serde(default)]
    calendars: BTreeMap<String, RawCalendar>,
    #[serde(default)]
    absences: Vec<RawAbsence>,
    absence_source: Option<RawAbsenceSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolidaySet {
    #[allow(dead_code)]
    country: Option<String>,
    covers: Vec<String>,
    source: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    days_off: Vec<String>,
    #[serde(default)]
    working_days: Vec<RawWorkingDay>,
    #[serde(default)]
    short_days: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkingDay {
    date: String,
    like: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    timezone: Option<String>,
    extends: Option<String>,
    holiday_sets: Option<Vec<String>>,
    short_day_minutes: Option<u32>,
    outside_coverage: Option<String>,
    week: Option<BTreeMap<String, Vec<String>>>,
    rotation: Option<RawRotation>,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    anchor: String,
    days: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    date: String,
    windows: Vec<String>,
    #[allow(dead_code)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbsence {
    employee: toml::Value,
    #[allow(dead_code)]
    kind: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbsenceSource {
    sql: String,
}

/// A working window in seconds after local midnight of the date that owns it; `end` may
/// pass 86 400 for overnight windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// What to do with a range that touches dates outside the holiday data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutsideCoverage {
    Null,
    Template,
    Error,
}

/// The weekly pattern of a calendar.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// Monday first.
    Week([Vec<Window>; 7]),
    Rotation { anchor: NaiveDate, days: Vec<Vec<Window>> },
}

/// A validated, fully resolved calendar.
#[derive(Debug, Clone)]
pub(crate) struct CalendarSpec {
    pub(crate) name: String,
    pub(crate) timezone: Tz,
    pub(crate) pattern: Pattern,
    pub(crate) non_working: BTreeSet<NaiveDate>,
    /// Weekend dates worked like the given weekday.
    pub(crate) working_days: BTreeMap<NaiveDate, Weekday>,
    pub(crate) short_days: BTreeSet<NaiveDate>,
    pub(crate) short_day_minutes: u32,
    pub(crate) overrides: BTreeMap<NaiveDate, Vec<Window>>,
    /// Inclusive local-date range of the holiday data, when the calendar uses holiday sets.
    pub(crate) coverage: Option<(NaiveDate, NaiveDate)>,
    pub(crate) outside_coverage: OutsideCoverage,
}

/// An absence from the file or from an absences table.
#[derive(Debug, Clone, PartialEq)]
pub enum Absence {
    /// Whole local days, inclusive, in the zone of the calendar used.
    Days { employee: String, from: NaiveDate, to: NaiveDate },
    /// A half-open range of instants, nanoseconds since the epoch.
    Timed { employee: String, start_ns: i64, end_ns: i64 },
}

impl Absence {
    pub fn employee(&self) -> &str {
        match self {
            Absence::Days { employee, .. } | Absence::Timed { employee, .. } => employee,
        }
    }
}

/// Everything a calendar file holds, validated.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub(crate) default_calendar: Option<String>,
    pub(crate) calendars: Vec<CalendarSpec>,
    pub(crate) absences: Vec<Absence>,
    pub(crate) absence_source_sql: Option<String>,
}

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, place: impl Into<String>, message: impl Into<String>) -> CalendarError {
        CalendarError::Invalid { origin: self.origin.to_string(), place: place.into(), message: message.into() }
    }
}

pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `HH:MM[:SS]` to seconds; `24:00` only when `allow_24`.
fn parse_time(text: &str, allow_24: bool) -> Option<u32> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let h: u32 = parts[0].parse().ok()?;
    let m: u32 = parts[1].parse().ok()?;
    let s: u32 = parts.get(2).map_or(Some(0), |p| p.parse().ok())?;
    if m > 59 || s > 59 {
        return None;
    }
    match h {
        0..=23 => Some(h * 3600 + m * 60 + s),
        24 if allow_24 && m == 0 && s == 0 => Some(86_400),
        _ => None,
    }
}

/// A day's working windows that cannot be read; the caller names the file and entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum WindowError {
    #[error("window '{0}' must look like 09:00-18:00")]
    Shape(String),
    #[error("window '{window}': '{time}' is not a start time HH:MM[:SS] (24:00 only ends a window)")]
    Start { window: String, time: String },
    #[error("window '{window}': '{time}' is not an end time HH:MM[:SS]")]
    End { window: String, time: String },
    #[error("window '{0}' has start = end; use 00:00-24:00 for a full day")]
    Empty(String),
    #[error("windows {0} and {1} overlap")]
    Overlap(String, String),
}

fn parse_window(text: &str) -> Result<Window, WindowError> {
    let (a, b) = text.split_once('-').ok_or_else(|| WindowError::Shape(text.to_string()))?;
    let start = parse_time(a, false).ok_or_else(|| WindowError::Start { window: text.to_string(), time: a.to_string() })?;
    let end = parse_time(b, true).ok_or_else(|| WindowError::End { window: text.to_string(), time: b.to_string() })?;
    if start == end {
        return Err(WindowError::Empty(text.to_string()));
    }
    // An end before the start runs overnight into the next day.
    let end = if end < start { end + 86_400 } else { end };
    Ok(Window { start, end })
}

/// Parses one day's windows and checks they do not overlap (touching is fine).
fn parse_day(texts: &[String]) -> Result<Vec<Window>, WindowError> {
    let mut windows = texts.iter().map(|t| parse_window(t)).collect::<Result<Vec<_>, _>>()?;
    windows.sort_by_key(|w| w.start);
    for pair in windows.windows(2) {
        if pair[1].start < pair[0].end {
            return Err(WindowError::Overlap(show(pair[0]), show(pair[1])));
        }
    }
    Ok(windows)
}

fn show(w: Window) -> String {
    let f = |s: u32| format!("{:02}:{:02}", (s / 3600) % 24 + if s == 86_400 { 24 } else { 0 }, (s / 60) % 60);
    format!("{}-{}", f(w.start), f(w.end))
}

fn weekday(name: &str) -> Option<Weekday> {
    match name.to_ascii_lowercase().as_str() {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

/// The instant of an RFC 3339 time with an explicit offset, in nanoseconds.
fn parse_instant(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok()?.timestamp_nanos_opt()
}

pub(crate) fn employee_key(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

struct HolidaySet {
    from: NaiveDate,
    to: NaiveDate,
    non_working: Vec<NaiveDate>,
    working_days: Vec<(NaiveDate, Weekday)>,
    short_days: Vec<NaiveDate>,
}

fn holiday_set(ctx: &Ctx<'_>, name: &str, raw: &RawHolidaySet) -> Result<HolidaySet, CalendarError> {
    let place = format!("holiday set {name}");
    if raw.source.trim().is_empty() {
        return Err(ctx.err(&place, "source is required: name the decree or data the dates come from"));
    }
    let [from, to] = raw.covers.as_slice() else {
        return Err(ctx.err(&place, "covers must be [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]"));
    };
    let (Some(from), Some(to)) = (parse_date(from), parse_date(to)) else {
        return Err(ctx.err(&place, format!("covers {:?} must hold two dates as YYYY-MM-DD", raw.covers)));
    };
    if to < from {
        return Err(ctx.err(&place, "covers ends before it starts"));
    }
    let date = |key: &str, text: &str| -> Result<NaiveDate, CalendarError> {
        let d = parse_date(text).ok_or_else(|| ctx.err(&place, format!("{key}: '{text}' is not a date YYYY-MM-DD")))?;
        if d < from || d > to {
            return Err(ctx.err(&place, format!("{key}: {d} lies outside covers {from}..{to}")));
        }
        Ok(d)
    };
    let mut non_working = Vec::new();
    for t in &raw.holidays {
        non_working.push(date("holidays", t)?);
    }
    for t in &raw.days_off {
        non_working.push(date("days_off", t)?);
    }
    let mut working_days = Vec::new();
    for w in &raw.working_days {
        let d = date("working_days", &w.date)?;
        let like = weekday(&w.like).ok_or_else(|| ctx.err(&place, format!("working_days {d}: like = '{}' must be mon..sun", w.like)))?;
        if non_working.contains(&d) {
            return Err(ctx.err(&place, format!("{d} is both a day off and a working day")));
        }
        working_days.push((d, like));
    }
    let mut short_days = Vec::new();
    for t in &raw.short_days {
        short_days.push(date("short_days", t)?);
    }
    Ok(HolidaySet { from, to, non_working, working_days, short_days })
}

/// Merges a calendar with its `extends` chain: the child's keys win, overrides add up.
fn resolve_raw(ctx: &Ctx<'_>, name: &str, all: &BTreeMap<String, RawCalendar>) -> Result<RawCalendar, CalendarError> {
    let mut chain = vec![name.to_string()];
    let mut current = all.get(name).cloned().unwrap_or_default();
    let mut merged = current.clone();
    while let Some(parent) = current.extends.clone() {
        if chain.contains(&parent) {
            chain.push(parent);
            return Err(ctx.err(format!("calendar {name}"), format!("extends forms a cycle: {}", chain.join(" -> "))));
        }
        let Some(p) = all.get(&parent) else {
            return Err(ctx.err(format!("calendar {}", chain.last().map_or(name, String::as_str)), format!("extends unknown calendar '{parent}'")));
        };
        chain.push(parent);
        merged.timezone = merged.timezone.or_else(|| p.timezone.clone());
        merged.holiday_sets = merged.holiday_sets.or_else(|| p.holiday_sets.clone());
        merged.short_day_minutes = merged.short_day_minutes.or(p.short_day_minutes);
        merged.outside_coverage = merged.outside_coverage.or_else(|| p.outside_coverage.clone());
        if merged.week.is_none() && merged.rotation.is_none() {
            merged.week = p.week.clone();
            merged.rotation = p.rotation.clone();
        }
        let mut overrides = p.overrides.clone();
        overrides.extend(merged.overrides);
        merged.overrides = overrides;
        current = p.clone();
    }
    Ok(merged)
}

fn calendar(ctx: &Ctx<'_>, name: &str, raw: &RawCalendar, sets: &HashMap<String, HolidaySet>) -> Result<CalendarSpec, CalendarError> {
    let place = format!("calendar {name}");
    let zone = raw.timezone.as_deref().ok_or_else(|| ctx.err(&place, "timezone is required (an IANA name such as Europe/Moscow)"))?;
    let timezone: Tz = zone.parse().map_err(|_| ctx.err(&place, format!("timezone '{zone}' is not an IANA time zone")))?;
    let pattern = match (&raw.week, &raw.rotation) {
        (Some(_), Some(_)) => return Err(ctx.err(&place, "has both week and rotation; keep one")),
        (None, None) => return Err(ctx.err(&place, "needs a week template or a rotation")),
        (Some(week), None) => {
            let mut days: [Vec<Window>; 7] = Default::default();
            for (key, texts) in week {
                let day = weekday(key).ok_or_else(|| ctx.err(&place, format!("week.{key}: days are mon, tue, wed, thu, fri, sat, sun")))?;
                days[day.num_days_from_monday() as usize] = parse_day(texts).map_err(|m| ctx.err(&place, format!("week.{key}: {m}")))?;
            }
            Pattern::Week(days)
        }
        (None, Some(rotation)) => {
            let anchor = parse_date(&rotation.anchor).ok_or_else(|| ctx.err(&place, format!("rotation.anchor '{}' is not a date YYYY-MM-DD", rotation.anchor)))?;
            if rotation.days.is_empty() {
                return Err(ctx.err(&place, "rotation.days is empty"));
            }
            let days = rotation
                .days
                .iter()
                .enumerate()
                .map(|(i, d)| parse_day(d).map_err(|m| ctx.err(&place, format!("rotation.days[{i}]: {m}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Pattern::Rotation { anchor, days }
        }
    };
    let mut spec = CalendarSpec {
        name: name.to_string(),
        timezone,
        pattern,
        non_working: BTreeSet::new(),
        working_days: BTreeMap::new(),
        short_days: BTreeSet::new(),
        short_day_minutes: raw.short_day_minutes.unwrap_or(60),
        overrides: BTreeMap::new(),
        coverage: None,
        outside_coverage: OutsideCoverage::Null,
    };
    let mut ranges = Vec::new();
    for set_name in raw.holiday_sets.iter().flatten() {
        let set = sets.get(set_name).ok_or_else(|| ctx.err(&place, format!("holiday_sets names unknown set '{set_name}'")))?;
        ranges.push((set.from, set.to, set_name.clone()));
        spec.non_working.extend(set.non_working.iter().copied());
        spec.short_days.extend(set.short_days.iter().copied());
        for (d, like) in &set.working_days {
            if matches!(spec.pattern, Pattern::Rotation { .. }) {
                return Err(ctx.err(&place, format!("working day {d} (like = {like}) needs a week template, not a rotation")));
            }
            spec.working_days.insert(*d, *like);
        }
    }
    if let Some(d) = spec.working_days.keys().find(|d| spec.non_working.contains(d)) {
        return Err(ctx.err(&place, format!("{d} is both a day off and a working day in its holiday sets")));
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].0 != pair[0].1 + chrono::Duration::days(1) {
            return Err(ctx.err(&place, format!(
                "holiday sets must cover contiguous dates: {} ends {} but {} starts {}",
                pair[0].2, pair[0].1, pair[1].2, pair[1].0
            )));
        }
    }
    if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
        spec.coverage = Some((first.0, last.1));
    }
    spec.outside_coverage = match raw.outside_coverage.as_deref() {
        None | Some("null") => OutsideCoverage::Null,
        Some("template") => OutsideCoverage::Template,
        Some("error") => OutsideCoverage::Error,
        Some(other) => return Err(ctx.err(&place, format!("outside_coverage = '{other}' must be \"null\", \"template\" or \"error\""))),
    };
    for o in &raw.overrides {
        let d = parse_date(&o.date).ok_or_else(|| ctx.err(&place, format!("overrides: '{}' is not a date YYYY-MM-DD", o.date)))?;
        let windows = parse_day(&o.windows).map_err(|m| ctx.err(&place, format!("overrides {d}: {m}")))?;
        spec.overrides.insert(d, windows);
    }
    Ok(spec)
}

fn absence(ctx: &Ctx<'_>, index: usize, raw: &RawAbsence) -> Result<Absence, CalendarError> {
    let place = format!("absences[{index}]");
    let employee = employee_key(&raw.employee).ok_or_else(|| ctx.err(&place, "employee must be a string or an integer"))?;
    match (&raw.from_date, &raw.to_date, &raw.start, &raw.end) {
        (Some(f), Some(t), None, None) => {
            let (Some(from), Some(to)) = (parse_date(f), parse_date(t)) else {
                return Err(ctx.err(&place, "from_date and to_date must be dates YYYY-MM-DD"));
            };
            if to < from {
                return Err(ctx.err(&place, format!("to_date {to} is before from_date {from}")));
            }
            Ok(Absence::Days { employee, from, to })
        }
        (None, None, Some(s), Some(e)) => {
            let (Some(start_ns), Some(end_ns)) = (parse_instant(s), parse_instant(e)) else {
                return Err(ctx.err(&place, "start and end must be RFC 3339 times with an offset, such as 2025-10-15T10:00:00+03:00"));
            };
            if end_ns <= start_ns {
                return Err(ctx.err(&place, "end must be after start"));
            }
            Ok(Absence::Timed { employee, start_ns, end_ns })
        }
        _ => Err(ctx.err(&place, "give either from_date and to_date (whole days) or start and end (a timed absence)")),
    }
}

/// Parses and validates calendar-file text; `origin` names it in errors.
pub(crate) fn parse(origin: &str, text: &str) -> Result<ParsedFile, CalendarError> {
    let ctx = Ctx { origin };
    let raw: RawFile = toml::from_str(text).map_err(|e| ctx.err("file", e.to_string().trim_end().to_string()))?;
    if raw.format_version != 1 {
        return Err(ctx.err("format_version", format!("{} is not supported; this build reads format_version = 1", raw.format_version)));
    }
    let mut sets = HashMap::new();
    for (name, set) in &raw.holiday_sets {
        sets.insert(name.clone(), holiday_set(&ctx, name, set)?);
    }
    let mut calendars = Vec::new();
    for name in raw.calendars.keys() {
        let merged = resolve_raw(&ctx, name, &raw.calendars)?;
        calendars.push(calendar(&ctx, name, &merged, &sets)?);
    }
    if let Some(d) = &raw.default_calendar
        && !raw.calendars.contains_key(d)
    {
        return Err(ctx.err("default_calendar", format!("'{d}' is not a calendar of this file")));
    }
    let absences = raw.absences.iter().enumerate().map(|(i, a)| absence(&ctx, i, a)).collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedFile {
        default_calendar: raw.default_calendar,
        calendars,
        absences,
        absence_source_sql: raw.absence_source.map(|s| s.sql),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_validate() {
        assert_eq!(parse_window("09:00-18:00"), Ok(Window { start: 9 * 3600, end: 18 * 3600 }));
        assert_eq!(parse_window("22:00-06:00"), Ok(Window { start: 22 * 3600, end: 30 * 3600 }));
        assert_eq!(parse_window("00:00-24:00"), Ok(Window { start: 0, end: 86_400 }));
        assert!(parse_window("24:00-06:00").is_err());
        assert!(parse_window("09:00-09:00").unwrap_err().to_string().contains("start = end"));
        assert!(parse_window("9-18").is_err());
        assert!(parse_day(&["09:00-13:00".into(), "12:00-18:00".into()]).unwrap_err().to_string().contains("overlap"));
        assert!(parse_day(&["09:00-13:00".into(), "13:00-18:00".into()]).is_ok());
    }
}
