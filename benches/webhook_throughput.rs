//! Throughput, latency and CPU per review of `infergate serve`, beside a
//! null responder on the same stack (axum on hyper over tokio-rustls,
//! answering "allowed" with the review's uid; tests/common/null_webhook.rs),
//! driven by the same keep-alive
//! load from reviews of testdata/examples.
//!
//! cargo bench --bench webhook_throughput [-- SECONDS]   (default: 5 per step)
//! INFERGATE_BENCH_BINARY=PATH serves with another build of infergate.
//!
//! Steps, for each server: saturation (32 connections sending back to back)
//! and fixed rates of 500, 1,000 and 2,000 reviews/s (open loop: a review
//! is due every 1/rate s and its latency counts from when it was due, so a
//! slow server cannot hide its queue). CPU per review is the server
//! process's user + system time over the reviews it answered. The load
//! generator runs in this process on the same 2 cores, for both servers
//! alike; the ratios are what to read.

#[path = "../tests/common/null_webhook.rs"]
mod null_webhook;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

const CONNECTIONS: usize = 32;
const RATES: &[u64] = &[500, 1000, 2000];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments
        .iter()
        .position(|argument| argument == "--null-responder")
    {
        let address: SocketAddr = arguments[position + 1].parse()?;
        let certificates = Path::new(&arguments[position + 2]);
        return null_webhook::serve(
            address,
            &certificates.join("tls.crt"),
            &certificates.join("tls.key"),
        )
        .map_err(|error| error.to_string().into());
    }
    let seconds: u64 = arguments
        .iter()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(5);
    let step = Duration::from_secs(seconds);
    let scratch = tempfile::tempdir()?;
    let certificates = scratch.path().join("certs");
    let reviews = Arc::new(reviews()?);
    println!(
        "webhook_throughput: {} distinct reviews from testdata/examples, {CONNECTIONS} connections, {seconds} s a step",
        reviews.len()
    );

    let port = free_port()?;
    let metrics_port = free_port()?;
    // INFERGATE_BENCH_BINARY=PATH serves with another build (one with
    // debug info, to profile it under this load).
    let binary = std::env::var_os("INFERGATE_BENCH_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_infergate").into());
    let infergate = Command::new(binary)
        .args(["serve", "--self-signed"])
        .arg(&certificates)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let infergate = Server::started("infergate", infergate, port, &certificates)?;

    let null_port = free_port()?;
    let null = Command::new(std::env::current_exe()?)
        .arg("--null-responder")
        .arg(format!("127.0.0.1:{null_port}"))
        .arg(&certificates)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let null = Server::started("null", null, null_port, &certificates)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for server in [&null, &infergate] {
        let saturated = runtime.block_on(drive(server, &reviews, None, step))?;
        print_step(server, "saturation", &saturated);
        let mut rated = Vec::new();
        for rate in RATES {
            let measured = runtime.block_on(drive(server, &reviews, Some(*rate), step))?;
            print_step(server, &format!("{rate}/s"), &measured);
            rated.push(measured);
        }
        results.push((saturated, rated));
    }
    let (null_saturated, null_rated) = &results[0];
    let (saturated, rated) = &results[1];
    println!(
        "webhook_throughput: infergate / null: throughput {:.2}x, CPU per review {:.2}x",
        saturated.throughput() / null_saturated.throughput(),
        saturated.cpu_per_review() / null_saturated.cpu_per_review()
    );
    for ((rate, measured), null_measured) in RATES.iter().zip(rated).zip(null_rated) {
        println!(
            "webhook_throughput: at {rate}/s p50 {:.2}x, p99 {:.2}x, p99.9 {:.2}x the null responder's",
            measured.percentile(0.50) / null_measured.percentile(0.50),
            measured.percentile(0.99) / null_measured.percentile(0.99),
            measured.percentile(0.999) / null_measured.percentile(0.999)
        );
    }
    drop(infergate);
    drop(null);
    Ok(())
}

fn print_step(server: &Server, step: &str, measured: &Measured) {
    println!(
        "webhook_throughput: {:9} {step:>10}: {:7.0} reviews/s, p50 {:6.2} ms, p99 {:6.2} ms, p99.9 {:6.2} ms, CPU {:5.0} us/review, {} errors",
        server.name,
        measured.throughput(),
        measured.percentile(0.50) * 1e3,
        measured.percentile(0.99) * 1e3,
        measured.percentile(0.999) * 1e3,
        measured.cpu_per_review() * 1e6,
        measured.errors
    );
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server under test: its process, port and the TLS client for it.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    connector: tokio_rustls::TlsConnector,
}

impl Server {
    fn started(
        name: &'static str,
        child: Child,
        port: u16,
        certificates: &Path,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{name} did not listen on {port}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(certificates.join("ca.crt"))? {
            roots.add(certificate?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            name,
            child,
            port,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The process's user + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces) in parens.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|index| fields.get(*index)?.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Measured {
    latencies: Vec<f64>,
    errors: u64,
    elapsed: f64,
    cpu: f64,
}

impl Measured {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed
    }

    fn cpu_per_review(&self) -> f64 {
        self.cpu / self.latencies.len().max(1) as f64
    }

    fn percentile(&self, quantile: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() - 1) as f64 * quantile).round() as usize;
        self.latencies[index]
    }
}

/// Drive `server` for `length`: back to back on every connection
/// (`rate` None) or one review due every 1/rate s.
async fn drive(
    server: &Server,
    reviews: &Arc<Vec<Bytes>>,
    rate: Option<u64>,
    length: Duration,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await?;
        tcp.set_nodelay(true)?;
        let tls = server
            .connector
            .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        senders.push(sender);
    }
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut sender in senders {
        let reviews = Arc::clone(reviews);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let due = match rate {
                    Some(rate) => started + Duration::from_secs_f64(slot as f64 / rate as f64),
                    None => Instant::now(),
                };
                if due.duration_since(started) >= length || started.elapsed() >= length {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let body = reviews[slot as usize % reviews.len()].clone();
                let request = hyper::Request::post("/validate")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(body));
                let Ok(request) = request else {
                    errors += 1;
                    continue;
                };
                if sender.ready().await.is_err() {
                    errors += 1;
                    break;
                }
                match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let body = response.into_body().collect().await;
                        if ok && body.is_ok() {
                            latencies.push(due.elapsed().as_secs_f64());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut part, part_errors) = task.await?;
        latencies.append(&mut part);
        errors += part_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    latencies.sort_by(f64::total_cmp);
    Ok(Measured {
        latencies,
        errors,
        elapsed,
        cpu,
    })
}

/// An AdmissionReview for every object of testdata/examples the webhook
/// reviews, as the apiserver would send it on CREATE.
fn reviews() -> Result<Vec<Bytes>, Box<dyn std::error::Error>> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/examples");
    let mut reviews = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&examples)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let loaded = infergate::input::loader::parse_source(
            infergate::input::source::SourceFile::new(path.display().to_string(), text),
        );
        for (index, object) in loaded.objects.iter().enumerate() {
            let api_version = object.id.api_version.as_str();
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = match object.kind() {
                "Deployment" => "deployments",
                "StatefulSet" => "statefulsets",
                "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
                "PodMonitoring" => "podmonitorings",
                "ScaledObject" => "scaledobjects",
                _ => continue,
            };
            let namespace = object.namespace().unwrap_or("default");
            let review = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": format!("bench-{index}"),
                    "operation": "CREATE",
                    "name": object.name().unwrap_or_default(),
                    "namespace": namespace,
                    "kind": {"group": group, "version": version, "kind": object.kind()},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "userInfo": {"username": "bench"},
                    "object": object.value,
                }
            });
            reviews.push(Bytes::from(serde_json::to_vec(&review)?));
        }
    }
    if reviews.is_empty() {
        return Err("no reviewable object in testdata/examples".into());
    }
    Ok(reviews)
}
