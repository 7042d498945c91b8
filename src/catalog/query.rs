//! Turns SQL text into a read-only, client-safe DataFrame.
//!
//! 1. Refuse SQL longer than the configured limit before parsing it.
//! 2. Plan it; refuse DDL, DML and statements (`SET`, transactions): salespulse is read-only.
//! 3. Bind the parameters of a prepared statement, if any.
//! 4. Cast the output to types every BI client reads: view and large strings to `Utf8`,
//!    view and large binaries to `Binary`, dictionaries to their values, timestamps to
//!    `Timestamp(µs, UTC)`, `Float16/32` to `Float64`. The Grafana profile goes further, to
//!    what the Grafana Flight SQL plugin renders (CLIENTS.md §1.3): timestamps and dates to
//!    `Timestamp(ns, UTC)`, decimals to `Float64`, and other types it drops to `Utf8`.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, LogicalPlan, cast};
use datafusion::prelude::{DataFrame, SessionContext};

/// Why a query was refused or failed to plan. The message is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the query is {bytes} bytes long; the limit is {max} bytes (limits.max_sql_bytes)")]
    TooLong { bytes: usize, max: usize },
    #[error("salespulse is read-only: {what} is not allowed; run SELECT queries only")]
    ReadOnly { what: String },
    #[error("{0}")]
    Plan(String),
    /// Over the per-query memory pool (`limits.query_memory`).
    #[error("{0}")]
    Memory(String),
    #[error("{0}")]
    Execution(String),
}

impl QueryError {
    /// Wraps a DataFusion error in the variant for its kind, with the message cleaned up.
    pub fn from_datafusion(e: DataFusionError, hint: Option<String>) -> QueryError {
        let message = e.to_string();
        let mut text = message.trim().to_string();
        if text.contains("not found")
            && text.contains("table")
            && let Some(h) = hint
        {
            text = format!("{text} ({h})");
        }
        if let DataFusionError::ResourcesExhausted(why) = e.find_root() {
            return QueryError::Memory(why.clone());
        }
        match e.find_root() {
            DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => {
                QueryError::Plan(text)
            }
            _ => QueryError::Execution(text),
        }
    }
}

pub use salespulse_input::handle::OutputProfile;

/// Plans a read-only query with client-safe output types.
///
/// # Errors
/// See [`QueryError`].
pub async fn plan_query(ctx: &SessionContext, sql: &str, max_sql_bytes: usize, hint: impl Fn() -> Option<String>) -> Result<DataFrame, QueryError> {
    plan_query_with(ctx, sql, max_sql_bytes, &[], OutputProfile::Standard, hint).await
}

/// [`plan_query`] with positional parameters (`$1`, `$2`, … or `?`) and an output profile.
///
/// # Errors
/// See [`QueryError`]; a parameter count that does not match the query is a planning error.
pub async fn plan_query_with(
    ctx: &SessionContext,
    sql: &str,
    max_sql_bytes: usize,
    params: &[ScalarValue],
    profile: OutputProfile,
    hint: impl Fn() -> Option<String>,
) -> Result<DataFrame, QueryError> {
    if sql.len() > max_sql_bytes {
        return Err(QueryError::TooLong { bytes: sql.len(), max: max_sql_bytes });
    }
    let sql = number_question_marks(sql);
    let plan = ctx
        .state()
        .create_logical_plan(&sql)
        .await
        .map_err(|e| read_only_or(e, &hint))?;
    if let Some(what) = forbidden(&plan) {
        return Err(QueryError::ReadOnly { what });
    }
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| QueryError::ReadOnly { what: e.strip_backtrace() })?;
    let mut df = ctx.execute_logical_plan(plan).await.map_err(|e| QueryError::from_datafusion(e, hint()))?;
    if !params.is_empty() {
        df = df
            .with_param_values(ParamValues::List(params.iter().cloned().map(Into::into).collect()))
            .map_err(|e| QueryError::from_datafusion(e, None))?;
    }
    normalize_output(df, profile).map_err(|e| QueryError::from_datafusion(e, None))
}

/// The parameters a planned query expects, in order, with the types DataFusion inferred
/// (`None` where it could not tell).
///
/// # Errors
/// The plan holds parameters of conflicting types.
pub fn parameter_types(df: &DataFrame) -> Result<Vec<(String, Option<DataType>)>, QueryError> {
    let types = df.logical_plan().get_parameter_types().map_err(|e| QueryError::from_datafusion(e, None))?;
    let mut ordered: Vec<(String, Option<DataType>)> = types.into_iter().collect();
    ordered.sort_by_key(|(id, _)| id.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX));
    Ok(ordered)
}

/// Turns `?` placeholders (JDBC, ODBC, ADBC and flightsql-dbapi style) into `$1`, `$2`, …
/// in order, as DataFusion numbers parameters; `?` inside strings, identifiers and comments
/// stays as it is.
fn number_question_marks(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('?') {
        return std::borrow::Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        // Let the planner report the syntax error on the original text.
        return std::borrow::Cow::Borrowed(sql);
    };
    if !tokens.iter().any(|t| matches!(t, Token::Placeholder(p) if p == "?")) {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut n = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for token in tokens {
        match token {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            other => out.push_str(&other.to_string()),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn read_only_or(e: DataFusionError, hint: &impl Fn() -> Option<String>) -> QueryError {
    let text = e.to_string();
    // Statements DataFusion cannot even plan, such as CREATE TABLE with a location.
    if text.contains("Unsupported SQL statement") || text.contains("not supported") && text.to_lowercase().contains("statement") {
        return QueryError::ReadOnly { what: text };
    }
    QueryError::from_datafusion(e, hint())
}

fn forbidden(plan: &LogicalPlan) -> Option<String> {
    let what = match plan {
        LogicalPlan::Ddl(ddl) => format!("{} (DDL)", ddl.name()),
        LogicalPlan::Dml(dml) => format!("{} (DML)", dml.op),
        LogicalPlan::Copy(_) => "COPY".into(),
        LogicalPlan::Statement(s) => format!("{} (statement)", s.name()),
        _ => return None,
    };
    Some(what)
}

/// The type a client receives for a column of type `t`, or `None` when `t` is fine.
pub fn client_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => Some(DataType::Utf8),
        DataType::BinaryView | DataType::LargeBinary => Some(DataType::Binary),
        DataType::Dictionary(_, value) => Some(client_type(value).unwrap_or_else(|| value.as_ref().clone())),
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond || tz.as_deref() != Some("UTC") => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        }
        DataType::Float16 | DataType::Float32 => Some(DataType::Float64),
        DataType::Date64 => Some(DataType::Date32),
        _ => None,
    }
}

/// The type a Grafana Flight SQL plugin receives for a column of type `t`, or `None` when it
/// renders `t` as it is.
pub fn grafana_type(t: &DataType) -> Option<DataType> {
    let target = match t {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => DataType::Float64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::Dictionary(_, value) => return grafana_type(value).or_else(|| Some(value.as_ref().clone())),
        DataType::Utf8
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float64
        | DataType::Duration(_)
        | DataType::Null => return None,
        // Everything else (large and view strings, binaries, times, intervals, lists,
        // structs) the plugin drops silently; as text it at least shows.
        _ => DataType::Utf8,
    };
    Some(target)
}

fn profile_type(t: &DataType, profile: OutputProfile) -> Option<DataType> {
    match profile {
        OutputProfile::Standard => client_type(t),
        OutputProfile::Grafana => grafana_type(t),
    }
}

fn normalize_output(df: DataFrame, profile: OutputProfile) -> datafusion::error::Result<DataFrame> {
    let schema = df.schema().clone();
    if !schema.fields().iter().any(|f| profile_type(f.data_type(), profile).is_some()) {
        return Ok(df);
    }
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match profile_type(field.data_type(), profile) {
                Some(t) => cast(column, t).alias_qualified(qualifier.cloned(), field.name()),
                None => column,
            }
        })
        .collect();
    df.select(exprs)
}

/// `batch` with the advertised schema: the engine sometimes produces a wider type than its
/// plan says (a decimal's precision, say), so differing columns are cast; nullability and
/// names come from the advertised schema (CLIENTS.md §6 item 7).
///
/// # Errors
/// A column cannot be cast, or holds nulls where the advertised field has none.
pub fn conform_batch(advertised: &arrow::datatypes::SchemaRef, batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(advertised.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() { Ok(std::sync::Arc::clone(column)) } else { arrow::compute::cast(column, field.data_type()) }
        })
        .collect::<Result<Vec<_>, _>>()?;
    arrow::array::RecordBatch::try_new(std::sync::Arc::clone(advertised), columns)
}

#[cfg(test)]
mod tests {
    use super::number_question_marks;

    #[test]
    fn question_marks_become_numbered_parameters() {
        assert_eq!(number_question_marks("SELECT a FROM t WHERE b > ? AND c = ?"), "SELECT a FROM t WHERE b > $1 AND c = $2");
        assert_eq!(number_question_marks("SELECT '?' AS q, \"x?\" FROM t -- why?\nWHERE a = ?"), "SELECT '?' AS q, \"x?\" FROM t -- why?\nWHERE a = $1");
        assert_eq!(number_question_marks("SELECT 1"), "SELECT 1");
    }
}
