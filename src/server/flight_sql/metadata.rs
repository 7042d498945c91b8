//! The catalog commands: catalogs, schemas, tables and table types from the principal's
//! session, keys (none: the canonical tables declare none), and the FlightInfo and
//! one-batch streams every metadata command answers with.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, ProstMessageExt};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use futures::{TryStreamExt, stream};
use prost::Message;
use tonic::{Response, Status};

use salespulse_config::auth::Principal;

use crate::catalog::client_type;

use super::{DoGetStream, MAX_FLIGHT_DATA_BYTES, SalesFlightSql};

pub(super) fn schema_info(schema: &Schema) -> Result<FlightInfo, Status> {
    FlightInfo::new().try_with_schema(schema).map_err(|e| Status::internal(format!("encoding the result schema: {e}")))
}

pub(super) fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding a schema: {e}")))?;
    Ok(bytes)
}

/// Streams one metadata batch.
pub(super) fn batch_stream(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(MAX_FLIGHT_DATA_BYTES)
        .build(stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

pub(super) fn metadata_info(command: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = schema_info(schema)?.with_endpoint(FlightEndpoint::new().with_ticket(ticket)).with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A schema with every field's type as a client receives it.
pub(super) fn client_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match client_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

pub(super) fn table_type(schema: &str) -> &'static str {
    match schema {
        "kpi" | "information_schema" => "VIEW",
        _ => "BASE TABLE",
    }
}

/// The spec schema of GetPrimaryKeys.
pub(super) fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// The spec schema of GetImportedKeys, GetExportedKeys and GetCrossReference.
pub(super) fn foreign_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

/// The canonical tables declare no keys (docs/schema.md): key commands answer with no rows.
pub(super) fn empty_stream(schema: Schema) -> Result<Response<DoGetStream>, Status> {
    batch_stream(Ok(RecordBatch::new_empty(Arc::new(schema))))
}

impl SalesFlightSql {
    /// The tenants the principal may read.
    pub(super) fn catalogs(&self, query: CommandGetCatalogs, principal: &Principal) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for name in self.catalog.tenant_names().into_iter().filter(|t| principal.may_read(t)) {
            builder.append(name);
        }
        batch_stream(builder.build())
    }

    /// The schemas of the principal's tenants.
    pub(super) fn schemas(&self, query: CommandGetDbSchemas, principal: &Principal) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session(None, principal);
        let mut builder = query.into_builder();
        for name in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&name) {
                for schema in catalog.schema_names() {
                    builder.append(&name, schema);
                }
            }
        }
        batch_stream(builder.build())
    }

    /// The tables of the principal's tenants, with their schemas as clients receive them.
    pub(super) async fn tables(&self, mut query: CommandGetTables, principal: &Principal) -> Result<Response<DoGetStream>, Status> {
        // JDBC and ODBC tools ask for "TABLE"; Grafana for "BASE TABLE" and "table".
        let mut types = Vec::new();
        for t in &query.table_types {
            match t.to_ascii_uppercase().as_str() {
                "TABLE" | "BASE TABLE" => types.push("BASE TABLE".to_string()),
                "VIEW" => types.push("VIEW".to_string()),
                _ => types.push(t.clone()),
            }
        }
        query.table_types = types;
        let ctx = self.session(None, principal);
        let mut builder = query.into_builder();
        let mut names = ctx.catalog_names();
        names.sort();
        for name in names {
            let Some(catalog) = ctx.catalog(&name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    let table_schema = match schema.table(&table_name).await {
                        Ok(Some(table)) => client_schema(&table.schema()),
                        _ => continue,
                    };
                    builder
                        .append(&name, &schema_name, &table_name, table_type(&schema_name), &table_schema)
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        batch_stream(builder.build())
    }

    /// The table types: `BASE TABLE` (crm, system) and `VIEW` (kpi, information_schema).
    pub(super) fn table_types(&self, query: CommandGetTableTypes) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("BASE TABLE");
        builder.append("VIEW");
        batch_stream(builder.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_types_by_schema() {
        assert_eq!(table_type("crm"), "BASE TABLE");
        assert_eq!(table_type("kpi"), "VIEW");
    }

    #[test]
    fn key_schemas_are_the_spec_ones() {
        assert_eq!(primary_keys_schema().fields().len(), 6);
        assert_eq!(foreign_keys_schema().fields().len(), 13);
        assert!(schema_bytes(&foreign_keys_schema()).is_ok());
    }
}
