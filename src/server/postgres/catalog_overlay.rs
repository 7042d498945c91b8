//! The parts of PostgreSQL's catalogs that datafusion-postgres's `pg_catalog` lacks or types
//! differently from PostgreSQL, as pgjdbc (DBeaver, Metabase), Metabase's sync, Grafana's
//! query editor and SQLAlchemy's inspector read them:
//!
//! - `information_schema` ([`super::information_schema`]) with PostgreSQL's columns and type
//!   names;
//! - `pg_index` and `pg_constraint` typed as PostgreSQL types them (`indkey`, `conkey` are
//!   `int2` arrays, so `attnum = ANY(conkey)` plans) and empty: the rows datafusion-postgres
//!   ships describe PostgreSQL's own system tables, which are not in this catalog;
//! - `_pg_expandarray` (set-returning: called through [`super::rewrite`], which wraps it in
//!   `unnest`) and the `has_*_privilege` functions answering what a read-only server grants:
//!   `SELECT` and `USAGE`, never `INSERT`, `UPDATE` or `DELETE` (Metabase derives
//!   `is_writable` from them).
//!
//! Every table here is computed from the session's own catalogs, which hold only the tenants
//! the logged-in user may read.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, GenericListArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::{exec_err, plan_err};
use datafusion::datasource::ViewTable;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;
use super::information_schema::{INFORMATION_SCHEMA, PgInformationSchema};


/// Installs the overlay on a session whose `pg_catalog` is set up in each of its catalogs.
pub(super) fn install(ctx: &SessionContext, pg_settings: Arc<dyn TableProvider>) -> Result<()> {
    let list = ctx.state().catalog_list().clone();
    let weak = Arc::downgrade(&list);
    for name in list.catalog_names() {
        let Some(catalog) = list.catalog(&name) else { continue };
        if let Some(inner) = catalog.schema("pg_catalog") {
            let overlay = PgCatalogOverlay {
                inner,
                replaced: vec![
                    ("pg_settings", Arc::clone(&pg_settings)),
                    ("pg_index", empty_table(pg_index_schema())?),
                    ("pg_constraint", empty_table(pg_constraint_schema())?),
                ],
            };
            catalog.register_schema("pg_catalog", Arc::new(overlay))?;
        }
        catalog.register_schema(INFORMATION_SCHEMA, Arc::new(PgInformationSchema::over(weak.clone())))?;
    }
    // DataFusion answers `information_schema` itself when this is on, ahead of any catalog.
    ctx.state_ref().write().config_mut().options_mut().catalog.information_schema = false;
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArray::new()));
    for (name, arguments) in [("has_table_privilege", 3), ("has_schema_privilege", 3), ("has_database_privilege", 3), ("has_any_column_privilege", 3), ("has_column_privilege", 4)] {
        ctx.register_udf(ScalarUDF::new_from_impl(HasPrivilege::new(name, arguments)));
    }
    Ok(())
}

fn empty_table(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

fn int2_array() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true)))
}

fn int4_array() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)))
}

fn pg_index_schema() -> SchemaRef {
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    Arc::new(Schema::new(vec![
        Field::new("indexrelid", DataType::Int32, false),
        Field::new("indrelid", DataType::Int32, false),
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
        b("indisunique"),
        b("indnullsnotdistinct"),
        b("indisprimary"),
        b("indisexclusion"),
        b("indimmediate"),
        b("indisclustered"),
        b("indisvalid"),
        b("indcheckxmin"),
        b("indisready"),
        b("indislive"),
        b("indisreplident"),
        Field::new("indkey", int2_array(), false),
        Field::new("indcollation", int4_array(), false),
        Field::new("indclass", int4_array(), false),
        Field::new("indoption", int2_array(), false),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ]))
}

fn pg_constraint_schema() -> SchemaRef {
    let i = |n: &str| Field::new(n, DataType::Int32, false);
    let t = |n: &str| Field::new(n, DataType::Utf8, true);
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    Arc::new(Schema::new(vec![
        i("oid"),
        Field::new("conname", DataType::Utf8, false),
        i("connamespace"),
        Field::new("contype", DataType::Utf8, false),
        b("condeferrable"),
        b("condeferred"),
        b("convalidated"),
        i("conrelid"),
        i("contypid"),
        i("conindid"),
        i("conparentid"),
        i("confrelid"),
        t("confupdtype"),
        t("confdeltype"),
        t("confmatchtype"),
        b("conislocal"),
        Field::new("coninhcount", DataType::Int16, false),
        b("connoinherit"),
        Field::new("conkey", int2_array(), true),
        Field::new("confkey", int2_array(), true),
        Field::new("conpfeqop", int4_array(), true),
        Field::new("conppeqop", int4_array(), true),
        Field::new("conffeqop", int4_array(), true),
        Field::new("confdelsetcols", int2_array(), true),
        Field::new("conexclop", int4_array(), true),
        t("conbin"),
    ]))
}

/// datafusion-postgres's `pg_catalog` with some tables answered here instead.
#[derive(Debug)]
struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    replaced: Vec<(&'static str, Arc<dyn TableProvider>)>,
}

impl PgCatalogOverlay {
    fn replaced(&self, name: &str) -> Option<&Arc<dyn TableProvider>> {
        self.replaced.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, t)| t)
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.replaced(name) {
            return Ok(Some(Arc::clone(table)));
        }
        match name.to_ascii_lowercase().as_str() {
            // The ACL every user has on what they can see (read, by PUBLIC, granted by the
            // server; pgjdbc's getTablePrivileges parses it), no storage options.
            "pg_class" => self.view("pg_class", &["pg_class"], &[("relacl", "'{=r/salespulse}'"), ("reloptions", "CAST(NULL AS VARCHAR)")]).await,
            // `typinput` is a regproc: the input function's oid, so `typinput =
            // 'pg_catalog.array_in'::regproc` (pgjdbc's type lookup) compares oids.
            "pg_type" => self.view("pg_type", &["pg_type", "pg_proc"], &[("typinput", "(SELECT min(p.oid) FROM pg_proc p WHERE p.proname = t.typinput)")]).await,
            // No sequences, no open cursors listed (cursors are the connection's own).
            "pg_sequence" => Ok(Some(empty_table(pg_sequence_schema())?)),
            "pg_cursors" => Ok(Some(empty_table(pg_cursors_schema())?)),
            _ => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.replaced(name).is_some() || matches!(name.to_ascii_lowercase().as_str(), "pg_sequence" | "pg_cursors") || self.inner.table_exist(name)
    }
}

impl PgCatalogOverlay {
    /// datafusion-postgres's `table` (aliased `t`) with `columns` added, or replaced where
    /// the name exists, as a view planned over the inner tables `uses`.
    async fn view(&self, table: &str, uses: &[&str], columns: &[(&str, &str)]) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(inner) = self.inner.table(table).await? else { return Ok(None) };
        let planner = SessionContext::new();
        for name in uses {
            if let Some(provider) = self.inner.table(name).await? {
                planner.register_table(*name, provider)?;
            }
        }
        let mut select: Vec<String> = Vec::new();
        for field in inner.schema().fields() {
            match columns.iter().find(|(n, _)| n == field.name()) {
                Some((name, value)) => select.push(format!("{value} AS \"{name}\"")),
                None => select.push(format!("t.\"{}\"", field.name())),
            }
        }
        for (name, value) in columns {
            if inner.schema().field_with_name(name).is_err() {
                select.push(format!("{value} AS \"{name}\""));
            }
        }
        let sql = format!("SELECT {} FROM {table} t", select.join(", "));
        let plan = planner.sql(&sql).await?.into_unoptimized_plan();
        Ok(Some(Arc::new(ViewTable::new(plan, Some(sql)))))
    }
}

fn pg_sequence_schema() -> SchemaRef {
    let i = |n: &str| Field::new(n, DataType::Int32, false);
    let l = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![i("seqrelid"), i("seqtypid"), l("seqstart"), l("seqincrement"), l("seqmax"), l("seqmin"), l("seqcache"), Field::new("seqcycle", DataType::Boolean, false)]))
}

fn pg_cursors_schema() -> SchemaRef {
    let t = |n: &str| Field::new(n, DataType::Utf8, true);
    let b = |n: &str| Field::new(n, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        t("name"),
        t("statement"),
        b("is_holdable"),
        b("is_binary"),
        b("is_scrollable"),
        Field::new("creation_time", DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
    ]))
}

/// `_pg_expandarray(anyarray)`: PostgreSQL's set-returning function of (element `x`, 1-based
/// index `n`) pairs, here as a list of such structs that [`super::rewrite`] unnests where it
/// is called, so it expands rows as PostgreSQL's does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn new() -> ExpandArray {
        ExpandArray { signature: Signature::one_of(vec![TypeSignature::ArraySignature(datafusion::logical_expr::ArrayFunctionSignature::Array {
            arguments: vec![datafusion::logical_expr::ArrayFunctionArgument::Array],
            array_coercion: None,
        }), TypeSignature::Any(1)], Volatility::Immutable) }
    }

    fn pair(element: &DataType) -> Fields {
        Fields::from(vec![Field::new("x", element.clone(), true), Field::new("n", DataType::Int32, false)])
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(DataType::List(field)) => Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Struct(Self::pair(field.data_type())), true)))),
            Some(other) => plan_err!("_pg_expandarray takes an array, not {other}"),
            None => plan_err!("_pg_expandarray takes an array"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(lists) = arrays[0].as_any().downcast_ref::<ListArray>() else {
            return exec_err!("_pg_expandarray takes an array");
        };
        let DataType::List(element) = lists.data_type() else { return exec_err!("_pg_expandarray takes an array") };
        let values = lists.values();
        // The 1-based position of every value within its list.
        let mut positions = vec![0i32; values.len()];
        for window in lists.offsets().windows(2) {
            let (start, end) = (usize::try_from(window[0]).unwrap_or(0), usize::try_from(window[1]).unwrap_or(0));
            for (i, p) in positions[start..end].iter_mut().enumerate() {
                *p = i32::try_from(i + 1).unwrap_or(i32::MAX);
            }
        }
        let pairs = StructArray::try_new(Self::pair(element.data_type()), vec![Arc::clone(values), Arc::new(Int32Array::from(positions))], None)?;
        let item = Arc::new(Field::new_list_field(DataType::Struct(Self::pair(element.data_type())), true));
        let out: GenericListArray<i32> = ListArray::try_new(item, lists.offsets().clone(), Arc::new(pairs), lists.nulls().cloned())?;
        let out: ArrayRef = Arc::new(out);
        super::pg_functions::scalar_or_array(&args.args, out)
    }
}

/// `has_table_privilege(…, privilege)` and its kin: a user may `SELECT` (and use schemas,
/// connect, …) what they can see; nothing is writable.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HasPrivilege {
    name: &'static str,
    signature: Signature,
}

impl HasPrivilege {
    fn new(name: &'static str, max_arguments: usize) -> HasPrivilege {
        let variants = (2..=max_arguments).map(TypeSignature::Any).collect();
        HasPrivilege { name, signature: Signature::one_of(variants, Volatility::Stable) }
    }

    fn granted(privilege: &str) -> bool {
        privilege.split(',').map(|p| p.trim().to_ascii_uppercase()).all(|p| {
            let p = p.strip_suffix(" WITH GRANT OPTION").map(str::to_string).unwrap_or(p);
            matches!(p.as_str(), "SELECT" | "USAGE" | "CONNECT" | "TEMPORARY" | "TEMP" | "REFERENCES" | "EXECUTE")
        })
    }
}

impl ScalarUDFImpl for HasPrivilege {
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
        let Some(last) = arrays.last() else { return exec_err!("{} takes a privilege", self.name) };
        let privileges = datafusion::arrow::compute::cast(last, &DataType::Utf8)?;
        let privileges = datafusion::arrow::array::cast::as_string_array(&privileges);
        let out: BooleanArray = (0..privileges.len()).map(|i| (!privileges.is_null(i)).then(|| Self::granted(privileges.value(i)))).collect();
        let out: ArrayRef = Arc::new(out);
        super::pg_functions::scalar_or_array(&args.args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_privileges() {
        assert!(HasPrivilege::granted("SELECT"));
        assert!(HasPrivilege::granted("usage"));
        assert!(!HasPrivilege::granted("UPDATE"));
        assert!(!HasPrivilege::granted("select, insert"));
    }

}
