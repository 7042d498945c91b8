//! The extended protocol's parser: Parse messages are planned against the connection's own
//! session (its tenant, search_path and settings), under the text limits, and checked
//! read-only on the planned statement.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler;
use datafusion_postgres::pgwire::api::results::FieldInfo;
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::{ClientInfo, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::Parser;

use super::coercion;
use super::copy;
use super::rewrite;
use super::errors::{parse_error, query_error, user_error};
use super::statements::{DfStatement, Queries};
use crate::catalog::{QueryError, check_read_only, planning_error};

/// Parses extended-protocol statements against the connection's own session, under the
/// text limits and the read-only check.
pub(in crate::server::postgres) struct TenantParser {
    /// A parser over an empty session, for what does not depend on the session (parameter
    /// and result types of an already planned statement).
    pub(super) template: Arc<Parser>,
    pub(super) queries: std::sync::Weak<Queries>,
}

#[async_trait]
impl QueryParser for TenantParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let queries = self.queries.upgrade().ok_or_else(|| user_error("FATAL", "57P01", "the server is shutting down".into()))?;
        queries.login()?;
        let audit = queries.audit(sql);
        let checked = async {
            queries.text_limits().check(sql).map_err(|e| query_error(&e))?;
            // One statement per Parse, as PostgreSQL requires.
            let protected = rewrite::protect_subqueries(sql);
            let mut statements = queries.sql_parser.parse(protected.as_deref().unwrap_or(sql)).map_err(|e| parse_error(sql, e))?;
            if statements.len() > 1 {
                return Err(user_error("ERROR", "42601", "cannot insert multiple commands into a prepared statement".into()));
            }
            // `COPY … TO STDOUT` (ConnectorX prepares it): its query planned as any other;
            // described as returning no rows, as PostgreSQL does.
            if let Some(export) = statements.first().and_then(copy::export_of) {
                let export = export?;
                let slot = queries.admit().await?;
                let ctx = queries.planning_context(client)?;
                let plan = queries.plan(&ctx, copy::statement_of(&export), &slot).await?;
                return Ok(Some((sql.to_string(), Some((statements.remove(0), plan)))));
            }
            // Planning takes a slot like running does, for the time it plans.
            let _slot = queries.admit().await?;
            let ctx = queries.planning_context(client)?;
            let service = queries.service(ctx)?;
            let timeout = queries.shared.limits().query_timeout;
            // The text datafusion-postgres parses again, with this module's rewrites applied.
            let sql = match statements.pop() {
                Some(statement) => {
                    let rewritten = rewrite::rewrite(statement.clone());
                    if rewritten == statement { protected.unwrap_or_else(|| sql.to_string()) } else { rewritten.to_string() }
                }
                None => sql.to_string(),
            };
            let parsed = tokio::time::timeout(timeout, service.query_parser().parse_sql(client, &sql, types))
                .await
                .map_err(|_| user_error("ERROR", "57014", format!("planning took longer than {} s (limits.query_timeout_seconds)", timeout.as_secs())))?
                .map_err(|e| match e {
                    PgWireError::ApiError(inner) => match inner.downcast::<datafusion::error::DataFusionError>() {
                        Ok(df) => query_error(&planning_error(*df, &|| queries.missing_hint())),
                        Err(other) => query_error(&QueryError::Plan(other.to_string())),
                    },
                    other => other,
                })?;
            if let Some((_, Some((_, plan)))) = &parsed {
                check_read_only(plan).map_err(|e| query_error(&e))?;
            }
            let parsed = match parsed {
                Some((sql, Some((statement, plan)))) => {
                    let plan = coercion::type_limit_parameters(plan)
                        .and_then(|plan| coercion::client_parameter_types(plan, types))
                        .map_err(|e| query_error(&QueryError::Plan(e.to_string())))?;
                    Some((sql, Some((statement, plan))))
                }
                other => other,
            };
            Ok(parsed)
        }
        .await;
        checked.inspect_err(|e| queries.refused(&audit, e))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.template.get_parameter_types(stmt)
    }

    fn get_result_schema(&self, stmt: &Self::Statement, column_format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        if let (_, Some((Statement::Copy { .. }, _))) = stmt {
            return Ok(Vec::new());
        }
        self.template.get_result_schema(stmt, column_format)
    }
}
