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
    #[error("{dir} is not a safe place for keys: {why}; give a directory only the server's user can write (created 0700 when absent)")]
    UnsafeDirectory { dir: String, why: String },
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
    prepare_directory(dir)?;
    if files.cert.is_file() && files.key.is_file() && files.ca_cert.is_file() {
        return Ok(files);
    }
    let write = |path: &Path, text: &str, secret: bool| {
        write_file(dir, path, text, secret).map_err(|source| SelfSignedError::Write {
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

/// Make sure `dir` can hold keys: created 0700 when absent; otherwise a
/// real directory (not a link), owned by the server's user and writable by
/// no one else, so that nobody can plant a link or a CA of their own there
/// (files found in it are then the server's own, and reused).
fn prepare_directory(dir: &Path) -> Result<(), SelfSignedError> {
    let refuse = |why: String| SelfSignedError::UnsafeDirectory {
        dir: dir.display().to_string(),
        why,
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .map_err(|source| SelfSignedError::Write {
                path: dir.display().to_string(),
                source,
            })?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::symlink_metadata(dir).map_err(|error| refuse(error.to_string()))?;
        if !metadata.is_dir() {
            return Err(refuse("it is not a directory (a link?)".to_string()));
        }
        if metadata.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "others may write it (mode {:o})",
                metadata.mode() & 0o777
            )));
        }
        // The server's user: the owner of a file it creates there.
        let probe = tempfile::tempfile_in(dir).map_err(|error| refuse(error.to_string()))?;
        let server_uid = probe
            .metadata()
            .map_err(|error| refuse(error.to_string()))?
            .uid();
        if metadata.uid() != server_uid {
            return Err(refuse(format!(
                "it is owned by uid {}, not the server's uid {server_uid}",
                metadata.uid()
            )));
        }
    }
    Ok(())
}

/// Write a file through a new temporary file in `dir` (created anew, never
/// through a link), its mode set on the open file (0600 for a private
/// key), then renamed over `path`: a link planted at `path` is replaced,
/// never followed.
fn write_file(dir: &Path, path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if secret { 0o600 } else { 0o644 };
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    temporary.write_all(text.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    Ok(())
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
    let year = std::time::Duration::from_secs(365 * 24 * 3600);
    generate_with_validity(names, year, year)
}

/// Now, as time since the Unix epoch (rcgen's dates are the epoch plus
/// this; its date type is not re-exported).
fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The CA's parameters. A serving certificate signed later with the same
/// key names this subject as its issuer, so it must not change.
fn ca_params(valid_for: std::time::Duration) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "infergate local CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch();
    params.not_after = params.not_before + valid_for;
    Ok(params)
}

/// A serving certificate for `names`, signed by `issuer`.
fn serving<S: rcgen::SigningKey>(
    issuer: &Issuer<'_, S>,
    names: &[&str],
    valid_for: std::time::Duration,
) -> Result<(String, String), rcgen::Error> {
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
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch();
    params.not_after = params.not_before + valid_for;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A new CA and a serving pair for `names`, with the validities given.
pub fn generate_with_validity(
    names: &[&str],
    ca_valid_for: std::time::Duration,
    serving_valid_for: std::time::Duration,
) -> Result<Pems, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let params = ca_params(ca_valid_for)?;
    let ca_cert = params.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(params, ca_key);
    let (cert, key) = serving(&issuer, names, serving_valid_for)?;
    Ok(Pems {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key_pem,
        cert,
        key,
    })
}

/// A new serving pair for `names` signed by an existing CA of
/// [`generate_with_validity`], given its key (the certificate is not
/// parsed: the issuer's subject is the fixed one of `ca_params`).
pub fn sign_serving(
    ca_key_pem: &str,
    names: &[&str],
    valid_for: std::time::Duration,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(valid_for)?, ca_key);
    serving(&issuer, names, valid_for)
}

/// Write `files` (path, text, private) into `dir`, made safe for keys as
/// `ensure` makes it.
pub fn write_private(dir: &Path, files: &[(&Path, &str, bool)]) -> Result<(), SelfSignedError> {
    prepare_directory(dir)?;
    for (path, text, secret) in files {
        write_file(dir, path, text, *secret).map_err(|source| SelfSignedError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
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

    /// A link planted at `ca.key` is replaced, never followed: the file it
    /// pointed at keeps its text (it used to get the CA key, mode 0644).
    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let victim = tempfile::NamedTempFile::new().expect("victim");
        std::fs::write(victim.path(), "precious").expect("write");
        std::os::unix::fs::symlink(victim.path(), dir.path().join("ca.key")).expect("link");
        ensure(dir.path()).expect("certificates");
        assert_eq!(
            std::fs::read_to_string(victim.path()).expect("read"),
            "precious"
        );
        let key = std::fs::symlink_metadata(dir.path().join("ca.key")).expect("ca.key");
        assert!(key.is_file(), "ca.key is a file of its own now");
    }

    /// A directory others may write (where they could plant a link or a
    /// CA) is refused; an absent one is created 0700.
    #[cfg(unix)]
    #[test]
    fn only_a_private_directory_holds_keys() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().expect("temp dir");
        let shared = parent.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let Err(error) = ensure(&shared) else {
            panic!("a directory others may write was used")
        };
        assert!(error.to_string().contains("others may write it"), "{error}");
        assert!(!shared.join("tls.key").exists());
        let fresh = parent.path().join("fresh");
        ensure(&fresh).expect("certificates");
        let mode = std::fs::metadata(&fresh).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
