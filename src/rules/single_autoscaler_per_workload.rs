use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds workloads scaled by two autoscalers: two HorizontalPodAutoscalers
    /// (any version), or an HPA and a KEDA ScaledObject, whose
    /// `scaleTargetRef` names the same kind and name in the same namespace,
    /// applied together: in one file, one kustomization or one stream
    /// (stdin, the cluster). Files that merely share a directory are often
    /// alternatives and are not compared.
    /// The second one (in input order; in the admission webhook, the object
    /// under review when the cluster already has the first) is reported at
    /// its `scaleTargetRef`, naming the first. The HPA that KEDA creates
    /// for a ScaledObject (owned by it) is the ScaledObject's own and not
    /// counted.
    ///
    /// ## Why is this bad?
    /// Each autoscaler sets the workload's replicas from its own metrics
    /// and its own range, without knowing of the other: replicas flap
    /// between their answers at every sync, and scale-down of one undoes
    /// the scale-up of the other. The Kubernetes documentation of the HPA
    /// warns against several HPAs on one target; KEDA turns a ScaledObject
    /// into an HPA of its own, so an HPA beside it is the same conflict.
    ///
    /// ## Example
    /// ```yaml
    /// kind: HorizontalPodAutoscaler
    /// metadata: {name: vllm-queue}
    /// spec:
    ///   scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
    /// ---
    /// kind: HorizontalPodAutoscaler
    /// metadata: {name: vllm-kv-cache}
    /// spec:
    ///   scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
    /// ```
    ///
    /// ## Use instead
    /// One HPA with both metrics: the HPA scales to the largest of the
    /// replica counts its metrics ask for.
    ///
    /// ## Fix
    /// None: which autoscaler to keep, and how to merge their metrics, is
    /// the author's choice.
    pub struct SingleAutoscalerPerWorkload {
        id: "single-autoscaler-per-workload",
        severity: Error,
        summary: "A workload must be scaled by one autoscaler: two HPAs, or an HPA and a KEDA ScaledObject, fight.",
        fixable: false,
    }
}

impl Rule for SingleAutoscalerPerWorkload {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !autoscaler::is_autoscaler(object) || autoscaler::is_keda_owned(object) {
            return;
        }
        let Some(target) = autoscaler::scale_target(object) else {
            return;
        };
        let Some(position) = cx.position(object) else {
            return;
        };
        // Autoscalers of one kind and name are one object written twice
        // (alternatives side by side): applying both keeps the last.
        let Some((_, first)) = cx
            .fellow_autoscalers(object)
            .filter(|(index, other)| {
                *index < position
                    && cx.applied_together(other, object)
                    // Both in one namespace, as far as can be told: one
                    // without a namespace and one with is not a conflict
                    // that can be shown.
                    && cx.namespace_of(other) == cx.namespace_of(object)
                    && !(other.kind() == object.kind() && other.name() == object.name())
            })
            .min_by_key(|(index, _)| *index)
        else {
            return;
        };
        // A ScaledObject's HPA is named keda-hpa-<name>: an HPA of that
        // name beside its ScaledObject is KEDA's, read from a cluster.
        let keda_pair = |hpa: &Object, scaled: &Object| {
            autoscaler::is_hpa(hpa)
                && autoscaler::is_scaled_object(scaled)
                && hpa.name()
                    == scaled
                        .name()
                        .map(|name| format!("keda-hpa-{name}"))
                        .as_deref()
        };
        if keda_pair(object, first) || keda_pair(first, object) {
            return;
        }
        let describe = |autoscaler: &Object| {
            let kind = if autoscaler::is_hpa(autoscaler) {
                "HPA"
            } else {
                autoscaler.kind()
            };
            format!("{kind} `{}`", autoscaler.name().unwrap_or("?"))
        };
        sink.report(
            target.pointer,
            format!(
                "{} `{}` is already scaled by {}; two autoscalers set its replicas against each other",
                target.kind,
                target.name,
                describe(first)
            ),
        )
        .short(format!(
            "`{}` is already scaled by {}",
            target.name,
            describe(first)
        ))
        .help("keep one autoscaler and give it every metric: an HPA scales to the largest replica count its metrics ask for");
    }
}
