use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::workload::{env_value, mount_for, mounts, pod_templates, PodTemplate, Storage};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds workloads that set `VLLM_XLA_CACHE_PATH` (vLLM on TPU) to a
    /// path on a shared volume (PersistentVolumeClaim, CSI bucket such as
    /// gcsfuse, NFS, hostPath) while more than one replica may start at
    /// once: `spec.replicas > 1`, or an HPA on the workload with
    /// `minReplicas > 1`. A pod-local `emptyDir` or the container's own
    /// filesystem is not shared and not at risk.
    ///
    /// ## Why is this bad?
    /// Replicas that start together all compile and write the XLA cache at
    /// the same path and fail on concurrent writes (GKE Inference Quickstart's
    /// troubleshooting section,
    /// cloud.google.com/kubernetes-engine/docs/how-to/machine-learning/inference-quickstart).
    /// The guide's
    /// two remedies: start with one replica, wait until it is Ready (the
    /// cache is filled), then scale up, and later replicas read the cache;
    /// or remove the variable and run without a cache.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   replicas: 3
    ///   template:
    ///     spec:
    ///       containers:
    ///       - name: vllm-tpu
    ///         env:
    ///         - name: VLLM_XLA_CACHE_PATH
    ///           value: /data/xla-cache      # on a gcsfuse bucket
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   replicas: 1    # scale up once the first replica is Ready
    /// ```
    ///
    /// The workload's own `spec.replicas` is reported on the workload; an
    /// HPA's `minReplicas` above 1 on such a workload is reported on the HPA
    /// (where it is written, and what the webhook reviews), unless the
    /// cluster shows the workload with a Ready replica.
    ///
    /// ## Fix
    /// Sets `spec.replicas`, or the HPA's `minReplicas`, to 1 (unsafe: it
    /// changes capacity until someone scales up). The admission webhook
    /// enforces the warm-up instead: replicas start at 1 and `kubectl scale`
    /// cannot raise them until one replica has been Ready.
    pub struct XlaCacheSingleWriter {
        id: "xla-cache-single-writer",
        severity: Error,
        summary: "A shared VLLM_XLA_CACHE_PATH must not be written by several replicas starting at once.",
        fixable: true,
    }
}

/// The rule id, for the admission webhook's warm-up gate.
pub const ID: &str = "xla-cache-single-writer";

/// Where a workload's pods write a shared XLA cache: (pointer of the
/// env value, path, kind of shared storage), if they do.
pub fn shared_cache_path(object: &Object) -> Option<(String, String, &'static str)> {
    pod_templates(object).iter().find_map(template_cache)
}

/// Where one template's pods write a shared XLA cache, if they do.
fn template_cache(template: &PodTemplate<'_>) -> Option<(String, String, &'static str)> {
    template.containers().iter().find_map(|container| {
        let (index, path) = env_value(container, "VLLM_XLA_CACHE_PATH")?;
        let container_mounts = mounts(template, container);
        match mount_for(&container_mounts, path).map(|mount| mount.storage.clone()) {
            Some(Storage::Shared(kind)) => Some((
                format!("{}/env/{index}/value", container.pointer),
                path.to_string(),
                kind,
            )),
            _ => None,
        }
    })
}

impl Rule for XlaCacheSingleWriter {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // The HPA is where its minReplicas is written: the finding about the
        // relationship goes on it, so that a webhook reviewing the HPA (with
        // its target fetched as context) reports it too.
        if crate::k8s::autoscaler::is_autoscaler(object) {
            check_hpa(cx, object, sink);
            return;
        }
        if !crate::k8s::workload::is_workload_kind(object.kind()) {
            return;
        }
        // The shared cache is rare; look for it before the replicas.
        let writers = cache_writers(cx, object);
        let Some(first) = writers.first() else {
            return;
        };
        let pods: i64 = writers.iter().map(|writer| writer.pods.count).sum();
        if pods <= 1 {
            return;
        }
        let (path, kind) = (&first.path, first.kind);
        let (message, fix) = match writers.as_slice() {
            // One template whose count is one replica field: set it to 1.
            [writer] if writer.pods.replicas_pointer.is_some() => {
                let field = writer.pods.replicas_pointer.clone().unwrap_or_default();
                let shown = field.trim_start_matches('/').replace('/', ".");
                let fix = Fix::unsafe_(
                    "start with one replica (scale up once it is Ready)",
                    op::replace(&field, json!(1)).into_iter().collect(),
                );
                (
                    format!(
                        "{shown} is {pods}, and VLLM_XLA_CACHE_PATH {path} is shared ({kind}): replicas starting together corrupt the XLA cache"
                    ),
                    Some(fix),
                )
            }
            _ => {
                let parts: Vec<String> = writers
                    .iter()
                    .map(|writer| {
                        let role = if writer.role.is_empty() {
                            "pod"
                        } else {
                            writer.role
                        };
                        let plural = if writer.pods.count == 1 { "" } else { "s" };
                        format!("{} {role}{plural}", writer.pods.count)
                    })
                    .collect();
                (
                    format!(
                        "{} pods ({}) start together on the shared VLLM_XLA_CACHE_PATH {path} ({kind}): they corrupt the XLA cache",
                        pods,
                        parts.join(", ")
                    ),
                    None,
                )
            }
        };
        let finding = sink
            .report(first.value_pointer.clone(), message)
            .help("start with one pod on the cache, wait until it is Ready so that it fills the cache, then scale up; or give each pod its own cache (an emptyDir), or remove VLLM_XLA_CACHE_PATH");
        if let Some(fix) = fix {
            finding.fix(fix);
        }
    }
}

/// A pod template whose containers write a shared XLA cache.
struct CacheWriter {
    value_pointer: String,
    path: String,
    kind: &'static str,
    role: &'static str,
    pods: crate::k8s::workload::PodCount,
}

/// The templates of a workload whose pods write a shared XLA cache. When
/// some of them request an accelerator, only those: the XLA cache is
/// written where XLA compiles (a Ray head without TPUs only carries the
/// variable).
fn cache_writers(cx: &Context<'_>, object: &Object) -> Vec<CacheWriter> {
    let accelerators = &cx.policy.inference.accelerator_resources;
    let mut writers: Vec<(bool, CacheWriter)> = Vec::new();
    for template in pod_templates(object) {
        // A template that starts no pod (a LeaderWorkerSet of size 1 has
        // no workers; a Ray group of 0 replicas) writes nothing.
        if template.pods.count <= 0 && template.pods.most <= 0 {
            continue;
        }
        let found = template_cache(&template);
        let Some((value_pointer, path, kind)) = found else {
            continue;
        };
        let accelerated = template.containers().iter().any(|container| {
            accelerators
                .iter()
                .any(|resource| container.resource(resource).is_some())
        });
        writers.push((
            accelerated,
            CacheWriter {
                value_pointer,
                path,
                kind,
                role: template.role,
                pods: template.pods.clone(),
            },
        ));
    }
    let any_accelerated = writers.iter().any(|(accelerated, _)| *accelerated);
    writers
        .into_iter()
        .filter(|(accelerated, _)| *accelerated || !any_accelerated)
        .map(|(_, writer)| writer)
        .collect()
}

fn check_hpa(cx: &Context<'_>, hpa: &Object, sink: &mut Sink) {
    // A ScaledObject's minReplicaCount is its HPA's minReplicas.
    let field = crate::k8s::autoscaler::min_pointer(hpa);
    let name_of_field = field.rsplit('/').next().unwrap_or(field);
    let Some(min) = hpa
        .value
        .at(field)
        .and_then(Value::as_i64)
        .filter(|min| *min > 1)
    else {
        return;
    };
    let Some(target) = cx.hpa_target(hpa) else {
        return;
    };
    let Some((_, path, kind)) = shared_cache_path(target) else {
        return;
    };
    // A target the cluster shows with a Ready replica has filled the cache:
    // more replicas only read it.
    let ready = target
        .value
        .at("/status/readyReplicas")
        .and_then(Value::as_i64)
        .is_some_and(|ready| ready > 0);
    if ready {
        return;
    }
    let name = target.name().unwrap_or("?");
    let fix = Fix::unsafe_(
        format!("set {name_of_field} to 1 (raise it once a replica has filled the cache)"),
        op::replace(field, json!(1)).into_iter().collect(),
    );
    sink.report(
        field,
        format!(
            "{name_of_field} {min} starts {min} replicas of `{name}` together on its shared XLA cache ({kind}); they corrupt it"
        ),
    )
    .help(format!(
        "start `{name}` with 1 replica until one is Ready and has filled {path}, then raise {name_of_field}; or remove VLLM_XLA_CACHE_PATH"
    ))
    .fix(fix);
}
