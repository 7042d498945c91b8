//! TLS for the front ends (Flight SQL, PostgreSQL, HTTP), from the PEM files of `server.tls_cert` / `server.tls_key`.
//!
//! Files are read and checked once at start, so a wrong path or a key that does not match
//! the certificate stops `serve` with a message naming the key to fix.

use std::sync::Arc;

pub use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use salespulse_config::config::TlsFiles;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls_cert: cannot read {path}: {message}")]
    Cert { path: String, message: String },
    #[error("server.tls_key: cannot read {path}: {message}")]
    Key { path: String, message: String },
    #[error("server.tls_cert/tls_key: the certificate and key do not form a usable pair: {0}")]
    Pair(String),
}

/// The PEM texts, for tonic's `Identity`.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    acceptor: TlsAcceptor,
    http_acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(…)")
    }
}

impl TlsIdentity {
    /// Reads and checks the files.
    ///
    /// # Errors
    /// See [`TlsError`].
    pub fn load(files: &TlsFiles) -> Result<TlsIdentity, TlsError> {
        let cert_pem = std::fs::read(&files.cert)
            .map_err(|e| TlsError::Cert { path: files.cert.display().to_string(), message: e.to_string() })?;
        let key_pem =
            std::fs::read(&files.key).map_err(|e| TlsError::Key { path: files.key.display().to_string(), message: e.to_string() })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Cert { path: files.cert.display().to_string(), message: format!("not PEM certificates: {e}") })?;
        if certs.is_empty() {
            return Err(TlsError::Cert { path: files.cert.display().to_string(), message: "no certificate in the file".into() });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError::Key { path: files.key.display().to_string(), message: format!("no PEM private key: {e}") })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Pair(e.to_string()))?;
        let mut http = config.clone();
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity { cert_pem, key_pem, acceptor: TlsAcceptor::from(Arc::new(config)), http_acceptor: TlsAcceptor::from(Arc::new(http)) })
    }

    /// The acceptor for PostgreSQL connections (SSLRequest and direct TLS).
    pub fn postgres_acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The acceptor for the HTTP endpoint (HTTP/1.1).
    pub fn http_acceptor(&self) -> TlsAcceptor {
        self.http_acceptor.clone()
    }

    /// The tonic server configuration for Flight SQL.
    pub fn tonic_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}
