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
//!
//! Layout: this file holds the parameters, the generator's state and the order of the steps
//! in [`generate`] (that order is the order of the random draws: keep it). One file per part:
//! `reference.rs` the fixed lists and reference tables, `calendar.rs` working days and office
//! hours, `random.rs` the draws, `staff.rs` the managers, `leads.rs` clients and leads,
//! `deals.rs` deals, `activities.rs` activities and tasks, `calls.rs` telephony, `inputs.rs`
//! plans and compensation.

mod activities;
mod calendar;
mod calls;
mod deals;
mod inputs;
mod leads;
mod random;
mod reference;
mod staff;
mod stream;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::{Dataset, Table, TableBuilder, Value};

use leads::Client;
use staff::Manager;

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
    /// The builder of a table the generator streams (`stream::STREAMED`).
    fn builder(&mut self, table: Table) -> &mut TableBuilder {
        match table {
            Table::Calls => &mut self.calls,
            Table::Activities => &mut self.activities,
            Table::Tasks => &mut self.tasks,
            Table::DealStageHistory => &mut self.history,
            Table::Deals => &mut self.deals,
            Table::Leads => &mut self.leads,
            other => unreachable!("the demo does not stream table {}", other.name()),
        }
    }

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

/// Appends a row the generator built itself; its values come from the constants of
/// `reference.rs`, so a rejection is a bug in this generator, caught by the tests.
fn put(b: &mut TableBuilder, row: &[Value<'_>]) {
    if let Err(e) = b.append_row(row) {
        unreachable!("demo generator built a bad {} row: {e}", b.table().name());
    }
}

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
    let mut g = Generator::new(params);
    g.run_steps(|_, _| Ok::<(), std::convert::Infallible>(())).unwrap_or_else(|never| match never {});
    g.t.into_dataset()
}

/// Generates the demo CRM, sending the rows of each table of `streams` (one per table of
/// [`stream::STREAMED`]) in time order as they are made; returns every other table.
///
/// # Errors
/// The writer stopped taking rows, or the generator made them out of order (a bug).
fn generate_streaming(params: &DemoParams, mut streams: Vec<stream::SortedOut>) -> Result<Dataset, stream::StreamError> {
    let mut g = Generator::new(params);
    // After a day, no later day makes a row dated before that day's midnight; one day of
    // margin on top costs a day of rows held.
    g.run_steps(|g, day| {
        let until = g.local(day, 0);
        streams.iter_mut().try_for_each(|out| out.flush(g.t.builder(out.table()).finish(), until))
    })?;
    let mut dataset = g.t.into_dataset();
    for out in streams {
        let table = out.table();
        let rest = dataset.tables.remove(&table).unwrap_or_default();
        let rest = arrow::compute::concat_batches(&table.schema(), &rest)?;
        out.finish(rest)?;
    }
    Ok(dataset)
}

impl Generator {
    fn new(params: &DemoParams) -> Generator {
        let as_of_local = params.as_of.with_timezone(&params.timezone).date_naive();
        Generator {
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
        }
    }

    /// Every step in the order of the random draws, calling `after_day` after each day.
    fn run_steps<E>(&mut self, mut after_day: impl FnMut(&mut Generator, NaiveDate) -> Result<(), E>) -> Result<(), E> {
        self.reference_tables();
        self.staff();
        self.existing_clients();
        let mut day = self.first_day;
        while day <= self.last_day {
            self.leads_of_day(day);
            self.calls_of_day(day);
            after_day(self, day)?;
            day += Duration::days(1);
        }
        self.inputs();
        Ok(())
    }
}

impl Generator {
    fn next_id(&mut self, c: Counter) -> String {
        let slot = &mut self.counters[c as usize];
        *slot += 1;
        slot.to_string()
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
        // The big time-ordered tables go to the writer as they are made; the others come
        // when the generator is done.
        let (outs, sorted): (Vec<_>, Vec<_>) = stream::STREAMED
            .iter()
            .map(|table| {
                let (out, rows) = stream::sorted_channel(*table);
                (out, (*table, rows))
            })
            .unzip();
        let generator = tokio::task::spawn_blocking(move || generate_streaming(&params, outs));
        let rest = async move {
            match generator.await {
                Ok(Ok(dataset)) => Ok(dataset),
                Ok(Err(e)) => Err(crate::snapshot::SnapshotError::Source(e.to_string())),
                Err(e) => Err(crate::snapshot::SnapshotError::Source(format!("the demo generator failed: {e}"))),
            }
        };
        Ok(super::Pull {
            dataset: Dataset::default(),
            streamed: Some(super::Streamed { sorted, rest: Box::pin(rest) }),
            taken_at: self.as_of.unwrap_or(now),
            source_label: format!("demo (seed {}, scale {})", self.seed, self.scale),
            cursors: Default::default(),
            sync: None,
        })
    }
}

#[cfg(test)]
mod tests;
