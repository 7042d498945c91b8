//! Turns SQL text into a read-only, client-safe DataFrame.
//!
//! 1. Refuse SQL longer than the configured limit before parsing it.
//! 2. Plan it; refuse DDL, DML and statements (`SET`, transactions): salespulse is read-only.
//! 3. Bind the parameters of a prepared statement, if any.
//! 4. Cast the output to types every BI client reads: view and large strings to `Utf8`,
//!    view and large binaries to `Binary`, dictionaries to their values, timestamps to
//!    `Timestamp(µs, UTC)`, `Float16/32` to `Float64`. The Grafana profile goes further, to
//!    what the Grafana Flight SQL plugin renders (docs/clients.md § Types the Grafana
//!    plugin renders): timestamps and dates to `Timestamp(ns, UTC)`, decimals to `Float64`,
//!    and other types it drops to `Utf8`.

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
    #[error("the query's expressions nest about {depth} levels deep; the limit is {max} (limits.max_expression_depth): write long chains of + or AND/OR as IN lists, CASE or a join")]
    TooDeep { depth: usize, max: usize },
    #[error("the query holds {count} statements; the limit is {max} per query (limits.max_statements_per_query)")]
    TooManyStatements { count: usize, max: usize },
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
            // An operator that would spill (a sort) reports its own words instead of the
            // pool's, which name the limit.
            if why.contains("limits.query_memory") {
                return QueryError::Memory(why.clone());
            }
            return QueryError::Memory(format!(
                "the query needs more memory than the per-query limit (limits.query_memory) allows ({why}); filter with WHERE, aggregate before joining, or add LIMIT"
            ));
        }
        match e.find_root() {
            DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => {
                QueryError::Plan(text)
            }
            _ => QueryError::Execution(text),
        }
    }
}

use salespulse_config::handle::OutputProfile;

/// What a statement's text may be before it is parsed: its length and how deep its
/// expressions nest. A left-deep chain such as `1+1+…+1` parses into a tree as deep as the
/// chain is long, and the engine walks (and drops) such trees recursively, so a long one
/// overflows a worker's stack and aborts the process; it is refused here, from its tokens,
/// without building the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

impl TextLimits {
    /// The limits of `[limits]`.
    pub fn of(limits: &salespulse_config::config::Limits) -> TextLimits {
        TextLimits { max_bytes: limits.max_sql_bytes, max_depth: limits.max_expression_depth }
    }

    /// Refuses text over either limit.
    ///
    /// # Errors
    /// [`QueryError::TooLong`] or [`QueryError::TooDeep`].
    pub fn check(&self, sql: &str) -> Result<(), QueryError> {
        if sql.len() > self.max_bytes {
            return Err(QueryError::TooLong { bytes: sql.len(), max: self.max_bytes });
        }
        let depth = expression_depth(sql);
        if depth > self.max_depth {
            return Err(QueryError::TooDeep { depth, max: self.max_depth });
        }
        Ok(())
    }
}

/// An upper bound of how deep the expressions of `sql` nest once parsed, from its tokens in
/// one pass, without recursion. Each bracket (or `CASE … END`) is a level; a level's
/// expressions run between commas and clause keywords. Whatever the precedence and
/// associativity, a tree over an expression's operands with `k` operators is at most `k`
/// deeper than its deepest operand, so an expression counts its operators plus its deepest
/// operand, and a closed level is one deeper than its deepest expression. Text that does not
/// tokenize counts its brackets only (the parser then refuses it anyway). A property test
/// checks the bound against random expression trees.
pub fn expression_depth(sql: &str) -> usize {
    use datafusion::sql::sqlparser::dialect::{GenericDialect, PostgreSqlDialect};
    // The PostgreSQL front end parses as PostgreSQL, Flight SQL and cursors with DataFusion's
    // generic dialect; they tokenize some text differently (a backtick is a quote in one, a
    // character in the other), so the deeper reading counts.
    depth_in(sql, &PostgreSqlDialect {}).max(depth_in(sql, &GenericDialect {}))
}

fn depth_in(sql: &str, dialect: &dyn datafusion::sql::sqlparser::dialect::Dialect) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        // The parser refuses this text in this dialect anyway.
        let (mut depth, mut max) = (0usize, 0usize);
        for c in sql.chars() {
            match c {
                '(' | '[' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        return max;
    };
    /// One open level: the operators and deepest operand of its current expression, and
    /// the deepest of its finished expressions.
    #[derive(Default)]
    struct Level {
        operators: usize,
        operand: usize,
        finished: usize,
    }
    impl Level {
        fn expression(&self) -> usize {
            self.operators + self.operand.max(1)
        }
        fn end_expression(&mut self) {
            self.finished = self.finished.max(self.expression());
            self.operators = 0;
            self.operand = 0;
        }
        fn depth(&self) -> usize {
            self.finished.max(self.expression()) + 1
        }
    }
    let mut levels: Vec<Level> = vec![Level::default()];
    let close = |levels: &mut Vec<Level>| {
        if levels.len() > 1 {
            let closed = levels.pop().map_or(1, |l| l.depth());
            if let Some(parent) = levels.last_mut() {
                parent.operand = parent.operand.max(closed);
            }
        }
    };
    let operand = |levels: &mut Vec<Level>| {
        if let Some(level) = levels.last_mut() {
            level.operand = level.operand.max(1);
        }
    };
    for token in &tokens {
        match token {
            Token::Whitespace(_) => {}
            Token::LParen => levels.push(Level::default()),
            // A subscript nests what it follows one level deeper (`a[1][1]…` folds into
            // nested calls), so it counts as an operator as well as a level.
            Token::LBracket => {
                if let Some(level) = levels.last_mut() {
                    level.operators += 1;
                }
                levels.push(Level::default());
            }
            Token::Word(w) if w.keyword == Keyword::CASE => levels.push(Level::default()),
            Token::RParen | Token::RBracket => close(&mut levels),
            Token::Word(w) if w.keyword == Keyword::END => close(&mut levels),
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    level.end_expression();
                }
            }
            Token::Word(w)
                if matches!(
                    w.keyword,
                    Keyword::SELECT
                        | Keyword::FROM
                        | Keyword::WHERE
                        | Keyword::GROUP
                        | Keyword::HAVING
                        | Keyword::ORDER
                        | Keyword::LIMIT
                        | Keyword::OFFSET
                        | Keyword::JOIN
                        | Keyword::ON
                        | Keyword::UNION
                        | Keyword::EXCEPT
                        | Keyword::INTERSECT
                        | Keyword::WHEN
                        | Keyword::THEN
                        | Keyword::ELSE
                        | Keyword::WITH
                        | Keyword::BY
                ) =>
            {
                if let Some(level) = levels.last_mut() {
                    level.end_expression();
                }
            }
            // Names and literals are operands.
            Token::Word(w) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => operand(&mut levels),
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::Placeholder(_) => operand(&mut levels),
            // Everything else (every operator and keyword, known to this list or not) may
            // join what precedes it into a deeper tree: counted as an operator.
            _ => {
                if let Some(level) = levels.last_mut() {
                    level.operators += 1;
                }
            }
        }
    }
    while levels.len() > 1 {
        close(&mut levels);
    }
    levels.pop().map_or(1, |l| l.depth())
}

/// Plans a read-only query with client-safe output types.
///
/// # Errors
/// See [`QueryError`].
pub async fn plan_query(ctx: &SessionContext, sql: &str, limits: TextLimits, hint: impl Fn() -> Option<String>) -> Result<DataFrame, QueryError> {
    plan_query_with(ctx, sql, limits, &[], OutputProfile::Standard, hint).await
}

/// [`plan_query`] with positional parameters (`$1`, `$2`, … or `?`) and an output profile.
///
/// # Errors
/// See [`QueryError`]; a parameter count that does not match the query is a planning error.
pub async fn plan_query_with(
    ctx: &SessionContext,
    sql: &str,
    limits: TextLimits,
    params: &[ScalarValue],
    profile: OutputProfile,
    hint: impl Fn() -> Option<String>,
) -> Result<DataFrame, QueryError> {
    limits.check(sql)?;
    let sql = number_question_marks(sql);
    let plan = ctx
        .state()
        .create_logical_plan(&sql)
        .await
        .map_err(|e| read_only_or(e, &hint))?;
    check_read_only(&plan)?;
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
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // Let the planner report the syntax error on the original text.
        return std::borrow::Cow::Borrowed(sql);
    };
    // Only the `?` tokens are replaced, in the original text: re-printing the other tokens
    // would change them (`'O''Brien'` prints back as an unterminated `'O'Brien'`).
    let line_starts: Vec<usize> = std::iter::once(0).chain(sql.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        // Locations are 1-based lines and 1-based columns counted in characters.
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(column).ok()?.checked_sub(1)?;
        sql[start..].char_indices().nth(column).map(|(i, _)| start + i)
    };
    let mut marks = Vec::new();
    for token in &tokens {
        if matches!(&token.token, Token::Placeholder(p) if p == "?") {
            match offset(token.span.start.line, token.span.start.column) {
                Some(at) if sql[at..].starts_with('?') => marks.push(at),
                _ => return std::borrow::Cow::Borrowed(sql),
            }
        }
    }
    if marks.is_empty() {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 4 * marks.len());
    let mut from = 0;
    for (n, at) in marks.into_iter().enumerate() {
        out.push_str(&sql[from..at]);
        out.push_str(&format!("${}", n + 1));
        from = at + 1;
    }
    out.push_str(&sql[from..]);
    std::borrow::Cow::Owned(out)
}

/// A planning error: statements DataFusion cannot plan at all (`COPY` of sqlparser's kind,
/// `CREATE … LOCATION`) are refused as read-only, the rest keep their message.
pub fn planning_error(e: DataFusionError, hint: &impl Fn() -> Option<String>) -> QueryError {
    read_only_or(e, hint)
}

fn read_only_or(e: DataFusionError, hint: &impl Fn() -> Option<String>) -> QueryError {
    let text = e.to_string();
    // Statements DataFusion cannot even plan, such as CREATE TABLE with a location.
    if text.contains("Unsupported SQL statement") || text.contains("not supported") && text.to_lowercase().contains("statement") {
        return QueryError::ReadOnly { what: text };
    }
    QueryError::from_datafusion(e, hint())
}

/// Refuses a plan that writes or changes anything anywhere in its tree: DDL, DML, `COPY`
/// and statements (`SET`, transactions), also inside `EXPLAIN` and `EXPLAIN ANALYZE`
/// (which run their statement) and subqueries. Every path that runs a plan calls this.
///
/// # Errors
/// [`QueryError::ReadOnly`] naming what is not allowed.
pub fn check_read_only(plan: &LogicalPlan) -> Result<(), QueryError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        if let Some(what) = forbidden(node) {
            found = Some(what);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| QueryError::Plan(e.strip_backtrace()))?;
    if let Some(what) = found {
        return Err(QueryError::ReadOnly { what });
    }
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|e| QueryError::ReadOnly { what: e.strip_backtrace() })
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
        // `array_agg(title)` is a list of the engine's `Utf8View`.
        DataType::List(item) => client_type(item.data_type()).map(|t| DataType::List(std::sync::Arc::new(item.as_ref().clone().with_data_type(t)))),
        DataType::Struct(fields) if fields.iter().any(|f| client_type(f.data_type()).is_some()) => Some(DataType::Struct(
            fields.iter().map(|f| std::sync::Arc::new(f.as_ref().clone().with_data_type(client_type(f.data_type()).unwrap_or_else(|| f.data_type().clone())))).collect(),
        )),
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
/// names come from the advertised schema (docs/clients.md § Schemas, tickets and handles, item 1).
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
mod tests;
