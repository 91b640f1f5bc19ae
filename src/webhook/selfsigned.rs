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
    let write = |path: &Path, text: &str, secret: bool| {
        std::fs::create_dir_all(dir)
            .and_then(|()| write_file(path, text, secret))
            .map_err(|source| SelfSignedError::Write {
                path: path.display().to_string(),
                source,
            })
    };
    let pems = generate_with_ca_key(SERVING_NAMES)?;
    write(&files.ca_cert, &pems.ca_cert, false)?;
    // The CA key lets a same-CA rotation be tried locally; keys are 0600.
    write(&dir.join("ca.key"), &pems.ca_key, true)?;
    write(&files.cert, &pems.cert, false)?;
    write(&files.key, &pems.key, true)?;
    write(
        &files.ca_bundle,
        &base64::engine::general_purpose::STANDARD.encode(pems.ca_cert.as_bytes()),
        false,
    )?;
    Ok(files)
}

/// Write a file; a secret one (a private key) readable by its owner only.
fn write_file(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options.open(path)?.write_all(text.as_bytes())
}

/// The PEM texts of a local CA and the serving pair it signed.
pub struct Pems {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// A CA certificate, and a serving certificate and key it signed for
/// `names`, all PEM.
pub fn generate(names: &[&str]) -> Result<(String, String, String), rcgen::Error> {
    let pems = generate_with_ca_key(names)?;
    Ok((pems.ca_cert, pems.cert, pems.key))
}

/// The CA (with its key) and the serving pair, each valid for a year from
/// now, as cert-manager's default duration is 90 days and a local trial
/// needs less.
pub fn generate_with_ca_key(names: &[&str]) -> Result<Pems, rcgen::Error> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let not_after = not_before + std::time::Duration::from_secs(365 * 24 * 3600);
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "infergate local CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
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
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pems {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key_pem,
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_the_ca_key_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = ensure(dir.path()).expect("certificates");
        assert!(dir.path().join("ca.key").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [files.key.clone(), dir.path().join("ca.key")] {
                let mode = std::fs::metadata(&key).expect("key").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            }
        }
    }
}
