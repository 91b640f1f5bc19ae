use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::quantity;
use crate::k8s::autoscaler;
use crate::k8s::metrics::{
    self, classify, hpa_metrics, value_field, HpaMetric, HpaVersion, TargetValue,
};
use crate::k8s::placeholder::{self, Field};
use crate::policy::MetricScale;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the targets and replica bounds of a HorizontalPodAutoscaler:
    ///
    /// - a `Pods` metric supports only the target type `AverageValue`;
    /// - `AverageValue` needs `averageValue`, `Value` needs `value`,
    ///   `Utilization` needs `averageUtilization` (and is only for
    ///   `Resource` metrics); quantities must parse as Kubernetes quantities;
    /// - metrics that are fractions (KV-cache usage, JetStream slots used)
    ///   need a target in (0, 1], percentages (duty cycle) in (0, 100]: the
    ///   scale of each metric is policy data (`metricFamilies`);
    /// - `1 <= minReplicas <= maxReplicas`.
    ///
    /// The autoscaler a KServe InferenceService's predictor configures is
    /// read the same way: each `autoScaling.metrics` entry (Resource,
    /// External, and PodMetric, which KEDA serves as an External metric;
    /// its query names the metric) and `scaleMetric: cpu|memory` with
    /// `scaleTarget`. Knative's `concurrency` and `rps` targets are not
    /// HPA targets and are not read.
    ///
    /// ## Why is this bad?
    /// A target the metric can never reach (`80` for a KV-cache usage that
    /// lives between 0 and 1) keeps the HPA at its minimum forever. GKE's
    /// "Best practices for autoscaling large language model (LLM) inference
    /// workloads with TPUs" advises a slots-used target "slightly below 1";
    /// NVIDIA's "Horizontal Autoscaling of NVIDIA NIM Microservices on
    /// Kubernetes" (developer.nvidia.com/blog) uses `100m` for
    /// `gpu_cache_usage_perc`. A target value in the wrong field is
    /// ignored or rejected, and inverted replica bounds are rejected.
    ///
    /// ## Example
    /// ```yaml
    /// - type: Pods
    ///   pods:
    ///     metric:
    ///       name: gpu_cache_usage_perc
    ///     target:
    ///       type: AverageValue
    ///     averageValue: 80
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// - type: Pods
    ///   pods:
    ///     metric:
    ///       name: gpu_cache_usage_perc
    ///     target:
    ///       type: AverageValue
    ///       averageValue: 800m
    /// ```
    ///
    /// ## Fix
    /// When the value sits beside `target` instead of inside it (the
    /// multi-metric HPA of GKE's TPU autoscaling guide), the fix moves it into `target`. This is safe: the
    /// apiserver would reject the misplaced field anyway.
    pub struct HpaTargetSanity {
        id: "hpa-target-sanity",
        severity: Error,
        summary: "HPA targets must have the right type and field, a valid quantity within the metric's range, and sane replica bounds.",
        fixable: true,
    }
}

impl Rule for HpaTargetSanity {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // The autoscaler a KServe predictor configures: the same targets
        // in the InferenceService's own fields.
        for metric in metrics::kserve_metrics(object) {
            check_target(cx, &metric, sink);
        }
        if !autoscaler::is_autoscaler(object) {
            return;
        }
        for metric in hpa_metrics(object) {
            if metric.version == HpaVersion::Keda {
                check_trigger(cx, &metric, sink);
            } else {
                check_target(cx, &metric, sink);
            }
        }
        if autoscaler::is_scaled_object(object) {
            check_replica_counts(cx, object, sink);
        } else {
            check_replicas(cx, object, sink);
        }
    }
}

fn is_placeholder(cx: &Context<'_>, value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        placeholder::find(text, Field::Numeric, &cx.policy.placeholders).is_some()
    })
}

fn check_target(cx: &Context<'_>, metric: &HpaMetric<'_>, sink: &mut Sink) {
    let Some(source) = metric.source else { return };
    let target_pointer = metric.target_pointer();
    let Some(target) = &metric.target else {
        sink.report(
            metric.source_pointer.clone(),
            format!("{} metric has no target", metric.metric_type),
        )
        .help("add a target: {type: AverageValue, averageValue: …}");
        return;
    };
    let Some(target_type) = target.target_type else {
        sink.report(target_pointer.clone(), "target has no type")
            .help("set target.type to AverageValue, Value or Utilization");
        return;
    };
    // Types are written only in v2; elsewhere the field name implies them.
    let type_pointer = if target.block.is_some() {
        format!("{target_pointer}/type")
    } else {
        target.pointer.clone()
    };
    if metric.metric_type == "Pods" && target_type != "AverageValue" {
        sink.report(
            type_pointer.clone(),
            format!("a Pods metric supports only target type AverageValue, not {target_type}"),
        )
        .help("use type: AverageValue with averageValue: the per-pod average the HPA keeps");
    }
    if target_type == "Utilization"
        && !matches!(metric.metric_type, "Resource" | "ContainerResource")
    {
        sink.report(
            type_pointer.clone(),
            format!(
                "target type Utilization is only for Resource metrics, not {}",
                metric.metric_type
            ),
        )
        .help("use AverageValue (or Value for External and Object metrics)");
    }
    let Some(field) = value_field(target_type) else {
        sink.report(type_pointer, format!("unknown target type `{target_type}`"))
            .help("use AverageValue, Value or Utilization");
        return;
    };
    let field_pointer = format!("{target_pointer}/{field}");
    let Some(TargetValue {
        value,
        pointer: value_pointer,
        ..
    }) = &target.value
    else {
        let misplaced = format!("{}/{field}", metric.source_pointer);
        if source.get(field).is_some() {
            // Reported where the mistake is written, the key beside
            // `target`: schema-strict's unknown field there is the same
            // mistake with the same fix, and the engine keeps one.
            sink.report(
                misplaced.clone(),
                format!("`{field}` is written beside `target`; target type {target_type} needs it inside target"),
            )
            .on_key()
            .help(format!("indent `{field}` under target"))
            .maybe_fix(op::move_(&misplaced, &field_pointer).map(|operation| {
                Fix::safe(format!("move `{field}` into target"), vec![operation])
            }));
        } else {
            sink.report(
                target_pointer.clone(),
                format!("target type {target_type} needs `{field}` inside target"),
            )
            .help(format!("add `{field}` to the target"));
        }
        return;
    };
    let (value, field_pointer) = (*value, value_pointer.clone());
    if is_placeholder(cx, value) {
        return; // unresolved-placeholder reports it
    }
    let parsed = if field == "averageUtilization" {
        value.as_f64()
    } else {
        quantity::from_value(value)
    };
    let Some(number) = parsed else {
        sink.report(
            field_pointer,
            format!("`{}` is not a valid quantity", display(value)),
        )
        .help("use a number or a Kubernetes quantity such as 5, 500m or 2Gi");
        return;
    };
    out_of_range(
        cx,
        metric.name,
        number,
        value,
        &field_pointer,
        "target",
        sink,
    );
}

/// A KEDA trigger: its metric type, and its threshold and activation
/// threshold as quantities within the metric's range. Scalers other than
/// prometheus, cpu and memory keep their thresholds under other keys and
/// are left to KEDA.
fn check_trigger(cx: &Context<'_>, metric: &HpaMetric<'_>, sink: &mut Sink) {
    let Some(trigger) = metric.source else { return };
    let scaler = trigger.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(scaler, "prometheus" | "cpu" | "memory") {
        return;
    }
    let Some(target) = &metric.target else { return };
    let target_type = target.target_type.unwrap_or("AverageValue");
    let type_pointer = format!("{}/metricType", metric.source_pointer);
    let allowed: &[&str] = if metric.metric_type == "Resource" {
        &["Utilization", "AverageValue"]
    } else {
        &["AverageValue", "Value"]
    };
    if !allowed.contains(&target_type) {
        sink.report(
            type_pointer,
            format!(
                "metricType `{target_type}` does not apply to a {scaler} trigger; use {}",
                allowed.join(" or ")
            ),
        )
        .help("AverageValue divides the query's value by the replica count; Value compares it as it is");
        return;
    }
    let Some(TargetValue { value, pointer, .. }) = &target.value else {
        sink.report(
            format!("{}/metadata", metric.source_pointer),
            format!("the {scaler} trigger has no threshold"),
        )
        .help("set metadata.threshold (metadata.value for cpu and memory), a number as a string");
        return;
    };
    check_range(cx, metric, value, pointer, sink);
    if let Some(activation) = trigger.at("/metadata/activationThreshold") {
        let activation_pointer = format!("{}/metadata/activationThreshold", metric.source_pointer);
        check_range(cx, metric, activation, &activation_pointer, sink);
    }
}

/// A threshold that must parse as a quantity within the metric's range.
fn check_range(
    cx: &Context<'_>,
    metric: &HpaMetric<'_>,
    value: &Value,
    pointer: &str,
    sink: &mut Sink,
) {
    if is_placeholder(cx, value) {
        return;
    }
    let Some(number) = quantity::from_value(value) else {
        sink.report(
            pointer,
            format!("`{}` is not a valid quantity", display(value)),
        )
        .help("use a number or a Kubernetes quantity such as 5, 500m or 2Gi");
        return;
    };
    out_of_range(cx, metric.name, number, value, pointer, "threshold", sink);
}

/// Report a target or threshold outside the range of the metric's family
/// (a fraction in (0, 1], a percentage in (0, 100]). An activation
/// threshold may be 0: active whenever the value is above zero.
fn out_of_range(
    cx: &Context<'_>,
    name: Option<&str>,
    number: f64,
    value: &Value,
    pointer: &str,
    word: &str,
    sink: &mut Sink,
) {
    let Some(name) = name else { return };
    let Some((family, Some(scale))) = classify(name, cx.policy) else {
        return;
    };
    let (upper, range, example) = match scale {
        MetricScale::Fraction => (1.0, "(0, 1]", "800m for 80 %"),
        MetricScale::Percent => (100.0, "(0, 100]", "80 for 80 %"),
    };
    let activation = pointer.ends_with("/activationThreshold");
    if (number <= 0.0 && !activation) || number < 0.0 || number > upper {
        sink.report(
            pointer,
            format!(
                "{word} {} is outside {range}, the range of `{name}` ({})",
                display(value),
                family.describe()
            ),
        )
        .help(format!(
            "give a {word} within {range}, for example {example}"
        ));
    }
}

/// A ScaledObject's replica counts (KEDA's defaults: minReplicaCount 0,
/// maxReplicaCount 100).
fn check_replica_counts(cx: &Context<'_>, object: &Object, sink: &mut Sink) {
    let read = |key: &str| object.value.at(&format!("/spec/{key}"));
    for key in ["minReplicaCount", "maxReplicaCount", "idleReplicaCount"] {
        if let Some(value) = read(key) {
            if !is_placeholder(cx, value) && value.as_i64().is_none_or(|count| count < 0) {
                sink.report(
                    format!("/spec/{key}"),
                    format!(
                        "{key} `{}` is not a whole number of replicas",
                        display(value)
                    ),
                )
                .help("use a whole number, 0 or more");
                return;
            }
        }
    }
    let (min, max) = autoscaler::replica_range(object, cx.policy);
    if let Some(max) = max.filter(|max| min > *max) {
        sink.report(
            "/spec/minReplicaCount",
            format!("minReplicaCount {min} is greater than maxReplicaCount {max}"),
        )
        .help("make minReplicaCount <= maxReplicaCount (KEDA's defaults are 0 and 100)");
    }
}

fn check_replicas(cx: &Context<'_>, object: &Object, sink: &mut Sink) {
    let spec = object.value.get("spec");
    let read = |key: &str| spec.and_then(|spec| spec.get(key));
    let max = read("maxReplicas");
    if max.is_none() {
        sink.report("/spec", "maxReplicas is missing")
            .help("set spec.maxReplicas; the apiserver requires it");
        return;
    }
    let min_value = read("minReplicas");
    if min_value.is_some_and(|value| is_placeholder(cx, value))
        || max.is_some_and(|value| is_placeholder(cx, value))
    {
        return;
    }
    let min = min_value.map_or(Some(1), Value::as_i64);
    let max = max.and_then(Value::as_i64);
    match (min, max) {
        (Some(min), _) if min < 1 => {
            sink.report("/spec/minReplicas", format!("minReplicas is {min}; it must be at least 1"))
                .help("set minReplicas to 1 or more (scale to zero needs the alpha HPAScaleToZero gate and an Object or External metric)");
        }
        (Some(min), Some(max)) if min > max => {
            sink.report(
                "/spec/minReplicas",
                format!("minReplicas {min} is greater than maxReplicas {max}"),
            )
            .help("make minReplicas <= maxReplicas");
        }
        (None, _) => {
            sink.report("/spec/minReplicas", "minReplicas is not an integer")
                .help("use a whole number");
        }
        (_, None) => {
            sink.report("/spec/maxReplicas", "maxReplicas is not an integer")
                .help("use a whole number");
        }
        _ => {}
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
