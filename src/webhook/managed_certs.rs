//! `serve --managed-certificates`: certificates without cert-manager.
//!
//! The server keeps its CA and serving certificate in a Secret of its own
//! namespace and the CA in the `caBundle` of its two webhook
//! configurations, as Kyverno does. At start every replica reads the
//! Secret; the first to find none creates it, and a replica that loses
//! that race (409 AlreadyExists) adopts the winner's. A background check
//! renews the serving certificate (same CA, so the caBundle stays) when a
//! third of its life is left, with the Secret's resourceVersion as the
//! lock, and every replica follows the Secret into its files, which the
//! TLS loader reloads. It also puts the CA back into a configuration whose
//! caBundle someone reset (a `kubectl apply` of webhooks.yaml).

use crate::input::pointer::Lookup;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{json, Value};

use crate::k8s::kube_api::describe;

/// How long the generated CA and serving certificates are valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Secret annotations recording when each certificate expires (Unix
/// seconds), so that renewal needs no X.509 parser.
const SERVING_EXPIRES: &str = "infergate.dev/serving-certificate-expires";
const CA_EXPIRES: &str = "infergate.dev/ca-expires";

/// What to manage, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub secret: String,
    /// The Mutating and Validating webhook configurations of this name.
    pub configuration: String,
    /// DNS names (and IPs) of the serving certificate.
    pub names: Vec<String>,
    /// Where the serving pair is written for the TLS loader.
    pub dir: PathBuf,
    pub check_interval: Duration,
}

impl Options {
    /// A failure to read or write the Secret, naming it.
    fn secret_error(&self, message: String) -> ManagedError {
        ManagedError::Secret {
            namespace: self.namespace.clone(),
            name: self.secret.clone(),
            message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("cannot read or write Secret {namespace}/{name}: {message}")]
    Secret {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("Secret {namespace}/{name} was not made by infergate (no {CA_EXPIRES} annotation or no ca.key); delete it or serve with --tls-cert and --tls-key")]
    Foreign { namespace: String, name: String },
    #[error("cannot update the caBundle of {kind} {name}: {message}")]
    Configuration {
        kind: String,
        name: String,
        message: String,
    },
    #[error(transparent)]
    Certificates(#[from] super::selfsigned::SelfSignedError),
}

impl From<rcgen::Error> for ManagedError {
    fn from(error: rcgen::Error) -> Self {
        ManagedError::Certificates(error.into())
    }
}

/// The pair and the CA as kept in the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bundle {
    ca_cert: String,
    ca_key: String,
    cert: String,
    key: String,
    serving_expires: u64,
    ca_expires: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

impl Bundle {
    fn generate(names: &[String]) -> Result<Self, rcgen::Error> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pems =
            super::selfsigned::generate_with_validity(&names, CA_VALIDITY, SERVING_VALIDITY)?;
        let now = now();
        Ok(Bundle {
            ca_cert: pems.ca_cert,
            ca_key: pems.ca_key,
            cert: pems.cert,
            key: pems.key,
            serving_expires: now + SERVING_VALIDITY.as_secs(),
            ca_expires: now + CA_VALIDITY.as_secs(),
        })
    }

    /// A new serving pair signed by the same CA.
    fn renewed(&self, names: &[String]) -> Result<Self, rcgen::Error> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (cert, key) = super::selfsigned::sign_serving(&self.ca_key, &names, SERVING_VALIDITY)?;
        Ok(Bundle {
            cert,
            key,
            serving_expires: now() + SERVING_VALIDITY.as_secs(),
            ..self.clone()
        })
    }

    /// Whether a third or less of the serving certificate's life is left.
    fn due(&self) -> bool {
        let left = self.serving_expires.saturating_sub(now());
        left < SERVING_VALIDITY.as_secs() / 3
    }

    fn from_secret(secret: &Value, namespace: &str, name: &str) -> Result<Self, ManagedError> {
        let foreign = || ManagedError::Foreign {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let field = |key: &str| -> Option<String> {
            let encoded = secret.get("data")?.get(key)?.as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        };
        let annotation = |key: &str| -> Option<u64> {
            secret
                .at("/metadata/annotations")?
                .get(key)?
                .as_str()?
                .parse()
                .ok()
        };
        Ok(Bundle {
            ca_cert: field("ca.crt").ok_or_else(foreign)?,
            ca_key: field("ca.key").ok_or_else(foreign)?,
            cert: field("tls.crt").ok_or_else(foreign)?,
            key: field("tls.key").ok_or_else(foreign)?,
            serving_expires: annotation(SERVING_EXPIRES).ok_or_else(foreign)?,
            ca_expires: annotation(CA_EXPIRES).ok_or_else(foreign)?,
        })
    }

    fn to_secret(&self, namespace: &str, name: &str, resource_version: Option<&str>) -> Value {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mut metadata = json!({
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "infergate", "app.kubernetes.io/managed-by": "infergate"},
            "annotations": {
                SERVING_EXPIRES: self.serving_expires.to_string(),
                CA_EXPIRES: self.ca_expires.to_string(),
            },
        });
        if let Some(version) = resource_version {
            metadata["resourceVersion"] = json!(version);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "kubernetes.io/tls",
            "data": {
                "ca.crt": encode(&self.ca_cert),
                "ca.key": encode(&self.ca_key),
                "tls.crt": encode(&self.cert),
                "tls.key": encode(&self.key),
            },
        })
    }
}

fn secrets(client: &kube::Client, namespace: &str) -> kube::Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets");
    kube::Api::namespaced_with(client.clone(), namespace, &resource)
}

/// A 409: another replica created or changed the object first.
fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The Secret's bundle and resourceVersion, or `None` when there is none.
async fn read(
    client: &kube::Client,
    options: &Options,
) -> Result<Option<(Bundle, String)>, ManagedError> {
    let failed = |message: String| options.secret_error(message);
    let found = secrets(client, &options.namespace)
        .get_opt(&options.secret)
        .await
        .map_err(|error| failed(describe(&error)))?;
    let Some(secret) = found else { return Ok(None) };
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    let value = serde_json::to_value(&secret).map_err(|error| failed(error.to_string()))?;
    let bundle = Bundle::from_secret(&value, &options.namespace, &options.secret)?;
    Ok(Some((bundle, version)))
}

/// The bundle every replica agrees on: the Secret's, created when absent
/// (the loser of a creation race adopts the winner's) and renewed when due
/// (the loser of an update race adopts the winner's).
async fn agreed(client: &kube::Client, options: &Options) -> Result<Bundle, ManagedError> {
    let failed = |message: String| options.secret_error(message);
    let api = secrets(client, &options.namespace);
    for _ in 0..5 {
        match read(client, options).await? {
            None => {
                let bundle = Bundle::generate(&options.names)?;
                let object: DynamicObject = serde_json::from_value(bundle.to_secret(
                    &options.namespace,
                    &options.secret,
                    None,
                ))
                .map_err(|error| failed(error.to_string()))?;
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => return Ok(bundle),
                    Err(error) if is_conflict(&error) => continue,
                    Err(error) => return Err(failed(describe(&error))),
                }
            }
            Some((bundle, version)) if bundle.due() => {
                let renewed = bundle.renewed(&options.names)?;
                let object: DynamicObject = serde_json::from_value(renewed.to_secret(
                    &options.namespace,
                    &options.secret,
                    Some(&version),
                ))
                .map_err(|error| failed(error.to_string()))?;
                match api
                    .replace(&options.secret, &PostParams::default(), &object)
                    .await
                {
                    Ok(_) => return Ok(renewed),
                    Err(error) if is_conflict(&error) => continue,
                    Err(error) => return Err(failed(describe(&error))),
                }
            }
            Some((bundle, _)) => return Ok(bundle),
        }
    }
    Err(failed(
        "the Secret kept changing under five attempts".to_string(),
    ))
}

/// Put the CA into every webhook of both configurations whose caBundle
/// differs, with the configuration's resourceVersion as the lock.
async fn inject(
    client: &kube::Client,
    options: &Options,
    ca_cert: &str,
) -> Result<usize, ManagedError> {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_cert);
    let mut changed = 0;
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let failed = |message: String| ManagedError::Configuration {
            kind: kind.to_string(),
            name: options.configuration.clone(),
            message,
        };
        let plural = format!("{}s", kind.to_lowercase());
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            &plural,
        );
        let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &resource);
        for attempt in 0..5 {
            let Some(configuration) = api
                .get_opt(&options.configuration)
                .await
                .map_err(|error| failed(describe(&error)))?
            else {
                break;
            };
            let mut value =
                serde_json::to_value(&configuration).map_err(|error| failed(error.to_string()))?;
            let mut edits = 0;
            if let Some(webhooks) = value.get_mut("webhooks").and_then(Value::as_array_mut) {
                for webhook in webhooks {
                    let current = webhook.at("/clientConfig/caBundle").and_then(Value::as_str);
                    if current != Some(bundle.as_str()) {
                        webhook["clientConfig"]["caBundle"] = json!(bundle);
                        edits += 1;
                    }
                }
            }
            if edits == 0 {
                break;
            }
            let object: DynamicObject =
                serde_json::from_value(value).map_err(|error| failed(error.to_string()))?;
            match api
                .replace(&options.configuration, &PostParams::default(), &object)
                .await
            {
                Ok(_) => {
                    changed += edits;
                    break;
                }
                Err(error) if is_conflict(&error) && attempt < 4 => continue,
                Err(error) => return Err(failed(describe(&error))),
            }
        }
    }
    Ok(changed)
}

fn write(options: &Options, bundle: &Bundle) -> Result<(PathBuf, PathBuf), ManagedError> {
    let cert = options.dir.join("tls.crt");
    let key = options.dir.join("tls.key");
    super::selfsigned::write_private(
        &options.dir,
        &[(&key, &bundle.key, true), (&cert, &bundle.cert, false)],
    )?;
    Ok((cert, key))
}

/// Agree on the certificates, write the serving pair to `options.dir` and
/// inject the CA; returns the files to serve with.
pub async fn ensure(
    client: &kube::Client,
    options: &Options,
) -> Result<(PathBuf, PathBuf), ManagedError> {
    let bundle = agreed(client, options).await?;
    let files = write(options, &bundle)?;
    inject(client, options, &bundle.ca_cert).await?;
    Ok(files)
}

/// Keep the files and the caBundles current: every `check_interval`, the
/// same steps as at start. A failed check is reported and retried at the
/// next one; the certificates served meanwhile are still valid (renewal
/// starts with a third of their life left).
pub fn spawn(client: kube::Client, options: Options) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(options.check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = ensure(&client, &options).await {
                eprintln!("infergate: managed certificates: {error}");
            }
        }
    })
}

/// The serving certificate's names for a Service `infergate` in
/// `namespace`, as webhook-deploy/ names it.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    fn names() -> Vec<String> {
        service_names("infergate", "ml-platform")
    }

    /// `cert` chains to `ca` for `name`, as the apiserver checks it.
    fn verifies(ca: &str, cert: &str, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(der.expect("CA PEM")).expect("CA");
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier");
        let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).expect("leaf");
        use rustls::client::danger::ServerCertVerifier as _;
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).expect("name"),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn a_secret_round_trips_and_foreign_ones_are_refused() {
        let bundle = Bundle::generate(&names()).expect("bundle");
        let secret = bundle.to_secret("ml-platform", "infergate-tls", Some("7"));
        assert_eq!(secret["metadata"]["resourceVersion"], "7");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let read = Bundle::from_secret(&secret, "ml-platform", "infergate-tls").expect("read");
        assert_eq!(read, bundle);
        // cert-manager's Secret has no CA key and no expiry annotations.
        let mut foreign = secret.clone();
        foreign["metadata"]["annotations"] = json!({});
        let error =
            Bundle::from_secret(&foreign, "ml-platform", "infergate-tls").expect_err("not ours");
        assert!(
            error.to_string().contains("not made by infergate"),
            "{error}"
        );
    }

    #[test]
    fn renewal_keeps_the_ca_and_chains_to_it() {
        let bundle = Bundle::generate(&names()).expect("bundle");
        assert!(!bundle.due(), "a new certificate is not due");
        assert!(verifies(
            &bundle.ca_cert,
            &bundle.cert,
            "infergate.ml-platform.svc"
        ));
        let mut old = bundle.clone();
        old.serving_expires = now() + 3600;
        assert!(old.due(), "an hour left is due");
        let renewed = old.renewed(&names()).expect("renewed");
        assert_eq!(renewed.ca_cert, bundle.ca_cert);
        assert_ne!(renewed.cert, bundle.cert);
        assert!(!renewed.due());
        // The caBundle the apiserver holds still verifies the new pair.
        assert!(verifies(
            &bundle.ca_cert,
            &renewed.cert,
            "infergate.ml-platform.svc.cluster.local"
        ));
        assert!(!verifies(
            &bundle.ca_cert,
            &renewed.cert,
            "infergate.other.svc"
        ));
    }
}
