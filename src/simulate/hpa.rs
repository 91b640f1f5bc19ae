//! An HPA (or a KEDA ScaledObject, read as the HPA KEDA makes of it) as the
//! controller sees it: replica bounds, metric targets in their kind, the
//! behavior with the apiserver's defaults filled in, the tolerances.

use crate::input::pointer::Lookup;
use serde_json::Value;

use super::SimulateError;
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::k8s::metrics::hpa_metrics;
use crate::policy::{HpaController, Policy, ScalingRules};

/// How the controller turns a metric into replicas
/// (pkg/controller/podautoscaler/horizontal.go, computeReplicasForMetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A Pods metric, or a Resource metric with AverageValue: the average
    /// over the pods that report (calcPlainMetricReplicas).
    PodsAverage,
    /// A Resource metric with Utilization: percent of the request,
    /// averaged the same way (GetResourceReplicas, CPU's start-up grace
    /// period not modelled).
    Utilization,
    /// External or Object with Value: the metric's total against the
    /// target, times the ready pods (getUsageRatioReplicaCount).
    Value,
    /// External or Object with AverageValue: the total over the target,
    /// against the pods that exist (GetExternalPerPodMetricReplicas).
    AverageValue,
}

impl TargetKind {
    /// Whether the trace's value is one pod's share (it divides among the
    /// pods that serve), rather than a total replayed as recorded.
    pub fn is_per_pod(self) -> bool {
        !matches!(self, Self::Value)
    }
}

#[derive(Debug, Clone)]
pub struct MetricTarget {
    /// The metric's name as the trace names it (for Resource metrics the
    /// resource, `cpu`).
    pub name: String,
    /// `Pods`, `External`, `Object`, `Resource`, `ContainerResource`.
    pub source: String,
    pub kind: TargetKind,
    /// The target (for Utilization, in percent).
    pub target: f64,
    /// Where the target's value is written (`…/target/averageValue`).
    pub target_pointer: Option<String>,
}

/// One direction of a behavior, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_seconds: f64,
    pub select: Select,
    /// (Pods or Percent, value, period in seconds).
    pub policies: Vec<(PolicyKind, i64, f64)>,
    pub tolerance: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

#[derive(Debug, Clone)]
pub struct SimulatedHpa {
    pub namespace: Option<String>,
    pub name: String,
    pub min_replicas: i64,
    pub max_replicas: i64,
    pub metrics: Vec<MetricTarget>,
    /// `None`: the legacy path (no behavior written; the apiserver fills
    /// none in, the controller applies its downscale window and its
    /// scale-up limit).
    pub behavior: Option<Behavior>,
    /// (scale-down, scale-up) tolerance when there is no behavior.
    pub tolerance: f64,
    /// What the model left out, said in the output (ScaledObject at zero,
    /// CPU's start-up grace period).
    pub notes: Vec<String>,
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => crate::input::quantity::parse(text),
        _ => None,
    }
}

/// `copyHPAScalingRules` over the defaults: each field the HPA writes
/// replaces the default one.
fn with_defaults(written: Option<&ScalingRules>, defaults: &ScalingRules) -> ScalingRules {
    let mut rules = defaults.clone();
    if let Some(written) = written {
        if written.select_policy.is_some() {
            rules.select_policy.clone_from(&written.select_policy);
        }
        if written.stabilization_window_seconds.is_some() {
            rules.stabilization_window_seconds = written.stabilization_window_seconds;
        }
        if written.policies.is_some() {
            rules.policies.clone_from(&written.policies);
        }
    }
    rules
}

/// The policies of one direction as (Pods or Percent, value, period in
/// seconds).
pub fn scaling_policies(
    rules: &ScalingRules,
) -> Result<Vec<(PolicyKind, i64, f64)>, SimulateError> {
    let mut policies = Vec::new();
    for policy in rules.policies.iter().flatten() {
        let kind = match policy.policy_type.as_str() {
            "Pods" => PolicyKind::Pods,
            "Percent" => PolicyKind::Percent,
            other => {
                return Err(SimulateError::Hpa(format!(
                    "policy type `{other}` is neither Pods nor Percent"
                )))
            }
        };
        policies.push((kind, policy.value, policy.period_seconds as f64));
    }
    Ok(policies)
}

fn resolve(
    rules: &ScalingRules,
    tolerance: Option<f64>,
    controller: &HpaController,
) -> Result<Rules, SimulateError> {
    let select = match rules.select_policy.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => {
            return Err(SimulateError::Hpa(format!(
                "selectPolicy `{other}` is none of Max, Min, Disabled"
            )))
        }
    };
    let policies = scaling_policies(rules)?;
    Ok(Rules {
        // The scale-down window the HPA leaves unset is the controller's
        // (maybeInitScaleDownStabilizationWindow).
        stabilization_seconds: rules
            .stabilization_window_seconds
            .map_or(controller.downscale_stabilization_seconds, |seconds| {
                seconds as f64
            }),
        select,
        policies,
        tolerance: tolerance.unwrap_or(controller.tolerance),
    })
}

fn behavior_of(written: &Value, controller: &HpaController) -> Result<Behavior, SimulateError> {
    let direction = |key: &str| -> Result<(Option<ScalingRules>, Option<f64>), SimulateError> {
        let Some(value) = written.get(key).filter(|value| !value.is_null()) else {
            return Ok((None, None));
        };
        let rules: ScalingRules = serde_json::from_value(value.clone())
            .map_err(|error| SimulateError::Hpa(format!("behavior.{key}: {error}")))?;
        let tolerance = value.get("tolerance").and_then(number);
        Ok((Some(rules), tolerance))
    };
    let (up, up_tolerance) = direction("scaleUp")?;
    let (down, down_tolerance) = direction("scaleDown")?;
    let scale_up = resolve(
        &with_defaults(up.as_ref(), &controller.default_scale_up),
        up_tolerance,
        controller,
    )?;
    let scale_down = resolve(
        &with_defaults(down.as_ref(), &controller.default_scale_down),
        down_tolerance,
        controller,
    )?;
    Ok(Behavior {
        scale_up,
        scale_down,
    })
}

impl SimulatedHpa {
    pub fn from_object(object: &Object, policy: &Policy) -> Result<Self, SimulateError> {
        let controller = &policy.hpa_controller;
        let name = object.name().unwrap_or("unnamed").to_string();
        if !autoscaler::is_autoscaler(object) {
            return Err(SimulateError::Hpa(format!(
                "{} `{name}` is not an HPA or a ScaledObject",
                object.kind()
            )));
        }
        let mut notes = Vec::new();
        let (min, max) = autoscaler::replica_range(object, policy);
        let Some(max) = max else {
            return Err(SimulateError::Hpa(format!(
                "`{name}` has no numeric maximum replica count"
            )));
        };
        let min = if autoscaler::is_scaled_object(object) && min < 1 {
            notes.push(
                "minReplicaCount 0: KEDA's scaling between 0 and 1 is not simulated; the HPA KEDA makes starts at 1"
                    .to_string(),
            );
            1
        } else {
            min
        };
        if min > max {
            return Err(SimulateError::Hpa(format!(
                "`{name}`: the minimum ({min}) is above the maximum ({max})"
            )));
        }
        let mut metrics = Vec::new();
        for metric in hpa_metrics(object) {
            let target_type = metric.target.as_ref().and_then(|target| target.target_type);
            let value = metric
                .target
                .as_ref()
                .and_then(|target| target.value.as_ref())
                .and_then(|value| number(value.value));
            let (Some(target_type), Some(target)) = (target_type, value) else {
                return Err(SimulateError::Hpa(format!(
                    "`{name}`: the {} metric at {} has no numeric target",
                    metric.metric_type, metric.pointer
                )));
            };
            if target <= 0.0 {
                return Err(SimulateError::Hpa(format!(
                    "`{name}`: the target at {} is not above zero",
                    metric.pointer
                )));
            }
            let kind = match (metric.metric_type, target_type) {
                ("Pods", _) => TargetKind::PodsAverage,
                ("Resource" | "ContainerResource", "Utilization") => TargetKind::Utilization,
                ("Resource" | "ContainerResource", _) => TargetKind::PodsAverage,
                ("External" | "Object", "Value") => TargetKind::Value,
                ("External" | "Object", _) => TargetKind::AverageValue,
                (other, _) => {
                    return Err(SimulateError::Hpa(format!(
                        "`{name}`: metric type `{other}` is not simulated"
                    )))
                }
            };
            if kind == TargetKind::Utilization {
                notes.push("Resource utilization: CPU's start-up grace period (--horizontal-pod-autoscaler-cpu-initialization-period) is not modelled; each pod requests one unit".to_string());
            }
            let metric_name = match metric.metric_type {
                "Resource" | "ContainerResource" => metric
                    .source
                    .and_then(|source| source.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => metric.name.map(str::to_string),
            }
            .or_else(|| {
                // A KEDA trigger without a metric name of its own: its type.
                metric
                    .source
                    .and_then(|source| source.get("name").or_else(|| source.get("type")))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("metric{}", metrics.len()));
            metrics.push(MetricTarget {
                name: metric_name,
                source: metric.metric_type.to_string(),
                kind,
                target,
                target_pointer: metric
                    .target
                    .as_ref()
                    .and_then(|target| target.value.as_ref())
                    .map(|value| value.pointer.clone()),
            });
        }
        if metrics.is_empty() {
            return Err(SimulateError::Hpa(format!(
                "`{name}` has no metrics to replay (the apiserver's default, CPU at 80 %, is not assumed)"
            )));
        }
        let behavior = object
            .value
            .at(autoscaler::behavior_pointer(object))
            .filter(|value| value.is_object())
            .map(|written| behavior_of(written, controller))
            .transpose()?;
        Ok(Self {
            namespace: object.namespace().map(str::to_string),
            name,
            min_replicas: min,
            max_replicas: max,
            metrics,
            behavior,
            tolerance: controller.tolerance,
            notes,
        })
    }

    /// (scale-down, scale-up) tolerances: the behavior's, else the
    /// controller's.
    pub fn tolerances(&self) -> (f64, f64) {
        match &self.behavior {
            Some(behavior) => (behavior.scale_down.tolerance, behavior.scale_up.tolerance),
            None => (self.tolerance, self.tolerance),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::SourceFile;

    fn read(yaml: &str) -> SimulatedHpa {
        let loaded =
            crate::input::loader::parse_source(SourceFile::new("hpa.yaml", yaml.to_string()));
        let policy = Policy::built_in().expect("policy");
        SimulatedHpa::from_object(&loaded.objects[0], &policy).expect("an HPA")
    }

    const HEAD: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: q}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}\n  maxReplicas: 8\n  metrics:\n  - type: Pods\n    pods: {metric: {name: queue}, target: {type: AverageValue, averageValue: 500m}}\n";

    /// pkg/apis/autoscaling/v2/defaults.go: a behavior written in part is
    /// completed field by field; the scale-down window left unset is the
    /// controller's 300 s.
    #[test]
    fn a_partial_behavior_is_completed_as_the_apiserver_does() {
        let hpa = read(&format!(
            "{HEAD}  behavior:\n    scaleUp:\n      stabilizationWindowSeconds: 30\n    scaleDown:\n      selectPolicy: Min\n"
        ));
        let behavior = hpa.behavior.expect("behavior");
        assert_eq!(behavior.scale_up.stabilization_seconds, 30.0);
        assert_eq!(behavior.scale_up.select, Select::Max);
        assert_eq!(
            behavior.scale_up.policies,
            vec![
                (PolicyKind::Pods, 4, 15.0),
                (PolicyKind::Percent, 100, 15.0)
            ]
        );
        assert_eq!(behavior.scale_down.stabilization_seconds, 300.0);
        assert_eq!(behavior.scale_down.select, Select::Min);
        assert_eq!(
            behavior.scale_down.policies,
            vec![(PolicyKind::Percent, 100, 15.0)]
        );
        assert_eq!(hpa.min_replicas, 1);
        assert_eq!(hpa.metrics[0].target, 0.5);
    }

    #[test]
    fn no_behavior_is_the_legacy_path_and_tolerances_are_read() {
        assert!(read(HEAD).behavior.is_none());
        let hpa = read(&format!(
            "{HEAD}  behavior:\n    scaleUp: {{tolerance: 50m}}\n    scaleDown: {{tolerance: \"0.2\"}}\n"
        ));
        assert_eq!(hpa.tolerances(), (0.2, 0.05));
    }
}
