use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::k8s::model;
use crate::k8s::serving;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds KEDA ScaledObjects that may scale a model server to zero
    /// (`minReplicaCount: 0`, KEDA's default) when its model takes long to
    /// load: the load estimate of model-server-startup-probe (the model's
    /// size over `serving.startup`'s throughput, plus the server's start)
    /// at or above `keda.coldStartSeconds` (120 s) in rules/keda.yaml. The
    /// target workload must be in the input (in the admission webhook: in
    /// the cluster).
    ///
    /// Quiet when the choice is stated: `minReplicaCount: 0` written out
    /// together with an `activationThreshold` on a trigger (the author has
    /// decided when to wake up), or the `infergate.dev/ignore` annotation
    /// with a reason.
    ///
    /// ## Why is this bad?
    /// After `cooldownPeriod` (300 s by default) without an active trigger
    /// KEDA scales the workload to zero. The next request waits for a pod
    /// to be scheduled, the model to be downloaded or read and the server
    /// to start: minutes for a large model, well past most clients'
    /// timeouts. Scale-to-zero saves accelerators for batch or rarely used
    /// models; for a served endpoint it turns every quiet night into a
    /// failed first request.
    ///
    /// ## Example
    /// ```yaml
    /// kind: ScaledObject
    /// spec:
    ///   scaleTargetRef: {name: llama-70b}     # 141 GB to download
    ///   triggers:
    ///   - type: prometheus
    ///     metadata: {query: 'sum(vllm:num_requests_waiting{namespace="serving"})', threshold: "5"}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   minReplicaCount: 1
    /// ```
    ///
    /// ## Fix
    /// Sets `minReplicaCount: 1` (unsafe: one replica then runs at all
    /// times).
    pub struct ScaleToZeroColdStart {
        id: "scale-to-zero-cold-start",
        severity: Warning,
        summary: "A KEDA ScaledObject that scales a slow-loading model server to zero makes the first request after idle wait for the whole load.",
        fixable: true,
    }
}

impl Rule for ScaleToZeroColdStart {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !autoscaler::is_scaled_object(object) {
            return;
        }
        let written = object.value.at("/spec/minReplicaCount");
        let (min, _) = autoscaler::replica_range(object, cx.policy);
        if min > 0 {
            return;
        }
        let activation = object
            .value
            .at("/spec/triggers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|trigger| trigger.at("/metadata/activationThreshold").is_some());
        if written.is_some() && activation {
            return;
        }
        let Some(target) = cx.hpa_target(object) else {
            return;
        };
        if cx.inference_reason(target).is_none() {
            return;
        }
        let slowest = serving::slowest_load(target, cx.policy);
        let Some(load) = slowest else { return };
        if load.seconds < cx.policy.keda.cold_start_seconds.0 {
            return;
        }
        let pointer = if written.is_some() {
            "/spec/minReplicaCount"
        } else {
            "/spec"
        };
        let operation = if written.is_some() {
            op::replace("/spec/minReplicaCount", json!(1))
        } else {
            op::add("/spec/minReplicaCount", json!(1))
        };
        let name = target.name().unwrap_or("?");
        sink.report(
            pointer,
            format!(
                "minReplicaCount {min} lets KEDA scale `{name}` to zero: the first request after idle waits ~{:.0} s while `{}` ({}) loads",
                load.seconds,
                load.model_id.rsplit('/').next().unwrap_or(&load.model_id),
                model::gib(load.bytes),
            ),
        )
        .short(format!(
            "scale to zero: the first request waits ~{:.0} s for `{name}` to load",
            load.seconds
        ))
        .help("keep a replica with minReplicaCount: 1, or state the choice with minReplicaCount: 0 and an activationThreshold")
        .maybe_fix(operation.map(|operation| {
            Fix::unsafe_("set minReplicaCount to 1", vec![operation])
        }));
    }
}
