//! Clients (contacts, with a company for most) and the leads they send: from every channel,
//! each first contacted after its manager's response time, then qualified, converted or junked.

use chrono::{Duration, NaiveDate};
use rand::Rng;

use crate::model::Value;

use super::calendar::{DAY_US, is_working_day};
use super::reference::{COMPANY_WORDS, INDUSTRIES, PIPELINES, SOURCES};
use super::{Counter, Generator, put};

#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) contact_id: String,
    pub(super) company_id: Option<String>,
    pub(super) phone_hash: String,
}

impl Generator {
    /// Clients that bought before the history starts, so repeat sales exist from day one.
    pub(super) fn existing_clients(&mut self) {
        let n = ((600.0 * self.scale).round() as usize).max(5);
        for _ in 0..n {
            let days_before = self.rng.random_range(30..900);
            let created = self.local(self.first_day - Duration::days(days_before), 11 * 3600);
            let manager = self.rng.random_range(0..self.managers.len());
            self.new_client(created, manager, "REFERRAL");
        }
    }

    fn new_client(&mut self, created: i64, manager: usize, source: &str) -> Client {
        let manager_id = self.managers[manager].id.clone();
        let company_id = if self.chance(0.6) {
            let id = self.next_id(Counter::Company);
            let name = format!("{} «{}{}»", self.pick(&["ООО", "ООО", "АО", "ИП"]), self.pick(COMPANY_WORDS), self.pick(COMPANY_WORDS).to_lowercase());
            let industry = *self.pick(INDUSTRIES);
            let segment = *self.pick(&["SMB", "SMB", "Mid", "Enterprise"]);
            let fields = format!(r#"{{"inn":"77{:08}","segment":"{segment}"}}"#, self.rng.random_range(0..100_000_000u32));
            put(&mut self.t.companies, &[
                (&id).into(), (&name).into(), industry.into(), (&manager_id).into(), Value::Timestamp(created),
                Value::Timestamp(created), (&fields).into(),
            ]);
            Some(id)
        } else {
            None
        };
        let contact_id = self.next_id(Counter::Contact);
        let name = self.person_name();
        let phone = format!("79{:09}", self.counters[Counter::Contact as usize] * 7919 % 1_000_000_000);
        let fields = format!(r#"{{"phone_verified":{}}}"#, self.chance(0.7));
        put(&mut self.t.contacts, &[
            (&contact_id).into(), (&name).into(), company_id.as_ref().into(), (&manager_id).into(),
            source.into(), Value::Timestamp(created), Value::Timestamp(created), (&fields).into(),
        ]);
        let client = Client { contact_id, company_id, phone_hash: self.phone_hash(&phone) };
        self.clients.push(client.clone());
        client
    }

    pub(super) fn leads_of_day(&mut self, day: NaiveDate) {
        let weekend = !is_working_day(day);
        let lambda = 150.0 * self.scale * if weekend { 0.3 } else { 1.0 };
        // Who takes leads: inbound, regional and Novosibirsk; on days off, the next working day.
        let mut work_day = day;
        while !is_working_day(work_day) {
            work_day += Duration::days(1);
        }
        for _ in 0..self.count(lambda) {
            let second = self.rng.random_range(8 * 3600..22 * 3600);
            let created = self.local(day, second);
            if created >= self.as_of_us {
                continue;
            }
            let Some(m) = self.assignee(work_day, &[1, 4, 5]) else { continue };
            self.lead(created, m);
        }
    }

    fn lead(&mut self, created: i64, m: usize) {
        let weights: Vec<f64> = SOURCES.iter().map(|s| s.4).collect();
        let source = SOURCES[self.weighted(&weights)].0;
        let repeat = !self.clients.is_empty() && self.chance(0.12);
        let client = if repeat {
            let i = self.rng.random_range(0..self.clients.len());
            self.clients[i].clone()
        } else {
            self.new_client(created, m, source)
        };
        let lead_id = self.next_id(Counter::Lead);
        let manager_id = self.managers[m].id.clone();
        let skill = self.managers[m].skill;
        // First contact: after the manager's usual response time, in office hours.
        let delay = self.lognormal(self.managers[m].response_minutes, 0.8);
        let contacted = self.after_office_minutes(created, delay);
        let contacted = (contacted < self.as_of_us).then_some(contacted);
        if let Some(at) = contacted {
            self.call(m, "outbound", at, Some(&client), Some(&lead_id), None, true);
        }
        if matches!(source, "CHAT" | "WHATSAPP" | "TELEGRAM" | "VK") {
            self.activity("message", Some("inbound"), m, None, Some(&lead_id), &client, created, None, true);
        }
        let age_days = (self.as_of_us - created) as f64 / DAY_US as f64;
        let qualified = contacted.map(|c| c + (self.uniform(0.2, 3.0) * DAY_US as f64) as i64);
        let outcome = self.rng.random::<f64>();
        let (status, native, qualified_at, closed_at, deal_at) = match (contacted, qualified) {
            (None, _) => ("new", "NEW", None, None, None),
            (Some(_), Some(q)) if q >= self.as_of_us || age_days < 3.0 => ("in_progress", "IN_PROCESS", None, None, None),
            (Some(c), Some(q)) => {
                if outcome < 0.22 {
                    ("junk", "JUNK", None, Some(c + DAY_US / 4), None)
                } else if outcome < 0.22 + 0.55 * skill.min(1.1) {
                    ("converted", "CONVERTED", Some(q), Some(q), Some(q))
                } else if age_days < 30.0 {
                    ("qualified", "QUALIFIED", Some(q), None, None)
                } else {
                    ("junk", "JUNK", Some(q), Some(q + 5 * DAY_US), None)
                }
            }
            (Some(_), None) => ("in_progress", "IN_PROCESS", None, None, None),
        };
        let deal_id = deal_at.map(|at| {
            let deal_id = self.next_id(Counter::Deal);
            self.deal(&deal_id, &PIPELINES[0], at, m, &client, Some(&lead_id), source);
            deal_id
        });
        let amount = Value::Decimal(i128::from(self.rng.random_range(20_000i64..300_000)) * 100);
        let updated = closed_at.or(qualified_at).or(contacted).unwrap_or(created);
        let fields = format!(r#"{{"utm_campaign":"{}"}}"#, self.pick(&["brand", "retargeting", "promo_autumn", "cold_base"]));
        put(&mut self.t.leads, &[
            (&lead_id).into(), format!("Заявка №{lead_id}").as_str().into(), status.into(), native.into(),
            source.into(), (&manager_id).into(), (&client.contact_id).into(), client.company_id.as_ref().into(),
            amount, "RUB".into(), Value::Timestamp(created), Value::Timestamp(updated),
            qualified_at.map_or(Value::Null, Value::Timestamp), closed_at.map_or(Value::Null, Value::Timestamp),
            deal_id.as_ref().into(), (&fields).into(),
        ]);
    }
}
