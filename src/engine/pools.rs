//! Accelerator node pools: the node labels a pod template requires, and the
//! pool the cluster's Nodes with those labels form. One model for the rule
//! that reads pools (`max-replicas-chip-pool`), the webhook that looks
//! Nodes up and `infergate audit` that lists them.

use crate::input::pointer::Lookup;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::Context;
use crate::input::object::Object;
use crate::k8s::workload::{chips_per_replica, pod_templates, PodTemplate};
use crate::policy::AcceleratorPool;

/// The node labels a pod spec requires: its `nodeSelector`, and the
/// required node affinity's `In` expressions with a single value (the
/// other operators select no one pool).
pub fn required_labels(pod_spec: &Value) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = pod_spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect();
    let terms = pod_spec
        .pointer(
            "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
        )
        .and_then(Value::as_array);
    for expression in terms
        .into_iter()
        .flatten()
        .filter_map(|term| term.get("matchExpressions").and_then(Value::as_array))
        .flatten()
    {
        let key = expression.get("key").and_then(Value::as_str);
        let operator = expression.get("operator").and_then(Value::as_str);
        let values = expression.get("values").and_then(Value::as_array);
        if let (Some(key), Some("In"), Some([value])) = (key, operator, values.map(Vec::as_slice)) {
            if let Some(value) = value.as_str() {
                labels
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
    }
    labels
}

/// Whether a pool's node labels are all among the labels a template
/// requires: its pods can only land on that pool's nodes.
pub fn selects(required: &BTreeMap<String, String>, pool: &AcceleratorPool) -> bool {
    pool.node_labels
        .iter()
        .all(|(key, value)| required.get(key) == Some(value))
}

/// The pools the rules know: the policy's, then those the cluster's Nodes
/// describe (the webhook's lookups, `infergate audit`'s listing).
pub fn known<'a>(cx: &Context<'a>) -> Vec<&'a AcceleratorPool> {
    cx.policy
        .accelerator_pools
        .iter()
        .chain(cx.facts.pools.iter())
        .collect()
}

/// The pool whose node labels the template's scheduling constraints set.
pub fn of_template<'p>(
    template: &PodTemplate<'_>,
    pools: &[&'p AcceleratorPool],
) -> Option<&'p AcceleratorPool> {
    let required = required_labels(template.spec()?);
    pools.iter().copied().find(|pool| selects(&required, pool))
}

/// A workload's accelerator chips per replica and the known pool its pods
/// land on; none when it takes no chips or no pool is known for it.
pub fn of_workload<'a>(
    cx: &Context<'a>,
    workload: &Object,
    pools: &[&'a AcceleratorPool],
) -> Option<(f64, &'a AcceleratorPool)> {
    let templates = pod_templates(workload);
    let chips = chips_per_replica(
        workload,
        &templates,
        &cx.policy.inference.accelerator_resources,
    );
    if chips <= 0.0 {
        return None;
    }
    let pool = templates
        .iter()
        .find_map(|template| of_template(template, pools))?;
    Some((chips, pool))
}

/// The accelerator chips a Node offers to pods: the sum of its
/// `status.allocatable` over the accelerator resource names.
pub fn node_chips(node: &Value, resources: &[String]) -> f64 {
    let Some(allocatable) = node.at("/status/allocatable").and_then(Value::as_object) else {
        return 0.0;
    };
    resources
        .iter()
        .filter_map(|resource| allocatable.get(resource)?.as_str())
        .filter_map(crate::input::quantity::parse)
        .sum()
}

/// Whether a Node carries every one of the labels.
pub fn node_has_labels(node: &Value, labels: &BTreeMap<String, String>) -> bool {
    let own = node.at("/metadata/labels").and_then(Value::as_object);
    labels.iter().all(|(key, value)| {
        own.and_then(|own| own.get(key))
            .and_then(Value::as_str)
            .is_some_and(|have| have == value)
    })
}

/// The pool of the Nodes that carry `labels`, named as `kubectl get nodes
/// -l` would select it; none when those Nodes offer no accelerator.
pub fn pool_of_nodes<'n>(
    labels: &BTreeMap<String, String>,
    nodes: impl IntoIterator<Item = &'n Value>,
    resources: &[String],
) -> Option<AcceleratorPool> {
    if labels.is_empty() {
        return None;
    }
    let chips: f64 = nodes
        .into_iter()
        .filter(|node| node_has_labels(node, labels))
        .map(|node| node_chips(node, resources))
        .sum();
    (chips > 0.0).then(|| AcceleratorPool {
        name: format!("nodes with {}", selector_text(labels)),
        node_labels: labels.clone(),
        chips,
        max_chips: None,
    })
}

/// `key=value,key=value`, a label selector as kubectl takes it.
pub fn selector_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(pool: &str, chips: &str) -> Value {
        json!({"metadata": {"labels": {"cloud.google.com/gke-nodepool": pool}},
            "status": {"allocatable": {"google.com/tpu": chips, "cpu": "200"}}})
    }

    #[test]
    fn a_pool_sums_the_chips_of_the_nodes_with_its_labels() {
        let nodes = [node("v5e", "4"), node("v5e", "4"), node("cpu", "0")];
        let labels = BTreeMap::from([(
            "cloud.google.com/gke-nodepool".to_string(),
            "v5e".to_string(),
        )]);
        let pool = pool_of_nodes(&labels, &nodes, &["google.com/tpu".to_string()]).expect("a pool");
        assert_eq!(pool.chips, 8.0);
        assert_eq!(pool.name, "nodes with cloud.google.com/gke-nodepool=v5e");
        let none = BTreeMap::from([(
            "cloud.google.com/gke-nodepool".to_string(),
            "cpu".to_string(),
        )]);
        assert!(pool_of_nodes(&none, &nodes, &["google.com/tpu".to_string()]).is_none());
    }

    #[test]
    fn required_labels_read_the_selector_and_single_value_affinity() {
        let spec = json!({"nodeSelector": {"a": "1"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "b", "operator": "In", "values": ["2"]},
                    {"key": "c", "operator": "In", "values": ["3", "4"]},
                    {"key": "d", "operator": "Exists"}]}]}}}});
        let labels = required_labels(&spec);
        assert_eq!(
            labels,
            BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string())
            ])
        );
    }
}
