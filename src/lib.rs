//! salespulse: SQL over your CRM.
//!
//! The data flows one way, one module per stage:
//!
//! ```text
//!  CRM API / files / demo generator
//!         │  connectors/   the Connector trait, one module per source, the polite HTTP client
//!         ▼
//!  canonical rows           model/     docs/schema.md as Arrow schemas + builders
//!         ▼
//!  Parquet snapshot         snapshot/  immutable folders + an atomic CURRENT pointer
//!         ▼
//!  DataFusion catalog       catalog/   per tenant: crm, kpi, system; UDFs; hot swap
//!         ▼
//!  protocol front ends      server/    Flight SQL, PostgreSQL, HTTP (health, metrics)
//! ```
//!
//! Beside the stages:
//! - [`refresh`] drives connectors → snapshot → catalog swap, and [`scheduler`] runs it on
//!   each tenant's schedule while serving;
//! - [`history`] keeps what this process did (refresh attempts, queries): a leaf that the
//!   scheduler and the front ends write and the `system` schema, `/health` and `/metrics`
//!   read;
//! - [`follow`] notices snapshots other processes commit (a cron `refresh`, a fleet's
//!   refreshers) and swaps them in;
//! - [`memory`] gives freed memory back to the OS at once while a KPI build runs, and sets
//!   how long idle blocking threads live.
//!
//! Two crates of the workspace sit below this one, each imported by its own path:
//! `salespulse_udfs` (the SQL functions: working time, successful calls, local dates) and
//! `salespulse_config` (the TOML configuration, users and tokens, ticket format, parsed
//! without DataFusion so the fuzz targets build fast). docs/design.md explains the
//! decisions; the README's Development section maps every file.

pub mod catalog;
pub mod connectors;
pub mod follow;
pub mod history;
pub mod memory;
pub mod model;
pub mod refresh;
pub mod scheduler;
pub mod server;
pub mod snapshot;
