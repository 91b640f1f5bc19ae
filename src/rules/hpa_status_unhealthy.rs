use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::k8s::metrics::{base_name, hpa_metrics, HpaMetric};
use crate::policy::Policy;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads the status an HorizontalPodAutoscaler's controller wrote and
    /// reports the conditions that say it cannot scale: `ScalingActive`
    /// False because a metric could not be read (`FailedGetExternalMetric`,
    /// `FailedGetPodsMetric`, `FailedGetObjectMetric`,
    /// `FailedGetResourceMetric`...) or the selector is invalid, and
    /// `AbleToScale` False (`FailedGetScale`, `FailedUpdateScale`). The
    /// finding quotes the controller's message and, where another rule
    /// explains the cause (an uppercase metric name, an exporter's series
    /// used as a Pods metric), names that rule. An HPA held at its
    /// maxReplicas (`ScalingLimited` True, `TooManyReplicas`) whose
    /// workload's accelerator pool is full is a warning with the pool's
    /// numbers (an info when the pool has room). It fires on objects that
    /// carry a status: `kubectl get hpa -o yaml` output and what
    /// `infergate audit` reads from a cluster.
    ///
    /// ## Why is this bad?
    /// Such an HPA holds its workload at its current size whatever the load
    /// does: an inference server under a traffic spike does not scale up,
    /// and one left large after it does not scale down. Nothing else tells
    /// the owner; `kubectl get hpa` shows `<unknown>` targets.
    ///
    /// ## Example
    /// ```yaml
    /// status:
    ///   conditions:
    ///     - type: ScalingActive
    ///       status: "False"
    ///       reason: FailedGetExternalMetric
    ///       message: 'the HPA was unable to compute the replica count: unable to get external metric ...'
    /// ```
    ///
    /// ## Use instead
    /// Fix what the message names: a metric name the adapter serves (lowercase
    /// for Google Cloud Managed Service for Prometheus), an External metric
    /// for an exporter's series, an adapter rule that exposes the metric,
    /// or RBAC that lets the controller read the scale subresource. Check
    /// the metric with `kubectl get --raw
    /// /apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC`.
    ///
    /// ## Fix
    /// None: the status is the controller's; the fix is in the HPA's spec or
    /// the metrics pipeline. The reasons that mean failure are data
    /// (`hpaStatus.failingConditions`, from Kubernetes' HPA controller,
    /// pkg/controller/podautoscaler/horizontal.go).
    pub struct HpaStatusUnhealthy {
        id: "hpa-status-unhealthy",
        severity: Error,
        summary: "An HPA's own status says it cannot scale (a metric it cannot read, an invalid selector, a scale it cannot get or update).",
        fixable: false,
    }
}

impl Rule for HpaStatusUnhealthy {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !autoscaler::is_hpa(object) {
            return;
        }
        let Some(conditions) = object
            .value
            .at("/status/conditions")
            .and_then(Value::as_array)
        else {
            return;
        };
        let failing = &cx.policy.hpa_status.failing_conditions;
        for (index, condition) in conditions.iter().enumerate() {
            let text = |key: &str| condition.get(key).and_then(Value::as_str);
            if (text("type"), text("status"), text("reason"))
                == (
                    Some("ScalingLimited"),
                    Some("True"),
                    Some("TooManyReplicas"),
                )
            {
                pinned_in_pool(cx, object, index, sink);
                continue;
            }
            let (Some(kind), Some("False"), Some(reason)) =
                (text("type"), text("status"), text("reason"))
            else {
                continue;
            };
            if !failing
                .get(kind)
                .is_some_and(|reasons| reasons.iter().any(|known| known == reason))
            {
                continue;
            }
            let cause = metric_type_of(reason)
                .and_then(|metric_type| explained_cause(object, metric_type, cx.policy))
                .unwrap_or_else(|| generic_help(reason).to_string());
            // The controller's own words come first: they name the metric
            // or object it failed on.
            let help = match text("message") {
                Some(message) => format!("the controller says \"{message}\"; {cause}"),
                None => cause,
            };
            sink.report(
                format!("/status/conditions/{index}/reason"),
                format!("the HPA cannot scale: {kind} is False ({reason})"),
            )
            .help(help);
        }
    }
}

/// An HPA held at maxReplicas while it wants more (`ScalingLimited` True,
/// `TooManyReplicas`), judged against its workload's accelerator pool:
/// when the pool holds no more replicas, raising maxReplicas cannot help
/// and the pool's numbers say so; when it has room, maxReplicas is the
/// limit. Without a known pool, being held at the maximum is a capacity
/// choice and is not reported.
fn pinned_in_pool(cx: &Context<'_>, hpa: &Object, index: usize, sink: &mut Sink) {
    let Some(target) = cx.hpa_target(hpa) else {
        return;
    };
    let pools = crate::engine::pools::known(cx);
    let Some((chips, pool)) = crate::engine::pools::of_workload(cx, target, &pools) else {
        return;
    };
    let (_, Some(max)) = autoscaler::replica_range(hpa, cx.policy) else {
        return;
    };
    let fits = (pool.chips / chips).floor() as i64;
    let pointer = format!("/status/conditions/{index}/reason");
    if fits <= max {
        sink.report(
            pointer,
            format!(
                "the HPA is held at maxReplicas {max} and wants more (ScalingLimited: TooManyReplicas), and pool `{}` is full: its {} chips hold {fits} replicas of {chips} chips",
                pool.name, pool.chips
            ),
        )
        .help("raising maxReplicas does not help until the pool grows: add nodes to it (or raise its autoscaling maximum and accept the cluster autoscaler's minutes), or serve with fewer chips per replica")
        .severity(Severity::Warning);
    } else {
        sink.report(
            pointer,
            format!(
                "the HPA is held at maxReplicas {max} and wants more (ScalingLimited: TooManyReplicas); pool `{}` has {} chips, room for {fits} replicas of {chips} chips",
                pool.name, pool.chips
            ),
        )
        .help(format!("raise maxReplicas up to {fits} to use the pool"))
        .severity(Severity::Info);
    }
}

/// The metric type a `FailedGet...Metric` reason is about.
fn metric_type_of(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "FailedGetExternalMetric" => "External",
        "FailedGetPodsMetric" => "Pods",
        "FailedGetObjectMetric" => "Object",
        "FailedGetResourceMetric" => "Resource",
        "FailedGetContainerResourceMetric" => "ContainerResource",
        _ => return None,
    })
}

/// What another rule says is wrong with the HPA's metrics of this type,
/// naming that rule.
fn explained_cause(hpa: &Object, metric_type: &str, policy: &Policy) -> Option<String> {
    let metrics = hpa_metrics(hpa);
    let of_type = || {
        metrics
            .iter()
            .filter(|metric| metric.metric_type == metric_type)
    };
    if let Some(name) = of_type()
        .filter_map(|metric| metric.name)
        .find(|name| name.chars().any(char::is_uppercase))
    {
        return Some(format!(
            "`{name}` has uppercase letters, which the HPA cannot read (see `infergate explain metric-name-lowercase`)"
        ));
    }
    if metric_type == "Pods" {
        if let Some((name, exporter)) = of_type().find_map(|metric| exporter_series(metric, policy))
        {
            return Some(format!(
                "`{name}` is a series of {exporter}, not of the workload's pods, so as a Pods metric it has no values (see `infergate explain hpa-metric-semantics`)"
            ));
        }
    }
    None
}

fn exporter_series<'a>(metric: &HpaMetric<'a>, policy: &'a Policy) -> Option<(&'a str, &'a str)> {
    let name = metric.name?;
    let exporter = policy.metric_semantics.exporter_of(name)?;
    Some((base_name(name), exporter.exporter.as_str()))
}

fn generic_help(reason: &str) -> &'static str {
    match reason {
        "InvalidSelector" => "the scale target's selector is empty, invalid, or shared with another HPA's target: give the workload its own pod selector",
        "FailedGetScale" | "FailedUpdateScale" => "the controller cannot read or write the target's scale subresource: check scaleTargetRef (apiVersion, kind, name) and that the target exists",
        _ => "check that the metrics adapter serves the metric under this name and selector, e.g. `kubectl get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC` (custom.metrics.k8s.io for Pods and Object metrics)",
    }
}
