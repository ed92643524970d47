//! TLS with rustls (ring provider): PEM files, ALPN `h2` / `http/1.1`, a minimum version.
//!
//! Loading fails with a [`ServerError::Tls`] that names the file and the reason.
//!
//! ```
//! use conduit_server::{Config, ServerError, TlsConfig};
//!
//! let tls = TlsConfig::from_pem_files("/no/such/cert.pem", "/no/such/key.pem");
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let err = conduit_server::Server::bind(Config::new("127.0.0.1:0").tls(tls)).await.unwrap_err();
//! assert!(matches!(err, ServerError::Tls { .. }));
//! assert!(err.to_string().contains("/no/such/cert.pem"));
//! # });
//! ```

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::ServerError;
use crate::config::{TlsConfig, TlsVersion};

/// Build the acceptor from the config's PEM files.
pub(crate) fn acceptor(tls: &TlsConfig, http2: bool) -> Result<TlsAcceptor, ServerError> {
    let cert_err = |reason: String| ServerError::Tls {
        what: "certificate",
        path: tls.cert_path.clone(),
        reason,
    };
    let key_err = |reason: String| ServerError::Tls {
        what: "private key",
        path: tls.key_path.clone(),
        reason,
    };

    let certs = std::fs::read(&tls.cert_path).map_err(|e| cert_err(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certs)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not a valid PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(cert_err(
            "no certificate found (expected PEM \"BEGIN CERTIFICATE\")".into(),
        ));
    }
    let key = std::fs::read(&tls.key_path).map_err(|e| key_err(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        key_err(format!(
            "no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
        ))
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| cert_err(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            key_err(format!(
                "certificate and key do not make a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}
