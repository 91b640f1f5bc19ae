//! `infergate audit` of a large cluster, served by the stand-in apiserver
//! of the tests (tests/common/apiserver.rs) in this process.
//!
//! cargo bench --bench audit [-- OBJECTS...]   (default: 10000)
//!
//! The cluster holds OBJECTS/3 bundles of benches/support (a vLLM
//! Deployment, its HPA and its PodMonitoring, one in five with a RULES.md
//! mistake, 37 namespaces) and 16 TPU Nodes. For each size it prints the
//! time of listing (discovery and every page of 500, through kube's client
//! and the stand-in's JSON, over loopback HTTP) and of the engine (facts
//! from the Nodes, every object checked at once), the best of three, then
//! the binary's wall time and peak RSS for the whole `audit -A --format
//! json` as a user runs it.

use std::time::Instant;

use serde_json::{json, Value};

#[path = "../tests/common/apiserver.rs"]
mod apiserver;
#[path = "support/mod.rs"]
mod support;

fn cluster(objects: usize) -> Vec<Value> {
    let mut values = Vec::new();
    for index in 0..objects.div_ceil(3) {
        let source = infergate::input::source::SourceFile::new(
            format!("bundle-{index}"),
            support::bundle(index),
        );
        values.extend(
            infergate::input::loader::parse_source(source)
                .objects
                .into_iter()
                .map(|object| object.value),
        );
    }
    for node in 0..16 {
        values.push(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("tpu-{node}"), "labels": {
                "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                "cloud.google.com/gke-tpu-topology": "2x4"}},
            "status": {"allocatable": {"google.com/tpu": "8"}}}));
    }
    values
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes = support::sizes_from_arguments(vec![10000]);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = infergate::engine::Engine::new(infergate::policy::Policy::built_in()?);
    println!(
        "{:>8} {:>10} {:>8} {:>10} {:>10} {:>12} {:>10} {:>10}",
        "objects", "listing s", "pages", "engine s", "findings", "objects/s", "binary s", "peak MB"
    );
    for size in sizes {
        let objects = cluster(size);
        let held = objects.len();
        let store = apiserver::store(objects, &[]);
        let addr = runtime.block_on(apiserver::serve(std::sync::Arc::clone(&store)));
        let kubeconfig = apiserver::kubeconfig_for(addr);
        let (mut listing_best, mut engine_best) = (f64::MAX, f64::MAX);
        let (mut pages, mut findings) = (0, 0);
        for _ in 0..3 {
            let listing = runtime.block_on(async {
                let client = infergate::audit::client(Some(kubeconfig.path()), None).await?;
                infergate::audit::list(&client, &infergate::audit::Namespaces::All, &mut |_| {})
                    .await
            })?;
            listing_best = listing_best.min(listing.elapsed.as_secs_f64());
            pages = listing.pages;
            let started = Instant::now();
            let audited = infergate::audit::check(&engine, listing);
            engine_best = engine_best.min(started.elapsed().as_secs_f64());
            findings = audited.outcome.findings.len();
        }
        let path = kubeconfig.path().display().to_string();
        let kubeconfig_arg = format!("--kubeconfig={path}");
        // The stand-in answers from this process's runtime while the
        // binary runs.
        let (peak, binary) = std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                support::measure_run(&["audit", &kubeconfig_arg, "-A", "--format", "json"])
            });
            runtime.block_on(async {
                while !handle.is_finished() {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            });
            handle
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the run panicked")))
        })?;
        println!(
            "{:>8} {:>10.3} {:>8} {:>10.3} {:>10} {:>12.0} {:>10.3} {:>10.1}",
            held,
            listing_best,
            pages,
            engine_best,
            findings,
            held as f64 / (listing_best + engine_best),
            binary,
            peak as f64 / 1e6
        );
    }
    Ok(())
}
