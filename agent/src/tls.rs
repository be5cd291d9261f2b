//! TLS towards PostgreSQL with rustls: `prefer`/`require` encrypt without verifying (as libpq
//! does without a root certificate), `verify-full` checks the chain against a given CA file and
//! the name against `--ssl-server-name` (or the host), so a client reaching the database through
//! the hub's VIP can still verify the database certificate's real name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::SslMode;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// verify-full without a CA file.
    #[error("sslmode verify-full needs --ssl-root-cert")]
    MissingRootCert,
    /// The CA file could not be read or parsed.
    #[error("cannot read root certificates from {path}: {reason}")]
    RootCert {
        /// File name.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `mode`; `None` for `disable`.
pub fn client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<Option<ClientConfig>, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        SslMode::VerifyFull => {
            let path = root_cert.ok_or(TlsError::MissingRootCert)?;
            builder
                .with_root_certificates(load_roots(path)?)
                .with_no_client_auth()
        }
    };
    Ok(Some(config))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let err = |reason: String| TlsError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate found".to_owned()));
    }
    Ok(roots)
}

/// Accepts any certificate but still checks the handshake signatures (encryption without
/// authentication, libpq's `prefer`/`require`).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(client_config(SslMode::Disable, None).expect("ok").is_none());
        assert!(client_config(SslMode::Require, None).expect("ok").is_some());
        assert!(client_config(SslMode::Prefer, None).expect("ok").is_some());
        assert!(matches!(
            client_config(SslMode::VerifyFull, None),
            Err(TlsError::MissingRootCert)
        ));
        assert!(matches!(
            client_config(SslMode::VerifyFull, Some(Path::new("/nonexistent.pem"))),
            Err(TlsError::RootCert { .. })
        ));
    }
}
