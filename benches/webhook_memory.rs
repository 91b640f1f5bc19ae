//! Peak memory of `infergate serve` under the largest reviews the apiserver
//! can send, so the Deployment's memory limit can be sized from a number.
//!
//! cargo bench --bench webhook_memory [-- CLIENTS ...]   (default: 8, 64, 256)
//!
//! Each client POSTs one UPDATE review whose object and old object are 3
//! MiB each (the apiserver's request limit), with curl, all at once: a
//! ConfigMap (the largest object most users may write), a Deployment of
//! many containers (every container rule has work), and bodies just under
//! the server's body limit (hostile clients need no apiserver). Peak RSS is the server's VmHWM; answers are counted
//! by HTTP status.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn resident(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// A ConfigMap of about `bytes` of data in 1 KiB values.
fn config_map(bytes: usize, generation: usize) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    let value = "x".repeat(1000);
    for index in 0..bytes / 1024 {
        data.insert(format!("key-{generation}-{index}"), value.clone().into());
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "default"},
        "data": data,
    })
}

/// A Deployment of about `bytes`: containers with long environments, so
/// that every container rule has work.
fn deployment(bytes: usize, generation: usize) -> serde_json::Value {
    let per_container = 300 * 110;
    let containers: Vec<serde_json::Value> = (0..bytes / per_container)
        .map(|index| {
            let env: Vec<serde_json::Value> = (0..300)
                .map(|var| serde_json::json!({"name": format!("VAR_{generation}_{var}"), "value": "v".repeat(80)}))
                .collect();
            serde_json::json!({
                "name": format!("c{index}"),
                "image": "vllm/vllm-openai:v0.9.0",
                "args": ["--model", "Qwen/Qwen2.5-7B-Instruct"],
                "env": env,
                "resources": {"limits": {"nvidia.com/gpu": 1}},
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": containers},
            },
        },
    })
}

/// An UPDATE review of `object` over `old` of the (group, version, kind).
fn update_review(
    (group, version, kind): (&str, &str, &str),
    resource: &str,
    object: serde_json::Value,
    old: serde_json::Value,
) -> Vec<u8> {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": "big",
            "namespace": "default",
            "operation": "UPDATE",
            "userInfo": {"username": "bench"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

fn deployment_review(object_bytes: usize) -> Vec<u8> {
    update_review(
        ("apps", "v1", "Deployment"),
        "deployments",
        deployment(object_bytes, 1),
        deployment(object_bytes, 0),
    )
}

fn config_map_review(object_bytes: usize) -> Vec<u8> {
    update_review(
        ("", "v1", "ConfigMap"),
        "configmaps",
        config_map(object_bytes, 1),
        config_map(object_bytes, 0),
    )
}

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Result<Server, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let child = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["serve", "--addr", &addr, "--metrics-addr", &metrics])
        .arg("--self-signed")
        .arg(dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&metrics).is_err() {
        if Instant::now() > deadline {
            return Err("the server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        child,
        addr,
        _dir: dir,
    })
}

/// HTTP statuses seen (status -> count), peak RSS in bytes, wall time.
type Round = (BTreeMap<String, usize>, u64, Duration);

/// Send `clients` POSTs of `body` at once; returns the HTTP statuses seen,
/// the server's peak RSS and the wall time.
fn round(
    server: &Server,
    body: &Path,
    clients: usize,
) -> Result<Round, Box<dyn std::error::Error>> {
    let ca = server._dir.path().join("ca.crt");
    let url = format!("https://{}/validate", server.addr);
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..clients {
        children.push(
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "30",
                ])
                .arg("--cacert")
                .arg(&ca)
                .args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(format!("@{}", body.display()))
                .arg(&url)
                .stdout(Stdio::piped())
                .spawn()?,
        );
    }
    let pid = server.child.id();
    let mut peak = 0;
    let mut statuses = BTreeMap::new();
    for child in children {
        let mut child = child;
        while child.try_wait()?.is_none() {
            peak = peak.max(high_water_mark(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(2));
        }
        let output = child.wait_with_output()?;
        *statuses
            .entry(String::from_utf8_lossy(&output.stdout).to_string())
            .or_insert(0) += 1;
    }
    peak = peak.max(high_water_mark(pid).unwrap_or(0));
    Ok((statuses, peak, started.elapsed()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    let clients = if given.is_empty() {
        vec![8, 64, 256]
    } else {
        given
    };
    let scratch = tempfile::tempdir()?;
    let largest = scratch.path().join("largest-review.json");
    std::fs::File::create(&largest)?.write_all(&config_map_review(3 * 1024 * 1024))?;
    let hostile = scratch.path().join("at-the-body-limit.json");
    let limit = infergate::webhook::server::BODY_LIMIT;
    std::fs::File::create(&hostile)?.write_all(&deployment_review(limit / 2 - 256 * 1024))?;
    let workload = scratch.path().join("deployment-review.json");
    std::fs::File::create(&workload)?.write_all(&deployment_review(3 * 1024 * 1024))?;
    for (name, body) in [
        ("ConfigMap review", &largest),
        ("Deployment review", &workload),
        ("body-limit Deployment review", &hostile),
    ] {
        let size = std::fs::metadata(body)?.len();
        for &count in &clients {
            // A fresh server per round: VmHWM never goes down.
            let server = start()?;
            let idle = resident(server.child.id()).unwrap_or(0);
            let (statuses, peak, took) = round(&server, body, count)?;
            println!(
                "webhook_memory: {count} x {name} ({:.1} MiB): idle {} MiB, peak RSS {} MiB, {:.2} s, statuses {statuses:?}",
                size as f64 / 1048576.0,
                idle / 1048576,
                peak / 1048576,
                took.as_secs_f64()
            );
        }
    }
    Ok(())
}
