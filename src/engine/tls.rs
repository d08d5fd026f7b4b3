//! TLS to an engine on `tcp://`, the way the Docker client does it: the engine's certificate
//! is verified against `ca.pem`, and the exporter shows `cert.pem` and `key.pem`, all from the
//! certificate directory (`DOCKER_CERT_PATH`).
//!
//! There is no fallback: a connection that asked for TLS and cannot get it fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The files of a Docker client certificate directory.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// A client TLS configuration that failed to load, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct TlsError {
    pub path: PathBuf,
    pub message: String,
}

/// Reads the certificate directory into a client configuration. Done once at start, so
/// that a missing or broken file stops the exporter before anything else.
pub fn client_config(directory: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let ca_path = directory.join(CA_FILE);
    let mut roots = RootCertStore::empty();
    for certificate in certificates(&ca_path)? {
        roots.add(certificate).map_err(|error| TlsError {
            path: ca_path.clone(),
            message: format!("not a usable CA certificate: {error}"),
        })?;
    }

    let cert_path = directory.join(CERT_FILE);
    let key_path = directory.join(KEY_FILE);
    let chain = certificates(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|error| TlsError {
        path: key_path.clone(),
        message: format!("no usable private key: {error}"),
    })?;

    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_root_certificates(roots).with_client_auth_cert(chain, key))
        .map_err(|error| TlsError {
            path: cert_path,
            message: format!("does not match {}: {error}", key_path.display()),
        })?;
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file; none at all is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError { path: path.to_owned(), message };
    let found = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(format!("cannot read: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not PEM certificates: {e}")))?;
    if found.is_empty() {
        return Err(error("holds no certificate".to_owned()));
    }
    Ok(found)
}
