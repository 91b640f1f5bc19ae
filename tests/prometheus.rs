//! `simulate --prometheus` and `tune --prometheus` against a real
//! Prometheus server (Debian's `prometheus` package): a TSDB made by
//! `promtool tsdb create-blocks-from openmetrics` from the queue-spike
//! trace, served on 127.0.0.1, read back through query_range. Bad URLs,
//! empty results, gaps and refused credentials give clear errors.
//!
//! Needs prometheus and promtool on PATH; CI installs them:
//! `cargo test --test prometheus -- --ignored`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// 2025-12-01T00:00:00Z: the queue-spike trace's t=0 in the TSDB.
const START: u64 = 1_764_547_200;

/// A bcrypt hash (cost 4) of a password nobody sends: with it Prometheus
/// asks for basic auth and refuses every request of the test.
const LOCKED: &str = "$2a$04$L61biuSXr8.cNpT0I6.lJeVVyCtiQSM6rgccyck4CVyavf2p6qTn6";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The queue-spike trace as OpenMetrics: two pods (namespace serving) each
/// reporting the trace's value, and `gappy`, a series with a 20-minute hole.
fn openmetrics() -> String {
    let text = std::fs::read_to_string(common::root().join("testdata/simulate/queue-spike.csv"))
        .expect("trace");
    let rows: Vec<(f64, String)> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("timestamp") && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                infergate::simulate::trace::parse_rfc3339(fields[0].trim()).expect("time"),
                fields[2].trim().to_string(),
            )
        })
        .collect();
    let first = rows.first().map_or(0.0, |(t, _)| *t);
    let samples: Vec<(u64, String)> = rows
        .into_iter()
        .map(|(t, value)| ((t - first) as u64, value))
        .collect();
    let mut out = String::from("# TYPE vllm:num_requests_waiting gauge\n");
    for pod in ["a", "b"] {
        for (t, value) in &samples {
            out.push_str(&format!(
                "vllm:num_requests_waiting{{namespace=\"serving\",pod=\"{pod}\"}} {value} {}\n",
                START + t
            ));
        }
    }
    out.push_str("# TYPE gappy gauge\n");
    for (t, value) in &samples {
        if !(1200..2400).contains(t) {
            out.push_str(&format!("gappy {value} {}\n", START + t));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn start_prometheus(dir: &Path, web_config: Option<&str>) -> Server {
    let data = dir.join("data");
    if !data.exists() {
        let metrics = dir.join("metrics.om");
        std::fs::write(&metrics, openmetrics()).expect("write");
        let made = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&metrics)
            .arg(&data)
            .output()
            .expect("promtool (apt-get install prometheus)");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global: {}\n").expect("write");
    let port = common::free_port();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(web) = web_config {
        let file = dir.join("web.yml");
        std::fs::write(&file, web).expect("write");
        command.arg(format!("--web.config.file={}", file.display()));
    }
    let child = command
        .spawn()
        .expect("prometheus (apt-get install prometheus)");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Listening; the TSDB is ready a moment later.
            std::thread::sleep(Duration::from_millis(1500));
            return server;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("prometheus did not listen on {port} within 60 s");
}

fn infergate(args: &[&str]) -> Output {
    common::infergate(args, None)
}

fn series(output: &Output) -> Vec<(f64, i64, i64)> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    common::replay_series(&value["series"])
}

fn range() -> (String, String) {
    (
        format!("--start={START}"),
        format!("--end={}", START + 3600),
    )
}

#[test]
#[ignore = "needs prometheus and promtool: cargo test --test prometheus -- --ignored"]
fn prometheus_traces_replay_as_the_same_trace_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_prometheus(dir.path(), None);
    let (start, end) = range();
    let hpa = "testdata/simulate/queue-spike.yaml";
    // Derived queries: avg of the Pods metric in the HPA's namespace, and
    // count of it for the recorded replicas (2 pods).
    let from_prometheus = infergate(&[
        "simulate",
        hpa,
        "--prometheus",
        &server.url,
        &start,
        &end,
        "--startup=120s",
        "--format=json",
    ]);
    let from_file = infergate(&[
        "simulate",
        hpa,
        "--trace=testdata/simulate/queue-spike.csv",
        "--startup=120s",
        "--initial-replicas=2",
        "--recorded-replicas=2",
        "--format=json",
    ]);
    let (ours, theirs) = (series(&from_prometheus), series(&from_file));
    assert_eq!(ours.len(), 241);
    assert_eq!(ours, theirs);

    // Explicit queries, an end past the data, a window split (a small
    // --step makes more than 10,000 points: several requests).
    let explicit = infergate(&[
        "simulate",
        hpa,
        "--prometheus",
        &server.url,
        &start,
        &end,
        "--step=250ms",
        "--max-gap=1m",
        "--query",
        "vllm:num_requests_waiting=avg(vllm:num_requests_waiting)",
        "--query",
        "replicas=count(vllm:num_requests_waiting{namespace=\"serving\"})",
        "--startup=120s",
        "--format=json",
    ]);
    assert_eq!(series(&explicit), theirs);

    // tune reads it the same way.
    let tuned = infergate(&[
        "tune",
        hpa,
        "--prometheus",
        &server.url,
        &start,
        &end,
        "--startup=120s",
        "--budget=300",
        "--format=json",
    ]);
    assert!(
        tuned.status.success(),
        "{}",
        String::from_utf8_lossy(&tuned.stderr)
    );
    let report: Value = serde_json::from_slice(&tuned.stdout).expect("JSON");
    assert!(report["current"]["score"]["replicaHours"]
        .as_f64()
        .is_some());
}

#[test]
#[ignore = "needs prometheus and promtool: cargo test --test prometheus -- --ignored"]
fn bad_urls_empty_results_gaps_and_refusals_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_prometheus(dir.path(), None);
    let (start, end) = range();
    let hpa = "testdata/simulate/queue-spike.yaml";
    let error = |args: &[&str]| -> String {
        let mut full = vec!["simulate", hpa];
        full.extend_from_slice(args);
        let output = infergate(&full);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let url = server.url.as_str();
    assert!(
        error(&["--prometheus", "prometheus:9090", &start, &end]).contains("is not an http(s) URL")
    );
    assert!(error(&["--prometheus", "http://127.0.0.1:9", &start, &end])
        .contains("cannot reach http://127.0.0.1:9"));
    // Each query against the served data, and what the error must say.
    for (queries, expected) in [
        (
            vec!["vllm:num_requests_waiting=avg(nothing_here)"],
            "returns no samples",
        ),
        (
            vec!["vllm:num_requests_waiting=vllm:num_requests_waiting"],
            "returns 2 series; aggregate it",
        ),
        (
            vec![
                "vllm:num_requests_waiting=avg(gappy)",
                "replicas=count(gappy)",
            ],
            "has a gap of",
        ),
        (vec!["vllm:num_requests_waiting=avg("], "400 Bad Request"),
    ] {
        let mut args = vec!["--prometheus", url, &start, &end];
        for query in &queries {
            args.extend(["--query", query]);
        }
        let message = error(&args);
        assert!(message.contains(expected), "{queries:?}: {message}");
    }
    assert!(error(&["--prometheus", url, "--start=yesterday"])
        .contains("--start `yesterday` is not a time"));
    drop(server);

    let locked_dir = tempfile::tempdir().expect("tempdir");
    let locked = start_prometheus(
        locked_dir.path(),
        Some(&format!("basic_auth_users:\n  infergate: {LOCKED}\n")),
    );
    let refused = error(&[
        "--prometheus",
        &locked.url,
        &start,
        &end,
        "--token",
        "wrong",
    ]);
    assert!(refused.contains("401 Unauthorized"), "{refused}");
    assert!(refused.contains("give a bearer token"), "{refused}");
}
