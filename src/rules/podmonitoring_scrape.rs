use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::duration;
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::selection::{self, PodLabels};
use crate::k8s::serving::listen_port;
use crate::k8s::workload::{pod_templates, PodTemplate};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the monitors that feed an HPA's metrics (GMP `PodMonitoring`
    /// and `ClusterPodMonitoring`, Prometheus Operator `PodMonitor` and
    /// `ServiceMonitor`):
    ///
    /// - the scrape interval: server metrics support 5 s, TPU and system
    ///   metrics no less than 15 s (GKE documentation, "Autoscale LLM
    ///   inference workloads on TPUs"), and an interval longer than
    ///   `scraping.maxInterval` (30 s) feeds the HPA stale data (a
    ///   PodMonitoring without `interval` scrapes every minute);
    /// - when inference workloads are kept beside the monitor (same
    ///   directory and application, see "Pairing objects" in docs/linting.md),
    ///   its selector must match some of their pods, counting the labels
    ///   their controller adds (`leaderworkerset.sigs.k8s.io/name`,
    ///   `pod-template-hash`…);
    /// - a named endpoint port must be a named container port of the pods
    ///   it selects (a warning); a numeric port is scraped as given: a
    ///   warning when no container declares it and the server's port flag
    ///   names another (nothing answers there), else only an `info` when
    ///   no container declares it and no port flag
    ///   or variable of the server names it.
    ///
    /// A monitor scrapes system metrics when its name or selector mentions
    /// one of `scraping.systemExporterHints` (DCGM, the TPU device plugin…).
    /// A missing or misplaced `spec.selector` is `schema-strict`'s: the GMP
    /// CRD requires it.
    ///
    /// ## Why is this bad?
    /// The HPA can only react as fast as the metric is scraped; a monitor
    /// that selects no pod or names a port they do not have exports
    /// nothing, and the HPA sits at its minimum with `<unknown>` targets.
    ///
    /// ## Example
    /// ```yaml
    /// apiVersion: monitoring.googleapis.com/v1
    /// kind: PodMonitoring
    /// metadata:
    ///   name: jetstream-podmonitoring
    /// spec:
    ///   selector:
    ///     matchLabels:
    ///       app: maxengine-server
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
    /// None: the right interval and port depend on the exporter.
    pub struct PodmonitoringScrape {
        id: "podmonitoring-scrape",
        severity: Warning,
        summary: "Monitors feeding an HPA need a fitting scrape interval, a selector that matches the inference pods and an existing port.",
        fixable: false,
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
        let selector = object.value.at("/spec/selector");
        // A GMP monitor without spec.selector is schema-strict's: the CRD
        // requires it.
        let scraping = &cx.policy.scraping;
        let system = is_system_exporter(object, &scraping.system_exporter_hints);
        // The inference pods this monitor selects (PodMonitoring, PodMonitor).
        let selects_pods = object.kind() != "ServiceMonitor";
        let mut matched_templates = Vec::new();
        let cluster_wide = object.kind() == "ClusterPodMonitoring";
        let pairs_with = |workload: &Object| {
            // A ClusterPodMonitoring selects in every namespace of its
            // application; the others in their own namespace.
            if cluster_wide {
                cx.same_scope(object, workload)
            } else {
                cx.paired(object, workload)
            }
        };
        if let (Some(selector), true) = (selector, selects_pods) {
            // Only a workload kept beside the monitor (its directory) says
            // what the monitor should select; the rest of the application
            // may run other servers.
            let inference_paired = cx.workloads_beside(object).any(|(_, workload)| {
                pairs_with(workload) && cx.inference_reason(workload).is_some()
            });
            for (_, workload) in cx.workloads_selectable_by(object, selector) {
                if !pairs_with(workload) {
                    continue;
                }
                let matching: Vec<_> = pod_templates(workload)
                    .into_iter()
                    .filter(|template| {
                        selection::selects(selector, &PodLabels::of(workload, template, cx.policy))
                    })
                    .collect();
                let inference = cx.inference_reason(workload).is_some();
                matched_templates
                    .extend(matching.into_iter().map(|template| (inference, template)));
            }
            if !system && inference_paired && matched_templates.is_empty() {
                sink.report(
                    "/spec/selector",
                    "the selector matches none of the pods of the inference workloads beside it, so their metrics are not scraped",
                )
                .short("the selector matches no inference pod beside it: match the pod template's labels")
                .help("make spec.selector match the labels of the inference pod template");
            }
        }
        let feeds_inference = system || matched_templates.iter().any(|(inference, _)| *inference);
        if !feeds_inference {
            return;
        }
        let Some(endpoints) = object
            .value
            .at(&format!("/spec/{endpoints_key}"))
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
                        .short(format!("scrape interval {text} is below {floor}s for these metrics: use {floor}s or more"))
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
                        .short(format!("scrape interval {text} feeds the HPA stale data: scrape every {floor}s to {}s", scraping.max_interval.0))
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
                // GMP v1 requires an interval (schema-strict reports it);
                // v1alpha1 falls back to one minute.
                None if is_gmp && object.id.api_version != "monitoring.googleapis.com/v1" => {
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
            let templates: Vec<_> = matched_templates
                .iter()
                .map(|(_, template)| template)
                .collect();
            check_port(cx, &endpoint_pointer, port, &templates, sink);
        }
    }
}

/// A scrape port must exist on the selected pods. A named port is looked
/// up by name: Prometheus and GMP find no target without it. A number is
/// scraped as given, so it only needs the server to listen there: a
/// declared containerPort, or a port flag or variable of the server.
fn check_port(
    cx: &Context<'_>,
    endpoint_pointer: &str,
    port: &Value,
    templates: &[&PodTemplate<'_>],
    sink: &mut Sink,
) {
    let number = match port {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse::<i64>().ok(),
        _ => return,
    };
    let containers: Vec<_> = templates
        .iter()
        .flat_map(|template| template.containers())
        .collect();
    let port_pointer = format!("{endpoint_pointer}/port");
    match (number, port.as_str()) {
        (None, Some(name)) => {
            let found = containers.iter().any(|container| {
                container
                    .declared_ports()
                    .iter()
                    .any(|declared| declared.get("name").and_then(Value::as_str) == Some(name))
            });
            if !found {
                sink.report(
                    port_pointer,
                    format!("port `{name}` is not a named container port of the selected inference pods"),
                )
                .short(format!("port `{name}` is not a named port of the pods: name it in the pod template or scrape its number"))
                .help("name the port in the pod template (ports: [{name: …, containerPort: …}]) or scrape its number");
            }
        }
        (Some(number), _) => {
            let scraping = &cx.policy.scraping;
            let listens = containers.iter().any(|container| {
                container.declares_port(number)
                    || listen_port(container, &scraping.port_flags, &scraping.port_env)
                        == Some(number)
            });
            // The server told to listen elsewhere: nothing answers there.
            let elsewhere = containers.iter().find_map(|container| {
                listen_port(container, &scraping.port_flags, &scraping.port_env)
            });
            match (listens, elsewhere) {
                (true, _) => {}
                (false, Some(other)) => {
                    sink.report(
                        port_pointer,
                        format!("port {number} is scraped, but the selected pods' server listens on {other} and declares no {number}: no target, so no metric"),
                    )
                    .short(format!("scrapes port {number}, the server listens on {other}: the HPA gets no metric"))
                    .help(format!("scrape port {other} (the server's port flag), or declare {number} if a sidecar serves metrics there"));
                }
                (false, None) => {
                    sink.report(
                        port_pointer,
                        format!("port {number} is neither declared nor given to the server of the selected pods"),
                    )
                    .severity(Severity::Info)
                    .help("check that the model server serves /metrics on this port; declaring it as a containerPort documents it");
                }
            }
        }
        _ => {}
    }
}

fn is_system_exporter(object: &Object, hints: &[String]) -> bool {
    let mut texts = vec![object.name().unwrap_or_default().to_lowercase()];
    for path in ["/spec/selector/matchLabels", "/metadata/labels"] {
        if let Some(labels) = object.value.at(path).and_then(Value::as_object) {
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
