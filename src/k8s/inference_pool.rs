//! The Gateway API Inference Extension's InferencePool, in both of its
//! versions (`inference.networking.k8s.io/v1` and the older
//! `inference.networking.x-k8s.io/v1alpha2`): its selector, target ports
//! and endpoint picker reference, read the same way by the rules and by
//! the webhook's cluster lookups.

use crate::input::object::Object;
use crate::input::pointer::Lookup;
use serde_json::{json, Value};

/// The API groups of InferencePool, newest first.
pub const GROUPS: &[&str] = &[
    "inference.networking.k8s.io",
    "inference.networking.x-k8s.io",
];

/// Whether an object is an InferencePool of either version.
pub fn is_pool(object: &Object) -> bool {
    object.kind() == "InferencePool" && GROUPS.contains(&object.group())
}

/// The pool's selector as a label selector (`matchLabels`), v1 or v1alpha2,
/// with the pointer of its labels.
pub fn selector(pool: &Value) -> Option<(String, Value)> {
    let spec = pool.get("spec")?;
    let selector = spec.get("selector")?;
    match selector.get("matchLabels") {
        Some(labels) if labels.is_object() => Some((
            "/spec/selector/matchLabels".to_string(),
            json!({"matchLabels": labels}),
        )),
        _ if selector.is_object() && selector.get("matchExpressions").is_none() => Some((
            "/spec/selector".to_string(),
            json!({"matchLabels": selector}),
        )),
        _ => None,
    }
}

/// The pool's target ports with their pointers.
pub fn target_ports(pool: &Value) -> Vec<(String, i64)> {
    if let Some(ports) = pool.at("/spec/targetPorts").and_then(Value::as_array) {
        return ports
            .iter()
            .enumerate()
            .filter_map(|(index, port)| {
                Some((
                    format!("/spec/targetPorts/{index}/number"),
                    port.get("number")?.as_i64()?,
                ))
            })
            .collect();
    }
    pool.at("/spec/targetPortNumber")
        .and_then(Value::as_i64)
        .map(|number| vec![("/spec/targetPortNumber".to_string(), number)])
        .unwrap_or_default()
}

/// The reference to the endpoint picker: v1 `endpointPickerRef` or
/// v1alpha2 `extensionRef`.
pub struct PickerRef<'a> {
    pub pointer: &'static str,
    /// The v1 field, whose Service reference must give its port.
    pub v1: bool,
    pub value: &'a Value,
}

impl<'a> PickerRef<'a> {
    pub fn of(pool: &'a Value) -> Option<Self> {
        if let Some(value) = pool.at("/spec/endpointPickerRef") {
            return Some(Self {
                pointer: "/spec/endpointPickerRef",
                v1: true,
                value,
            });
        }
        pool.at("/spec/extensionRef").map(|value| Self {
            pointer: "/spec/extensionRef",
            v1: false,
            value,
        })
    }

    pub fn text(&self, key: &str) -> Option<&'a str> {
        self.value.get(key).and_then(Value::as_str)
    }

    /// The name of the core Service it refers to (the default kind), if it
    /// refers to one.
    pub fn service(&self) -> Option<&'a str> {
        let core = self.text("group").unwrap_or("").is_empty();
        (core && self.text("kind").unwrap_or("Service") == "Service")
            .then(|| self.text("name"))
            .flatten()
    }
}

/// The kinds with a `spec.poolRef`, their API groups and the group their
/// poolRef defaults to (each CRD's `poolRef.group` default: the v1 pool's
/// for InferenceObjective and InferenceModelRewrite, the v1alpha2 pool's
/// for the older InferenceModel).
const REFERRERS: &[(&str, &[&str], &str)] = &[
    (
        "InferenceObjective",
        &["inference.networking.x-k8s.io", "llm-d.ai"],
        "inference.networking.k8s.io",
    ),
    (
        "InferenceModelRewrite",
        &["inference.networking.x-k8s.io", "llm-d.ai"],
        "inference.networking.k8s.io",
    ),
    (
        "InferenceModel",
        &["inference.networking.x-k8s.io"],
        "inference.networking.x-k8s.io",
    ),
];

/// An object's reference to an InferencePool of its namespace.
pub struct PoolRef<'a> {
    pub name: &'a str,
    /// The group it means: the one written, else its kind's default.
    pub group: &'a str,
    /// Whether the group is written out.
    pub stated: bool,
}

/// The poolRef of an InferenceObjective, InferenceModelRewrite or
/// InferenceModel (`kind` and `api_group` of the object).
pub fn pool_ref<'a>(kind: &str, api_group: &str, object: &'a Value) -> Option<PoolRef<'a>> {
    let (_, _, default_group) = REFERRERS
        .iter()
        .find(|(referrer, groups, _)| *referrer == kind && groups.contains(&api_group))?;
    let reference = object.at("/spec/poolRef")?;
    let text = |key: &str| reference.get(key).and_then(Value::as_str);
    if text("kind").is_some_and(|kind| kind != "InferencePool") {
        return None;
    }
    Some(PoolRef {
        name: text("name")?,
        group: text("group").unwrap_or(default_group),
        stated: text("group").is_some(),
    })
}

/// The backendRefs of an HTTPRoute, with their pointers, that stay in the
/// route's namespace (`namespace` is the route's, if known).
pub fn route_backends<'a>(route: &'a Value, namespace: Option<&str>) -> Vec<(String, &'a Value)> {
    let Some(rules) = route.at("/spec/rules").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut backends = Vec::new();
    for (rule_index, rule) in rules.iter().enumerate() {
        let Some(refs) = rule.get("backendRefs").and_then(Value::as_array) else {
            continue;
        };
        for (index, backend) in refs.iter().enumerate() {
            let elsewhere = backend
                .get("namespace")
                .and_then(Value::as_str)
                .is_some_and(|other| Some(other) != namespace);
            if !elsewhere {
                backends.push((
                    format!("/spec/rules/{rule_index}/backendRefs/{index}"),
                    backend,
                ));
            }
        }
    }
    backends
}
