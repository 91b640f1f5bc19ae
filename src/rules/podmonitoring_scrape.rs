use serde_json::{Map, Value};

use crate::duration;
use crate::engine::{Context, Sink};
use crate::finding::{op, Fix, Severity};
use crate::object::Object;
use crate::pointer;
use crate::rules::{declare_rule, Rule, RuleMeta};
use crate::workload::{is_workload_kind, pod_templates};

declare_rule! {
    /// ## What it does
    /// Checks the monitors that feed an HPA's metrics (GMP `PodMonitoring`
    /// and `ClusterPodMonitoring`, Prometheus Operator `PodMonitor` and
    /// `ServiceMonitor`):
    ///
    /// - the scrape interval: server metrics support 5 s, TPU and system
    ///   metrics no less than 15 s (seed 003), and an interval longer than
    ///   `scraping.maxInterval` (30 s) feeds the HPA stale data (a
    ///   PodMonitoring without `interval` scrapes every minute);
    /// - a PodMonitoring needs `spec.selector` (an error: the CRD requires
    ///   it), and when inference workloads
    ///   are kept in the same directory its selector must match some of
    ///   their pods;
    /// - the endpoint port, by name or number, must exist on the pods it
    ///   selects.
    ///
    /// A monitor scrapes system metrics when its name or selector mentions
    /// one of `scraping.systemExporterHints` (DCGM, the TPU device plugin…).
    ///
    /// ## Why is this bad?
    /// The HPA can only react as fast as the metric is scraped; a monitor
    /// that selects no pod or names a port they do not have exports
    /// nothing, and the HPA sits at its minimum with `<unknown>` targets.
    /// Seed 003's first PodMonitoring puts `selector` outside `spec`: the
    /// GMP CRD requires `spec.selector`, so the apiserver rejects it.
    ///
    /// ## Example
    /// ```yaml
    /// apiVersion: monitoring.googleapis.com/v1
    /// kind: PodMonitoring
    /// metadata:
    ///   name: jetstream-podmonitoring
    /// selector:
    ///   matchLabels:
    ///     app: maxengine-server
    /// spec:
    ///   endpoints:
    ///   - interval: 2s
    ///     port: metrics
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   selector:
    ///     matchLabels:
    ///       app: maxengine-server
    ///   endpoints:
    ///   - interval: 5s
    ///     port: 9100
    /// ```
    ///
    /// ## Fix
    /// A `selector` written beside `spec` is moved under it (safe). Nothing
    /// else: the right interval and port depend on the exporter.
    pub struct PodmonitoringScrape {
        id: "podmonitoring-scrape",
        severity: Warning,
        summary: "Monitors feeding an HPA need a fitting scrape interval, a selector that matches the inference pods and an existing port.",
        fixable: true,
    }
}

const MONITOR_KINDS: &[&str] = &[
    "PodMonitoring",
    "ClusterPodMonitoring",
    "PodMonitor",
    "ServiceMonitor",
];

impl Rule for PodmonitoringScrape {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !MONITOR_KINDS.contains(&object.kind()) {
            return;
        }
        let is_gmp = object.group() == "monitoring.googleapis.com";
        let endpoints_key = if object.kind() == "PodMonitor" {
            "podMetricsEndpoints"
        } else {
            "endpoints"
        };
        let selector = object.value.pointer("/spec/selector");
        // The GMP CRDs require spec.selector (and spec.endpoints): without
        // it the apiserver rejects the object, so this is an error.
        if is_gmp && selector.is_none() {
            let kind = object.kind();
            if object.value.get("selector").is_some() {
                let into_spec = object
                    .value
                    .get("spec")
                    .is_some_and(Value::is_object)
                    .then(|| op::move_("/selector", "/spec/selector"))
                    .flatten()
                    .map(|operation| Fix::safe("move `selector` under spec", vec![operation]));
                sink.report(
                    "/selector",
                    format!("`selector` is not allowed at the top level of a {kind}; did you mean `spec.selector`?"),
                )
                .on_key()
                .severity(Severity::Error)
                .help("indent it under spec: the apiserver requires spec.selector and drops or rejects a top-level one")
                .maybe_fix(into_spec);
            } else {
                sink.report(
                    "/spec",
                    format!("{kind} has no spec.selector; the apiserver requires one"),
                )
                .severity(Severity::Error)
                .help("add spec.selector with the labels of the pods to scrape");
            }
        }
        let scraping = &cx.policy.scraping;
        let system = is_system_exporter(object, &scraping.system_exporter_hints);
        // The inference pods this monitor selects (PodMonitoring, PodMonitor).
        let selects_pods = object.kind() != "ServiceMonitor";
        let mut matched_templates = Vec::new();
        let mut inference_nearby = false;
        let monitor_directory = directory_of(object);
        if let (Some(selector), true) = (selector, selects_pods) {
            for (_, workload) in cx
                .objects
                .iter()
                .enumerate()
                .filter(|(_, other)| is_workload_kind(other.kind()))
            {
                if object.kind() != "ClusterPodMonitoring" && !cx.same_namespace(object, workload) {
                    continue;
                }
                let matching: Vec<_> = pod_templates(workload)
                    .into_iter()
                    .filter(|template| {
                        template
                            .labels()
                            .is_some_and(|labels| selector_matches(selector, labels))
                    })
                    .collect();
                // Only workloads kept beside the monitor say what it should
                // select; the input may hold unrelated applications.
                let nearby = directory_of(workload) == monitor_directory;
                if matching.is_empty() && !nearby {
                    continue; // the (costly) inference test is not needed
                }
                let inference = cx.inference_reason(workload).is_some();
                inference_nearby |= inference && nearby;
                matched_templates
                    .extend(matching.into_iter().map(|template| (inference, template)));
            }
            if !system && inference_nearby && matched_templates.is_empty() {
                sink.report(
                    "/spec/selector",
                    "the selector matches none of the pods of the inference workloads beside it, so their metrics are not scraped",
                )
                .help("make spec.selector match the labels of the inference pod template");
            }
        }
        let feeds_inference = system || matched_templates.iter().any(|(inference, _)| *inference);
        if !feeds_inference {
            return;
        }
        let Some(endpoints) = object
            .value
            .pointer(&format!("/spec/{endpoints_key}"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let (floor, floor_name) = if system {
            (
                scraping.system_min_interval.0,
                "TPU and system metrics are produced no faster than every",
            )
        } else {
            (
                scraping.server_min_interval.0,
                "server metrics support at most one scrape every",
            )
        };
        for (index, endpoint) in endpoints.iter().enumerate() {
            let endpoint_pointer = pointer::join(&format!("/spec/{endpoints_key}"), index);
            match endpoint.get("interval").and_then(Value::as_str) {
                Some(text) => match duration::parse(text) {
                    Some(seconds) if seconds < floor => {
                        sink.report(
                            format!("{endpoint_pointer}/interval"),
                            format!("scrape interval {text} is shorter than {floor}s; {floor_name} {floor}s"),
                        )
                        .help(format!("use an interval of {floor}s or more"));
                    }
                    Some(seconds) if seconds > scraping.max_interval.0 => {
                        sink.report(
                            format!("{endpoint_pointer}/interval"),
                            format!(
                                "scrape interval {text} is longer than {}s; the HPA scales on stale data",
                                scraping.max_interval.0
                            ),
                        )
                        .help(format!("scrape every {floor}s to {}s for autoscaling", scraping.max_interval.0));
                    }
                    Some(_) => {}
                    None => {
                        sink.report(
                            format!("{endpoint_pointer}/interval"),
                            format!("`{text}` is not a duration"),
                        )
                        .help("write the interval as 5s, 15s, 1m…");
                    }
                },
                None if is_gmp => {
                    sink.report(
                        endpoint_pointer.clone(),
                        format!(
                            "endpoint has no interval and is scraped every minute, longer than {}s; the HPA scales on stale data",
                            scraping.max_interval.0
                        ),
                    )
                    .help(format!("set interval to {floor}s or more, {}s at most", scraping.max_interval.0));
                }
                None => {}
            }
            if system || matched_templates.is_empty() {
                continue;
            }
            let Some(port) = endpoint.get("port").or_else(|| endpoint.get("targetPort")) else {
                continue;
            };
            let exposed = matched_templates.iter().any(|(_, template)| {
                template.containers().iter().any(|container| {
                    container
                        .value
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|declared| match port {
                            Value::String(name) => {
                                declared.get("name").and_then(Value::as_str) == Some(name.as_str())
                                    || name.parse::<i64>().ok()
                                        == declared.get("containerPort").and_then(Value::as_i64)
                            }
                            Value::Number(number) => {
                                declared.get("containerPort").and_then(Value::as_i64)
                                    == number.as_i64()
                            }
                            _ => false,
                        })
                })
            });
            if !exposed {
                let shown = port
                    .as_str()
                    .map_or_else(|| port.to_string(), str::to_string);
                sink.report(
                    format!("{endpoint_pointer}/port"),
                    format!(
                        "port `{shown}` is not a container port of the selected inference pods"
                    ),
                )
                .help("use the name or number of the port the model server serves /metrics on");
            }
        }
    }
}

/// The directory part of a file name, without allocating.
fn directory_of(object: &Object) -> &str {
    object
        .source
        .name
        .rsplit_once(std::path::MAIN_SEPARATOR)
        .map_or("", |(directory, _)| directory)
}

fn is_system_exporter(object: &Object, hints: &[String]) -> bool {
    let mut texts = vec![object.name().unwrap_or_default().to_lowercase()];
    for path in ["/spec/selector/matchLabels", "/metadata/labels"] {
        if let Some(labels) = object.value.pointer(path).and_then(Value::as_object) {
            texts.extend(
                labels
                    .values()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase),
            );
        }
    }
    hints
        .iter()
        .any(|hint| texts.iter().any(|text| text.contains(&hint.to_lowercase())))
}

/// Whether a label selector (matchLabels, matchExpressions) matches labels.
pub fn selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let match_labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(key, value)| label(key) == value.as_str());
    let expressions_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|expression| {
            let key = expression
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let values: Vec<&str> = expression
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match expression.get("operator").and_then(Value::as_str) {
                Some("In") => label(key).is_some_and(|value| values.contains(&value)),
                Some("NotIn") => label(key).is_none_or(|value| !values.contains(&value)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    let empty = selector.get("matchLabels").is_none() && selector.get("matchExpressions").is_none();
    !empty && match_labels_ok && expressions_ok
}
