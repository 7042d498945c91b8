//! The fixed lists the generator draws from (departments, lead sources, loss reasons,
//! pipelines and their stages, products, names) and the reference tables written from them.

use crate::model::Value;

use super::{Generator, put};

pub(super) const DEPARTMENTS: &[(&str, &str, Option<&str>, usize)] = &[
    // id, name, parent, managers (the head included)
    ("1", "Отдел продаж", None, 1),
    ("2", "Входящие продажи", Some("1"), 14),
    ("3", "Активные продажи", Some("1"), 20),
    ("4", "Ключевые клиенты", Some("1"), 10),
    ("5", "Региональные продажи", Some("1"), 12),
    ("6", "Филиал Новосибирск", Some("5"), 13),
];

// id, name, channel, online, lead weight
pub(super) const SOURCES: &[(&str, &str, &str, bool, f64)] = &[
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

pub(super) const LOSS_REASONS: &[(&str, &str)] = &[
    ("1", "Дорого"),
    ("2", "Выбрали конкурента"),
    ("3", "Нет бюджета"),
    ("4", "Не выходит на связь"),
    ("5", "Нецелевой клиент"),
    ("6", "Отложили покупку"),
];

pub(super) struct PipelineDef {
    pub(super) id: &'static str,
    name: &'static str,
    /// Open stages in order, with the chance to move on from each.
    pub(super) open: &'static [(&'static str, &'static str, f64)],
    pub(super) won: (&'static str, &'static str),
    pub(super) lost: (&'static str, &'static str),
    /// Mean days spent in an open stage.
    pub(super) mean_stage_days: f64,
}

pub(super) const PIPELINES: &[PipelineDef] = &[
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
pub(super) const PRODUCTS: &[(&str, &str, i64, f64)] = &[
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

pub(super) const FIRST_NAMES: &[&str] = &[
    "Алексей", "Мария", "Дмитрий", "Анна", "Сергей", "Елена", "Иван", "Ольга", "Андрей",
    "Наталья", "Михаил", "Татьяна", "Николай", "Ирина", "Павел", "Светлана", "Артём", "Юлия",
    "Максим", "Екатерина", "Егор", "Ксения", "Роман", "Дарья",
];
pub(super) const LAST_NAMES: &[&str] = &[
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
];
pub(super) const COMPANY_WORDS: &[&str] = &[
    "Альфа", "Вектор", "Гранит", "Дельта", "Орион", "Меридиан", "Северсталь", "Техно", "Логистик",
    "Строй", "Инвест", "Маркет", "Агро", "Медиа", "Энерго", "Фарм", "Трейд", "Сервис", "Групп",
    "Систем",
];
pub(super) const INDUSTRIES: &[&str] = &[
    "Розничная торговля", "Оптовая торговля", "Производство", "Строительство", "IT",
    "Логистика", "Медицина", "Образование", "Услуги", "Недвижимость",
];

impl Generator {
    pub(super) fn reference_tables(&mut self) {
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
}
