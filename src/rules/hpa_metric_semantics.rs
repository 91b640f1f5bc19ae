use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::adapter::{self, AdapterRule};
use crate::k8s::metrics::{self, HpaMetric};
use crate::policy::Policy;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads what each `External`, `Pods` and `Object` metric of an HPA
    /// (any version) is, from its name, and reports the signals the HPA
    /// cannot use as written:
    ///
    /// - **a cumulative counter used as a value**: a Prometheus name ending
    ///   `_total`, `_count`, `_sum` or `_bucket` (and not a known gauge of
    ///   the metric families), served raw: in the Stackdriver adapter form
    ///   with a GAUGE kind (`prometheus.googleapis.com|x_total|unknown`),
    ///   or by a prometheus-adapter rule in the input whose `metricsQuery`
    ///   applies no `rate`, `irate`, `increase`…, or with no adapter rule in
    ///   the input that renames it. The adapter form's CUMULATIVE kinds
    ///   (`|counter`, `|unknown:counter`, `|summary:counter`) are fine: the
    ///   Custom Metrics Stackdriver Adapter aligns them to a rate, as it
    ///   does every DELTA and CUMULATIVE metric of another Cloud Monitoring
    ///   domain (`workload.googleapis.com|requests_total`, OpenTelemetry
    ///   counters): only a raw path (prometheus-adapter without `rate`,
    ///   KEDA without `rate`, GMP's GAUGE kinds) is reported.
    /// - **an exporter's series as a `Pods` metric**: DCGM (`DCGM_FI_*`),
    ///   the GKE TPU device plugin's `memory_used`/`duty_cycle`, node
    ///   metrics (`kubernetes.io|node|…`). Unless a prometheus-adapter rule
    ///   of the input maps `exported_pod` to the pod resource.
    /// - **a distribution without a reducer**: the adapter form's
    ///   `|histogram` kind with no `reducer` in the metric's selector.
    ///
    /// - **a per-pod average with an AverageValue target**: a series already
    ///   averaged over a pool's pods (the Inference Extension's
    ///   `inference_pool_average_*`, llm-d's `llm_d_epp_average_*`; data
    ///   `metricSemantics.podAverages`) as an External or Object metric, or
    ///   as a KEDA trigger's only series, with an AverageValue target (KEDA's
    ///   default). The HPA divides it by the replica count again, so the
    ///   count it asks for is the average over the target, however many
    ///   pods run: under load it scales in.
    /// A KEDA ScaledObject's Prometheus query is read the same way: a
    /// counter it reads as an instant value (not under `rate(…[2m])` or
    /// another range function) is reported.
    ///
    /// Suffixes, kinds and exporter series are data in rules/metrics.yaml
    /// (`metricSemantics`).
    ///
    /// ## Why is this bad?
    /// A counter only grows: as a target it is above any threshold soon
    /// after start, the HPA scales to `maxReplicas` and never back. An
    /// exporter's series are labelled with the exporter's pod (DCGM runs
    /// as a DaemonSet in its own namespace) and carry the workload's pod
    /// only in `exported_pod`: as a `Pods` metric the HPA finds no values
    /// for the workload's pods and reports `FailedGetPodsMetric`. A
    /// distribution has no single value; the adapter refuses it without a
    /// reducer.
    ///
    /// ## Example
    /// ```yaml
    /// metrics:
    /// - type: Pods
    ///   pods:
    ///     metric:
    ///       name: prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// metrics:
    /// - type: External
    ///   external:
    ///     metric:
    ///       name: prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown
    ///       selector:
    ///         matchLabels:
    ///           metric.labels.exported_namespace: default
    ///           metric.labels.exported_container: inference-server
    /// ```
    ///
    /// ## Fix
    /// For a per-pod average with an AverageValue target: the same number
    /// as a `Value` target (autoscaling/v2), or `metricType: Value` on the
    /// KEDA trigger (safe: the target then means what it was written to
    /// mean). Otherwise none: a rate changes the target's unit, and an
    /// External metric needs a selector only the author knows.
    pub struct HpaMetricSemantics {
        id: "hpa-metric-semantics",
        severity: Error,
        summary: "HPA metrics must be signals the HPA can use: no raw cumulative counters, no exporter series as Pods metrics, no per-pod average divided again.",
        fixable: true,
    }
}

impl Rule for HpaMetricSemantics {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let metrics = metrics::hpa_metrics(object);
        if metrics.is_empty() {
            return;
        }
        let rules = adapter_rules_for(cx, object);
        for metric in &metrics {
            let Some(name) = metric.name else { continue };
            if check_pod_average(cx.policy, metric, name, sink) {
                continue;
            }
            if metric.version == metrics::HpaVersion::Keda {
                check_keda_query(cx.policy, metric, sink);
                continue;
            }
            if !matches!(metric.metric_type, "External" | "Pods" | "Object") {
                continue;
            }
            check_metric(cx.policy, metric, name, &rules, sink);
        }
    }
}

/// The prometheus-adapter rules that may serve this HPA: Helm values or
/// configuration documents and ConfigMaps of the same scope.
fn adapter_rules_for<'a>(cx: &Context<'a>, hpa: &Object) -> Vec<AdapterRule<'a>> {
    let documents: &'a [crate::input::loader::Document] = cx.documents;
    let in_scope = documents.iter().filter(|document| {
        std::sync::Arc::ptr_eq(&document.source, &hpa.source)
            || document.source.scope == hpa.source.scope
    });
    let embedded = cx
        .of_kind(hpa, &["ConfigMap"])
        .filter(|(_, config_map)| cx.same_scope(config_map, hpa))
        .flat_map(|(_, config_map)| cx.embedded(config_map));
    let mut rules = adapter::rules_of_input(&[], embedded);
    for document in in_scope {
        rules.extend(adapter::adapter_rules(&document.value));
    }
    rules
}

fn check_metric(
    policy: &Policy,
    metric: &HpaMetric<'_>,
    name: &str,
    rules: &[AdapterRule<'_>],
    sink: &mut Sink,
) {
    let semantics = &policy.metric_semantics;
    let base = metrics::base_name(name);
    let kind = adapter_kind(name);
    let name_pointer = metric.name_pointer();

    // An exporter's series as a Pods metric.
    if metric.metric_type == "Pods" {
        let exporter = semantics.exporter_of(name);
        if let Some(exporter) = exporter {
            if !rules.iter().any(|rule| maps_exported_pod(rule, base)) {
                sink.report(
                    name_pointer.clone(),
                    format!(
                        "`{base}` comes from {}, not the workload's pods: as a Pods metric it has no values",
                        exporter.exporter
                    ),
                )
                .short(format!("`{base}` is an exporter's series, not the pods'"))
                .help("use an External metric whose selector pins exported_namespace and exported_container (or exported_pod) to the workload, or map exported_pod to the pod resource in the adapter");
                return;
            }
        }
    }

    // A distribution without a reducer.
    if let Some(kind) = kind {
        if semantics
            .distribution_kinds
            .iter()
            .any(|known| known == kind)
            && !selector_has(metric.selector, "reducer")
        {
            sink.report(
                name_pointer,
                format!(
                    "`{base}` is a distribution (`|{kind}`) with no single value; the adapter needs a `reducer` selector"
                ),
            )
            .help("add a selector such as reducer: REDUCE_PERCENTILE_95 (the adapter must run with --enable-distribution-support), or scale on a gauge");
            return;
        }
    }

    // A cumulative counter served as a value.
    let counter_suffix = semantics
        .counter_suffixes
        .iter()
        .find(|suffix| base.ends_with(suffix.as_str()));
    let Some(suffix) = counter_suffix else { return };
    if metrics::classify(name, policy).is_some() {
        // A known gauge of the metric families (Triton's pending request
        // count ends in _count).
        return;
    }
    let message = match kind {
        Some(kind) if semantics.rated_kinds.iter().any(|known| known == kind) => return,
        Some(kind) if semantics.raw_kinds.iter().any(|known| known == kind) => format!(
            "`{base}` is a counter (`{suffix}`) passed on raw as `|{kind}`; it only grows, so the HPA ratchets to maxReplicas"
        ),
        Some(_) => return,
        // A Cloud Monitoring metric type in the Stackdriver adapter's form
        // (`workload.googleapis.com|requests_total`,
        // `custom.googleapis.com|…`): the adapter serves DELTA and
        // CUMULATIVE metrics as a per-second rate over five minutes,
        // whatever the name says (its README, "Metric kinds").
        None if metrics::is_adapter_form(name) => return,
        None => {
            let serving: Vec<&AdapterRule<'_>> = rules
                .iter()
                .filter(|rule| adapter::served_name(rule).as_deref() == Some(base))
                .collect();
            let maybe_renamed = rules
                .iter()
                .any(|rule| adapter::served_name(rule).is_none() && applies_rate(rule, policy));
            if serving.iter().any(|rule| applies_rate(rule, policy))
                || (serving.is_empty() && maybe_renamed)
            {
                return;
            }
            format!(
                "`{base}` is a counter (`{suffix}`) used as a value; it only grows, so the HPA ratchets to maxReplicas"
            )
        }
    };
    let help = match kind {
        Some("unknown") => format!(
            "use `{}` (the adapter serves its rate), and set the target per second",
            name.replacen("|unknown", "|unknown:counter", 1)
        ),
        Some(_) => "scale on a gauge, or on a rate recorded by a Prometheus recording rule".to_string(),
        None => "serve a rate: a prometheus-adapter rule with metricsQuery sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>), or a gauge".to_string(),
    };
    sink.report(name_pointer, message)
        .short(format!("`{base}` is a raw cumulative counter"))
        .help(help);
}

/// A series already averaged over a pool's pods (the endpoint picker's
/// `inference_pool_average_*`) with an AverageValue target: the HPA divides
/// it by the replica count again, so the count it asks for is the average
/// over the target, whatever runs now. Reported (with the move to a Value
/// target) for External and Object metrics, and for a KEDA trigger whose
/// query reads only such series under no per-pod aggregation. Whether it
/// reported.
fn check_pod_average(policy: &Policy, metric: &HpaMetric<'_>, name: &str, sink: &mut Sink) -> bool {
    if !matches!(metric.metric_type, "External" | "Object") {
        return false;
    }
    let semantics = &policy.metric_semantics;
    if semantics.pod_average(name).is_none() {
        return false;
    }
    let Some(target) = &metric.target else {
        return false;
    };
    if target.target_type != Some("AverageValue") {
        return false;
    }
    let base = metrics::base_name(name);
    let fix = if metric.version == metrics::HpaVersion::Keda {
        let Some(trigger) = metric.source else {
            return false;
        };
        let Some(expr) = trigger
            .at("/metadata/query")
            .and_then(Value::as_str)
            .and_then(|query| promql_parser::parser::parse(query).ok())
        else {
            return false;
        };
        // A per-pod aggregation on top (`avg(…)`, `max(…)`) is
        // keda-prometheus-query's to report: one finding per cause.
        let per_pod_on_top = crate::k8s::promql::top_aggregation(&expr).is_some_and(|aggregate| {
            policy
                .keda
                .per_pod_aggregations
                .contains(&aggregate.op.to_string())
        });
        // Only a query of such series alone: a product with the ready pod
        // count is a total again.
        let only_averages = crate::k8s::promql::instant_selectors(&expr)
            .iter()
            .all(|selector| {
                crate::k8s::promql::selector_name(selector)
                    .is_some_and(|name| semantics.pod_average(name).is_some())
            });
        if per_pod_on_top || !only_averages {
            return false;
        }
        let at = format!("{}/metricType", metric.source_pointer);
        let operation = if trigger.get("metricType").is_some() {
            op::replace(&at, json!("Value"))
        } else {
            op::add(&at, json!("Value"))
        };
        operation.map(|operation| Fix::safe("use a Value target", vec![operation]))
    } else if metric.version == metrics::HpaVersion::V2 {
        target.value.as_ref().and_then(|value| {
            let block = &target.pointer;
            Some(Fix::safe(
                "use a Value target",
                vec![
                    op::replace(&format!("{block}/type"), json!("Value"))?,
                    op::move_(&value.pointer, &format!("{block}/value"))?,
                ],
            ))
        })
    } else {
        None
    };
    sink.report(
        target.pointer.clone(),
        format!("`{base}` is already a per-pod average: an AverageValue target divides it by the replicas again"),
    )
    .short(format!("`{base}` is a pool average: use a Value target"))
    .help("use a Value target with the same number: the HPA then asks for current replicas × average / target")
    .maybe_fix(fix);
    true
}

/// A KEDA Prometheus query that reads a counter as an instant value
/// (`sum(x_total)`, not `sum(rate(x_total[2m]))`): KEDA passes the sum of
/// ever-growing counters to the HPA.
fn check_keda_query(policy: &Policy, metric: &HpaMetric<'_>, sink: &mut Sink) {
    let Some(trigger) = metric.source else { return };
    if trigger.get("type").and_then(Value::as_str) != Some("prometheus") {
        return;
    }
    let Some(query) = trigger.at("/metadata/query").and_then(Value::as_str) else {
        return;
    };
    let Ok(expr) = promql_parser::parser::parse(query) else {
        return;
    };
    let semantics = &policy.metric_semantics;
    let counter = crate::k8s::promql::instant_selectors(&expr)
        .iter()
        .filter_map(|selector| crate::k8s::promql::selector_name(selector).map(str::to_string))
        .find(|name| {
            semantics
                .counter_suffixes
                .iter()
                .any(|suffix| name.ends_with(suffix.as_str()))
                && metrics::classify(name, policy).is_none()
        });
    let Some(counter) = counter else { return };
    sink.report(
        format!("{}/metadata/query", metric.source_pointer),
        format!("the query reads counter `{counter}` as a value; it only grows, so the HPA ratchets to the maximum"),
    )
    .short(format!("`{counter}` is a raw counter: use rate(…[2m])"))
    .help(format!("read a rate: sum(rate({counter}[2m]))"));
}

/// The kind of an adapter-form name (`prefix|name|kind`).
fn adapter_kind(name: &str) -> Option<&str> {
    if !metrics::is_adapter_form(name) || metrics::base_name(name) == name {
        return None;
    }
    name.rsplit('|').next()
}

fn selector_has(selector: Option<&Value>, key: &str) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    selector.at(&format!("/matchLabels/{key}")).is_some()
        || selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|expression| expression.get("key").and_then(Value::as_str) == Some(key))
}

/// Whether a rule's metricsQuery applies a rate function.
fn applies_rate(rule: &AdapterRule<'_>, policy: &Policy) -> bool {
    let Some(query) = rule.value.get("metricsQuery").and_then(Value::as_str) else {
        return false;
    };
    let query = query.replace(' ', "");
    policy
        .metric_semantics
        .rate_functions
        .iter()
        .any(|function| {
            query.match_indices(&format!("{function}(")).any(|(at, _)| {
                query[..at]
                    .chars()
                    .last()
                    .is_none_or(|before| !(before.is_ascii_alphanumeric() || before == '_'))
            })
        })
}

/// Whether an adapter rule serves this series with its `exported_pod`
/// label mapped to the pod resource.
fn maps_exported_pod(rule: &AdapterRule<'_>, series: &str) -> bool {
    let names_series = rule
        .value
        .get("seriesQuery")
        .and_then(Value::as_str)
        .is_some_and(|query| query.to_lowercase().contains(&series.to_lowercase()));
    let maps = rule
        .value
        .at("/resources/overrides/exported_pod/resource")
        .and_then(Value::as_str)
        .is_some_and(|resource| resource == "pod" || resource == "pods");
    names_series && maps
}
