//! Activities (e-mails, messages, comments, meetings) and tasks on a deal's stage, some of
//! them overdue or never started.

use rand::Rng;

use crate::model::Value;

use super::calendar::DAY_US;
use super::leads::Client;
use super::reference::DEPARTMENTS;
use super::{Counter, Generator, put};

impl Generator {
    pub(super) fn deal_activities(&mut self, deal_id: &str, m: usize, client: &Client, from: i64, until: i64, stage: &str) {
        let span = (until - from).max(1);
        let mut kinds: Vec<(&str, Option<&str>)> = vec![("email", Some("outbound"))];
        if self.chance(0.5) {
            kinds.push(("email", Some("inbound")));
        }
        if self.chance(0.6) {
            kinds.push(("message", Some("outbound")));
        }
        if self.chance(0.25) {
            kinds.push(("comment", None));
        }
        if matches!(stage, "PROPOSAL" | "NEGOTIATION" | "C1:OFFER") && self.chance(0.5) {
            kinds.push(("meeting", Some("outbound")));
        }
        for (kind, direction) in kinds {
            let at = from + self.rng.random_range(0..span);
            if at >= self.as_of_us {
                continue;
            }
            let deadline = (kind == "meeting").then(|| at + self.rng.random_range(DAY_US..5 * DAY_US));
            self.activity(kind, direction, m, Some(deal_id), None, client, at, deadline, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn activity(&mut self, kind: &str, direction: Option<&str>, m: usize, deal: Option<&str>, lead: Option<&str>, client: &Client, at: i64, deadline: Option<i64>, done_now: bool) {
        let completed = match deadline {
            _ if done_now => Some(at),
            None => Some(at),
            // Most meetings happen; some are left open past their date.
            Some(d) if d < self.as_of_us && self.chance(0.88) => Some(d),
            Some(_) => None,
        };
        let id = self.next_id(Counter::Activity);
        put(&mut self.t.activities, &[
            (&id).into(), kind.into(), direction.into(), (&self.managers[m].id).into(), deal.into(), lead.into(),
            (&client.contact_id).into(), client.company_id.as_ref().into(), Value::Timestamp(at),
            deadline.map_or(Value::Null, Value::Timestamp), completed.map_or(Value::Null, Value::Timestamp),
            completed.is_some().into(),
        ]);
    }

    pub(super) fn deal_task(&mut self, deal_id: &str, m: usize, from: i64, until: i64) {
        if !self.chance(0.7) {
            return; // some deals go without tasks: the discipline dashboard shows them
        }
        let created = from + self.rng.random_range(0..(until - from).max(1)) / 4;
        if created >= self.as_of_us {
            return;
        }
        let title = *self.pick(&["Перезвонить клиенту", "Отправить КП", "Подготовить договор", "Уточнить потребность", "Выставить счёт"]);
        let deadline = created + self.rng.random_range(DAY_US / 2..4 * DAY_US);
        let discipline = self.managers[m].skill;
        let r = self.rng.random::<f64>();
        let (status, started, completed) = if deadline < self.as_of_us && r < 0.8 * discipline.min(1.1) {
            let done = (created + self.rng.random_range(DAY_US / 8..(deadline - created + DAY_US).max(DAY_US / 4))).min(self.as_of_us - 1);
            ("completed", Some(created + (done - created) / 3), Some(done))
        } else if r < 0.86 {
            ("in_progress", Some(created + DAY_US / 10), None) // overdue when the deadline has passed
        } else if r < 0.94 {
            ("new", None, None) // never started
        } else if r < 0.97 {
            ("deferred", None, None)
        } else {
            ("cancelled", None, None)
        };
        let started = started.filter(|s| *s < self.as_of_us);
        let manager_id = self.managers[m].id.clone();
        let id = self.next_id(Counter::Task);
        let head = format!("{}", 100 + DEPARTMENTS.iter().take(self.managers[m].department).map(|d| d.3).sum::<usize>());
        let created_by = if self.chance(0.2) { head.as_str() } else { manager_id.as_str() };
        put(&mut self.t.tasks, &[
            (&id).into(), title.into(), (&manager_id).into(), created_by.into(), deal_id.into(), Value::Null,
            Value::Timestamp(created), Value::Timestamp(deadline), started.map_or(Value::Null, Value::Timestamp),
            completed.map_or(Value::Null, Value::Timestamp), status.into(),
        ]);
    }
}
