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
    /// A KServe InferenceService with `minReplicas: 0` on its predictor is
    /// read the same way: in Serverless mode Knative removes the last pod
    /// after idle (in raw mode KServe raises the minimum to 1 and nothing
    /// scales to zero).
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
        if object.kind() == "InferenceService" {
            check_inference_service(cx, object, sink);
            return;
        }
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
        report_cold_start(
            sink,
            pointer,
            &format!("minReplicaCount {min} lets KEDA scale `{name}`"),
            name,
            &load,
        )
        .help("keep a replica with minReplicaCount: 1, or state the choice with minReplicaCount: 0 and an activationThreshold")
        .maybe_fix(operation.map(|operation| {
            Fix::unsafe_("set minReplicaCount to 1", vec![operation])
        }));
    }
}

/// A KServe InferenceService whose predictor may scale to zero: Knative
/// (Serverless mode) removes the last pod after idle when `minReplicas`
/// is 0, and the next request waits for the model to load.
fn check_inference_service(cx: &Context<'_>, object: &Object, sink: &mut Sink) {
    if object.group() != "serving.kserve.io" {
        return;
    }
    // Raw mode runs no Knative (kserve-raw-autoscaling reports
    // minReplicas 0 there).
    let raw = crate::k8s::workload::kserve_raw_mode(object).is_some();
    if raw
        || object
            .value
            .at("/spec/predictor/minReplicas")
            .and_then(Value::as_i64)
            != Some(0)
    {
        return;
    }
    if cx.inference_reason(object).is_none() {
        return;
    }
    let Some(load) = serving::slowest_load(object, cx.policy) else {
        return;
    };
    if load.seconds < cx.policy.keda.cold_start_seconds.0 {
        return;
    }
    let name = object.name().unwrap_or("?");
    report_cold_start(
        sink,
        "/spec/predictor/minReplicas",
        &format!("minReplicas 0 lets Knative scale `{name}`"),
        name,
        &load,
    )
    .help("keep a replica with minReplicas: 1, or mark the choice with the infergate.dev/ignore annotation and a reason")
    .maybe_fix(
        op::replace("/spec/predictor/minReplicas", json!(1))
            .map(|operation| Fix::unsafe_("set minReplicas to 1", vec![operation])),
    );
}

/// "<who> to zero: the first request after idle waits ~N s while `model`
/// (size) loads", with its short form.
fn report_cold_start<'s>(
    sink: &'s mut Sink,
    pointer: &str,
    who: &str,
    name: &str,
    load: &serving::LoadEstimate,
) -> &'s mut crate::engine::Report {
    let report = sink.report(
        pointer,
        format!(
            "{who} to zero: the first request after idle waits ~{:.0} s while `{}` ({}) loads",
            load.seconds,
            load.model_id.rsplit('/').next().unwrap_or(&load.model_id),
            model::gib(load.bytes),
        ),
    );
    report.short(format!(
        "scale to zero: the first request waits ~{:.0} s for `{name}` to load",
        load.seconds
    ));
    report
}
