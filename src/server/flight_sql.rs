//! The Arrow Flight SQL front end (CLIENTS.md): statement queries, metadata commands and a
//! handshake, over the tenants' catalogs.
//!
//! A statement runs as GetFlightInfo → one endpoint with no locations and a self-contained
//! ticket (SQL, tenant, snapshot id) → DoGet, which re-plans the SQL and streams batches as
//! they are produced, never collecting the result. The stream's schema is the one the
//! FlightInfo advertised, nullability included, also for 0 rows.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo, SqlSupportedTransaction,
    TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::catalog::{Catalog, QueryError, client_type, plan_query};

/// The Flight SQL service over a catalog.
#[derive(Clone)]
pub struct SalesFlightSql {
    catalog: Arc<Catalog>,
    max_sql_bytes: usize,
    sql_info: Arc<SqlInfoData>,
}

impl std::fmt::Debug for SalesFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesFlightSql").field("catalog", &self.catalog).finish_non_exhaustive()
    }
}

/// What a statement ticket carries: enough to run the query on any replica.
#[derive(Debug, Serialize, Deserialize)]
struct StatementTicket {
    sql: String,
    tenant: Option<String>,
    snapshot_id: Option<String>,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

impl SalesFlightSql {
    /// # Errors
    /// Never in practice: the SqlInfo set is built from constants.
    pub fn new(catalog: Arc<Catalog>, max_sql_bytes: usize) -> Result<Self, Status> {
        let sql_info = Arc::new(sql_info().map_err(|e| Status::internal(e.to_string()))?);
        Ok(Self { catalog, max_sql_bytes, sql_info })
    }

    /// The tenant a request addresses: the `database` (or `catalog`) header when a client
    /// sets one, else the first tenant.
    fn tenant_of(&self, metadata: &MetadataMap) -> Result<Option<String>, Status> {
        let asked = ["database", "catalog"].iter().find_map(|k| metadata.get(*k)).and_then(|v| v.to_str().ok());
        match asked {
            Some(name) if self.catalog.tenant(name).is_some() => Ok(Some(name.to_string())),
            Some(name) => Err(Status::not_found(format!(
                "unknown database '{name}'; this server has: {}",
                self.catalog.tenant_names().join(", ")
            ))),
            None => Ok(self.catalog.tenant_names().into_iter().next()),
        }
    }

    async fn plan(&self, sql: &str, tenant: Option<&str>) -> Result<datafusion::prelude::DataFrame, Status> {
        let ctx = self.catalog.session(tenant);
        let catalog = Arc::clone(&self.catalog);
        let sql = sql.to_string();
        let max = self.max_sql_bytes;
        // Planning runs in its own task so that a panic inside the engine becomes an error
        // for this request, not a dropped connection.
        tokio::spawn(async move { plan_query(&ctx, &sql, max, || catalog.missing_snapshot_hint()).await })
            .await
            .map_err(|e| Status::internal(format!("the query planner failed: {e}")))?
            .map_err(|e| query_status(&e))
    }
}

/// One mapping from query errors to gRPC statuses.
fn query_status(e: &QueryError) -> Status {
    match e {
        QueryError::TooLong { .. } => Status::invalid_argument(e.to_string()),
        QueryError::ReadOnly { .. } => Status::permission_denied(e.to_string()),
        QueryError::Plan(_) => Status::invalid_argument(e.to_string()),
        QueryError::Execution(_) => Status::internal(e.to_string()),
    }
}

fn schema_info(schema: &Schema) -> Result<FlightInfo, Status> {
    FlightInfo::new().try_with_schema(schema).map_err(|e| Status::internal(format!("encoding the result schema: {e}")))
}

/// Streams one metadata batch.
fn batch_stream(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

fn metadata_info(command: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = schema_info(schema)?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A schema with every field's type as a client receives it.
fn client_schema(schema: &Schema) -> Schema {
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

fn table_type(schema: &str) -> &'static str {
    match schema {
        "kpi" | "information_schema" => "VIEW",
        _ => "BASE TABLE",
    }
}

#[tonic::async_trait]
impl FlightSqlService for SalesFlightSql {
    type FlightService = SalesFlightSql;

    /// No accounts in this version: any handshake (0..n messages, Basic or Bearer) gets a
    /// bearer token back in the headers, which is what Grafana, ADBC and JDBC expect.
    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let token = "anonymous";
        let reply = HandshakeResponse { protocol_version: 0, payload: token.as_bytes().to_vec().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(stream::iter([Ok(reply)])));
        if let Ok(value) = format!("Bearer {token}").parse() {
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let tenant = self.tenant_of(request.metadata())?;
        let df = self.plan(&query.query, tenant.as_deref()).await?;
        let schema = df.schema().as_arrow().clone();
        let snapshot_id = tenant
            .as_deref()
            .and_then(|t| self.catalog.tenant(t))
            .and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
        let handle = serde_json::to_vec(&StatementTicket { sql: query.query, tenant, snapshot_id })
            .map_err(|e| Status::internal(e.to_string()))?;
        let ticket = TicketStatementQuery { statement_handle: handle.into() };
        let info = schema_info(&schema)?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let statement: StatementTicket = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the ticket is not one this server issued; call GetFlightInfo again"))?;
        // The ticket names the snapshot it was planned on; snapshots are immutable and the
        // canonical schema is fixed, so a ticket redeemed after a swap runs on the current
        // snapshot with the same result schema.
        if let (Some(tenant), Some(planned)) = (&statement.tenant, &statement.snapshot_id) {
            let current = self.catalog.tenant(tenant).and_then(|s| s.manifest.as_ref().map(|m| m.snapshot_id.clone()));
            if current.as_ref() != Some(planned) {
                tracing::debug!(%tenant, %planned, ?current, "ticket redeemed after a snapshot swap");
            }
        }
        let df = self.plan(&statement.sql, statement.tenant.as_deref()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.execute_stream().await.map_err(|e| query_status(&QueryError::from_datafusion(e, None)))?;
        let advertised = Arc::clone(&schema);
        let batches = AssertUnwindSafe(batches)
            .catch_unwind()
            .map(move |item| match item {
                Ok(Ok(batch)) => RecordBatch::try_new(Arc::clone(&advertised), batch.columns().to_vec())
                    .map_err(|e| FlightError::Tonic(Box::new(Status::internal(format!("result batch does not match the result schema: {e}"))))),
                Ok(Err(e)) => Err(FlightError::Tonic(Box::new(query_status(&QueryError::from_datafusion(e, None))))),
                Err(_) => Err(FlightError::Tonic(Box::new(Status::internal("the query engine failed while running this query")))),
            });
        let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, _request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for name in self.catalog.tenant_names() {
            builder.append(name);
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, _request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.catalog.session(None);
        let mut builder = query.into_builder();
        for name in self.catalog.tenant_names() {
            if let Some(catalog) = ctx.catalog(&name) {
                for schema in catalog.schema_names() {
                    builder.append(&name, schema);
                }
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(&self, mut query: CommandGetTables, _request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
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
        let ctx = self.catalog.session(None);
        let mut builder = query.into_builder();
        for name in self.catalog.tenant_names() {
            let Some(catalog) = ctx.catalog(&name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                for table_name in schema.table_names() {
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

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, _request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("BASE TABLE");
        builder.append("VIEW");
        batch_stream(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, _request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        batch_stream(query.into_builder(&self.sql_info).build())
    }

    async fn do_get_fallback(&self, _request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!("this server does not serve tickets of type {}", message.type_url)))
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("prepared statements are not supported by this version; send the SQL as a statement"))
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        Err(Status::unimplemented(format!("action {} is not supported", request.get_ref().r#type)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The server's GetSqlInfo answers: identity, read-only, quoting and case rules.
fn sql_info() -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "salespulse");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, arrow_flight::sql::SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, arrow_flight::sql::SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, arrow_flight::sql::SqlNullOrdering::SqlNullsSortedHigh as i32);
    b.build()
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
    fn sql_info_builds() {
        assert!(sql_info().is_ok());
    }
}
