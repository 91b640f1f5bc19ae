//! `serve --self-signed DIR`: a CA and a serving certificate for local
//! trials, with the base64 caBundle for the webhook configurations.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The files written to the directory.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_bundle: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    #[error("cannot create the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Names the serving certificate is valid for: local trials and the
/// in-cluster Service of webhook-deploy/.
pub const SERVING_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "infergate",
    "infergate.infergate",
    "infergate.infergate.svc",
    "infergate.infergate.svc.cluster.local",
];

/// Create (or reuse, when present) a CA and serving certificate in `dir`.
pub fn ensure(dir: &Path) -> Result<SelfSigned, SelfSignedError> {
    let files = SelfSigned {
        ca_cert: dir.join("ca.crt"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        ca_bundle: dir.join("ca-bundle.b64"),
    };
    if files.cert.is_file() && files.key.is_file() && files.ca_cert.is_file() {
        return Ok(files);
    }
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|source| SelfSignedError::Write {
                path: path.display().to_string(),
                source,
            })
    };
    let (ca_pem, cert_pem, key_pem) = generate(SERVING_NAMES)?;
    write(&files.ca_cert, &ca_pem)?;
    write(&files.cert, &cert_pem)?;
    write(&files.key, &key_pem)?;
    write(
        &files.ca_bundle,
        &base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()),
    )?;
    Ok(files)
}

/// A CA certificate, and a serving certificate and key it signed for
/// `names`, all PEM.
pub fn generate(names: &[&str]) -> Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "infergate local CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )?;
    params
        .distinguished_name
        .push(DnType::CommonName, "infergate");
    let cert = params.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}
