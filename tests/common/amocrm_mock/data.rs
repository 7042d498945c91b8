//! The account's records: the fixture files as they are, or an account of any size generated
//! from them, deterministically: leads with their stage history, calls, notes and a task
//! each, then contacts and companies (products and sources: `products.rs`).

use serde_json::{Value, json};

use super::ids::event_id;
use super::mutations::{event, lead_status, self_link};
use super::products::add_products_and_sources;
use super::{
    ACCOUNT_ID, COMPANY_BASE, CONTACT_BASE, DAY, GENERATED_END, LEAD_BASE, LEADS_ONLY_DELETED, LEADS_PAGE1, LEADS_PAGE2_LAST, LOST, MockData, NOTE_BASE, TASK_BASE,
    WON, fixture_embedded, fixture_json,
};

/// Knuth's MMIX linear congruential generator; the high 31 bits of each step.
#[derive(Debug)]
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// In 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// In lo..hi (lo when the range is empty).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { lo + (self.next() % (hi - lo) as u64) as i64 }
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PEOPLE: [(&str, &str); 10] = [
    ("Иван", "Петров"),
    ("Мария", "Смирнова"),
    ("Алексей", "Кузнецов"),
    ("Ольга", "Попова"),
    ("Сергей", "Васильев"),
    ("Наталья", "Новикова"),
    ("Дмитрий", "Фёдоров"),
    ("Екатерина", "Морозова"),
    ("Андрей", "Волков"),
    ("Татьяна", "Лебедева"),
];

const TASK_TEXTS: [&str; 4] = ["Перезвонить клиенту", "Встреча в офисе", "Отправить КП", "Уточнить бюджет"];
const COMMON_NOTES: [&str; 4] = ["Клиент просит скидку", "Отправили презентацию", "Нужен договор до конца месяца", "Решение принимает директор"];

fn contact_phone(j: usize) -> String {
    format!("+7916{:07}", 5_550_000 + j)
}

fn company_phone(k: usize) -> String {
    format!("+7495{:07}", 1_230_000 + k)
}

fn phone_field(phone: String) -> Value {
    json!({"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
           "values": [{"value": phone, "enum_id": 1, "enum_code": "WORK"}]})
}

fn email_field(email: String) -> Value {
    json!({"field_id": 5, "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext",
           "values": [{"value": email, "enum_id": 11, "enum_code": "WORK"}]})
}

/// The fixture leads' two custom fields: "Сегмент" (select) and "Дата встречи" (date).
fn lead_fields(b2b: bool, meeting: i64) -> Value {
    let (value, enum_id) = if b2b { ("B2B", 4_471_001) } else { ("B2C", 4_471_003) };
    json!([
        {"field_id": 1_278_898_021, "field_name": "Сегмент", "field_code": null, "field_type": "select",
         "values": [{"value": value, "enum_id": enum_id, "enum_code": null}]},
        {"field_id": 1_278_898_025, "field_name": "Дата встречи", "field_code": null, "field_type": "date",
         "values": [{"value": meeting}]},
    ])
}

fn call_result(status: i64, rng: &mut Lcg) -> &'static str {
    match status {
        4 => {
            let results: &[&'static str] = &["Успешный разговор", "Договорились о встрече", "Отправить КП"];
            results[rng.below(results.len())]
        }
        1 => "Оставил сообщение",
        2 => "Перезвонить позже",
        5 => "Неверный номер",
        _ => {
            let results: &[&'static str] = &["Не дозвонился", ""];
            results[rng.below(results.len())]
        }
    }
}

impl MockData {
    /// The records of the fixture files as they are: leads of page 1 and page 2 (62), the
    /// trash, both event pages, the call notes (under "leads"), and the rest.
    pub fn fixtures() -> MockData {
        let mut leads = fixture_embedded(LEADS_PAGE1, "leads");
        leads.extend(fixture_embedded(LEADS_PAGE2_LAST, "leads"));
        let mut events = fixture_embedded(fixture!("events_lead_status_changed_page1.json"), "events");
        events.extend(fixture_embedded(fixture!("events_deleted.json"), "events"));
        let notes = fixture_embedded(fixture!("leads_notes_calls_page1.json"), "notes").into_iter().map(|n| ("leads".to_string(), n)).collect();
        MockData {
            account: fixture_json(fixture!("account_with_groups.json")),
            users: fixture_embedded(fixture!("users.json"), "users"),
            pipelines: fixture_embedded(fixture!("leads_pipelines.json"), "pipelines"),
            loss_reasons: fixture_embedded(fixture!("leads_loss_reasons.json"), "loss_reasons"),
            leads,
            trash: fixture_embedded(LEADS_ONLY_DELETED, "leads"),
            contacts: fixture_embedded(fixture!("contacts_page1.json"), "contacts"),
            companies: fixture_embedded(fixture!("companies_page1.json"), "companies"),
            tasks: fixture_embedded(fixture!("tasks_page1.json"), "tasks"),
            notes,
            events,
            trashed: Vec::new(),
            catalogs: Vec::new(),
            catalog_elements: Vec::new(),
        }
    }

    /// An account of `leads` leads built like the fixture ones, over the fixture users,
    /// pipelines, statuses and loss reasons; deterministic, ids unique, references valid.
    ///
    /// * Leads `LEAD_BASE..`, created in id order over the year before [`GENERATED_END`],
    ///   `created_at <= updated_at < GENERATED_END`. Status: ~25 % won (142), ~20 % lost (143,
    ///   with a `loss_reason_id` and `_embedded.loss_reason`), ~10 % in the first (unsorted)
    ///   stage, the rest in later open stages; `closed_at` = `updated_at` when closed, else
    ///   null. ~70 % in the main pipeline. ~35 % carry the select + date custom fields.
    /// * Contacts `CONTACT_BASE..`, ceil(n/2): lead i's one (main) contact is i mod that;
    ///   ~70 % of contacts work for a company, and their leads link it too. Companies
    ///   `COMPANY_BASE..`, ceil(n/5).
    /// * Per lead: `lead_status_changed` events from the pipeline's first stage to the
    ///   current status (the last one at `updated_at`), 1–3 call notes (call_status 4 the
    ///   most frequent), a "common" note ~30 % of the time, and one task. No trash.
    pub fn generated(leads: usize) -> MockData {
        let fx = MockData::fixtures();
        let n = leads;
        let mut rng = Lcg::new(0x616D_6F63_726D);
        let users: Vec<(i64, i64)> = fx.users.iter().map(|u| (u["id"].as_i64().unwrap(), u["rights"]["group_id"].as_i64().unwrap_or(0))).collect();
        // Per pipeline: its id and open statuses in stage order (the first is "unsorted").
        let pipelines: Vec<(i64, Vec<i64>)> = fx
            .pipelines
            .iter()
            .map(|p| {
                let mut statuses: Vec<&Value> = p["_embedded"]["statuses"].as_array().unwrap().iter().collect();
                statuses.sort_by_key(|s| s["sort"].as_i64());
                let open = statuses.iter().filter_map(|s| s["id"].as_i64()).filter(|id| *id != WON && *id != LOST).collect();
                (p["id"].as_i64().unwrap(), open)
            })
            .collect();
        let reasons = fx.loss_reasons.clone();

        let n_contacts = n.div_ceil(2).max(1);
        let n_companies = n.div_ceil(5).max(1);
        let mut next_company = 0;
        let contact_company: Vec<Option<usize>> = (0..n_contacts)
            .map(|_| {
                if rng.chance(70) {
                    next_company += 1;
                    Some((next_company - 1) % n_companies)
                } else {
                    None
                }
            })
            .collect();

        let start = GENERATED_END - 365 * DAY;
        let last_created = GENERATED_END - 7 * DAY;
        let step = ((last_created - start) / n.max(1) as i64).max(1);
        let mut out = MockData {
            account: fx.account.clone(),
            users: fx.users.clone(),
            pipelines: fx.pipelines.clone(),
            loss_reasons: reasons.clone(),
            ..MockData::default()
        };
        let plan = Plan { users, pipelines, reasons, contact_company, n_contacts, n_companies, start, last_created, step };
        let mut note_id = NOTE_BASE;
        let mut event_seq = 0_u64;
        // (created_at, responsible, group) of each lead: its contact is made just before.
        let mut lead_meta: Vec<(i64, i64, i64)> = Vec::with_capacity(n);

        for i in 0..n {
            let lead = add_lead(&mut out, &mut rng, &plan, i);
            event_seq = add_stage_history(&mut out, &mut rng, &plan, &lead, event_seq);
            note_id = add_calls(&mut out, &mut rng, &lead, note_id);
            add_task(&mut out, &mut rng, &lead);
            lead_meta.push((lead.created, lead.responsible, lead.group));
        }
        add_contacts(&mut out, &mut rng, &plan, &lead_meta);
        add_companies(&mut out, &mut rng, &plan);
        add_products_and_sources(&mut out);
        out
    }
}

/// What the parts of a generated account draw on: the fixture account's users, pipelines and
/// loss reasons, each contact's company, and the span the leads are created over.
#[derive(Debug)]
struct Plan {
    /// (id, group) of each user.
    users: Vec<(i64, i64)>,
    /// Per pipeline: its id and open statuses in stage order (the first is "unsorted").
    pipelines: Vec<(i64, Vec<i64>)>,
    reasons: Vec<Value>,
    /// The company of each contact, if any.
    contact_company: Vec<Option<usize>>,
    n_contacts: usize,
    n_companies: usize,
    /// Lead i is created `step * i` after `start` (plus up to one step), at the latest at
    /// `last_created`.
    start: i64,
    last_created: i64,
    step: i64,
}

/// A generated lead as its stage history, calls, notes and task need it.
#[derive(Debug)]
struct NewLead {
    i: usize,
    id: i64,
    /// Its contact's index, and that contact's company's, if any.
    j: usize,
    company: Option<usize>,
    responsible: i64,
    group: i64,
    updated_by: i64,
    pipeline_id: i64,
    /// The stages it went through, first stage first.
    path: Vec<i64>,
    moves: i64,
    closed: bool,
    created: i64,
    life: i64,
    updated: i64,
}

fn contact_id(j: usize) -> i64 {
    CONTACT_BASE + j as i64
}

fn company_id(k: usize) -> i64 {
    COMPANY_BASE + k as i64
}

/// Lead `i`: its pipeline and the stages it went through, its times, contact and company,
/// loss reason, price and custom fields.
fn add_lead(out: &mut MockData, rng: &mut Lcg, plan: &Plan, i: usize) -> NewLead {
    let (users, pipelines, reasons, contact_company) = (&plan.users, &plan.pipelines, &plan.reasons, &plan.contact_company);
    let (n_contacts, start, last_created, step) = (plan.n_contacts, plan.start, plan.last_created, plan.step);
    let id = LEAD_BASE + i as i64;
    let (responsible, group) = *rng.pick(users);
    let (pipeline_id, open) = if pipelines.len() < 2 || rng.chance(70) { &pipelines[0] } else { &pipelines[1] };
    let pipeline_id = *pipeline_id;

    // The stages it went through, first stage first.
    let roll = rng.below(100);
    let path: Vec<i64> = if roll < 45 {
        let m = rng.below(open.len());
        let mut p = open[..=m].to_vec();
        p.push(if roll < 25 { WON } else { LOST });
        p
    } else if roll < 55 {
        vec![open[0]]
    } else {
        let k = if open.len() > 1 { 1 + rng.below(open.len() - 1) } else { 0 };
        open[..=k].to_vec()
    };
    let status = *path.last().unwrap();
    let moves = path.len() as i64 - 1;
    let closed = status == WON || status == LOST;

    let created = (start + step * i as i64 + rng.between(0, step)).min(last_created);
    let min_life = 3600 * (moves + 1);
    let life = rng.between(min_life, (60 * DAY).min(GENERATED_END - 1 - created));
    let updated = created + life;

    let j = i % n_contacts;
    let company = contact_company[j];
    let reason = (status == LOST).then(|| rng.pick(reasons).clone());
    let price = if status == LOST && rng.chance(30) { 0 } else { rng.between(5, 500) * 1000 };
    let updated_by = if rng.chance(30) { rng.pick(users).0 } else { responsible };
    let custom = if rng.chance(35) {
        let b2b = rng.chance(50);
        lead_fields(b2b, (created + rng.between(DAY, 14 * DAY)) / DAY * DAY)
    } else {
        Value::Null
    };
    let mut embedded = json!({
        "tags": [],
        "contacts": [{"id": contact_id(j), "is_main": true, "_links": self_link(&format!("/api/v4/contacts/{}", contact_id(j)))}],
        "companies": company.map_or_else(Vec::new, |k| vec![json!({"id": company_id(k), "_links": self_link(&format!("/api/v4/companies/{}", company_id(k)))})]),
    });
    if let Some(r) = &reason {
        embedded["loss_reason"] = json!([r]);
    }
    out.leads.push(json!({
        "id": id,
        "name": format!("Сделка #{id}"),
        "price": price,
        "responsible_user_id": responsible,
        "group_id": group,
        "status_id": status,
        "pipeline_id": pipeline_id,
        "loss_reason_id": reason.as_ref().map(|r| r["id"].clone()),
        "source_id": null,
        "created_by": responsible,
        "updated_by": updated_by,
        "created_at": created,
        "updated_at": updated,
        "closed_at": closed.then_some(updated),
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": custom,
        "score": null,
        "account_id": ACCOUNT_ID,
        "_links": self_link(&format!("/api/v4/leads/{id}")),
        "_embedded": embedded,
    }));
    NewLead { i, id, j, company, responsible, group, updated_by, pipeline_id, path, moves, closed, created, life, updated }
}

/// The lead's stage history; returns the next event sequence number.
fn add_stage_history(out: &mut MockData, rng: &mut Lcg, plan: &Plan, lead: &NewLead, mut event_seq: u64) -> u64 {
    let users = &plan.users;
    let NewLead { id, responsible, pipeline_id, moves, created, life, .. } = *lead;
    let path = &lead.path;
    // Stage history: one event per move, evenly spaced, the last at updated_at.
    for (m, pair) in path.windows(2).enumerate() {
        let at = created + (m as i64 + 1) * life / moves;
        let by = if rng.chance(80) { responsible } else { rng.pick(users).0 };
        let values = (lead_status(pair[0], pipeline_id), lead_status(pair[1], pipeline_id));
        out.events.push(event(event_id(event_seq), "lead_status_changed", ("lead", id), by, at, values));
        event_seq += 1;
    }
    event_seq
}

/// The lead's calls and maybe a plain note; returns the next note id.
fn add_calls(out: &mut MockData, rng: &mut Lcg, lead: &NewLead, mut note_id: i64) -> i64 {
    let NewLead { i, id, j, company, responsible, group, updated_by, created, updated, .. } = *lead;
    // Calls, and sometimes a plain note. Some first calls are logged on the
    // client's contact or company card instead of the deal (incoming calls land there).
    for call in 0..1 + rng.below(3) {
        let (entity, entity_id) = match (call, i % 9, company) {
            (0, 0 | 5, _) => ("contacts", contact_id(j)),
            (0, 4, Some(k)) => ("companies", company_id(k)),
            _ => ("leads", id),
        };
        let at = rng.between(created, updated + 1);
        let call_status: i64 = if rng.chance(45) { 4 } else { *rng.pick(&[1, 2, 3, 5, 6, 7]) };
        let duration = match call_status {
            4 => rng.between(15, 900),
            1 => rng.between(5, 60),
            _ => 0,
        };
        let result = call_result(call_status, rng);
        let note_type = if rng.chance(50) { "call_in" } else { "call_out" };
        out.notes.push((
            entity.into(),
            json!({
                "id": note_id, "entity_id": entity_id, "created_by": responsible, "updated_by": responsible,
                "created_at": at, "updated_at": at, "responsible_user_id": responsible, "group_id": group,
                "note_type": note_type,
                "params": {
                    "uniq": format!("8f52d38a-5fb3-406d-93a3-{note_id:012x}"),
                    "duration": duration,
                    "source": "onlinePBX",
                    "link": format!("https://pbx.example.com/rec/{note_id}.mp3"),
                    "phone": contact_phone(j),
                    "call_result": result,
                    "call_status": call_status,
                },
                "account_id": ACCOUNT_ID,
                "_links": self_link(&format!("/api/v4/{entity}/{entity_id}/notes/{note_id}")),
            }),
        ));
        note_id += 1;
    }
    if rng.chance(30) {
        let at = rng.between(created, updated + 1);
        let text = *rng.pick(&COMMON_NOTES);
        out.notes.push((
            "leads".into(),
            json!({
                "id": note_id, "entity_id": id, "created_by": updated_by, "updated_by": updated_by,
                "created_at": at, "updated_at": at, "responsible_user_id": responsible, "group_id": group,
                "note_type": "common", "params": {"text": text}, "account_id": ACCOUNT_ID,
                "_links": self_link(&format!("/api/v4/leads/{id}/notes/{note_id}")),
            }),
        ));
        note_id += 1;
    }
    note_id
}

/// The lead's task.
fn add_task(out: &mut MockData, rng: &mut Lcg, lead: &NewLead) {
    let NewLead { i, id, responsible, group, closed, created, updated, .. } = *lead;
    // One task.
    let task_id = TASK_BASE + i as i64;
    let task_created = rng.between(created, updated + 1);
    let done = closed || rng.chance(30);
    let task_updated = if done { rng.between(task_created, updated + 1) } else { task_created };
    let task_type = 1 + rng.below(2);
    let text = *rng.pick(&TASK_TEXTS);
    let complete_till = task_created + rng.between(DAY, 5 * DAY);
    out.tasks.push(json!({
        "id": task_id, "created_by": responsible, "updated_by": responsible,
        "created_at": task_created, "updated_at": task_updated,
        "responsible_user_id": responsible, "group_id": group,
        "entity_id": id, "entity_type": "leads", "duration": 0,
        "is_completed": done, "task_type_id": task_type, "text": text,
        "result": if done { json!({"text": "Выполнено"}) } else { json!([]) },
        "complete_till": complete_till, "account_id": ACCOUNT_ID,
        "_links": self_link(&format!("/api/v4/tasks/{task_id}")),
    }));
}

/// The contacts, each made just before its first lead (`lead_meta`: (created_at,
/// responsible, group) of each lead) by that lead's responsible user.
fn add_contacts(out: &mut MockData, rng: &mut Lcg, plan: &Plan, lead_meta: &[(i64, i64, i64)]) {
    let (users, contact_company, start) = (&plan.users, &plan.contact_company, plan.start);
    for (j, company) in contact_company.iter().enumerate() {
        let id = contact_id(j);
        let (first_lead, responsible, group) = lead_meta.get(j).copied().unwrap_or((start, users[0].0, users[0].1));
        let created = first_lead - rng.between(0, 3 * DAY);
        let updated = (created + rng.between(0, 30 * DAY)).min(GENERATED_END - 1).max(created);
        let (first, last) = PEOPLE[j % PEOPLE.len()];
        let mut fields = vec![phone_field(contact_phone(j))];
        if rng.chance(90) {
            fields.push(email_field(format!("client{id}@example.com")));
        }
        let companies: Vec<Value> =
            company.iter().map(|&k| json!({"id": company_id(k), "_links": self_link(&format!("/api/v4/companies/{}", company_id(k)))})).collect();
        out.contacts.push(json!({
            "id": id, "name": format!("{first} {last}"), "first_name": first, "last_name": last,
            "responsible_user_id": responsible, "group_id": group, "created_by": responsible, "updated_by": responsible,
            "created_at": created, "updated_at": updated, "closest_task_at": null,
            "is_deleted": false, "is_unsorted": false, "custom_fields_values": fields,
            "account_id": ACCOUNT_ID, "_links": self_link(&format!("/api/v4/contacts/{id}")),
            "_embedded": {"tags": [], "companies": companies},
        }));
    }
}

/// The companies, made before the year of the leads.
fn add_companies(out: &mut MockData, rng: &mut Lcg, plan: &Plan) {
    let (users, start, n_companies) = (&plan.users, plan.start, plan.n_companies);
    for k in 0..n_companies {
        let id = company_id(k);
        let (responsible, group) = *rng.pick(users);
        let created = start - rng.between(DAY, 90 * DAY);
        let updated = created + rng.between(0, 30 * DAY);
        let fields = if rng.chance(70) { json!([phone_field(company_phone(k))]) } else { Value::Null };
        out.companies.push(json!({
            "id": id, "name": format!("ООО Ромашка-{}", k + 1), "responsible_user_id": responsible, "group_id": group,
            "created_by": responsible, "updated_by": responsible, "created_at": created, "updated_at": updated,
            "closest_task_at": null, "is_deleted": false, "custom_fields_values": fields,
            "account_id": ACCOUNT_ID, "_links": self_link(&format!("/api/v4/companies/{id}")),
            "_embedded": {"tags": []},
        }));
    }
}
