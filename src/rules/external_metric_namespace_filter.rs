use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::metrics::{classify, hpa_metrics, is_adapter_form};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks that every `External` metric of an HPA served by the
    /// Stackdriver adapter (a name such as `kubernetes.io|…` or
    /// `prometheus.googleapis.com|…|gauge`) has a selector that pins the
    /// namespace to the HPA's own namespace.
    ///
    /// ## Why is this bad?
    /// External metrics are cluster-global. Without a namespace constraint
    /// the adapter averages the series of every namespace that emits that
    /// metric, so the HPA scales on other teams' load. GKE's guides
    /// "Configure autoscaling for LLM workloads on GPUs" and "... on TPUs"
    /// both filter their External metrics by namespace for this reason.
    /// A selector that pins another namespace scales on that namespace.
    ///
    /// The label that carries the namespace depends on where the metric
    /// comes from; the mapping is policy data (`externalMetrics.namespaceLabels`):
    /// GKE system metrics use `resource.labels.namespace_name`, exporters
    /// that label the workload they observe (DCGM, TPU memory) use
    /// `metric.labels.exported_namespace`, metrics scraped from the serving
    /// pod use `resource.labels.namespace`.
    ///
    /// ## Example
    /// ```yaml
    /// - type: External
    ///   external:
    ///     metric:
    ///       name: kubernetes.io|container|accelerator|duty_cycle
    ///       selector:
    ///         matchLabels:
    ///           resource.labels.container_name: inference-server
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///       selector:
    ///         matchLabels:
    ///           resource.labels.container_name: inference-server
    ///           resource.labels.namespace_name: default
    /// ```
    ///
    /// Metrics of other sources (a Pub/Sub subscription backlog, say) carry
    /// no namespace and are not checked.
    ///
    /// ## Fix
    /// Adds the `matchLabels` entry (creating `selector` and `matchLabels`
    /// when missing) with the HPA's namespace, or replaces a pinned value
    /// that differs from it. In the webhook the namespace of the request is
    /// used. When the namespace is unknown (no `metadata.namespace` in a
    /// file), the fix pins `default` and is marked unsafe.
    pub struct ExternalMetricNamespaceFilter {
        id: "external-metric-namespace-filter",
        severity: Error,
        summary: "External metrics must be filtered to the HPA's namespace, or they average every namespace.",
        fixable: true,
    }
}

impl Rule for ExternalMetricNamespaceFilter {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let labels = &cx.policy.external_metrics.namespace_labels;
        let namespace = cx.namespace_of(object);
        for metric in hpa_metrics(object) {
            // KEDA names and selects its own External metrics.
            if metric.version == crate::k8s::metrics::HpaVersion::Keda {
                continue;
            }
            if metric.metric_type != "External" {
                continue;
            }
            let Some(name) = metric.name.filter(|name| is_adapter_form(name)) else {
                continue;
            };
            // Only sources known to carry a namespace label are checked: a
            // Pub/Sub backlog (`pubsub.googleapis.com|subscription|…`) has no
            // namespace and is scoped by its subscription instead.
            let Some(mapping) = labels.iter().find(|mapping| mapping.pattern.is_match(name)) else {
                continue;
            };
            let label = mapping.label.as_str();
            // Whether the series are known to carry the workload's
            // namespace in that label: a source the policy names for its
            // own series (GKE's, an exporter's), or a server metric scraped
            // from the workload's pods. Another Prometheus series may come
            // from an exporter in its own namespace, where the label names
            // the exporter's: a filter on it would match nothing.
            let label_known = !mapping.scraped_from_pod || classify(name, cx.policy).is_some();
            let selector_pointer = metric.selector_pointer.clone();
            let selector = metric.selector;
            let known_keys: Vec<&str> = labels
                .iter()
                .map(|mapping| mapping.label.as_str())
                .collect();
            match pinned_namespace(selector, &selector_pointer, &known_keys) {
                Some((pinned, value_pointer)) => {
                    let Some(expected) = namespace else { continue };
                    if pinned == expected {
                        continue;
                    }
                    sink.report(
                        value_pointer.clone(),
                        format!("external metric `{name}` is pinned to namespace `{pinned}`, but the HPA is in `{expected}`"),
                    )
                    .help(format!("set the selector to the HPA's namespace `{expected}`, or the HPA scales on another namespace's load"))
                    .maybe_fix(op::replace(&value_pointer, json!(expected)).map(|operation| {
                        Fix::safe(format!("pin namespace `{expected}`"), vec![operation])
                    }));
                }
                None => {
                    let report = sink.report(
                        metric.name_pointer(),
                        format!("external metric `{name}` has no namespace filter; it averages the series of every namespace"),
                    );
                    let caveat = if label_known {
                        ""
                    } else {
                        ", once you have checked that these series carry the workload's namespace there (an exporter's carry its own, and the workload's as exported_namespace)"
                    };
                    report.help(format!(
                        "add `{label}: {}` to the metric's selector.matchLabels{caveat}",
                        namespace.unwrap_or("<the HPA's namespace>")
                    ));
                    report.maybe_fix(pin_fix(
                        selector,
                        &selector_pointer,
                        label,
                        namespace,
                        label_known,
                    ));
                }
            }
        }
    }
}

/// The namespace a selector pins, with the pointer of the pinned value.
fn pinned_namespace<'a>(
    selector: Option<&'a Value>,
    selector_pointer: &str,
    keys: &[&str],
) -> Option<(&'a str, String)> {
    let selector = selector?;
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in match_labels {
            if keys.contains(&key.as_str()) {
                if let Some(value) = value.as_str() {
                    let value_pointer =
                        pointer::join(&format!("{selector_pointer}/matchLabels"), key);
                    return Some((value, value_pointer));
                }
            }
        }
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array)?;
    expressions
        .iter()
        .enumerate()
        .find_map(|(index, expression)| {
            let key = expression.get("key").and_then(Value::as_str)?;
            let operator = expression.get("operator").and_then(Value::as_str)?;
            let values = expression.get("values").and_then(Value::as_array)?;
            match (keys.contains(&key), operator, values.as_slice()) {
                (true, "In", [single]) => Some((
                    single.as_str()?,
                    format!("{selector_pointer}/matchExpressions/{index}/values/0"),
                )),
                _ => None,
            }
        })
}

fn pin_fix(
    selector: Option<&Value>,
    selector_pointer: &str,
    label: &str,
    namespace: Option<&str>,
    label_known: bool,
) -> Option<Fix> {
    let value = namespace.unwrap_or("default");
    let operation = match selector {
        None | Some(Value::Null) => {
            op::add(selector_pointer, json!({"matchLabels": {label: value}}))
        }
        Some(selector) if selector.get("matchLabels").is_some_and(Value::is_object) => op::add(
            &pointer::join(&format!("{selector_pointer}/matchLabels"), label),
            json!(value),
        ),
        Some(_) => op::add(
            &format!("{selector_pointer}/matchLabels"),
            json!({label: value}),
        ),
    }?;
    let description = format!("add `{label}: {value}` to the selector");
    Some(match (namespace, label_known) {
        (Some(_), true) => Fix::safe(description, vec![operation]),
        (Some(_), false) => Fix::unsafe_(description, vec![operation]),
        (None, _) => Fix::unsafe_(
            format!("{description} (the file gives no namespace; `default` assumed)"),
            vec![operation],
        ),
    })
}
