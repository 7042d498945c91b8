//! PostgreSQL's typing of a quoted literal by what it is compared with, where DataFusion's
//! differs: `ix.indisprimary = 'f'` (SQLAlchemy's index reflection, Superset's dataset
//! creation) compares a boolean with `'f'`, which PostgreSQL reads as `false` and DataFusion
//! refuses ("Cannot infer common argument type for comparison operation Boolean = Utf8").
//!
//! An analyzer rule, run before DataFusion's type coercion on every plan of a PostgreSQL
//! session, turns a text literal compared with a boolean into the boolean PostgreSQL reads
//! (`t`, `true`, `yes`, `on`, `1` and their opposites, any case); any other text is left for
//! the usual error.
//!
//! Two more differences are settled on the plan:
//!
//! - `LIKE … ESCAPE '/'` (SQLAlchemy's schema listing): DataFusion runs only the backslash
//!   escape, so an optimizer rule, run after parameters are bound and constants folded,
//!   rewrites a constant pattern to it;
//! - `LIMIT $1` / `OFFSET $1`: DataFusion leaves such a parameter untyped, so clients that
//!   ask its type (asyncpg, pg8000, node-postgres) bind text and the query fails; it is
//!   `bigint`, as PostgreSQL describes it;
//! - a parameter the client declared as an integer where DataFusion inferred a decimal
//!   (`amount > $1` from psycopg 3) keeps the client's type.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::Type;

/// Puts the boolean rule ahead of DataFusion's analyzer rules on `ctx`, and the escape rule
/// after its optimizer rules.
pub(super) fn install(ctx: &SessionContext) {
    let state = ctx.state();
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![Arc::new(BooleanLiterals)];
    rules.extend(state.analyzer().rules.iter().cloned());
    let state = SessionStateBuilder::new_from_existing(state).with_analyzer_rules(rules).build();
    *ctx.state_ref().write() = state;
    ctx.add_optimizer_rule(Arc::new(LikeEscape));
}

/// `plan` with its `LIMIT`/`OFFSET` parameters typed `bigint`.
pub(super) fn type_limit_parameters(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Limit(mut limit) = node else { return Ok(Transformed::no(node)) };
        let mut typed = false;
        for expr in [&mut limit.skip, &mut limit.fetch].into_iter().flatten() {
            if let Expr::Placeholder(placeholder) = expr.as_mut()
                && placeholder.field.is_none()
            {
                placeholder.field = Some(Arc::new(Field::new(placeholder.id.clone(), DataType::Int64, true)));
                typed = true;
            }
        }
        Ok(Transformed::new_transformed(LogicalPlan::Limit(limit), typed))
    })
    .map(|t| t.data)
}

/// `plan` with the parameters a client declared as integers or floats (psycopg 3 binds a
/// Python `int` as `int8`) kept as such where DataFusion inferred a decimal from the column
/// they meet: PostgreSQL takes the client's declared type, and DataFusion compares an integer
/// with a decimal itself, while the parameter decoder has no integer-to-decimal conversion.
pub(super) fn client_parameter_types(plan: LogicalPlan, declared: &[Option<Type>]) -> Result<LogicalPlan> {
    let declared_type = |id: &str| -> Option<DataType> {
        let index: usize = id.strip_prefix('$')?.parse().ok()?;
        match declared.get(index.checked_sub(1)?)?.as_ref()? {
            t if *t == Type::INT2 || *t == Type::INT4 || *t == Type::INT8 => Some(DataType::Int64),
            t if *t == Type::FLOAT4 || *t == Type::FLOAT8 => Some(DataType::Float64),
            _ => None,
        }
    };
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| {
                let Expr::Placeholder(placeholder) = &e else { return Ok(Transformed::no(e)) };
                let inferred_decimal = placeholder.field.as_ref().is_some_and(|f| matches!(f.data_type(), DataType::Decimal128(..) | DataType::Decimal256(..)));
                match declared_type(&placeholder.id) {
                    Some(to) if inferred_decimal => {
                        let mut placeholder = placeholder.clone();
                        placeholder.field = Some(Arc::new(Field::new(placeholder.id.clone(), to, true)));
                        Ok(Transformed::yes(Expr::Placeholder(placeholder)))
                    }
                    _ => Ok(Transformed::no(e)),
                }
            })
        })
    })
    .map(|t| t.data)
}

/// A LIKE pattern with escape character `escape` rewritten for the backslash escape.
fn with_backslash_escape(pattern: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push('\\');
            out.push(chars.next()?);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[derive(Debug)]
struct LikeEscape;

impl OptimizerRule for LikeEscape {
    fn name(&self) -> &str {
        "salespulse_postgresql_like_escape"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.map_expressions(|e| {
            e.transform_up(|e| {
                let Expr::Like(like) = &e else { return Ok(Transformed::no(e)) };
                let Some(escape) = like.escape_char.filter(|c| *c != '\\') else { return Ok(Transformed::no(e)) };
                let Some(pattern) = text_literal(&like.pattern).and_then(|p| with_backslash_escape(p, escape)) else { return Ok(Transformed::no(e)) };
                let mut like = like.clone();
                like.pattern = Box::new(Expr::Literal(ScalarValue::Utf8(Some(pattern)), None));
                like.escape_char = None;
                Ok(Transformed::yes(Expr::Like(like)))
            })
        })
    }
}

/// PostgreSQL's reading of a boolean literal.
fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => Some(s),
        _ => None,
    }
}

#[derive(Debug)]
struct BooleanLiterals;

impl BooleanLiterals {
    fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        expr.transform_up(|e| {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
            if !matches!(op, Operator::Eq | Operator::NotEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom) {
                return Ok(Transformed::no(e));
            }
            let is_boolean = |side: &Expr| side.get_type(schema).is_ok_and(|t| t == DataType::Boolean);
            let replaced = match (text_literal(left).and_then(boolean), text_literal(right).and_then(boolean)) {
                (Some(b), None) if is_boolean(right) => Some(Expr::BinaryExpr(BinaryExpr::new(Box::new(Expr::Literal(ScalarValue::Boolean(Some(b)), None)), *op, right.clone()))),
                (None, Some(b)) if is_boolean(left) => Some(Expr::BinaryExpr(BinaryExpr::new(left.clone(), *op, Box::new(Expr::Literal(ScalarValue::Boolean(Some(b)), None))))),
                _ => None,
            };
            Ok(match replaced {
                Some(new) => Transformed::yes(new),
                None => Transformed::no(e),
            })
        })
    }
}

impl AnalyzerRule for BooleanLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let mut schema = DFSchema::empty();
            for input in node.inputs() {
                schema.merge(input.schema());
            }
            if node.inputs().is_empty() {
                schema.merge(node.schema());
            }
            node.map_expressions(|e| Self::rewrite(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "salespulse_postgresql_boolean_literals"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_boolean_spellings() {
        assert_eq!(boolean("f"), Some(false));
        assert_eq!(boolean("TRUE"), Some(true));
        assert_eq!(boolean("maybe"), None);
        assert_eq!(with_backslash_escape("pg/_%", '/').as_deref(), Some("pg\\_%"));
    }
}
