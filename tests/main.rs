#![allow(unreachable_pub, clippy::unwrap_used)]
//! The one integration-test binary: the server in-process on port 0, real Flight SQL
//! clients, snapshots on disk, file imports.

mod amocrm;
mod bitrix24;
mod cli;
mod common;
mod files;
mod fleet;
mod flight_sql;
mod flight_sql_clients;
mod kpi;
mod kpi_coverage;
mod kpi_fixture;
mod limits;
mod model;
mod pg_compat;
mod pg_result_cache;
mod scheduler;
mod security;
mod snapshot;
mod udfs;
