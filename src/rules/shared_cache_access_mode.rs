use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::k8s::model;
use crate::k8s::workload::{env_value, mount_for, mounts, pod_templates, PodTemplate};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds inference workloads whose model weights, model cache or XLA
    /// cache (`VLLM_XLA_CACHE_PATH`) sit on a PersistentVolumeClaim whose
    /// access modes let only one node mount it (`ReadWriteOnce`,
    /// `ReadWriteOncePod`), while the workload can run more than one pod:
    /// `spec.replicas > 1`, an HPA or ScaledObject on it whose maximum is
    /// above 1, a LeaderWorkerSet whose groups hold several pods, or the
    /// templates of a Ray cluster or KServe component that mount the claim
    /// (worker group `replicas` x `numOfHosts`, its `maxReplicas` when
    /// `enableInTreeAutoscaling` is on, the head, KServe's `maxReplicas`,
    /// else `minReplicas`)
    /// starting two pods or more. The
    /// claim must be in the input (in the admission webhook: in the
    /// cluster); workloads pinned to one node (`nodeName`, a
    /// `kubernetes.io/hostname` node selector) are left alone.
    ///
    /// ## Why is this bad?
    /// A `ReadWriteOnce` volume attaches to one node. The first pod runs;
    /// a pod scheduled on any other node stays `ContainerCreating` with a
    /// `Multi-Attach error for volume … Volume is already used by pod(s)`
    /// (Kubernetes documentation, Persistent Volumes, Access Modes). The
    /// workload looks scaled and serves with one replica.
    ///
    /// ## Example
    /// ```yaml
    /// kind: PersistentVolumeClaim
    /// metadata: {name: models}
    /// spec:
    ///   accessModes: [ReadWriteOnce]
    /// ---
    /// kind: Deployment
    /// spec:
    ///   replicas: 3
    ///   template:
    ///     spec:
    ///       volumes:
    ///       - name: models
    ///         persistentVolumeClaim: {claimName: models}
    /// ```
    ///
    /// ## Use instead
    /// A claim with `ReadOnlyMany` (weights written once, read by every
    /// replica) or `ReadWriteMany` (Filestore, NFS, a bucket through a CSI
    /// driver), or a per-pod cache (`emptyDir`, StatefulSet
    /// `volumeClaimTemplates`).
    ///
    /// ## Fix
    /// None: the access modes a volume offers depend on its storage class.
    pub struct SharedCacheAccessMode {
        id: "shared-cache-access-mode",
        severity: Error,
        summary: "A model or XLA cache on a ReadWriteOnce claim cannot serve replicas on several nodes.",
        fixable: false,
    }
}

impl Rule for SharedCacheAccessMode {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() {
            return;
        }
        // Ray clusters and KServe components run several templates (a
        // head and worker groups, a predictor and its workers): count the
        // pods of the templates that mount each claim, from the kind's
        // layout in rules/workloads.yaml.
        // The others: the workload's replicas, raised by its autoscalers,
        // the same for every claim (`None` when counted per claim).
        let templates = pod_templates(object);
        let whole_workload = if matches!(
            object.kind(),
            "Deployment" | "StatefulSet" | "ReplicaSet" | "LeaderWorkerSet"
        ) {
            match pods_at_most(cx, object) {
                Some((pods, why)) if pods >= 2 => Some(why),
                _ => return,
            }
        } else {
            None
        };
        let single_node = &cx.policy.serving.single_node_access_modes;
        let models = &cx.policy.models;
        let mut reported: Vec<String> = Vec::new();
        for template in &templates {
            if pinned_to_one_node(template) {
                continue;
            }
            for container in template.main_containers() {
                let container_mounts = mounts(template, &container);
                let mut paths: Vec<(String, &str)> = Vec::new();
                let cache = model::cache_dir(&container, models);
                paths.push((cache.path.clone(), "model cache"));
                if let Some(model_ref) = model::model_of(&container, models) {
                    if model_ref.id.starts_with('/') {
                        paths.push((model_ref.id.clone(), "model weights"));
                    }
                }
                if let Some((_, path)) = env_value(&container, "VLLM_XLA_CACHE_PATH") {
                    paths.push((path.to_string(), "XLA cache"));
                }
                for (path, what) in paths {
                    let Some(mount) = mount_for(&container_mounts, &path) else {
                        continue;
                    };
                    let Some(volume_pointer) = &mount.volume_pointer else {
                        continue;
                    };
                    let claim_pointer = format!("{volume_pointer}/persistentVolumeClaim/claimName");
                    let Some(claim_name) = object.value.at(&claim_pointer).and_then(Value::as_str)
                    else {
                        continue;
                    };
                    if reported.contains(&claim_pointer) {
                        continue;
                    }
                    let why = match &whole_workload {
                        Some(why) => why.clone(),
                        None => {
                            let pods = pods_mounting(&templates, claim_name);
                            if pods < 2 {
                                continue;
                            }
                            format!("up to {pods} of its pods mount it")
                        }
                    };
                    let Some(claim) = cx
                        .named(object, claim_name)
                        .map(|(_, candidate)| candidate)
                        .find(|candidate| {
                            candidate.kind() == "PersistentVolumeClaim"
                                && cx.paired(candidate, object)
                        })
                    else {
                        continue;
                    };
                    let modes: Vec<&str> = claim
                        .value
                        .at("/spec/accessModes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if modes.is_empty()
                        || !modes
                            .iter()
                            .all(|mode| single_node.iter().any(|known| known == mode))
                    {
                        continue;
                    }
                    reported.push(claim_pointer.clone());
                    sink.report(
                        claim_pointer,
                        format!(
                            "`{path}` ({what}) is on {} claim `{claim_name}`, but {why}: pods on a second node hit Multi-Attach",
                            modes.join("/")
                        ),
                    )
                    .short(format!(
                        "claim `{claim_name}` is {} but {why}",
                        modes.join("/")
                    ))
                    .help("use a ReadOnlyMany or ReadWriteMany claim (Filestore, NFS, a bucket CSI driver), or a per-pod cache");
                }
            }
        }
    }
}

/// The pods of the templates whose volumes hold `claim`.
fn pods_mounting(templates: &[PodTemplate<'_>], claim: &str) -> i64 {
    templates
        .iter()
        .filter(|template| {
            template.volumes().any(|volume| {
                volume
                    .at("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    == Some(claim)
            })
        })
        .map(|template| template.pods.most)
        .sum()
}

/// The most pods the workload may run at once, and why, in words.
fn pods_at_most(cx: &Context<'_>, workload: &Object) -> Option<(i64, String)> {
    let read = |pointer: &str| workload.value.at(pointer).and_then(Value::as_i64);
    let replicas = read("/spec/replicas").unwrap_or(1);
    let autoscaled = cx
        .autoscalers_of(workload)
        .filter_map(|(_, autoscaler)| {
            autoscaler::replica_range(autoscaler, cx.policy)
                .1
                .map(|max| (max, autoscaler))
        })
        .max_by_key(|(max, _)| *max);
    if workload.kind() == "LeaderWorkerSet" {
        let size = read("/spec/leaderWorkerTemplate/size").unwrap_or(1);
        let groups = autoscaled.map_or(replicas, |(max, _)| max.max(replicas));
        let pods = groups.saturating_mul(size);
        return Some((pods, format!("{groups} group(s) of {size} pods may run")));
    }
    match autoscaled {
        Some((max, autoscaler)) if max > replicas => Some((
            max,
            format!(
                "{} `{}` may run {max}",
                autoscaler.kind(),
                autoscaler.name().unwrap_or("?")
            ),
        )),
        _ => Some((replicas, format!("it runs {replicas} replicas"))),
    }
}

/// Whether every pod of the template lands on one named node.
fn pinned_to_one_node(template: &PodTemplate<'_>) -> bool {
    let Some(spec) = template.spec() else {
        return false;
    };
    spec.get("nodeName").and_then(Value::as_str).is_some()
        || spec.at("/nodeSelector/kubernetes.io~1hostname").is_some()
}
