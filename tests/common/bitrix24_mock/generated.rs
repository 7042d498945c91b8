//! Generated portals: [`MockData::generated`] builds a portal of any size from the fixture
//! records as templates, one function per entity, deterministic and with every reference
//! valid.

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde_json::{Value, json};

use super::MockData;
use super::data::{account_amount, at, by_id, company_phone, contact_phone, date_of, product_rows_for, shift_dates, splitmix, str_of};
use super::timing::iso;
use super::values::as_f64;

impl MockData {
    /// A portal of `deals` deals built from the fixture records as templates; deterministic,
    /// every id unique, every reference valid. Per deal: 2 leads, 1 contact, 3 activities
    /// (2 calls bound to the deal + a meeting, e-mail or to-do), 3 stage-history rows,
    /// 4 calls, 1 task, 1.5 product rows; companies ceil(0.3 per deal) but at least
    /// min(deals, 60) so that at 120 deals every entity pages.
    pub fn generated(deals: usize) -> MockData {
        let fx = MockData::fixtures();
        let n = deals;
        let step = TimeDelta::minutes((525_600 / n.max(1)).clamp(1, 360) as i64);
        let base = at("2025-09-01T09:00:00+03:00");
        let n_companies = (n * 3).div_ceil(10).max(n.min(60)).max(1);
        let portal = Portal { n, step, base, n_companies };

        let users = portal.users(&fx);
        let out_deals = portal.deals(&fx);
        let contacts = portal.contacts(&fx, &out_deals);
        let companies = portal.companies(&fx);
        let leads = portal.leads(&fx, &out_deals);
        let activities = portal.activities(&fx, &out_deals);
        let calls = portal.calls(&fx, &out_deals, &activities);
        let deal_stage_history = portal.deal_stage_history(&out_deals);
        let lead_stage_history = portal.lead_stage_history(&leads);
        let tasks = portal.tasks(&fx, &out_deals);

        MockData {
            users,
            departments: fx.departments,
            categories: fx.categories,
            statuses: fx.statuses,
            currencies: fx.currencies,
            product_rows: product_rows_for(&out_deals),
            deals: out_deals,
            leads,
            contacts,
            companies,
            activities,
            deal_stage_history,
            lead_stage_history,
            calls,
            tasks,
        }
    }
}

/// The size and the clock of a generated portal.
#[derive(Debug, Clone, Copy)]
struct Portal {
    /// Deals.
    n: usize,
    /// Time between two deals' creation.
    step: TimeDelta,
    /// The first deal's creation.
    base: DateTime<FixedOffset>,
    /// Companies.
    n_companies: usize,
}

impl Portal {
    /// Users: the fixture's three, plus the two managers the fixture records also name.
    fn users(&self, fx: &MockData) -> Vec<Value> {
        let mut users = fx.users.clone();
        for (id, name, last, gender, login) in [(15, "Anna", "Volkova", "F", "2025-09-26T16:20:00+03:00"), (23, "Dmitry", "Kozlov", "M", "2025-09-26T17:10:00+03:00")] {
            let mut u = fx.users[1].clone();
            u["ID"] = json!(id.to_string());
            u["NAME"] = json!(name);
            u["LAST_NAME"] = json!(last);
            u["EMAIL"] = json!(format!("{}.{}@acme.example", &name[..1].to_lowercase(), last.to_lowercase()));
            u["PERSONAL_GENDER"] = json!(gender);
            u["LAST_LOGIN"] = json!(login);
            u["IS_ONLINE"] = json!("N");
            users.push(u);
        }
        users
    }

    /// Deals 1000.., cycling the fixture deals (with a rotation per cycle).
    fn deals(&self, fx: &MockData) -> Vec<Value> {
        let Portal { n, step, base, n_companies } = *self;
        let k = fx.deals.len();
        let mut out_deals = Vec::with_capacity(n);
        for i in 0..n {
            let t = &fx.deals[(i + 13 * (i / k)) % k];
            let mut d = t.clone();
            let created = base + step * i as i32;
            shift_dates(&mut d, created - date_of(t, "DATE_CREATE"));
            let id = 1000 + i;
            d["ID"] = json!(id.to_string());
            d["TITLE"] = json!(format!("Deal #{id}"));
            d["COMPANY_ID"] = json!(if str_of(t, "COMPANY_ID") == "0" { "0".to_string() } else { (200 + i % n_companies).to_string() });
            d["CONTACT_ID"] = json!((300 + i).to_string());
            d["LEAD_ID"] = if t["LEAD_ID"].is_null() { Value::Null } else { json!((500 + 2 * i).to_string()) };
            let factor = 0.85 + 0.05 * (i % 7) as f64;
            let rub = (as_f64(&t["OPPORTUNITY"]).unwrap() * factor / 100.0).round() * 100.0;
            let (currency, amount) = if i % 15 == 4 {
                ("USD", (rub / 90.0 / 10.0).round() * 10.0)
            } else if i % 40 == 22 {
                ("EUR", (rub / 100.0 / 10.0).round() * 10.0)
            } else {
                ("RUB", rub)
            };
            d["CURRENCY_ID"] = json!(currency);
            d["OPPORTUNITY"] = json!(format!("{amount:.2}"));
            account_amount(&mut d);
            out_deals.push(d);
        }
        out_deals
    }

    /// Contacts 300.., one per deal.
    fn contacts(&self, fx: &MockData, out_deals: &[Value]) -> Vec<Value> {
        let n = self.n;
        (0..n)
            .map(|i| {
                let t = &fx.contacts[i % fx.contacts.len()];
                let d = &out_deals[i];
                let mut c = t.clone();
                shift_dates(&mut c, date_of(d, "DATE_CREATE") - TimeDelta::days(30) - date_of(t, "DATE_CREATE"));
                let id = 300 + i;
                c["ID"] = json!(id.to_string());
                c["LEAD_ID"] = d["LEAD_ID"].clone();
                c["COMPANY_ID"] = if str_of(d, "COMPANY_ID") == "0" { Value::Null } else { d["COMPANY_ID"].clone() };
                c["PHONE"] = json!([{"ID": (1000 + 2 * i).to_string(), "VALUE_TYPE": "WORK", "VALUE": contact_phone(i), "TYPE_ID": "PHONE"}]);
                c["EMAIL"] = json!([{"ID": (1001 + 2 * i).to_string(), "VALUE_TYPE": "WORK", "VALUE": format!("client{id}@example.com"), "TYPE_ID": "EMAIL"}]);
                c
            })
            .collect()
    }

    /// Companies 200...
    fn companies(&self, fx: &MockData) -> Vec<Value> {
        let Portal { step, base, n_companies, .. } = *self;
        (0..n_companies)
            .map(|c| {
                let t = &fx.companies[c % fx.companies.len()];
                let mut row = t.clone();
                shift_dates(&mut row, base - TimeDelta::days(60) + step * c as i32 - date_of(t, "DATE_CREATE"));
                let id = 200 + c;
                row["ID"] = json!(id.to_string());
                row["TITLE"] = json!(format!("OOO Company {id}"));
                row["PHONE"] = json!([{"ID": (3000 + c).to_string(), "VALUE_TYPE": "WORK", "VALUE": company_phone(c), "TYPE_ID": "PHONE"}]);
                row
            })
            .collect()
    }

    /// Leads 500.., two per deal; lead 500+2i is deal i's LEAD_ID when it has one.
    fn leads(&self, fx: &MockData, out_deals: &[Value]) -> Vec<Value> {
        let n = self.n;
        (0..2 * n)
            .map(|j| {
                let t = &fx.leads[j % fx.leads.len()];
                let d = &out_deals[j / 2];
                let mut l = t.clone();
                let created = date_of(d, "DATE_CREATE") - TimeDelta::days(20) + TimeDelta::hours(3 * (j % 2) as i64);
                shift_dates(&mut l, created - date_of(t, "DATE_CREATE"));
                let id = 500 + j;
                l["ID"] = json!(id.to_string());
                l["TITLE"] = json!(format!("Lead #{id}"));
                l["UF_CRM_LEAD_SEGMENT"] = json!(["B2B", "B2C", "Gov"][j % 3]);
                if j % 2 == 0 && !d["LEAD_ID"].is_null() {
                    l["STATUS_ID"] = json!("CONVERTED");
                    l["STATUS_SEMANTIC_ID"] = json!("S");
                    l["CONTACT_ID"] = d["CONTACT_ID"].clone();
                    l["COMPANY_ID"] = d["COMPANY_ID"].clone();
                    if str_of(&l, "DATE_CLOSED").is_empty() {
                        l["DATE_CLOSED"] = l["MOVED_TIME"].clone();
                    }
                } else if str_of(&l, "STATUS_ID") == "CONVERTED" {
                    l["CONTACT_ID"] = json!((300 + j / 2).to_string());
                }
                l
            })
            .collect()
    }

    /// Activities 7700.., three per deal: an outgoing and an incoming call bound to the
    /// deal, then a meeting (contact), an e-mail (deal) or a to-do (contact) in turn.
    fn activities(&self, fx: &MockData, out_deals: &[Value]) -> Vec<Value> {
        let n = self.n;
        let deal_id = |i: usize| str_of(&out_deals[i], "ID").to_string();
        let mut activities = Vec::with_capacity(3 * n);
        for (i, d) in out_deals.iter().enumerate() {
            let assigned = d["ASSIGNED_BY_ID"].clone();
            let contact = d["CONTACT_ID"].clone();
            for a in 0..3 {
                let (tpl_id, owner_type, owner) = match (a, i % 3) {
                    (0, _) => ("7700", "2", json!(deal_id(i))),
                    (1, _) => ("7702", "2", json!(deal_id(i))),
                    (_, 0) => ("7703", "3", contact.clone()),
                    (_, 1) => ("7704", "2", json!(deal_id(i))),
                    _ => ("7705", "3", contact.clone()),
                };
                let t = by_id(&fx.activities, tpl_id);
                let mut row = t.clone();
                let start = date_of(d, "DATE_CREATE") + TimeDelta::hours(2 + 5 * a as i64);
                shift_dates(&mut row, start - date_of(&t, "START_TIME"));
                row["ID"] = json!((7700 + 3 * i + a).to_string());
                row["OWNER_ID"] = owner;
                row["OWNER_TYPE_ID"] = json!(owner_type);
                for f in ["RESPONSIBLE_ID", "AUTHOR_ID", "EDITOR_ID"] {
                    row[f] = assigned.clone();
                }
                if a == 0 {
                    row["DIRECTION"] = json!("2");
                    row["SUBJECT"] = json!(format!("Outgoing call {}", contact_phone(i)));
                } else if a == 1 {
                    row["DIRECTION"] = json!("1");
                    row["SUBJECT"] = json!(format!("Incoming call {}", contact_phone(i)));
                }
                activities.push(row);
            }
        }
        activities
    }

    /// Calls 41.., four per deal: two on each call activity (the second 30 min later).
    fn calls(&self, fx: &MockData, out_deals: &[Value], activities: &[Value]) -> Vec<Value> {
        let n = self.n;
        let mut calls = Vec::with_capacity(4 * n);
        for i in 0..n {
            let d = &out_deals[i];
            for c in 0..4 {
                let index = 4 * i + c;
                let act = &activities[3 * i + c % 2];
                let t = &fx.calls[index % fx.calls.len()];
                let mut row = t.clone();
                let start = date_of(act, "START_TIME") + TimeDelta::minutes(30 * (c / 2) as i64);
                // The callback of a missed call (below) comes 30 minutes after it.
                let start = if c == 2 && i % 4 == 1 { date_of(&activities[3 * i + 1], "START_TIME") + TimeDelta::minutes(30) } else { start };
                shift_dates(&mut row, start - date_of(t, "CALL_START_DATE"));
                let id = 41 + index;
                row["ID"] = json!(id.to_string());
                row["PORTAL_USER_ID"] = d["ASSIGNED_BY_ID"].clone();
                row["PHONE_NUMBER"] = json!(contact_phone(i));
                row["CALL_ID"] = json!(format!("externalCall.{:016x}.{}", splitmix(id as u64), start.timestamp()));
                // Most calls are on the client's contact; some on the deal's lead (first
                // calls to a new lead) or its company, as the fixture's are.
                let (entity, entity_id) = match i % 7 {
                    1 if !d["LEAD_ID"].is_null() => ("LEAD", d["LEAD_ID"].clone()),
                    3 if str_of(d, "COMPANY_ID") != "0" => ("COMPANY", d["COMPANY_ID"].clone()),
                    _ => ("CONTACT", d["CONTACT_ID"].clone()),
                };
                row["CRM_ENTITY_TYPE"] = json!(entity);
                row["CRM_ENTITY_ID"] = entity_id;
                row["CRM_ACTIVITY_ID"] = act["ID"].clone();
                row["CALL_TYPE"] = json!(if c % 2 == 0 { "1" } else { "2" });
                // Every fourth deal's first incoming call is missed; the outgoing call 30
                // minutes later to the same number is the callback.
                if c == 1 && i % 4 == 1 {
                    row["CALL_FAILED_CODE"] = json!("304");
                    row["CALL_FAILED_REASON"] = json!("Missed call");
                    row["CALL_DURATION"] = json!("0");
                }
                row["SESSION_ID"] = json!((3_841_557_776u64 + index as u64).to_string());
                calls.push(row);
            }
        }
        calls
    }

    /// Deal stage history 35.., three per deal: created, an intermediate stage, the
    /// current stage (final for won and lost deals).
    fn deal_stage_history(&self, out_deals: &[Value]) -> Vec<Value> {
        let n = self.n;
        let deal_id = |i: usize| str_of(&out_deals[i], "ID").to_string();
        let mut deal_stage_history = Vec::with_capacity(3 * n);
        for (i, d) in out_deals.iter().enumerate() {
            let category: i64 = str_of(d, "CATEGORY_ID").parse().unwrap_or(0);
            let prefix = if category == 0 { String::new() } else { format!("C{category}:") };
            let created = date_of(d, "DATE_CREATE");
            let moved = date_of(d, "MOVED_TIME").max(created + TimeDelta::hours(2));
            let middle = created + (moved - created) / 2;
            let semantic = str_of(d, "STAGE_SEMANTIC_ID");
            let last_type = if semantic == "P" { 2 } else { 3 };
            let owner: i64 = deal_id(i).parse().unwrap();
            for (h, (type_id, time, stage, sem)) in [
                (1, created, format!("{prefix}NEW"), "P"),
                (2, middle, format!("{prefix}PREPARATION"), "P"),
                (last_type, moved, str_of(d, "STAGE_ID").to_string(), semantic),
            ]
            .into_iter()
            .enumerate()
            {
                deal_stage_history.push(json!({
                    "ID": 35 + 3 * i + h, "TYPE_ID": type_id, "OWNER_ID": owner, "CREATED_TIME": iso(time),
                    "CATEGORY_ID": category, "STAGE_SEMANTIC_ID": sem, "STAGE_ID": stage,
                }));
            }
        }
        deal_stage_history
    }

    /// Lead stage history, its ids after the deals': created (NEW), then the lead's status
    /// unless it is still NEW.
    fn lead_stage_history(&self, leads: &[Value]) -> Vec<Value> {
        let n = self.n;
        let mut lead_stage_history = Vec::new();
        for l in leads {
            let owner: i64 = str_of(l, "ID").parse().unwrap();
            let mut push = |type_id: i64, time: &str, status: &str, sem: &str| {
                let id = 35 + 3 * n + lead_stage_history.len();
                lead_stage_history.push(json!({
                    "ID": id, "TYPE_ID": type_id, "OWNER_ID": owner, "CREATED_TIME": time,
                    "STATUS_SEMANTIC_ID": sem, "STATUS_ID": status,
                }));
            };
            push(1, str_of(l, "DATE_CREATE"), "NEW", "P");
            let status = str_of(l, "STATUS_ID");
            if status != "NEW" {
                let sem = str_of(l, "STATUS_SEMANTIC_ID");
                push(if sem == "P" { 2 } else { 3 }, str_of(l, "MOVED_TIME"), status, sem);
            }
        }
        lead_stage_history
    }

    /// Tasks 8017.., one per deal, bound to the deal and its contact.
    fn tasks(&self, fx: &MockData, out_deals: &[Value]) -> Vec<Value> {
        let n = self.n;
        let deal_id = |i: usize| str_of(&out_deals[i], "ID").to_string();
        (0..n)
            .map(|i| {
                let d = &out_deals[i];
                let t = &fx.tasks[i % fx.tasks.len()];
                let mut row = t.clone();
                shift_dates(&mut row, date_of(d, "DATE_CREATE") + TimeDelta::hours(1) - date_of(t, "createdDate"));
                let contact = str_of(d, "CONTACT_ID");
                row["id"] = json!((8017 + i).to_string());
                row["title"] = json!(format!("Call back client {contact}"));
                row["responsibleId"] = d["ASSIGNED_BY_ID"].clone();
                row["createdBy"] = d["ASSIGNED_BY_ID"].clone();
                row["ufCrmTask"] = match d["LEAD_ID"].as_str() {
                    // Some tasks are on the lead the deal came from.
                    Some(lead) if i % 5 == 2 => json!([format!("L_{lead}"), format!("C_{contact}")]),
                    _ => json!([format!("D_{}", deal_id(i)), format!("C_{contact}")]),
                };
                // A task in progress (3) or completed (5) was started an hour after it was set.
                if matches!(row["status"].as_str(), Some("3" | "5")) || matches!(row["status"].as_i64(), Some(3 | 5)) {
                    row["dateStart"] = json!(iso(date_of(d, "DATE_CREATE") + TimeDelta::hours(2)));
                }
                row
            })
            .collect()
    }
}
