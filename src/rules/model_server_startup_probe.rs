use serde_json::{json, Map, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::model;
use crate::k8s::serving;
use crate::k8s::workload::{self, accelerator_chips, pod_templates, Container};
use crate::rules::{declare_rule, Rule, RuleMeta};

/// The handlers a probe may have; the startup probe the fix adds uses the
/// liveness probe's.
const HANDLERS: &[&str] = &["httpGet", "tcpSocket", "grpc", "exec"];

declare_rule! {
    /// ## What it does
    /// Finds model-server containers with a `livenessProbe` and no
    /// `startupProbe` whose liveness budget (`initialDelaySeconds +
    /// failureThreshold x periodSeconds`, with Kubernetes' defaults 0, 3
    /// and 10) is shorter than the time the model is expected to take to
    /// load: its size (as hf-home-shm-for-large-models finds it) divided by
    /// a load throughput, plus the server's own start-up. The throughputs
    /// are policy data (`serving.startup` in rules/serving.yaml):
    /// deliberately low figures for a download from the Hugging Face Hub
    /// and for a volume or bucket mount, so that the estimate errs long.
    ///
    /// ## Why is this bad?
    /// The kubelet kills a container whose liveness probe fails
    /// `failureThreshold` times in a row. A server still loading its
    /// weights does not answer its health endpoint, so it is killed before
    /// it is ready, restarts, loads again and is killed again: a crash loop
    /// that looks like a server bug (vLLM logs `KeyboardInterrupt:
    /// terminated`; the vLLM documentation's Kubernetes troubleshooting
    /// names a too-low probe threshold as the cause). A `startupProbe`
    /// holds the liveness probe back until the server has started once.
    ///
    /// ## Example
    /// ```yaml
    /// args: ["--model", "meta-llama/Llama-3.1-70B-Instruct"]
    /// livenessProbe:
    ///   httpGet: {path: /health, port: 8000}
    ///   initialDelaySeconds: 60
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// startupProbe:
    ///   httpGet: {path: /health, port: 8000}
    ///   periodSeconds: 10
    ///   failureThreshold: 150
    /// livenessProbe:
    ///   httpGet: {path: /health, port: 8000}
    /// ```
    ///
    /// ## Fix
    /// Adds a `startupProbe` with the liveness probe's handler whose
    /// `failureThreshold x periodSeconds` covers the expected load time
    /// (safe: it only delays the liveness probe while the server starts).
    pub struct ModelServerStartupProbe {
        id: "model-server-startup-probe",
        severity: Warning,
        summary: "A model server's liveness probe must not kill it while it loads the model: add a startupProbe.",
        fixable: true,
    }
}

impl Rule for ModelServerStartupProbe {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A kustomize patch shows only part of the pod.
        if cx.inference_reason(object).is_none() || workload::may_be_completed(object) {
            return;
        }
        let startup = &cx.policy.serving.startup;
        for template in pod_templates(object) {
            for container in template.main_containers() {
                let serves = serving::server_of(&container, &cx.policy.serving).is_some()
                    || accelerator_chips(&container, &cx.policy.inference.accelerator_resources)
                        > 0.0;
                if !serves || container.value.get("startupProbe").is_some() {
                    continue;
                }
                let Some(liveness) = container.value.get("livenessProbe") else {
                    continue;
                };
                let Some(load) = serving::load_estimate(object, &template, &container, cx.policy)
                else {
                    continue;
                };
                let expected = load.seconds;
                let field = |key: &str, default: f64| {
                    liveness.get(key).and_then(Value::as_f64).unwrap_or(default)
                };
                let budget = field("initialDelaySeconds", 0.0)
                    + field("failureThreshold", 3.0) * field("periodSeconds", 10.0);
                if budget >= expected {
                    continue;
                }
                let name = container.name().unwrap_or("?");
                let period = startup.probe_period_seconds.max(1);
                let threshold = (expected / period as f64).ceil() as u64;
                sink.report(
                    format!("{}/livenessProbe", container.pointer),
                    format!(
                        "liveness kills `{name}` after {budget:.0} s; model `{}` ({}, {}) needs ~{expected:.0} s to load: it crash-loops",
                        load.model_id,
                        model::gib(load.bytes),
                        load.how(),
                    ),
                )
                .short(format!(
                    "liveness kills `{name}` after {budget:.0} s; loading takes ~{expected:.0} s"
                ))
                .help(format!(
                    "add a startupProbe with failureThreshold {threshold} x periodSeconds {period}; estimate from {} at {:.0} MB/s plus {:.0} s start-up (serving.startup)",
                    load.size_source,
                    load.throughput / 1e6,
                    startup.startup_overhead.0
                ))
                .maybe_fix(startup_fix(&container, liveness, threshold, period));
            }
        }
    }
}

fn startup_fix(
    container: &Container<'_>,
    liveness: &Value,
    failure_threshold: u64,
    period: u64,
) -> Option<Fix> {
    let mut probe = Map::new();
    for handler in HANDLERS {
        if let Some(value) = liveness.get(*handler) {
            probe.insert((*handler).to_string(), value.clone());
        }
    }
    if probe.is_empty() {
        return None;
    }
    probe.insert("periodSeconds".into(), json!(period));
    probe.insert("failureThreshold".into(), json!(failure_threshold));
    let operation = op::add(
        &format!("{}/startupProbe", container.pointer),
        Value::Object(probe),
    )?;
    Some(Fix::safe(
        format!(
            "add a startupProbe allowing {} s to start",
            failure_threshold * period
        ),
        vec![operation],
    ))
}
