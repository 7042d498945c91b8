//! A connection's own context for its queries: its `search_path` and, through
//! [`super::time_zone`], its `TimeZone`.
//!
//! The `search_path` decides where unqualified table names resolve, and what
//! `current_schema()` / `current_schemas()` answer (SQLAlchemy's default schema, pgjdbc's
//! `Connection.setSchema`/`getSchema`, DBeaver's active schema).
//!
//! The first schema of the path that exists in the connection's tenant is the default
//! schema; `"$user"` and schemas the tenant does not have are skipped, as PostgreSQL skips
//! them. A path with none of the tenant's schemas leaves `crm`, the tenant's default. The
//! answer is per connection: the session a connection's queries run in is shared, so each
//! query gets a context of its own with the connection's default schema.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ListArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

/// The schema unqualified names resolve in when a connection set no path.
pub(super) const DEFAULT_SCHEMA: &str = "crm";

/// The schemas of `search_path` that exist in `ctx`'s default catalog, in order.
fn existing(ctx: &SessionContext, search_path: &str) -> Vec<String> {
    let catalog_name = ctx.state().config_options().catalog.default_catalog.clone();
    let Some(catalog) = ctx.catalog(&catalog_name) else { return Vec::new() };
    let schemas = catalog.schema_names();
    search_path
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|s| !s.is_empty() && s != "$user" && s != "pg_catalog")
        .filter(|s| schemas.contains(s))
        .collect()
}

/// `ctx` with the connection's path and time zone applied: a context of its own when they
/// change anything, else `ctx` itself.
pub(super) fn apply(ctx: SessionContext, search_path: Option<&str>, time_zone: Option<&str>) -> SessionContext {
    let path = search_path.map(|p| existing(&ctx, p)).unwrap_or_default();
    let schema = path.first().cloned().unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
    let path = if path.is_empty() { vec![schema.clone()] } else { path };
    let zone_rule = super::time_zone::rule(time_zone);
    // Most connections change neither: their queries run in the session as it is (its
    // functions answer the default path, see `install_default`), with no state to build.
    if zone_rule.is_none() && path == [DEFAULT_SCHEMA] {
        return ctx;
    }
    let base = ctx.state();
    let mut builder = SessionStateBuilder::new_from_existing(base.clone());
    // The connection's TimeZone (super::time_zone) is applied to every plan first.
    if let Some(rule) = zone_rule {
        let mut rules = vec![rule];
        rules.extend(base.analyzer().rules.iter().cloned());
        builder = builder.with_analyzer_rules(rules);
    }
    let mut state = builder.build();
    state.config_mut().options_mut().catalog.default_schema.clone_from(&schema);
    let with_path = SessionContext::new_with_state(state);
    register(&with_path, schema, path);
    with_path
}

/// The path functions of a session whose connections set no path: `crm`.
pub(super) fn install_default(ctx: &SessionContext) {
    register(ctx, DEFAULT_SCHEMA.to_string(), vec![DEFAULT_SCHEMA.to_string()]);
}

fn register(ctx: &SessionContext, schema: String, path: Vec<String>) {
    ctx.register_udf(ScalarUDF::new_from_impl(QualifiedRelation { schema: schema.clone(), signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable) }));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSchema { schema, signature: Signature::nullary(Volatility::Stable) }));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSchemas { path, signature: Signature::exact(vec![DataType::Boolean], Volatility::Stable) }));
}

/// `salespulse_qualified_relation(name)`: a relation name as `schema.relation`, unquoted,
/// a bare name in the connection's current schema (what `regclass` resolution needs; see
/// super::rewrite).
#[derive(Debug, PartialEq, Eq, Hash)]
struct QualifiedRelation {
    schema: String,
    signature: Signature,
}

impl QualifiedRelation {
    fn qualify(&self, name: &str) -> String {
        let parts: Vec<String> = name.split('.').map(|p| {
            let p = p.trim();
            if p.len() >= 2 && p.starts_with('"') && p.ends_with('"') { p[1..p.len() - 1].replace("\"\"", "\"") } else { p.to_lowercase() }
        }).collect();
        match parts.as_slice() {
            [relation] => format!("{}.{relation}", self.schema),
            [.., schema, relation] => format!("{schema}.{relation}"),
            [] => String::new(),
        }
    }
}

impl ScalarUDFImpl for QualifiedRelation {
    fn name(&self) -> &str {
        "salespulse_qualified_relation"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::array::cast::as_string_array(&arrays[0]);
        let out: StringArray = (0..names.len()).map(|i| (!names.is_null(i)).then(|| self.qualify(names.value(i)))).collect();
        let out: ArrayRef = Arc::new(out);
        super::pg_functions::scalar_or_array(&args.args, out)
    }
}

/// `current_schema()`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSchema {
    schema: String,
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSchema {
    fn name(&self) -> &str {
        "current_schema"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.schema.clone()))))
    }
}

/// `current_schemas(include_implicit)`: the path's existing schemas, after `pg_catalog` when
/// implicit schemas are asked for.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSchemas {
    path: Vec<String>,
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSchemas {
    fn name(&self) -> &str {
        "current_schemas"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let implicit = datafusion::arrow::array::cast::as_boolean_array(&arrays[0]);
        let lists: Vec<Option<Vec<Option<String>>>> = (0..implicit.len())
            .map(|i| {
                let mut schemas: Vec<Option<String>> = Vec::new();
                if implicit.is_valid(i) && implicit.value(i) {
                    schemas.push(Some("pg_catalog".to_string()));
                }
                schemas.extend(self.path.iter().cloned().map(Some));
                Some(schemas)
            })
            .collect();
        let values: Vec<Option<String>> = lists.iter().flatten().flatten().cloned().collect();
        let mut offsets = vec![0i32];
        for list in &lists {
            let len = list.as_ref().map_or(0, Vec::len);
            offsets.push(offsets.last().copied().unwrap_or(0) + i32::try_from(len).unwrap_or(i32::MAX));
        }
        let array = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            datafusion::arrow::buffer::OffsetBuffer::new(offsets.into()),
            Arc::new(StringArray::from(values)),
            None,
        )?;
        let array: ArrayRef = Arc::new(array);
        super::pg_functions::scalar_or_array(&args.args, array)
    }
}
