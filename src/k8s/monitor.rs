//! Prometheus scrape configurations (PodMonitoring, ClusterPodMonitoring)
//! as the rules read them: their endpoints, the series they already rename
//! to lowercase, and whether one looks like a given exporter's monitor.
//! The engine's index is built from these once per input, so that a rule
//! asking "which monitors scrape this exporter?" does not walk every
//! monitor for every HPA.

use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::input::object::Object;

/// The monitor kinds whose endpoints carry `metricRelabeling` (Google
/// Cloud Managed Service for Prometheus).
pub const POD_MONITORING_KINDS: &[&str] = &["PodMonitoring", "ClusterPodMonitoring"];

/// The monitor's `spec.endpoints`, empty when absent or not a list.
pub fn endpoints(monitor: &Object) -> &[Value] {
    monitor
        .value
        .at("/spec/endpoints")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The series some endpoint renames to their lowercase form: a
/// `metricRelabeling` rule with `targetLabel: __name__`, `regex: SERIES`
/// and `replacement: series`.
pub fn lowercase_renames(monitor: &Object) -> impl Iterator<Item = &str> {
    endpoints(monitor)
        .iter()
        .filter_map(|endpoint| endpoint.get("metricRelabeling").and_then(Value::as_array))
        .flatten()
        .filter_map(|rule| {
            if rule.get("targetLabel").and_then(Value::as_str) != Some("__name__") {
                return None;
            }
            let series = rule.get("regex").and_then(Value::as_str)?;
            let replacement = rule.get("replacement").and_then(Value::as_str)?;
            (replacement == series.to_lowercase()).then_some(series)
        })
}

/// Whether some endpoint already renames `series` to lowercase.
pub fn renames_to_lowercase(monitor: &Object, series: &str) -> bool {
    lowercase_renames(monitor).any(|renamed| renamed == series)
}

/// Whether the monitor's name or the values of its selector's
/// `matchLabels` contain `hint` (case-insensitive): how an exporter's
/// monitor is recognised (`dcgm` in `dcgm-exporter`).
pub fn looks_like(monitor: &Object, hint: &str) -> bool {
    let hint = hint.to_lowercase();
    if monitor
        .name()
        .is_some_and(|name| name.to_lowercase().contains(&hint))
    {
        return true;
    }
    monitor
        .value
        .at("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|labels| {
            labels
                .values()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
                .contains(&hint)
        })
}
