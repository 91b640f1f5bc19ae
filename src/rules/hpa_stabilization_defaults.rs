use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix, Severity};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::quantity;
use crate::k8s::autoscaler;
use crate::k8s::metrics::{classify, hpa_metrics, HpaVersion};
use crate::policy::{HpaBehavior, MetricFamily};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the scaling `behavior` in force on an HPA of an inference
    /// workload, and warns only where it hurts:
    ///
    /// - a scale-down stabilization window shorter than the policy minimum
    ///   (`hpaBehavior.minScaleDownStabilizationSeconds`, 300 s) is a warning;
    /// - a scale-up window above 0 on a queue-size metric is a warning;
    /// - a queue-size target below `hpaBehavior.lowQueueTarget` (10) with
    ///   the default scale-up policies is a warning, unless the default
    ///   (4 pods or 100 % every 15 s) already reaches `maxReplicas` from
    ///   `minReplicas` in one period;
    /// - no `behavior` at all is an `info`: Kubernetes' defaults (300 s
    ///   down, 0 s up) are what this rule recommends, so stating them only
    ///   makes the choice visible; an `autoscaling/v1` HPA, which cannot
    ///   state a behavior, gets an info that says to convert it.
    ///
    /// One finding per HPA and cause.
    ///
    /// A KEDA ScaledObject is read the same way: its
    /// `advanced.horizontalPodAutoscalerConfig.behavior` is the behavior of
    /// the HPA KEDA generates, and its Prometheus triggers' thresholds are
    /// the targets.
    ///
    /// An HPA is in scope when its `scaleTargetRef` is an inference workload
    /// of the input, or, when the target is not in the input, when it scales
    /// on a known inference metric.
    ///
    /// ## Why is this bad?
    /// Model servers take minutes to start and load weights. GKE's "Best
    /// practices for autoscaling large language model (LLM) inference
    /// workloads with TPUs"
    /// (cloud.google.com/kubernetes-engine/docs/best-practices/machine-learning/inference/autoscaling-tpu)
    /// recommends a 5-minute scale-down window (no premature scale-down) and
    /// 0 for scale-up (responsiveness), and for queue targets below 10 to tune
    /// the scale-up policies for traffic spikes. Writing the behavior down
    /// makes the choice visible and reviewable instead of implicit.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   minReplicas: 1
    ///   maxReplicas: 5
    ///   metrics: [...]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   behavior:
    ///     scaleDown:
    ///       stabilizationWindowSeconds: 300
    ///     scaleUp:
    ///       stabilizationWindowSeconds: 0
    /// ```
    ///
    /// ## Fix
    /// Adds the explicit stabilization windows from the policy
    /// (`hpaBehavior`): safe, as a 300 s scale-down and 0 s scale-up window
    /// are the Kubernetes defaults. Raising a short scale-down window or
    /// zeroing a scale-up window changes how the HPA acts and is offered as
    /// an unsafe fix. Scale-up policies for a low queue target have no fix:
    /// policies equal to the Kubernetes defaults (4 pods or 100 % every
    /// 15 s, which the apiserver writes into every HPA) count as not tuned,
    /// and the tuned values depend on the load.
    pub struct HpaStabilizationDefaults {
        id: "hpa-stabilization-defaults",
        severity: Warning,
        summary: "Inference HPAs should state scale-down (300 s) and scale-up (0 s) stabilization and, for low queue targets, tuned scale-up policies.",
        fixable: true,
    }
}

impl Rule for HpaStabilizationDefaults {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A patch states only what it changes: its behavior is the base's.
        if !cx.is_inference_hpa(object) || crate::k8s::workload::is_fragment(object) {
            return;
        }
        let settings = &cx.policy.hpa_behavior;
        let all_metrics = hpa_metrics(object);
        let queue_metrics: Vec<_> = all_metrics
            .iter()
            .filter(|metric| {
                metric
                    .name
                    .and_then(|name| classify(name, cx.policy))
                    .is_some_and(|(family, _)| family == MetricFamily::Queue)
            })
            .collect();
        let has_queue_metric = !queue_metrics.is_empty();
        let queue_targets: Vec<f64> = queue_metrics
            .iter()
            .filter_map(|metric| {
                let value = metric.target.as_ref()?.value.as_ref()?;
                matches!(value.field, "averageValue" | "value")
                    .then(|| quantity::from_value(value.value))
                    .flatten()
            })
            .collect();
        // The default scale-up (4 pods or 100 % every 15 s, the larger)
        // already reaches maxReplicas from minReplicas in one period: no
        // tuning of it follows a spike faster.
        let (min, max) = autoscaler::replica_range(object, cx.policy);
        let min = min.max(1);
        let one_period_reaches_max =
            max.is_some_and(|max| max - min <= DEFAULT_SCALE_UP_PODS || max <= 2 * min);
        let low_queue_target = queue_targets
            .iter()
            .copied()
            .find(|target| *target < settings.low_queue_target)
            .filter(|_| !one_period_reaches_max);

        let base = autoscaler::behavior_pointer(object);
        let Some(behavior) = object.value.at(base).filter(|value| value.is_object()) else {
            let value = json!({
                "scaleDown": {"stabilizationWindowSeconds": settings.scale_down_stabilization_seconds},
                "scaleUp": {"stabilizationWindowSeconds": settings.scale_up_stabilization_seconds},
            });
            if !HpaVersion::of(object).has_behavior() {
                // autoscaling/v1 cannot state a behavior at all, and the
                // removed v2beta versions are converted first (schema-strict).
                let api_version = &object.id.api_version;
                let convert = "convert it to autoscaling/v2 (schema-strict's fix does) to state or tune its behavior";
                match low_queue_target {
                    Some(target) => {
                        report_untuned_scale_up(sink, base, target, settings).help(format!(
                            "{convert}, then state behavior.scaleUp.policies sized for a burst"
                        ));
                    }
                    None => {
                        sink.report(
                            base,
                            format!("{api_version} HPA: Kubernetes' default behavior applies (scale-down window {} s, scale-up {} s); it cannot state another", settings.scale_down_stabilization_seconds, settings.scale_up_stabilization_seconds),
                        )
                        .severity(Severity::Info)
                        .help(convert);
                    }
                }
                return;
            }
            // A ScaledObject's goes to advanced.horizontalPodAutoscalerConfig.
            let fix = autoscaler::add_behavior(object, value).map(|operation| {
                Fix::safe(
                    "add explicit scale-down and scale-up behavior",
                    vec![operation],
                )
            });
            // One finding per HPA and cause: a low queue target that the
            // default scale-up cannot follow is the one that matters (its
            // policies depend on the load: no fix).
            if let Some(target) = low_queue_target {
                report_untuned_scale_up(sink, base, target, settings);
                return;
            }
            let what = if autoscaler::is_scaled_object(object) {
                "inference ScaledObject states no HPA behavior"
            } else {
                "inference HPA has no behavior"
            };
            sink.report(
                base,
                format!(
                    "{what}: Kubernetes' defaults apply (scale-down window {} s, scale-up {} s), which suit a model server",
                    settings.scale_down_stabilization_seconds, settings.scale_up_stabilization_seconds
                ),
            )
            .severity(Severity::Info)
            .short(format!(
                "no behavior: the defaults apply (scaleDown {} s, scaleUp {} s); state them to make the choice visible",
                settings.scale_down_stabilization_seconds, settings.scale_up_stabilization_seconds
            ))
            .help(format!(
                "stating behavior.scaleDown.stabilizationWindowSeconds: {} and behavior.scaleUp.stabilizationWindowSeconds: {} changes nothing but makes the choice reviewable",
                settings.scale_down_stabilization_seconds, settings.scale_up_stabilization_seconds
            ))
            .maybe_fix(fix);
            return;
        };

        let window = |direction: &str| {
            behavior
                .at(&format!("/{direction}/stabilizationWindowSeconds"))
                .and_then(Value::as_i64)
        };
        if let Some(seconds) = window("scaleDown") {
            if seconds < settings.min_scale_down_stabilization_seconds {
                let pointer = format!("{base}/scaleDown/stabilizationWindowSeconds");
                sink.report(pointer.clone(), format!(
                    "scale-down stabilization window is {seconds} s, shorter than {} s; replicas that took minutes to load a model are removed on a dip",
                    settings.min_scale_down_stabilization_seconds
                ))
                .short(format!(
                    "scale-down window {seconds} s drops slow-loading replicas on a dip: raise it to {} s",
                    settings.min_scale_down_stabilization_seconds
                ))
                .help(format!("raise it to {} s or more", settings.min_scale_down_stabilization_seconds))
                .maybe_fix(op::replace(&pointer, json!(settings.scale_down_stabilization_seconds)).map(|operation| {
                    Fix::unsafe_(format!("set the scale-down window to {} s", settings.scale_down_stabilization_seconds), vec![operation])
                }));
            }
        }
        if let Some(seconds) = window("scaleUp") {
            if seconds > 0 && has_queue_metric {
                let pointer = format!("{base}/scaleUp/stabilizationWindowSeconds");
                sink.report(pointer.clone(), format!(
                    "scale-up stabilization window is {seconds} s on a queue-size metric; a growing queue waits that long for capacity"
                ))
                .short(format!("scale-up window {seconds} s delays capacity for a growing queue: set it to 0"))
                .help("use 0 for scale-up on queue metrics")
                .maybe_fix(op::replace(&pointer, json!(settings.scale_up_stabilization_seconds)).map(|operation| {
                    Fix::unsafe_("set the scale-up window to 0 s", vec![operation])
                }));
            }
        }
        if let Some(target) = low_queue_target {
            let policies = behavior
                .at("/scaleUp/policies")
                .and_then(Value::as_array)
                .filter(|policies| !policies.is_empty());
            // The apiserver writes the defaults into every HPA before
            // admission, so policies equal to them were not chosen.
            let tuned = policies.is_some_and(|policies| {
                !is_default_scale_up(policies, behavior.at("/scaleUp/selectPolicy"), settings)
            });
            if !tuned {
                report_untuned_scale_up(sink, base, target, settings);
            }
        }
    }
}

/// Whether scale-up policies are Kubernetes' defaults (`hpaBehavior.
/// scaleUpPolicies`, in any order, with selectPolicy Max or unset).
fn is_default_scale_up(policies: &[Value], select: Option<&Value>, settings: &HpaBehavior) -> bool {
    let select_default = select
        .and_then(Value::as_str)
        .is_none_or(|select| select == settings.scale_up_select_policy);
    select_default
        && policies.len() == settings.scale_up_policies.len()
        && settings
            .scale_up_policies
            .iter()
            .all(|default| policies.contains(default))
}

fn report_untuned_scale_up<'s>(
    sink: &'s mut Sink,
    base: &str,
    target: f64,
    settings: &HpaBehavior,
) -> &'s mut crate::engine::Report {
    sink.report(
        base,
        format!(
            "queue-size target {target} is below {}; tune scale-up policies for spikes, the defaults apply now",
            settings.low_queue_target
        ),
    )
    .short(format!(
        "queue target {target} is below {}: tune behavior.scaleUp.policies for spikes",
        settings.low_queue_target
    ))
    .help("state behavior.scaleUp.policies sized for a burst (the Kubernetes default is 4 pods or 100 % every 15 s, whichever is more, and cannot reach maxReplicas in one period here) and check them under load (`infergate simulate`)")
}

/// Pods the default scale-up policy adds in one period (Kubernetes'
/// default behavior: 4 pods or 100 %, the larger, every 15 s).
const DEFAULT_SCALE_UP_PODS: i64 = 4;
