//! The inputs a CRM does not hold: monthly sales plans (per manager, department and company)
//! and the compensation rules.

use chrono::{Datelike, Duration, NaiveDate};

use crate::model::{Value, date_to_days};

use super::reference::DEPARTMENTS;
use super::{Generator, put};

impl Generator {
    /// Plans, compensation rules: the inputs a CRM does not hold.
    pub(super) fn inputs(&mut self) {
        self.plans();
        let window_start = date_to_days(self.first_day - Duration::days(365));
        let mid = date_to_days(self.first_day + Duration::days(200));
        // (manager, department, base salary, commission rate in basis points, effective from)
        type CompensationRow<'a> = (Option<&'a str>, Option<&'a str>, i128, i128, i32);
        let rows: [CompensationRow; 6] = [
            (None, None, 50_000, 500, window_start),
            (None, None, 55_000, 500, mid),
            (None, Some("3"), 45_000, 700, window_start),
            (None, Some("4"), 80_000, 300, window_start),
            (Some("100"), None, 150_000, 150, window_start),
            (Some("101"), None, 110_000, 200, window_start),
        ];
        for (manager, dept, base, rate, from) in rows {
            put(&mut self.t.compensation, &[
                manager.into(), dept.into(), Value::Decimal(base * 100), Value::Decimal(rate), Value::Date(from),
            ]);
        }
    }

    fn plans(&mut self) {
        // Plans are set at about what each manager can sell: 1.25 M a month for an average one.
        let mut month = NaiveDate::from_ymd_opt(self.first_day.year(), self.first_day.month(), 1).unwrap_or(self.first_day);
        while month <= self.last_day {
            let next = if month.month() == 12 {
                NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
            }
            .unwrap_or(month + Duration::days(31));
            let end = next - Duration::days(1);
            let mut company_total = 0i128;
            let mut company_deals = 0i64;
            let mut dept_totals = vec![(0i128, 0i64); DEPARTMENTS.len()];
            for m in 0..self.managers.len() {
                let mgr = self.managers[m].clone();
                if mgr.hired > end || mgr.left.is_some_and(|l| l < month) {
                    continue;
                }
                let base = 1_250_000.0 * self.scale * mgr.activity * mgr.skill;
                let stretch = self.uniform(0.95, 1.3);
                let amount = ((base * stretch / 10_000.0).round() * 10_000.0) as i128 * 100;
                let deals = ((8.0 * self.scale * mgr.activity * stretch).round() as i64).max(1);
                company_total += amount;
                company_deals += deals;
                dept_totals[mgr.department].0 += amount;
                dept_totals[mgr.department].1 += deals;
                let dept_id = DEPARTMENTS[mgr.department].0;
                put(&mut self.t.plans, &[
                    Value::Date(date_to_days(month)), Value::Date(date_to_days(end)), dept_id.into(),
                    (&self.managers[m].id).into(), Value::Decimal(amount), Value::Int(deals),
                ]);
            }
            for (i, (amount, deals)) in dept_totals.iter().enumerate() {
                if *deals > 0 {
                    put(&mut self.t.plans, &[
                        Value::Date(date_to_days(month)), Value::Date(date_to_days(end)), DEPARTMENTS[i].0.into(),
                        Value::Null, Value::Decimal(*amount), Value::Int(*deals),
                    ]);
                }
            }
            put(&mut self.t.plans, &[
                Value::Date(date_to_days(month)), Value::Date(date_to_days(end)), Value::Null, Value::Null,
                Value::Decimal(company_total), Value::Int(company_deals),
            ]);
            month = next;
        }
    }
}
