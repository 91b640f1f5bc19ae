//! What KServe runs for an InferenceService whose predictor names a
//! ServingRuntime: the runtime's `kserve-container` with the predictor's
//! `model` merged over it, in the runtime's pod spec with the predictor's
//! merged over that.
//!
//! KServe merges with a strategic merge patch (the predictor's fields win,
//! lists with a merge key are merged item by item) and then concatenates
//! the argument lists, runtime first (`MergeRuntimeContainers`,
//! `MergePodSpec` and `ReplacePlaceholders` in kserve
//! `pkg/controller/v1beta1/inferenceservice/utils`). `{{.Name}}` and
//! `{{.Namespace}}` in the runtime's strings are the InferenceService's.

use serde_json::{Map, Value};

use crate::input::object::Object;
use crate::input::pointer::Lookup;

/// The container of a ServingRuntime that serves the model.
const SERVING_CONTAINER: &str = "kserve-container";

/// The fields of a predictor's `model` that select the runtime and the
/// model rather than configure the container.
const MODEL_ONLY_FIELDS: &[&str] = &["modelFormat", "runtime", "storageUri", "protocolVersion"];

/// The pod-level fields a ServingRuntime contributes (`MergePodSpec`).
const RUNTIME_POD_FIELDS: &[&str] = &[
    "nodeSelector",
    "affinity",
    "tolerations",
    "volumes",
    "imagePullSecrets",
];

/// The fields of a predictor that are not pod spec fields.
const PREDICTOR_ONLY_FIELDS: &[&str] = &[
    "model",
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "autoScaling",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "workerSpec",
    "storageUris",
];

/// The runtime a predictor names (`spec.predictor.model.runtime`).
pub fn named_runtime(isvc: &Object) -> Option<&str> {
    if isvc.kind() != "InferenceService" {
        return None;
    }
    isvc.value
        .at("/spec/predictor/model/runtime")
        .and_then(Value::as_str)
}

/// A predictor as KServe deploys it with `runtime` (a ServingRuntime or
/// ClusterServingRuntime): the serving container (with the model's
/// `storageUri` kept, so that the model it serves can be read) and the pod
/// spec around it.
pub struct MergedPredictor {
    pub container: Value,
    pub pod_spec: Value,
}

pub fn merged_predictor(isvc: &Object, runtime: &Object) -> Option<MergedPredictor> {
    let model = isvc.value.at("/spec/predictor/model")?.as_object()?;
    let runtime_spec = runtime.value.get("spec")?;
    let runtime_container =
        runtime_spec
            .get("containers")?
            .as_array()?
            .iter()
            .find(|container| {
                container.get("name").and_then(Value::as_str) == Some(SERVING_CONTAINER)
            })?;
    let name = isvc.name().unwrap_or_default();
    let namespace = isvc.namespace().unwrap_or_default();
    let mut container = replace_placeholders(runtime_container.clone(), name, namespace);
    // The arguments are not merged but appended: the runtime's, then the
    // predictor's.
    let overrides: Map<String, Value> = model
        .iter()
        .filter(|(key, _)| key.as_str() != "args" && !MODEL_ONLY_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    merge(&mut container, &Value::Object(overrides));
    let fields = container.as_object_mut()?;
    if let Some(extra) = model.get("args").and_then(Value::as_array) {
        match fields.get_mut("args").and_then(Value::as_array_mut) {
            Some(args) => args.extend(extra.iter().cloned()),
            None => {
                fields.insert("args".into(), Value::Array(extra.clone()));
            }
        }
    }
    if let Some(uri) = model.get("storageUri") {
        fields.insert("storageUri".into(), uri.clone());
    }
    let mut pod_spec = Value::Object(
        RUNTIME_POD_FIELDS
            .iter()
            .filter_map(|field| {
                runtime_spec
                    .get(*field)
                    .map(|value| (field.to_string(), value.clone()))
            })
            .collect(),
    );
    let predictor = isvc.value.at("/spec/predictor")?.as_object()?;
    let predictor_pod: Map<String, Value> = predictor
        .iter()
        .filter(|(key, _)| !PREDICTOR_ONLY_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    merge(&mut pod_spec, &Value::Object(predictor_pod));
    Some(MergedPredictor {
        container,
        pod_spec,
    })
}

/// The container KServe's well-known LLMInferenceServiceConfig presets
/// merge under an LLMInferenceService's `main` container, for what the
/// rules read of it: vLLM serving `/mnt/models` (where the storage
/// initializer puts `spec.model.uri`) with `--tensor-parallel-size` from
/// `parallelism.tensor` and the words of the container's
/// `VLLM_ADDITIONAL_ARGS` (kserve `config/llmisvcconfig/`
/// `config-llm-template.yaml`, `config-llm-decode-template.yaml`,
/// `config-llm-prefill-template.yaml`).
const PRESET_CONTAINER: &str = "main";
const PRESET_EXTRA_ARGS: &str = "VLLM_ADDITIONAL_ARGS";

/// A single-node part (`/spec/template`, `/spec/prefill/template`, with no
/// `worker` beside it) of an LLMInferenceService whose `main` container
/// keeps the presets' server (it states no command or args of its own), as
/// the presets complete it: the container to read (the model as a
/// `storageUri`, the degree as arguments) and where in the object each
/// part of it is written. Multi-node parts and data or pipeline
/// parallelism run the presets' launch scripts, which are not read.
pub struct PresetServer {
    container: Value,
    /// The pointer of the user's container the server completes.
    pointer: String,
    /// `spec.model.uri`, where the model is named (prefill serves it too).
    model_pointer: String,
    /// Where each argument of the completed container is written.
    arg_pointers: Vec<String>,
}

pub fn llmisvc_preset_server(object: &Object, template_pointer: &str) -> Option<PresetServer> {
    if object.kind() != "LLMInferenceService" {
        return None;
    }
    let part = match template_pointer {
        "/spec/template" => "/spec",
        "/spec/prefill/template" => "/spec/prefill",
        _ => return None,
    };
    if object.value.at(&format!("{part}/worker")).is_some() {
        return None;
    }
    let parallelism = object.value.at(&format!("{part}/parallelism"));
    if ["data", "dataLocal", "pipeline"]
        .iter()
        .any(|field| parallelism.and_then(|p| p.get(*field)).is_some())
    {
        return None;
    }
    let containers = object
        .value
        .at(&format!("{template_pointer}/containers"))?
        .as_array()?;
    let (index, user) = containers.iter().enumerate().find(|(_, container)| {
        container.get("name").and_then(Value::as_str) == Some(PRESET_CONTAINER)
    })?;
    if user.get("command").is_some() || user.get("args").is_some() {
        return None;
    }
    let model_pointer = "/spec/model/uri".to_string();
    let uri = object.value.at(&model_pointer)?.clone();
    let pointer = format!("{template_pointer}/containers/{index}");
    let mut args = Vec::new();
    let mut arg_pointers = Vec::new();
    let degree_pointer = format!("{part}/parallelism/tensor");
    if let Some(degree) = object.value.at(&degree_pointer).and_then(Value::as_u64) {
        args.extend(["--tensor-parallel-size".to_string(), degree.to_string()]);
        arg_pointers.extend([degree_pointer.clone(), degree_pointer]);
    }
    let extra = user
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, var)| var.get("name").and_then(Value::as_str) == Some(PRESET_EXTRA_ARGS));
    if let Some((env_index, var)) = extra {
        if let Some(text) = var.get("value").and_then(Value::as_str) {
            for word in text.split_whitespace() {
                args.push(word.to_string());
                arg_pointers.push(format!("{pointer}/env/{env_index}/value"));
            }
        }
    }
    let mut container = user.clone();
    let fields = container.as_object_mut()?;
    fields.insert(
        "command".into(),
        serde_json::json!(["vllm", "serve", "/mnt/models"]),
    );
    fields.insert("args".into(), serde_json::json!(args));
    fields.insert("storageUri".into(), uri);
    Some(PresetServer {
        container,
        pointer,
        model_pointer,
        arg_pointers,
    })
}

impl PresetServer {
    /// The completed container, as the rules read containers.
    pub fn container(&self) -> crate::k8s::workload::Container<'_> {
        crate::k8s::workload::Container {
            pointer: self.pointer.clone(),
            value: &self.container,
            init: false,
        }
    }

    /// Where a pointer into the completed container is written in the
    /// object: the model at `spec.model.uri`, an argument where it came
    /// from, the command (the presets') at the model.
    pub fn place(&self, pointer: &str) -> String {
        let Some(rest) = pointer.strip_prefix(self.pointer.as_str()) else {
            return pointer.to_string();
        };
        if rest == "/storageUri" || rest.starts_with("/command") {
            return self.model_pointer.clone();
        }
        if let Some(index) = rest.strip_prefix("/args/") {
            return index
                .parse::<usize>()
                .ok()
                .and_then(|index| self.arg_pointers.get(index))
                .cloned()
                .unwrap_or_else(|| self.model_pointer.clone());
        }
        pointer.to_string()
    }
}

/// The merge key of the lists a strategic merge patch merges item by item
/// (k8s.io/api core/v1 `patchMergeKey` tags); other lists are replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "env" | "volumes" | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// `overrides` merged into `base` as a strategic merge patch does: maps
/// key by key, keyed lists item by item, everything else replaced.
fn merge(base: &mut Value, overrides: &Value) {
    let (Some(base), Some(overrides)) = (base.as_object_mut(), overrides.as_object()) else {
        return;
    };
    for (key, value) in overrides {
        match (base.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge(existing, value),
            (Some(Value::Array(existing)), Value::Array(items)) => match merge_key(key) {
                Some(merge_key) => {
                    for item in items {
                        let id = item.get(merge_key);
                        match existing
                            .iter_mut()
                            .find(|candidate| id.is_some() && candidate.get(merge_key) == id)
                        {
                            Some(candidate) => merge(candidate, item),
                            None => existing.push(item.clone()),
                        }
                    }
                }
                None => *existing = items.clone(),
            },
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// KServe renders the runtime container as a Go template over the
/// InferenceService's metadata; the fields runtimes use are its name and
/// namespace.
fn replace_placeholders(value: Value, name: &str, namespace: &str) -> Value {
    match value {
        Value::String(text) if text.contains("{{") => Value::String(
            text.replace("{{.Name}}", name)
                .replace("{{ .Name }}", name)
                .replace("{{.Namespace}}", namespace)
                .replace("{{ .Namespace }}", namespace),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| replace_placeholders(item, name, namespace))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, item)| (key, replace_placeholders(item, name, namespace)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::loader::parse_source;
    use crate::input::source::SourceFile;

    fn objects(text: &str) -> Vec<Object> {
        parse_source(SourceFile::new("t.yaml", text.to_string())).objects
    }

    #[test]
    fn the_predictor_is_merged_over_the_runtime_as_kserve_does() {
        let input = objects(
            "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: vllm}\nspec:\n  nodeSelector: {pool: gpu}\n  tolerations: [{key: a}]\n  containers:\n  - name: kserve-container\n    image: vllm/vllm-openai:v0.8.5\n    args: [--model=/mnt/models, '--served-model-name={{.Name}}']\n    env: [{name: A, value: runtime}, {name: B, value: runtime}]\n    resources: {limits: {cpu: '4', nvidia.com/gpu: '1'}}\n---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: llama, namespace: serving}\nspec:\n  predictor:\n    minReplicas: 1\n    nodeSelector: {zone: a}\n    tolerations: [{key: b}]\n    model:\n      runtime: vllm\n      modelFormat: {name: huggingface}\n      storageUri: hf://meta-llama/Llama-3.1-8B\n      args: [--tensor-parallel-size=2]\n      env: [{name: B, value: predictor}]\n      resources: {limits: {nvidia.com/gpu: '2'}}\n",
        );
        let (runtime, isvc) = (&input[0], &input[1]);
        assert_eq!(named_runtime(isvc), Some("vllm"));
        let merged = merged_predictor(isvc, runtime).expect("merged");
        let container = &merged.container;
        assert_eq!(
            container["args"],
            serde_json::json!([
                "--model=/mnt/models",
                "--served-model-name=llama",
                "--tensor-parallel-size=2"
            ])
        );
        assert_eq!(
            container["env"],
            serde_json::json!([{"name": "A", "value": "runtime"}, {"name": "B", "value": "predictor"}])
        );
        assert_eq!(
            container["resources"]["limits"],
            serde_json::json!({"cpu": "4", "nvidia.com/gpu": "2"})
        );
        assert_eq!(container["image"], "vllm/vllm-openai:v0.8.5");
        assert_eq!(container["storageUri"], "hf://meta-llama/Llama-3.1-8B");
        assert!(container.get("modelFormat").is_none());
        assert_eq!(
            merged.pod_spec["nodeSelector"],
            serde_json::json!({"pool": "gpu", "zone": "a"})
        );
        // Tolerations have no merge key: the predictor's replace them.
        assert_eq!(
            merged.pod_spec["tolerations"],
            serde_json::json!([{"key": "b"}])
        );
        assert!(merged.pod_spec.get("minReplicas").is_none());
    }
}
