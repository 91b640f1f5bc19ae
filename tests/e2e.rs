//! The e2e tier: infergate installed the way a user installs it, on a real
//! control plane (etcd, kube-apiserver and kube-controller-manager built
//! from k8s.io/kubernetes by scripts/control-plane.sh), and driven with
//! kubectl and a Rust client.
//!
//!   bash scripts/control-plane.sh run -- cargo test --test e2e -- --ignored --nocapture
//!
//! The install is webhook-deploy/ applied with `kubectl apply -k` through an
//! overlay that points the webhooks at the server this test runs on
//! 127.0.0.1 (there is no kubelet: the Deployment's pods stay Pending), with
//! the CA of `serve --self-signed`. The server runs with a token of the
//! shipped service account, so its lookups have exactly the RBAC users get.
//!
//! One test runs the checks in order (they share the cluster and the
//! server, and some stop it); each check's outcome and time are printed and
//! a failed check does not stop the others.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

mod common;
#[path = "common/null_webhook.rs"]
mod null_webhook;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NAMESPACE: &str = "infergate";

struct Cluster {
    control_plane: PathBuf,
    kubeconfig: PathBuf,
    work: tempfile::TempDir,
    server: Option<Child>,
    addr: SocketAddr,
    metrics: SocketAddr,
    certificates: PathBuf,
    server_kubeconfig: PathBuf,
    overlay: PathBuf,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Cluster {
    fn from_environment() -> Self {
        let dir = std::env::var_os("INFERGATE_E2E_DIR")
            .map(PathBuf::from)
            .expect(
                "INFERGATE_E2E_DIR is not set: run this tier with \
             `bash scripts/control-plane.sh run -- cargo test --test e2e -- --ignored`",
            );
        let work = tempfile::tempdir().expect("a scratch directory");
        let certificates = work.path().join("certs");
        Cluster {
            kubeconfig: dir.join("admin.kubeconfig"),
            control_plane: dir.clone(),
            server_kubeconfig: work.path().join("server.kubeconfig"),
            work,
            server: None,
            addr: SocketAddr::from(([127, 0, 0, 1], common::free_port())),
            metrics: SocketAddr::from(([127, 0, 0, 1], common::free_port())),
            certificates,
            overlay: PathBuf::new(),
        }
    }

    fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", &self.kubeconfig).args(args);
        common::run_command(command, stdin)
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None)
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_with(&args, Some(yaml))
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        let output = self.kubectl(&args);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    fn namespace(&self, name: &str) {
        let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
        let output = self.apply(&yaml, &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }

    fn raw_metrics(&self) -> String {
        self.ok(&["get", "--raw", "/metrics"])
    }

    /// Every webhook of both configurations gets this failurePolicy.
    fn failure_policy(&self, policy: &str) {
        for (kind, count) in [
            ("mutatingwebhookconfiguration", 2),
            ("validatingwebhookconfiguration", 3),
        ] {
            let ops: Vec<Value> = (0..count)
                .map(|index| {
                    json!({"op": "replace", "path": format!("/webhooks/{index}/failurePolicy"), "value": policy})
                })
                .collect();
            self.ok(&[
                "patch",
                kind,
                "infergate",
                "--type=json",
                "-p",
                &Value::Array(ops).to_string(),
            ]);
        }
    }

    fn install(&mut self) {
        let root = common::root();
        let crds = root.join("testdata/e2e/crds.yaml");
        let namespace = root.join("webhook-deploy/namespace");
        self.ok(&["apply", "-k", &namespace.display().to_string()]);
        self.ok(&["apply", "--server-side", "-f", &crds.display().to_string()]);
        self.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ]);

        let files = infergate::webhook::selfsigned::ensure(&self.certificates)
            .expect("self-signed certificates");
        let bundle = std::fs::read_to_string(&files.ca_bundle).expect("the caBundle");
        let overlay = self.work.path().join("overlay");
        std::fs::create_dir_all(&overlay).expect("overlay directory");
        let mut patches = String::new();
        for (kind, paths) in [
            (
                "MutatingWebhookConfiguration",
                ["/mutate", "/mutate"].as_slice(),
            ),
            (
                "ValidatingWebhookConfiguration",
                ["/validate", "/validate", "/validate"].as_slice(),
            ),
        ] {
            let ops: Vec<Value> = paths
                .iter()
                .enumerate()
                .map(|(index, path)| {
                    json!({"op": "replace", "path": format!("/webhooks/{index}/clientConfig"),
                       "value": {"url": format!("https://{}{path}", self.addr), "caBundle": bundle.trim()}})
                })
                .collect();
            patches.push_str(&format!(
                "  - target: {{kind: {kind}, name: infergate}}\n    patch: '{}'\n",
                Value::Array(ops)
            ));
        }
        std::fs::write(
            overlay.join("kustomization.yaml"),
            format!(
                "resources:\n  - {}\npatches:\n{patches}",
                relative_from(&overlay, &root.join("webhook-deploy"))
            ),
        )
        .expect("overlay kustomization");
        self.ok(&["apply", "-k", &overlay.display().to_string()]);
        self.overlay = overlay;

        // The server's identity: the shipped service account's token.
        let token = self.ok(&[
            "create",
            "token",
            "infergate",
            "-n",
            NAMESPACE,
            "--duration=2h",
        ]);
        let apiserver = std::env::var("INFERGATE_E2E_APISERVER").expect("INFERGATE_E2E_APISERVER");
        std::fs::write(
            &self.server_kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {apiserver}\n    certificate-authority: {}\nusers:\n- name: infergate\n  user:\n    token: {}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: infergate}}\ncurrent-context: e2e\n",
                self.control_plane.join("pki/ca.crt").display(),
                token.trim()
            ),
        )
        .expect("server kubeconfig");
        self.start_server();
    }

    /// `infergate serve` on `addr` and `metrics` with the shipped service
    /// account's kubeconfig, started with `certificates` (the TLS flags).
    /// It admits only the apiserver: `--client-ca` is the CA of the client
    /// certificate the control plane's AdmissionConfiguration presents,
    /// which is also what turns cluster lookups on.
    fn serve(&self, addr: SocketAddr, metrics: SocketAddr, certificates: &[&OsStr]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(["serve", "--namespace", NAMESPACE])
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--kubeconfig")
            .arg(&self.server_kubeconfig)
            .arg("--client-ca")
            .arg(self.control_plane.join("pki/webhook-client-ca.crt"))
            .args(certificates)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("infergate serve starts")
    }

    fn start_server(&mut self) {
        let files = infergate::webhook::selfsigned::ensure(&self.certificates).expect("certs");
        let child = self.serve(
            self.addr,
            self.metrics,
            &[
                "--tls-cert".as_ref(),
                files.cert.as_os_str(),
                "--tls-key".as_ref(),
                files.key.as_os_str(),
            ],
        );
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.server_metrics().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("infergate serve not ready on {}", self.metrics);
    }

    fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn server_metrics(&self) -> Option<String> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(self.metrics).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        body.starts_with("HTTP/1.1 200").then_some(body)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// `to` as a path relative to `from` (kustomize refuses absolute
/// resource paths), both absolute.
fn relative_from(from: &Path, to: &Path) -> String {
    let up = from.components().count() - 1;
    let down = to.strip_prefix("/").expect("an absolute path");
    format!("{}{}", "../".repeat(up), down.display())
}

/// The admission warnings kubectl printed. infergate's own (those that
/// start with a rule id) must reach the user whole: at most the 120
/// characters the apiserver keeps, never cut mid-advice.
fn warnings(output: &Output) -> Vec<String> {
    let warnings: Vec<String> = text(&output.stderr)
        .lines()
        .filter_map(|line| line.strip_prefix("Warning: "))
        .map(str::to_string)
        .collect();
    for warning in &warnings {
        let ours = warning
            .split_once(": ")
            .is_some_and(|(id, _)| infergate::rules::meta(id).is_some());
        if ours {
            assert!(
                warning.chars().count() <= 120 && !warning.ends_with('…'),
                "a warning cut short: {warning:?}"
            );
        }
    }
    warnings
}

/// The sum of a Prometheus counter's series whose labels contain every
/// `label="value"` given.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(common::root().join(path)).expect("fixture")
}

/// The documents of a fixture whose kind is `kind`, as one YAML stream.
fn documents(path: &str, kinds: &[&str]) -> String {
    fixture(path)
        .split("\n---")
        .filter(|document| {
            kinds
                .iter()
                .any(|kind| document.contains(&format!("kind: {kind}\n")))
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

const PLAIN_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: serving}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx:1.27}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: serving}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: postgres:17}
";

fn marked_deployment(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"infergate.dev/inference": "true"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.9.0",
                                                       "args": ["--model", "Qwen/Qwen2.5-0.5B-Instruct"],
                                                       "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}
    })
}

// ---------------------------------------------------------------- checks

fn denies_with_the_rule_named(cluster: &mut Cluster) {
    let hpa = fixture("testdata/rules/metric-name-lowercase/fires.yaml")
        .replace("namespace: default", "namespace: serving");
    let output = cluster.apply(&hpa, &[]);
    assert!(
        !output.status.success(),
        "admitted: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("denied the request") && stderr.contains("[metric-name-lowercase]"),
        "{stderr}"
    );
    assert!(cluster.get("hpa", "serving", "gemma-hpa").is_none());
}

/// An object's own `infergate.dev/ignore` annotation is no exemption at
/// admission: the denial becomes a warning that names the annotation, and
/// the server counts it (#30 item 3).
fn self_suppression_is_a_counted_warning(cluster: &mut Cluster) {
    let hpa = fixture("testdata/rules/metric-name-lowercase/fires.yaml")
        .replace("namespace: default", "namespace: serving")
        .replace(
            "name: gemma-hpa",
            "name: gemma-hpa-ignored\n  annotations:\n    infergate.dev/ignore: \"*=we know\"",
        );
    let counted = |cluster: &Cluster| {
        cluster.server_metrics().map_or(0.0, |metrics| {
            counter(
                &metrics,
                "infergate_suppressed_total",
                &["rule=\"metric-name-lowercase\""],
            )
        })
    };
    let before = counted(cluster);
    let output = cluster.apply(&hpa, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let warned = warnings(&output);
    assert!(
        warned
            .iter()
            .any(|warning| warning.contains("infergate.dev/ignore")
                && warning.contains("metric-name-lowercase")),
        "{warned:?}"
    );
    assert!(counted(cluster) >= before + 1.0, "not counted");
    cluster.ok(&["delete", "hpa", "-n", "serving", "gemma-hpa-ignored"]);
}

/// A prometheus-adapter ConfigMap holding a hundred alias bombs in its
/// `config.yaml` is answered, the server's peak RSS stays under the
/// Deployment's 256 Mi limit, and a legitimate review after it is
/// answered (#30 item 1).
fn alias_bomb_config_map_is_answered_within_the_memory_limit(cluster: &mut Cluster) {
    cluster.namespace("monitoring");
    let bomb = common::adapter_config_map_yaml(&common::alias_bomb_documents(100));
    let output = cluster.apply(&bomb, &[]);
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(said.contains("alias"), "the bomb was not reviewed: {said}");
    let pid = cluster.server.as_ref().expect("the server runs").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM");
    println!(
        "e2e:        the server's peak RSS after the bomb: {:.0} MiB",
        peak_kib / 1024.0
    );
    assert!(peak_kib < 256.0 * 1024.0, "peak RSS {peak_kib} KiB");
    denies_with_the_rule_named(cluster);
    let _ = cluster.kubectl(&["delete", "configmap", "-n", "monitoring", "adapter-config"]);
}

fn mutates_and_warns_within_120_characters(cluster: &mut Cluster) {
    let deployment = fixture("testdata/fix/hf-home-shm-for-large-models.yaml");
    let output = cluster.apply(&deployment, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .get("deployment", "serving", "vllm-llama-405b")
        .expect("created");
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|entry| entry["name"] == "HF_HOME"
                && entry["value"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("/dev/shm/")))),
        "not mutated: {container}"
    );
    assert!(
        !warnings(&output).is_empty(),
        "no warnings: {}",
        text(&output.stderr)
    );
}

fn server_side_apply_twice_is_a_no_op(cluster: &mut Cluster) {
    let deployment = fixture("testdata/fix/hf-home-shm-for-large-models.yaml")
        .replace("vllm-llama-405b", "vllm-ssa");
    for _ in 0..2 {
        let output = cluster.apply(&deployment, &["--server-side", "--field-manager=e2e"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let first = cluster
        .get("deployment", "serving", "vllm-ssa")
        .expect("created");
    let output = cluster.apply(&deployment, &["--server-side", "--field-manager=e2e"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let second = cluster
        .get("deployment", "serving", "vllm-ssa")
        .expect("kept");
    assert_eq!(
        first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"],
        "a second apply of the same manifest changed the object"
    );
}

fn dry_run_is_reviewed_and_stores_nothing(cluster: &mut Cluster) {
    let hpa = fixture("testdata/rules/metric-name-lowercase/fires.yaml")
        .replace("namespace: default", "namespace: serving");
    let output = cluster.apply(&hpa, &["--dry-run=server"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("[metric-name-lowercase]"));
    let deployment = fixture("testdata/fix/hf-home-shm-for-large-models.yaml")
        .replace("vllm-llama-405b", "vllm-dry");
    let output = cluster.apply(&deployment, &["--dry-run=server", "-o", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answered: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        answered.to_string().contains("/dev/shm/"),
        "the dry run was not mutated"
    );
    assert!(cluster.get("deployment", "serving", "vllm-dry").is_none());
}

fn xla_gate_on_scale_and_on_resync(cluster: &mut Cluster) {
    let deployment = documents(
        "testdata/rules/xla-cache-single-writer/fires.yaml",
        &["Deployment"],
    );
    let first = deployment
        .split("\n---")
        .next()
        .expect("the first document");
    let output = cluster.apply(first, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .get("deployment", "serving", "vllm-tpu")
        .expect("created");
    assert_eq!(stored["spec"]["replicas"], 1, "created with all replicas");
    assert!(text(&output.stderr).contains("xla-cache-single-writer"));

    let scaled = cluster.kubectl(&[
        "scale",
        "-n",
        "serving",
        "deployment/vllm-tpu",
        "--replicas=3",
    ]);
    assert!(!scaled.status.success(), "kubectl scale was admitted");
    assert!(
        text(&scaled.stderr).contains("xla-cache-single-writer"),
        "{}",
        text(&scaled.stderr)
    );

    // A GitOps re-sync of the manifest that says 3: admitted, held at 1.
    let output = cluster.apply(first, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .get("deployment", "serving", "vllm-tpu")
        .expect("kept");
    assert_eq!(stored["spec"]["replicas"], 1);
    assert!(
        warnings(&output).iter().any(|w| w.contains("held at 1")),
        "{}",
        text(&output.stderr)
    );

    // Once a replica is Ready, the cache is written: scale is admitted.
    cluster.ok(&[
        "patch",
        "-n",
        "serving",
        "deployment/vllm-tpu",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1,"updatedReplicas":1}}"#,
    ]);
    let scaled = cluster.kubectl(&[
        "scale",
        "-n",
        "serving",
        "deployment/vllm-tpu",
        "--replicas=3",
    ]);
    assert!(scaled.status.success(), "{}", text(&scaled.stderr));
}

/// The pod templates of other kinds are reviewed too: a RayService whose
/// TPU worker group starts two hosts on one shared XLA cache is denied,
/// the same with one host is admitted.
fn ray_service_reviewed(cluster: &mut Cluster) {
    let fires = fixture("testdata/rules/xla-cache-single-writer/fires-rayservice.yaml");
    let output = cluster.apply(&fires, &[]);
    assert!(
        !output.status.success(),
        "admitted: {}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("[xla-cache-single-writer]"),
        "{}",
        text(&output.stderr)
    );
    let quiet = fixture("testdata/rules/xla-cache-single-writer/quiet-rayservice.yaml");
    let output = cluster.apply(&quiet, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// KServe's kinds are reviewed as the rules read them: InferenceServices
/// whose Knative annotations Knative would reject, and an
/// LLMInferenceService whose presets' vLLM runs more ranks than its GPUs,
/// are denied; their quiet fixtures are admitted.
fn kserve_kinds_reviewed(cluster: &mut Cluster) {
    for (fires, quiet, kind, rule) in [
        (
            "testdata/rules/kserve-knative-autoscaling/fires.yaml",
            "testdata/rules/kserve-knative-autoscaling/quiet.yaml",
            "InferenceService",
            "[kserve-knative-autoscaling]",
        ),
        (
            "testdata/rules/parallelism-matches-accelerators/fires-llminferenceservice.yaml",
            "testdata/rules/parallelism-matches-accelerators/quiet-llminferenceservice.yaml",
            "LLMInferenceService",
            "[parallelism-matches-accelerators]",
        ),
    ] {
        let output = cluster.apply(&documents(fires, &[kind]), &[]);
        assert!(
            !output.status.success(),
            "{fires} admitted: {}",
            text(&output.stdout)
        );
        assert!(
            text(&output.stderr).contains(rule),
            "{fires}: {}",
            text(&output.stderr)
        );
        let output = cluster.apply(&documents(quiet, &[kind]), &[]);
        assert!(output.status.success(), "{quiet}: {}", text(&output.stderr));
    }
}

/// The InferencePool v1 CRD as the project publishes it
/// (../shared/schemas/gateway-api-inference-extension-crds.json).
fn inference_pool_crd() -> Value {
    let path = common::root().join("../shared/schemas/gateway-api-inference-extension-crds.json");
    let text = std::fs::read_to_string(&path).expect("../shared/schemas: the CRDs the rules read");
    let document: Value = serde_json::from_str(&text).expect("CRD JSON");
    let schema = document["kinds"]["InferencePool"]["inference.networking.k8s.io/v1"]
        ["openAPIV3Schema"]
        .clone();
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        // A *.k8s.io group needs this annotation, as the project's CRD has.
        "metadata": {"name": "inferencepools.inference.networking.k8s.io",
            "annotations": {"api-approved.kubernetes.io":
                "https://github.com/kubernetes-sigs/gateway-api-inference-extension"}},
        "spec": {"group": "inference.networking.k8s.io", "scope": "Namespaced",
            "names": {"kind": "InferencePool", "listKind": "InferencePoolList",
                "plural": "inferencepools", "singular": "inferencepool"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema}}]}})
}

/// What the serving rules say of CRDs, on the real apiserver: the
/// InferencePool CRD rejects a Service reference without a port (what
/// inference-pool-endpoint-picker reports), and a field a CRD both
/// requires and defaults is filled in before validation (why the
/// converted schemas do not require such fields: KubeRay's maxReplicas).
fn serving_crds_as_the_rules_read_them(cluster: &mut Cluster) {
    let crd = inference_pool_crd().to_string();
    let output = cluster.apply(&crd, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    cluster.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/inferencepools.inference.networking.k8s.io",
    ]);
    let without_port = "apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: llama, namespace: serving}
spec:
  selector: {matchLabels: {app: llama}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: llama-epp, failureMode: FailClose}
";
    let output = cluster.apply(without_port, &[]);
    assert!(
        !output.status.success(),
        "admitted: {}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("endpointPickerRef"),
        "{}",
        text(&output.stderr)
    );
    // With its port the CRD accepts it, and the webhook looks the Service
    // up: missing, the pool is denied; once it exists, admitted.
    let with_port = without_port.replace(
        "{name: llama-epp, failureMode: FailClose}",
        "{name: llama-epp, port: {number: 9002}, failureMode: FailClose}",
    );
    let output = cluster.apply(&with_port, &[]);
    assert!(
        !output.status.success(),
        "admitted: {}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("[inference-pool-endpoint-picker]")
            && text(&output.stderr).contains("does not exist"),
        "{}",
        text(&output.stderr)
    );
    let service = "apiVersion: v1
kind: Service
metadata: {name: llama-epp, namespace: serving}
spec:
  selector: {app: llama-epp}
  ports: [{name: grpc-ext-proc, port: 9002, targetPort: 9002}]
";
    let output = cluster.apply(service, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = cluster.apply(&with_port, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // A field required and defaulted by a CRD: an object without it is
    // accepted, and stored with the default.
    let defaulted = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "groups.e2e.infergate.dev"},
        "spec": {"group": "e2e.infergate.dev", "scope": "Namespaced",
            "names": {"kind": "Group", "listKind": "GroupList", "plural": "groups", "singular": "group"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["maxReplicas"], "properties": {
                        "maxReplicas": {"type": "integer", "default": 2147483647}}}}}}}]}});
    let output = cluster.apply(&defaulted.to_string(), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    cluster.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/groups.e2e.infergate.dev",
    ]);
    let output = cluster.apply(
        "apiVersion: e2e.infergate.dev/v1\nkind: Group\nmetadata: {name: workers, namespace: serving}\nspec: {}\n",
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .get("groups.e2e.infergate.dev", "serving", "workers")
        .expect("the object was stored");
    assert_eq!(stored["spec"]["maxReplicas"], 2147483647, "{stored}");
}

fn opt_out_only_by_the_named_groups(cluster: &mut Cluster) {
    cluster.namespace("batch");
    // Alice may edit namespaces but is not in the policy's optOut.
    cluster.ok(&[
        "create",
        "clusterrole",
        "namespace-editor",
        "--verb=get,patch,update",
        "--resource=namespaces",
    ]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "alice-namespaces",
        "--clusterrole=namespace-editor",
        "--user=alice",
    ]);
    let refused = cluster.kubectl(&[
        "label",
        "namespace",
        "batch",
        "infergate.dev/webhook=exclude",
        "--as=alice",
    ]);
    assert!(!refused.status.success(), "alice opted a namespace out");
    // system:masters is named: its label is honoured, and the namespace's
    // objects pass unreviewed.
    cluster.ok(&[
        "label",
        "namespace",
        "batch",
        "infergate.dev/webhook=exclude",
    ]);
    let hpa = fixture("testdata/rules/metric-name-lowercase/fires.yaml")
        .replace("namespace: default", "namespace: batch");
    let output = cluster.apply(&hpa, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(warnings(&output).is_empty(), "{}", text(&output.stderr));
    // infergate's own namespace and kube-system are never reviewed.
    for namespace in [NAMESPACE, "kube-system"] {
        let hpa = fixture("testdata/rules/metric-name-lowercase/fires.yaml")
            .replace("namespace: default", &format!("namespace: {namespace}"));
        let output = cluster.apply(&hpa, &[]);
        assert!(
            output.status.success(),
            "{namespace}: {}",
            text(&output.stderr)
        );
    }
}

fn match_conditions_never_error_under_fail(cluster: &mut Cluster) {
    cluster.failure_policy("Fail");
    let before = cluster.server_metrics().expect("server metrics");
    let reviews_before = counter(&before, "infergate_admission_requests_total", &[]);
    let output = cluster.apply(PLAIN_DEPLOYMENT, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Updated too (the apiserver sends UPDATE with the old object).
    let output = cluster.apply(&PLAIN_DEPLOYMENT.replace("replicas: 2", "replicas: 3"), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let after = cluster.server_metrics().expect("server metrics");
    assert_eq!(
        counter(&after, "infergate_admission_requests_total", &[]),
        reviews_before,
        "a plain workload reached the webhook"
    );
    // An inference workload under Fail is reviewed and admitted.
    let marked = marked_deployment("marked", "serving");
    let output = cluster.apply(&marked.to_string(), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let reviewed = cluster.server_metrics().expect("server metrics");
    assert!(counter(&reviewed, "infergate_admission_requests_total", &[]) > reviews_before);
    let apiserver = cluster.raw_metrics();
    let errors = counter(
        &apiserver,
        "apiserver_admission_match_condition_evaluation_errors_total",
        &[],
    );
    assert_eq!(errors, 0.0, "match condition errors on the apiserver");
    assert!(
        counter(
            &apiserver,
            "apiserver_admission_match_condition_evaluation_seconds_count",
            &["name=\"workloads.validate.infergate.dev\""]
        ) > 0.0,
        "the apiserver never evaluated the match conditions"
    );
    cluster.failure_policy("Ignore");
}

fn failure_policy_fail_and_ignore(cluster: &mut Cluster) {
    cluster.stop_server();
    cluster.failure_policy("Fail");
    let marked = marked_deployment("while-down", "serving");
    let output = cluster.apply(&marked.to_string(), &[]);
    let refused = !output.status.success();
    let stderr = text(&output.stderr);
    // A plain workload does not call the webhook: admitted even now.
    let plain = cluster.apply(&PLAIN_DEPLOYMENT.replace("name: web", "name: web-2"), &[]);
    cluster.failure_policy("Ignore");
    let ignored = cluster.apply(&marked.to_string(), &[]);
    cluster.start_server();
    assert!(refused, "Fail admitted a write while the webhook was down");
    assert!(stderr.contains("failed calling webhook"), "{stderr}");
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(ignored.status.success(), "{}", text(&ignored.stderr));
}

/// Only the apiserver may send reviews: a client with no certificate, or
/// with one of the cluster's own CA (the admin's), is refused in the TLS
/// handshake, while the reviews the apiserver sends are answered (every
/// other check) and looked up (the lookup checks).
fn only_the_apiserver_may_send_reviews(cluster: &mut Cluster) {
    let files =
        infergate::webhook::selfsigned::ensure(&cluster.certificates).expect("certificates");
    let url = format!("https://{}/validate", cluster.addr);
    let pki = cluster.control_plane.join("pki");
    let curl = |extra: &[&OsStr]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", "Content-Type: application/json", "--data", "{}"])
            .arg("--cacert")
            .arg(&files.ca_cert)
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl runs")
    };
    let anonymous = curl(&[]);
    assert!(
        !anonymous.status.success(),
        "a client without a certificate got HTTP {}",
        text(&anonymous.stdout)
    );
    let with_certificate = |name: &str| {
        let (cert, key) = (
            pki.join(format!("{name}.crt")),
            pki.join(format!("{name}.key")),
        );
        curl(&[
            "--cert".as_ref(),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    let admin = with_certificate("admin");
    assert!(
        !admin.status.success(),
        "a certificate of another CA got HTTP {}",
        text(&admin.stdout)
    );
    // The apiserver's own certificate is accepted (a review of `{}` is a
    // 400: the connection got through).
    let apiserver = with_certificate("webhook-client");
    assert!(
        apiserver.status.success() && text(&apiserver.stdout).starts_with('4'),
        "the apiserver's certificate: HTTP {} {}",
        text(&apiserver.stdout),
        text(&apiserver.stderr)
    );
}

fn lookups_of_targets(cluster: &mut Cluster) {
    // An HPA whose target does not exist: warned, admitted.
    let hpa = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: lookup, namespace: serving}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: lookup-target}
  minReplicas: 1
  maxReplicas: 2
  behavior:
    scaleDown: {stabilizationWindowSeconds: 300}
  metrics:
  - type: Pods
    pods:
      metric: {name: vllm:num_requests_waiting}
      target: {type: AverageValue, averageValue: \"10\"}
";
    // Argo CD's order: a dry run of the HPA first (its target not created
    // yet), then the target, then the HPA within the lookup cache's 5 s.
    let dry = cluster.apply(hpa, &["--dry-run=server"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        warnings(&dry).iter().any(|w| w.contains("does not exist")),
        "no warning for a missing target: {}",
        text(&dry.stderr)
    );
    let target = marked_deployment("lookup-target", "serving");
    let created = cluster.apply(&target.to_string(), &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let output = cluster.apply(hpa, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !warnings(&output)
            .iter()
            .any(|w| w.contains("does not exist")),
        "a stale absence: {}",
        text(&output.stderr)
    );
}

/// `yaml` is admitted with a warning of `rule`.
fn admitted_with_warning(cluster: &Cluster, yaml: &str, rule: &str, otherwise: &str) {
    let output = cluster.apply(yaml, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        warnings(&output).iter().any(|w| w.contains(rule)),
        "{otherwise}: {}",
        text(&output.stderr)
    );
}

fn lookups_of_nodes_claims_and_monitors(cluster: &mut Cluster) {
    // Two TPU v5e 2x4 nodes: a pool of 16 chips.
    for name in ["tpu-a", "tpu-b"] {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                "cloud.google.com/gke-tpu-topology": "2x4"}}});
        let output = cluster.apply(&node.to_string(), &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        cluster.ok(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"capacity":{"google.com/tpu":"8"},"allocatable":{"google.com/tpu":"8"}}}"#,
        ]);
    }
    let pool = fixture("testdata/rules/max-replicas-chip-pool/fires.yaml");
    let workload = documents(
        "testdata/rules/max-replicas-chip-pool/fires.yaml",
        &["Deployment"],
    );
    let output = cluster.apply(&workload, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let too_big = pool
        .split("\n---")
        .find(|document| document.contains("jetstream-hpa-too-big"))
        .expect("the HPA");
    admitted_with_warning(
        cluster,
        too_big,
        "max-replicas-chip-pool",
        "the pool of Nodes was not consulted",
    );

    // A ReadWriteOnce claim under an HPA of four: the workload's review
    // looks up both, and is denied with the rule.
    let fires = "testdata/rules/shared-cache-access-mode/fires.yaml";
    let rename = |yaml: String| {
        yaml.replace("name: vllm\n", "name: vllm-claim\n")
            .replace("{app: vllm}", "{app: vllm-claim}")
            .replace("name: vllm}", "name: vllm-claim}")
            .replace("claimName: models", "claimName: models-rwo")
            .replace("name: models\n  namespace", "name: models-rwo\n  namespace")
    };
    let output = cluster.apply(
        &rename(documents(
            fires,
            &["PersistentVolumeClaim", "HorizontalPodAutoscaler"],
        )),
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = cluster.apply(&rename(documents(fires, &["Deployment"])), &[]);
    assert!(
        !output.status.success() && text(&output.stderr).contains("[shared-cache-access-mode]"),
        "the claim or the HPA was not consulted: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    // The HPA deleted, the same workload is admitted at once: the
    // autoscalers the review reads follow deletes too.
    cluster.ok(&["delete", "hpa", "-n", "serving", "vllm-claim"]);
    let output = cluster.apply(&rename(documents(fires, &["Deployment"])), &[]);
    assert!(
        output.status.success(),
        "denied on a deleted HPA: {}",
        text(&output.stderr)
    );

    // A PodMonitoring scraping a port the selected server does not open.
    let monitored = documents(
        "testdata/rules/podmonitoring-scrape/fires-port.yaml",
        &["Deployment"],
    )
    .replace("name: vllm\n", "name: vllm-monitored\n")
    .replace("{app: vllm}", "{app: vllm-monitored}");
    let output = cluster.apply(&monitored, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let monitor = documents(
        "testdata/rules/podmonitoring-scrape/fires-port.yaml",
        &["PodMonitoring"],
    )
    .replace("{app: vllm}", "{app: vllm-monitored}");
    admitted_with_warning(
        cluster,
        &monitor,
        "podmonitoring-scrape",
        "the monitor's workloads were not consulted",
    );
}

fn audit_writes_reports_the_crd_accepts(cluster: &mut Cluster) {
    let audit = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["audit", "-A", "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .output()
        .expect("audit runs");
    let printed = text(&audit.stdout);
    assert!(
        printed.contains("shared-cache-access-mode") || printed.contains("max-replicas-chip-pool"),
        "audit found nothing: {printed}{}",
        text(&audit.stderr)
    );
    let write_reports = |cluster: &Cluster| {
        Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(["audit", "-A", "--write-reports", "--kubeconfig"])
            .arg(&cluster.kubeconfig)
            .output()
            .expect("audit runs")
    };
    let write = write_reports(cluster);
    assert!(
        !text(&write.stderr).contains("cannot write"),
        "{}",
        text(&write.stderr)
    );
    let report = cluster
        .get("policyreport", "serving", "infergate")
        .expect("a PolicyReport in serving");
    let results = report["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for result in results {
        assert!(result["timestamp"]["seconds"].is_i64(), "{result}");
        assert_eq!(result["source"], "infergate", "{result}");
    }
    assert!(
        report["summary"]["fail"].as_i64().unwrap_or_default()
            + report["summary"]["warn"].as_i64().unwrap_or_default()
            > 0
    );
    let output = cluster.kubectl(&["get", "clusterpolicyreport", "infergate"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // A second run with nothing changed writes nothing: the report keeps
    // its resourceVersion (results carry the time of each run, so an
    // apply would have made a new one).
    let again = write_reports(cluster);
    assert!(
        text(&again.stderr).contains("wrote 0 report(s)"),
        "{}",
        text(&again.stderr)
    );
    let after = cluster
        .get("policyreport", "serving", "infergate")
        .expect("the PolicyReport in serving");
    assert_eq!(
        report["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "an unchanged report was rewritten"
    );
}

fn apiserver_admission_metrics(cluster: &mut Cluster) {
    let metrics = cluster.raw_metrics();
    let calls = counter(
        &metrics,
        "apiserver_admission_webhook_admission_duration_seconds_count",
        &["name=\"workloads.validate.infergate.dev\""],
    );
    assert!(calls > 0.0, "no calls of the validating webhook recorded");
    let rejections = counter(
        &metrics,
        "apiserver_admission_webhook_rejection_count",
        &["name=\"workloads.validate.infergate.dev\""],
    );
    assert!(rejections > 0.0, "no rejection recorded");
    let failures = counter(
        &metrics,
        "apiserver_admission_webhook_fail_open_count",
        &["name=\"workloads.validate.infergate.dev\""],
    );
    println!(
        "e2e: validating webhook calls {calls}, rejections {rejections}, fail-open {failures}"
    );
}

/// Not an assertion: the latency the webhooks add to a Deployment create,
/// measured with a Rust client (kube) in three namespaces of one run,
/// interleaved: reviewed by infergate, reviewed by a null webhook pair
/// (tests/common/null_webhook.rs: the same stack answering "allowed",
/// what any mutating + validating webhook costs), and by none. Beside
/// them, the time infergate spent inside each review (its own histogram).
fn latency_of_a_create(cluster: &mut Cluster) {
    let null_addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let files = infergate::webhook::selfsigned::ensure(&cluster.certificates).expect("certs");
    null_webhook::spawn(null_addr, &files.cert, &files.key);
    let bundle = std::fs::read_to_string(&files.ca_bundle).expect("the caBundle");
    for (kind, path) in [
        ("MutatingWebhookConfiguration", "/mutate"),
        ("ValidatingWebhookConfiguration", "/validate"),
    ] {
        let configuration = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": "e2e-null"},
            "webhooks": [{
                "name": format!("null{}.e2e.infergate.dev", path.replace('/', ".")),
                "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "timeoutSeconds": 10, "failurePolicy": "Fail",
                "clientConfig": {"url": format!("https://{null_addr}{path}"), "caBundle": bundle.trim()},
                "namespaceSelector": {"matchLabels": {"e2e.infergate.dev/null-webhook": "true"}},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]
            }]
        });
        let output = cluster.kubectl_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&configuration.to_string()),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let namespaces = ["latency-on", "latency-null", "latency-off"];
    for namespace in namespaces {
        cluster.namespace(namespace);
    }
    for (namespace, label) in [
        ("latency-null", "infergate.dev/webhook=exclude"),
        ("latency-null", "e2e.infergate.dev/null-webhook=true"),
        ("latency-off", "infergate.dev/webhook=exclude"),
    ] {
        cluster.ok(&["label", "namespace", namespace, label]);
    }
    let inside = |metrics: Option<String>| {
        let metrics = metrics.unwrap_or_default();
        (
            counter(&metrics, "infergate_admission_duration_seconds_sum", &[]),
            counter(&metrics, "infergate_admission_duration_seconds_count", &[]),
        )
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let kubeconfig = cluster.kubeconfig.clone();
    // Enough rounds that p99 is not simply the slowest create.
    const ROUNDS: usize = 200;
    let before = inside(cluster.server_metrics());
    let mut times = runtime.block_on(async move {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("a client configuration");
        let client = kube::Client::try_from(config).expect("a client");
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        ));
        let mut times = vec![Vec::new(); namespaces.len()];
        // Round 0 opens each webhook's connection and is not counted.
        for round in 0..=ROUNDS {
            for (index, namespace) in namespaces.iter().enumerate() {
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::namespaced_with(client.clone(), namespace, &resource);
                // No pods: 600 Deployments of one replica would leave the
                // controllers creating 600 pods under the checks after this.
                let mut deployment = marked_deployment(&format!("d{round}"), namespace);
                deployment["spec"]["replicas"] = json!(0);
                let object: kube::api::DynamicObject =
                    serde_json::from_value(deployment).expect("object");
                let started = Instant::now();
                api.create(&kube::api::PostParams::default(), &object)
                    .await
                    .expect("created");
                if round > 0 {
                    times[index].push(started.elapsed());
                }
            }
        }
        times
    });
    let after = inside(cluster.server_metrics());
    for samples in &mut times {
        samples.sort();
    }
    let describe = |samples: &[Duration]| {
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        let at = |quantile: f64| {
            samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
                .as_secs_f64()
                * 1e3
        };
        format!(
            "mean {:.1} ms, p50 {:.1}, p95 {:.1}, p99 {:.1}",
            mean.as_secs_f64() * 1e3,
            at(0.50),
            at(0.95),
            at(0.99)
        )
    };
    let reviews = after.1 - before.1;
    println!(
        "e2e: Deployment create, {ROUNDS} each, interleaved, {} build: infergate {}; null webhooks {}; none {}; inside infergate {:.2} ms a review ({reviews} reviews)",
        // `cargo test` builds the server without optimisation: its review
        // takes about 4x as long. The figures of a release build come
        // from `cargo test --release --test e2e`.
        if cfg!(debug_assertions) { "debug" } else { "release" },
        describe(&times[0]),
        describe(&times[1]),
        describe(&times[2]),
        if reviews > 0.0 { (after.0 - before.0) / reviews * 1e3 } else { 0.0 }
    );
}

/// A server with `--managed-certificates`, as the component runs it, with
/// the shipped service account's token.
fn managed_server(cluster: &Cluster, addr: SocketAddr, metrics: SocketAddr, dir: &Path) -> Child {
    cluster.serve(
        addr,
        metrics,
        &[
            "--managed-certificates".as_ref(),
            "--certificate-name".as_ref(),
            "127.0.0.1".as_ref(),
            "--certificate-name".as_ref(),
            "localhost".as_ref(),
            "--certificates-check-interval-ms".as_ref(),
            "1000".as_ref(),
            "--certificates-dir".as_ref(),
            dir.as_os_str(),
        ],
    )
}

/// The Secret's data field, decoded.
fn secret_field(cluster: &Cluster, field: &str) -> String {
    let secret = cluster
        .get("secret", NAMESPACE, "infergate-tls")
        .expect("the Secret infergate-tls");
    let encoded = secret["data"][field].as_str().expect("the field");
    use base64::Engine as _;
    text(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64"),
    )
}

/// Every caBundle of both configurations.
fn ca_bundles(cluster: &Cluster) -> Vec<String> {
    let mut bundles = Vec::new();
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        let configuration = cluster.get(kind, "", "infergate").expect("configuration");
        for webhook in configuration["webhooks"].as_array().expect("webhooks") {
            bundles.push(
                webhook["clientConfig"]["caBundle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    bundles
}

fn eventually(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within {seconds} s: {what}");
}

/// Certificates without cert-manager: two replicas start at once with
/// the component's RBAC, agree on one Secret, inject its CA; the serving
/// certificate is renewed by one of them and followed by both; a reset
/// caBundle is put back.
fn managed_certificates(cluster: &mut Cluster) {
    let root = common::root();
    let rbac = root.join("webhook-deploy/managed-certificates/rbac.yaml");
    cluster.ok(&["apply", "-f", &rbac.display().to_string()]);
    cluster.stop_server();
    let dirs = [
        cluster.work.path().join("managed-a"),
        cluster.work.path().join("managed-b"),
    ];
    let second = (
        SocketAddr::from(([127, 0, 0, 1], common::free_port())),
        SocketAddr::from(([127, 0, 0, 1], common::free_port())),
    );
    let mut replicas = vec![
        managed_server(cluster, cluster.addr, cluster.metrics, &dirs[0]),
        managed_server(cluster, second.0, second.1, &dirs[1]),
    ];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually("both replicas serve", 20, || {
            dirs.iter().all(|dir| dir.join("tls.crt").is_file())
                && cluster.server_metrics().is_some()
        });
        let ca = secret_field(cluster, "ca.crt");
        use base64::Engine as _;
        let bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
        eventually("the CA injected into every webhook", 10, || {
            ca_bundles(cluster).iter().all(|b| *b == bundle)
        });
        let read = |dir: &PathBuf| std::fs::read_to_string(dir.join("tls.crt")).unwrap_or_default();
        assert_eq!(
            read(&dirs[0]),
            read(&dirs[1]),
            "the replicas serve different certificates"
        );
        denies_with_the_rule_named(cluster);

        // Renewal due: one replica renews, both follow, the CA stays.
        let before = secret_field(cluster, "tls.crt");
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 60;
        cluster.ok(&[
            "annotate",
            "secret",
            "-n",
            NAMESPACE,
            "infergate-tls",
            &format!("infergate.dev/serving-certificate-expires={soon}"),
            "--overwrite",
        ]);
        eventually("the serving certificate renewed", 15, || {
            secret_field(cluster, "tls.crt") != before
        });
        assert_eq!(
            secret_field(cluster, "ca.crt"),
            ca,
            "renewal changed the CA"
        );
        let renewed = secret_field(cluster, "tls.crt");
        eventually("both replicas serve the renewed certificate", 15, || {
            dirs.iter().all(|dir| read(dir) == renewed)
        });
        denies_with_the_rule_named(cluster);

        // A caBundle reset (a re-apply of webhooks.yaml) is put back.
        cluster.ok(&[
            "patch",
            "validatingwebhookconfiguration",
            "infergate",
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": "Cg=="}]"#,
        ]);
        eventually("the caBundle put back", 10, || {
            ca_bundles(cluster).iter().all(|b| *b == bundle)
        });
    }));
    for replica in &mut replicas {
        let _ = replica.kill();
        let _ = replica.wait();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn helm(cluster: &Cluster, args: &[&str]) -> Output {
    let helm =
        std::env::var_os("INFERGATE_HELM").expect("INFERGATE_HELM (scripts/control-plane.sh)");
    let mut command = Command::new(helm);
    command
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(common::root())
        .args(args);
    common::run_command(command, None)
}

/// Objects by (kind, namespace, name), without the labels only Helm adds.
fn by_identity(objects: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut object| {
            if let Some(labels) = object
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                for helm_only in [
                    "app.kubernetes.io/managed-by",
                    "app.kubernetes.io/instance",
                    "app.kubernetes.io/version",
                    "helm.sh/chart",
                ] {
                    labels.remove(helm_only);
                }
            }
            let key = format!(
                "{} {}/{}",
                object["kind"].as_str().unwrap_or_default(),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, object)
        })
        .collect()
}

/// The chart renders exactly the objects of the kustomize install it
/// mirrors, in each configuration both offer.
fn chart_renders_the_kustomize_objects(cluster: &mut Cluster) {
    let lint = helm(cluster, &["lint", "--strict", "charts/infergate"]);
    assert!(
        lint.status.success(),
        "{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );
    let cases: &[(&str, &[&str], &str)] = &[
        ("infergate", &[], "webhook-deploy/"),
        (
            "ml-platform",
            &["--set", "certificates.mode=managed"],
            "testdata/kustomize/managed-certificates",
        ),
        (
            "infergate",
            &["--set", "audit.enabled=true,audit.writeReports=true"],
            "testdata/kustomize/webhook-and-audit-reports",
        ),
    ];
    for (namespace, settings, kustomization) in cases {
        let mut args = vec!["template", "infergate", "charts/infergate", "-n", namespace];
        args.extend_from_slice(settings);
        let rendered = helm(cluster, &args);
        assert!(rendered.status.success(), "{}", text(&rendered.stderr));
        let chart = by_identity(common::objects_of(text(&rendered.stdout)));
        let kustomized = cluster.ok(&[
            "kustomize",
            &common::root().join(kustomization).display().to_string(),
        ]);
        let kustomize = by_identity(common::objects_of(kustomized));
        assert_eq!(
            chart.keys().collect::<Vec<_>>(),
            kustomize.keys().collect::<Vec<_>>(),
            "{settings:?} against {kustomization}: other objects"
        );
        for (key, object) in &chart {
            assert_eq!(
                object, &kustomize[key],
                "{settings:?} against {kustomization}: {key} differs"
            );
        }
    }
}

/// `helm install` and `helm uninstall` on the real apiserver, the audit
/// included: every object created, then removed, the namespace kept.
fn helm_install_and_uninstall(cluster: &mut Cluster) {
    let install = helm(
        cluster,
        &[
            "install",
            "infergate",
            "charts/infergate",
            "-n",
            "infergate-helm",
            "--create-namespace",
            "--set",
            "audit.enabled=true",
        ],
    );
    assert!(install.status.success(), "{}", text(&install.stderr));
    for (kind, name) in [
        ("deployment", "infergate"),
        ("cronjob", "infergate-audit"),
        ("issuer", "infergate-ca"),
    ] {
        cluster.ok(&["get", kind, "-n", "infergate-helm", name]);
    }
    let configuration = cluster
        .get("validatingwebhookconfiguration", "", "infergate")
        .expect("the webhook configuration");
    assert_eq!(
        configuration["webhooks"][0]["clientConfig"]["service"]["namespace"],
        "infergate-helm"
    );
    let uninstall = helm(
        cluster,
        &["uninstall", "infergate", "-n", "infergate-helm", "--wait"],
    );
    assert!(uninstall.status.success(), "{}", text(&uninstall.stderr));
    assert!(cluster
        .get("validatingwebhookconfiguration", "", "infergate")
        .is_none());
    assert!(cluster
        .get("cronjob", "infergate-helm", "infergate-audit")
        .is_none());
    let (phase, _) = namespace_state(cluster, "infergate-helm");
    assert_eq!(phase, "Active");
}

fn namespace_state(cluster: &Cluster, name: &str) -> (String, Value) {
    let namespace = cluster
        .get("namespace", "", name)
        .unwrap_or_else(|| panic!("namespace {name} is gone"));
    (
        namespace["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace["metadata"]["labels"].clone(),
    )
}

/// Webhook and audit installed side by side, each deleted on its own; an
/// overlay into a team's namespace applied and deleted: every namespace
/// survives, unrelabelled. Runs last: it uninstalls the webhook.
fn install_and_uninstall_leave_namespaces(cluster: &mut Cluster) {
    let root = common::root();
    let audit = root.join("webhook-deploy/audit").display().to_string();
    cluster.ok(&["apply", "-k", &audit]);
    cluster.ok(&[
        "delete",
        "-k",
        &cluster.overlay.display().to_string(),
        "--wait=false",
    ]);
    let (phase, _) = namespace_state(cluster, NAMESPACE);
    assert_eq!(
        phase, "Active",
        "deleting the webhook deleted its namespace"
    );
    cluster.ok(&["get", "cronjob", "-n", NAMESPACE, "infergate-audit"]);
    cluster.ok(&["delete", "-k", &audit, "--wait=false"]);
    let (phase, _) = namespace_state(cluster, NAMESPACE);
    assert_eq!(phase, "Active", "deleting the audit deleted the namespace");

    // A team's namespace, with labels of its own.
    cluster.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ml-platform\n  labels: {team: ml}\n",
        &[],
    );
    let overlay = root
        .join("testdata/kustomize/ml-platform")
        .display()
        .to_string();
    cluster.ok(&["apply", "-k", &overlay]);
    let (_, labels) = namespace_state(cluster, "ml-platform");
    assert_eq!(labels["team"], "ml");
    assert!(
        labels.get("infergate.dev/webhook").is_none()
            && labels.get("pod-security.kubernetes.io/enforce").is_none(),
        "the install relabelled the team's namespace: {labels}"
    );
    cluster.ok(&["delete", "-k", &overlay, "--wait=false"]);
    let (phase, _) = namespace_state(cluster, "ml-platform");
    assert_eq!(phase, "Active", "uninstalling deleted the team's namespace");
}

/// A named step of the tier.
type Check = fn(&mut Cluster);

#[test]
#[ignore = "needs the real control plane: bash scripts/control-plane.sh run -- cargo test --test e2e -- --ignored"]
fn e2e() {
    let mut cluster = Cluster::from_environment();
    let started = Instant::now();
    cluster.install();
    println!("e2e: installed in {:.1} s", started.elapsed().as_secs_f64());
    cluster.namespace("serving");
    let checks: &[(&str, Check)] = &[
        ("denies with the rule named", denies_with_the_rule_named),
        (
            "an object's own ignore annotation: a counted warning",
            self_suppression_is_a_counted_warning,
        ),
        (
            "an alias-bomb adapter ConfigMap within the memory limit",
            alias_bomb_config_map_is_answered_within_the_memory_limit,
        ),
        (
            "mutates, warnings within 120 characters",
            mutates_and_warns_within_120_characters,
        ),
        (
            "server-side apply twice is a no-op",
            server_side_apply_twice_is_a_no_op,
        ),
        (
            "dry run is reviewed and stores nothing",
            dry_run_is_reviewed_and_stores_nothing,
        ),
        (
            "a RayService's worker groups reviewed",
            ray_service_reviewed,
        ),
        ("KServe's kinds reviewed", kserve_kinds_reviewed),
        (
            "serving CRDs as the rules read them",
            serving_crds_as_the_rules_read_them,
        ),
        (
            "XLA gate on scale and on re-sync",
            xla_gate_on_scale_and_on_resync,
        ),
        (
            "opt-out only by the named groups; excluded namespaces",
            opt_out_only_by_the_named_groups,
        ),
        (
            "matchConditions never error under Fail",
            match_conditions_never_error_under_fail,
        ),
        (
            "failurePolicy Fail and Ignore",
            failure_policy_fail_and_ignore,
        ),
        (
            "only the apiserver may send reviews (--client-ca)",
            only_the_apiserver_may_send_reviews,
        ),
        (
            "lookups of targets (dry run, then create)",
            lookups_of_targets,
        ),
        (
            "lookups of Nodes, claims and monitors",
            lookups_of_nodes_claims_and_monitors,
        ),
        (
            "audit and --write-reports against the CRD",
            audit_writes_reports_the_crd_accepts,
        ),
        (
            "the apiserver's admission metrics",
            apiserver_admission_metrics,
        ),
        ("latency a create pays (printed)", latency_of_a_create),
        (
            "managed certificates: two replicas, renewal, drift",
            managed_certificates,
        ),
        (
            "install and uninstall leave namespaces",
            install_and_uninstall_leave_namespaces,
        ),
        (
            "the chart renders the kustomize objects",
            chart_renders_the_kustomize_objects,
        ),
        ("helm install and uninstall", helm_install_and_uninstall),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        let started = Instant::now();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut cluster)));
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("e2e: ok     {name} ({seconds:.1} s)"),
            Err(_) => {
                println!("e2e: FAILED {name} ({seconds:.1} s)");
                failed.push(*name);
            }
        }
    }
    println!(
        "e2e: {} checks in {:.1} s",
        checks.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}
