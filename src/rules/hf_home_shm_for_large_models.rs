use serde_json::{json, Value};

use crate::engine::{Context, Sink};
use crate::finding::{op, Applicability, Fix};
use crate::model::{self, CacheSetting};
use crate::object::Object;
use crate::pointer;
use crate::rules::{declare_rule, Rule, RuleMeta};
use crate::workload::{self, mount_for, mounts, pod_templates, Storage};

declare_rule! {
    /// ## What it does
    /// Finds serving containers that download a large model from the
    /// Hugging Face Hub into a cache on the node's boot disk: the container
    /// filesystem (no `HF_HOME`) or a disk-backed `emptyDir`.
    ///
    /// The model is read from the server's flags (`--model`, `--model=`,
    /// `--model-id`, `vllm serve ID`, `$(VAR)` resolved from the
    /// container's env) or env (`MODEL_ID`…). Its size comes, in this order,
    /// from the annotation `infergate.dev/model-size`, the catalogue in
    /// `rules/models.yaml`, or an estimate from the parameter count in the
    /// name and its precision hints (bf16 2 bytes per parameter, fp8/int8 1,
    /// int4/AWQ/GPTQ 0.5). The finding says which source gave the size.
    /// Models loaded from a path or a bucket, and caches on a volume, are not
    /// at risk.
    ///
    /// ## Why is this bad?
    /// GKE nodes have a 100 GiB boot disk by default and GKE reserves 10 %
    /// of it, which leaves 90 GiB; a model of 90 GiB or more cached there
    /// fills it and the kubelet evicts the pod for ephemeral storage (seed
    /// 001, troubleshooting). The threshold is computed from the policy
    /// (`models.bootDiskSize`, `models.bootDiskReservedFraction`).
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    /// - name: inference-server
    ///   image: vllm/vllm-openai:v0.8.5
    ///   args: ["--model=meta-llama/Llama-3.1-405B-Instruct-FP8", "--tensor-parallel-size=8"]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// containers:
    /// - name: inference-server
    ///   image: vllm/vllm-openai:v0.8.5
    ///   args: ["--model=meta-llama/Llama-3.1-405B-Instruct-FP8", "--tensor-parallel-size=8"]
    ///   env:
    ///   - name: HF_HOME
    ///     value: /dev/shm/hf_cache
    ///   volumeMounts:
    ///   - name: dshm
    ///     mountPath: /dev/shm
    /// volumes:
    /// - name: dshm
    ///   emptyDir:
    ///     medium: Memory
    ///     sizeLimit: 416Gi
    /// ```
    ///
    /// ## Fix
    /// Sets `HF_HOME=/dev/shm/hf_cache` on the serving container and, when
    /// `/dev/shm` is not a memory-backed mount yet, adds an `emptyDir` with
    /// `medium: Memory` and a `sizeLimit` that fits the model (plus
    /// `models.headroomFraction`), mounted at `/dev/shm`. Safe when
    /// `HF_HOME` was unset; replacing an `HF_HOME` the manifest sets is
    /// unsafe. Memory for the cache is then charged to the pod:
    /// `shm-memory-budget` checks the limits.
    pub struct HfHomeShmForLargeModels {
        id: "hf-home-shm-for-large-models",
        severity: Error,
        summary: "Models of 90 GiB or more must not be cached on the node boot disk; set HF_HOME under /dev/shm.",
        fixable: true,
    }
}

impl Rule for HfHomeShmForLargeModels {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() {
            return;
        }
        let models = &cx.policy.models;
        let budget = models.disk_budget();
        for template in pod_templates(object) {
            for container in &template.main_containers() {
                let Some(model_ref) = model::model_of(container, models) else {
                    continue;
                };
                if model::is_local_or_bucket(&model_ref.id) {
                    continue;
                }
                let Some(size) = model::size_of(object, &model_ref.id, models) else {
                    continue;
                };
                if size.bytes < budget {
                    continue;
                }
                let container_mounts = mounts(&template, container);
                let cache = model::cache_dir(container);
                let shm_mount = mount_for(&container_mounts, "/dev/shm/x")
                    .filter(|mount| mount.mount_path.trim_end_matches('/') == "/dev/shm");
                let shm_is_memory =
                    shm_mount.is_some_and(|mount| matches!(mount.storage, Storage::Memory { .. }));
                let storage =
                    mount_for(&container_mounts, &cache.path).map(|mount| mount.storage.clone());
                let problem = if model::is_shm(&cache.path) {
                    if shm_is_memory {
                        continue;
                    }
                    format!(
                        "the Hugging Face cache {} is in /dev/shm, but /dev/shm is not a memory-backed volume (the container runtime gives 64 MiB)",
                        cache.path
                    )
                } else {
                    match storage {
                        Some(Storage::Memory { .. } | Storage::Shared(_)) => continue,
                        Some(Storage::NodeDisk) => format!(
                            "the Hugging Face cache {} is a disk-backed emptyDir on the node boot disk",
                            cache.path
                        ),
                        _ => match cache.setting {
                            CacheSetting::Default => {
                                "HF_HOME is not set, so the Hugging Face cache is on the node boot disk".to_string()
                            }
                            _ => format!(
                                "the Hugging Face cache {} is in the container filesystem, on the node boot disk",
                                cache.path
                            ),
                        },
                    }
                };
                let message = format!(
                    "model `{}` is {} ({}) and {problem}; the boot disk leaves {} to workloads and the kubelet evicts the pod",
                    model_ref.id,
                    model::gib(size.bytes),
                    size.source,
                    model::gib(budget)
                );
                let fix = shm_fix(
                    cx,
                    &template,
                    container,
                    &cache,
                    shm_mount.is_some(),
                    shm_is_memory,
                    size.bytes,
                );
                sink.report(model_ref.pointer.clone(), message)
                    .help(format!(
                        "set HF_HOME={} and mount a memory-backed emptyDir at /dev/shm, load the model from a bucket or volume, or use a larger boot disk",
                        models.shm_cache_path
                    ))
                    .maybe_fix(fix);
            }
        }
    }
}

fn shm_fix(
    cx: &Context<'_>,
    template: &workload::PodTemplate<'_>,
    container: &workload::Container<'_>,
    cache: &model::CacheDir,
    has_shm_mount: bool,
    shm_is_memory: bool,
    bytes: f64,
) -> Option<Fix> {
    let models = &cx.policy.models;
    let mut operations = Vec::new();
    let mut applicability = Applicability::Safe;
    // Point the cache at /dev/shm.
    match &cache.setting {
        CacheSetting::Env { name, index } => {
            applicability = Applicability::Unsafe;
            let value = if *name == "HF_HOME" {
                models.shm_cache_path.clone()
            } else {
                format!("{}/hub", models.shm_cache_path)
            };
            if !model::is_shm(&cache.path) {
                operations.push(op::replace(
                    &format!("{}/env/{index}/value", container.pointer),
                    json!(value),
                )?);
            }
        }
        CacheSetting::DownloadDir => return None,
        CacheSetting::Default => {
            let entry = json!({"name": "HF_HOME", "value": models.shm_cache_path});
            operations.push(match container.value.get("env") {
                Some(Value::Array(_)) => op::add(&format!("{}/env/-", container.pointer), entry)?,
                _ => op::add(&format!("{}/env", container.pointer), json!([entry]))?,
            });
        }
    }
    // A memory-backed /dev/shm of the model's size.
    if has_shm_mount && !shm_is_memory {
        return None; // a disk volume at /dev/shm: a person must choose
    }
    if !has_shm_mount {
        let spec_pointer = format!("{}/spec", template.pointer);
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
        let name = ["dshm", "infergate-dshm", "infergate-dshm-1"]
            .into_iter()
            .find(|name| !taken(name))?;
        let volume = json!({
            "name": name,
            "emptyDir": {"medium": "Memory", "sizeLimit": model::size_limit_for(bytes, models.headroom_fraction)},
        });
        operations.push(match volumes {
            Some(_) => op::add(
                &pointer::join(&format!("{spec_pointer}/volumes"), "-"),
                volume,
            )?,
            None => op::add(&format!("{spec_pointer}/volumes"), json!([volume]))?,
        });
        let mount = json!({"name": name, "mountPath": "/dev/shm"});
        operations.push(match container.value.get("volumeMounts") {
            Some(Value::Array(_)) => {
                op::add(&format!("{}/volumeMounts/-", container.pointer), mount)?
            }
            _ => op::add(
                &format!("{}/volumeMounts", container.pointer),
                json!([mount]),
            )?,
        });
    }
    if operations.is_empty() {
        return None;
    }
    Some(Fix::new(
        applicability,
        format!(
            "cache the model in {} on a memory-backed /dev/shm",
            models.shm_cache_path
        ),
        operations,
    ))
}
