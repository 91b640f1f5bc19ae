//! HPA metric entries and their families.

use crate::input::pointer::Lookup;
use json_patch::PatchOperation;
use serde_json::{json, Map, Value};

use crate::input::pointer::op;

use crate::input::object::Object;
use crate::input::pointer;
use crate::policy::{MetricFamily, MetricScale, Policy};

/// The shape an HPA is written in. `autoscaling/v2beta2` is v2's shape
/// under another name; `autoscaling/v2beta1` names every field differently;
/// `autoscaling/v1` has one CPU target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpaVersion {
    V1,
    V2beta1,
    V2,
    /// A KEDA ScaledObject: its triggers become the metrics of the HPA
    /// KEDA generates, read here with pointers into the triggers.
    Keda,
    /// A KServe InferenceService's predictor: `autoScaling.metrics`
    /// (v2-shaped targets, from which KServe makes an HPA or a KEDA
    /// ScaledObject) and `scaleMetric`/`scaleTarget`.
    KServe,
}

impl HpaVersion {
    pub fn of(hpa: &Object) -> Self {
        if crate::k8s::autoscaler::is_scaled_object(hpa) {
            return Self::Keda;
        }
        match hpa.id.api_version.as_str() {
            "autoscaling/v1" => Self::V1,
            "autoscaling/v2beta1" => Self::V2beta1,
            _ => Self::V2,
        }
    }

    /// Whether the version has a `behavior` (a ScaledObject's is under
    /// `spec.advanced.horizontalPodAutoscalerConfig`).
    pub fn has_behavior(self) -> bool {
        matches!(self, Self::V2 | Self::Keda)
    }
}

/// One metric of an HPA, read alike from every version: the names are
/// v2's, the pointers those of the fields as written.
#[derive(Debug, Clone)]
pub struct HpaMetric<'a> {
    /// Pointer of the entry: `/spec/metrics/N` (`/spec` for autoscaling/v1).
    pub pointer: String,
    /// `External`, `Pods`, `Object`, `Resource`, `ContainerResource`.
    pub metric_type: &'a str,
    /// Pointer of the source block: `/spec/metrics/N/external`.
    pub source_pointer: String,
    pub source: Option<&'a Value>,
    /// The metric name, for External, Pods and Object metrics.
    pub name: Option<&'a str>,
    name_pointer: String,
    /// The metric's label selector, and where it is (or would be) written.
    pub selector: Option<&'a Value>,
    pub selector_pointer: String,
    /// The target, `None` when none is written.
    pub target: Option<Target<'a>>,
    pub version: HpaVersion,
}

/// What an HPA metric aims at, in v2's terms.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Where the target is written: v2's `target` block, or (v2beta1,
    /// v1) the field that holds the value.
    pub pointer: String,
    /// `AverageValue`, `Value` or `Utilization`: written in v2, implied by
    /// the field's name in v2beta1 and v1.
    pub target_type: Option<&'a str>,
    /// v2's `target` mapping as written.
    pub block: Option<&'a Value>,
    /// The value, named by its v2 field (`averageValue`, `value`,
    /// `averageUtilization`), with the pointer of the field as written.
    pub value: Option<TargetValue<'a>>,
}

#[derive(Debug, Clone)]
pub struct TargetValue<'a> {
    pub field: &'static str,
    pub value: &'a Value,
    pub pointer: String,
}

impl HpaMetric<'_> {
    pub fn name_pointer(&self) -> String {
        self.name_pointer.clone()
    }

    /// Where v2 writes the target block.
    pub fn target_pointer(&self) -> String {
        match &self.target {
            Some(target) if matches!(self.version, HpaVersion::V2 | HpaVersion::KServe) => {
                target.pointer.clone()
            }
            _ => format!("{}/target", self.source_pointer),
        }
    }
}

/// The v2 value field of a target type.
pub fn value_field(target_type: &str) -> Option<&'static str> {
    match target_type {
        "AverageValue" => Some("averageValue"),
        "Value" => Some("value"),
        "Utilization" => Some("averageUtilization"),
        _ => None,
    }
}

/// The metrics of an HPA in any version, or of the HPA a KEDA
/// ScaledObject generates (one per trigger); empty for anything else.
pub fn hpa_metrics(hpa: &Object) -> Vec<HpaMetric<'_>> {
    if crate::k8s::autoscaler::is_scaled_object(hpa) {
        return keda_metrics(hpa);
    }
    if hpa.kind() != "HorizontalPodAutoscaler" {
        return Vec::new();
    }
    let version = HpaVersion::of(hpa);
    if version == HpaVersion::V1 {
        return v1_metric(hpa).into_iter().collect();
    }
    let Some(entries) = hpa.value.at("/spec/metrics").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| {
            let metric_type = entry.get("type").and_then(Value::as_str)?;
            let key = source_key(metric_type);
            let entry_pointer = pointer::join("/spec/metrics", index);
            let source_pointer = pointer::join(&entry_pointer, key);
            let source = entry.get(key);
            Some(match version {
                HpaVersion::V2beta1 => {
                    v2beta1_metric(metric_type, source, entry_pointer, source_pointer)
                }
                _ => v2_metric(metric_type, source, entry_pointer, source_pointer),
            })
        })
        .collect()
}

fn v2_metric<'a>(
    metric_type: &'a str,
    source: Option<&'a Value>,
    pointer: String,
    source_pointer: String,
) -> HpaMetric<'a> {
    let block = source.and_then(|source| source.get("target"));
    let target_pointer = format!("{source_pointer}/target");
    let target = block.map(|block| {
        let target_type = block.get("type").and_then(Value::as_str);
        let value = target_type.and_then(value_field).and_then(|field| {
            Some(TargetValue {
                field,
                value: block.get(field)?,
                pointer: format!("{target_pointer}/{field}"),
            })
        });
        Target {
            pointer: target_pointer.clone(),
            target_type,
            block: Some(block),
            value,
        }
    });
    HpaMetric {
        name: source
            .and_then(|source| source.at("/metric/name"))
            .and_then(Value::as_str),
        name_pointer: format!("{source_pointer}/metric/name"),
        selector: source.and_then(|source| source.at("/metric/selector")),
        selector_pointer: format!("{source_pointer}/metric/selector"),
        pointer,
        metric_type,
        source,
        source_pointer,
        target,
        version: HpaVersion::V2,
    }
}

/// autoscaling/v2beta1 fields, as the Kubernetes API reference of 1.22
/// lists them: `metricName`, `metricSelector` (External) or `selector`,
/// and `targetValue`, `targetAverageValue` or `targetAverageUtilization`
/// (Object's `averageValue`).
fn v2beta1_metric<'a>(
    metric_type: &'a str,
    source: Option<&'a Value>,
    pointer: String,
    source_pointer: String,
) -> HpaMetric<'a> {
    let read = |key: &str| source.and_then(|source| source.get(key));
    let (name_key, selector_key) = match metric_type {
        "Resource" | "ContainerResource" => ("name", "selector"),
        "External" => ("metricName", "metricSelector"),
        _ => ("metricName", "selector"),
    };
    let targets: &[(&str, &str, &'static str)] = match metric_type {
        "Object" => &[
            ("targetValue", "Value", "value"),
            ("averageValue", "AverageValue", "averageValue"),
        ],
        "Resource" | "ContainerResource" => &[
            (
                "targetAverageUtilization",
                "Utilization",
                "averageUtilization",
            ),
            ("targetAverageValue", "AverageValue", "averageValue"),
        ],
        "Pods" => &[("targetAverageValue", "AverageValue", "averageValue")],
        _ => &[
            ("targetValue", "Value", "value"),
            ("targetAverageValue", "AverageValue", "averageValue"),
        ],
    };
    let target = targets.iter().find_map(|(key, target_type, field)| {
        let value = read(key)?;
        let value_pointer = format!("{source_pointer}/{key}");
        Some(Target {
            pointer: value_pointer.clone(),
            target_type: Some(target_type),
            block: None,
            value: Some(TargetValue {
                field,
                value,
                pointer: value_pointer,
            }),
        })
    });
    HpaMetric {
        name: read(name_key)
            .and_then(Value::as_str)
            .filter(|_| !matches!(metric_type, "Resource" | "ContainerResource")),
        name_pointer: format!("{source_pointer}/{name_key}"),
        selector: read(selector_key),
        selector_pointer: format!("{source_pointer}/{selector_key}"),
        pointer,
        metric_type,
        source,
        source_pointer,
        target,
        version: HpaVersion::V2beta1,
    }
}

/// A ScaledObject's triggers as the metrics of the HPA KEDA makes of them
/// (KEDA documentation, ScaledObject specification and scalers): each
/// trigger is an External metric whose target is `metadata.threshold`
/// (`metadata.value` for the cpu and memory triggers, which are Resource
/// metrics), of the type `metricType` says, AverageValue by default. The
/// name is the first metric the Prometheus query reads, so that families
/// and ranges apply.
fn keda_metrics(scaled: &Object) -> Vec<HpaMetric<'_>> {
    let Some(triggers) = scaled.value.at("/spec/triggers").and_then(Value::as_array) else {
        return Vec::new();
    };
    triggers
        .iter()
        .enumerate()
        .map(|(index, trigger)| {
            let pointer = pointer::join("/spec/triggers", index);
            let scaler = trigger.get("type").and_then(Value::as_str).unwrap_or("");
            let resource = matches!(scaler, "cpu" | "memory");
            let metric_type = if resource { "Resource" } else { "External" };
            let default_type = if resource {
                "Utilization"
            } else {
                "AverageValue"
            };
            let target_type = trigger
                .get("metricType")
                .and_then(Value::as_str)
                .unwrap_or(default_type);
            let value_key = if resource { "value" } else { "threshold" };
            let value_pointer = format!("{pointer}/metadata/{value_key}");
            let value = trigger.at(&format!("/metadata/{value_key}"));
            let name = (scaler == "prometheus")
                .then(|| trigger.at("/metadata/query").and_then(Value::as_str))
                .flatten()
                .and_then(crate::k8s::promql::first_metric_name);
            HpaMetric {
                name,
                name_pointer: format!("{pointer}/metadata/query"),
                selector: None,
                selector_pointer: format!("{pointer}/metadata"),
                metric_type,
                source: Some(trigger),
                source_pointer: pointer.clone(),
                target: Some(Target {
                    pointer: value_pointer.clone(),
                    target_type: Some(target_type),
                    block: None,
                    value: value_field(target_type).and_then(|field| {
                        Some(TargetValue {
                            field,
                            value: value?,
                            pointer: value_pointer,
                        })
                    }),
                }),
                pointer,
                version: HpaVersion::Keda,
            }
        })
        .collect()
}

/// The autoscaler a KServe InferenceService's predictor configures, as
/// HPA metrics with pointers into the InferenceService (KServe API,
/// `ComponentExtensionSpec`: `autoScaling.metrics` entries of type
/// Resource, External or PodMetric with v2-shaped targets; `scaleMetric`
/// cpu or memory with `scaleTarget` and `scaleMetricType`, Utilization by
/// default, which KServe's HPA reconciler turns into a Resource metric).
/// An External or PodMetric entry is named by the first metric its query
/// reads, so that the metric families apply. Concurrency and rps are
/// Knative's (KPA) and have no HPA target.
pub fn kserve_metrics(isvc: &Object) -> Vec<HpaMetric<'_>> {
    if isvc.kind() != "InferenceService" {
        return Vec::new();
    }
    let mut found = Vec::new();
    let predictor = "/spec/predictor";
    if let Some(entries) = isvc
        .value
        .at("/spec/predictor/autoScaling/metrics")
        .and_then(Value::as_array)
    {
        for (index, entry) in entries.iter().enumerate() {
            let Some(kind) = entry.get("type").and_then(Value::as_str) else {
                continue;
            };
            let (key, metric_type) = match kind {
                "Resource" => ("resource", "Resource"),
                "External" => ("external", "External"),
                // KServe makes it a KEDA trigger (OpenTelemetry), an
                // External metric of the HPA KEDA generates.
                "PodMetric" => ("podmetric", "External"),
                _ => continue,
            };
            let entry_pointer = pointer::join(&format!("{predictor}/autoScaling/metrics"), index);
            let source_pointer = pointer::join(&entry_pointer, key);
            let source = entry.get(key);
            let mut metric = v2_metric(metric_type, source, entry_pointer, source_pointer.clone());
            metric.version = HpaVersion::KServe;
            metric.selector = None;
            if metric_type != "Resource" {
                metric.name = source
                    .and_then(|source| source.at("/metric/query"))
                    .and_then(Value::as_str)
                    .and_then(crate::k8s::promql::first_metric_name);
                metric.name_pointer = format!("{source_pointer}/metric/query");
            }
            found.push(metric);
        }
    }
    let scale_metric = isvc
        .value
        .at("/spec/predictor/scaleMetric")
        .and_then(Value::as_str);
    if let (Some("cpu" | "memory"), Some(value)) =
        (scale_metric, isvc.value.at("/spec/predictor/scaleTarget"))
    {
        let target_type = isvc
            .value
            .at("/spec/predictor/scaleMetricType")
            .and_then(Value::as_str)
            .unwrap_or("Utilization");
        let value_pointer = format!("{predictor}/scaleTarget");
        found.push(HpaMetric {
            pointer: format!("{predictor}/scaleMetric"),
            metric_type: "Resource",
            source_pointer: format!("{predictor}/scaleMetric"),
            source: isvc.value.at(predictor),
            name: None,
            name_pointer: format!("{predictor}/scaleMetric"),
            selector: None,
            selector_pointer: format!("{predictor}/scaleMetric"),
            target: Some(Target {
                pointer: value_pointer.clone(),
                target_type: Some(target_type),
                block: None,
                value: value_field(target_type).map(|field| TargetValue {
                    field,
                    value,
                    pointer: value_pointer,
                }),
            }),
            version: HpaVersion::KServe,
        });
    }
    found
}

/// The Prometheus query of a metric, and its pointer: a KEDA trigger's
/// `metadata.query`, or a KServe External entry's `metric.query` when its
/// backend is Prometheus (KServe's `MetricsBackend`: prometheus or
/// graphite; a PodMetric's backend is OpenTelemetry).
pub fn prometheus_query<'a>(metric: &HpaMetric<'a>) -> Option<(&'a str, String)> {
    let source = metric.source?;
    match metric.version {
        HpaVersion::Keda => {
            if source.get("type").and_then(Value::as_str) != Some("prometheus") {
                return None;
            }
            let query = source.at("/metadata/query").and_then(Value::as_str)?;
            Some((query, format!("{}/metadata/query", metric.source_pointer)))
        }
        HpaVersion::KServe if metric.source_pointer.ends_with("/external") => {
            let backend = source.at("/metric/backend").and_then(Value::as_str);
            if backend.is_some_and(|backend| backend != "prometheus") {
                return None;
            }
            let query = source.at("/metric/query").and_then(Value::as_str)?;
            Some((query, format!("{}/metric/query", metric.source_pointer)))
        }
        _ => None,
    }
}

/// autoscaling/v1: CPU utilization only; without
/// `targetCPUUtilizationPercentage` the controller uses its default (80 %).
fn v1_metric(hpa: &Object) -> Option<HpaMetric<'_>> {
    let spec = hpa.value.get("spec")?;
    let value = spec.get("targetCPUUtilizationPercentage")?;
    let value_pointer = "/spec/targetCPUUtilizationPercentage".to_string();
    Some(HpaMetric {
        pointer: "/spec".to_string(),
        metric_type: "Resource",
        source_pointer: "/spec".to_string(),
        source: Some(spec),
        name: None,
        name_pointer: value_pointer.clone(),
        selector: None,
        selector_pointer: value_pointer.clone(),
        target: Some(Target {
            pointer: value_pointer.clone(),
            target_type: Some("Utilization"),
            block: None,
            value: Some(TargetValue {
                field: "averageUtilization",
                value,
                pointer: value_pointer,
            }),
        }),
        version: HpaVersion::V1,
    })
}

/// The JSON Patch that rewrites an autoscaling/v2beta1 or v2beta2 HPA as
/// autoscaling/v2: the same autoscaler, spelt the new way. v2beta2 differs
/// only in its apiVersion. In v2beta1 each metric source is re-spelt field
/// by field (`metricName` and its selector become `metric`, the target
/// fields become `target`, Object's `target` becomes `describedObject`);
/// the new fields are added before the old ones are removed, so the edit
/// stays in place and keeps the rest of the file as it is.
pub fn to_v2_operations(hpa: &Object) -> Vec<PatchOperation> {
    let mut operations: Vec<PatchOperation> = op::replace("/apiVersion", json!("autoscaling/v2"))
        .into_iter()
        .collect();
    if HpaVersion::of(hpa) != HpaVersion::V2beta1 {
        return operations;
    }
    for metric in hpa_metrics(hpa) {
        let Some(source) = metric.source.and_then(Value::as_object) else {
            continue;
        };
        let at = |key: &str| pointer::join(&metric.source_pointer, key);
        let resource = matches!(metric.metric_type, "Resource" | "ContainerResource");
        let object = metric.metric_type == "Object";
        let mut metric_id = Map::new();
        if let Some(name) = source.get("metricName") {
            metric_id.insert("name".to_string(), name.clone());
        }
        let selector_key = if metric.metric_type == "External" {
            "metricSelector"
        } else {
            "selector"
        };
        if let Some(selector) = source.get(selector_key).filter(|_| !resource) {
            metric_id.insert("selector".to_string(), selector.clone());
        }
        let mut removed: Vec<&str> = vec![
            "metricName",
            "targetValue",
            "targetAverageValue",
            "targetAverageUtilization",
        ];
        if !resource {
            removed.push(selector_key);
        }
        if object {
            removed.push("averageValue");
            if let Some(reference) = source.get("target") {
                operations.extend(op::add(&at("describedObject"), reference.clone()));
            }
        }
        if !metric_id.is_empty() {
            operations.extend(op::add(&at("metric"), Value::Object(metric_id)));
        }
        if object && source.contains_key("target") {
            operations.extend(op::remove(&at("target")));
        }
        if let Some(target) = &metric.target {
            if let (Some(target_type), Some(value)) = (target.target_type, &target.value) {
                operations.extend(op::add(
                    &at("target"),
                    json!({"type": target_type, value.field: value.value}),
                ));
            }
        }
        for key in removed {
            if source.contains_key(key) {
                operations.extend(op::remove(&at(key)));
            }
        }
    }
    operations
}

/// The field that holds a metric type's source (`External` -> `external`).
pub fn source_key(metric_type: &str) -> &'static str {
    match metric_type {
        "External" => "external",
        "Pods" => "pods",
        "Object" => "object",
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        _ => "unknown",
    }
}

/// Whether a name is in the Stackdriver adapter form (`a|b|c`).
pub fn is_adapter_form(name: &str) -> bool {
    name.contains('|')
}

pub use crate::policy::base_name;

/// The family and scale of a metric name, if it is a known inference metric.
pub fn classify(name: &str, policy: &Policy) -> Option<(MetricFamily, Option<MetricScale>)> {
    let base = base_name(name);
    policy
        .metric_families
        .iter()
        .flat_map(|(family, entries)| entries.iter().map(move |entry| (*family, entry)))
        .find(|(_, entry)| {
            entry.name.eq_ignore_ascii_case(name) || entry.name.eq_ignore_ascii_case(base)
        })
        .map(|(family, entry)| (family, entry.scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_both_forms_are_classified() {
        let policy = Policy::built_in().expect("policy");
        assert_eq!(
            classify("prometheus.googleapis.com|tgi_queue_size|gauge", &policy).map(|c| c.0),
            Some(MetricFamily::Queue)
        );
        assert_eq!(
            classify("tgi_queue_size", &policy).map(|c| c.0),
            Some(MetricFamily::Queue)
        );
        assert_eq!(
            classify(
                "prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown",
                &policy
            ),
            Some((MetricFamily::DutyCycle, Some(MetricScale::Percent)))
        );
        assert_eq!(
            classify("kubernetes.io|node|accelerator|memory_used", &policy).map(|c| c.0),
            Some(MetricFamily::Hbm)
        );
        assert_eq!(classify("requests_per_second", &policy), None);
    }
}
