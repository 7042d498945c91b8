//! PostgreSQL's `information_schema` over a session's catalogs (only the tenants its user may
//! read), with PostgreSQL's columns and type names: `data_type` is `timestamp with time
//! zone` and `udt_name` `timestamptz`, not Arrow's `Timestamp(µs, "UTC")`, which Grafana's
//! and Metabase's type mapping read. `table_constraints`, `key_column_usage`,
//! `referential_constraints` and `constraint_column_usage` are empty: salespulse's tables
//! declare no keys. DataFusion's own `routines`, `parameters` and `df_settings` are kept.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, MemTable, SchemaProvider, TableProvider};
use datafusion::common::exec_err;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;

pub(super) const INFORMATION_SCHEMA: &str = "information_schema";

/// PostgreSQL's `information_schema` over the session's catalogs.
#[derive(Debug)]
pub(super) struct PgInformationSchema {
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
    pub(super) fn over(catalogs: Weak<dyn CatalogProviderList>) -> PgInformationSchema {
        PgInformationSchema { catalogs }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_postgresql_s() {
        let tz = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(pg_type_names(&tz), ("timestamp with time zone".into(), "timestamptz".into()));
        assert_eq!(pg_type_names(&DataType::Utf8), ("text".into(), "text".into()));
        assert_eq!(pg_type_names(&DataType::Decimal128(18, 2)), ("numeric".into(), "numeric".into()));
    }
}
