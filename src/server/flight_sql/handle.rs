//! Tickets and prepared-statement handles in the Flight SQL service. The config crate
//! (`salespulse_config::handle`) seals, opens and carries them; here they are used with gRPC
//! statuses (mapped in `status`) and their parameter row becomes DataFusion values.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UnionArray};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
pub(super) use salespulse_config::handle::QueryHandle;
use tonic::Status;

use salespulse_config::auth::{Authenticator, Principal};

use super::status::IntoStatus;

/// A handle's operations with the errors a Flight SQL client receives.
pub(super) trait HandleStatus: Sized {
    /// The bytes a client receives.
    fn seal(&self, auth: &Authenticator) -> Result<Vec<u8>, Status>;
    /// Opens bytes a client sent back and checks that they were issued to `principal`.
    fn open(sealed: &[u8], auth: &Authenticator, principal: &Principal) -> Result<Self, Status>;
    /// The bound parameter values, in order.
    fn parameters(&self) -> Result<Vec<ScalarValue>, Status>;
    /// Binds `batches` (what a client sent through DoPut) as this statement's parameters.
    fn bind(&mut self, batches: &[RecordBatch]) -> Result<(), Status>;
}

impl HandleStatus for QueryHandle {
    fn seal(&self, auth: &Authenticator) -> Result<Vec<u8>, Status> {
        Ok(self.seal_with(auth))
    }

    fn open(sealed: &[u8], auth: &Authenticator, principal: &Principal) -> Result<QueryHandle, Status> {
        QueryHandle::open_sealed(sealed, auth, &principal.user).map_err(|e| e.status())
    }

    fn parameters(&self) -> Result<Vec<ScalarValue>, Status> {
        match self.parameter_batch().map_err(|e| e.status())? {
            Some(batch) => row_values(&batch),
            None => Ok(Vec::new()),
        }
    }

    fn bind(&mut self, batches: &[RecordBatch]) -> Result<(), Status> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let batch = batches.iter().find(|b| b.num_rows() > 0);
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "{rows} rows of parameters were bound; salespulse runs a query with one row of parameters at a time"
            )));
        }
        if let Some(batch) = batch {
            row_values(batch)?;
        }
        self.set_parameter_batch(batch).map_err(|e| e.status())
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
        .map(|(name, t)| {
            // The type of the column a parameter is compared with, as clients read it
            // (`Utf8`, not the engine's `Utf8View`).
            let t = t.clone().map_or(DataType::Utf8, |t| crate::catalog::client_type(&t).unwrap_or(t));
            arrow::datatypes::Field::new(name, t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use salespulse_config::handle::OutputProfile;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::time::Duration;

    fn principal(user: &str) -> Principal {
        Principal { user: user.into(), tenants: None, may_refresh: false }
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
