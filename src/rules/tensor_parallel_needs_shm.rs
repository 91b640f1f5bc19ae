use serde_json::Value;

use crate::engine::finding::Fix;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::serving::{self, Reading};
use crate::k8s::workload::{
    self, accelerator_chips, mounts, pod_templates, Container, PodTemplate, Storage,
};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds model-server containers that run several GPUs in one pod
    /// (more than one `nvidia.com/gpu` or `amd.com/gpu`, or a parallel
    /// degree above 1 as parallelism-matches-accelerators reads it) without
    /// a memory-backed `/dev/shm`: no `emptyDir` with `medium: Memory`
    /// (or `hostPath`) mounted at `/dev/shm`, and no `hostIPC: true`.
    ///
    /// ## Why is this bad?
    /// The GPUs of one pod exchange tensors through shared memory (NCCL's
    /// shared-memory transport, vLLM's multiprocessing workers). A
    /// container's `/dev/shm` is 64 MiB; with it NCCL fails or the server
    /// hangs at start-up without a clear error. The vLLM documentation's
    /// Kubernetes example mounts a memory `emptyDir` there for tensor
    /// parallel inference ("Using Kubernetes", Deployment with GPUs).
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    /// - name: vllm
    ///   args: ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4"]
    ///   resources:
    ///     limits:
    ///       nvidia.com/gpu: 4
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// containers:
    /// - name: vllm
    ///   volumeMounts:
    ///   - name: dshm
    ///     mountPath: /dev/shm
    /// volumes:
    /// - name: dshm
    ///   emptyDir:
    ///     medium: Memory
    ///     sizeLimit: 2Gi
    /// ```
    ///
    /// ## Fix
    /// Adds the volume and the mount (safe), with the `sizeLimit` of
    /// `serving.sharedMemory.sizeLimit` in rules/serving.yaml (2Gi, the
    /// vLLM documentation's figure). A memory volume the pod already has
    /// at `/dev/shm` in another container is mounted instead of a second
    /// one; the model-cache fix of hf-home-shm-for-large-models shares the
    /// same volume, so the pod ends with one `/dev/shm`, never two. A disk
    /// volume already mounted at `/dev/shm` is reported without a fix.
    pub struct TensorParallelNeedsShm {
        id: "tensor-parallel-needs-shm",
        severity: Error,
        summary: "A model server that runs several GPUs in one pod needs a memory-backed /dev/shm.",
        fixable: true,
    }
}

impl Rule for TensorParallelNeedsShm {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A kustomize patch shows only part of the pod.
        if cx.inference_reason(object).is_none() || workload::may_be_completed(object) {
            return;
        }
        let shared_memory = &cx.policy.serving.shared_memory;
        let group = object.kind() == "LeaderWorkerSet";
        for template in pod_templates(object) {
            let host_ipc = template
                .spec()
                .and_then(|spec| spec.get("hostIPC"))
                .and_then(Value::as_bool)
                == Some(true);
            if host_ipc {
                continue;
            }
            for container in template.main_containers() {
                let gpus = accelerator_chips(&container, &shared_memory.resources);
                if gpus <= 0.0 {
                    continue;
                }
                // Inside a LeaderWorkerSet group the degree spans pods;
                // only the pod's own GPUs share its memory.
                let degree = match serving::degree(&container, &cx.policy.serving, false, &[]) {
                    Reading::Known(degree) if !group => degree.total.div_ceil(degree.nodes.max(1)),
                    _ => 1,
                };
                if gpus < 2.0 && degree < 2 {
                    continue;
                }
                let container_mounts = mounts(&template, &container);
                let shm = container_mounts
                    .iter()
                    .find(|mount| mount.mount_path.trim_end_matches('/') == "/dev/shm");
                let why = if gpus >= 2.0 {
                    format!("{gpus} GPUs")
                } else {
                    format!("a parallel degree of {degree}")
                };
                let name = container.name().unwrap_or("?");
                match shm.map(|mount| &mount.storage) {
                    Some(Storage::Memory { .. } | Storage::Shared("hostPath")) => continue,
                    Some(_) => {
                        sink.report(
                            format!("{}/volumeMounts", container.pointer),
                            format!(
                                "container `{name}` runs {why} but the volume at /dev/shm is not memory-backed"
                            ),
                        )
                        .help("use an emptyDir with medium: Memory at /dev/shm");
                    }
                    None => {
                        let existing = memory_volume_for_shm(&template);
                        let unmounted = existing
                            .as_ref()
                            .map(|volume| format!(" (volume `{volume}` is not mounted)"))
                            .unwrap_or_default();
                        sink.report(
                            container.pointer.clone(),
                            format!(
                                "container `{name}` runs {why} in one pod with a 64 MiB /dev/shm{unmounted}; NCCL fails or hangs"
                            ),
                        )
                        .short(format!("container `{name}` runs {why} without a memory /dev/shm"))
                        .help(format!(
                            "mount an emptyDir with medium: Memory (sizeLimit {}) at /dev/shm, or set hostIPC: true",
                            shared_memory.size_limit
                        ))
                        .maybe_fix(shm_fix(
                            &template,
                            &container,
                            &shared_memory.size_limit,
                            existing.as_deref(),
                        ));
                    }
                }
            }
        }
    }
}

/// A memory-backed volume of the pod that this container could mount at
/// /dev/shm: one another container mounts there, else one declared and
/// mounted by no container (a `dshm` volume someone forgot to mount).
fn memory_volume_for_shm(template: &PodTemplate<'_>) -> Option<String> {
    let containers = template.containers();
    let mounted_at_shm = containers.iter().find_map(|other| {
        mounts(template, other).into_iter().find_map(|mount| {
            (mount.mount_path.trim_end_matches('/') == "/dev/shm"
                && matches!(mount.storage, Storage::Memory { .. }))
            .then(|| mount.volume_name.to_string())
        })
    });
    if mounted_at_shm.is_some() {
        return mounted_at_shm;
    }
    let mounted: Vec<String> = containers
        .iter()
        .flat_map(|container| mounts(template, container))
        .map(|mount| mount.volume_name.to_string())
        .collect();
    template
        .volumes()
        .filter(|volume| matches!(workload::storage_of(volume), Storage::Memory { .. }))
        .filter_map(|volume| volume.get("name").and_then(Value::as_str))
        .find(|name| !mounted.iter().any(|mounted| mounted == name))
        .map(str::to_string)
}

/// Mount the pod's memory volume at /dev/shm if it has one to share, else
/// add one.
fn shm_fix(
    template: &PodTemplate<'_>,
    container: &Container<'_>,
    size_limit: &str,
    existing: Option<&str>,
) -> Option<Fix> {
    let operations = match existing {
        Some(volume) => vec![workload::add_mount(container, volume, "/dev/shm")?],
        None => workload::mount_new_shm(template, container, size_limit)?,
    };
    let description = match existing {
        Some(volume) => format!("mount the pod's memory volume `{volume}` at /dev/shm"),
        None => format!("mount a memory-backed /dev/shm (sizeLimit {size_limit})"),
    };
    Some(Fix::safe(description, operations))
}
