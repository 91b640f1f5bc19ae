//! TLS for the webhook: rustls with the ring provider, certificates
//! reloaded from disk when they change (cert-manager rotates them), and
//! optional verification of the apiserver's client certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("the private key in {path} cannot be used: {message}")]
    Key { path: String, message: String },
    #[error("the key in {key} does not belong to the certificate in {cert} ({message}); a rotation may be half written")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A PEM error in words: rustls-pki-types prints the marker it missed as a
/// list of byte values.
fn pem_error(error: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    match error {
        Error::MissingSectionEnd { end_marker } => {
            format!(
                "the PEM block is cut off: no `-----END {}-----` line",
                text(end_marker)
            )
        }
        Error::IllegalSectionStart { line } => {
            format!("a PEM block starts with a malformed line: `{}`", text(line))
        }
        Error::NoItemsFound => "no PEM block of the expected kind".to_string(),
        other => other.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read a certificate chain and its key into a rustls CertifiedKey.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path, message: String| TlsError::Read {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|error| read(cert_path, pem_error(&error)))?
        .collect::<Result<_, _>>()
        .map_err(|error| read(cert_path, pem_error(&error)))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| read(key_path, pem_error(&error)))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::Key {
            path: key_path.display().to_string(),
            message: error.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing_key);
    // A key written before its certificate (or the reverse) must never be
    // served: every handshake would fail its signature check.
    certified.keys_match().map_err(|error| TlsError::Mismatch {
        cert: cert_path.display().to_string(),
        key: key_path.display().to_string(),
        message: error.to_string(),
    })?;
    Ok(certified)
}

/// What identifies the files on disk: for each, where its path resolves
/// (a Secret volume swaps a `..data` symlink to a new directory), its
/// modification time and length.
type Stamp = [(Option<PathBuf>, Option<SystemTime>, u64); 2];

/// The serving certificate, swapped in place when the files change.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as last loaded.
    stamp: RwLock<Option<Stamp>>,
    /// The files as last refused, so that a bad pair is reported once.
    refused: RwLock<Option<Stamp>>,
}

impl CertStore {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let key = load_certified_key(cert_path, key_path)?;
        let store = Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(key)),
            stamp: RwLock::new(None),
            refused: RwLock::new(None),
        };
        if let Ok(mut stamp) = store.stamp.write() {
            *stamp = store.file_stamp();
        }
        Ok(Arc::new(store))
    }

    fn file_stamp(&self) -> Option<Stamp> {
        let one = |path: &Path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((
                std::fs::canonicalize(path).ok(),
                metadata.modified().ok(),
                metadata.len(),
            ))
        };
        Some([one(&self.cert_path)?, one(&self.key_path)?])
    }

    /// Reload when the files changed. A pair that does not load or whose
    /// key does not match its certificate (a rotation half written) keeps
    /// the old pair serving; it is tried again when the files change.
    /// `Ok(None)`: nothing changed, or a refused pair is still there.
    pub fn reload_if_changed(&self) -> Result<Option<()>, TlsError> {
        let stamp = self.file_stamp();
        let unchanged = self.stamp.read().map(|old| *old == stamp).unwrap_or(false);
        let refused_again = self
            .refused
            .read()
            .map(|old| *old == stamp)
            .unwrap_or(false);
        if unchanged || refused_again || stamp.is_none() {
            return Ok(None);
        }
        let key = match load_certified_key(&self.cert_path, &self.key_path) {
            Ok(key) => key,
            Err(error) => {
                if let Ok(mut refused) = self.refused.write() {
                    *refused = stamp;
                }
                return Err(error);
            }
        };
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(key);
        }
        if let Ok(mut old) = self.stamp.write() {
            *old = stamp;
        }
        Ok(Some(()))
    }

    /// Check the files every `interval` until the process ends.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                match store.reload_if_changed() {
                    Ok(Some(())) => eprintln!("infergate: reloaded the TLS certificate"),
                    Ok(None) => {}
                    Err(error) => {
                        eprintln!("infergate: keeping the current TLS certificate: {error}")
                    }
                }
            }
        });
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| Arc::clone(&key))
    }
}

/// A rustls server configuration (TLS 1.2 and 1.3) around the store.
pub fn server_config(
    store: Arc<CertStore>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|error| TlsError::Read {
                path: path.display().to_string(),
                message: error.to_string(),
            })? {
                let cert = cert.map_err(|error| TlsError::Read {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
                roots.add(cert).map_err(|error| {
                    TlsError::Config(format!("client CA {}: {error}", path.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_are_words() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("tls.crt");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").expect("write");
        let error = load_certified_key(&cert, &cert).expect_err("cut off");
        let text = error.to_string();
        assert!(text.contains("-----END CERTIFICATE-----"), "{text}");
        assert!(!text.contains("[45,"), "{text}");
    }
}
