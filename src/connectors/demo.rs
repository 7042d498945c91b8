//! The demo connector: a deterministic, realistic sales department.
//!
//! Given a seed, a scale and an "as of" instant, [`generate`] builds every canonical table
//! for the 14 months before `as_of`: 6 departments, 70 managers who differ (activity,
//! skill, speed of first contact, weekday habits, callback discipline), 2 pipelines with
//! stage-to-stage conversion, leads from every channel, deals with stage history and items,
//! about 1 M calls a year at `scale = 1.0`, activities, tasks, and the inputs CRMs do not
//! hold (plans, compensation, absences, feedback). The same (seed, scale, as_of) always
//! gives the same rows.
//!
//! Feeds: `model` builders. Used by `salespulse demo`, `kind = "demo"` tenants, the tests
//! and the benchmarks.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::Sha256;

use crate::model::{Dataset, Table, TableBuilder, Value, date_to_days};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoParams {
    /// 1.0 is about 1 M calls a year; fractions for tests, 10 for benchmarks.
    pub scale: f64,
    pub seed: u64,
    /// The snapshot time: the data ends here.
    pub as_of: DateTime<Utc>,
    /// The sales office's zone: working hours are local.
    pub timezone: Tz,
}

/// How far back the demo history reaches, in days (a little over 13 months).
pub const HISTORY_DAYS: i64 = 425;

const DEPARTMENTS: &[(&str, &str, Option<&str>, usize)] = &[
    // id, name, parent, managers (the head included)
    ("1", "Отдел продаж", None, 1),
    ("2", "Входящие продажи", Some("1"), 14),
    ("3", "Активные продажи", Some("1"), 20),
    ("4", "Ключевые клиенты", Some("1"), 10),
    ("5", "Региональные продажи", Some("1"), 12),
    ("6", "Филиал Новосибирск", Some("5"), 13),
];

// id, name, channel, online, lead weight
const SOURCES: &[(&str, &str, &str, bool, f64)] = &[
    ("WEB", "Форма на сайте", "web_form", true, 0.22),
    ("CALL", "Входящий звонок", "phone", false, 0.18),
    ("CHAT", "Онлайн-чат", "chat", true, 0.10),
    ("CALLBACK", "Обратный звонок", "callback", true, 0.08),
    ("WHATSAPP", "WhatsApp", "messenger", true, 0.07),
    ("TELEGRAM", "Telegram", "messenger", true, 0.06),
    ("EMAIL", "E-mail", "email", true, 0.06),
    ("VK", "ВКонтакте", "social", true, 0.04),
    ("YDIRECT", "Яндекс Директ", "ads", true, 0.08),
    ("REFERRAL", "Рекомендация", "referral", false, 0.06),
    ("EXPO", "Выставка", "offline", false, 0.04),
    ("OTHER", "Другое", "other", false, 0.01),
];

const LOSS_REASONS: &[(&str, &str)] = &[
    ("1", "Дорого"),
    ("2", "Выбрали конкурента"),
    ("3", "Нет бюджета"),
    ("4", "Не выходит на связь"),
    ("5", "Нецелевой клиент"),
    ("6", "Отложили покупку"),
];

struct PipelineDef {
    id: &'static str,
    name: &'static str,
    /// Open stages in order, with the chance to move on from each.
    open: &'static [(&'static str, &'static str, f64)],
    won: (&'static str, &'static str),
    lost: (&'static str, &'static str),
    /// Mean days spent in an open stage.
    mean_stage_days: f64,
}

const PIPELINES: &[PipelineDef] = &[
    PipelineDef {
        id: "0",
        name: "Продажи",
        open: &[
            ("NEW", "Новая", 0.80),
            ("QUALIFICATION", "Квалификация", 0.70),
            ("PROPOSAL", "Коммерческое предложение", 0.62),
            ("NEGOTIATION", "Переговоры", 0.72),
            ("CONTRACT", "Договор", 0.86),
        ],
        won: ("WON", "Сделка успешна"),
        lost: ("LOSE", "Сделка провалена"),
        mean_stage_days: 8.0,
    },
    PipelineDef {
        id: "1",
        name: "Повторные продажи",
        open: &[("C1:NEW", "Новая", 0.85), ("C1:OFFER", "Предложение", 0.78), ("C1:INVOICE", "Счёт выставлен", 0.90)],
        won: ("C1:WON", "Оплачено"),
        lost: ("C1:LOSE", "Отказ"),
        mean_stage_days: 4.0,
    },
];

// product id, name, price (roubles), cost share
const PRODUCTS: &[(&str, &str, i64, f64)] = &[
    ("P01", "Лицензия CRM Базовая (год)", 24_000, 0.55),
    ("P02", "Лицензия CRM Профи (год)", 59_000, 0.55),
    ("P03", "Лицензия CRM Энтерпрайз (год)", 149_000, 0.5),
    ("P04", "Внедрение: пакет S", 45_000, 0.62),
    ("P05", "Внедрение: пакет M", 120_000, 0.6),
    ("P06", "Внедрение: пакет L", 340_000, 0.58),
    ("P07", "Интеграция с телефонией", 35_000, 0.65),
    ("P08", "Обучение сотрудников (день)", 28_000, 0.45),
    ("P09", "Техподдержка (месяц)", 9_500, 0.4),
    ("P10", "Модуль аналитики", 39_000, 0.5),
    ("P11", "Доработка по ТЗ (час)", 3_200, 0.7),
    ("P12", "Аудит воронки продаж", 65_000, 0.35),
];

const FIRST_NAMES: &[&str] = &[
    "Алексей", "Мария", "Дмитрий", "Анна", "Сергей", "Елена", "Иван", "Ольга", "Андрей",
    "Наталья", "Михаил", "Татьяна", "Николай", "Ирина", "Павел", "Светлана", "Артём", "Юлия",
    "Максим", "Екатерина", "Егор", "Ксения", "Роман", "Дарья",
];
const LAST_NAMES: &[&str] = &[
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
];
const COMPANY_WORDS: &[&str] = &[
    "Альфа", "Вектор", "Гранит", "Дельта", "Орион", "Меридиан", "Северсталь", "Техно", "Логистик",
    "Строй", "Инвест", "Маркет", "Агро", "Медиа", "Энерго", "Фарм", "Трейд", "Сервис", "Групп",
    "Систем",
];
const INDUSTRIES: &[&str] = &[
    "Розничная торговля", "Оптовая торговля", "Производство", "Строительство", "IT",
    "Логистика", "Медицина", "Образование", "Услуги", "Недвижимость",
];

/// RU public holidays (fixed dates) used by the demo's working calendar.
const HOLIDAYS: &[(u32, u32)] =
    &[(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8), (2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)];

fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
        && !HOLIDAYS.contains(&(date.month(), date.day()))
}

/// One manager and the habits that make their numbers differ from the others'.
#[derive(Debug, Clone)]
struct Manager {
    id: String,
    department: usize,
    /// First and last day the manager works (hire date, leave date).
    hired: NaiveDate,
    left: Option<NaiveDate>,
    /// Calls and effort relative to an average manager.
    activity: f64,
    /// Multiplier on every stage's conversion chance.
    skill: f64,
    /// Median minutes of working time to first contact on a new lead.
    response_minutes: f64,
    /// Effort per weekday, Monday first.
    weekday: [f64; 5],
    /// Share of missed inbound calls the manager calls back.
    callback_rate: f64,
    /// Share of answered calls that end within a minute.
    short_call_share: f64,
    /// Days away (vacation, sick leave), as (first, last, kind).
    absences: Vec<(NaiveDate, NaiveDate, &'static str)>,
}

impl Manager {
    fn works_on(&self, date: NaiveDate) -> bool {
        date >= self.hired
            && self.left.is_none_or(|l| date <= l)
            && is_working_day(date)
            && !self.absences.iter().any(|(a, b, _)| (*a..=*b).contains(&date))
    }
}

#[derive(Debug, Clone)]
struct Client {
    contact_id: String,
    company_id: Option<String>,
    phone_hash: String,
}

/// All generator state: the random stream, the clock and the tables being filled.
struct Generator {
    rng: ChaCha8Rng,
    tz: Tz,
    scale: f64,
    first_day: NaiveDate,
    last_day: NaiveDate,
    as_of_us: i64,
    phone_key: Vec<u8>,
    managers: Vec<Manager>,
    clients: Vec<Client>,
    counters: [u64; 8],
    t: Tables,
}

struct Tables {
    managers: TableBuilder,
    departments: TableBuilder,
    pipelines: TableBuilder,
    stages: TableBuilder,
    sources: TableBuilder,
    loss_reasons: TableBuilder,
    companies: TableBuilder,
    contacts: TableBuilder,
    leads: TableBuilder,
    deals: TableBuilder,
    history: TableBuilder,
    items: TableBuilder,
    calls: TableBuilder,
    activities: TableBuilder,
    tasks: TableBuilder,
    plans: TableBuilder,
    compensation: TableBuilder,
    absences: TableBuilder,
    feedback: TableBuilder,
}

impl Tables {
    fn new() -> Self {
        Self {
            managers: TableBuilder::new(Table::Managers),
            departments: TableBuilder::new(Table::Departments),
            pipelines: TableBuilder::new(Table::Pipelines),
            stages: TableBuilder::new(Table::Stages),
            sources: TableBuilder::new(Table::Sources),
            loss_reasons: TableBuilder::new(Table::LossReasons),
            companies: TableBuilder::new(Table::Companies),
            contacts: TableBuilder::new(Table::Contacts),
            leads: TableBuilder::new(Table::Leads),
            deals: TableBuilder::new(Table::Deals),
            history: TableBuilder::new(Table::DealStageHistory),
            items: TableBuilder::new(Table::DealItems),
            calls: TableBuilder::new(Table::Calls),
            activities: TableBuilder::new(Table::Activities),
            tasks: TableBuilder::new(Table::Tasks),
            plans: TableBuilder::new(Table::SalesPlans),
            compensation: TableBuilder::new(Table::Compensation),
            absences: TableBuilder::new(Table::Absences),
            feedback: TableBuilder::new(Table::Feedback),
        }
    }

    fn into_dataset(self) -> Dataset {
        let mut d = Dataset::default();
        for b in [
            self.managers, self.departments, self.pipelines, self.stages, self.sources,
            self.loss_reasons, self.companies, self.contacts, self.leads, self.deals, self.history,
            self.items, self.calls, self.activities, self.tasks, self.plans, self.compensation,
            self.absences, self.feedback,
        ] {
            d.push(b);
        }
        d
    }
}

/// Appends a row the generator built itself; its values come from the constants above, so
/// a rejection is a bug in this file, caught by the tests.
fn put(b: &mut TableBuilder, row: &[Value<'_>]) {
    if let Err(e) = b.append_row(row) {
        unreachable!("demo generator built a bad {} row: {e}", b.table().name());
    }
}

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 86_400_000_000;

enum Counter {
    Company,
    Contact,
    Lead,
    Deal,
    Call,
    Activity,
    Task,
    Feedback,
}

/// Generates the demo CRM.
pub fn generate(params: &DemoParams) -> Dataset {
    let as_of_local = params.as_of.with_timezone(&params.timezone).date_naive();
    let mut g = Generator {
        rng: ChaCha8Rng::seed_from_u64(params.seed),
        tz: params.timezone,
        scale: params.scale.max(0.0),
        first_day: as_of_local - Duration::days(HISTORY_DAYS),
        last_day: as_of_local,
        as_of_us: params.as_of.timestamp_micros(),
        phone_key: params.seed.to_le_bytes().to_vec(),
        managers: Vec::new(),
        clients: Vec::new(),
        counters: [0; 8],
        t: Tables::new(),
    };
    g.reference_tables();
    g.staff();
    g.existing_clients();
    let mut day = g.first_day;
    while day <= g.last_day {
        g.leads_of_day(day);
        g.calls_of_day(day);
        day += Duration::days(1);
    }
    g.inputs();
    g.t.into_dataset()
}

impl Generator {
    fn next_id(&mut self, c: Counter) -> String {
        let slot = &mut self.counters[c as usize];
        *slot += 1;
        slot.to_string()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// A count with mean `lambda` (Poisson; a normal approximation for large means).
    fn count(&mut self, lambda: f64) -> usize {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as usize;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.rng.random::<f64>();
        while p > limit {
            k += 1;
            p *= self.rng.random::<f64>();
        }
        k
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// The instant of a local wall-clock time (earliest on a fold, shifted on a gap).
    fn local(&self, date: NaiveDate, seconds: u32) -> i64 {
        let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds.min(86_399), 0)
            .unwrap_or(NaiveTime::MIN);
        let naive = date.and_time(time);
        match self.tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.timestamp_micros(),
            None => (naive + Duration::hours(1)).and_utc().timestamp_micros(),
        }
    }

    fn local_date(&self, us: i64) -> NaiveDate {
        DateTime::from_timestamp_micros(us)
            .map(|t| t.with_timezone(&self.tz).date_naive())
            .unwrap_or(self.first_day)
    }

    /// A random instant within office hours (09:00-18:00, fewer calls over lunch).
    fn office_time(&mut self, date: NaiveDate) -> i64 {
        let mut minute = self.rng.random_range(9 * 60..18 * 60);
        if (13 * 60..14 * 60).contains(&minute) && self.chance(0.6) {
            minute = self.rng.random_range(14 * 60..18 * 60);
        }
        let second = self.rng.random_range(0..60);
        self.local(date, minute * 60 + second)
    }

    /// `minutes` of office time after `start` (skipping nights, weekends and holidays).
    fn after_office_minutes(&self, start: i64, minutes: f64) -> i64 {
        let mut left = (minutes * MINUTE_US as f64) as i64;
        let mut date = self.local_date(start);
        let mut t = start;
        for _ in 0..60 {
            if is_working_day(date) {
                let open = self.local(date, 9 * 3600);
                let close = self.local(date, 18 * 3600);
                let from = t.max(open);
                if from < close {
                    if from + left <= close {
                        return from + left;
                    }
                    left -= close - from;
                }
            }
            date += Duration::days(1);
            t = self.local(date, 0);
        }
        t
    }

    fn phone_hash(&self, phone: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.phone_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(phone.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..10].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn random_phone_hash(&mut self) -> String {
        let phone = format!("7{}", self.rng.random_range(9_000_000_000u64..9_999_999_999));
        self.phone_hash(&phone)
    }

    fn person_name(&mut self) -> String {
        let first = *self.pick(FIRST_NAMES);
        let last = *self.pick(LAST_NAMES);
        // Feminine surnames for the feminine first names of the list (every second one).
        let feminine = FIRST_NAMES.iter().position(|n| *n == first).is_some_and(|i| i % 2 == 1);
        if feminine { format!("{first} {last}а") } else { format!("{first} {last}") }
    }

    fn reference_tables(&mut self) {
        for (id, name, parent, _) in DEPARTMENTS {
            // Heads are the first manager of each department: ids are 100 + position.
            let head = format!("{}", 100 + DEPARTMENTS.iter().take_while(|d| d.0 != *id).map(|d| d.3).sum::<usize>());
            put(&mut self.t.departments, &[(*id).into(), (*name).into(), (*parent).into(), (&head).into()]);
        }
        for (i, p) in PIPELINES.iter().enumerate() {
            put(&mut self.t.pipelines, &[p.id.into(), p.name.into(), Value::Int(i as i64 * 10), (i == 0).into()]);
            let mut sort = 10;
            for (id, name, _) in p.open {
                put(&mut self.t.stages, &[(*id).into(), p.id.into(), (*name).into(), Value::Int(sort), "open".into()]);
                sort += 10;
            }
            put(&mut self.t.stages, &[p.won.0.into(), p.id.into(), p.won.1.into(), Value::Int(sort), "won".into()]);
            put(&mut self.t.stages, &[p.lost.0.into(), p.id.into(), p.lost.1.into(), Value::Int(sort + 10), "lost".into()]);
        }
        for (id, name, channel, online, _) in SOURCES {
            put(&mut self.t.sources, &[(*id).into(), (*name).into(), (*channel).into(), (*online).into()]);
        }
        for (id, name) in LOSS_REASONS {
            put(&mut self.t.loss_reasons, &[(*id).into(), (*name).into()]);
        }
    }

    fn staff(&mut self) {
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

    /// Clients that bought before the history starts, so repeat sales exist from day one.
    fn existing_clients(&mut self) {
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

    /// An active manager of one of the given departments, favouring the active ones.
    fn assignee(&mut self, date: NaiveDate, departments: &[usize]) -> Option<usize> {
        let weights: Vec<f64> = self
            .managers
            .iter()
            .map(|m| if departments.contains(&m.department) && m.works_on(date) { m.activity } else { 0.0 })
            .collect();
        (weights.iter().sum::<f64>() > 0.0).then(|| self.weighted(&weights))
    }

    fn leads_of_day(&mut self, day: NaiveDate) {
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

    /// A deal from creation to its current stage: history, calls, activities, tasks, items.
    #[allow(clippy::too_many_arguments)]
    fn deal(&mut self, deal_id: &str, p: &PipelineDef, created: i64, m: usize, client: &Client, lead_id: Option<&str>, source: &str) {
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

    fn deal_activities(&mut self, deal_id: &str, m: usize, client: &Client, from: i64, until: i64, stage: &str) {
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
    fn activity(&mut self, kind: &str, direction: Option<&str>, m: usize, deal: Option<&str>, lead: Option<&str>, client: &Client, at: i64, deadline: Option<i64>, done_now: bool) {
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

    fn deal_task(&mut self, deal_id: &str, m: usize, from: i64, until: i64) {
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

    /// One call. Outbound calls to a client reach them less often than inbound calls are
    /// answered; connected calls have a share under a minute.
    #[allow(clippy::too_many_arguments)]
    fn call(&mut self, m: usize, direction: &str, at: i64, client: Option<&Client>, lead: Option<&str>, deal: Option<&str>, first_contact: bool) -> (&'static str, String) {
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
    fn calls_of_day(&mut self, day: NaiveDate) {
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

    /// Plans, compensation rules: the inputs a CRM does not hold.
    fn inputs(&mut self) {
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

/// The demo source as a connector: every pull generates the whole dataset (on a blocking
/// thread), as of `as_of` or of the pull.
#[derive(Debug, Clone)]
pub struct DemoConnector {
    pub scale: f64,
    pub seed: u64,
    pub as_of: Option<DateTime<Utc>>,
    pub timezone: Tz,
}

#[async_trait::async_trait]
impl super::Connector for DemoConnector {
    fn id(&self) -> &'static str {
        "demo"
    }

    async fn check(&self) -> Result<super::CheckReport, super::ConnectorError> {
        Ok(super::CheckReport { facts: vec![format!("demo data, seed {}, scale {}", self.seed, self.scale)], ..Default::default() })
    }

    async fn pull(&self, _previous: Option<super::sync::Previous>, now: DateTime<Utc>, _progress: super::progress::ProgressHandle) -> Result<super::Pull, super::ConnectorError> {
        let params = DemoParams { scale: self.scale, seed: self.seed, as_of: self.as_of.unwrap_or(now), timezone: self.timezone };
        let dataset = tokio::task::spawn_blocking(move || generate(&params)).await.map_err(|e| super::ConnectorError::Task { what: "demo generator", message: e.to_string() })?;
        Ok(super::Pull {
            dataset,
            taken_at: self.as_of.unwrap_or(now),
            source_label: format!("demo (seed {}, scale {})", self.seed, self.scale),
            cursors: Default::default(),
            sync: None,
        })
    }
}

#[cfg(test)]
mod tests;
