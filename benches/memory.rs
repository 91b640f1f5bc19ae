//! Peak memory and time of `infergate lint --format json` on one large
//! manifest of Deployment + HPA + PodMonitoring bundles (one HPA in five
//! with an invalid target, 37 namespaces), at several sizes, so that the
//! ratio to the input and its growth can be read off.
//!
//! cargo bench --bench memory [-- MEGABYTES]   (default: 12, 25 and 50)
//!
//! Peak RSS is the kernel's high-water mark (VmHWM) of the child,
//! sampled every 2 ms until it exits.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bundle(index: usize) -> String {
    let namespace = format!("ns{}", index % 37);
    let target = if index.is_multiple_of(5) { "five" } else { "5" };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm-{index}
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: vllm-{index}}}
  template:
    metadata:
      labels: {{app: vllm-{index}}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.9.0
          args: [\"--model\", \"Qwen/Qwen2.5-7B-Instruct\", \"--port\", \"8000\"]
          ports: [{{name: metrics, containerPort: 8000}}]
          resources:
            limits: {{nvidia.com/gpu: 1}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: vllm-{index}
  namespace: {namespace}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: vllm-{index}}}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Pods
      pods:
        metric: {{name: vllm:num_requests_waiting}}
        target: {{type: AverageValue, averageValue: \"{target}\"}}
---
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata:
  name: vllm-{index}
  namespace: {namespace}
spec:
  selector:
    matchLabels: {{app: vllm-{index}}}
  endpoints:
    - port: metrics
      interval: 15s
---
"
    )
}

fn write_manifest(path: &Path, bytes: usize) -> std::io::Result<(usize, usize)> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut bundles) = (0, 0);
    while written < bytes {
        let text = bundle(bundles);
        file.write_all(text.as_bytes())?;
        written += text.len();
        bundles += 1;
    }
    file.flush()?;
    Ok((written, bundles))
}

/// The child's VmHWM in bytes, if it still runs.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|argument| argument.parse().ok())
            .collect();
        if given.is_empty() {
            vec![12, 25, 50]
        } else {
            given
        }
    };
    let scratch = tempfile::tempdir()?;
    for megabytes in sizes {
        let path = scratch.path().join(format!("bundles-{megabytes}.yaml"));
        let (bytes, bundles) = write_manifest(&path, megabytes * 1_000_000)?;
        let (peak, seconds) = measure(&path)?;
        println!(
            "memory: {:.1} MB input ({bundles} bundles, {} objects): peak RSS {:.0} MB = {:.1}x the input, {seconds:.2} s",
            bytes as f64 / 1e6,
            bundles * 3,
            peak as f64 / 1e6,
            peak as f64 / bytes as f64
        );
    }
    // Real manifests, which are less dense than the bundles above (block
    // style, comments, long strings): the reviewed corpus copied 40 times.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if corpus.is_dir() {
        let copies = scratch.path().join("corpus");
        let mut bytes = 0;
        for copy in 0..40 {
            bytes += copy_yaml(&corpus, &copies.join(format!("copy-{copy}")))?;
        }
        let (peak, seconds) = measure(&copies)?;
        println!(
            "memory: the corpus copied 40 times, {:.1} MB of YAML: peak RSS {:.0} MB = {:.1}x the input, {seconds:.2} s",
            bytes as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / bytes as f64
        );
    }
    Ok(())
}

/// Copy the YAML files under `from` to `to`; returns their bytes.
fn copy_yaml(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_yaml(&path, &target)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            bytes += std::fs::copy(&path, &target)?;
        }
    }
    Ok(bytes)
}

/// Peak RSS (bytes) and seconds of `infergate lint --format json PATH`.
fn measure(path: &Path) -> std::io::Result<(u64, f64)> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "--format", "json"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut peak = 0;
    loop {
        if let Some(mark) = high_water_mark(child.id()) {
            peak = peak.max(mark);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((peak, started.elapsed().as_secs_f64()))
}
