use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Applicability, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::quantity;
use crate::k8s::model::{self, CacheSetting};
use crate::k8s::workload::{self, mount_for, mounts, pod_templates, Storage};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds serving containers that download a large model from the
    /// Hugging Face Hub into a cache on the node's boot disk: the container
    /// filesystem or a disk-backed `emptyDir`.
    ///
    /// The cache is where the server really puts it: the first of
    /// `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `TRANSFORMERS_CACHE` and
    /// `HF_HOME` (its `hub` directory) the container sets, else a flag
    /// (`--download-dir`, `--huggingface-hub-cache`), else the image's own
    /// default (vLLM and SGLang images run as root and cache in
    /// `/root/.cache/huggingface`, vLLM's non-root image in
    /// `/home/vllm/.cache/huggingface`, the UBI vLLM images in
    /// `/opt/app-root/src/.cache/huggingface`, TGI in `/data`, Google's TGI
    /// containers in `/tmp`, NIM in `NIM_CACHE_PATH`, JetStream PyTorch in
    /// its `--working_dir`, whatever `HF_HOME` says). A PersistentVolumeClaim,
    /// generic ephemeral volume, CSI volume, hostPath (local SSD) or
    /// memory-backed emptyDir mounted there (or above it) is not the boot
    /// disk. For an image with no known cache, root's default is assumed,
    /// and a volume of that kind mounted anywhere in the container keeps
    /// the rule quiet: another user's home may put the cache on it.
    /// Images, variables, flags and directories are policy data, each with
    /// its source (`models.serverCaches`).
    ///
    /// The model is read from the server's flags (`--model`, `--model=`,
    /// `--model-id`, `vllm serve ID`, `$(VAR)` resolved from the
    /// container's env) or env (`MODEL_ID`…). Its size comes, in this order,
    /// from the annotation `infergate.dev/model-size`, the catalogue in
    /// `rules/models.yaml`, or an estimate from the parameter count in the
    /// name and its precision hints (bf16 2 bytes per parameter, fp8/int8 1,
    /// int4/AWQ/GPTQ 0.5). The help says which source gave the size.
    /// Models loaded from a path or a bucket are not at risk. A
    /// LeaderWorkerSet's worker that asks for accelerators and names no model
    /// loads the group's (the one its leader names) and is checked, and
    /// fixed, too. A container that requests (or, without a request, is
    /// limited to) at least the model's size of `ephemeral-storage` is
    /// placed only on a node with that much local disk, and stays quiet.
    ///
    /// A KServe predictor's `model.storageUri` (`hf://`, `gs://`, `s3://`…),
    /// and an LLMInferenceService's `spec.model.uri`, is downloaded by
    /// KServe's storage initializer into an emptyDir on the node before the
    /// server starts (in every pod of the LLMInferenceService; reported once,
    /// at the URI); a model of known size (the
    /// annotation, or the Hugging Face id) above the same threshold is
    /// reported there. `pvc://` and `oci://` (modelcars) are not downloaded
    /// into the pod, and a predictor volume named `kserve-provision-location`
    /// (KServe's override of that emptyDir) on a claim or in memory moves
    /// the download off the boot disk.
    ///
    /// ## Why is this bad?
    /// GKE nodes have a 100 GiB boot disk by default and GKE reserves 10 %
    /// of it, which leaves 90 GiB; a model of 90 GiB or more cached there
    /// fills it and the kubelet evicts the pod for ephemeral storage (GKE
    /// documentation, "Serve open LLMs on GKE", troubleshooting). The
    /// threshold is computed from the policy (`models.bootDiskSize`,
    /// `models.bootDiskReservedFraction`).
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
    /// Points the cache at `/dev/shm` (`HF_HOME=/dev/shm/hf_cache`, or the
    /// image's own variable) and makes `/dev/shm` a memory-backed
    /// `emptyDir` whose `sizeLimit` holds the model plus
    /// `models.headroomFraction` (added, or raised when too small). The
    /// cache is then charged to the container's memory, so the fix is safe
    /// only when the container's memory limit and request already hold the
    /// model plus headroom and the manifest set no cache variable of its
    /// own. Otherwise it is unsafe, and it also raises the memory request
    /// and limit to the model, its headroom and the server's own memory
    /// (`models.serverMemoryOverhead`, 16 GiB), which the help names: a
    /// pod that asks for more memory may no longer fit its node.
    /// Either way the result satisfies `shm-memory-budget`'s sizeLimit
    /// check. There is no fix where only a server flag moves the cache (a
    /// flag the manifest sets, or an image such as JetStream PyTorch that
    /// ignores the Hugging Face variables): the help names the flag.
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
        let templates = pod_templates(object);
        // The download happens whatever the runtime adds. An
        // LLMInferenceService's one model is downloaded into every pod: it
        // is reported once, at the model.
        for template in &templates {
            if check_storage_initializer(object, template, budget, models, sink)
                && object.kind() == "LLMInferenceService"
            {
                break;
            }
        }
        // A fragment (a kustomize patch, a template completed from presets
        // or a runtime) may get its cache from what it does not show.
        if workload::may_be_completed(object) {
            return;
        }
        // A LeaderWorkerSet's workers load the model the leader names (with
        // Ray each downloads its own shards): a worker container that asks
        // for accelerators but names no model caches the group's.
        let group_model = (object.kind() == "LeaderWorkerSet")
            .then(|| {
                templates.iter().find_map(|template| {
                    template
                        .main_containers()
                        .iter()
                        .find_map(|container| model::model_of(container, models))
                })
            })
            .flatten();
        for template in &templates {
            for container in &template.main_containers() {
                let named = model::model_of(container, models);
                let model_ref = match (named, &group_model) {
                    (Some(named), _) => named,
                    (None, Some(group))
                        if workload::accelerator_chips(
                            container,
                            &cx.policy.inference.accelerator_resources,
                        ) > 0.0 =>
                    {
                        model::ModelRef {
                            id: group.id.clone(),
                            pointer: container.pointer.clone(),
                        }
                    }
                    _ => continue,
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
                let container_mounts = mounts(template, container);
                let cache = model::cache_dir(container, models);
                let shm_mount = mount_for(&container_mounts, "/dev/shm/x")
                    .filter(|mount| mount.mount_path.trim_end_matches('/') == "/dev/shm");
                let shm_is_memory =
                    shm_mount.is_some_and(|mount| matches!(mount.storage, Storage::Memory { .. }));
                let cache_mount = mount_for(&container_mounts, &cache.path);
                // An image we know nothing of may run as another user, whose
                // home (and so its cache) is elsewhere: a volume of its own
                // mounted anywhere but /dev/shm may be that cache.
                if cache.setting == CacheSetting::Default
                    && cache_mount.is_none()
                    && container_mounts.iter().any(|mount| {
                        !model::is_shm(mount.mount_path)
                            && matches!(mount.storage, Storage::Shared(_))
                    })
                {
                    continue;
                }
                // A pod that requests the ephemeral storage the model needs
                // is placed on a node with that much local disk (limits
                // default the requests): the cache fits where it is.
                let local_disk = ["requests", "limits"].into_iter().find_map(|section| {
                    container
                        .value
                        .at(&format!("/resources/{section}/ephemeral-storage"))
                        .and_then(quantity::from_value)
                });
                if !model::is_shm(&cache.path)
                    && local_disk.is_some_and(|bytes| bytes >= size.bytes)
                {
                    continue;
                }
                let place = if model::is_shm(&cache.path) {
                    if shm_is_memory {
                        continue;
                    }
                    "/dev/shm, which is not memory-backed".to_string()
                } else {
                    match cache_mount.map(|mount| (&mount.storage, mount.volume_name)) {
                        // A volume of its own: memory, a claim, CSI, hostPath…
                        Some((Storage::Memory { .. } | Storage::Shared(_), _)) => continue,
                        Some((Storage::NodeDisk, name)) => {
                            format!("the disk-backed emptyDir `{name}`")
                        }
                        _ => "the container filesystem".to_string(),
                    }
                };
                let why = match &cache.setting {
                    CacheSetting::Env { name, .. } => {
                        format!("{name} puts the cache at {}", cache.path)
                    }
                    CacheSetting::Flag => format!("a server flag puts the cache at {}", cache.path),
                    CacheSetting::Image { source } => {
                        format!("the image caches in {} ({source})", cache.path)
                    }
                    CacheSetting::Default => {
                        format!("no cache variable is set, so the cache is {}", cache.path)
                    }
                };
                let message = format!(
                    "model `{}` ({}) is cached in {place} on the node boot disk; pods get {} of it",
                    model_ref.id,
                    model::gib(size.bytes),
                    model::gib(budget)
                );
                let fix = shm_fix(cx, template, container, &cache, shm_mount, size.bytes);
                // The setting that moves the cache: the variable set, else
                // the image's variable, else the image's own flag.
                let variable = match &cache.setting {
                    CacheSetting::Env { name, .. } => Some(name.as_str()),
                    _ => cache.fix_env.as_deref(),
                };
                let remedy = match (variable, &cache.flag) {
                    (Some(variable), _) => {
                        format!("Set {variable}={}", fix_path(variable, models))
                    }
                    (None, Some(flag)) => format!("Point {flag} at a directory in /dev/shm"),
                    (None, None) => "Move the cache into /dev/shm".to_string(),
                };
                let mut help = format!(
                    "{why}; size from {}. {remedy} with a memory-backed emptyDir at /dev/shm, mount a volume there, load the model from a bucket, or use a larger boot disk",
                    size.source,
                );
                if let Some((_, Some(blocker))) = &fix {
                    help.push_str(&format!("; the fix is unsafe: {blocker}"));
                }
                sink.report(model_ref.pointer.clone(), message)
                    .help(help)
                    .maybe_fix(fix.map(|(fix, _)| fix));
            }
        }
    }
}

/// The volume KServe's storage initializer downloads into.
const PROVISION_VOLUME: &str = "kserve-provision-location";

/// KServe's storage initializer downloads a predictor's `storageUri` (or
/// an LLMInferenceService's model) into an emptyDir on the node's disk (`kserve-provision-location`, mounted at
/// /mnt/models; KServe's storage_initializer_injector.go) before the server
/// starts: a model larger than the boot disk's share fills it the same way.
/// `pvc://` mounts a claim instead, and `oci://` (modelcars) is an image.
fn check_storage_initializer(
    object: &Object,
    template: &workload::PodTemplate<'_>,
    budget: f64,
    models: &crate::policy::Models,
    sink: &mut Sink,
) -> bool {
    // KServe's storage initializer downloads an InferenceService
    // predictor's `model.storageUri`, and an LLMInferenceService's
    // `spec.model.uri` into each of its pods (kserve llmisvc
    // workload_storage.go, attachStorageInitializer: hf:// and s3://).
    let (uri, uri_pointer) = if object.kind() == "LLMInferenceService" {
        let pointer = "/spec/model/uri".to_string();
        match object.value.at(&pointer).and_then(Value::as_str) {
            Some(uri) => (uri, pointer),
            None => return false,
        }
    } else {
        let Some(model) = template.spec().and_then(|spec| spec.get("model")) else {
            return false;
        };
        let Some(uri) = model.get("storageUri").and_then(Value::as_str) else {
            return false;
        };
        (uri, format!("{}/model/storageUri", template.spec_pointer))
    };
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    if matches!(scheme, "pvc" | "oci") {
        return false;
    }
    // The staging volume replaced (KServe's "Storage Initializer Volume"
    // override: a volume of that name in the predictor): on a claim or in
    // memory, not on the boot disk.
    let replaced = template
        .spec()
        .and_then(|spec| spec.get("volumes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|volume| volume.get("name").and_then(Value::as_str) == Some(PROVISION_VOLUME));
    if let Some(volume) = replaced {
        let node_disk = volume.get("emptyDir").is_some_and(|empty_dir| {
            empty_dir.get("medium").and_then(Value::as_str) != Some("Memory")
        });
        if !node_disk {
            return false;
        }
    }
    // The size: the annotation, else a Hugging Face id from the catalogue
    // or its name; a bucket path says nothing of its size.
    let id = if scheme == "hf" {
        model::kserve_hub_id(uri).unwrap_or(rest)
    } else {
        ""
    };
    let Some(size) = model::size_of(object, id, models) else {
        return false;
    };
    if size.bytes < budget {
        return false;
    }
    sink.report(
        uri_pointer,
        format!(
            "the storage initializer downloads {uri} ({}) into an emptyDir on the node boot disk; pods get {} of it",
            model::gib(size.bytes),
            model::gib(budget)
        ),
    )
    .short(format!(
        "{} model downloaded to the node boot disk: use a pvc:// or oci:// model",
        model::gib(size.bytes)
    ))
    .help(format!(
        "size from {}. Put the model on a PersistentVolumeClaim (a pvc:// URI), use a modelcar image (oci://…), or give the nodes a larger boot disk",
        size.source
    ));
    true
}

/// The value the fix gives `variable`: HF_HOME is the cache's parent, the
/// hub variables name the hub cache itself.
fn fix_path(variable: &str, models: &crate::policy::Models) -> String {
    match variable {
        "HF_HOME" => models.shm_cache_path.clone(),
        "HF_HUB_CACHE" | "HUGGINGFACE_HUB_CACHE" | "TRANSFORMERS_CACHE" => {
            format!("{}/hub", models.shm_cache_path)
        }
        other => format!(
            "/dev/shm/{}",
            other.trim_end_matches("_PATH").to_lowercase()
        ),
    }
}

/// Why moving the cache into memory would not fit the container: its
/// memory limit or request below the model plus headroom, or none set.
fn memory_blocker(container: &workload::Container<'_>, needed: f64) -> Option<String> {
    let memory = |section: &str| {
        container
            .value
            .at(&format!("/resources/{section}/memory"))
            .and_then(quantity::from_value)
    };
    let name = container.name().unwrap_or("?");
    let limit = memory("limits");
    // A missing request defaults to the limit.
    let request = memory("requests").or(limit);
    match (limit, request) {
        (None, _) => Some(format!(
            "container `{name}` has no memory limit; set resources.limits.memory to at least {}",
            model::gib(needed)
        )),
        (Some(limit), _) if limit < needed => Some(format!(
            "raise resources.limits.memory of `{name}` from {} to at least {}",
            model::gib(limit),
            model::gib(needed)
        )),
        (_, Some(request)) if request < needed => Some(format!(
            "raise resources.requests.memory of `{name}` from {} to at least {}",
            model::gib(request),
            model::gib(needed)
        )),
        _ => None,
    }
}

/// Bytes as a whole number of GiB, rounded up, as a quantity (`160Gi`).
fn whole_gib(bytes: f64) -> String {
    format!("{}Gi", (bytes / 1024f64.powi(3)).ceil())
}

/// The operations that raise a container's memory limit and request to
/// `target` where they are below `needed` (or absent): a missing
/// `resources` or section is added whole, an existing value replaced.
fn raise_memory(
    container: &workload::Container<'_>,
    needed: f64,
    target: f64,
) -> Option<Vec<json_patch::PatchOperation>> {
    let value = json!(whole_gib(target));
    let resources = container
        .value
        .get("resources")
        .filter(|value| value.is_object());
    let Some(resources) = resources else {
        return Some(vec![op::add(
            &format!("{}/resources", container.pointer),
            json!({"limits": {"memory": value}, "requests": {"memory": value}}),
        )?]);
    };
    let mut operations = Vec::new();
    for section in ["limits", "requests"] {
        let current = resources
            .at(&format!("/{section}/memory"))
            .and_then(quantity::from_value);
        if current.is_some_and(|current| current >= needed) {
            continue;
        }
        let section_pointer = format!("{}/resources/{section}", container.pointer);
        let operation = match (
            resources.get(section).filter(|value| value.is_object()),
            current,
        ) {
            (None, _) => op::add(&section_pointer, json!({"memory": value}))?,
            (Some(_), Some(_)) => op::replace(&format!("{section_pointer}/memory"), value.clone())?,
            (Some(_), None) => op::add(&format!("{section_pointer}/memory"), value.clone())?,
        };
        operations.push(operation);
    }
    Some(operations)
}

/// The fix, and what keeps it from being safe (a memory limit that cannot
/// hold the model, or an explicit cache setting it overrides).
fn shm_fix(
    cx: &Context<'_>,
    template: &workload::PodTemplate<'_>,
    container: &workload::Container<'_>,
    cache: &model::CacheDir,
    shm_mount: Option<&workload::Mount<'_>>,
    bytes: f64,
) -> Option<(Fix, Option<String>)> {
    let models = &cx.policy.models;
    let mut operations = Vec::new();
    let mut blocker = None;
    // Point the cache at /dev/shm.
    match &cache.setting {
        CacheSetting::Env { name, index } => {
            blocker = Some(format!("it replaces the {name} the manifest sets"));
            if !model::is_shm(&cache.path) {
                operations.push(op::replace(
                    &format!("{}/env/{index}/value", container.pointer),
                    json!(fix_path(name, models)),
                )?);
            }
        }
        CacheSetting::Flag => return None,
        CacheSetting::Image { .. } | CacheSetting::Default => {
            // An image that only a flag moves: a person edits the command.
            let variable = cache.fix_env.as_deref()?;
            let entry = json!({"name": variable, "value": fix_path(variable, models)});
            operations.push(match container.value.get("env") {
                Some(Value::Array(_)) => op::add(&format!("{}/env/-", container.pointer), entry)?,
                _ => op::add(&format!("{}/env", container.pointer), json!([entry]))?,
            });
        }
    }
    // A memory-backed /dev/shm whose sizeLimit holds the model.
    let size_limit = model::size_limit_for(bytes, models.headroom_fraction);
    match shm_mount {
        Some(mount) => match mount.storage {
            Storage::Memory {
                size_limit: current,
            } => {
                if current.is_none_or(|current| current < bytes) {
                    let pointer =
                        format!("{}/emptyDir/sizeLimit", mount.volume_pointer.as_deref()?);
                    operations.push(op::add(&pointer, json!(size_limit))?);
                }
            }
            // A disk volume at /dev/shm: a person must choose.
            _ => return None,
        },
        None => operations.extend(workload::mount_new_shm(template, container, &size_limit)?),
    }
    if operations.is_empty() {
        return None;
    }
    // The cache is charged to the container's memory: the move is safe only
    // when its limit and request hold the model (shm-memory-budget's test).
    // Otherwise the fix raises them to the model, its headroom and the
    // server's own memory (`models.serverMemoryOverhead`), and is unsafe:
    // a pod that asks for more memory may no longer fit its node.
    let needed = bytes * (1.0 + models.headroom_fraction);
    if let Some(memory) = memory_blocker(container, needed) {
        let target = needed + models.server_memory_overhead.0;
        operations.extend(raise_memory(container, needed, target)?);
        blocker = Some(format!(
            "{memory}; the fix raises the container's memory request and limit to {} (the model, {:.0} % headroom and {} for the server itself, models.serverMemoryOverhead)",
            whole_gib(target),
            models.headroom_fraction * 100.0,
            model::gib(models.server_memory_overhead.0)
        ));
    }
    let applicability = if blocker.is_some() {
        Applicability::Unsafe
    } else {
        Applicability::Safe
    };
    Some((
        Fix::new(
            applicability,
            format!("cache the model in memory under /dev/shm (sizeLimit {size_limit})"),
            operations,
        ),
        blocker,
    ))
}
