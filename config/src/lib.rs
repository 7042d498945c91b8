//! What salespulse reads from outside before DataFusion sees it, parsed without DataFusion:
//!
//! - [`config`]: the TOML configuration, validated into [`config::Config`] with one clear
//!   message per mistake (and [`schedule`], the tenants' cron schedules it parses);
//! - [`auth`]: users, passwords, bearer tokens, failed-login throttling and the HMAC seal;
//! - [`handle`]: the signed statement tickets and prepared-statement handles Flight SQL
//!   clients send back;
//! - [`redact`]: secrets (webhook URLs, tokens) taken out of messages before anyone sees
//!   them;
//! - [`pg_login`]: the PostgreSQL front end's decisions before login (startup parameters).
//!
//! A crate of its own so that the fuzz targets (`fuzz/`) build it with coverage
//! instrumentation in a couple of minutes, instead of rebuilding DataFusion.

pub mod auth;
pub mod config;
pub mod handle;
pub mod pg_login;
pub mod redact;
pub mod schedule;
