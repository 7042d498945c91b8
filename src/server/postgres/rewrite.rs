//! PostgreSQL syntax that catalog queries of real clients use and DataFusion plans
//! differently, rewritten on the parsed statement (after datafusion-postgres's own rules):
//!
//! - a set-returning `_pg_expandarray(array)` in a select list (pgjdbc's `getPrimaryKeys`,
//!   `getIndexInfo`, `getBestRowIdentifier`; Metabase's index sync) becomes
//!   `unnest(_pg_expandarray(array))`: DataFusion expands `unnest` in a projection into rows,
//!   and zips several of them as PostgreSQL 10+ zips set-returning functions;
//! - a field of a composite value, `(expression).field`, becomes
//!   `get_field(expression, 'field')`, which DataFusion plans on structs;
//! - `generate_subscripts(array, dim)` (SQLAlchemy's key queries) becomes
//!   `unnest(generate_series(1, array_length(array, dim)))`;
//! - `pg_get_function_result(p.oid)` of a `pg_proc` row becomes its result type
//!   (`format_type(p.prorettype, NULL)`, `SETOF …` for set-returning functions; pgjdbc's
//!   `getFunctions`);
//! - a scalar subquery over `pg_catalog` tables that is not aggregated (pgjdbc's
//!   `getTypeInfo`: `(SELECT c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid)`) has
//!   its value wrapped in `max()`: DataFusion plans correlated scalar subqueries only when
//!   aggregated, and a catalog lookup by oid finds at most one row;
//! - unnamed select-list values that repeat (`NULL, NULL, NULL` in pgjdbc's
//!   `getProcedures`) get distinct names, which DataFusion requires and PostgreSQL does not;
//! - `to_timestamp(text, 'YYYY-MM-DD HH24:MI:SS.US')` and `to_date(text, 'YYYY-MM-DD')` with
//!   PostgreSQL's template patterns (Superset's PostgreSQL time filters) get the same format
//!   in chrono's notation, which DataFusion's functions read;
//! - `col_description`, `obj_description`, `shobj_description` and `pg_get_serial_sequence`
//!   are NULL (no object here has a comment or a sequence);
//! - `CASE WHEN c THEN (correlated catalog lookup) ELSE NULL END` is NULL, as
//!   datafusion-postgres answers such a lookup on its own (see `guarded_catalog_lookup`);
//! - `CAST(expression AS regclass)` of a computed name becomes the relation's oid, looked up
//!   in `pg_class` by its qualified or bare name;
//! - `to_regtype(name)` and `to_regclass(name)` become lookups of the oid in `pg_type` and
//!   `pg_class` (psycopg 3's hstore probe at SQLAlchemy's first connect).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query,
    SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The text to give datafusion-postgres's parser: `sql` with every subquery that is a whole
/// select-list item put in parentheses, or `None` when there is none (the text is then
/// given as it is, so its fixed rewrites of known client queries still match).
///
/// That parser replaces a correlated subquery in a select list with NULL and puts `LIMIT 1`
/// on an uncorrelated one: `SELECT d.id, (SELECT count(*) FROM calls c WHERE c.deal_id =
/// d.id)` answered NULL for every row. In parentheses DataFusion plans it (an aggregated
/// one) or refuses it with its reason; a silent wrong answer is never given. Subqueries over
/// the catalogs are left to that parser (see `reads_catalog`).
pub(super) fn protect_subqueries(sql: &str) -> Option<String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut protector = Protector { changed: false };
    for statement in &mut statements {
        let _ = statement.visit(&mut protector);
    }
    protector.changed.then(|| statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

struct Protector {
    changed: bool,
}

impl VisitorMut for Protector {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                    && matches!(expr, Expr::Subquery(q) if !reads_catalog(q))
                {
                    let subquery = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = Expr::Nested(Box::new(subquery));
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether a query reads a `pg_catalog` or `information_schema` table. Client catalog
/// queries (psql's `\d`: a column's default, its collation) keep datafusion-postgres's
/// treatment: DataFusion cannot decorrelate those lookups, and NULL is their answer here
/// (no defaults, no collations of their own).
fn reads_catalog(query: &Query) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        let text = name.to_string().to_ascii_lowercase();
        let last = name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).unwrap_or_default();
        if last.starts_with("pg_") || text.starts_with("pg_catalog.") || text.starts_with("information_schema.") {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// The statement with the rewrites applied.
pub(super) fn rewrite(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut Rewriter);
    statement
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) if is_named(function, "_pg_expandarray") => {
                let inner = std::mem::replace(expr, Expr::value(Value::Null));
                *expr = call("unnest", vec![inner]);
            }
            Expr::CompoundFieldAccess { root, access_chain } if !access_chain.is_empty() => {
                let fields: Option<Vec<String>> = access_chain
                    .iter()
                    .map(|access| match access {
                        AccessExpr::Dot(Expr::Identifier(ident)) => Some(ident.value.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(fields) = fields {
                    let mut value = std::mem::replace(root.as_mut(), Expr::value(Value::Null));
                    if let Expr::Nested(inner) = value {
                        value = *inner;
                    }
                    for field in fields {
                        value = call("get_field", vec![value, Expr::value(Value::SingleQuotedString(field))]);
                    }
                    *expr = value;
                }
            }
            // Nothing in salespulse carries a comment: PostgreSQL's answer for an object
            // without one, without evaluating the arguments (a name looked up as a regclass
            // inside them is a subquery DataFusion cannot plan there).
            Expr::Function(function) if ["col_description", "obj_description", "shobj_description", "pg_get_serial_sequence"].iter().any(|n| is_named(function, n)) => {
                if let Some(new) = parse("CAST(NULL AS TEXT)") {
                    *expr = new;
                }
            }
            Expr::Function(function) if is_named(function, "to_regclass") => {
                if let [name] = arguments(function).as_slice()
                    && let Some(new) = relation_lookup(name)
                {
                    *expr = new;
                }
            }
            Expr::Function(function) if is_named(function, "to_regtype") => {
                if let [name] = arguments(function).as_slice()
                    && let Some(new) = parse(&format!("(SELECT max(salespulse_t.oid) FROM pg_catalog.pg_type salespulse_t WHERE salespulse_t.typname = {name})"))
                {
                    *expr = Expr::Nested(Box::new(new));
                }
            }
            Expr::Function(function) if is_named(function, "generate_subscripts") => {
                if let [array, dimension] = arguments(function).as_slice()
                    && let Some(new) = parse(&format!("unnest(generate_series(1, array_length({array}, {dimension})))"))
                {
                    *expr = new;
                }
            }
            Expr::Function(function) if is_named(function, "pg_get_function_result") => {
                if let [Expr::CompoundIdentifier(parts)] = arguments(function).as_slice()
                    && let [alias, column] = parts.as_slice()
                    && column.value.eq_ignore_ascii_case("oid")
                    && let Some(new) = parse(&format!(
                        "CASE WHEN {alias}.proretset THEN 'SETOF ' || format_type({alias}.prorettype, NULL) ELSE format_type({alias}.prorettype, NULL) END"
                    ))
                {
                    *expr = Expr::Nested(Box::new(new));
                }
            }
            Expr::Function(function) if is_named(function, "to_timestamp") || is_named(function, "to_date") => {
                if let FunctionArguments::List(list) = &mut function.args
                    && let [_, FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value)))] = list.args.as_mut_slice()
                    && let Value::SingleQuotedString(template) = &value.value
                    && !template.contains('%')
                {
                    value.value = Value::SingleQuotedString(chrono_format(template));
                }
            }
            Expr::Subquery(query) => aggregate_catalog_lookup(query),
            Expr::Case { operand: None, conditions, else_result, .. }
                if conditions.len() == 1 && else_result.as_deref().is_none_or(|e| matches!(e, Expr::Value(v) if v.value == Value::Null)) =>
            {
                if let Some(null) = guarded_catalog_lookup(&conditions[0].condition, &conditions[0].result) {
                    *expr = null;
                }
            }
            // `CAST(format('%I.%I', schema, table) AS regclass)` (Metabase's column comments):
            // the relation's oid looked up by name; datafusion-postgres resolves constants only.
            Expr::Cast { expr: inner, data_type: DataType::Regclass, .. } if matches!(inner.as_ref(), Expr::Function(_) | Expr::BinaryOp { op: BinaryOperator::StringConcat, .. }) => {
                if let Some(new) = relation_lookup(inner) {
                    *expr = new;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            name_repeated_values(&mut select.projection);
        }
        ControlFlow::Continue(())
    }
}

/// The unnamed arguments of a call.
fn arguments(function: &Function) -> Vec<Expr> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn parse(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

/// PostgreSQL's `to_timestamp`/`to_date` template patterns in chrono's notation.
fn chrono_format(template: &str) -> String {
    const PATTERNS: [(&str, &str); 17] = [
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("YYYY", "%Y"),
        ("Month", "%B"),
        ("Mon", "%b"),
        ("Day", "%A"),
        ("Dy", "%a"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("US", "%6f"),
        ("MS", "%3f"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("AM", "%p"),
        ("PM", "%p"),
    ];
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (pg, chrono) in PATTERNS {
            if let Some(tail) = rest.strip_prefix(pg) {
                out.push_str(chrono);
                rest = tail;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `(SELECT x FROM pg_catalog.… WHERE …)` not aggregated becomes `(SELECT max(x) …)`.
fn aggregate_catalog_lookup(query: &mut Query) {
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    let over_catalog = !select.from.is_empty()
        && select.from.iter().all(|f| matches!(&f.relation, TableFactor::Table { name, .. } if name.0.last().is_some_and(|p| p.to_string().trim_matches('"').starts_with("pg_"))));
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if !over_catalog || grouped || select.projection.len() != 1 {
        return;
    }
    let (value, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return,
    };
    const AGGREGATES: [&str; 9] = ["count(", "sum(", "min(", "max(", "avg(", "array_agg(", "string_agg(", "bool_or(", "bool_and("];
    let text = value.to_string().to_ascii_lowercase();
    if AGGREGATES.iter().any(|a| text.contains(a)) {
        return;
    }
    let wrapped = call("max", vec![value]);
    select.projection[0] = match alias {
        Some(alias) => SelectItem::ExprWithAlias { expr: wrapped, alias },
        None => SelectItem::UnnamedExpr(wrapped),
    };
}

/// The oid of the relation `name` (qualified, or bare and then in the connection's current
/// schema) names: a lookup in `pg_class` that holds `name` once (a nested name grows the
/// query linearly, never doubles it), compares by equality (so DataFusion can decorrelate
/// it) and uses aliases of its own (so the caller's `c` or `n` are not captured).
/// `salespulse_qualified_relation` is per connection ([`super::search_path`]).
fn relation_lookup(name: &Expr) -> Option<Expr> {
    // In parentheses, so that datafusion-postgres's parser leaves it alone when the extended
    // protocol parses the rewritten text again (see `protect_subqueries`).
    parse(&format!(
        "(SELECT max(salespulse_c.oid) FROM pg_catalog.pg_class salespulse_c JOIN pg_catalog.pg_namespace salespulse_n ON salespulse_c.relnamespace = salespulse_n.oid \
         WHERE salespulse_n.nspname || '.' || salespulse_c.relname = salespulse_qualified_relation({name}))"
    ))
    .map(|lookup| Expr::Nested(Box::new(lookup)))
}

/// `CASE WHEN c THEN (correlated lookup in pg_catalog) ELSE NULL END` is NULL, as
/// datafusion-postgres answers such a lookup standing alone in a select list: DataFusion
/// cannot decorrelate these (SQLAlchemy 2's column reflection: a column's default, its
/// identity sequence, its collation), and in salespulse's catalog they find nothing: no
/// column has a default, an identity sequence or a collation other than its type's.
///
/// The result keeps every parameter of the CASE (a client binds them all: SQLAlchemy
/// sends even the keys of `json_build_object` as parameters), so the condition stays, with
/// such lookups in it NULL as well, and the lookup's parameters are kept in it as
/// `($n IS NULL OR TRUE)`.
fn guarded_catalog_lookup(condition: &Expr, result: &Expr) -> Option<Expr> {
    let Expr::Subquery(query) = result else { return None };
    if !(reads_catalog(query) && is_correlated(query)) {
        return None;
    }
    let mut condition = condition.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut condition, |e| {
        if let Expr::Subquery(q) = e
            && reads_catalog(q)
            && is_correlated(q)
        {
            *e = Expr::value(Value::Null);
        }
        ControlFlow::<()>::Continue(())
    });
    let mut kept = vec![format!("({condition})")];
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(query.as_ref(), |e| {
        if let Expr::Value(v) = e
            && let Value::Placeholder(name) = &v.value
        {
            kept.push(format!("({name} IS NULL OR TRUE)"));
        }
        ControlFlow::<()>::Continue(())
    });
    parse(&format!("CASE WHEN {} THEN NULL END", kept.join(" AND ")))
}

/// Whether a query refers to a table it does not read itself (an outer query's).
fn is_correlated(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else { return false };
    let mut own = std::collections::HashSet::new();
    for relation in select.from.iter().flat_map(|f| std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation))) {
        if let TableFactor::Table { name, alias, .. } = relation {
            own.insert(name.to_string().to_ascii_lowercase());
            if let Some(last) = name.0.last() {
                own.insert(last.to_string().trim_matches('"').to_ascii_lowercase());
            }
            if let Some(alias) = alias {
                own.insert(alias.name.value.to_ascii_lowercase());
            }
        }
    }
    let mut outer = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(query, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.len() >= 2
        {
            let qualifier: Vec<String> = parts[..parts.len() - 1].iter().map(|p| p.value.to_ascii_lowercase()).collect();
            let table = qualifier.last().cloned().unwrap_or_default();
            if !own.contains(&table) && !own.contains(&qualifier.join(".")) {
                outer = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    outer
}

/// The name DataFusion gives an unnamed select-list item, as far as it matters here: a
/// column's name, also through a cast (`CAST(created_at AS DATE)` is `created_at`), a
/// function's call text, a constant's text.
fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()).unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        Expr::Subquery(_) => "<subquery>".into(),
        Expr::BinaryOp { left, op, right } => format!("{} {op} {}", output_name(left), output_name(right)),
        Expr::IsNull(expr) => format!("{} IS NULL", output_name(expr)),
        Expr::IsNotNull(expr) => format!("{} IS NOT NULL", output_name(expr)),
        other => other.to_string(),
    }
}

/// Distinct names for unnamed select-list items whose names repeat (`NULL, NULL, NULL` in
/// pgjdbc's `getProcedures`; `x, CAST(x AS DATE)`): PostgreSQL allows repeated output names,
/// DataFusion does not. The first keeps its name, the others are named by their text and
/// position.
fn name_repeated_values(projection: &mut [SelectItem]) {
    let mut seen = std::collections::HashSet::new();
    for (position, item) in projection.iter_mut().enumerate() {
        let name = match item {
            SelectItem::UnnamedExpr(expr) => output_name(expr),
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            _ => continue,
        };
        if seen.insert(name.to_lowercase()) {
            continue;
        }
        if let SelectItem::UnnamedExpr(expr) = item {
            let text = if matches!(expr, Expr::Value(_)) { "?column?".to_string() } else { expr.to_string() };
            let expr = std::mem::replace(expr, Expr::value(Value::Null));
            *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', format!("{text}{}", position + 1)) };
        }
    }
}

fn is_named(function: &Function, name: &str) -> bool {
    matches!(function.name.0.last(), Some(ObjectNamePart::Identifier(ident)) if ident.value.eq_ignore_ascii_case(name))
}

/// `name(args…)`.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(statement).to_string()
    }

    #[test]
    fn expandarray_is_unnested_and_fields_are_get_field() {
        assert_eq!(
            rewritten("SELECT (_pg_expandarray(i.indkey)).n AS key_seq, _pg_expandarray(i.indkey) AS keys FROM pg_index i"),
            "SELECT get_field(unnest(_pg_expandarray(i.indkey)), 'n') AS key_seq, unnest(_pg_expandarray(i.indkey)) AS keys FROM pg_index i"
        );
        assert_eq!(rewritten("SELECT 1 FROM r WHERE r.a = (r.keys).x"), "SELECT 1 FROM r WHERE r.a = get_field(r.keys, 'x')");
        assert_eq!(rewritten("SELECT NULL, NULL, 1 FROM t"), "SELECT NULL, NULL AS \"?column?2\", 1 FROM t");
        assert_eq!(rewritten("SELECT t.x, CAST(t.x AS DATE) FROM t"), "SELECT t.x, CAST(t.x AS DATE) AS \"CAST(t.x AS DATE)2\" FROM t");
        assert_eq!(rewritten("SELECT a, b FROM t"), "SELECT a, b FROM t");
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type t WHERE (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))"),
            "SELECT 1 FROM pg_type t WHERE (t.typrelid = 0 OR (SELECT max(c.relkind = 'c') FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))"
        );
        assert_eq!(chrono_format("YYYY-MM-DD HH24:MI:SS.US"), "%Y-%m-%d %H:%M:%S.%6f");
        // A computed name is looked up once, however deep the nesting.
        let nested = rewritten("SELECT CAST('a' || CAST('a' || CAST('a' || 'x' AS regclass) AS regclass) AS regclass)");
        assert_eq!(nested.matches("'x'").count(), 1, "{nested}");
        // A correlated catalog lookup under CASE is NULL; a lookup of user tables is kept.
        assert_eq!(
            rewritten("SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) ELSE NULL END FROM pg_attribute a"),
            "SELECT CASE WHEN (a.atthasdef) THEN NULL END FROM pg_attribute a"
        );
        assert!(rewritten("SELECT CASE WHEN x.b THEN (SELECT count(*) FROM crm.calls c WHERE c.d = x.id) ELSE NULL END FROM crm.deals x").contains("count(*)"));
        // Select-list subqueries are put in parentheses before datafusion-postgres's parser.
        assert_eq!(
            protect_subqueries("SELECT d.id, (SELECT count(*) FROM c WHERE c.d = d.id) AS n FROM d").as_deref(),
            Some("SELECT d.id, ((SELECT count(*) FROM c WHERE c.d = d.id)) AS n FROM d")
        );
        assert_eq!(protect_subqueries("SELECT a FROM t WHERE b IN (SELECT b FROM u)"), None);
        assert_eq!(protect_subqueries("SELECT a.x, (SELECT d.y FROM pg_catalog.pg_attrdef d WHERE d.r = a.r) FROM pg_attribute a"), None);
        // Ordinary names are left alone.
        assert_eq!(rewritten("SELECT a.b, c FROM s.t a"), "SELECT a.b, c FROM s.t a");
    }
}
