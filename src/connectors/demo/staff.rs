//! The org chart: 70 managers in 6 departments, each with habits of their own (activity,
//! skill, response time, weekday effort, callback discipline), their absences, and who takes
//! a new lead on a given day.

use chrono::{Duration, NaiveDate};
use rand::Rng;

use crate::model::{Value, date_to_days};

use super::calendar::is_working_day;
use super::reference::DEPARTMENTS;
use super::{Generator, put};

/// One manager and the habits that make their numbers differ from the others'.
#[derive(Debug, Clone)]
pub(super) struct Manager {
    pub(super) id: String,
    pub(super) department: usize,
    /// First and last day the manager works (hire date, leave date).
    pub(super) hired: NaiveDate,
    pub(super) left: Option<NaiveDate>,
    /// Calls and effort relative to an average manager.
    pub(super) activity: f64,
    /// Multiplier on every stage's conversion chance.
    pub(super) skill: f64,
    /// Median minutes of working time to first contact on a new lead.
    pub(super) response_minutes: f64,
    /// Effort per weekday, Monday first.
    pub(super) weekday: [f64; 5],
    /// Share of missed inbound calls the manager calls back.
    pub(super) callback_rate: f64,
    /// Share of answered calls that end within a minute.
    pub(super) short_call_share: f64,
    /// Days away (vacation, sick leave), as (first, last, kind).
    absences: Vec<(NaiveDate, NaiveDate, &'static str)>,
}

impl Manager {
    pub(super) fn works_on(&self, date: NaiveDate) -> bool {
        date >= self.hired
            && self.left.is_none_or(|l| date <= l)
            && is_working_day(date)
            && !self.absences.iter().any(|(a, b, _)| (*a..=*b).contains(&date))
    }
}

impl Generator {
    pub(super) fn staff(&mut self) {
        let window = (self.last_day - self.first_day).num_days();
        let mut n = 0;
        for (dept_index, (dept_id, _, _, size)) in DEPARTMENTS.iter().enumerate() {
            for k in 0..*size {
                let id = format!("{}", 100 + n);
                n += 1;
                let head = k == 0;
                let hired = if !head && self.chance(0.12) {
                    self.first_day + Duration::days(self.rng.random_range(30..window - 60))
                } else {
                    self.first_day - Duration::days(self.rng.random_range(60..1500))
                };
                let left = if !head && self.chance(0.07) {
                    let earliest = (hired.max(self.first_day) - self.first_day).num_days() + 60;
                    (earliest < window - 10)
                        .then(|| self.first_day + Duration::days(self.rng.random_range(earliest..window - 5)))
                } else {
                    None
                };
                let mut weekday = [1.0, 1.0, 1.0, 1.0, 0.9];
                match self.rng.random_range(0..5) {
                    0 => weekday[4] = 0.45,           // leaves early on Fridays
                    1 => weekday[0] = 1.35,           // starts the week strong
                    2 => { weekday[0] = 0.7; weekday[3] = 1.25 } // slow Mondays
                    _ => {}
                }
                for w in &mut weekday {
                    *w *= self.uniform(0.9, 1.1);
                }
                let mut absences = Vec::new();
                for _ in 0..self.rng.random_range(1..=2) {
                    let start = self.first_day + Duration::days(self.rng.random_range(0..window));
                    absences.push((start, start + Duration::days(self.rng.random_range(6..14)), "vacation"));
                }
                for _ in 0..self.rng.random_range(0..=2) {
                    let start = self.first_day + Duration::days(self.rng.random_range(0..window));
                    absences.push((start, start + Duration::days(self.rng.random_range(2..7)), "sick"));
                }
                let m = Manager {
                    id,
                    department: dept_index,
                    hired,
                    left,
                    activity: self.uniform(0.55, 1.45),
                    skill: self.uniform(0.75, 1.2),
                    response_minutes: self.lognormal(35.0, 1.0).clamp(2.0, 600.0),
                    weekday,
                    callback_rate: self.uniform(0.45, 0.98),
                    short_call_share: self.uniform(0.18, 0.45),
                    absences,
                };
                let name = self.person_name();
                let email = format!("manager{}@demo-sales.ru", m.id);
                let position = match (head, dept_index) {
                    (true, 0) => "Коммерческий директор",
                    (true, _) => "Руководитель отдела",
                    _ if self.chance(0.25) => "Старший менеджер",
                    _ => "Менеджер по продажам",
                };
                let created = self.local(hired, 10 * 3600);
                put(&mut self.t.managers, &[
                    (&m.id).into(), (&name).into(), (&email).into(), (*dept_id).into(), position.into(),
                    m.left.is_none().into(), Value::Timestamp(created),
                ]);
                for (a, b, kind) in &m.absences {
                    put(&mut self.t.absences, &[
                        (&m.id).into(), Value::Date(date_to_days(*a)), Value::Date(date_to_days(*b)), (*kind).into(),
                    ]);
                }
                self.managers.push(m);
            }
        }
    }

    /// An active manager of one of the given departments, favouring the active ones.
    pub(super) fn assignee(&mut self, date: NaiveDate, departments: &[usize]) -> Option<usize> {
        let weights: Vec<f64> = self
            .managers
            .iter()
            .map(|m| if departments.contains(&m.department) && m.works_on(date) { m.activity } else { 0.0 })
            .collect();
        (weights.iter().sum::<f64>() > 0.0).then(|| self.weighted(&weights))
    }
}
