//! salespulse: SQL over your CRM.
//!
//! The data flows one way, one module per stage:
//!
//! ```text
//!  CRM API / files / demo generator
//!         │  connectors/   one module per source
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
//! `refresh` drives connectors → snapshot → catalog swap; `scheduler` runs it on each
//! tenant's schedule while serving; `config` (the `salespulse-config` crate, with `server::auth`
//! and the ticket format) reads the TOML file.

pub mod catalog;
pub mod connectors;
pub mod history;
pub mod model;
pub mod refresh;
pub mod scheduler;
pub mod server;
pub mod snapshot;
