//! The PostgreSQL wire front end, for Grafana's PostgreSQL datasource, Metabase, Power BI,
//! DBeaver and psql.
//!
//! The protocol's messages, the `pg_catalog` emulation (psql `\dt`, `\d`; the catalog queries
//! BI tools send on connect) and the Arrow → PostgreSQL encoding come from `pgwire` and
//! `datafusion-postgres`. This module owns what a shared, multi-tenant server must decide
//! itself:
//!
//! - [`connection`]: the accept loop (a cap on open connections, refused with `53300`) and
//!   each connection's message loop: a login deadline, an idle timeout, the connection
//!   closed after every `FATAL`, and a query that overran its deadline dropped with `57014`
//!   even when the client stopped reading.
//! - [`login`]: password authentication against the `[[users]]` of the config; the login
//!   (user, tenants, database) is kept in the connection's own state, never in the startup
//!   parameters a client sends, and parameters in the server's namespace are refused.
//! - [`statements`]: every statement, simple or extended, through the same checks as Flight
//!   SQL: text limits before parsing, the read-only check on the planned statement
//!   (`EXPLAIN` included), one slot, deadline and result caps per query.
//! - [`settings`]: the client settings a connection may `SET`, `RESET` and `SHOW` (answered
//!   per connection, never as engine options), cursors under the same limits, and the
//!   statement filter.
//! - [`result_cache`]: the server's one result cache, shared with Flight SQL, answering
//!   repeated queries (Grafana's panels) without running them; its key adds what a
//!   connection plans with (its tenant, `search_path`, `TimeZone`) to Flight SQL's rules.

mod catalog_overlay;
mod coercion;
mod connection;
mod information_schema;
mod copy;
mod errors;
mod login;
mod pg_functions;
mod parser;
mod result_cache;
mod rewrite;
mod search_path;
mod server_info;
mod settings;
mod statements;
mod time_zone;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler as _;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use salespulse_config::config::Limits;
use salespulse_config::auth::Authenticator;
use crate::server::cache::ResultCache;
use crate::server::limits::QueryGate;
use crate::server::query_stats::QueryStats;

pub use connection::serve_postgres;
use errors::user_error;

/// The PostgreSQL server's handlers, shared by every connection.
pub struct PostgresFrontend {
    shared: Arc<Shared>,
    /// Refuse connections without TLS (a certificate is configured).
    require_tls: bool,
}

impl Debug for PostgresFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFrontend").field("require_tls", &self.require_tls).finish_non_exhaustive()
    }
}

/// What every connection of a front end shares.
struct Shared {
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    stats: Arc<QueryStats>,
    gate: Arc<QueryGate>,
    /// The server's result cache, shared with Flight SQL.
    cache: Arc<ResultCache>,
    parameters: DefaultServerParameterProvider,
    /// Sessions by (tenant, allowed tenants, user), each with the snapshots it was built on.
    sessions: Mutex<statements::SessionCache>,
    /// datafusion-postgres's statement parser (its rewriting rules are built once).
    sql_parser: Arc<datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser>,
    /// A parser over an empty session, for what does not depend on the session (parameter
    /// and result types of an already planned statement).
    template: Arc<datafusion_postgres::Parser>,
}

impl Shared {
    fn limits(&self) -> &Limits {
        self.gate.limits()
    }
}

impl PostgresFrontend {
    pub fn new(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize) -> PostgresFrontend {
        Self::with_stats(catalog, auth, max_sql_bytes, Arc::new(QueryStats::default()))
    }

    /// A front end that records every query in `stats` (to the first response: rows stream
    /// after), with no result cache.
    pub fn with_stats(catalog: Arc<Catalog>, auth: Arc<Authenticator>, max_sql_bytes: usize, stats: Arc<QueryStats>) -> PostgresFrontend {
        let gate = Arc::new(QueryGate::new(Limits { max_sql_bytes, ..Default::default() }));
        Self::with_gate(catalog, auth, stats, gate, Arc::new(ResultCache::new(0)))
    }

    /// A front end whose queries run under `gate`'s slots and limits and are answered from
    /// `cache` when they can be (both shared with Flight SQL), recorded in `stats` and the
    /// audit log.
    pub fn with_gate(catalog: Arc<Catalog>, auth: Arc<Authenticator>, stats: Arc<QueryStats>, gate: Arc<QueryGate>, cache: Arc<ResultCache>) -> PostgresFrontend {
        let template = datafusion_postgres::DfSessionService::new_with_hooks(Arc::new(datafusion::prelude::SessionContext::new()), Vec::new()).query_parser();
        let shared = Shared {
            catalog,
            auth,
            stats,
            gate,
            cache,
            parameters: server_info::startup_parameters(),
            sessions: Mutex::new(HashMap::new()),
            sql_parser: Arc::new(datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser::new()),
            template,
        };
        PostgresFrontend { shared: Arc::new(shared), require_tls: false }
    }

    /// The same front end refusing every connection that did not negotiate TLS (what
    /// [`serve_postgres`] makes of it when a certificate is configured): passwords and
    /// results never travel in clear text, whatever `sslmode` a client picks.
    #[must_use]
    pub fn requiring_tls(self) -> PostgresFrontend {
        PostgresFrontend { require_tls: true, ..self }
    }

    /// The handlers of one new connection: its login state is its own.
    fn connection(&self, overrun: CancellationToken) -> connection::Handlers {
        let login = Arc::new(std::sync::OnceLock::new());
        let startup = Arc::new(login::Startup::new(Arc::clone(&self.shared), Arc::clone(&login), self.require_tls));
        let queries = statements::Queries::new(Arc::clone(&self.shared), login, overrun);
        connection::Handlers { startup, queries }
    }
}

