//! Deals: their items and amount, the walk through the pipeline's stages (history, work on
//! each stage, won or lost with a reason), feedback after a win and the repeat purchase.

use rand::Rng;

use crate::model::Value;

use super::calendar::DAY_US;
use super::leads::Client;
use super::reference::{LOSS_REASONS, PIPELINES, PRODUCTS, PipelineDef};
use super::{Counter, Generator, put};

impl Generator {
    /// A deal from creation to its current stage: history, calls, activities, tasks, items.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deal(&mut self, deal_id: &str, p: &PipelineDef, created: i64, m: usize, client: &Client, lead_id: Option<&str>, source: &str) {
        let manager_id = self.managers[m].id.clone();
        let skill = self.managers[m].skill;
        let key_account = self.managers[m].department == 3;
        // Items decide the amount.
        let mut amount_kopecks: i128 = 0;
        let n_items = self.rng.random_range(1..=4);
        for k in 0..n_items {
            let (pid, name, price, cost_share) = *self.pick(PRODUCTS);
            let qty = if pid == "P11" || pid == "P09" { self.rng.random_range(2..40) } else { self.rng.random_range(1..4) } as f64
                * if key_account { 3.0 } else { 1.0 };
            let price_k = i128::from(price) * 100;
            let cost_k = (price as f64 * cost_share * self.uniform(0.9, 1.1) * 100.0).round() as i128;
            amount_kopecks += price_k * qty as i128;
            put(&mut self.t.items, &[
                deal_id.into(), format!("{deal_id}-{}", k + 1).as_str().into(), pid.into(), name.into(),
                Value::Float(qty), Value::Decimal(price_k), Value::Decimal(cost_k),
            ]);
        }
        let (currency, amount, amount_base) = if self.chance(0.03) {
            let rate = 92.5;
            let usd = (amount_kopecks as f64 / rate).round() as i128;
            ("USD", usd, amount_kopecks)
        } else {
            ("RUB", amount_kopecks, amount_kopecks)
        };
        // Walk the stages.
        let mut t = created;
        let mut stage = p.open[0].0;
        let mut status = "open";
        let mut closed_at = None;
        let mut loss_reason = None;
        self.history(deal_id, p.id, stage, t, &manager_id);
        for (i, (id, _, pass)) in p.open.iter().enumerate() {
            // Work on the current stage: calls, messages, maybe a meeting.
            let stay = (-self.uniform(0.0, 1.0).max(1e-9).ln() * p.mean_stage_days * DAY_US as f64) as i64 + DAY_US / 8;
            let until = (t + stay).min(self.as_of_us);
            for _ in 0..self.rng.random_range(1..=3) {
                let at = t + self.rng.random_range(0..(until - t).max(1));
                let at = self.after_office_minutes(at, 0.0);
                if at < self.as_of_us {
                    self.call(m, "outbound", at, Some(client), lead_id, Some(deal_id), false);
                }
            }
            self.deal_activities(deal_id, m, client, t, until, id);
            self.deal_task(deal_id, m, t, until);
            if t + stay >= self.as_of_us {
                break; // still in this stage
            }
            t += stay;
            if self.chance((pass * skill).min(0.97)) {
                let next = p.open.get(i + 1).map_or(p.won.0, |s| s.0);
                stage = next;
                self.history(deal_id, p.id, stage, t, &manager_id);
                if next == p.won.0 {
                    status = "won";
                    closed_at = Some(t);
                }
            } else {
                stage = p.lost.0;
                status = "lost";
                closed_at = Some(t);
                loss_reason = Some(LOSS_REASONS[self.weighted(&[0.25, 0.2, 0.15, 0.2, 0.1, 0.1])].0);
                self.history(deal_id, p.id, stage, t, &manager_id);
                break;
            }
        }
        let fields = format!(r#"{{"utm_source":"{}","delivery":"{}"}}"#, source.to_lowercase(), self.pick(&["online", "onsite"]));
        put(&mut self.t.deals, &[
            deal_id.into(), format!("Сделка №{deal_id}").as_str().into(), p.id.into(), stage.into(), status.into(),
            Value::Decimal(amount), currency.into(), Value::Decimal(amount_base), (&manager_id).into(),
            (&client.contact_id).into(), client.company_id.as_ref().into(), lead_id.into(), source.into(),
            loss_reason.into(), Value::Timestamp(created), Value::Timestamp(closed_at.unwrap_or(t.min(self.as_of_us))),
            closed_at.map_or(Value::Null, Value::Timestamp), (&fields).into(),
        ]);
        if let Some(won_at) = closed_at.filter(|_| status == "won") {
            self.after_win(deal_id, m, client, won_at);
        }
    }

    fn after_win(&mut self, deal_id: &str, m: usize, client: &Client, won_at: i64) {
        if self.chance(0.3) {
            let at = won_at + self.rng.random_range(DAY_US..7 * DAY_US);
            if at < self.as_of_us {
                let skill = self.managers[m].skill;
                let (score, max) = if self.chance(0.6) {
                    ((3.0 + 2.0 * self.uniform(0.3, 1.0) * skill).round().clamp(1.0, 5.0), 5.0)
                } else {
                    ((6.0 + 4.0 * self.uniform(0.2, 1.0) * skill).round().clamp(0.0, 10.0), 10.0)
                };
                let id = self.next_id(Counter::Feedback);
                put(&mut self.t.feedback, &[
                    (&id).into(), deal_id.into(), (&client.contact_id).into(), client.company_id.as_ref().into(),
                    (&self.managers[m].id).into(), Value::Float(score), Value::Float(max), Value::Timestamp(at),
                ]);
            }
        }
        // Repeat purchase.
        if self.chance(0.3) {
            let at = won_at + self.rng.random_range(20 * DAY_US..150 * DAY_US);
            let date = self.local_date(at);
            if at < self.as_of_us {
                let owner = if self.managers[m].works_on(date) { Some(m) } else { self.assignee(date, &[3, 0, 1]) };
                if let Some(owner) = owner {
                    let at = self.after_office_minutes(at, 0.0);
                    if at < self.as_of_us {
                        let id = self.next_id(Counter::Deal);
                        self.deal(&id, &PIPELINES[1], at, owner, client, None, "REFERRAL");
                    }
                }
            }
        }
    }

    fn history(&mut self, deal_id: &str, pipeline: &str, stage: &str, at: i64, manager_id: &str) {
        put(&mut self.t.history, &[deal_id.into(), pipeline.into(), stage.into(), Value::Timestamp(at), manager_id.into()]);
    }
}
