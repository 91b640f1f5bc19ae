use crate::input::pointer::Lookup;
use serde_json::json;

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::quantity;
use crate::k8s::model;
use crate::k8s::workload::{mount_for, mounts, pod_templates, Storage};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// When a serving container caches its model in `/dev/shm` (a
    /// memory-backed `emptyDir`), checks that the volume has a `sizeLimit`
    /// that fits the model and that the container's memory limit and
    /// request cover the model plus headroom (`models.headroomFraction`).
    ///
    /// ## Why is this bad?
    /// Files in a memory-backed emptyDir are charged to the pod's memory.
    /// Moving the Hugging Face cache to `/dev/shm` (GKE Inference
    /// Quickstart's remedy for boot-disk evictions) trades disk pressure for memory pressure: without
    /// a memory limit that holds the weights, the pod is OOM-killed or
    /// evicted for memory instead; without a `sizeLimit`, one pod can take
    /// the node's RAM.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    /// - name: HF_HOME
    ///   value: /dev/shm/hf_cache
    /// resources:
    ///   limits:
    ///     memory: 64Gi        # the 141 GB model does not fit
    /// volumes:
    /// - name: dshm
    ///   emptyDir:
    ///     medium: Memory      # no sizeLimit
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   limits:
    ///     memory: 160Gi
    ///   requests:
    ///     memory: 160Gi
    /// volumes:
    /// - name: dshm
    ///   emptyDir:
    ///     medium: Memory
    ///     sizeLimit: 146Gi
    /// ```
    ///
    /// ## Fix
    /// Adds a missing `sizeLimit` sized for the model (unsafe: it caps what
    /// the pod may write there). Memory limits are left to a person, who
    /// knows the rest of the pod's needs.
    pub struct ShmMemoryBudget {
        id: "shm-memory-budget",
        severity: Warning,
        summary: "A model cached in /dev/shm needs a sizeLimit and a memory limit that hold it.",
        fixable: true,
    }
}

impl Rule for ShmMemoryBudget {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() {
            return;
        }
        let models = &cx.policy.models;
        for template in pod_templates(object) {
            for container in &template.main_containers() {
                let cache = model::cache_dir(container, models);
                if !model::is_shm(&cache.path) {
                    continue;
                }
                let container_mounts = mounts(&template, container);
                let Some(shm) = mount_for(&container_mounts, &cache.path) else {
                    continue; // hf-home-shm-for-large-models reports a missing mount
                };
                let Storage::Memory { size_limit } = shm.storage else {
                    continue;
                };
                let size = model::model_of(container, models)
                    .filter(|model_ref| !model::is_local_or_bucket(&model_ref.id))
                    .and_then(|model_ref| {
                        model::size_of(object, &model_ref.id, models)
                            .map(|size| (model_ref.id, size))
                    });
                let needed = size
                    .as_ref()
                    .map(|(_, size)| size.bytes * (1.0 + models.headroom_fraction));
                let volume_pointer = shm.volume_pointer.clone().unwrap_or_default();
                let describe = |bytes: f64| model::gib(bytes);
                match (size_limit, &size) {
                    (None, _) => {
                        let fix = size.as_ref().and_then(|(_, size)| {
                            op::add(
                                &format!("{volume_pointer}/emptyDir/sizeLimit"),
                                json!(model::size_limit_for(size.bytes, models.headroom_fraction)),
                            )
                            .map(|operation| {
                                Fix::unsafe_("add a sizeLimit that fits the model", vec![operation])
                            })
                        });
                        sink.report(
                            format!("{volume_pointer}/emptyDir"),
                            format!("the memory-backed volume `{}` holding the model cache has no sizeLimit", shm.volume_name),
                        )
                        .short(format!("`{}` holds the model cache in memory with no sizeLimit: set one to the model size plus headroom", shm.volume_name))
                        .help("set emptyDir.sizeLimit to the model size plus headroom, so that one pod cannot take the node's memory")
                        .maybe_fix(fix);
                    }
                    (Some(limit), Some((id, model_size))) if limit < model_size.bytes => {
                        sink.report(
                            format!("{volume_pointer}/emptyDir/sizeLimit"),
                            format!(
                                "sizeLimit {} of `{}` is smaller than model `{id}` ({})",
                                describe(limit), shm.volume_name, describe(model_size.bytes)
                            ),
                        )
                        .short(format!(
                            "sizeLimit {} of `{}` is below the model's {}: raise it above the model size",
                            describe(limit), shm.volume_name, describe(model_size.bytes)
                        ))
                        .help(format!("raise the sizeLimit above the model size, or the pod is evicted while downloading (size from {})", model_size.source));
                    }
                    _ => {}
                }
                let Some(needed) = needed else { continue };
                let (id, model_size) = match &size {
                    Some(found) => found,
                    None => continue,
                };
                let memory_of = |section: &str| {
                    container
                        .value
                        .at(&format!("/resources/{section}/memory"))
                        .and_then(quantity::from_value)
                };
                for section in ["limits", "requests"] {
                    let pointer = format!("{}/resources/{section}/memory", container.pointer);
                    // A missing request defaults to the limit.
                    let memory = memory_of(section).or_else(|| {
                        (section == "requests")
                            .then(|| memory_of("limits"))
                            .flatten()
                    });
                    if section == "requests" && memory_of("requests").is_none() && memory.is_some()
                    {
                        continue; // the limit's finding covers it
                    }
                    let problem = match memory {
                        None => format!("has no memory {}", section.trim_end_matches('s')),
                        Some(bytes) if bytes < needed => format!(
                            "has a memory {} of {}",
                            section.trim_end_matches('s'),
                            describe(bytes)
                        ),
                        Some(_) => continue,
                    };
                    sink.report(
                        pointer,
                        format!(
                            "container `{}` caches `{id}` ({}) in memory but {problem}",
                            container.name().unwrap_or("?"),
                            describe(model_size.bytes)
                        ),
                    )
                    .short(format!(
                        "`{}` caches the model in memory: set resources.{section}.memory to {} or more",
                        container.name().unwrap_or("?"),
                        describe(needed)
                    ))
                    .help(format!(
                        "the cache is charged to the container's memory: set resources.{section}.memory to at least {} (model plus {:.0} % headroom) plus what the server itself needs",
                        describe(needed),
                        models.headroom_fraction * 100.0
                    ));
                }
            }
        }
    }
}
