//! HPA metric entries and their families.

use serde_json::Value;

use crate::object::Object;
use crate::pointer;
use crate::policy::{MetricFamily, MetricScale, Policy};

/// One entry of an HPA's `spec.metrics` that names a metric.
#[derive(Debug, Clone)]
pub struct HpaMetric<'a> {
    /// Pointer of the entry: `/spec/metrics/N`.
    pub pointer: String,
    /// `External`, `Pods`, `Object`, `Resource`, `ContainerResource`.
    pub metric_type: &'a str,
    /// Pointer of the source block: `/spec/metrics/N/external`.
    pub source_pointer: String,
    pub source: Option<&'a Value>,
    /// The metric name, for External, Pods and Object metrics.
    pub name: Option<&'a str>,
    pub target: Option<&'a Value>,
}

impl HpaMetric<'_> {
    pub fn name_pointer(&self) -> String {
        format!("{}/metric/name", self.source_pointer)
    }

    pub fn target_pointer(&self) -> String {
        format!("{}/target", self.source_pointer)
    }
}

/// The metrics of an HPA (empty for anything else).
pub fn hpa_metrics(hpa: &Object) -> Vec<HpaMetric<'_>> {
    if hpa.kind() != "HorizontalPodAutoscaler" {
        return Vec::new();
    }
    let Some(entries) = hpa.value.pointer("/spec/metrics").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| {
            let metric_type = entry.get("type").and_then(Value::as_str)?;
            let key = source_key(metric_type);
            let entry_pointer = pointer::join("/spec/metrics", index);
            let source = entry.get(key);
            Some(HpaMetric {
                source_pointer: pointer::join(&entry_pointer, key),
                pointer: entry_pointer,
                metric_type,
                source,
                name: source
                    .and_then(|source| source.pointer("/metric/name"))
                    .and_then(Value::as_str),
                target: source.and_then(|source| source.get("target")),
            })
        })
        .collect()
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

/// The Prometheus metric inside an adapter name
/// (`prometheus.googleapis.com|tgi_queue_size|gauge` -> `tgi_queue_size`),
/// or the name itself.
pub fn base_name(name: &str) -> &str {
    let mut parts = name.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("prometheus.googleapis.com"), Some(metric), Some(_), None) => metric,
        _ => name,
    }
}

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
