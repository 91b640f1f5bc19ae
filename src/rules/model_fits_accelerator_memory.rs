use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::pools::required_labels;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::kserve;
use crate::k8s::model::{self, command_words};
use crate::k8s::serving::{self, Degree, Reading};
use crate::k8s::workload::{self, accelerator_chips, env_value, pod_templates, Container};
use crate::policy::{AcceleratorKind, Accelerators, Policy};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks that a model server's weights fit the accelerator memory it
    /// shards them over, with room left for the KV cache:
    ///
    /// weights ≤ accelerators × memory per accelerator × the server's
    /// memory fraction × (1 − `accelerators.kvCacheMinimumFraction`)
    ///
    /// - the weights: the model's size as `hf-home-shm-for-large-models`
    ///   reads it (the annotation `infergate.dev/model-size`, the
    ///   catalogue in rules/models.yaml, or the parameter count in the
    ///   name with its precision hint, `-FP8`, `-AWQ`, `-int4`), at the
    ///   precision a `--quantization` or `--dtype` flag loads it when
    ///   that is smaller (`accelerators.quantization`);
    /// - the accelerators the weights are split over: the server's tensor
    ///   × pipeline parallel degree (data parallel replicas each hold the
    ///   whole model), across a LeaderWorkerSet group too; for TGI, which
    ///   shards over every GPU it sees, the container's GPUs;
    /// - the memory per accelerator: from the node labels the pod selects
    ///   (`cloud.google.com/gke-accelerator`,
    ///   `cloud.google.com/gke-tpu-accelerator`, `nvidia.com/gpu.product`,
    ///   instance types) through `accelerators.catalogue` (H100 80 GB, H200
    ///   141 GB, A100 40/80 GB, L4 24 GB, A10G 24 GB, T4 16 GB, TPU v5e 16
    ///   GiB, v5p 95 GiB, v6e 32 GiB…, each with its datasheet). A pod
    ///   that selects no known accelerator is not checked;
    /// - the memory fraction: vLLM's `--gpu-memory-utilization` (default
    ///   0.9), SGLang's `--mem-fraction-static`, TGI's
    ///   `--cuda-memory-fraction` (default 1.0).
    ///
    /// A KServe InferenceService whose predictor is a `model` of the
    /// Hugging Face format, with no runtime named, is checked as the vLLM
    /// server KServe's huggingface runtime starts for it (its vLLM backend,
    /// tensor parallel 1 unless the args say otherwise); its model may be a
    /// `storageUri` on the Hub (`hf://ORG/MODEL`). A predictor naming a
    /// ServingRuntime (or ClusterServingRuntime) that the input holds is
    /// checked as KServe deploys it: the runtime's `kserve-container` with
    /// the predictor's `model` merged over it (arguments concatenated,
    /// resources and env merged) in the runtime's pod spec merged with the
    /// predictor's (node selectors, affinity). A runtime that is not in the
    /// input leaves the predictor alone: its arguments are unknown.
    ///
    /// A KServe LLMInferenceService whose `main` container states no
    /// command or args runs the server of KServe's well-known presets:
    /// vLLM serving `spec.model.uri` with `parallelism.tensor` (and the
    /// words of `VLLM_ADDITIONAL_ARGS`); it is checked as such, single-node
    /// parts only (multi-node and data parallel parts run the presets'
    /// launch scripts).
    ///
    /// ## Why is this bad?
    /// The pod is scheduled, pulls a large image, downloads the weights
    /// (tens of minutes for a large model), and then the server fails:
    /// CUDA out of memory while loading, or vLLM's "No available memory for
    /// the cache blocks" when the weights fit but nothing is left for the
    /// KV cache. It restarts and downloads again, on GPUs that cost the
    /// most of anything in the cluster.
    ///
    /// ## Example
    /// ```yaml
    /// nodeSelector:
    ///   cloud.google.com/gke-accelerator: nvidia-a100-80gb
    /// containers:
    /// - name: vllm
    ///   image: vllm/vllm-openai:v0.8.5
    ///   args: ["--model", "mistralai/Mixtral-8x22B-Instruct-v0.1", "--tensor-parallel-size", "2"]
    ///   resources:
    ///     limits: {nvidia.com/gpu: 2}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   args: ["--model", "mistralai/Mixtral-8x22B-Instruct-v0.1", "--tensor-parallel-size", "8"]
    ///   resources:
    ///     limits: {nvidia.com/gpu: 8}
    /// ```
    /// or a quantized checkpoint (`-FP8`, `-AWQ`) that fits.
    ///
    /// ## Fix
    /// None: more accelerators, a larger accelerator or a quantized model
    /// are choices with a cost only the author can weigh.
    pub struct ModelFitsAcceleratorMemory {
        id: "model-fits-accelerator-memory",
        severity: Error,
        summary: "A model's weights must fit the accelerator memory the server shards them over, with room for the KV cache.",
        fixable: false,
    }
}

impl Rule for ModelFitsAcceleratorMemory {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if let Some(runtime) = kserve::named_runtime(object) {
            check_with_runtime(cx, object, runtime, sink);
            return;
        }
        // KServe's LLMInferenceService templates are completed from presets:
        // a container without an image of its own is the presets' server.
        let presets = object.kind() == "LLMInferenceService";
        let partial = workload::is_fragment(object)
            && !workload::served_by_default_runtime(object)
            && !presets;
        if cx.inference_reason(object).is_none() || partial {
            return;
        }
        let policy = cx.policy;
        let group = object.kind() == "LeaderWorkerSet";
        let size = object
            .value
            .at("/spec/leaderWorkerTemplate/size")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let substitutions = [("LWS_GROUP_SIZE", size.to_string())];
        let substitutions: &[(&str, String)] = if group { &substitutions } else { &[] };
        // A LeaderWorkerSet's group shares one degree: its leader states it.
        let mut checked_group = false;
        for template in pod_templates(object) {
            let Some(spec) = template.spec() else {
                continue;
            };
            let Some(accelerator) = accelerator_of(spec, &policy.accelerators) else {
                continue;
            };
            if let Some(server) = kserve::llmisvc_preset_server(object, &template.pointer) {
                let container = server.container();
                if let Some(mut check) = Check::of(&container, policy, accelerator, false, &[]) {
                    check.pointer = server.place(&check.pointer);
                    check.devices_by = format!("{}, in KServe's preset server", check.devices_by);
                    check.report(object, policy, sink);
                }
                continue;
            }
            for container in template.main_containers() {
                if group && checked_group {
                    return;
                }
                if presets && container.image().is_none() {
                    continue;
                }
                let Some(check) = Check::of(&container, policy, accelerator, group, substitutions)
                else {
                    continue;
                };
                checked_group = true;
                check.report(object, policy, sink);
            }
        }
    }
}

/// A predictor that names a runtime, checked as KServe merges it with that
/// runtime when the input holds it (a namespaced ServingRuntime first, as
/// KServe looks it up).
fn check_with_runtime(cx: &Context<'_>, isvc: &Object, runtime: &str, sink: &mut Sink) {
    let candidates: Vec<&Object> = cx
        .of_kind(isvc, &["ServingRuntime", "ClusterServingRuntime"])
        .map(|(_, candidate)| candidate)
        .filter(|candidate| candidate.name() == Some(runtime))
        .filter(|candidate| {
            candidate.kind() == "ClusterServingRuntime" || cx.paired(isvc, candidate)
        })
        .collect();
    let Some(found) = candidates
        .iter()
        .find(|candidate| candidate.kind() == "ServingRuntime")
        .or_else(|| candidates.first())
    else {
        return;
    };
    let Some(merged) = kserve::merged_predictor(isvc, found) else {
        return;
    };
    let policy = cx.policy;
    let Some(accelerator) = accelerator_of(&merged.pod_spec, &policy.accelerators) else {
        return;
    };
    let container = Container {
        pointer: "/spec/predictor/model".to_string(),
        value: &merged.container,
        init: false,
    };
    let Some(mut check) = Check::of(&container, policy, accelerator, false, &[]) else {
        return;
    };
    // The merged arguments are the runtime's and then the predictor's, so
    // a pointer into them is not a place in the InferenceService: report
    // at the model it names.
    check.pointer = [
        check.model.pointer.as_str(),
        "/spec/predictor/model/runtime",
    ]
    .into_iter()
    .find(|pointer| isvc.locate(pointer).is_some() && !pointer.contains("/args/"))
    .unwrap_or("/spec/predictor/model")
    .to_string();
    check.devices_by = format!("{}, with ServingRuntime `{runtime}`", check.devices_by);
    check.report(isvc, policy, sink);
}

/// The accelerator a pod template's node labels name, if known.
fn accelerator_of<'p>(spec: &Value, accelerators: &'p Accelerators) -> Option<&'p AcceleratorKind> {
    let labels = required_labels(spec);
    accelerators.labels.iter().find_map(|label| {
        let value = labels.get(label)?;
        accelerators
            .catalogue
            .iter()
            .find(|kind| kind.pattern.is_match(value))
    })
}

/// What one server container asks of its accelerators.
struct Check<'c, 'p> {
    container: &'c Container<'c>,
    model: model::ModelRef,
    accelerator: &'p AcceleratorKind,
    devices: u64,
    /// How the device count is stated (`tensor parallel 2`).
    devices_by: String,
    fraction: f64,
    pointer: String,
}

impl<'c, 'p> Check<'c, 'p> {
    fn of(
        container: &'c Container<'c>,
        policy: &'p Policy,
        accelerator: &'p AcceleratorKind,
        group: bool,
        substitutions: &[(&str, String)],
    ) -> Option<Self> {
        let model = model::model_of(container, &policy.models)?;
        let (devices, devices_by, server, pointer) =
            match serving::degree(container, &policy.serving, group, substitutions) {
                Reading::Known(degree) => {
                    let devices = sharding_degree(&degree);
                    let pointer = degree
                        .pointer()
                        .map_or_else(|| model.pointer.clone(), str::to_string);
                    (
                        devices,
                        degree.describe(),
                        degree.server.server.clone(),
                        pointer,
                    )
                }
                Reading::Unknown => return None,
                Reading::NotStated => {
                    // TGI shards over every GPU the container sees.
                    let server = serving::server_of(container, &policy.serving)?;
                    if server.default.is_some()
                        || !server.factors.iter().any(|f| f.name == "shards")
                    {
                        return None;
                    }
                    let chips = accelerator_chips(container, &policy.serving.rank_resources);
                    if chips < 1.0 {
                        return None;
                    }
                    (
                        chips as u64,
                        format!("{chips} GPUs (TGI shards over every GPU it sees)"),
                        server.server.clone(),
                        model.pointer.clone(),
                    )
                }
            };
        let fraction = memory_fraction(container, &policy.accelerators, &server);
        Some(Self {
            container,
            model,
            accelerator,
            devices: devices.max(1),
            devices_by,
            fraction,
            pointer,
        })
    }

    fn report(&self, object: &Object, policy: &Policy, sink: &mut Sink) {
        let models = &policy.models;
        let Some(size) = model::size_of(object, &self.model.id, models) else {
            return;
        };
        let mut weights = size.bytes;
        let mut how = size.source.clone();
        if let Some((flag, per_parameter)) = quantized(self.container, &policy.accelerators) {
            if let Some(billions) = model::parameters(&self.model.id, models) {
                let loaded = billions * 1e9 * per_parameter;
                if loaded < weights {
                    weights = loaded;
                    how = format!("{billions}B parameters at {per_parameter} bytes ({flag})");
                }
            }
        }
        let memory = self.accelerator.memory.0;
        let usable = self.devices as f64 * memory * self.fraction;
        let kv = policy.accelerators.kv_cache_minimum_fraction;
        let for_weights = usable * (1.0 - kv);
        if weights <= for_weights {
            return;
        }
        let what = if weights > usable {
            "they do not fit"
        } else {
            "nothing is left for the KV cache"
        };
        sink.report(
            self.pointer.clone(),
            format!(
                "`{}` needs ~{} of weights; {} x {} {} x {} = {}: {what}",
                self.model.id,
                model::gib(weights),
                self.devices,
                self.accelerator.name,
                model::gib(memory),
                self.fraction,
                model::gib(usable),
            ),
        )
        .short(format!(
            "model needs ~{} of weights, {} {} give {}: more or larger accelerators",
            model::gib(weights),
            self.devices,
            self.accelerator.name,
            model::gib(usable)
        ))
        .help(format!(
            "the weights ({how}) must fit {} accelerators ({}) with {:.0} % of the usable memory left for the KV cache; raise the tensor parallel degree and the accelerators with it, choose a larger accelerator, or serve a quantized checkpoint. Accelerator memory: {}",
            self.devices,
            self.devices_by,
            kv * 100.0,
            self.accelerator.source
        ));
    }
}

/// The accelerators the weights are split over: the product of the
/// factors that are not per-pod replicas (data parallel ranks each hold
/// the whole model), or the server's default.
fn sharding_degree(degree: &Degree<'_>) -> u64 {
    if degree.factors.is_empty() {
        return degree.total;
    }
    degree
        .factors
        .iter()
        .filter(|stated| {
            !degree
                .server
                .factors
                .iter()
                .any(|factor| factor.name == stated.name && factor.per_pod)
        })
        .map(|stated| stated.value)
        .product::<u64>()
        .max(1)
}

/// The share of accelerator memory the server uses: its flag or env, else
/// its default; 1 for a server not listed.
fn memory_fraction(container: &Container<'_>, accelerators: &Accelerators, server: &str) -> f64 {
    let Some(entry) = accelerators
        .memory_fraction
        .iter()
        .find(|entry| entry.server == server)
    else {
        return 1.0;
    };
    let words = command_words(container);
    let flagged = words.iter().enumerate().find_map(|(index, (word, _))| {
        entry.flags.iter().find_map(|flag| {
            if word == flag {
                words.get(index + 1).map(|(value, _)| value.clone())
            } else {
                word.strip_prefix(&format!("{flag}=")).map(str::to_string)
            }
        })
    });
    let from_env = || {
        entry
            .env
            .iter()
            .find_map(|name| env_value(container, name).map(|(_, value)| value.to_string()))
    };
    flagged
        .or_else(from_env)
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|fraction| *fraction > 0.0 && *fraction <= 1.0)
        .unwrap_or(entry.default)
}

/// The quantization a flag loads the weights at: (flag as written, bytes
/// per parameter).
fn quantized(container: &Container<'_>, accelerators: &Accelerators) -> Option<(String, f64)> {
    let words = command_words(container);
    let settings = &accelerators.quantization;
    words.iter().enumerate().find_map(|(index, (word, _))| {
        let (written, value) = settings.flags.iter().find_map(|flag| {
            if word == flag {
                words
                    .get(index + 1)
                    .map(|(value, _)| (format!("{flag} {value}"), value.clone()))
            } else {
                word.strip_prefix(&format!("{flag}="))
                    .map(|value| (word.clone(), value.to_string()))
            }
        })?;
        let per_parameter = settings
            .bytes_per_parameter
            .get(&value.to_ascii_lowercase())?;
        Some((written, *per_parameter))
    })
}
