//! Shared by the benchmarks that run the binary on generated input: the
//! Deployment + HPA + PodMonitoring bundle, and the child's peak RSS.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One bundle of a vLLM Deployment, its HPA and its PodMonitoring in one of
/// 37 namespaces. One bundle in five carries a RULES.md mistake, in turn:
/// an HPA target that is no quantity, an uppercase External metric without
/// a namespace filter, and a Pods metric on the exporter's name.
pub fn bundle(index: usize) -> String {
    let namespace = format!("ns{}", index % 37);
    let mistake = if index.is_multiple_of(5) {
        (index / 5) % 3
    } else {
        3
    };
    let target = if mistake == 0 { "five" } else { "5" };
    let metric = match mistake {
        1 => "    - type: External
      external:
        metric: {name: \"prometheus.googleapis.com|DCGM_FI_DEV_GPU_UTIL|gauge\"}
        target: {type: AverageValue, averageValue: \"80\"}
"
        .to_string(),
        2 => "    - type: Pods
      pods:
        metric: {name: DCGM_FI_DEV_GPU_UTIL}
        target: {type: AverageValue, averageValue: \"80\"}
"
        .to_string(),
        _ => String::new(),
    };
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
{metric}---
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

/// The sizes given as numeric arguments (`cargo bench --bench B -- 10 20`),
/// or `default` when there are none.
pub fn sizes_from_arguments(default: Vec<usize>) -> Vec<usize> {
    let given: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    if given.is_empty() {
        default
    } else {
        given
    }
}

/// The child's VmHWM in bytes, if it still runs.
pub fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Peak RSS (bytes) and seconds of `infergate lint --format json PATH`.
pub fn measure(path: &Path) -> std::io::Result<(u64, f64)> {
    let path = path.display().to_string();
    measure_run(&["lint", "--format", "json", &path])
}

/// Peak RSS (bytes) and seconds of the binary run with `args`, its output
/// discarded.
pub fn measure_run(args: &[&str]) -> std::io::Result<(u64, f64)> {
    measure_with_cpu(args).map(|run| (run.peak, run.seconds))
}

/// What one run of the binary cost.
pub struct Run {
    /// Peak RSS in bytes.
    pub peak: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// CPU seconds (user and system, every thread).
    pub cpu: f64,
    /// Of which in user space: what the kernel spends on the run's files
    /// (opening, syncing, renaming them) is the rest.
    pub user: f64,
}

/// CPU seconds (user + system) of this process, every thread, and of its
/// children that have been waited for, from /proc/self/stat (clock ticks,
/// 10 ms here).
pub fn cpu_seconds() -> (f64, f64) {
    let field = stat_fields();
    (
        (field(14) + field(15)) / TICKS,
        (field(16) + field(17)) / TICKS,
    )
}

/// User-space CPU seconds of this process's children that have been
/// waited for.
pub fn children_user_seconds() -> f64 {
    stat_fields()(16) / TICKS
}

/// Clock ticks a second in /proc/self/stat (10 ms here).
const TICKS: f64 = 100.0;

/// The numeric fields of /proc/self/stat, by their 1-based number.
fn stat_fields() -> impl Fn(usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is 3rd,
    // utime 14th, stime 15th, cutime 16th, cstime 17th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    move |number: usize| fields.get(number - 3).copied().unwrap_or(0.0)
}

/// [`measure_run`] with the child's CPU time.
pub fn measure_with_cpu(args: &[&str]) -> std::io::Result<Run> {
    let (_, children_before) = cpu_seconds();
    let user_before = children_user_seconds();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(args)
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
    let seconds = started.elapsed().as_secs_f64();
    let (_, children_after) = cpu_seconds();
    Ok(Run {
        peak,
        seconds,
        cpu: children_after - children_before,
        user: children_user_seconds() - user_before,
    })
}
