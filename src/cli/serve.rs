//! `infergate serve`: the admission webhook.

use super::*;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the admission endpoints (HTTPS only).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub addr: std::net::SocketAddr,
    /// Serving certificate (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "self_signed")]
    pub tls_key: Option<PathBuf>,
    /// Verify the apiserver's client certificate against this CA (PEM).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
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
    let (tls_cert, tls_key) = match (&args.self_signed, &args.tls_cert, &args.tls_key) {
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
    let own_namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "infergate".to_string());
    let options = crate::webhook::server::ServeOptions {
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        tls_cert,
        tls_key,
        client_ca: args.client_ca.clone(),
        kubeconfig: args.kubeconfig.clone(),
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
    };
    // Only ring is compiled in; installing it makes the choice explicit
    // for every rustls user in the process (kube's client included).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Reviews run on the blocking pool (bounded by --max-concurrent-reviews);
    // its threads get the same generous stack as the main thread.
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
