//! Pod templates, containers and the "inference workload" test of RULES.md.

use serde_json::Value;

use crate::object::Object;
use crate::pointer;
use crate::policy::Policy;

/// A pod template inside a workload, with its pointer.
pub struct PodTemplate<'a> {
    pub pointer: String,
    pub value: &'a Value,
}

impl<'a> PodTemplate<'a> {
    /// The pod spec (`spec` of the template).
    pub fn spec(&self) -> Option<&'a Value> {
        self.value.get("spec")
    }

    /// Labels of the pods this template creates.
    pub fn labels(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
    }

    /// Containers and init containers with their pointers.
    pub fn containers(&self) -> Vec<Container<'a>> {
        let mut found = Vec::new();
        for list in ["containers", "initContainers"] {
            let list_pointer = format!("{}/spec/{list}", self.pointer);
            let Some(items) = self
                .spec()
                .and_then(|spec| spec.get(list))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for (index, value) in items.iter().enumerate() {
                found.push(Container {
                    pointer: pointer::join(&list_pointer, index),
                    value,
                    init: list == "initContainers",
                });
            }
        }
        found
    }
}

pub struct Container<'a> {
    pub pointer: String,
    pub value: &'a Value,
    pub init: bool,
}

impl<'a> Container<'a> {
    pub fn name(&self) -> Option<&'a str> {
        self.value.get("name").and_then(Value::as_str)
    }

    pub fn image(&self) -> Option<&'a str> {
        self.value.get("image").and_then(Value::as_str)
    }

    /// The strings of `command` and `args`.
    pub fn command_line(&self) -> impl Iterator<Item = &'a str> {
        ["command", "args"]
            .into_iter()
            .filter_map(|key| self.value.get(key).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The quantity of an extended resource in limits (or requests).
    pub fn resource(&self, name: &str) -> Option<&'a Value> {
        ["limits", "requests"].into_iter().find_map(|section| {
            self.value
                .get("resources")
                .and_then(|resources| resources.get(section))
                .and_then(|section| section.get(name))
        })
    }
}

/// The workload kinds whose pods may serve a model.
pub fn is_workload_kind(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "LeaderWorkerSet")
}

/// The pod templates of an object: one for Deployments and StatefulSets,
/// the leader and worker templates of a LeaderWorkerSet.
pub fn pod_templates(object: &Object) -> Vec<PodTemplate<'_>> {
    let candidates: &[&str] = match object.kind() {
        "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet" | "Job" => &["/spec/template"],
        "CronJob" => &["/spec/jobTemplate/spec/template"],
        "LeaderWorkerSet" => &[
            "/spec/leaderWorkerTemplate/leaderTemplate",
            "/spec/leaderWorkerTemplate/workerTemplate",
        ],
        _ => &[],
    };
    candidates
        .iter()
        .filter_map(|candidate| {
            object.value.pointer(candidate).map(|value| PodTemplate {
                pointer: (*candidate).to_string(),
                value,
            })
        })
        .collect()
}

/// Why an object counts as an inference workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InferenceReason {
    Server(String),
    Accelerator(String),
    Marker,
}

/// Whether an object is an inference workload, and why (RULES.md).
pub fn inference_reason(object: &Object, policy: &Policy) -> Option<InferenceReason> {
    if !is_workload_kind(object.kind()) {
        return None;
    }
    let detection = &policy.inference;
    let marked =
        |value: Option<&str>| value.is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let templates = pod_templates(object);
    let template_marked = templates.iter().any(|template| {
        ["labels", "annotations"].iter().any(|section| {
            marked(
                template
                    .value
                    .pointer(&format!("/metadata/{section}"))
                    .and_then(|map| map.get(&detection.marker))
                    .and_then(Value::as_str),
            )
        })
    });
    if marked(object.label(&detection.marker))
        || marked(object.annotation(&detection.marker))
        || template_marked
    {
        return Some(InferenceReason::Marker);
    }
    for template in &templates {
        for container in template
            .containers()
            .iter()
            .filter(|container| !container.init)
        {
            let texts = container
                .image()
                .into_iter()
                .chain(container.command_line());
            for text in texts {
                if let Some(server) = detection
                    .servers
                    .iter()
                    .find(|server| server.pattern.is_match(text))
                {
                    return Some(InferenceReason::Server(server.name.clone()));
                }
            }
            if let Some(resource) = detection
                .accelerator_resources
                .iter()
                .find(|resource| container.resource(resource).is_some())
            {
                return Some(InferenceReason::Accelerator(resource.clone()));
            }
        }
    }
    None
}
