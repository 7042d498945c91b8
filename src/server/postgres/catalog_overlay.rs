//! The parts of PostgreSQL's catalogs that datafusion-postgres's `pg_catalog` lacks or types
//! differently from PostgreSQL, as pgjdbc (DBeaver, Metabase), Metabase's sync, Grafana's
//! query editor and SQLAlchemy's inspector read them:
//!
//! - `information_schema` with PostgreSQL's columns and type names (`data_type` =
//!   `timestamp with time zone`, `udt_name` = `timestamptz`, not Arrow's `Timestamp(µs, "UTC")`),
//!   and `table_constraints`, `key_column_usage`, `referential_constraints`,
//!   `constraint_column_usage`: empty, as salespulse's tables declare no keys;
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

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, GenericListArray, Int32Array, ListArray, RecordBatch, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, MemTable, SchemaProvider, TableProvider};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::datasource::{TableType, ViewTable};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;

const INFORMATION_SCHEMA: &str = "information_schema";

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
        catalog.register_schema(INFORMATION_SCHEMA, Arc::new(PgInformationSchema { catalogs: weak.clone() }))?;
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

/// PostgreSQL's `information_schema` over the session's catalogs.
#[derive(Debug)]
struct PgInformationSchema {
    catalogs: Weak<dyn CatalogProviderList>,
}

const OWN_TABLES: [&str; 8] = ["schemata", "tables", "columns", "views", "table_constraints", "key_column_usage", "referential_constraints", "constraint_column_usage"];

/// One column of a table, as the information schema describes it.
struct ColumnRow {
    catalog: String,
    schema: String,
    table: String,
    field: Field,
    position: i32,
}

/// A table as the information schema lists it.
struct TableRow {
    catalog: String,
    schema: String,
    table: String,
    kind: TableType,
    definition: Option<String>,
}

impl PgInformationSchema {
    fn catalogs(&self) -> Result<Arc<dyn CatalogProviderList>> {
        match self.catalogs.upgrade() {
            Some(list) => Ok(list),
            None => exec_err!("the session's catalogs are gone"),
        }
    }

    /// Every table of every schema of the session's catalogs, with its schema.
    async fn tables(&self) -> Result<Vec<(TableRow, SchemaRef)>> {
        let list = self.catalogs()?;
        let mut out = Vec::new();
        let mut catalog_names = list.catalog_names();
        catalog_names.sort();
        for catalog_name in catalog_names {
            let Some(catalog) = list.catalog(&catalog_name) else { continue };
            let mut schema_names = catalog.schema_names();
            schema_names.sort();
            for schema_name in schema_names {
                if schema_name == INFORMATION_SCHEMA {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut table_names = schema.table_names();
                table_names.sort();
                for table_name in table_names {
                    let Some(table) = schema.table(&table_name).await? else { continue };
                    let row = TableRow {
                        catalog: catalog_name.clone(),
                        schema: schema_name.clone(),
                        table: table_name,
                        kind: table.table_type(),
                        definition: table.get_table_definition().map(str::to_string),
                    };
                    out.push((row, table.schema()));
                }
            }
            for table_name in OWN_TABLES {
                let row = TableRow { catalog: catalog_name.clone(), schema: INFORMATION_SCHEMA.into(), table: table_name.into(), kind: TableType::View, definition: None };
                out.push((row, own_schema(table_name)));
            }
        }
        Ok(out)
    }

    async fn batch(&self, name: &str) -> Result<RecordBatch> {
        let schema = own_schema(name);
        let text = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let columns: Vec<ArrayRef> = match name {
            "schemata" => {
                let list = self.catalogs()?;
                let mut rows = Vec::new();
                let mut names = list.catalog_names();
                names.sort();
                for catalog in names {
                    let Some(provider) = list.catalog(&catalog) else { continue };
                    let mut schemas = provider.schema_names();
                    if !schemas.iter().any(|s| s == INFORMATION_SCHEMA) {
                        schemas.push(INFORMATION_SCHEMA.into());
                    }
                    schemas.sort();
                    rows.extend(schemas.into_iter().map(|s| (catalog.clone(), s)));
                }
                vec![
                    text(rows.iter().map(|r| Some(r.0.clone())).collect()),
                    text(rows.iter().map(|r| Some(r.1.clone())).collect()),
                    text(rows.iter().map(|_| Some("salespulse".into())).collect()),
                    text(rows.iter().map(|_| None).collect()),
                    text(rows.iter().map(|_| None).collect()),
                    text(rows.iter().map(|_| None).collect()),
                    text(rows.iter().map(|_| None).collect()),
                ]
            }
            "tables" | "views" => {
                let tables = self.tables().await?;
                let tables: Vec<&TableRow> = tables.iter().map(|(t, _)| t).filter(|t| name == "tables" || t.kind == TableType::View).collect();
                let mut columns = vec![
                    text(tables.iter().map(|t| Some(t.catalog.clone())).collect()),
                    text(tables.iter().map(|t| Some(t.schema.clone())).collect()),
                    text(tables.iter().map(|t| Some(t.table.clone())).collect()),
                ];
                if name == "tables" {
                    columns.push(text(tables.iter().map(|t| Some(table_type(t).into())).collect()));
                    for _ in 0..5 {
                        columns.push(text(tables.iter().map(|_| None).collect()));
                    }
                    columns.push(text(tables.iter().map(|_| Some("NO".into())).collect()));
                    columns.push(text(tables.iter().map(|_| Some("NO".into())).collect()));
                    columns.push(text(tables.iter().map(|_| None).collect()));
                } else {
                    columns.push(text(tables.iter().map(|t| t.definition.clone()).collect()));
                    columns.push(text(tables.iter().map(|_| Some("NONE".into())).collect()));
                    for _ in 0..5 {
                        columns.push(text(tables.iter().map(|_| Some("NO".into())).collect()));
                    }
                }
                columns
            }
            "columns" => {
                let tables = self.tables().await?;
                let rows: Vec<ColumnRow> = tables
                    .iter()
                    .flat_map(|(t, schema)| {
                        schema.fields().iter().enumerate().map(move |(i, f)| ColumnRow {
                            catalog: t.catalog.clone(),
                            schema: t.schema.clone(),
                            table: t.table.clone(),
                            field: f.as_ref().clone(),
                            position: i32::try_from(i + 1).unwrap_or(i32::MAX),
                        })
                    })
                    .collect();
                columns_batch(&rows)
            }
            // Nothing in salespulse declares keys or constraints.
            _ => return Ok(RecordBatch::new_empty(schema)),
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

fn table_type(t: &TableRow) -> &'static str {
    match t.kind {
        TableType::Base => "BASE TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        OWN_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        if OWN_TABLES.contains(&lower.as_str()) {
            let batch = self.batch(&lower).await?;
            return Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)));
        }
        // DataFusion's own tables (`routines`, `parameters`, `df_settings`).
        InformationSchemaProvider::new(self.catalogs()?).table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        OWN_TABLES.contains(&lower.as_str()) || self.catalogs().is_ok_and(|c| InformationSchemaProvider::new(c).table_exist(name))
    }
}

/// The columns of each of this module's information-schema tables, as PostgreSQL 16 has them
/// (all `sql_identifier`/`character_data`, hence text; positions and lengths integers).
fn own_schema(name: &str) -> SchemaRef {
    let text = |names: &[&str]| -> Vec<Field> { names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect() };
    let fields: Vec<Field> = match name {
        "schemata" => text(&["catalog_name", "schema_name", "schema_owner", "default_character_set_catalog", "default_character_set_schema", "default_character_set_name", "sql_path"]),
        "tables" => text(&[
            "table_catalog",
            "table_schema",
            "table_name",
            "table_type",
            "self_referencing_column_name",
            "reference_generation",
            "user_defined_type_catalog",
            "user_defined_type_schema",
            "user_defined_type_name",
            "is_insertable_into",
            "is_typed",
            "commit_action",
        ]),
        "views" => text(&["table_catalog", "table_schema", "table_name", "view_definition", "check_option", "is_updatable", "is_insertable_into", "is_trigger_updatable", "is_trigger_deletable", "is_trigger_insertable_into"]),
        "columns" => {
            let mut fields = text(&["table_catalog", "table_schema", "table_name", "column_name"]);
            fields.push(Field::new("ordinal_position", DataType::Int32, true));
            fields.extend(text(&["column_default", "is_nullable", "data_type"]));
            for n in ["character_maximum_length", "character_octet_length", "numeric_precision", "numeric_precision_radix", "numeric_scale", "datetime_precision"] {
                fields.push(Field::new(n, DataType::Int32, true));
            }
            fields.extend(text(&["interval_type"]));
            fields.push(Field::new("interval_precision", DataType::Int32, true));
            fields.extend(text(&[
                "character_set_catalog",
                "character_set_schema",
                "character_set_name",
                "collation_catalog",
                "collation_schema",
                "collation_name",
                "domain_catalog",
                "domain_schema",
                "domain_name",
                "udt_catalog",
                "udt_schema",
                "udt_name",
                "scope_catalog",
                "scope_schema",
                "scope_name",
            ]));
            fields.push(Field::new("maximum_cardinality", DataType::Int32, true));
            fields.extend(text(&[
                "dtd_identifier",
                "is_self_referencing",
                "is_identity",
                "identity_generation",
                "identity_start",
                "identity_increment",
                "identity_maximum",
                "identity_minimum",
                "identity_cycle",
                "is_generated",
                "generation_expression",
                "is_updatable",
            ]));
            fields
        }
        "table_constraints" => text(&[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "constraint_type",
            "is_deferrable",
            "initially_deferred",
            "enforced",
            "nulls_distinct",
        ]),
        "key_column_usage" => {
            let mut fields = text(&["constraint_catalog", "constraint_schema", "constraint_name", "table_catalog", "table_schema", "table_name", "column_name"]);
            fields.push(Field::new("ordinal_position", DataType::Int32, true));
            fields.push(Field::new("position_in_unique_constraint", DataType::Int32, true));
            fields
        }
        "referential_constraints" => text(&[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "unique_constraint_catalog",
            "unique_constraint_schema",
            "unique_constraint_name",
            "match_option",
            "update_rule",
            "delete_rule",
        ]),
        _ => text(&["table_catalog", "table_schema", "table_name", "column_name", "constraint_catalog", "constraint_schema", "constraint_name"]),
    };
    Arc::new(Schema::new(fields))
}

/// PostgreSQL's name of a type in `information_schema.columns.data_type`, and its `udt_name`.
fn pg_type_names(data_type: &DataType) -> (String, String) {
    let pg = into_pg_type(data_type).unwrap_or(Type::TEXT);
    let udt = pg.name().to_string();
    let long = match pg {
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::BOOL => "boolean",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::INTERVAL => "interval",
        Type::BYTEA => "bytea",
        Type::JSON => "json",
        Type::JSONB => "jsonb",
        _ if udt.starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    };
    (long.to_string(), udt)
}

fn columns_batch(rows: &[ColumnRow]) -> Vec<ArrayRef> {
    let text = |f: &dyn Fn(&ColumnRow) -> Option<String>| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<StringArray>()) };
    let int = |f: &dyn Fn(&ColumnRow) -> Option<i32>| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<Int32Array>()) };
    let names: Vec<(String, String)> = rows.iter().map(|r| pg_type_names(r.field.data_type())).collect();
    let long = names.iter().map(|n| Some(n.0.clone())).collect::<StringArray>();
    let udt = names.iter().map(|n| Some(n.1.clone())).collect::<StringArray>();
    let numeric = |r: &ColumnRow| -> (Option<i32>, Option<i32>, Option<i32>) {
        match r.field.data_type() {
            DataType::Int16 | DataType::Int8 | DataType::UInt8 => (Some(16), Some(2), Some(0)),
            DataType::Int32 | DataType::UInt16 => (Some(32), Some(2), Some(0)),
            DataType::Int64 | DataType::UInt32 => (Some(64), Some(2), Some(0)),
            DataType::Float32 | DataType::Float16 => (Some(24), Some(2), None),
            DataType::Float64 => (Some(53), Some(2), None),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (Some(i32::from(*p)), Some(10), Some(i32::from(*s))),
            _ => (None, None, None),
        }
    };
    let datetime = |r: &ColumnRow| -> Option<i32> {
        match r.field.data_type() {
            DataType::Timestamp(_, _) | DataType::Time32(_) | DataType::Time64(_) | DataType::Interval(_) => Some(6),
            DataType::Date32 | DataType::Date64 => Some(0),
            _ => None,
        }
    };
    let none = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; rows.len()])) };
    let none_int = || -> ArrayRef { Arc::new(Int32Array::from(vec![None::<i32>; rows.len()])) };
    vec![
        text(&|r| Some(r.catalog.clone())),
        text(&|r| Some(r.schema.clone())),
        text(&|r| Some(r.table.clone())),
        text(&|r| Some(r.field.name().clone())),
        int(&|r| Some(r.position)),
        none(),
        text(&|r| Some(if r.field.is_nullable() { "YES" } else { "NO" }.into())),
        Arc::new(long),
        none_int(),
        none_int(),
        int(&|r| numeric(r).0),
        int(&|r| numeric(r).1),
        int(&|r| numeric(r).2),
        int(&datetime),
        none(),
        none_int(),
        none(),
        none(),
        none(),
        none(),
        none(),
        none(),
        none(),
        none(),
        none(),
        text(&|r| Some(r.catalog.clone())),
        text(&|_| Some("pg_catalog".into())),
        Arc::new(udt),
        none(),
        none(),
        none(),
        none_int(),
        text(&|r| Some(r.position.to_string())),
        text(&|_| Some("NO".into())),
        text(&|_| Some("NO".into())),
        none(),
        none(),
        none(),
        none(),
        none(),
        text(&|_| Some("NO".into())),
        text(&|_| Some("NEVER".into())),
        none(),
        text(&|_| Some("NO".into())),
    ]
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
        if matches!(args.args[0], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
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
        let variants = (2..=max_arguments).map(|n| TypeSignature::Any(n)).collect();
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
        if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
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

    #[test]
    fn type_names_are_postgresql_s() {
        let tz = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(pg_type_names(&tz), ("timestamp with time zone".into(), "timestamptz".into()));
        assert_eq!(pg_type_names(&DataType::Utf8), ("text".into(), "text".into()));
        assert_eq!(pg_type_names(&DataType::Decimal128(18, 2)), ("numeric".into(), "numeric".into()));
    }
}
