//! Statement tickets and prepared-statement handles: one self-contained, signed value.
//!
//! A handle carries the SQL, the tenant, the user it was issued to, the snapshot it was
//! planned on, the output profile and, once a client has bound them through DoPut, the
//! parameter values (one Arrow IPC row). The JSON payload is sealed with the server's HMAC
//! key, so a handle cannot be altered or forged, any replica with the key can redeem it,
//! and the server keeps no per-statement state (docs/clients.md § Schemas, tickets and
//! handles, items 4 and 5).
//!
//! Whatever bytes a client sends back, [`QueryHandle::open_sealed`] and
//! [`QueryHandle::parameter_batch`] answer with a [`HandleError`], never a panic: the
//! `ticket` fuzz target (fuzz/) holds them to it.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::auth::Authenticator;

/// Which output types a client can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputProfile {
    /// Utf8, Binary, Int64, Float64, Decimal128, Boolean, Date32, `Timestamp(µs, UTC)`.
    #[default]
    Standard,
    /// The Grafana Flight SQL plugin: `Timestamp(ns, UTC)`, numbers, booleans and `Utf8` only.
    Grafana,
}

/// What a ticket or prepared-statement handle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryHandle {
    pub sql: String,
    pub tenant: Option<String>,
    pub user: String,
    pub snapshot_id: Option<String>,
    #[serde(default)]
    pub profile: OutputProfile,
    /// Base64 of an Arrow IPC stream with one row of parameter values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

/// Why a handle a client sent back is refused.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Not sealed by this server's key, altered, truncated, or not a handle at all.
    #[error("the ticket or prepared statement handle was not issued by this server, or was altered; run the query again")]
    Foreign,
    /// Sealed by this server for another user.
    #[error("this ticket was issued to another user; run the query again")]
    OtherUser,
    /// The parameters a client bound cannot be carried in a handle.
    #[error("parameters: {0}")]
    Parameters(String),
}

impl QueryHandle {
    /// The handle as the bytes a client receives: JSON followed by its MAC.
    pub fn seal_with(&self, auth: &Authenticator) -> Vec<u8> {
        // A struct of strings and a unit enum always serializes.
        let json = serde_json::to_vec(self).unwrap_or_default();
        auth.seal(&json)
    }

    /// Opens bytes a client sent back and checks that they were issued to `user`.
    ///
    /// # Errors
    /// [`HandleError::Foreign`] for anything this `auth` did not seal (or that is not a
    /// handle), [`HandleError::OtherUser`] for another user's handle.
    pub fn open_sealed(sealed: &[u8], auth: &Authenticator, user: &str) -> Result<QueryHandle, HandleError> {
        let json = auth.open(sealed).ok_or(HandleError::Foreign)?;
        let handle: QueryHandle = serde_json::from_slice(json).map_err(|_| HandleError::Foreign)?;
        if handle.user != user {
            return Err(HandleError::OtherUser);
        }
        Ok(handle)
    }

    /// The bound parameter row, if any.
    ///
    /// # Errors
    /// [`HandleError::Foreign`] when the parameters are not one Arrow IPC stream.
    pub fn parameter_batch(&self) -> Result<Option<RecordBatch>, HandleError> {
        let Some(encoded) = &self.params else { return Ok(None) };
        let bytes = STANDARD.decode(encoded).map_err(|_| HandleError::Foreign)?;
        let mut reader = StreamReader::try_new(bytes.as_slice(), None).map_err(|_| HandleError::Foreign)?;
        match reader.next() {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(_)) => Err(HandleError::Foreign),
            None => Ok(None),
        }
    }

    /// Carries `batch` (one row of parameter values) in the handle; `None` clears it.
    ///
    /// # Errors
    /// [`HandleError::Parameters`] when the batch has other than one row or does not encode.
    pub fn set_parameter_batch(&mut self, batch: Option<&RecordBatch>) -> Result<(), HandleError> {
        let Some(batch) = batch else {
            self.params = None;
            return Ok(());
        };
        if batch.num_rows() != 1 {
            return Err(HandleError::Parameters(format!(
                "{} rows of parameters were bound; salespulse runs a query with one row of parameters at a time",
                batch.num_rows()
            )));
        }
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(|e| HandleError::Parameters(e.to_string()))?;
        writer.write(batch).map_err(|e| HandleError::Parameters(e.to_string()))?;
        writer.finish().map_err(|e| HandleError::Parameters(e.to_string()))?;
        drop(writer);
        self.params = Some(STANDARD.encode(bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn handle(user: &str) -> QueryHandle {
        QueryHandle { sql: "select $1, $2".into(), tenant: Some("demo".into()), user: user.into(), snapshot_id: None, profile: OutputProfile::Grafana, params: None }
    }

    #[test]
    fn handles_round_trip_with_their_parameter_row() {
        let auth = Authenticator::new(&[], Some(b"0123456789abcdef"), Duration::from_secs(60));
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![7])), Arc::new(StringArray::from(vec!["x"]))]).unwrap();
        let mut h = handle("grafana");
        h.set_parameter_batch(Some(&batch)).unwrap();
        let opened = QueryHandle::open_sealed(&h.seal_with(&auth), &auth, "grafana").unwrap();
        assert_eq!(opened, h);
        assert_eq!(opened.parameter_batch().unwrap(), Some(batch));
    }

    #[test]
    fn another_users_forged_or_truncated_handles_are_refused() {
        let auth = Authenticator::new(&[], Some(b"0123456789abcdef"), Duration::from_secs(60));
        let sealed = handle("grafana").seal_with(&auth);
        assert!(matches!(QueryHandle::open_sealed(&sealed, &auth, "mallory"), Err(HandleError::OtherUser)));
        let mut forged = sealed.clone();
        forged[2] ^= 0x20;
        assert!(matches!(QueryHandle::open_sealed(&forged, &auth, "grafana"), Err(HandleError::Foreign)));
        assert!(matches!(QueryHandle::open_sealed(&sealed[..20], &auth, "grafana"), Err(HandleError::Foreign)));
        let other_key = Authenticator::new(&[], Some(b"another key 0123"), Duration::from_secs(60));
        assert!(matches!(QueryHandle::open_sealed(&sealed, &other_key, "grafana"), Err(HandleError::Foreign)));
    }

    #[test]
    fn signed_garbage_parameters_are_an_error() {
        let auth = Authenticator::new(&[], Some(b"0123456789abcdef"), Duration::from_secs(60));
        let mut h = handle("grafana");
        h.params = Some("bm90IGFuIGlwYyBzdHJlYW0=".into());
        let opened = QueryHandle::open_sealed(&h.seal_with(&auth), &auth, "grafana").unwrap();
        assert!(matches!(opened.parameter_batch(), Err(HandleError::Foreign)));
        h.params = Some("%%% not base64".into());
        assert!(matches!(h.parameter_batch(), Err(HandleError::Foreign)));
    }

    #[test]
    fn more_than_one_row_is_refused() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let err = handle("grafana").set_parameter_batch(Some(&batch)).unwrap_err();
        assert!(err.to_string().contains("one row of parameters"), "{err}");
    }
}
