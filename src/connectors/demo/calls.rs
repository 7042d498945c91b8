//! Telephony: one call with its status and duration, each working day's calls of every
//! manager (cold, to clients, inbound), and callbacks on missed inbound calls.

use chrono::{Datelike, NaiveDate};
use rand::Rng;

use crate::model::Value;

use super::calendar::is_working_day;
use super::leads::Client;
use super::{Counter, Generator, put};

impl Generator {
    /// One call. Outbound calls to a client reach them less often than inbound calls are
    /// answered; connected calls have a share under a minute.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call(&mut self, m: usize, direction: &str, at: i64, client: Option<&Client>, lead: Option<&str>, deal: Option<&str>, first_contact: bool) -> (&'static str, String) {
        let phone_hash = match client {
            Some(c) => c.phone_hash.clone(),
            None => self.random_phone_hash(),
        };
        let r = self.rng.random::<f64>();
        let status = match direction {
            "inbound" if r < 0.84 => "answered",
            "inbound" => "missed",
            _ if first_contact && r < 0.7 => "answered",
            _ if r < 0.55 => "answered",
            _ if r < 0.85 => "no_answer",
            _ if r < 0.95 => "busy",
            _ => "failed",
        };
        let duration = if status == "answered" {
            if self.chance(self.managers[m].short_call_share) {
                self.rng.random_range(3..60)
            } else {
                (self.lognormal(170.0, 0.8) as i64).clamp(61, 3600)
            }
        } else {
            0
        };
        let native = match status {
            "answered" => "200",
            "missed" => "304",
            "busy" => "486",
            "no_answer" => "480",
            _ => "503",
        };
        let id = self.next_id(Counter::Call);
        put(&mut self.t.calls, &[
            (&id).into(), (&self.managers[m].id).into(), direction.into(), status.into(), native.into(),
            Value::Timestamp(at), Value::Int(duration), (&phone_hash).into(), deal.into(), lead.into(),
            client.map(|c| c.contact_id.as_str()).into(), client.and_then(|c| c.company_id.as_deref()).into(),
        ]);
        (status, phone_hash)
    }

    /// The bulk of the telephony: cold calls, calls to clients, inbound calls with misses and
    /// callbacks.
    pub(super) fn calls_of_day(&mut self, day: NaiveDate) {
        if !is_working_day(day) {
            return;
        }
        let weekday = day.weekday().num_days_from_monday() as usize;
        for m in 0..self.managers.len() {
            if !self.managers[m].works_on(day) {
                continue;
            }
            let outbound_team = self.managers[m].department == 2;
            let lambda = 58.0 * self.scale * self.managers[m].activity * self.managers[m].weekday[weekday.min(4)];
            for _ in 0..self.count(lambda) {
                let at = self.office_time(day);
                if at >= self.as_of_us {
                    continue;
                }
                let inbound = self.chance(if outbound_team { 0.08 } else { 0.3 });
                let client = if !self.clients.is_empty() && (inbound || self.chance(0.35)) {
                    let i = self.rng.random_range(0..self.clients.len());
                    Some(self.clients[i].clone())
                } else {
                    None
                };
                let direction = if inbound { "inbound" } else { "outbound" };
                let (status, phone_hash) = self.call(m, direction, at, client.as_ref(), None, None, false);
                if status == "missed" && self.chance(self.managers[m].callback_rate) {
                    let delay = self.lognormal(25.0, 1.2).min(60.0 * 30.0);
                    let back = self.after_office_minutes(at, delay);
                    if back < self.as_of_us {
                        let target = client.unwrap_or(Client { contact_id: String::new(), company_id: None, phone_hash });
                        self.callback(m, back, &target);
                    }
                }
            }
        }
    }

    fn callback(&mut self, m: usize, at: i64, client: &Client) {
        if client.contact_id.is_empty() {
            // An unknown number: the call carries only the hash.
            let id = self.next_id(Counter::Call);
            let answered = self.chance(0.7);
            let duration = if answered { (self.lognormal(120.0, 0.9) as i64).clamp(5, 3600) } else { 0 };
            let (status, native) = if answered { ("answered", "200") } else { ("no_answer", "480") };
            put(&mut self.t.calls, &[
                (&id).into(), (&self.managers[m].id).into(), "outbound".into(), status.into(), native.into(),
                Value::Timestamp(at), Value::Int(duration), (&client.phone_hash).into(), Value::Null, Value::Null,
                Value::Null, Value::Null,
            ]);
        } else {
            self.call(m, "outbound", at, Some(client), None, None, true);
        }
    }
}
