//! KubeRay's RayCluster, RayService and RayJob: where each keeps its Ray
//! cluster, its head and worker groups, and the GPUs each group's pods
//! give Ray.

use crate::input::object::Object;
use crate::input::pointer::{self, Lookup};
use crate::input::quantity;
use serde_json::Value;

/// Where a KubeRay object keeps its Ray cluster spec.
pub fn cluster_spec(object: &Object) -> Option<&'static str> {
    if object.group() != "ray.io" {
        return None;
    }
    match object.kind() {
        "RayCluster" => Some("/spec"),
        "RayService" => Some("/spec/rayClusterConfig"),
        "RayJob" => Some("/spec/rayClusterSpec"),
        _ => None,
    }
}

/// A head or worker group of a Ray cluster.
pub struct Group {
    pub pointer: String,
    pub head: bool,
}

/// The head group and each worker group.
pub fn groups(object: &Object, spec: &str) -> Vec<Group> {
    let mut found = vec![Group {
        pointer: format!("{spec}/headGroupSpec"),
        head: true,
    }];
    let workers = object
        .value
        .at(&format!("{spec}/workerGroupSpecs"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    found.extend((0..workers).map(|index| Group {
        pointer: format!("{spec}/workerGroupSpecs/{index}"),
        head: false,
    }));
    found
}

/// The Ray container of a group: the first of its pod template (KubeRay's
/// convention).
pub fn ray_container<'a>(object: &'a Object, group: &Group) -> Option<&'a Value> {
    object
        .value
        .at(&format!("{}/template/spec/containers/0", group.pointer))
}

/// The GPUs a container is limited to (requests when no limit is given),
/// summed over the resources that end in `/gpu`.
pub fn container_gpus(container: &Value) -> Option<f64> {
    ["limits", "requests"].into_iter().find_map(|section| {
        let resources = container
            .at(&format!("/resources/{section}"))?
            .as_object()?;
        let gpus: Vec<f64> = resources
            .iter()
            .filter(|(name, _)| name.ends_with("/gpu"))
            .filter_map(|(_, value)| quantity::from_value(value))
            .collect();
        (!gpus.is_empty()).then(|| gpus.iter().sum())
    })
}

/// A `rayStartParams` value as a number (`"2"`, `2`, `'2'`).
pub fn param_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().trim_matches(['"', '\'']).parse().ok(),
        _ => None,
    }
}

/// The pointer of a group's `rayStartParams` entry.
pub fn param_pointer(group: &Group, name: &str) -> String {
    pointer::join(&format!("{}/rayStartParams", group.pointer), name)
}

/// The GPUs one pod of a group gives Ray: `num-gpus`, else the Ray
/// container's GPU limit (KubeRay's default).
pub fn group_gpus(object: &Object, group: &Group) -> f64 {
    object
        .value
        .at(&param_pointer(group, "num-gpus"))
        .and_then(param_number)
        .or_else(|| ray_container(object, group).and_then(container_gpus))
        .unwrap_or(0.0)
}

/// The most pods a group can run: `maxReplicas` when the cluster
/// autoscales (`None` when unbounded), else `replicas` (KubeRay's default
/// 0), each times `numOfHosts` (default 1); the head is one pod.
pub fn group_max_pods(object: &Object, spec: &str, group: &Group) -> Option<f64> {
    if group.head {
        return Some(1.0);
    }
    let value = |key: &str| {
        object
            .value
            .at(&format!("{}/{key}", group.pointer))
            .and_then(Value::as_f64)
    };
    let autoscaling = object
        .value
        .at(&format!("{spec}/enableInTreeAutoscaling"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let pods = if autoscaling {
        value("maxReplicas")?
    } else {
        value("replicas").unwrap_or(0.0)
    };
    Some(pods * value("numOfHosts").unwrap_or(1.0))
}
