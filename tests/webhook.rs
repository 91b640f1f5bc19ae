//! The admission webhook, end to end: the real server on loopback with
//! certificates made in the test, AdmissionReviews built from testdata/,
//! and a real HTTPS client.

#[path = "common/apiserver.rs"]
mod apiserver;
mod common;
use apiserver::kubeconfig_for;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A running `infergate serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca, cert, key) = infergate::webhook::selfsigned::generate(&["localhost", "127.0.0.1"])
            .expect("certificates");
        std::fs::write(dir.path().join("ca.crt"), ca).expect("write");
        std::fs::write(dir.path().join("tls.crt"), cert).expect("write");
        std::fs::write(dir.path().join("tls.key"), key).expect("write");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        Self::start_with(dir, &cert, &key, extra)
    }

    /// Serve the pair at `cert` and `key`; `dir` holds the CA as ca.crt.
    fn start_with(
        dir: tempfile::TempDir,
        cert: &std::path::Path,
        key: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .expect("addr");
        let metrics: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .expect("addr");
        let mut args = vec![
            "serve".to_string(),
            format!("--addr={addr}"),
            format!("--metrics-addr={metrics}"),
            format!("--tls-cert={}", cert.display()),
            format!("--tls-key={}", key.display()),
            "--reload-interval-ms=100".to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(&args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut server = Self {
            child,
            addr,
            metrics,
            dir,
        };
        // A guard against a hang, not a timing: an unoptimised build among
        // a whole test binary's servers on two busy cores has taken more
        // than 20 s to listen.
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(server.metrics).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut said = String::new();
                if let Some(stderr) = server.child.stderr.as_mut() {
                    let _ = std::io::Read::read_to_string(stderr, &mut said);
                }
                panic!("the server exited ({status}) before it listened: {said}");
            }
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ca_paths(&self) -> Vec<PathBuf> {
        vec![self.dir.path().join("ca.crt")]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connector(cas: &[PathBuf]) -> TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for path in cas {
        for cert in CertificateDer::pem_file_iter(path).expect("CA file") {
            roots.add(cert.expect("CA cert")).expect("CA added");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// POST a body over HTTPS; returns (status, body, the server's leaf certificate).
async fn post(
    addr: SocketAddr,
    cas: &[PathBuf],
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>, Vec<u8>) {
    post_with(connector(cas), addr, path, body).await
}

async fn post_with(
    connector: TlsConnector,
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| cert.to_vec())
        .unwrap_or_default();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, bytes, leaf)
}

fn review(
    kind: (&str, &str, &str),
    resource: &str,
    operation: &str,
    object: &Value,
    old: Option<&Value>,
) -> Value {
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("x");
    let mut request = json!({
        "uid": format!("uid-{name}-{operation}"),
        "kind": {"group": kind.0, "version": kind.1, "kind": kind.2},
        "resource": {"group": kind.0, "version": kind.1, "resource": resource},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "test"},
        "object": object,
        "dryRun": false,
    });
    if let Some(old) = old {
        request["oldObject"] = old.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// The first object of a fixture file, as JSON.
fn fixture(path: &str, kind: &str) -> Value {
    let loaded = common::load(&[path]);
    loaded
        .objects
        .into_iter()
        .find(|object| object.kind() == kind)
        .map(|object| object.value)
        .expect("object in fixture")
}

/// The CREATE review of the large-model Deployment (denied, and mutated
/// by /mutate), as a request body.
fn large_model_create() -> Vec<u8> {
    let deployment = fixture(
        "testdata/fix/hf-home-shm-for-large-models.yaml",
        "Deployment",
    );
    serde_json::to_vec(&review(
        DEPLOYMENT,
        "deployments",
        "CREATE",
        &deployment,
        None,
    ))
    .expect("json")
}

/// The CREATE review of an HPA that passes every rule, as a request body.
fn quiet_hpa_create() -> Vec<u8> {
    let hpa = fixture(
        "testdata/rules/hpa-target-sanity/quiet.yaml",
        "HorizontalPodAutoscaler",
    );
    serde_json::to_vec(&review(
        HPA,
        "horizontalpodautoscalers",
        "CREATE",
        &hpa,
        None,
    ))
    .expect("json")
}

async fn send(server: &Server, path: &str, review: &Value) -> Value {
    let (status, body, _) = post(
        server.addr,
        &server.ca_paths(),
        path,
        serde_json::to_vec(review).expect("json"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).expect("JSON answer");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"], review["request"]["uid"],
        "same uid"
    );
    answer["response"].clone()
}

fn decode_patch(response: &Value) -> Option<json_patch::Patch> {
    let encoded = response
        .get("patch")?
        .as_str()
        .expect("patch is a base64 string");
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    Some(serde_json::from_slice(&bytes).expect("RFC 6902 patch"))
}

const HPA: (&str, &str, &str) = ("autoscaling", "v2", "HorizontalPodAutoscaler");
const DEPLOYMENT: (&str, &str, &str) = ("apps", "v1", "Deployment");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppercase_external_metric_is_denied_with_the_rule_id() {
    let server = Server::start(&[]);
    let hpa = fixture(
        "testdata/rules/metric-name-lowercase/fires.yaml",
        "HorizontalPodAutoscaler",
    );
    let response = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().expect("message");
    assert!(message.contains("[metric-name-lowercase]"), "{message}");
    assert!(
        message.contains("spec.metrics[0].external.metric.name"),
        "{message}"
    );
    assert!(
        message.contains("relabel"),
        "says how to relabel: {message}"
    );
    // The mutating endpoint never renames without the relabelling.
    let mutated = send(
        &server,
        "/mutate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert_eq!(mutated["allowed"], true);
    let patch = decode_patch(&mutated)
        .map(|patch| serde_json::to_string(&patch).expect("json"))
        .unwrap_or_default();
    assert!(!patch.contains("dcgm_fi_dev_gpu_util"), "{patch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_model_is_moved_to_shm_and_then_validates() {
    let server = Server::start(&[]);
    let deployment = fixture(
        "testdata/fix/hf-home-shm-for-large-models.yaml",
        "Deployment",
    );
    let denied = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "CREATE", &deployment, None),
    )
    .await;
    assert_eq!(denied["allowed"], false);
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("[hf-home-shm-for-large-models]"));

    let mutated = send(
        &server,
        "/mutate",
        &review(DEPLOYMENT, "deployments", "CREATE", &deployment, None),
    )
    .await;
    let patch = decode_patch(&mutated).expect("a patch");
    let mut patched = deployment.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies");
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    assert!(container["env"]
        .as_array()
        .expect("env")
        .iter()
        .any(|entry| entry["name"] == "HF_HOME"
            && entry["value"]
                .as_str()
                .is_some_and(|value| value.starts_with("/dev/shm/"))));
    assert!(container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|mount| mount["mountPath"] == "/dev/shm"));
    let volumes = patched["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    assert!(volumes
        .iter()
        .any(|volume| volume["emptyDir"]["medium"] == "Memory"));
    for warning in mutated["warnings"].as_array().expect("warnings") {
        assert!(warning.as_str().expect("text").chars().count() <= 120);
    }

    let valid = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "CREATE", &patched, None),
    )
    .await;
    assert_eq!(valid["allowed"], true, "{valid}");
    // Idempotent: the patched object needs no further patch.
    let again = send(
        &server,
        "/mutate",
        &review(DEPLOYMENT, "deployments", "CREATE", &patched, None),
    )
    .await;
    assert!(again.get("patch").is_none(), "{again}");
    // The error was fixed and admitted: counted as mutated, not denied.
    let metrics = http_get(server.metrics, "/metrics").await;
    assert!(
        metrics.contains(
            "rule=\"hf-home-shm-for-large-models\",severity=\"error\",outcome=\"mutated\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xla_warm_up_gate() {
    let server = Server::start(&[]);
    let mut deployment = fixture(
        "testdata/rules/xla-cache-single-writer/fires.yaml",
        "Deployment",
    );
    // CREATE with 3 replicas: mutated to 1, with a warning.
    let created = send(
        &server,
        "/mutate",
        &review(DEPLOYMENT, "deployments", "CREATE", &deployment, None),
    )
    .await;
    let patch = decode_patch(&created).expect("a patch");
    let mut started = deployment.clone();
    json_patch::patch(&mut started, &patch.0).expect("applies");
    assert_eq!(started["spec"]["replicas"], 1);
    assert!(created["warnings"]
        .to_string()
        .contains("xla-cache-single-writer"));

    // UPDATE raising replicas while no replica was ever Ready (a GitOps
    // re-sync of the manifest that says 3): not denied, but /mutate holds
    // replicas at the stored value, with a warning.
    deployment["spec"]["replicas"] = json!(3);
    let mut old = started.clone();
    old["status"] = json!({"replicas": 1, "readyReplicas": 0});
    let cold = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "UPDATE", &deployment, Some(&old)),
    )
    .await;
    assert_eq!(cold["allowed"], true, "{cold}");
    assert!(
        cold["warnings"]
            .to_string()
            .contains("xla-cache-single-writer"),
        "{cold}"
    );
    let held = send(
        &server,
        "/mutate",
        &review(DEPLOYMENT, "deployments", "UPDATE", &deployment, Some(&old)),
    )
    .await;
    let mut resynced = deployment.clone();
    json_patch::patch(&mut resynced, &decode_patch(&held).expect("a patch").0).expect("applies");
    assert_eq!(resynced["spec"]["replicas"], 1, "{held}");
    assert!(
        held["warnings"].to_string().contains("replicas held at 1"),
        "{held}"
    );
    // Once a replica has been Ready the cache is filled: allowed, warned.
    old["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let warm = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "UPDATE", &deployment, Some(&old)),
    )
    .await;
    assert_eq!(warm["allowed"], true, "{warm}");

    // deployments/scale without a cluster client: allowed with a warning.
    let answer = send(&server, "/validate", &scale_review(3, "vllm-tpu")).await;
    assert_eq!(answer["allowed"], true);
    assert!(
        answer["warnings"].to_string().contains("warm-up gate"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_kinds_and_excluded_namespaces_pass_untouched() {
    let server = Server::start(&[]);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "default"}, "spec": {}});
    let answer = send(
        &server,
        "/mutate",
        &review(("", "v1", "Service"), "services", "CREATE", &service, None),
    )
    .await;
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none());
    let mut hpa = fixture(
        "testdata/rules/metric-name-lowercase/fires.yaml",
        "HorizontalPodAutoscaler",
    );
    hpa["metadata"]["namespace"] = json!("kube-system");
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert_eq!(answer["allowed"], true, "kube-system is excluded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_of_every_kind_are_reviewed() {
    let server = Server::start(&[]);
    // A cluster-wide GMP monitor without spec.selector is rejected by the
    // CRD; the webhook says so first, with the rule id.
    let cluster_monitor = json!({"apiVersion": "monitoring.googleapis.com/v1", "kind": "ClusterPodMonitoring",
        "metadata": {"name": "dcgm"},
        "spec": {"endpoints": [{"port": "metrics", "interval": "15s"}]}});
    let denied = send(
        &server,
        "/validate",
        &review(
            ("monitoring.googleapis.com", "v1", "ClusterPodMonitoring"),
            "clusterpodmonitorings",
            "CREATE",
            &cluster_monitor,
            None,
        ),
    )
    .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("[schema-strict]"));
    // A Prometheus-Operator ServiceMonitor for the DCGM exporter scraped
    // every 5 s: allowed, with the warning that GPU metrics come every 15 s.
    let service_monitor = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "dcgm-exporter", "namespace": "monitoring"},
        "spec": {"selector": {"matchLabels": {"app": "dcgm-exporter"}},
            "endpoints": [{"port": "metrics", "interval": "5s"}]}});
    let warned = send(
        &server,
        "/validate",
        &review(
            ("monitoring.coreos.com", "v1", "ServiceMonitor"),
            "servicemonitors",
            "CREATE",
            &service_monitor,
            None,
        ),
    )
    .await;
    assert_eq!(warned["allowed"], true, "{warned}");
    assert!(
        warned["warnings"]
            .to_string()
            .contains("podmonitoring-scrape"),
        "{warned}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_400_with_a_json_error() {
    let server = Server::start(&[]);
    let cas = server.ca_paths();
    let cases: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod"})).expect("json"),
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})).expect("json"),
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}})).expect("json"),
    ];
    // A body above the limit is refused before it is read:
    // large_bodies_share_a_bounded_budget.
    for body in cases {
        let (status, answer, _) = post(server.addr, &cas, "/validate", body).await;
        assert_eq!(status, 400);
        let error: Value = serde_json::from_slice(&answer).expect("JSON error");
        assert!(error["error"].as_str().is_some_and(|text| !text.is_empty()));
    }
    // The server still answers after all of them.
    let hpa = fixture(
        "testdata/rules/hpa-target-sanity/quiet.yaml",
        "HorizontalPodAutoscaler",
    );
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert_eq!(answer["allowed"], true);
    let metrics = http_get(server.metrics, "/metrics").await;
    assert!(
        metrics.contains("infergate_admission_bad_requests_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("endpoint=\"validate\",operation=\"CREATE\",kind=\"HorizontalPodAutoscaler\",allowed=\"true\",mutated=\"false\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("infergate_admission_duration_seconds_count 1"),
        "{metrics}"
    );
    assert_eq!(http_get(server.metrics, "/healthz").await, "ok");
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    String::from_utf8_lossy(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
    .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_while_requests_run() {
    let server = Server::start(&[]);
    let old_ca = server.dir.path().join("ca.crt");
    let new_ca = server.dir.path().join("new-ca.crt");
    let (ca, cert, key) =
        infergate::webhook::selfsigned::generate(&["localhost"]).expect("certificates");
    std::fs::write(&new_ca, ca).expect("write");
    let cas = vec![old_ca, new_ca];
    let body = quiet_hpa_create();
    let (_, _, first_leaf) = post(server.addr, &cas, "/validate", body.clone()).await;

    // Requests keep flowing while the files are replaced (key first, as a
    // rotation may leave them briefly mismatched).
    let addr = server.addr;
    let load = {
        let cas = cas.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..40 {
                let (status, _, _) = post(addr, &cas, "/validate", body.clone()).await;
                statuses.push(status);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        })
    };
    std::fs::write(server.dir.path().join("tls.key"), key).expect("write");
    std::fs::write(server.dir.path().join("tls.crt"), &cert).expect("write");
    let statuses = load.await.expect("load task");
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, leaf) = post(server.addr, &cas, "/validate", body.clone()).await;
        assert_eq!(status, 200);
        if leaf != first_leaf {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A POST that tells a refused connection (allowed once the server
/// stops listening) from a request dropped after it was accepted (never).
async fn try_post(addr: SocketAddr, cas: &[PathBuf], body: Vec<u8>) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let tls = connector(cas)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|error| format!("dropped: {error}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::post("/mutate")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("dropped: {error}"))?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("dropped: {error}"))?;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_and_exits_zero() {
    let mut server = Server::start(&["--shutdown-delay-ms=500"]);
    let cas = server.ca_paths();
    let body = large_model_create();
    // Clients keep sending while SIGTERM arrives.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let cas = cas.clone();
        let body = body.clone();
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(2000) {
                outcomes.push(try_post(addr, &cas, body.clone()).await);
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut answered = 0;
    let mut refused = 0;
    for task in tasks {
        for outcome in task.await.expect("client task") {
            match outcome {
                Ok(200) => answered += 1,
                Ok(other) => panic!("status {other}"),
                // Refused before any request byte was read: the listener
                // had closed (a connection left in its backlog is reset).
                Err(error) if error.starts_with("connect") || error.starts_with("handshake") => {
                    refused += 1
                }
                Err(error) => panic!("a request was dropped: {error}"),
            }
        }
    }
    assert!(answered > 10, "answered {answered}");
    assert!(refused > 0, "the listener closes on SIGTERM");
    let exit = wait_for_exit(&mut server.child, Duration::from_secs(20));
    assert_eq!(exit, Some(0));
}

/// Like the apiserver's Go client, each client keeps one connection and
/// sends request after request on it, opening a new one only when the
/// server said `Connection: close` or the connection is closed before a
/// request was sent. A request written on an open connection and never
/// answered is lost; across three SIGTERMs none may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_request_on_kept_alive_connections() {
    let body = large_model_create();
    let mut closes_announced = 0;
    for _restart in 0..3 {
        let mut server = Server::start(&["--shutdown-delay-ms=600"]);
        let cas = server.ca_paths();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let cas = cas.clone();
            let body = body.clone();
            let addr = server.addr;
            tasks.push(tokio::spawn(keep_alive_client(
                addr,
                cas,
                body,
                Duration::from_millis(1800),
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = server.child.id().to_string();
        let killed_at = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut answered = 0;
        for task in tasks {
            let outcome = task.await.expect("client task");
            assert!(outcome.lost.is_empty(), "lost: {:?}", outcome.lost);
            answered += outcome.answered;
            closes_announced += outcome.closes_announced;
            // Well inside the shutdown delay every answer tells the
            // client to close, so none is kept alive into the drain.
            for (sent_at, closes) in outcome.sent {
                let since_kill = sent_at.saturating_duration_since(killed_at);
                if sent_at > killed_at
                    && since_kill > Duration::from_millis(100)
                    && since_kill < Duration::from_millis(450)
                {
                    assert!(closes, "kept alive {since_kill:?} after SIGTERM");
                }
            }
        }
        assert!(answered > 10, "answered {answered}");
        assert_eq!(
            wait_for_exit(&mut server.child, Duration::from_secs(20)),
            Some(0)
        );
    }
    assert!(closes_announced >= 3, "Connection: close was never sent");
}

#[derive(Default)]
struct KeepAliveOutcome {
    answered: usize,
    closes_announced: usize,
    lost: Vec<String>,
    /// When each answered request was sent, and whether its answer said
    /// `Connection: close`.
    sent: Vec<(Instant, bool)>,
}

async fn keep_alive_client(
    addr: SocketAddr,
    cas: Vec<PathBuf>,
    body: Vec<u8>,
    run_for: Duration,
) -> KeepAliveOutcome {
    let mut outcome = KeepAliveOutcome::default();
    let started = Instant::now();
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> = None;
    while started.elapsed() < run_for {
        let mut current = match sender.take() {
            Some(current) => current,
            None => {
                // Refused once the listener has closed: not a loss.
                let Ok(tcp) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Ok(tls) = connector(&cas)
                    .connect(ServerName::try_from("localhost").expect("name"), tcp)
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Ok((current, connection)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
                else {
                    continue;
                };
                tokio::spawn(connection);
                current
            }
        };
        // Closed before anything was sent: reconnect, nothing is lost.
        if current.ready().await.is_err() {
            continue;
        }
        // A pause between requests, as an apiserver's traffic has.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let request = hyper::Request::post("/validate")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request");
        let sent_at = Instant::now();
        match current.send_request(request).await {
            Ok(response) => {
                let closes = response
                    .headers()
                    .get("connection")
                    .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
                match response.into_body().collect().await {
                    Ok(_) => {
                        outcome.answered += 1;
                        outcome.sent.push((sent_at, closes));
                    }
                    Err(error) => outcome.lost.push(format!("body: {error}")),
                }
                if closes {
                    outcome.closes_announced += 1;
                } else {
                    sender = Some(current);
                }
            }
            Err(error) => outcome.lost.push(format!("request: {error}")),
        }
    }
    outcome
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TPU LeaderWorkerSet: groups of two 8-chip pods on the stand-in
/// apiserver's 2x4 v6e nodes.
fn tpu_leader_worker_set() -> Value {
    let pod = json!({
        "metadata": {"labels": {"app": "vllm-multihost"}},
        "spec": {
            "nodeSelector": {
                "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                "cloud.google.com/gke-tpu-topology": "2x4"},
            "containers": [{"name": "vllm", "image": "vllm/vllm-tpu:nightly",
                "resources": {"limits": {"google.com/tpu": "8"}}}]}});
    json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": "vllm-multihost", "namespace": "serving"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {
            "size": 2, "leaderTemplate": pod.clone(), "workerTemplate": pod}}})
}

/// A stand-in apiserver on loopback that serves one Deployment (for the
/// `deployments/scale` path with a configured cluster client), the
/// LeaderWorkerSet of `tpu_leader_worker_set` and two TPU Nodes.
async fn fake_apiserver(deployment: Value) -> SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let node = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                "cloud.google.com/gke-tpu-topology": "2x4"}},
            "status": {"allocatable": {"google.com/tpu": "8", "cpu": "200"}}})
    };
    let nodes = json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
        "items": [node("tpu-node-a"), node("tpu-node-b")]});
    let app = axum::Router::new()
        .route(
            "/api/v1/nodes",
            get(move || {
                let nodes = nodes.clone();
                async move { axum::Json(nodes) }
            }),
        )
        .route(
            "/apis/leaderworkerset.x-k8s.io/v1/namespaces/serving/leaderworkersets/vllm-multihost",
            get(|| async { axum::Json(tpu_leader_worker_set()) }),
        )
        .route(
            "/apis/apps/v1/namespaces/serving/deployments/vllm-tpu",
            get(move || {
                let deployment = deployment.clone();
                async move { axum::Json(deployment) }
            }),
        )
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})),
            )
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The xla-cache-single-writer fixture's TPU Deployment at one replica
/// that has never been Ready: the XLA gate denies scaling it up.
fn unready_tpu_deployment() -> Value {
    let mut deployment = fixture(
        "testdata/rules/xla-cache-single-writer/fires.yaml",
        "Deployment",
    );
    deployment["spec"]["replicas"] = json!(1);
    deployment["status"] = json!({"replicas": 1, "readyReplicas": 0});
    deployment
}

/// A `kubectl scale` of Deployment `serving/name` to `replicas`.
fn scale_review(replicas: i64, name: &str) -> Value {
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": "serving"}, "spec": {"replicas": replicas}});
    let mut request = review(
        ("autoscaling", "v1", "Scale"),
        "deployments",
        "UPDATE",
        &scale,
        Some(&scale),
    );
    request["request"]["subResource"] = json!("scale");
    request["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_requests_consult_the_cluster() {
    let apiserver = fake_apiserver(unready_tpu_deployment()).await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    // No replica has been Ready and the XLA cache is shared: denied.
    let denied = send(&server, "/validate", &scale_review(3, "vllm-tpu")).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("[xla-cache-single-writer]"));
    // Scaling to one is always fine; an unknown Deployment is not gated.
    assert_eq!(
        send(&server, "/validate", &scale_review(1, "vllm-tpu")).await["allowed"],
        true
    );
    let other = send(&server, "/validate", &scale_review(3, "other")).await;
    assert_eq!(other["allowed"], true, "{other}");

    // An HPA on CPU says nothing of inference by itself; the Deployment it
    // names, fetched from the cluster, is a TPU model server.
    let hpa_for = |target: &str| {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": format!("hpa-{target}"), "namespace": "serving"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
    };
    let known = send(
        &server,
        "/validate",
        &review(
            HPA,
            "horizontalpodautoscalers",
            "CREATE",
            &hpa_for("vllm-tpu"),
            None,
        ),
    )
    .await;
    assert_eq!(known["allowed"], true);
    // Reviewed with the fetched Deployment: its 8 chips a replica.
    assert!(
        known["warnings"]
            .to_string()
            .contains("max-replicas-chip-pool: maxReplicas 3 needs 24 chips"),
        "{known}"
    );
    let missing = send(
        &server,
        "/validate",
        &review(
            HPA,
            "horizontalpodautoscalers",
            "CREATE",
            &hpa_for("nowhere"),
            None,
        ),
    )
    .await;
    assert!(
        missing["warnings"]
            .to_string()
            .contains("does not exist in the cluster"),
        "{missing}"
    );

    // A LeaderWorkerSet target is fetched too, and the Nodes its pods
    // select (16 chips) are its pool: 3 groups of 16 chips do not fit.
    let mut lws_hpa = hpa_for("vllm-multihost");
    lws_hpa["spec"]["scaleTargetRef"] = json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "vllm-multihost"});
    let lws = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &lws_hpa, None),
    )
    .await;
    let warnings = lws["warnings"].to_string();
    assert!(
        warnings.contains("max-replicas-chip-pool: maxReplicas 3 needs 48 chips"),
        "{lws}"
    );
    lws_hpa["spec"]["scaleTargetRef"]["name"] = json!("gone");
    let gone = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &lws_hpa, None),
    )
    .await;
    assert!(
        gone["warnings"]
            .to_string()
            .contains("does not exist in the cluster"),
        "{gone}"
    );
}

/// A review any pod could forge (no --client-ca): what the cluster holds
/// must not change the reply, or the reply tells whether a name exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_authentication_lookups_do_not_change_replies() {
    let apiserver = fake_apiserver(unready_tpu_deployment()).await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[&format!("--kubeconfig={}", kubeconfig.path().display())]);
    // The HPA names a Deployment the cluster holds, then one it does not;
    // a scale of each. Replies are compared with the names swapped.
    let hpa_for = |target: &str| {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "probe", "namespace": "serving"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
    };
    let reply = |response: Value, name: &str| {
        json!({"allowed": response["allowed"], "status": response["status"], "warnings": response["warnings"]})
            .to_string()
            .replace(name, "NAME")
    };
    for (existing, missing) in [
        (
            review(
                HPA,
                "horizontalpodautoscalers",
                "CREATE",
                &hpa_for("vllm-tpu"),
                None,
            ),
            review(
                HPA,
                "horizontalpodautoscalers",
                "CREATE",
                &hpa_for("nowhere"),
                None,
            ),
        ),
        (scale_review(3, "vllm-tpu"), scale_review(3, "nowhere")),
    ] {
        let existing = reply(send(&server, "/validate", &existing).await, "vllm-tpu");
        let missing = reply(send(&server, "/validate", &missing).await, "nowhere");
        assert_eq!(existing, missing, "a lookup changed the reply");
        assert!(!existing.contains("does not exist"), "{existing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_with_client_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let directory = tempfile::tempdir().expect("temp dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let client_key = KeyPair::generate().expect("key");
    let client_cert = CertificateParams::new(vec!["apiserver".to_string()])
        .expect("params")
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    let ca_path = directory.path().join("client-ca.crt");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write");
    // Lookups are on with --client-ca (no --unauthenticated-lookups).
    let apiserver = fake_apiserver(json!({})).await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--client-ca={}", ca_path.display()),
        &format!("--kubeconfig={}", kubeconfig.path().display()),
    ]);

    // Without a client certificate the handshake (or the first read) fails.
    let body = quiet_hpa_create();
    let anonymous = tokio::spawn({
        let cas = server.ca_paths();
        let addr = server.addr;
        let body = body.clone();
        async move { post(addr, &cas, "/validate", body).await }
    })
    .await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate must be refused"
    );

    // With one signed by the client CA the review goes through.
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&server.ca_paths()[0]).expect("CA") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes())
            .expect("key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(vec![client_cert.der().clone()], key)
    .expect("client auth");
    let connector = TlsConnector::from(Arc::new(config));
    let (status, _, _) = post_with(connector.clone(), server.addr, "/validate", body).await;
    assert_eq!(status, 200);
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nowhere"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
    let request = review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None);
    let (status, reply, _) = post_with(
        connector,
        server.addr,
        "/validate",
        serde_json::to_vec(&request).expect("json"),
    )
    .await;
    assert_eq!(status, 200);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.contains("does not exist in the cluster"),
        "the apiserver's reviews are looked up: {reply}"
    );
}

const CONFIG_MAP: (&str, &str, &str) = ("", "v1", "ConfigMap");

/// A prometheus-adapter ConfigMap whose `x.yaml` nests `levels` deep: 4 KB
/// of `- - - …` that used to overflow a worker's stack and abort the server.
fn deep_adapter_config_map(levels: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "adapter-config",
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "prometheus-adapter"},
        },
        "data": {"x.yaml": format!("{}x", "- ".repeat(levels))},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_input_is_refused_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let config_map = deep_adapter_config_map(100_000);
    let request = review(CONFIG_MAP, "configmaps", "CREATE", &config_map, None);
    let denied = send(&server, "/validate", &request).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("[invalid-yaml] data.x.yaml") && message.contains("deeper than 128"),
        "{message}"
    );
    let mutated = send(&server, "/mutate", &request).await;
    assert_eq!(mutated["allowed"], true, "{mutated}");
    assert!(mutated.get("patch").is_none(), "{mutated}");

    // JSON nested 100,000 levels deep is refused by the reader, by name.
    let deep_json = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for path in ["/validate", "/mutate"] {
        let (status, body, _) = post(
            server.addr,
            &server.ca_paths(),
            path,
            deep_json.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, 400);
        let error: Value = serde_json::from_slice(&body).expect("JSON error");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|text| text.contains("deeper than 128 levels")),
            "{error}"
        );
    }
    // The same process answers afterwards.
    let quiet = deep_adapter_config_map(3);
    let answer = send(
        &server,
        "/validate",
        &review(CONFIG_MAP, "configmaps", "CREATE", &quiet, None),
    )
    .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(http_get(server.metrics, "/healthz").await, "ok");
}

/// A Deployment of `containers` containers with many env entries each:
/// megabytes of JSON that take the engine far longer than 100 ms.
fn huge_deployment(containers: usize) -> Value {
    let container = |index: usize| {
        json!({
            "name": format!("c{index}"),
            "image": "vllm/vllm-openai:v0.6.0",
            "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"],
            "env": (0..40)
                .map(|env| json!({"name": format!("VAR_{env}"), "value": format!("value-{index}-{env}")}))
                .collect::<Vec<_>>(),
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "huge", "namespace": "serving"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "huge"}},
            "template": {
                "metadata": {"labels": {"app": "huge"}},
                "spec": {"containers": (0..containers).map(container).collect::<Vec<_>>()},
            },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reviews_end_at_the_deadline_and_health_stays_up() {
    let server = Server::start(&["--request-timeout-ms=100", "--max-concurrent-reviews=2"]);
    let deployment = huge_deployment(1_500);
    let body = serde_json::to_vec(&review(
        DEPLOYMENT,
        "deployments",
        "CREATE",
        &deployment,
        None,
    ))
    .expect("json");
    assert!(body.len() > 2_000_000, "{} bytes", body.len());
    let cas = server.ca_paths();
    let mut reviews = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (addr, cas, body) = (server.addr, cas.clone(), body.clone());
        reviews.spawn(async move { post(addr, &cas, "/validate", body).await });
    }
    // Health is served by its own thread while six reviews are in flight.
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        http_get(server.metrics, "/healthz"),
    )
    .await;
    assert_eq!(health.as_deref().ok(), Some("ok"));
    let (mut timed_out, mut busy) = (0, 0);
    while let Some(joined) = reviews.join_next().await {
        let (status, answer, _) = joined.expect("task");
        match status {
            200 => {
                let answer: Value = serde_json::from_slice(&answer).expect("JSON answer");
                assert_eq!(answer["response"]["allowed"], true);
                let warnings = answer["response"]["warnings"].to_string();
                assert!(warnings.contains("did not finish in time"), "{warnings}");
                timed_out += 1;
            }
            429 => busy += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(timed_out + busy, 6);
    assert!(
        timed_out >= 1 && busy >= 1,
        "{timed_out} timed out, {busy} busy"
    );
    let metrics = http_get(server.metrics, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "infergate_admission_unreviewed_total{{reason=\"timeout\"}} {timed_out}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "infergate_admission_unreviewed_total{{reason=\"busy\"}} {busy}"
        )),
        "{metrics}"
    );
}

/// An HPA whose stored status says it cannot scale is not denied for it
/// when it is written: that write may be the fix, and the apiserver keeps
/// or clears the status anyway. hpa-status-unhealthy is for objects read
/// back from a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_hpa_status_does_not_deny_the_write_that_fixes_it() {
    let server = Server::start(&[]);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/rules/hpa-status-unhealthy/fires-scale.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let loaded = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        path.display().to_string(),
        text,
    ));
    let hpa = loaded.objects[0].value.clone();
    assert!(hpa["status"]["conditions"].is_array());
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "UPDATE", &hpa, Some(&hpa)),
    )
    .await;
    assert!(!answer.to_string().contains("cannot scale"), "{answer}");
    assert_eq!(answer["allowed"], true, "{answer}");
}

/// A burst of ordinary reviews larger than --max-concurrent-reviews is
/// queued, not refused: the apiserver does not retry a refused call, so a
/// 429 would have failed (or, with failurePolicy Ignore, skipped) objects
/// that the webhook could review within their deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_review_places_is_queued_not_refused() {
    let server = Server::start(&["--max-concurrent-reviews=1"]);
    let quiet = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": "default"}, "data": {"a": "b"}});
    let body = serde_json::to_vec(&review(CONFIG_MAP, "configmaps", "CREATE", &quiet, None))
        .expect("json");
    let cas = server.ca_paths();
    let mut reviews = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (addr, cas, body) = (server.addr, cas.clone(), body.clone());
        reviews.spawn(async move { post(addr, &cas, "/validate", body).await });
    }
    let mut statuses = Vec::new();
    while let Some(joined) = reviews.join_next().await {
        let (status, answer, _) = joined.expect("task");
        if status == 200 {
            let answer: Value = serde_json::from_slice(&answer).expect("JSON answer");
            assert_eq!(answer["response"]["allowed"], true);
            assert_eq!(
                answer["response"]["warnings"],
                Value::Null,
                "reviewed, not skipped"
            );
        }
        statuses.push(status);
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let metrics = http_get(server.metrics, "/metrics").await;
    let busy = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("infergate_admission_unreviewed_total{reason=\"busy\"} ")
        })
        .unwrap_or("0");
    assert_eq!(busy, "0", "{metrics}");
}

/// A stand-in apiserver whose StatefulSet's status changes while the test
/// runs, and which has no LeaderWorkerSet CRD: its resources get the
/// apiserver's plain-text 404.
async fn changing_apiserver(statefulset: std::sync::Arc<std::sync::Mutex<Value>>) -> SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route(
            "/apis/apps/v1/namespaces/tpu/statefulsets/vllm-tpu-sts",
            get(move || {
                let current = statefulset.lock().expect("state").clone();
                async move { axum::Json(current) }
            }),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "404 page not found\n") });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The issue's StatefulSet: 8 TPU chips, a shared XLA cache on gcsfuse.
fn tpu_statefulset(ready: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "vllm-tpu-sts", "namespace": "tpu"},
        "spec": {"replicas": 1, "serviceName": "vllm-tpu",
            "selector": {"matchLabels": {"app": "vllm-tpu"}},
            "template": {"metadata": {"labels": {"app": "vllm-tpu"},
                    "annotations": {"gke-gcsfuse/volumes": "true"}},
                "spec": {"containers": [{"name": "inference-server", "image": "vllm/vllm-tpu:v0.10.1",
                        "args": ["--model=/data", "--tensor-parallel-size=8"],
                        "env": [{"name": "VLLM_XLA_CACHE_PATH", "value": "/data/xla_cache"}],
                        "resources": {"limits": {"google.com/tpu": "8"}},
                        "volumeMounts": [{"name": "models", "mountPath": "/data"}]}],
                    "volumes": [{"name": "models", "csi": {"driver": "gcsfuse.csi.storage.gke.io",
                        "volumeAttributes": {"bucketName": "my-models"}}}]}}},
        "status": {"replicas": 1, "readyReplicas": ready}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_covers_every_scaled_kind_on_fresh_state() {
    let state = std::sync::Arc::new(std::sync::Mutex::new(tpu_statefulset(0)));
    let apiserver = changing_apiserver(std::sync::Arc::clone(&state)).await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    let scale = |group: &str, resource: &str, name: &str| {
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name, "namespace": "tpu"}, "spec": {"replicas": 3}});
        let mut request = review(
            ("autoscaling", "v1", "Scale"),
            resource,
            "UPDATE",
            &scale,
            Some(&scale),
        );
        request["request"]["subResource"] = json!("scale");
        request["request"]["resource"] =
            json!({"group": group, "version": "v1", "resource": resource});
        request
    };
    // kubectl scale sts vllm-tpu-sts --replicas=3 before any replica is Ready.
    let denied = send(
        &server,
        "/validate",
        &scale("apps", "statefulsets", "vllm-tpu-sts"),
    )
    .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .to_string()
        .contains("[xla-cache-single-writer]"));
    // The first replica turns Ready: the very next scale is allowed (the
    // denial never comes from a cached lookup).
    *state.lock().expect("state") = tpu_statefulset(1);
    let allowed = send(
        &server,
        "/validate",
        &scale("apps", "statefulsets", "vllm-tpu-sts"),
    )
    .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    // A LeaderWorkerSet scale is looked up as one; without the CRD the
    // apiserver's plain-text 404 means there is none to gate.
    let lws = send(
        &server,
        "/validate",
        &scale("leaderworkerset.x-k8s.io", "leaderworkersets", "vllm"),
    )
    .await;
    assert_eq!(lws["allowed"], true, "{lws}");
    assert!(
        !lws["warnings"].to_string().contains("could not check"),
        "{lws}"
    );
    // An HPA on that LeaderWorkerSet: the plain-text 404 means missing.
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "vllm", "namespace": "tpu"},
        "spec": {"scaleTargetRef": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "vllm"},
            "minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert!(
        answer["warnings"]
            .to_string()
            .contains("does not exist in the cluster"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_default_policies_are_not_tuned_policies() {
    let server = Server::start(&[]);
    // The issue's HPA as the apiserver sends it: the scale-up defaults
    // (4 pods or 100 % every 15 s, selectPolicy Max) filled in.
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "lowq", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tgi-gemma-deployment"},
            "minReplicas": 1, "maxReplicas": 12,
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]}},
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "tgi_queue_size"},
                "target": {"type": "AverageValue", "averageValue": "3"}}}]}});
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert!(
        answer["warnings"]
            .to_string()
            .contains("tune behavior.scaleUp.policies"),
        "{answer}"
    );
    // Tuned policies are quiet.
    let mut tuned = hpa.clone();
    tuned["spec"]["behavior"]["scaleUp"]["policies"] =
        json!([{"type": "Pods", "value": 8, "periodSeconds": 15}]);
    let answer = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &tuned, None),
    )
    .await;
    assert!(
        !answer["warnings"]
            .to_string()
            .contains("tune behavior.scaleUp.policies"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_that_starts_replicas_on_a_cold_shared_cache_is_denied() {
    let apiserver = fake_apiserver(unready_tpu_deployment()).await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    let hpa = |min: i64| {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "vllm-tpu", "namespace": "serving"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm-tpu"},
                "minReplicas": min, "maxReplicas": 4,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}, "scaleUp": {"stabilizationWindowSeconds": 0}},
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
    };
    // The finding is about the HPA and its fetched Deployment together: it
    // lands on the HPA under review.
    let denied = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa(3), None),
    )
    .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(
        denied["status"]["message"]
            .to_string()
            .contains("[xla-cache-single-writer] spec.minReplicas"),
        "{denied}"
    );
    let one = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa(1), None),
    )
    .await;
    assert_eq!(one["allowed"], true, "{one}");
}

/// The leaf certificate the server presents now (DER).
async fn served_leaf(server: &Server, cas: &[PathBuf], body: &[u8]) -> Vec<u8> {
    let (status, _, leaf) = post(server.addr, cas, "/validate", body.to_vec()).await;
    assert_eq!(status, 200);
    leaf
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}

/// A second CA and the pair it signed, both CAs trusted by the client,
/// and a review to send while certificates rotate.
struct Rotation {
    cas: Vec<PathBuf>,
    new_cert: String,
    new_key: String,
    body: Vec<u8>,
}

fn rotation(server: &Server) -> Rotation {
    let (new_ca, new_cert, new_key) =
        infergate::webhook::selfsigned::generate(&["localhost"]).expect("certificates");
    let new_ca_path = server.dir.path().join("new-ca.crt");
    std::fs::write(&new_ca_path, new_ca).expect("write");
    let body = quiet_hpa_create();
    Rotation {
        cas: vec![server.dir.path().join("ca.crt"), new_ca_path],
        new_cert,
        new_key,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_rotated_pair_is_never_served() {
    let server = Server::start(&[]);
    let Rotation {
        cas,
        new_cert,
        new_key,
        body,
    } = rotation(&server);
    let old_leaf = served_leaf(&server, &cas, &body).await;
    // The new key lands seconds before the new certificate.
    std::fs::write(server.dir.path().join("tls.key"), &new_key).expect("write");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(served_leaf(&server, &cas, &body).await, old_leaf);
    }
    std::fs::write(server.dir.path().join("tls.crt"), &new_cert).expect("write");
    let wanted = pem_to_der(&new_cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_leaf(&server, &cas, &body).await != wanted {
        assert!(
            Instant::now() < deadline,
            "the complete pair was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the kubelet updates a mounted Secret: the files are links into
/// `..data`, itself a link to a timestamped directory that is swapped
/// atomically for a new one.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_volume_swap_is_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = infergate::webhook::selfsigned::generate(&["localhost", "127.0.0.1"])
        .expect("certificates");
    std::fs::write(dir.path().join("ca.crt"), ca).expect("write");
    let version = |name: &str, cert: &str, key: &str| {
        let versioned = dir.path().join(name);
        std::fs::create_dir(&versioned).expect("mkdir");
        std::fs::write(versioned.join("tls.crt"), cert).expect("write");
        std::fs::write(versioned.join("tls.key"), key).expect("write");
    };
    version("..2026_12_01_first", &cert, &key);
    symlink("..2026_12_01_first", dir.path().join("..data")).expect("link");
    symlink("..data/tls.crt", dir.path().join("tls.crt")).expect("link");
    symlink("..data/tls.key", dir.path().join("tls.key")).expect("link");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let server = Server::start_with(dir, &cert_path, &key_path, &[]);
    let Rotation {
        cas,
        new_cert,
        new_key,
        body,
    } = rotation(&server);
    assert_eq!(served_leaf(&server, &cas, &body).await, pem_to_der(&cert));
    // The atomic swap: a new directory, a new ..data link renamed over the old.
    let root = server.dir.path();
    let second = root.join("..2026_12_01_second");
    std::fs::create_dir(&second).expect("mkdir");
    std::fs::write(second.join("tls.crt"), &new_cert).expect("write");
    std::fs::write(second.join("tls.key"), &new_key).expect("write");
    symlink("..2026_12_01_second", root.join("..data_tmp")).expect("link");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
    let wanted = pem_to_der(&new_cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_leaf(&server, &cas, &body).await != wanted {
        assert!(Instant::now() < deadline, "the swapped pair was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_are_reviewed_with_the_pods_they_select() {
    let vllm = json!({"metadata": {"name": "vllm", "namespace": "serving"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vllm"}},
            "template": {"metadata": {"labels": {"app": "vllm"}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5",
                    "args": ["--model=meta-llama/Llama-3.1-8B-Instruct"],
                    "ports": [{"name": "metrics", "containerPort": 8000}],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}});
    let deployments =
        json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [vllm]});
    let empty =
        json!({"apiVersion": "apps/v1", "kind": "StatefulSetList", "metadata": {}, "items": []});
    let apiserver = static_apiserver(vec![
        ("/apis/apps/v1/namespaces/serving/deployments", deployments),
        ("/apis/apps/v1/namespaces/serving/statefulsets", empty),
    ])
    .await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    let monitor = |interval: &str| {
        json!({"apiVersion": "monitoring.googleapis.com/v1", "kind": "PodMonitoring",
            "metadata": {"name": "vllm", "namespace": "serving"},
            "spec": {"selector": {"matchLabels": {"app": "vllm"}},
                "endpoints": [{"port": "metrics", "interval": interval}]}})
    };
    let request = |value: &Value| {
        review(
            ("monitoring.googleapis.com", "v1", "PodMonitoring"),
            "podmonitorings",
            "CREATE",
            value,
            None,
        )
    };
    // Scraping the vLLM pods every 2 s: the server's metrics allow 5 s.
    let fast = send(&server, "/validate", &request(&monitor("2s"))).await;
    assert!(
        fast["warnings"]
            .to_string()
            .contains("podmonitoring-scrape: scrape interval 2s"),
        "{fast}"
    );
    let fine = send(&server, "/validate", &request(&monitor("15s"))).await;
    assert!(fine.get("warnings").is_none(), "{fine}");
}

/// A client that trickles its request headers (or sends none on an idle
/// connection) is disconnected after the header read timeout, so slow
/// clients cannot hold the server's connections or its shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[]);
    let open = || tls_stream(&server);
    let mut trickling = open().await;
    let mut idle = open().await;
    trickling
        .write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .expect("write");
    let limit = infergate::webhook::server::HEADER_READ_TIMEOUT + Duration::from_secs(10);
    for stream in [&mut trickling, &mut idle] {
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(limit, stream.read(&mut buffer)).await;
        match read {
            Ok(Ok(_)) | Ok(Err(_)) => {} // closed (with or without a 408)
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
    // The server still answers new clients.
    assert_eq!(http_get(server.metrics, "/healthz").await, "ok");
}

/// One address that opens more idle connections than the server holds
/// (no TLS handshake, as a tenant's pod could) takes at most its share:
/// a review from another address is still answered, and the refusals are
/// counted. Before the per-client bound, 1,024 idle sockets took every
/// slot for the whole handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_connection() {
    let server = Server::start(&[]);
    let mut idle = Vec::new();
    for _ in 0..infergate::webhook::server::MAX_CONNECTIONS + 64 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        idle.push(socket.connect(server.addr).await.expect("connect"));
    }
    // The server accepts (or refuses) the idle sockets at its own pace:
    // on a loaded machine that takes a while, so wait for the count
    // rather than for a fixed time; then a review from elsewhere.
    let expected = idle.len() - infergate::webhook::server::MAX_CONNECTIONS_PER_CLIENT;
    let refused_of = |metrics: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix("infergate_connections_refused_total{reason=\"per_client\"} ")
            })
            .and_then(|count| count.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http_get(server.metrics, "/metrics").await;
        if refused_of(&metrics) >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused_of(&metrics) >= expected, "{metrics}");
    let body = large_model_create();
    let answered = try_post(server.addr, &server.ca_paths(), body).await;
    assert_eq!(answered, Ok(200));
    drop(idle);
}

/// The denial message of a review that /validate must deny.
async fn denial(server: &Server, review: &Value) -> String {
    let response = send(server, "/validate", review).await;
    assert_eq!(response["allowed"], false, "{response}");
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A vLLM Deployment serving tensor parallel `tp` on `gpus` GPUs.
fn vllm_deployment(name: &str, tp: &str, gpus: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.9.0",
                    "args": ["--model", "Qwen/Qwen2.5-32B-Instruct", "--tensor-parallel-size", tp],
                    "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_server_parallelism_and_shared_memory_are_enforced() {
    let server = Server::start(&[]);
    // Tensor parallel 4 on 2 GPUs: denied, with the rule id.
    let mismatched = vllm_deployment("qwen-tp4", "4", "2");
    let message = denial(
        &server,
        &review(DEPLOYMENT, "deployments", "CREATE", &mismatched, None),
    )
    .await;
    assert!(
        message.contains("[parallelism-matches-accelerators]"),
        "{message}"
    );
    // Tensor parallel 2 on 2 GPUs without /dev/shm: /mutate adds one.
    let matched = vllm_deployment("qwen-tp2", "2", "2");
    let before = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "CREATE", &matched, None),
    )
    .await;
    assert!(
        before["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("[tensor-parallel-needs-shm]"),
        "{before}"
    );
    let mutated = send(
        &server,
        "/mutate",
        &review(DEPLOYMENT, "deployments", "CREATE", &matched, None),
    )
    .await;
    let patch = decode_patch(&mutated).expect("a patch");
    let mut patched = matched.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies");
    let pod = &patched["spec"]["template"]["spec"];
    let shm_mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|mount| mount["mountPath"] == "/dev/shm")
        .count();
    assert_eq!(shm_mounts, 1, "{patched}");
    assert_eq!(pod["volumes"][0]["emptyDir"]["medium"], "Memory");
    assert_eq!(pod["volumes"][0]["emptyDir"]["sizeLimit"], "2Gi");
    let valid = send(
        &server,
        "/validate",
        &review(DEPLOYMENT, "deployments", "CREATE", &patched, None),
    )
    .await;
    assert_eq!(valid["allowed"], true, "{valid}");
}

/// A stand-in apiserver with an HPA on Deployment `vllm` in `serving` and
/// a ReadWriteOnce claim `models`.
async fn autoscaling_apiserver() -> SocketAddr {
    let hpa = json!({"metadata": {"name": "vllm-queue", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_waiting"},
                "target": {"type": "AverageValue", "averageValue": "5"}}}]}});
    let hpas = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList",
        "metadata": {}, "items": [hpa]});
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models", "namespace": "serving"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "200Gi"}}}});
    static_apiserver(vec![
        (
            "/apis/autoscaling/v2/namespaces/serving/horizontalpodautoscalers",
            hpas,
        ),
        (
            "/api/v1/namespaces/serving/persistentvolumeclaims/models",
            claim,
        ),
    ])
    .await
}

/// A stand-in apiserver on loopback that answers each path with its JSON
/// and anything else (KEDA's resources, say) with the plain-text 404 of a
/// resource type the apiserver does not serve.
async fn static_apiserver(routes: Vec<(&'static str, Value)>) -> SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut app = axum::Router::new();
    for (path, body) in routes {
        app = app.route(
            path,
            get(move || {
                let body = body.clone();
                async move { axum::Json(body) }
            }),
        );
    }
    let app =
        app.fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "404 page not found\n") });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscalers_and_claims_of_the_cluster_are_context() {
    let apiserver = autoscaling_apiserver().await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    // A second HPA on the Deployment the cluster's HPA already scales.
    let second = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "vllm-kv-cache", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:gpu_cache_usage_perc"},
                "target": {"type": "AverageValue", "averageValue": "800m"}}}]}});
    let message = denial(
        &server,
        &review(HPA, "horizontalpodautoscalers", "CREATE", &second, None),
    )
    .await;
    assert!(
        message.contains("[single-autoscaler-per-workload]") && message.contains("vllm-queue"),
        "{message}"
    );
    // An update of the cluster's own HPA is no second autoscaler.
    let mut own = second.clone();
    own["metadata"]["name"] = json!("vllm-queue");
    let update = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "UPDATE", &own, Some(&own)),
    )
    .await;
    assert!(
        !update
            .to_string()
            .contains("single-autoscaler-per-workload"),
        "{update}"
    );
    // The Deployment mounts the ReadWriteOnce claim and the cluster's HPA
    // may run 4 replicas of it.
    let mut deployment = vllm_deployment("vllm", "1", "1");
    deployment["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]);
    deployment["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(["--model", "/models/qwen"]);
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "models", "mountPath": "/models"}]);
    let message = denial(
        &server,
        &review(DEPLOYMENT, "deployments", "CREATE", &deployment, None),
    )
    .await;
    assert!(
        message.contains("[shared-cache-access-mode]") && message.contains("vllm-queue"),
        "{message}"
    );
}

const SCALED_OBJECT: (&str, &str, &str) = ("keda.sh", "v1alpha1", "ScaledObject");

/// A ScaledObject on Deployment `vllm` with one Prometheus trigger.
fn scaled_object(query: &str) -> Value {
    json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "vllm", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"name": "vllm"}, "minReplicaCount": 1, "maxReplicaCount": 4,
            "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus.monitoring:9090",
                "query": query, "threshold": "20"}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_objects_are_reviewed_and_mutated() {
    let server = Server::start(&[]);
    // A query of every namespace: denied, with the rule id.
    let unfiltered = scaled_object("sum(vllm:num_requests_waiting)");
    let message = denial(
        &server,
        &review(SCALED_OBJECT, "scaledobjects", "CREATE", &unfiltered, None),
    )
    .await;
    assert!(message.contains("[keda-prometheus-query]"), "{message}");
    // A filtered query without behavior: allowed (the defaults apply: an
    // info), and /mutate writes the behavior where KEDA reads it.
    let filtered = scaled_object("sum(vllm:num_requests_waiting{namespace=\"serving\"})");
    let request = review(SCALED_OBJECT, "scaledobjects", "CREATE", &filtered, None);
    let validated = send(&server, "/validate", &request).await;
    assert_eq!(validated["allowed"], true, "{validated}");
    let mutated = send(&server, "/mutate", &request).await;
    let patch = decode_patch(&mutated).expect("a patch");
    let mut patched = filtered.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies");
    assert_eq!(
        patched["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
            ["stabilizationWindowSeconds"],
        300,
        "{patched}"
    );
    let again = send(
        &server,
        "/mutate",
        &review(SCALED_OBJECT, "scaledobjects", "CREATE", &patched, None),
    )
    .await;
    assert!(again.get("patch").is_none(), "{again}");
    // KEDA's own HPA of the ScaledObject is not reviewed a second time.
    let keda_hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-vllm", "namespace": "serving",
            "ownerReferences": [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "name": "vllm", "uid": "0b1c2d3e-0000-4000-8000-000000000001"}]},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "s0-prometheus", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "vllm"}}},
                "target": {"type": "AverageValue", "averageValue": "20"}}}]}});
    let owned = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &keda_hpa, None),
    )
    .await;
    assert_eq!(owned["allowed"], true, "{owned}");
    assert!(owned.get("warnings").is_none(), "{owned}");
}

/// Bodies in flight share one budget: clients that declare large bodies
/// and send them slowly cannot make the webhook hold unbounded memory. The
/// third large body is refused at once while ordinary reviews still run,
/// and a body declared above the limit is refused before it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_share_a_bounded_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[]);
    let open = || tls_stream(&server);
    let large = infergate::webhook::server::BODY_LIMIT - 1024 * 1024;
    assert!(2 * large <= infergate::webhook::server::BODY_BUDGET);
    assert!(3 * large > infergate::webhook::server::BODY_BUDGET);
    let head = |length: usize| {
        format!("POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{")
    };
    // Two clients reserve most of the budget and keep their bodies coming.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = open().await;
        stream
            .write_all(head(large).as_bytes())
            .await
            .expect("write");
        stream.flush().await.expect("flush");
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The answer comes before the body is sent.
    let first_line = |mut stream: tokio_rustls::client::TlsStream<TcpStream>, length: usize| async move {
        stream
            .write_all(head(length).as_bytes())
            .await
            .expect("write");
        let mut buffer = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer before the body is sent")
            .expect("read");
        String::from_utf8_lossy(&buffer[..read]).to_string()
    };
    let answer = first_line(open().await, large).await;
    assert!(
        answer.starts_with("HTTP/1.1 429"),
        "a third large body is refused: {answer}"
    );
    // An ordinary review still fits in what is left.
    let quiet = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": "default"}, "data": {"a": "b"}});
    let answer = send(
        &server,
        "/validate",
        &review(CONFIG_MAP, "configmaps", "CREATE", &quiet, None),
    )
    .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    // Declared above the limit: 400 without reading the body.
    let answer = first_line(open().await, infergate::webhook::server::BODY_LIMIT + 1).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    drop(holders);
}

/// A TLS connection to the server, for requests written by hand.
async fn tls_stream(server: &Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    connector(&server.ca_paths())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// Every webhook but the guard of the label itself skips namespaces
/// labelled `infergate.dev/webhook: exclude`
/// (infergate's own namespace carries the label).
#[test]
fn the_opt_out_label_excludes_a_namespace_from_every_webhook() {
    let loaded = infergate::input::loader::load(&[infergate::input::loader::Input::File(
        "webhook-deploy/webhooks.yaml".into(),
    )])
    .expect("webhooks.yaml");
    let mut webhooks = 0;
    for configuration in &loaded.objects {
        for webhook in configuration.value["webhooks"]
            .as_array()
            .expect("webhooks")
        {
            webhooks += 1;
            // The guard of the label itself must see the labelled namespaces.
            if webhook["name"] == "namespace-opt-out.validate.infergate.dev" {
                continue;
            }
            let expressions = webhook["namespaceSelector"]["matchExpressions"]
                .as_array()
                .expect("matchExpressions");
            assert!(
                expressions.contains(&json!({"key": "infergate.dev/webhook", "operator": "NotIn", "values": ["exclude"]})),
                "{}: {expressions:?}",
                webhook["name"]
            );
        }
    }
    assert!(webhooks >= 4, "{webhooks} webhooks");
}

/// Peak resident memory of the server so far, from /proc (Linux).
fn peak_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Twelve reviews of a ConfigMap whose config.yaml holds 100 small alias
/// bombs took the server past 1.3 GB (its Deployment's limit is 256 Mi:
/// an OOM kill, and under failurePolicy Ignore everything admitted) and
/// made legitimate reviews wait into 429s. With the alias budget per
/// review, each is denied with one finding, the server stays small, and
/// the legitimate reviews sent alongside are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_bombs_across_documents_are_denied_within_the_memory_limit() {
    let server = Server::start(&[]);
    let bomb = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "adapter-config",
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "prometheus-adapter"},
        },
        "data": {"config.yaml": common::alias_bomb_documents(100)},
    });
    let bomb =
        serde_json::to_vec(&review(CONFIG_MAP, "configmaps", "CREATE", &bomb, None)).expect("json");
    let quiet = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": "default"}, "data": {"a": "b"}});
    let quiet = serde_json::to_vec(&review(CONFIG_MAP, "configmaps", "CREATE", &quiet, None))
        .expect("json");
    let cas = server.ca_paths();
    let mut reviews = tokio::task::JoinSet::new();
    for index in 0..20 {
        let body = if index % 5 < 3 {
            bomb.clone()
        } else {
            quiet.clone()
        };
        let is_bomb = index % 5 < 3;
        let (addr, cas) = (server.addr, cas.clone());
        reviews.spawn(async move { (is_bomb, post(addr, &cas, "/validate", body).await) });
    }
    let (mut denied, mut allowed) = (0, 0);
    while let Some(joined) = reviews.join_next().await {
        let (is_bomb, (status, body, _)) = joined.expect("task");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).expect("JSON answer");
        let response = &answer["response"];
        if is_bomb {
            assert_eq!(response["allowed"], false, "{response}");
            let message = response["status"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("aliases of this input expand"),
                "{message}"
            );
            denied += 1;
        } else {
            assert_eq!(response["allowed"], true, "{response}");
            allowed += 1;
        }
    }
    assert_eq!((denied, allowed), (12, 8));
    let peak = peak_rss_kib(&server);
    assert!(
        peak < 256 * 1024,
        "the server's peak RSS, {peak} KiB, passed the Deployment's 256 Mi limit"
    );
    assert_eq!(http_get(server.metrics, "/healthz").await, "ok");
}

/// An object's own `infergate.dev/ignore` needs no right to write, so at
/// admission it turns a denial into a warning that names it and its
/// reason, counted in infergate_suppressed_total; it used to let the
/// object in silently. Only an exception in the server's policy (the
/// cluster admins') lets a denied object in without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_cannot_exempt_itself_from_a_denial() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "exceptions:\n- rules: ['*']\n  namespaces: [granted]\n  kinds: [HorizontalPodAutoscaler]\n  reason: upstream exporter, TICKET-7\n",
    )
    .expect("write");
    let server = Server::start(&[&format!("--policy={}", policy.display())]);
    let mut hpa = fixture(
        "testdata/rules/metric-name-lowercase/fires.yaml",
        "HorizontalPodAutoscaler",
    );
    hpa["metadata"]["annotations"] = json!({"infergate.dev/ignore": "*=we know"});
    let response = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .map(|warnings| warnings.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        warnings.iter().any(|warning| warning
            .starts_with("metric-name-lowercase: denial suppressed")
            && warning.contains("infergate.dev/ignore (we know)")),
        "{warnings:?}"
    );
    assert!(warnings
        .iter()
        .all(|warning| warning.chars().count() <= 120));
    // Nothing is mutated for the object against its annotation.
    let mutated = send(
        &server,
        "/mutate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert!(mutated.get("patch").is_none(), "{mutated}");
    let metrics = http_get(server.metrics, "/metrics").await;
    assert!(
        metrics.contains("infergate_suppressed_total{rule=\"metric-name-lowercase\"} 1"),
        "{metrics}"
    );

    // The admins' exception, in the server's policy: allowed, no warning.
    let mut granted = fixture(
        "testdata/rules/metric-name-lowercase/fires.yaml",
        "HorizontalPodAutoscaler",
    );
    granted["metadata"]["namespace"] = json!("granted");
    let response = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &granted, None),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let quiet = response["warnings"].as_array().is_none_or(|warnings| {
        !warnings.iter().any(|warning| {
            warning
                .as_str()
                .is_some_and(|text| text.contains("metric-name-lowercase"))
        })
    });
    assert!(quiet, "{response}");
    // Elsewhere the exception does not reach.
    granted["metadata"]["namespace"] = json!("other");
    let response = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &granted, None),
    )
    .await;
    assert_eq!(response["allowed"], false, "{response}");
}

/// The namespace opt-out label is honoured only when set by whom the
/// policy allows (webhook.optOut): any user allowed to edit a namespace
/// could otherwise take it out of every review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_may_opt_a_namespace_out() {
    const NAMESPACE: (&str, &str, &str) = ("", "v1", "Namespace");
    let server = Server::start(&[]);
    let labelled = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"infergate.dev/webhook": "exclude"}}});
    let plain = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"team": "a"}}});
    let as_user = |mut review: Value, user: &str, groups: &[&str]| {
        review["request"]["userInfo"] = json!({"username": user, "groups": groups});
        review
    };
    let cases = [
        // (operation, new, old, user, groups, allowed)
        (
            "UPDATE",
            &labelled,
            Some(&plain),
            "dev",
            vec!["system:authenticated"],
            false,
        ),
        (
            "CREATE",
            &labelled,
            None,
            "dev",
            vec!["system:authenticated"],
            false,
        ),
        (
            "UPDATE",
            &labelled,
            Some(&plain),
            "admin",
            vec!["system:masters"],
            true,
        ),
        // Already opted out: keeping the label (another edit) is allowed.
        (
            "UPDATE",
            &labelled,
            Some(&labelled),
            "dev",
            vec!["system:authenticated"],
            true,
        ),
        // Removing it brings the namespace back under review.
        (
            "UPDATE",
            &plain,
            Some(&labelled),
            "dev",
            vec!["system:authenticated"],
            true,
        ),
    ];
    for (operation, new, old, user, groups, allowed) in cases {
        let request = as_user(
            review(NAMESPACE, "namespaces", operation, new, old),
            user,
            &groups,
        );
        let response = send(&server, "/validate", &request).await;
        assert_eq!(
            response["allowed"], allowed,
            "{operation} by {user}: {response}"
        );
        if !allowed {
            let message = response["status"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("webhook.optOut"), "{message}");
        }
    }
}

/// Argo CD and `kubectl diff && kubectl apply` dry-run first: the HPA's
/// dry-run looks up a Deployment not yet created. That absence must not be
/// remembered, or the real create a second later warns that the target
/// does not exist though it was created in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_is_not_remembered() {
    use axum::routing::get;
    let created = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let exists = created.clone();
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "late", "namespace": "serving"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "late"}},
            "template": {"metadata": {"labels": {"app": "late"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
    let app = axum::Router::new()
        .route(
            "/apis/apps/v1/namespaces/serving/deployments/late",
            get(move || {
                let found = exists.load(std::sync::atomic::Ordering::SeqCst);
                let deployment = deployment.clone();
                async move {
                    if found {
                        (axum::http::StatusCode::OK, axum::Json(deployment))
                    } else {
                        (
                            axum::http::StatusCode::NOT_FOUND,
                            axum::Json(json!({"kind": "Status", "apiVersion": "v1",
                                "status": "Failure", "reason": "NotFound", "code": 404})),
                        )
                    }
                }
            }),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "404 page not found\n") });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let kubeconfig = kubeconfig_for(addr);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "late", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "late"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_waiting"},
                "target": {"type": "AverageValue", "averageValue": "5"}}}]}});
    let mut dry_run = review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None);
    dry_run["request"]["dryRun"] = json!(true);
    let first = send(&server, "/validate", &dry_run).await;
    assert!(
        first["warnings"]
            .to_string()
            .contains("does not exist in the cluster"),
        "{first}"
    );
    // The advice survives the apiserver's 120 characters: never cut.
    for warning in first["warnings"].as_array().expect("warnings") {
        let warning = warning.as_str().expect("text");
        assert!(
            warning.chars().count() <= 120 && !warning.ends_with('…'),
            "{warning}"
        );
    }
    created.store(true, std::sync::atomic::Ordering::SeqCst);
    let real = send(
        &server,
        "/validate",
        &review(HPA, "horizontalpodautoscalers", "CREATE", &hpa, None),
    )
    .await;
    assert!(
        !real["warnings"].to_string().contains("does not exist"),
        "{real}"
    );
}

const POOL: (&str, &str, &str) = ("inference.networking.k8s.io", "v1", "InferencePool");

/// An InferencePool whose endpoint picker is the Service `picker`.
fn pool(picker: &str) -> Value {
    json!({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": "serving"},
        "spec": {"selector": {"matchLabels": {"app": "llama"}}, "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": picker, "port": {"number": 9002}, "failureMode": "FailClose"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_pool_is_checked_against_the_cluster_picker_service() {
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "llama-metrics", "namespace": "serving"},
        "spec": {"selector": {"app": "llama-epp"}, "ports": [{"port": 9090}]}});
    let apiserver = static_apiserver(vec![(
        "/api/v1/namespaces/serving/services/llama-metrics",
        service,
    )])
    .await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    // The Service the pool names does not exist in the cluster.
    let missing = denial(
        &server,
        &review(POOL, "inferencepools", "CREATE", &pool("llama-epp"), None),
    )
    .await;
    assert!(
        missing.contains("[inference-pool-endpoint-picker]") && missing.contains("does not exist"),
        "{missing}"
    );
    // It exists, but exposes another port than the pool names.
    let port = denial(
        &server,
        &review(
            POOL,
            "inferencepools",
            "CREATE",
            &pool("llama-metrics"),
            None,
        ),
    )
    .await;
    assert!(
        port.contains("[inference-pool-endpoint-picker]") && port.contains("9090, not 9002"),
        "{port}"
    );
    // Without lookups nothing says the Service is missing: allowed.
    let offline = Server::start(&[]);
    let allowed = send(
        &offline,
        "/validate",
        &review(POOL, "inferencepools", "CREATE", &pool("llama-epp"), None),
    )
    .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
}

const ROUTE: (&str, &str, &str) = ("gateway.networking.k8s.io", "v1", "HTTPRoute");

/// An HTTPRoute to `backend`.
fn route(backend: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "llm", "namespace": "serving"},
        "spec": {"parentRefs": [{"name": "inference-gateway"}],
            "rules": [{"backendRefs": [backend]}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_is_checked_against_the_cluster_pools() {
    // The cluster has v1alpha2 pool `qwen` only.
    let qwen = json!({"apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": "qwen", "namespace": "serving"},
        "spec": {"targetPortNumber": 8000, "selector": {"app": "qwen"},
            "extensionRef": {"name": "qwen-epp", "failureMode": "FailClose"}}});
    let apiserver = static_apiserver(vec![(
        "/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/serving/inferencepools/qwen",
        qwen,
    )])
    .await;
    let kubeconfig = kubeconfig_for(apiserver);
    let server = Server::start(&[
        &format!("--kubeconfig={}", kubeconfig.path().display()),
        "--unauthenticated-lookups",
    ]);
    // A pool of neither version: denied.
    let missing = route(json!({"group": "inference.networking.k8s.io",
        "kind": "InferencePool", "name": "llama"}));
    let message = denial(
        &server,
        &review(ROUTE, "httproutes", "CREATE", &missing, None),
    )
    .await;
    assert!(
        message.contains("[httproute-inference-backend]")
            && message.contains("no InferencePool `llama`"),
        "{message}"
    );
    // The v1 group for a pool the cluster has as v1alpha2: denied, and
    // /mutate points the reference at the pool that exists.
    let wrong_group = route(json!({"group": "inference.networking.k8s.io",
        "kind": "InferencePool", "name": "qwen"}));
    let request = review(ROUTE, "httproutes", "CREATE", &wrong_group, None);
    let message = denial(&server, &request).await;
    assert!(
        message.contains("inference.networking.x-k8s.io/v1alpha2"),
        "{message}"
    );
    let mutated = send(&server, "/mutate", &request).await;
    let patch = decode_patch(&mutated).expect("a patch");
    let mut patched = wrong_group.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies");
    assert_eq!(
        patched["spec"]["rules"][0]["backendRefs"][0]["group"], "inference.networking.x-k8s.io",
        "{patched}"
    );
    let fixed = send(
        &server,
        "/validate",
        &review(ROUTE, "httproutes", "CREATE", &patched, None),
    )
    .await;
    assert_eq!(fixed["allowed"], true, "{fixed}");
}
