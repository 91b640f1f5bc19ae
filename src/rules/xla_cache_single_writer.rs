use serde_json::{json, Value};

use crate::engine::{Context, Sink};
use crate::finding::{op, Fix, RelatedPatch};
use crate::object::Object;
use crate::rules::{declare_rule, Rule, RuleMeta};
use crate::workload::{env_value, mount_for, mounts, pod_templates, Storage};

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
    /// the same path and fail on concurrent writes (seed 001). The guide's
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
    /// ## Fix
    /// Sets `spec.replicas` and the HPA's `minReplicas` to 1 (unsafe: it
    /// changes capacity until someone scales up). The admission webhook
    /// enforces the warm-up instead: replicas start at 1 and cannot be raised
    /// until one replica has been Ready.
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
    pod_templates(object).iter().find_map(|template| {
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
    })
}

impl Rule for XlaCacheSingleWriter {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !crate::workload::is_workload_kind(object.kind()) {
            return;
        }
        // The shared cache is rare; look for it before the HPAs.
        let Some((value_pointer, path, kind)) = shared_cache_path(object) else {
            return;
        };
        let replicas = object
            .value
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let hpas: Vec<(usize, &Object, i64)> = cx
            .hpas_for(object)
            .into_iter()
            .filter_map(|(index, hpa)| {
                let min = hpa
                    .value
                    .pointer("/spec/minReplicas")
                    .map_or(Some(1), Value::as_i64)?;
                (min > 1).then_some((index, hpa, min))
            })
            .collect();
        if replicas <= 1 && hpas.is_empty() {
            return;
        }
        let mut starters = Vec::new();
        if replicas > 1 {
            starters.push(format!("spec.replicas is {replicas}"));
        }
        for (_, hpa, min) in &hpas {
            starters.push(format!(
                "HPA `{}` has minReplicas {min}",
                hpa.name().unwrap_or("?")
            ));
        }
        let mut fix = Fix::unsafe_(
            "start with one replica (scale up once it is Ready)",
            if replicas > 1 {
                op::replace("/spec/replicas", json!(1))
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            },
        );
        for (hpa_index, hpa, _) in &hpas {
            if let Some(operation) = op::replace("/spec/minReplicas", json!(1)) {
                fix.related.push(RelatedPatch {
                    object_index: *hpa_index,
                    object: hpa.id.clone(),
                    patch: json_patch::Patch(vec![operation]),
                });
            }
        }
        sink.report(
            value_pointer,
            format!(
                "{}, and VLLM_XLA_CACHE_PATH {path} is shared ({kind}): replicas starting together corrupt the XLA cache",
                starters.join(" and ")
            ),
        )
        .help("start with 1 replica, wait until it is Ready so that it fills the cache, then scale up; or remove VLLM_XLA_CACHE_PATH")
        .fix(fix);
    }
}
