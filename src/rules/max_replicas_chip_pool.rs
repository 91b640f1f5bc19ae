use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix, Severity};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::policy::AcceleratorPool;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// For an HPA whose target is in the input, computes the accelerator
    /// chips one replica needs (the sum of the accelerator limits of its
    /// containers; for a LeaderWorkerSet, of the whole group) and compares
    /// `maxReplicas` x chips with the node pool the pods select. Pools are
    /// policy data (`acceleratorPools`: node labels, chips, optional
    /// autoscaling maximum `maxChips`), recognised from the pod's
    /// `nodeSelector` or required node affinity. In the admission webhook
    /// with a cluster client, the Nodes matching the pod's `nodeSelector`
    /// make a pool too (their allocatable accelerators; no maximum known).
    /// A workload that no HPA or ScaledObject governs is checked the same
    /// way with its own `spec.replicas` (a LeaderWorkerSet's groups x its
    /// group's chips).
    ///
    /// - beyond the pool's chips: warning, with the largest `maxReplicas`
    ///   that fits;
    /// - beyond `maxChips`, or `minReplicas` beyond it: error, the pool can
    ///   never hold them.
    ///
    /// ## Why is this bad?
    /// Replicas beyond the pool wait for the cluster autoscaler to add
    /// nodes, which adds minutes of scale-up latency exactly when load
    /// rises. In GKE's "Configure autoscaling for LLM workloads on TPUs"
    /// (cloud.google.com/kubernetes-engine/docs/how-to/machine-learning/inference/autoscaling-tpu)
    /// the JetStream example needs 8 chips per replica in a
    /// 16-chip pool, so maxReplicas is 2; higher values trigger the cluster
    /// autoscaler and slow scale-up.
    ///
    /// ## Example
    /// ```yaml
    /// # pool tpu-v5e-2x4: 16 chips; each replica asks google.com/tpu: 8
    /// spec:
    ///   minReplicas: 1
    ///   maxReplicas: 4
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   minReplicas: 1
    ///   maxReplicas: 2
    /// ```
    ///
    /// ## Fix
    /// Lowers `maxReplicas` (or the workload's `replicas`) to what the pool
    /// holds now (unsafe: growing the pool may be the better answer).
    pub struct MaxReplicasChipPool {
        id: "max-replicas-chip-pool",
        severity: Warning,
        summary: "HPA maxReplicas (or an unscaled workload's replicas) x chips per replica should fit the accelerator node pool.",
        fixable: true,
    }
}

impl Rule for MaxReplicasChipPool {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // Pools of the policy first, then those the cluster's Nodes describe.
        let pools = crate::engine::pools::known(cx);
        if pools.is_empty() {
            return;
        }
        if crate::k8s::workload::is_workload_kind(object.kind()) {
            check_replicas(cx, object, &pools, sink);
            return;
        }
        if !autoscaler::is_autoscaler(object) {
            return;
        }
        let Some(target) = cx.hpa_target(object) else {
            return;
        };
        let Some((chips, pool)) = crate::engine::pools::of_workload(cx, target, &pools) else {
            return;
        };
        // A ScaledObject's fields, with KEDA's defaults, read like an HPA's.
        let (min, Some(max)) = autoscaler::replica_range(object, cx.policy) else {
            return;
        };
        let (min_field, max_field) = (
            autoscaler::min_pointer(object),
            autoscaler::max_pointer(object),
        );
        let field_name = |pointer: &str| pointer.rsplit('/').next().unwrap_or_default().to_string();
        let (min_name, max_name) = (field_name(min_field), field_name(max_field));
        let fits = (pool.chips / chips).floor() as i64;
        if let Some(max_chips) = pool.max_chips {
            let ceiling = (max_chips / chips).floor() as i64;
            if min as f64 * chips > max_chips {
                sink.report(
                    min_field,
                    format!(
                        "{min_name} {min} x {chips} chips per replica needs {} chips; pool `{}` can grow to {max_chips} at most",
                        min as f64 * chips, pool.name
                    ),
                )
                .short(format!(
                    "{min_name} {min} needs {} chips, past the pool's maximum {max_chips}: lower it to {ceiling}",
                    min as f64 * chips
                ))
                .help(format!("at most {ceiling} replicas fit the pool's autoscaling maximum"))
                .severity(Severity::Error);
                return;
            }
            if max as f64 * chips > max_chips {
                sink.report(
                    max_field,
                    format!(
                        "{max_name} {max} x {chips} chips per replica needs {} chips; pool `{}` can never hold more than {max_chips}",
                        max as f64 * chips, pool.name
                    ),
                )
                .short(format!(
                    "{max_name} {max} needs {} chips, past the pool's maximum {max_chips}: lower it to {ceiling}",
                    max as f64 * chips
                ))
                .help(format!("set {max_name} to {ceiling} or less, or raise the pool's autoscaling maximum"))
                .severity(Severity::Error)
                .maybe_fix(lower_max(object, max_field, fits.max(min)));
                return;
            }
        }
        if max as f64 * chips > pool.chips {
            sink.report(
                max_field,
                format!(
                    "{max_name} {max} x {chips} chips per replica needs {} chips, more than the {} of pool `{}`; replicas beyond {fits} wait minutes for the cluster autoscaler",
                    max as f64 * chips, pool.chips, pool.name
                ),
            )
            .short(format!(
                "{max_name} {max} needs {} chips, the pool has {}: replicas past {fits} wait for nodes",
                max as f64 * chips,
                pool.chips
            ))
            .help(format!("the largest {max_name} that fits the pool is {fits}"))
            .maybe_fix(lower_max(object, max_field, fits.max(min)));
        }
    }
}

/// A workload that no autoscaler governs: its own `spec.replicas` (a
/// LeaderWorkerSet's groups) x chips per replica against the pool.
fn check_replicas(
    cx: &Context<'_>,
    workload: &Object,
    pools: &[&AcceleratorPool],
    sink: &mut Sink,
) {
    if cx.autoscalers_of(workload).next().is_some() {
        return;
    }
    let Some((chips, pool)) = crate::engine::pools::of_workload(cx, workload, pools) else {
        return;
    };
    let Some(replicas) = workload.value.at("/spec/replicas").and_then(Value::as_i64) else {
        return;
    };
    let needed = replicas as f64 * chips;
    let fits = (pool.chips / chips).floor() as i64;
    let fix = op::replace("/spec/replicas", json!(fits.max(1)))
        .map(|operation| Fix::unsafe_(format!("set replicas to {}", fits.max(1)), vec![operation]));
    if let Some(max_chips) = pool.max_chips {
        if needed > max_chips {
            let ceiling = (max_chips / chips).floor() as i64;
            sink.report(
                "/spec/replicas",
                format!(
                    "replicas {replicas} x {chips} chips per replica needs {needed} chips; pool `{}` can grow to {max_chips} at most",
                    pool.name
                ),
            )
            .short(format!(
                "replicas {replicas} need {needed} chips, past the pool's maximum {max_chips}: use {ceiling}"
            ))
            .help(format!("at most {ceiling} replicas fit the pool's autoscaling maximum"))
            .severity(Severity::Error)
            .maybe_fix(fix);
            return;
        }
    }
    if needed > pool.chips {
        sink.report(
            "/spec/replicas",
            format!(
                "replicas {replicas} x {chips} chips per replica needs {needed} chips, more than the {} of pool `{}`; replicas beyond {fits} wait for the cluster autoscaler",
                pool.chips, pool.name
            ),
        )
        .short(format!(
            "replicas {replicas} need {needed} chips, the pool has {}: replicas past {fits} wait for nodes",
            pool.chips
        ))
        .help(format!("the most replicas that fit the pool is {fits}"))
        .maybe_fix(fix);
    }
}

fn lower_max(object: &Object, field: &str, value: i64) -> Option<Fix> {
    let name = field.rsplit('/').next().unwrap_or(field);
    // KEDA's default maxReplicaCount (100) may not be written: add it.
    let operation = if object.value.at(field).is_some() {
        op::replace(field, json!(value))
    } else {
        op::add(field, json!(value))
    };
    operation.map(|operation| Fix::unsafe_(format!("set {name} to {value}"), vec![operation]))
}
