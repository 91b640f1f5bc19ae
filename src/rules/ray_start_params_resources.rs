use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::{op, Fix, Severity};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::ray;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Compares the `num-gpus` a KubeRay head or worker group gives
    /// `ray start` (`rayStartParams`) with the GPUs its Ray container is
    /// limited to (a resource ending in `/gpu`: `nvidia.com/gpu`,
    /// `amd.com/gpu`), in RayClusters, RayServices and RayJobs. The Ray
    /// container is the first container of the group's pod template, as
    /// KubeRay reads it.
    ///
    /// More GPUs in `num-gpus` than the container has is an error; fewer is
    /// a warning (the GPUs the pod holds beyond it are never used by Ray).
    /// Without `num-gpus`, KubeRay takes the container's limit, which is
    /// what the KubeRay documentation recommends.
    ///
    /// ## Why is this bad?
    /// Ray schedules by the resources a node advertises, not by what the
    /// pod really has. A worker that claims 4 GPUs with 1 in its pod gets
    /// four GPU actors (a vLLM engine with `tensor_parallel_size: 4` lands
    /// there) that share one device: they fail on CUDA out of memory or
    /// wait forever for their devices. A worker that claims fewer than it
    /// holds keeps expensive GPUs idle. KubeRay's "Default Ray Start
    /// Parameters" guide: `--num-gpus` defaults to the Ray container's
    /// resource limit; change the limit instead of this option.
    ///
    /// ## Example
    /// ```yaml
    /// workerGroupSpecs:
    ///   - rayStartParams: {num-gpus: "4"}
    ///     template:
    ///       spec:
    ///         containers:
    ///           - resources: {limits: {nvidia.com/gpu: 1}}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   - rayStartParams: {}
    ///     template:
    ///       spec:
    ///         containers:
    ///           - resources: {limits: {nvidia.com/gpu: 4}}
    /// ```
    ///
    /// ## Fix
    /// Removes `num-gpus` from `rayStartParams`, so that Ray advertises the
    /// GPUs the container has (safe when it claims more than there are: no
    /// more can be used; unsafe when it claims fewer, since a person may
    /// have kept GPUs from Ray on purpose).
    pub struct RayStartParamsResources {
        id: "ray-start-params-resources",
        severity: Error,
        summary: "A Ray group's rayStartParams num-gpus must match the GPUs its Ray container is limited to.",
        fixable: true,
    }
}

/// "1 GPU", "4 GPUs".
fn gpus(count: f64) -> String {
    if count == 1.0 {
        "1 GPU".to_string()
    } else {
        format!("{count} GPUs")
    }
}

impl Rule for RayStartParamsResources {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, _cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let Some(spec) = ray::cluster_spec(object) else {
            return;
        };
        for group in ray::groups(object, spec) {
            let at = ray::param_pointer(&group, "num-gpus");
            let Some(declared) = object.value.at(&at).and_then(ray::param_number) else {
                continue;
            };
            let Some(container) = ray::ray_container(object, &group) else {
                continue;
            };
            let has = ray::container_gpus(container).unwrap_or(0.0);
            if (declared - has).abs() < f64::EPSILON {
                continue;
            }
            let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
            // A mapping left empty is written `{}`: `rayStartParams:` alone
            // would read as null.
            let params = format!("{}/rayStartParams", group.pointer);
            let only_key = object
                .value
                .at(&params)
                .and_then(Value::as_object)
                .is_some_and(|map| map.len() == 1);
            let remove = if only_key {
                op::replace(&params, serde_json::json!({}))
            } else {
                op::remove(&at)
            };
            if declared > has {
                sink.report(
                    at,
                    format!("num-gpus {declared} in rayStartParams, but the Ray container `{name}` has {}: Ray schedules GPU work the pod cannot run", gpus(has)),
                )
                .short(format!("num-gpus {declared}, the container has {}", gpus(has)))
                .help("remove num-gpus (KubeRay then reads the container's GPU limit), or raise the container's GPU limit to it")
                .maybe_fix(remove.map(|operation| Fix::safe("remove rayStartParams num-gpus", vec![operation])));
            } else {
                sink.report(
                    at,
                    format!("num-gpus {declared} in rayStartParams, but the Ray container `{name}` holds {}: Ray never uses the others", gpus(has)),
                )
                .severity(Severity::Warning)
                .short(format!("num-gpus {declared}, the container holds {}", gpus(has)))
                .help("remove num-gpus (KubeRay then reads the container's GPU limit), or lower the container's GPU limit to it")
                .maybe_fix(remove.map(|operation| Fix::unsafe_("remove rayStartParams num-gpus", vec![operation])));
            }
        }
    }
}
