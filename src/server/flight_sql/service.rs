//! The `FlightSqlService` trait: each method authenticates the request and hands it to the
//! planner or the metadata commands; updates, ingestion and unknown actions are refused.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo, HandshakeRequest, Ticket};
use tonic::{Request, Response, Status, Streaming};

use super::handle::{HandleStatus, QueryHandle};
use super::metadata::{batch_stream, empty_stream, foreign_keys_schema, metadata_info, primary_keys_schema};
use super::status::read_only_update;
use super::{DoGetStream, HandshakeStream, SalesFlightSql};

#[tonic::async_trait]
impl FlightSqlService for SalesFlightSql {
    type FlightService = SalesFlightSql;

    /// Basic (padded or not) or Bearer credentials in the `authorization` header, 0..n
    /// request messages; the answer carries `authorization: Bearer <token>` in its headers.
    async fn do_handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<HandshakeStream>, Status> {
        self.handshake(request).await
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let (handle, principal) = self.new_handle(query.query, &request).await?;
        self.handle_info(&handle, &principal, request.into_inner()).await
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&ticket.statement_handle, &self.auth, &principal)?;
        self.stream_handle(&ticket.statement_handle, &handle, &principal).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (handle, principal) = self.new_handle(query.query, &request).await?;
        self.prepare(handle, &principal).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.bind_parameters(query, request).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&query.prepared_statement_handle, &self.auth, &principal)?;
        self.handle_info(&handle, &principal, request.into_inner()).await
    }

    async fn do_get_prepared_statement(&self, query: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        let handle = QueryHandle::open(&query.prepared_statement_handle, &self.auth, &principal)?;
        self.stream_handle(&query.prepared_statement_handle, &handle, &principal).await
    }

    /// Handles are stateless: there is nothing to free.
    async fn do_action_close_prepared_statement(&self, _query: ActionClosePreparedStatementRequest, request: Request<Action>) -> Result<(), Status> {
        self.principal(&request).await?;
        Ok(())
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        self.catalogs(query, &principal)
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        self.schemas(query, &principal)
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(&request).await?;
        self.tables(query, &principal).await
    }

    async fn get_flight_info_table_types(&self, query: CommandGetTableTypes, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        self.table_types(query)
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        batch_stream(query.into_builder(&self.sql_info).build())
    }

    async fn get_flight_info_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        let schema = query.into_builder(&self.xdbc_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        batch_stream(query.into_builder(&self.xdbc_info).build())
    }

    async fn get_flight_info_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &primary_keys_schema(), request.into_inner())
    }

    async fn do_get_primary_keys(&self, _query: CommandGetPrimaryKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(primary_keys_schema())
    }

    async fn get_flight_info_imported_keys(&self, query: CommandGetImportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_imported_keys(&self, _query: CommandGetImportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn get_flight_info_exported_keys(&self, query: CommandGetExportedKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_exported_keys(&self, _query: CommandGetExportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(&self, query: CommandGetCrossReference, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request).await?;
        metadata_info(query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_cross_reference(&self, _query: CommandGetCrossReference, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request).await?;
        empty_stream(foreign_keys_schema())
    }

    async fn do_get_fallback(&self, _request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!("this server does not serve tickets of type {}", message.type_url)))
    }

    /// Session actions (CloseSession, Get/SetSessionOptions), CancelFlightInfo and anything
    /// unknown: UNIMPLEMENTED, which ADBC and JDBC treat as "not supported".
    /// Updates (`SET`, `INSERT`, DDL sent as an update) are refused as what they are.
    async fn do_put_statement_update(&self, command: arrow_flight::sql::CommandStatementUpdate, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(read_only_update(&command.query))
    }

    async fn do_put_statement_ingest(&self, _command: arrow_flight::sql::CommandStatementIngest, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied("salespulse is read-only: bulk ingestion is not allowed; run SELECT queries only"))
    }

    async fn do_put_prepared_statement_update(&self, _query: arrow_flight::sql::CommandPreparedStatementUpdate, request: Request<PeekableFlightDataStream>) -> Result<i64, Status> {
        self.principal(&request).await?;
        Err(Status::permission_denied("salespulse is read-only: prepared updates are not allowed; run SELECT queries only"))
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        Err(Status::unimplemented(format!("action {} is not supported", request.get_ref().r#type)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
