//! Autoscalers as the rules that do not care which kind they are read
//! them: HorizontalPodAutoscalers of every version and KEDA ScaledObjects
//! (which KEDA turns into an HPA of its own), with the workload they scale
//! and the replica range they may set.

use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::input::object::Object;

/// Where an autoscaler names its workload, with KEDA's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleTargetRef<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    /// Pointer of the reference block (`/spec/scaleTargetRef`).
    pub pointer: &'static str,
}

/// Whether an object is an autoscaler: an HPA, or a KEDA ScaledObject.
pub fn is_autoscaler(object: &Object) -> bool {
    is_hpa(object) || is_scaled_object(object)
}

pub fn is_hpa(object: &Object) -> bool {
    object.kind() == "HorizontalPodAutoscaler" && object.group() == "autoscaling"
}

pub fn is_scaled_object(object: &Object) -> bool {
    object.kind() == "ScaledObject" && object.group() == "keda.sh"
}

/// An HPA that KEDA made for a ScaledObject (it owns it): not a second
/// autoscaler but the ScaledObject's own.
pub fn is_keda_owned(object: &Object) -> bool {
    owned_by_scaled_object(&object.value)
}

/// Whether an object's owners include a ScaledObject (raw JSON, as an
/// admission request carries it).
pub fn owned_by_scaled_object(value: &Value) -> bool {
    value
        .at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|owner| owner.get("kind").and_then(Value::as_str) == Some("ScaledObject"))
}

/// The workload an autoscaler scales. A ScaledObject's reference defaults
/// to a Deployment (KEDA documentation, ScaledObject specification:
/// `scaleTargetRef.kind` defaults to Deployment, `apiVersion` to apps/v1).
pub fn scale_target(object: &Object) -> Option<ScaleTargetRef<'_>> {
    let (kind, name) = target_in(&object.value)?;
    Some(ScaleTargetRef {
        kind,
        name,
        pointer: "/spec/scaleTargetRef",
    })
}

/// The (kind, name) an autoscaler's raw JSON names, with KEDA's default
/// kind: one reading for objects of the input and of a review or a
/// cluster list.
fn target_in(value: &Value) -> Option<(&str, &str)> {
    let kind = value.get("kind").and_then(Value::as_str)?;
    let group = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|api_version| api_version.rsplit_once('/'))
        .map_or("", |(group, _)| group);
    let reference = value.at("/spec/scaleTargetRef")?;
    let name = reference.get("name").and_then(Value::as_str)?;
    let written = reference.get("kind").and_then(Value::as_str);
    let target_kind = match (group, kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => written?,
        ("keda.sh", "ScaledObject") => written.unwrap_or("Deployment"),
        _ => return None,
    };
    Some((target_kind, name))
}

/// Where an autoscaler writes its minimum, maximum and behavior.
pub fn min_pointer(object: &Object) -> &'static str {
    if is_scaled_object(object) {
        "/spec/minReplicaCount"
    } else {
        "/spec/minReplicas"
    }
}

pub fn max_pointer(object: &Object) -> &'static str {
    if is_scaled_object(object) {
        "/spec/maxReplicaCount"
    } else {
        "/spec/maxReplicas"
    }
}

/// KEDA passes `advanced.horizontalPodAutoscalerConfig.behavior` to the
/// HPA it generates as its `behavior` (KEDA documentation, ScaledObject
/// specification).
pub const KEDA_BEHAVIOR: &str = "/spec/advanced/horizontalPodAutoscalerConfig/behavior";

pub fn behavior_pointer(object: &Object) -> &'static str {
    if is_scaled_object(object) {
        KEDA_BEHAVIOR
    } else {
        "/spec/behavior"
    }
}

/// The operation that writes a behavior where there is none, creating the
/// ScaledObject's `advanced.horizontalPodAutoscalerConfig` as needed.
pub fn add_behavior(object: &Object, behavior: Value) -> Option<json_patch::PatchOperation> {
    if !is_scaled_object(object) {
        return crate::input::pointer::op::add("/spec/behavior", behavior);
    }
    let mut value = behavior;
    let mut pointer = KEDA_BEHAVIOR;
    for (parent, key) in [
        ("/spec/advanced/horizontalPodAutoscalerConfig", "behavior"),
        ("/spec/advanced", "horizontalPodAutoscalerConfig"),
        ("/spec", "advanced"),
    ] {
        if object.value.at(parent).is_some_and(Value::is_object) {
            break;
        }
        let mut wrapper = serde_json::Map::new();
        wrapper.insert(key.to_string(), value);
        value = Value::Object(wrapper);
        pointer = parent;
    }
    crate::input::pointer::op::add(pointer, value)
}

/// The replicas an autoscaler may set: (minimum, maximum), with the
/// defaults of its kind (HPA: minReplicas 1; KEDA: `keda.defaults` in
/// rules/keda.yaml, minReplicaCount 0 and maxReplicaCount 100). `None`
/// for a maximum that is not a number.
pub fn replica_range(object: &Object, policy: &crate::policy::Policy) -> (i64, Option<i64>) {
    let defaults = &policy.keda.defaults;
    let read = |field: &str| {
        object
            .value
            .at(&format!("/spec/{field}"))
            .and_then(Value::as_i64)
    };
    if is_scaled_object(object) {
        let max = match object.value.at("/spec/maxReplicaCount") {
            None => Some(defaults.max_replica_count),
            Some(_) => read("maxReplicaCount"),
        };
        (
            read("minReplicaCount").unwrap_or(defaults.min_replica_count),
            max,
        )
    } else {
        (read("minReplicas").unwrap_or(1), read("maxReplicas"))
    }
}

/// An autoscaler's target read from raw JSON (a review, a cluster list):
/// kind and name, with KEDA's default kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: String,
    pub name: String,
}

impl Reference {
    pub fn of_value(value: &Value) -> Option<Self> {
        let (kind, name) = target_in(value)?;
        Some(Self {
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}
