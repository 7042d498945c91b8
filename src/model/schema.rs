//! The canonical tables of docs/schema.md (contract v1) as column definitions.
//!
//! This file is the only place where a table's columns are written down. Everything else
//! (Arrow schemas, builders, the file importer, the snapshot writer's sort order, the
//! catalog) derives from [`Table::columns`].

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Version of the canonical schema written into every snapshot manifest.
pub const SCHEMA_VERSION: u32 = 1;

/// The time zone annotation of every instant column.
pub const UTC: &str = "UTC";

/// What a column holds; maps to exactly one Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A source-system id, as text (`Utf8`).
    Id,
    /// Free text (`Utf8`).
    Text,
    /// One of a fixed set of lower-case values (`Utf8`).
    Enum(&'static [&'static str]),
    /// A JSON object serialized as text (`Utf8`).
    Json,
    Int32,
    Int64,
    Float64,
    Bool,
    /// An instant: `Timestamp(Microsecond, "UTC")`.
    Timestamp,
    /// A calendar date: `Date32`.
    Date,
    /// Money: `Decimal128(18, 2)`.
    Money,
    /// A rate such as a commission share: `Decimal128(6, 4)`.
    Rate,
}

impl ColumnKind {
    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Id | Self::Text | Self::Enum(_) | Self::Json => DataType::Utf8,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Self::Date => DataType::Date32,
            Self::Money => DataType::Decimal128(18, 2),
            Self::Rate => DataType::Decimal128(6, 4),
        }
    }

    /// Decimal scale for decimal kinds.
    pub fn scale(self) -> Option<u32> {
        match self {
            Self::Money => Some(2),
            Self::Rate => Some(4),
            _ => None,
        }
    }
}

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
    pub nullable: bool,
}

const fn req(name: &'static str, kind: ColumnKind) -> Column {
    Column { name, kind, nullable: false }
}
const fn opt(name: &'static str, kind: ColumnKind) -> Column {
    Column { name, kind, nullable: true }
}

use ColumnKind::*;

pub const STAGE_KINDS: &[&str] = &["open", "won", "lost"];
pub const CHANNELS: &[&str] = &[
    "web_form", "phone", "chat", "callback", "messenger", "email", "social", "ads", "referral",
    "offline", "other",
];
pub const LEAD_STATUSES: &[&str] = &["new", "in_progress", "qualified", "converted", "junk"];
pub const DEAL_STATUSES: &[&str] = &["open", "won", "lost"];
pub const DIRECTIONS: &[&str] = &["inbound", "outbound"];
pub const CALL_STATUSES: &[&str] = &["answered", "missed", "busy", "no_answer", "failed"];
pub const ACTIVITY_KINDS: &[&str] =
    &["call", "meeting", "email", "message", "task", "comment", "other"];
pub const TASK_STATUSES: &[&str] = &["new", "in_progress", "completed", "deferred", "cancelled"];
pub const ABSENCE_KINDS: &[&str] = &["vacation", "sick", "other"];

const MANAGERS: &[Column] = &[
    req("manager_id", Id),
    opt("name", Text),
    opt("email", Text),
    opt("department_id", Id),
    opt("position", Text),
    opt("is_active", Bool),
    opt("created_at", Timestamp),
];
const DEPARTMENTS: &[Column] = &[
    req("department_id", Id),
    opt("name", Text),
    opt("parent_id", Id),
    opt("head_manager_id", Id),
];
const PIPELINES: &[Column] = &[
    req("pipeline_id", Id),
    opt("name", Text),
    opt("sort_order", Int32),
    opt("is_default", Bool),
];
const STAGES: &[Column] = &[
    req("stage_id", Id),
    req("pipeline_id", Id),
    opt("name", Text),
    opt("sort_order", Int32),
    opt("kind", Enum(STAGE_KINDS)),
];
const SOURCES: &[Column] = &[
    req("source_id", Id),
    opt("name", Text),
    opt("channel", Enum(CHANNELS)),
    opt("is_online", Bool),
];
const LOSS_REASONS: &[Column] = &[req("loss_reason_id", Id), opt("name", Text)];
const COMPANIES: &[Column] = &[
    req("company_id", Id),
    opt("name", Text),
    opt("industry", Text),
    opt("manager_id", Id),
    opt("created_at", Timestamp),
    opt("updated_at", Timestamp),
    opt("custom_fields", Json),
];
const CONTACTS: &[Column] = &[
    req("contact_id", Id),
    opt("name", Text),
    opt("company_id", Id),
    opt("manager_id", Id),
    opt("source_id", Id),
    opt("created_at", Timestamp),
    opt("updated_at", Timestamp),
    opt("custom_fields", Json),
];
const LEADS: &[Column] = &[
    req("lead_id", Id),
    opt("title", Text),
    opt("status", Enum(LEAD_STATUSES)),
    opt("status_native", Text),
    opt("source_id", Id),
    opt("manager_id", Id),
    opt("contact_id", Id),
    opt("company_id", Id),
    opt("amount", Money),
    opt("currency", Text),
    req("created_at", Timestamp),
    opt("updated_at", Timestamp),
    opt("qualified_at", Timestamp),
    opt("closed_at", Timestamp),
    opt("converted_deal_id", Id),
    opt("custom_fields", Json),
];
const DEALS: &[Column] = &[
    req("deal_id", Id),
    opt("title", Text),
    opt("pipeline_id", Id),
    opt("stage_id", Id),
    req("status", Enum(DEAL_STATUSES)),
    opt("amount", Money),
    opt("currency", Text),
    opt("amount_base", Money),
    opt("manager_id", Id),
    opt("contact_id", Id),
    opt("company_id", Id),
    opt("lead_id", Id),
    opt("source_id", Id),
    opt("loss_reason_id", Id),
    req("created_at", Timestamp),
    opt("updated_at", Timestamp),
    opt("closed_at", Timestamp),
    opt("custom_fields", Json),
];
const DEAL_STAGE_HISTORY: &[Column] = &[
    req("deal_id", Id),
    opt("pipeline_id", Id),
    req("stage_id", Id),
    req("entered_at", Timestamp),
    opt("manager_id", Id),
];
const DEAL_ITEMS: &[Column] = &[
    req("deal_id", Id),
    req("item_id", Id),
    opt("product_id", Id),
    opt("name", Text),
    opt("quantity", Float64),
    opt("price", Money),
    opt("cost", Money),
];
const CALLS: &[Column] = &[
    req("call_id", Id),
    opt("manager_id", Id),
    req("direction", Enum(DIRECTIONS)),
    req("status", Enum(CALL_STATUSES)),
    opt("status_native", Text),
    req("started_at", Timestamp),
    req("duration_seconds", Int64),
    opt("phone_hash", Text),
    opt("deal_id", Id),
    opt("lead_id", Id),
    opt("contact_id", Id),
    opt("company_id", Id),
];
const ACTIVITIES: &[Column] = &[
    req("activity_id", Id),
    req("kind", Enum(ACTIVITY_KINDS)),
    opt("direction", Enum(DIRECTIONS)),
    opt("manager_id", Id),
    opt("deal_id", Id),
    opt("lead_id", Id),
    opt("contact_id", Id),
    opt("company_id", Id),
    req("created_at", Timestamp),
    opt("deadline", Timestamp),
    opt("completed_at", Timestamp),
    req("is_completed", Bool),
];
const TASKS: &[Column] = &[
    req("task_id", Id),
    opt("title", Text),
    opt("manager_id", Id),
    opt("created_by", Id),
    opt("deal_id", Id),
    opt("lead_id", Id),
    req("created_at", Timestamp),
    opt("deadline", Timestamp),
    opt("started_at", Timestamp),
    opt("completed_at", Timestamp),
    req("status", Enum(TASK_STATUSES)),
];
const SALES_PLANS: &[Column] = &[
    req("period_start", Date),
    req("period_end", Date),
    opt("department_id", Id),
    opt("manager_id", Id),
    opt("amount_plan", Money),
    opt("deals_plan", Int64),
];
const COMPENSATION: &[Column] = &[
    opt("manager_id", Id),
    opt("department_id", Id),
    opt("base_salary", Money),
    opt("commission_rate", Rate),
    req("effective_from", Date),
];
const ABSENCES: &[Column] = &[
    req("manager_id", Id),
    req("starts_on", Date),
    req("ends_on", Date),
    opt("kind", Enum(ABSENCE_KINDS)),
];
const FEEDBACK: &[Column] = &[
    req("feedback_id", Id),
    opt("deal_id", Id),
    opt("contact_id", Id),
    opt("company_id", Id),
    opt("manager_id", Id),
    req("score", Float64),
    req("max_score", Float64),
    req("created_at", Timestamp),
];

macro_rules! tables {
    ($($variant:ident => $name:literal, $cols:ident, sort $sort:literal, $input:literal;)*) => {
        /// A canonical table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Table { $($variant),* }

        impl Table {
            /// Every canonical table, in docs/schema.md order.
            pub const ALL: &'static [Table] = &[$(Table::$variant),*];

            /// The SQL name of the table (in schema `crm`).
            pub fn name(self) -> &'static str {
                match self { $(Table::$variant => $name),* }
            }

            /// The table's columns, in order.
            pub fn columns(self) -> &'static [Column] {
                match self { $(Table::$variant => $cols),* }
            }

            /// The column a snapshot file is sorted by: the table's main time column where
            /// it has one, so row-group statistics prune time-range queries.
            pub fn sort_column(self) -> &'static str {
                match self { $(Table::$variant => $sort),* }
            }

            /// Whether the table comes from the tenant's `inputs` folder rather than the CRM.
            pub fn is_input(self) -> bool {
                match self { $(Table::$variant => $input),* }
            }
        }
    };
}

tables! {
    Managers => "managers", MANAGERS, sort "manager_id", false;
    Departments => "departments", DEPARTMENTS, sort "department_id", false;
    Pipelines => "pipelines", PIPELINES, sort "pipeline_id", false;
    Stages => "stages", STAGES, sort "stage_id", false;
    Sources => "sources", SOURCES, sort "source_id", false;
    LossReasons => "loss_reasons", LOSS_REASONS, sort "loss_reason_id", false;
    Companies => "companies", COMPANIES, sort "created_at", false;
    Contacts => "contacts", CONTACTS, sort "created_at", false;
    Leads => "leads", LEADS, sort "created_at", false;
    Deals => "deals", DEALS, sort "created_at", false;
    DealStageHistory => "deal_stage_history", DEAL_STAGE_HISTORY, sort "entered_at", false;
    DealItems => "deal_items", DEAL_ITEMS, sort "deal_id", false;
    Calls => "calls", CALLS, sort "started_at", false;
    Activities => "activities", ACTIVITIES, sort "created_at", false;
    Tasks => "tasks", TASKS, sort "created_at", false;
    SalesPlans => "sales_plans", SALES_PLANS, sort "period_start", true;
    Compensation => "compensation", COMPENSATION, sort "effective_from", true;
    Absences => "absences", ABSENCES, sort "starts_on", true;
    Feedback => "feedback", FEEDBACK, sort "created_at", true;
}

impl Table {
    /// Looks a table up by its SQL name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The Arrow schema of the table, built once.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|t| {
                    let fields: Vec<Field> = t
                        .columns()
                        .iter()
                        .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
                        .collect();
                    Arc::new(Schema::new(fields))
                })
                .collect()
        });
        let index = Table::ALL.iter().position(|t| *t == self).unwrap_or_default();
        Arc::clone(&all[index])
    }

    /// The position of a column by name.
    pub fn column_index(self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }

    /// Every table name, comma-separated, for error messages.
    pub fn names_list() -> String {
        Table::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    }
}
