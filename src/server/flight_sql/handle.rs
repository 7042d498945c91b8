//! Statement tickets and prepared-statement handles: one self-contained, signed value.
//!
//! A handle carries the SQL, the tenant, the user it was issued to, the snapshot it was
//! planned on, the output profile and, once a client has bound them through DoPut, the
//! parameter values (one Arrow IPC row). The JSON payload is sealed with the server's HMAC
//! key, so a handle cannot be altered or forged, any replica with the key can redeem it,
//! and the server keeps no per-statement state (CLIENTS.md §6 items 13 and 14).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UnionArray};
use arrow::datatypes::{DataType, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::catalog::OutputProfile;
use crate::server::auth::{Authenticator, Principal};

/// Redeems `bytes` as the Flight SQL server redeems a ticket or prepared-statement handle
/// from a client (signature, JSON, owner, bound parameters), for the fuzz targets in `fuzz/`:
/// whatever the bytes, an error and never a panic. Returns the number of parameters.
///
/// # Errors
/// The bytes are not a handle this `auth` sealed for `principal`, or its parameters do not
/// decode.
#[doc(hidden)]
pub fn redeem_for_fuzzing(bytes: &[u8], auth: &Authenticator, principal: &Principal) -> Result<usize, Status> {
    let handle = QueryHandle::open(bytes, auth, principal)?;
    handle.parameters().map(|p| p.len())
}

/// What a ticket or prepared-statement handle holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueryHandle {
    pub(super) sql: String,
    pub(super) tenant: Option<String>,
    pub(super) user: String,
    pub(super) snapshot_id: Option<String>,
    #[serde(default)]
    pub(super) profile: OutputProfile,
    /// Base64 of an Arrow IPC stream with one row of parameter values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) params: Option<String>,
}

const FOREIGN: &str = "the ticket or prepared statement handle was not issued by this server, or was altered; run the query again";

impl QueryHandle {
    pub(super) fn seal(&self, auth: &Authenticator) -> Result<Vec<u8>, Status> {
        let json = serde_json::to_vec(self).map_err(|e| Status::internal(format!("encoding the ticket: {e}")))?;
        Ok(auth.seal(&json))
    }

    /// Opens a sealed handle and checks that it belongs to `principal`.
    pub(super) fn open(sealed: &[u8], auth: &Authenticator, principal: &Principal) -> Result<QueryHandle, Status> {
        let json = auth.open(sealed).ok_or_else(|| Status::invalid_argument(FOREIGN))?;
        let handle: QueryHandle = serde_json::from_slice(json).map_err(|_| Status::invalid_argument(FOREIGN))?;
        if handle.user != principal.user {
            return Err(Status::permission_denied("this ticket was issued to another user; run the query again"));
        }
        Ok(handle)
    }

    /// The bound parameter values, in order.
    pub(super) fn parameters(&self) -> Result<Vec<ScalarValue>, Status> {
        let Some(encoded) = &self.params else { return Ok(Vec::new()) };
        let bytes = STANDARD.decode(encoded).map_err(|_| Status::invalid_argument(FOREIGN))?;
        let mut reader = StreamReader::try_new(bytes.as_slice(), None).map_err(|_| Status::invalid_argument(FOREIGN))?;
        match reader.next() {
            Some(Ok(batch)) => row_values(&batch),
            _ => Ok(Vec::new()),
        }
    }

    /// Binds `batches` (what a client sent through DoPut) as this statement's parameters.
    pub(super) fn bind(&mut self, batches: &[RecordBatch]) -> Result<(), Status> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            self.params = None;
            return Ok(());
        };
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "{rows} rows of parameters were bound; salespulse runs a query with one row of parameters at a time"
            )));
        }
        row_values(batch)?;
        let mut bytes = Vec::new();
        let mut writer =
            StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        writer.write(batch).map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        writer.finish().map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        drop(writer);
        self.params = Some(STANDARD.encode(bytes));
        Ok(())
    }
}

/// The values of row 0 of `batch`, one per column. Dense-union columns (as flightsql-dbapi
/// sends them) yield the value of the member that is set.
fn row_values(batch: &RecordBatch) -> Result<Vec<ScalarValue>, Status> {
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = if let Some(union) = column.as_any().downcast_ref::<UnionArray>() {
                let type_id = union.type_id(0);
                let child = union.child(type_id);
                let offset = union.value_offset(0);
                ScalarValue::try_from_array(child.as_ref(), offset)
            } else {
                ScalarValue::try_from_array(column.as_ref(), 0)
            };
            value.map_err(|e| Status::invalid_argument(format!("parameter {}: {e}", i + 1)))
        })
        .collect()
}

/// The parameter schema a prepared statement advertises: `$1`, `$2`, … with the types the
/// planner inferred, text where it could not tell.
pub(super) fn parameter_schema(types: &[(String, Option<DataType>)]) -> Arc<Schema> {
    let fields: Vec<arrow::datatypes::Field> = types
        .iter()
        .map(|(name, t)| arrow::datatypes::Field::new(name, t.clone().unwrap_or(DataType::Utf8), true))
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::time::Duration;

    fn principal(user: &str) -> Principal {
        Principal { user: user.into(), tenants: None }
    }

    #[test]
    fn handles_round_trip_with_parameters() {
        let auth = Authenticator::new(&[], Some(b"0123456789abcdef"), Duration::from_secs(60));
        let mut handle = QueryHandle {
            sql: "select $1, $2".into(),
            tenant: Some("demo".into()),
            user: "anonymous".into(),
            snapshot_id: None,
            profile: OutputProfile::Grafana,
            params: None,
        };
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![7])), Arc::new(StringArray::from(vec!["x"]))]).unwrap();
        handle.bind(&[batch]).unwrap();
        let sealed = handle.seal(&auth).unwrap();
        let opened = QueryHandle::open(&sealed, &auth, &Principal::anonymous()).unwrap();
        assert_eq!(opened.parameters().unwrap(), vec![ScalarValue::Int64(Some(7)), ScalarValue::Utf8(Some("x".into()))]);
        assert_eq!(opened.profile, OutputProfile::Grafana);
        assert_eq!(QueryHandle::open(&sealed, &auth, &principal("mallory")).unwrap_err().code(), tonic::Code::PermissionDenied);
        let mut forged = sealed.clone();
        forged[2] ^= 0x20;
        assert_eq!(QueryHandle::open(&forged, &auth, &Principal::anonymous()).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn more_than_one_row_is_refused() {
        let mut handle = QueryHandle {
            sql: "select $1".into(),
            tenant: None,
            user: "anonymous".into(),
            snapshot_id: None,
            profile: OutputProfile::Standard,
            params: None,
        };
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let err = handle.bind(&[batch]).unwrap_err();
        assert!(err.message().contains("one row of parameters"), "{}", err.message());
    }
}
