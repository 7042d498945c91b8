//! PostgreSQL functions that catalog queries of real clients call and datafusion-postgres
//! does not provide, answered from what salespulse has:
//!
//! - objects salespulse does not have (indexes, views with a definition, sequences, comments,
//!   advisory locks) get PostgreSQL's answer for an object without one: `pg_get_indexdef`,
//!   `pg_get_viewdef`, `pg_get_serial_sequence`, `obj_description`, `col_description`,
//!   `shobj_description` are NULL; `pg_advisory_unlock_all()` releases nothing;
//! - `pg_type_is_visible`, `pg_function_is_visible`, `pg_collation_is_visible`: every type,
//!   function and collation in this catalog lives in `pg_catalog`, which is always on the
//!   search path;
//! - `format(text, …)` with PostgreSQL's `%s`, `%I`, `%L` and `%%` (Metabase's sync);
//! - `json_build_object(k, v, …)` as JSON text (SQLAlchemy 2's column query);
//! - `pg_get_function_result(oid)` is rewritten where it is called (see [`super::rewrite`]);
//!   called on anything but a `pg_proc` row's `oid` it says so.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;

/// Registers the functions on a session.
pub(super) fn install(ctx: &SessionContext) {
    for (name, arities) in [
        ("pg_get_indexdef", &[1usize, 3][..]),
        ("pg_get_viewdef", &[1, 2]),
        ("pg_get_serial_sequence", &[2]),
        ("obj_description", &[1, 2]),
        ("col_description", &[2]),
        ("shobj_description", &[2]),
        ("pg_advisory_unlock_all", &[0]),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Absent::new(name, arities)));
    }
    for name in ["pg_type_is_visible", "pg_function_is_visible", "pg_collation_is_visible"] {
        ctx.register_udf(ScalarUDF::new_from_impl(Visible::new(name)));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(Format::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(FunctionResult::new()));
}

/// A function's result as a scalar when every argument was one (a constant folds), else as
/// the array: the shared ending of this front end's functions.
pub(super) fn scalar_or_array(args: &[ColumnarValue], out: ArrayRef) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
    }
    Ok(ColumnarValue::Array(out))
}

fn any_of(arities: &[usize], volatility: Volatility) -> Signature {
    let variants = arities.iter().map(|n| if *n == 0 { TypeSignature::Nullary } else { TypeSignature::Any(*n) }).collect();
    Signature::one_of(variants, volatility)
}

/// A function about an object kind salespulse has none of: NULL, as PostgreSQL answers for
/// an object without one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Absent {
    name: &'static str,
    signature: Signature,
}

impl Absent {
    fn new(name: &'static str, arities: &[usize]) -> Absent {
        Absent { name, signature: any_of(arities, Volatility::Stable) }
    }
}

impl ScalarUDFImpl for Absent {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let out: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; args.number_rows]));
        scalar_or_array(&args.args, out)
    }
}

/// `pg_*_is_visible(oid)`: true (everything lives in `pg_catalog`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Visible {
    name: &'static str,
    signature: Signature,
}

impl Visible {
    fn new(name: &'static str) -> Visible {
        Visible { name, signature: any_of(&[1], Volatility::Stable) }
    }
}

impl ScalarUDFImpl for Visible {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: BooleanArray = (0..arrays[0].len()).map(|i| (!arrays[0].is_null(i)).then_some(true)).collect();
        scalar_or_array(&args.args, Arc::new(out))
    }
}

/// Every argument as text (NULL stays NULL), row by row.
fn text_columns(args: &ScalarFunctionArgs) -> Result<(usize, Vec<ArrayRef>)> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let rows = arrays.first().map_or(args.number_rows, |a| a.len());
    let texts = arrays.iter().map(|a| cast(a, &DataType::Utf8)).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((rows, texts))
}

fn text_at(array: &ArrayRef, row: usize) -> Option<&str> {
    let strings = array.as_any().downcast_ref::<StringArray>()?;
    (!strings.is_null(row)).then(|| strings.value(row))
}

/// `format(formatstr, args…)`: `%s` (text, NULL as empty), `%I` (identifier, quoted when
/// needed), `%L` (literal, NULL as `NULL`), `%%`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl Format {
    fn new() -> Format {
        Format { signature: Signature::variadic_any(Volatility::Stable) }
    }

    fn quote_identifier(name: &str) -> String {
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
    }

    fn render(template: &str, values: &[Option<&str>]) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut next = 0;
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(kind) = chars.next() else { return exec_err!("format: unterminated format() type specifier") };
            if kind == '%' {
                out.push('%');
                continue;
            }
            let Some(value) = values.get(next) else { return exec_err!("format: too few arguments") };
            next += 1;
            match (kind, value) {
                ('s', v) => out.push_str(v.unwrap_or("")),
                ('I', Some(v)) => out.push_str(&Self::quote_identifier(v)),
                ('I', None) => return exec_err!("format: null values cannot be formatted as an SQL identifier"),
                ('L', Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                ('L', None) => out.push_str("NULL"),
                (other, _) => return exec_err!("format: unrecognized format() type specifier \"{other}\""),
            }
        }
        Ok(out)
    }
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, texts) = text_columns(&args)?;
        let Some(templates) = texts.first() else { return exec_err!("format takes a format string: format('%s …', …)") };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            match text_at(templates, row) {
                None => out.push(None),
                Some(template) => {
                    let values: Vec<Option<&str>> = texts[1..].iter().map(|a| text_at(a, row)).collect();
                    out.push(Some(Self::render(template, &values)?));
                }
            }
        }
        scalar_or_array(&args.args, Arc::new(StringArray::from(out)))
    }
}

/// `json_build_object(key, value, …)`: a JSON object as text; values keep JSON's number and
/// boolean types.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> JsonBuildObject {
        JsonBuildObject { signature: Signature::one_of(vec![TypeSignature::VariadicAny, TypeSignature::Nullary], Volatility::Stable) }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("json_build_object: argument list must have even number of elements");
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (rows, texts) = text_columns(&args)?;
        let rows = if arrays.is_empty() { args.number_rows } else { rows };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in 0..arrays.len() / 2 {
                let Some(key) = text_at(&texts[2 * pair], row) else { return exec_err!("json_build_object: null value not allowed for object key") };
                let value = &arrays[2 * pair + 1];
                let json = if value.is_null(row) {
                    serde_json::Value::Null
                } else {
                    let text = text_at(&texts[2 * pair + 1], row).unwrap_or_default();
                    match value.data_type() {
                        DataType::Boolean => serde_json::Value::Bool(text == "true"),
                        t if t.is_numeric() => serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
                        _ => serde_json::Value::String(text.to_string()),
                    }
                };
                object.insert(key.to_string(), json);
            }
            out.push(Some(serde_json::Value::Object(object).to_string()));
        }
        scalar_or_array(&args.args, Arc::new(StringArray::from(out)))
    }
}

/// `pg_get_function_result` left over after the rewrite (its argument was not a `pg_proc`
/// row's `oid`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FunctionResult {
    signature: Signature,
}

impl FunctionResult {
    fn new() -> FunctionResult {
        FunctionResult { signature: any_of(&[1], Volatility::Stable) }
    }
}

impl ScalarUDFImpl for FunctionResult {
    fn name(&self) -> &str {
        "pg_get_function_result"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("pg_get_function_result is answered for a pg_proc row: call it as pg_get_function_result(p.oid) with p a pg_catalog.pg_proc alias")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_postgresql() {
        assert_eq!(Format::render("%I.%I", &[Some("crm"), Some("Deals")]).unwrap(), "crm.\"Deals\"");
        assert_eq!(Format::render("%L and %s%%", &[Some("it's"), None]).unwrap(), "'it''s' and %");
        assert!(Format::render("%s %s", &[Some("a")]).is_err());
    }
}
