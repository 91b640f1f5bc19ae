//! Pod templates, containers and the "inference workload" test of RULES.md.

use crate::input::pointer::Lookup;
use std::borrow::Cow;

use serde_json::Value;

use crate::input::object::Object;
use crate::input::pointer;
use crate::policy::Policy;

/// A pod template inside a workload: where it is, its pod spec and pod
/// metadata (which KServe's inline pod specs do not have), what its pods
/// do and how many of them start at once (rules/workloads.yaml).
pub struct PodTemplate<'a> {
    /// Where findings about the template as a whole are reported: the
    /// template object (`/spec/template`), or the inline pod spec.
    /// (Borrowed from the layouts in rules/ unless the template sits in a
    /// list: these are built for every template of every object, by many
    /// rules.)
    pub pointer: Cow<'static, str>,
    /// The pod spec's pointer and value.
    pub spec_pointer: Cow<'static, str>,
    spec_value: &'a Value,
    pub metadata: Option<&'a Value>,
    /// What the pods do (`leader`, `worker`, `head`, `predictor`…), for
    /// findings; empty for a workload's only template.
    pub role: &'static str,
    /// How many pods of this template run at once, and where the count
    /// is written (to fix it), when it is one field.
    pub pods: PodCount,
    /// Container-like objects of the spec besides its containers
    /// (KServe's `model`, merged into the runtime's container).
    extra_containers: &'static [String],
}

/// Pods a template starts at once: `replicas × perReplica − less`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodCount {
    pub count: i64,
    /// The most pods the kind's own autoscaling may start (KServe's
    /// `maxReplicas`): `count` when it has none.
    pub most: i64,
    /// The replica field, when the count is that field alone.
    pub replicas_pointer: Option<Cow<'static, str>>,
}

impl<'a> PodTemplate<'a> {
    /// The pod spec.
    pub fn spec(&self) -> Option<&'a Value> {
        Some(self.spec_value)
    }

    /// The pod spec's `volumes`.
    pub fn volumes(&self) -> impl Iterator<Item = &'a Value> {
        self.spec_value
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }

    /// Labels of the pods this template creates.
    pub fn labels(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.metadata?.get("labels").and_then(Value::as_object)
    }

    /// Annotations of the pods this template creates.
    pub fn annotations(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.metadata?.get("annotations").and_then(Value::as_object)
    }

    /// Containers and init containers with their pointers.
    /// The containers that run for the pod's life: `containers`, without
    /// the init containers (a sidecar declared as an init container with
    /// `restartPolicy: Always` is left out too).
    pub fn main_containers(&self) -> Vec<Container<'a>> {
        let mut containers = self.containers();
        containers.retain(|container| !container.init);
        containers
    }

    pub fn containers(&self) -> Vec<Container<'a>> {
        let mut found = Vec::new();
        for extra in self.extra_containers {
            if let Some(value) = self.spec().and_then(|spec| spec.get(extra.as_str())) {
                found.push(Container {
                    pointer: pointer::join(&self.spec_pointer, extra),
                    value,
                    init: false,
                });
            }
        }
        for list in ["containers", "initContainers"] {
            let list_pointer = format!("{}/{list}", self.spec_pointer);
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

    /// The container's declared `ports`.
    pub fn declared_ports(&self) -> &'a [Value] {
        self.value
            .get("ports")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the container declares `number` as a containerPort.
    pub fn declares_port(&self, number: i64) -> bool {
        self.declared_ports()
            .iter()
            .any(|port| port.get("containerPort").and_then(Value::as_i64) == Some(number))
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

/// Whether the object is a fragment for kustomize or `kubectl patch`
/// rather than a whole object: an object of a file a kustomization names
/// as a patch, a workload whose containers have no image, an HPA without
/// scaleTargetRef. What it states may be only part of what runs (a patch's
/// args beside the base's resources), so rules that compare what it states
/// stay quiet on it, and so do the rules of [`may_be_completed`].
pub fn is_fragment(object: &Object) -> bool {
    // A file a kustomization names as a patch holds only what it changes.
    if object.source.kustomize_patch {
        return true;
    }
    if object.kind() == "HorizontalPodAutoscaler" {
        return object.value.at("/spec/scaleTargetRef").is_none();
    }
    // A container without an image is completed elsewhere; so is a
    // template with KServe's `model`, merged into its ServingRuntime's
    // container (image, volumes and all) by the controller.
    pod_templates(object).iter().any(|template| {
        template
            .containers()
            .iter()
            .any(|container| container.value.get("image").is_none())
    })
}

/// Whether what the object lacks may be added before pods run: a
/// [fragment](is_fragment), or a kind whose controller merges it with
/// presets (KServe's LLMInferenceService over the well-known
/// LLMInferenceServiceConfigs, which add probes, /dev/shm and a model
/// cache to the `main` container). Rules that report an absence (a volume,
/// a probe) stay quiet on it; what it states is still what runs, since the
/// object's fields override the presets'.
pub fn may_be_completed(object: &Object) -> bool {
    is_fragment(object)
        || layouts()
            .merged_with_presets
            .iter()
            .any(|kind| kind == object.kind())
}

/// Whether a KServe InferenceService's predictor is a `model` that KServe
/// serves with the runtime it selects for the model format (no `runtime`
/// named, no image of its own): that runtime adds an image and the model
/// name, so the predictor's own args, resources and node selector are the
/// whole server configuration a rule about the model's size needs.
pub fn served_by_default_runtime(object: &Object) -> bool {
    object.kind() == "InferenceService"
        && object
            .value
            .at("/spec/predictor/model/modelFormat/name")
            .is_some()
        && object.value.at("/spec/predictor/model/runtime").is_none()
        && object.value.at("/spec/predictor/model/image").is_none()
}

/// The annotation that chooses how KServe deploys an InferenceService.
const KSERVE_MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";

/// KServe's deploy mode of an InferenceService as its annotation states
/// it; without one the cluster's default applies.
pub fn kserve_mode(object: &Object) -> Option<&str> {
    object.annotation(KSERVE_MODE_ANNOTATION)
}

/// KServe's deploy mode of an InferenceService when it is raw (Standard):
/// a Deployment and an HPA per component, no Knative.
pub fn kserve_raw_mode(object: &Object) -> Option<&str> {
    kserve_mode(object).filter(|mode| matches!(*mode, "RawDeployment" | "Standard"))
}

/// The workload kinds whose pods may serve a model: every kind of
/// rules/workloads.yaml but those that run to completion or on every node.
pub fn is_workload_kind(kind: &str) -> bool {
    !matches!(kind, "Job" | "CronJob" | "DaemonSet" | "ReplicaSet")
        && layouts().kinds.contains_key(kind)
}

/// One template's place in a kind (rules/workloads.yaml).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Layout {
    spec: String,
    metadata: Option<String>,
    pointer: Option<String>,
    each: Option<String>,
    #[serde(default)]
    role: String,
    replicas: Option<String>,
    /// Where the count is when `replicas` is absent (an LLMInferenceService
    /// with `scaling` has no `replicas`: its autoscaler's minimum).
    replicas_else: Option<String>,
    /// Pointer of the most replicas the kind's own autoscaler may set.
    max_replicas: Option<String>,
    /// Pointer (in the object) of a boolean that turns that autoscaler on.
    max_replicas_if: Option<String>,
    default: Option<i64>,
    per_replica: Option<String>,
    per_replica_less: Option<i64>,
    #[serde(default)]
    containers: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Layouts {
    #[serde(default)]
    merged_with_presets: Vec<String>,
    kinds: std::collections::BTreeMap<String, Vec<Layout>>,
}

const LAYOUTS: &str = include_str!("../../rules/workloads.yaml");

/// rules/workloads.yaml, parsed once. A unit test parses it too, so a
/// broken file fails the tests instead of silently knowing no kind.
fn layouts() -> &'static Layouts {
    static PARSED: std::sync::LazyLock<Layouts> =
        std::sync::LazyLock::new(|| parse_layouts().unwrap_or_default());
    &PARSED
}

fn parse_layouts() -> Result<Layouts, String> {
    let loaded = crate::input::loader::parse_source(crate::input::source::SourceFile::new(
        "rules/workloads.yaml",
        LAYOUTS.to_string(),
    ));
    if let Some(problem) = loaded.problems.first() {
        return Err(format!("{problem:?}"));
    }
    let value = loaded
        .documents
        .into_iter()
        .next()
        .map(|document| document.value)
        .ok_or_else(|| "rules/workloads.yaml is empty".to_string())?;
    serde_json::from_value(value).map_err(|error| error.to_string())
}

/// The pod templates of an object, in the order of rules/workloads.yaml
/// (lists expanded item by item); none for other kinds.
pub fn pod_templates(object: &Object) -> Vec<PodTemplate<'_>> {
    let Some(layouts) = layouts().kinds.get(object.kind()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for layout in layouts {
        match &layout.each {
            None => found.extend(template_at(&object.value, &object.value, "", layout)),
            Some(list) => {
                let Some(items) = object.value.at(list).and_then(Value::as_array) else {
                    continue;
                };
                for (index, item) in items.iter().enumerate() {
                    found.extend(template_at(
                        &object.value,
                        item,
                        &pointer::join(list, index),
                        layout,
                    ));
                }
            }
        }
    }
    found
}

/// `at` under `base`: the layout's own string when there is no base.
fn prefixed(base: &str, at: &'static str) -> Cow<'static, str> {
    if base.is_empty() {
        Cow::Borrowed(at)
    } else {
        Cow::Owned(format!("{base}{at}"))
    }
}

/// The template of `layout` inside `root` (the object, or the item of a
/// list at `base`, which prefixes every pointer read in it).
fn template_at<'a>(
    object: &Value,
    root: &'a Value,
    base: &str,
    layout: &'static Layout,
) -> Option<PodTemplate<'a>> {
    let spec_value = root.at(&layout.spec).filter(|spec| spec.is_object())?;
    let metadata = layout.metadata.as_deref().and_then(|at| root.at(at));
    let pointer = match (&layout.pointer, &layout.metadata) {
        (Some(at), _) => prefixed(base, at),
        (None, Some(at)) => prefixed(base, at.strip_suffix("/metadata").unwrap_or(at)),
        (None, None) => prefixed(base, &layout.spec),
    };
    let number = |at: &Option<String>, default: i64| {
        at.as_deref()
            .and_then(|at| root.at(at))
            .and_then(Value::as_i64)
            .unwrap_or(default)
    };
    let replicas = number(
        &layout.replicas,
        number(&layout.replicas_else, layout.default.unwrap_or(1)),
    );
    let per_replica = number(&layout.per_replica, 1) - layout.per_replica_less.unwrap_or(0);
    let count = replicas.saturating_mul(per_replica.max(0));
    let autoscaled = layout
        .max_replicas_if
        .as_deref()
        .is_none_or(|at| object.at(at).and_then(Value::as_bool) == Some(true));
    let most = if autoscaled {
        number(&layout.max_replicas, 0).saturating_mul(per_replica.max(0))
    } else {
        0
    }
    .max(count);
    let pods = PodCount {
        count,
        most,
        replicas_pointer: match (&layout.replicas, &layout.per_replica) {
            // Counted from `replicasElse`: the autoscaler's minimum, not a
            // replica field to set.
            (Some(at), None) if layout.replicas_else.is_none() || root.at(at).is_some() => {
                Some(prefixed(base, at))
            }
            _ => None,
        },
    };
    Some(PodTemplate {
        pointer,
        spec_pointer: prefixed(base, &layout.spec),
        spec_value,
        metadata,
        role: layout.role.as_str(),
        pods,
        extra_containers: &layout.containers,
    })
}

/// Where a kind keeps its pod templates (the parent of the pods'
/// metadata; fixed places only, not lists): the webhook's and the audit's
/// field lists.
pub fn template_pointers(kind: &str) -> Vec<&'static str> {
    layouts()
        .kinds
        .get(kind)
        .into_iter()
        .flatten()
        .filter(|layout| layout.each.is_none())
        .filter_map(|layout| layout.metadata.as_deref())
        .filter_map(|metadata| metadata.strip_suffix("/metadata"))
        .collect()
}

/// Why an object counts as an inference workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InferenceReason {
    Server(String),
    Accelerator(String),
    Marker,
}

impl InferenceReason {
    /// The signal in a few words, as findings record it.
    pub fn describe(&self, policy: &Policy) -> String {
        match self {
            Self::Server(server) => format!("runs {server}"),
            Self::Accelerator(resource) => format!("requests {resource}"),
            Self::Marker => format!("marked {}: \"true\"", policy.inference.marker),
        }
    }
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
                    .metadata
                    .and_then(|metadata| metadata.get(*section))
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
        for container in &template.main_containers() {
            let texts = container
                .image()
                .into_iter()
                .chain(container.command_line());
            let reason = texts
                .flat_map(|text| {
                    detection
                        .servers
                        .iter()
                        .find(|server| server.pattern.is_match(text))
                })
                .next()
                .map(|server| InferenceReason::Server(server.name.clone()))
                .or_else(|| {
                    detection
                        .accelerator_resources
                        .iter()
                        .find(|resource| container.resource(resource).is_some())
                        .map(|resource| InferenceReason::Accelerator(resource.clone()))
                });
            let Some(reason) = reason else {
                continue;
            };
            // The Inference Extension's endpoint picker names its pool,
            // often after the model server (`--pool-name vllm-llama3`): it
            // routes to servers and is not one. Asked only of a container
            // that looks like a server, since it splits the command line.
            let picker = crate::k8s::serving::container_flag(
                container,
                &policy.serving.endpoint_picker.pool_flags,
            )
            .is_some();
            if !picker {
                return Some(reason);
            }
        }
    }
    None
}

/// A container's environment variable with a literal value.
pub fn env_value<'a>(container: &Container<'a>, name: &str) -> Option<(usize, &'a str)> {
    container
        .value
        .get("env")
        .and_then(Value::as_array)?
        .iter()
        .enumerate()
        .find_map(|(index, entry)| {
            (entry.get("name").and_then(Value::as_str) == Some(name))
                .then(|| {
                    entry
                        .get("value")
                        .and_then(Value::as_str)
                        .map(|value| (index, value))
                })
                .flatten()
        })
}

/// Expand Kubernetes `$(VAR)` references from the container's own env.
pub fn expand_references(container: &Container<'_>, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env_value(container, name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The kind of storage behind a volume.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// An emptyDir on the node's boot disk.
    NodeDisk,
    /// An emptyDir with `medium: Memory` (tmpfs), with its sizeLimit.
    Memory { size_limit: Option<f64> },
    /// Storage shared beyond the pod: PVC, CSI (gcsfuse…), NFS, hostPath.
    Shared(&'static str),
    /// Anything else (configMap, secret, projected…).
    Other,
}

/// A volume mounted into a container.
#[derive(Debug, Clone)]
pub struct Mount<'a> {
    pub mount_path: &'a str,
    pub volume_name: &'a str,
    pub storage: Storage,
    /// Pointer of the volume in the object.
    pub volume_pointer: Option<String>,
}

/// Classify a pod volume.
pub fn storage_of(volume: &Value) -> Storage {
    if let Some(empty_dir) = volume.get("emptyDir") {
        let memory = empty_dir.get("medium").and_then(Value::as_str) == Some("Memory");
        let size_limit = empty_dir
            .get("sizeLimit")
            .and_then(crate::input::quantity::from_value);
        return if memory {
            Storage::Memory { size_limit }
        } else {
            Storage::NodeDisk
        };
    }
    for (key, label) in [
        ("persistentVolumeClaim", "PersistentVolumeClaim"),
        ("ephemeral", "generic ephemeral volume"),
        ("csi", "CSI volume"),
        ("nfs", "NFS"),
        ("hostPath", "hostPath"),
        ("gcePersistentDisk", "persistent disk"),
        ("awsElasticBlockStore", "EBS volume"),
        ("azureDisk", "Azure disk"),
        ("azureFile", "Azure file share"),
        ("cephfs", "CephFS"),
        ("glusterfs", "GlusterFS"),
    ] {
        if volume.get(key).is_some() {
            return Storage::Shared(label);
        }
    }
    Storage::Other
}

/// The volume mounts of a container, with the kind of storage behind each.
pub fn mounts<'a>(template: &PodTemplate<'a>, container: &Container<'a>) -> Vec<Mount<'a>> {
    let volumes = template
        .spec()
        .and_then(|spec| spec.get("volumes"))
        .and_then(Value::as_array);
    container
        .value
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|mount| {
            let mount_path = mount.get("mountPath").and_then(Value::as_str)?;
            let volume_name = mount.get("name").and_then(Value::as_str)?;
            let found = volumes.and_then(|volumes| {
                volumes.iter().enumerate().find(|(_, volume)| {
                    volume.get("name").and_then(Value::as_str) == Some(volume_name)
                })
            });
            Some(Mount {
                mount_path,
                volume_name,
                storage: found.map_or(Storage::Other, |(_, volume)| storage_of(volume)),
                volume_pointer: found.map(|(index, _)| {
                    pointer::join(&format!("{}/volumes", template.spec_pointer), index)
                }),
            })
        })
        .collect()
}

/// The mount that holds `path` (the longest mount path that is a prefix).
pub fn mount_for<'m, 'a>(mounts: &'m [Mount<'a>], path: &str) -> Option<&'m Mount<'a>> {
    mounts
        .iter()
        .filter(|mount| {
            let prefix = mount.mount_path.trim_end_matches('/');
            path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty()
        })
        .max_by_key(|mount| mount.mount_path.len())
}

/// Accelerator chips a container asks for (limits, else requests).
pub fn accelerator_chips(container: &Container<'_>, resources: &[String]) -> f64 {
    resources
        .iter()
        .filter_map(|resource| container.resource(resource))
        .filter_map(crate::input::quantity::from_value)
        .sum()
}

/// Chips one replica takes: a pod, or a LeaderWorkerSet's group of `size`
/// pods (the leader and size - 1 workers).
pub fn chips_per_replica(
    target: &Object,
    templates: &[PodTemplate<'_>],
    resources: &[String],
) -> f64 {
    let chips_of = |template: &PodTemplate<'_>| -> f64 {
        template
            .main_containers()
            .iter()
            .map(|container| accelerator_chips(container, resources))
            .sum()
    };
    if target.kind() != "LeaderWorkerSet" {
        return templates.first().map_or(0.0, chips_of);
    }
    let size = target
        .value
        .at("/spec/leaderWorkerTemplate/size")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let find = |suffix: &str| {
        templates
            .iter()
            .find(|template| template.pointer.ends_with(suffix))
    };
    let worker = find("workerTemplate").map_or(0.0, chips_of);
    let leader = find("leaderTemplate").map_or(worker, chips_of);
    leader + worker * (size - 1.0).max(0.0)
}

/// The operations that add a volume to a pod template and mount it in one
/// of its containers, under the first of `names` the pod does not use yet.
pub fn mount_new_volume(
    template: &PodTemplate<'_>,
    container: &Container<'_>,
    names: &[&str],
    source: (&str, Value),
    mount_path: &str,
) -> Option<Vec<json_patch::PatchOperation>> {
    use crate::input::pointer::op;
    let spec_pointer = template.spec_pointer.clone();
    let volumes = template
        .spec()
        .and_then(|spec| spec.get("volumes"))
        .and_then(Value::as_array);
    let taken = |name: &str| {
        volumes.is_some_and(|volumes| {
            volumes
                .iter()
                .any(|volume| volume.get("name").and_then(Value::as_str) == Some(name))
        })
    };
    let name = names.iter().copied().find(|name| !taken(name))?;
    let mut volume = serde_json::Map::new();
    volume.insert("name".into(), Value::String(name.to_string()));
    volume.insert(source.0.to_string(), source.1);
    let volume = Value::Object(volume);
    let add_volume = match volumes {
        Some(_) => op::add(
            &pointer::join(&format!("{spec_pointer}/volumes"), "-"),
            volume,
        )?,
        None => op::add(
            &format!("{spec_pointer}/volumes"),
            Value::Array(vec![volume]),
        )?,
    };
    Some(vec![add_volume, add_mount(container, name, mount_path)?])
}

/// The operations that give a container a memory-backed /dev/shm of its
/// own volume (`dshm`, or a free variant of the name).
pub fn mount_new_shm(
    template: &PodTemplate<'_>,
    container: &Container<'_>,
    size_limit: &str,
) -> Option<Vec<json_patch::PatchOperation>> {
    mount_new_volume(
        template,
        container,
        &["dshm", "infergate-dshm", "infergate-dshm-1"],
        (
            "emptyDir",
            serde_json::json!({"medium": "Memory", "sizeLimit": size_limit}),
        ),
        "/dev/shm",
    )
}

/// The operation that mounts an existing volume of the pod in a container.
pub fn add_mount(
    container: &Container<'_>,
    volume: &str,
    mount_path: &str,
) -> Option<json_patch::PatchOperation> {
    use crate::input::pointer::op;
    let mount = serde_json::json!({"name": volume, "mountPath": mount_path});
    match container.value.get("volumeMounts") {
        Some(Value::Array(_)) => op::add(&format!("{}/volumeMounts/-", container.pointer), mount),
        _ => op::add(
            &format!("{}/volumeMounts", container.pointer),
            Value::Array(vec![mount]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    /// An object of a file named `t`, as the loader makes it.
    pub(super) fn test_object(value: Value) -> Object {
        Object::from_value(
            value,
            crate::input::source::SourceFile::new("t", String::new()),
            0,
            String::new(),
            Default::default(),
        )
        .expect("object")
    }

    #[test]
    fn references_expand_from_the_container_env() {
        let value = json!({"env": [{"name": "MODEL_ID", "value": "meta-llama/Llama-3.1-70B"}]});
        let container = Container {
            pointer: String::new(),
            value: &value,
            init: false,
        };
        assert_eq!(
            expand_references(&container, "--model=$(MODEL_ID) $(UNKNOWN) $(x"),
            "--model=meta-llama/Llama-3.1-70B $(UNKNOWN) $(x"
        );
    }

    #[test]
    fn serving_images_commands_and_accelerators_are_recognised() {
        let policy = Policy::built_in().expect("policy");
        let deployment = |container: Value| {
            test_object(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                    "spec": {"template": {"spec": {"containers": [container]}}}}),
            )
        };
        let cases = [
            (
                json!({"image": "$(IMAGE)", "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"]}),
                "runs vLLM",
            ),
            (
                json!({"image": "public.ecr.aws/data-on-eks/neuron-sdk2.20-vllm0.5.0-neuron:v8"}),
                "runs vLLM",
            ),
            (
                json!({"image": "lmsysorg/sglang:v0.4", "command": ["python3", "-m", "sglang.launch_server"]}),
                "runs SGLang",
            ),
            (
                json!({"image": "ghcr.io/huggingface/text-generation-inference:3", "command": ["text-generation-launcher"]}),
                "runs Text Generation Inference",
            ),
            (
                json!({"image": "nvcr.io/nvidia/tritonserver:24.08-trtllm-python-py3", "command": ["tritonserver"]}),
                "runs Triton Inference Server",
            ),
            (
                json!({"image": "openmmlab/lmdeploy:latest", "command": ["lmdeploy", "serve", "api_server"]}),
                "runs LMDeploy",
            ),
            (
                json!({"image": "nvcr.io/nvidia/tensorrt-llm/release:0.21", "command": ["trtllm-serve"]}),
                "runs TensorRT-LLM",
            ),
            (
                json!({"image": "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3"}),
                "runs NVIDIA NIM",
            ),
            (
                json!({"image": "quay.io/rh-aiservices-bu/deepsparse-openai-ubi9:0.2"}),
                "runs DeepSparse",
            ),
            (
                json!({"image": "intel/redhat-ai-services:1.20", "resources": {"limits": {"habana.ai/gaudi": 1}}}),
                "requests habana.ai/gaudi",
            ),
        ];
        for (container, expected) in cases {
            let reason = inference_reason(&deployment(container.clone()), &policy)
                .map(|reason| reason.describe(&policy));
            assert_eq!(reason.as_deref(), Some(expected), "{container}");
        }
        // A word that contains a server's name is not the server.
        let animation = json!({"image": "example.com/animation-renderer:1", "command": ["nimbus"]});
        assert!(inference_reason(&deployment(animation), &policy).is_none());
    }

    #[test]
    fn mounts_are_matched_by_longest_prefix() {
        let mounts = vec![
            Mount {
                mount_path: "/data",
                volume_name: "a",
                storage: Storage::NodeDisk,
                volume_pointer: None,
            },
            Mount {
                mount_path: "/data/cache/",
                volume_name: "b",
                storage: Storage::Shared("NFS"),
                volume_pointer: None,
            },
        ];
        assert_eq!(
            mount_for(&mounts, "/data/cache/xla").map(|m| m.volume_name),
            Some("b")
        );
        assert_eq!(
            mount_for(&mounts, "/data/other").map(|m| m.volume_name),
            Some("a")
        );
        assert_eq!(mount_for(&mounts, "/datax").map(|m| m.volume_name), None);
    }
}

#[cfg(test)]
mod layout_tests {
    use super::tests::test_object;
    use super::*;

    #[test]
    fn the_layouts_parse_and_name_known_kinds() {
        let layouts = parse_layouts().expect("rules/workloads.yaml");
        for kind in [
            "Deployment",
            "LeaderWorkerSet",
            "RayService",
            "InferenceService",
        ] {
            assert!(layouts.kinds.contains_key(kind), "{kind}");
        }
        for kind in &layouts.merged_with_presets {
            assert!(layouts.kinds.contains_key(kind), "{kind}");
        }
    }

    #[test]
    fn llm_inference_service_parts_count_as_kserve_deploys_them() {
        let object = test_object(
            serde_json::json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "LLMInferenceService",
                "metadata": {"name": "l"},
                "spec": {"replicas": 2, "scaling": {"maxReplicas": 5},
                         "parallelism": {"pipeline": 3},
                         "template": {"containers": [{"name": "main"}]},
                         "worker": {"containers": [{"name": "main"}]},
                         "prefill": {"template": {"containers": [{"name": "main"}]}}}}),
        );
        let counts: Vec<(&str, i64, i64)> = pod_templates(&object)
            .iter()
            .map(|t| (t.role, t.pods.count, t.pods.most))
            .collect();
        // Each replica is a LeaderWorkerSet group of `pipeline` pods, the
        // template its leader; the prefill part has its own replicas.
        assert_eq!(
            counts,
            [
                ("decode pod", 2, 5),
                ("decode worker", 4, 10),
                ("prefill pod", 1, 1)
            ]
        );
        assert!(may_be_completed(&object));
        // With `scaling` instead of `replicas`, its minimum runs.
        let mut scaled = object.value.clone();
        scaled["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("replicas");
        scaled["spec"]["scaling"]["minReplicas"] = serde_json::json!(3);
        let scaled = test_object(scaled);
        assert_eq!(pod_templates(&scaled)[0].pods.count, 3);
        assert_eq!(pod_templates(&scaled)[0].pods.replicas_pointer, None);
    }

    #[test]
    fn ray_worker_groups_count_replicas_times_hosts() {
        let object = test_object(
            serde_json::json!({"apiVersion": "ray.io/v1", "kind": "RayCluster",
                "metadata": {"name": "r"},
                "spec": {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "x"}]}}},
                         "workerGroupSpecs": [
                            {"replicas": 2, "numOfHosts": 4, "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}},
                            {"template": {"spec": {"containers": [{"name": "v", "image": "x"}]}}}]}}),
        );
        let templates = pod_templates(&object);
        let counts: Vec<(&str, i64, Option<String>)> = templates
            .iter()
            .map(|t| {
                (
                    t.role,
                    t.pods.count,
                    t.pods.replicas_pointer.as_deref().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("head", 1, None),
                ("worker", 8, None),
                // replicas defaults to 0 in the CRD
                ("worker", 0, None),
            ]
        );
        // Ray's maxReplicas counts only with its autoscaler on.
        assert_eq!(templates[1].pods.most, 8);
        let mut autoscaled = object.value.clone();
        autoscaled["spec"]["enableInTreeAutoscaling"] = serde_json::json!(true);
        autoscaled["spec"]["workerGroupSpecs"][0]["maxReplicas"] = serde_json::json!(5);
        let autoscaled = test_object(autoscaled);
        assert_eq!(pod_templates(&autoscaled)[1].pods.most, 20);
        assert_eq!(templates[1].pointer, "/spec/workerGroupSpecs/0/template");
        assert_eq!(
            templates[1].containers()[0].pointer,
            "/spec/workerGroupSpecs/0/template/spec/containers/0"
        );
    }
}
