//! `infergate serve`: the admission webhook.

use super::*;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the admission endpoints (HTTPS only).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub addr: std::net::SocketAddr,
    /// Serving certificate (PEM); reloaded when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["self_signed", "managed_certificates"],
        conflicts_with = "managed_certificates"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM); reloaded when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["self_signed", "managed_certificates"],
        conflicts_with = "managed_certificates"
    )]
    pub tls_key: Option<PathBuf>,
    /// Keep the CA and serving certificate in a Secret of the server's
    /// namespace (made by the first replica, renewed with a third of its
    /// life left) and the CA in the webhook configurations' caBundle:
    /// no cert-manager needed.
    #[arg(long, conflicts_with = "self_signed")]
    pub managed_certificates: bool,
    /// The Secret of --managed-certificates.
    #[arg(long, value_name = "NAME", default_value = "infergate-tls")]
    pub certificates_secret: String,
    /// The Mutating and Validating webhook configurations whose caBundle
    /// --managed-certificates keeps.
    #[arg(long, value_name = "NAME", default_value = "infergate")]
    pub webhook_configuration: String,
    /// A name of the managed serving certificate (repeatable; default:
    /// the Service `infergate` of the namespace, `.svc` and
    /// `.svc.cluster.local`).
    #[arg(long, value_name = "DNS_OR_IP")]
    pub certificate_name: Vec<String>,
    /// Where --managed-certificates writes the serving pair (created 0700).
    #[arg(long, value_name = "DIR", default_value = "/certs/managed")]
    pub certificates_dir: PathBuf,
    /// How often --managed-certificates checks the Secret and caBundles.
    #[arg(long, value_name = "MS", default_value_t = 3_600_000)]
    pub certificates_check_interval_ms: u64,
    /// Verify the apiserver's client certificate against this CA (PEM).
    /// Cluster lookups (an HPA's target, a namespace's autoscalers and
    /// claims, node pools, the XLA gate on scale) run only then: without
    /// it any pod could send a review and learn from the reply whether a
    /// name exists in another namespace.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Run cluster lookups without --client-ca too (for control planes
    /// that cannot present a client certificate, such as GKE's): any pod
    /// that reaches the port can then probe names (docs/security.md).
    #[arg(long)]
    pub unauthenticated_lookups: bool,
    /// A policy file merged over the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Kubernetes version the schemas are checked against.
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
    /// Plain HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: std::net::SocketAddr,
    /// Kubeconfig for cluster lookups (default: in-cluster configuration
    /// when running in a pod, else none).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Write a CA, a serving certificate for localhost and 127.0.0.1 and the
    /// base64 caBundle to DIR (kept if present) and serve with them.
    #[arg(long, value_name = "DIR")]
    pub self_signed: Option<PathBuf>,
    /// The webhook's own namespace, never reviewed (default: $POD_NAMESPACE,
    /// else infergate).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Budget for one review, under the webhook's timeoutSeconds (3 s).
    #[arg(long, default_value_t = 2500)]
    pub request_timeout_ms: u64,
    /// Reviews that may run at once; a request beyond them waits for a
    /// place until its deadline, then is answered HTTP 429 and the
    /// webhook's failurePolicy applies.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_reviews: usize,
    /// How often the certificate files are checked for rotation.
    #[arg(long, default_value_t = 5000)]
    pub reload_interval_ms: u64,
    /// After SIGTERM, keep accepting and serving this long before draining
    /// (the pod's endpoint is removed meanwhile).
    #[arg(long, default_value_t = 2000)]
    pub shutdown_delay_ms: u64,
}

pub(super) fn serve(args: &ServeArgs) -> ExitCode {
    let policy = match &args.policy {
        Some(path) => Policy::with_file(path),
        None => Policy::built_in(),
    };
    let policy = match policy {
        Ok(policy) => policy,
        Err(error) => {
            return usage_error(
                error,
                "fix the policy file; `infergate policy-schema` prints its format",
            )
        }
    };
    let policy = match with_kube_version(policy, args.kube_version.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let own_namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "infergate".to_string());
    let managed = args
        .managed_certificates
        .then(|| crate::webhook::managed_certs::Options {
            namespace: own_namespace.clone(),
            secret: args.certificates_secret.clone(),
            configuration: args.webhook_configuration.clone(),
            names: if args.certificate_name.is_empty() {
                crate::webhook::managed_certs::service_names("infergate", &own_namespace)
            } else {
                args.certificate_name.clone()
            },
            dir: args.certificates_dir.clone(),
            check_interval: std::time::Duration::from_millis(
                args.certificates_check_interval_ms.max(1000),
            ),
        });
    let (tls_cert, tls_key) = match (&args.self_signed, &args.tls_cert, &args.tls_key) {
        _ if managed.is_some() => (
            args.certificates_dir.join("tls.crt"),
            args.certificates_dir.join("tls.key"),
        ),
        (_, Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (Some(directory), _, _) => match crate::webhook::selfsigned::ensure(directory) {
            Ok(files) => {
                eprintln!(
                    "infergate: self-signed CA {} and serving certificate {}; caBundle in {}",
                    files.ca_cert.display(),
                    files.cert.display(),
                    files.ca_bundle.display()
                );
                (files.cert, files.key)
            }
            Err(error) => return usage_error(error, "give a writable directory"),
        },
        _ => {
            return usage_error(
                "--tls-cert and --tls-key are required",
                "or use --self-signed DIR for a local trial",
            )
        }
    };
    let options = crate::webhook::server::ServeOptions {
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        tls_cert,
        tls_key,
        client_ca: args.client_ca.clone(),
        kubeconfig: args.kubeconfig.clone(),
        lookups: args.client_ca.is_some() || args.unauthenticated_lookups,
        excluded_namespaces: vec![
            "kube-system".to_string(),
            "kube-node-lease".to_string(),
            own_namespace,
        ],
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
        max_concurrent_reviews: args.max_concurrent_reviews,
        reload_interval: std::time::Duration::from_millis(args.reload_interval_ms.max(100)),
        drain_timeout: std::time::Duration::from_secs(25),
        shutdown_delay: std::time::Duration::from_millis(args.shutdown_delay_ms),
        managed,
    };
    // Only ring is compiled in; installing it makes the choice explicit
    // for every rustls user in the process (kube's client included).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Large reviews run on the blocking pool, small ones on the workers
    // (bounded by --max-concurrent-reviews together); every thread gets the
    // same generous stack as the main thread.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(REVIEW_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error, "the async runtime could not start"),
    };
    let engine = std::sync::Arc::new(Engine::new(policy));
    match runtime.block_on(crate::webhook::server::run(options, engine)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => usage_error(error, "check the addresses, certificates and kubeconfig"),
    }
}
