use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::workload;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads the autoscaling of a KServe InferenceService deployed in raw
    /// (Standard) mode, `serving.kserve.io/deploymentMode: RawDeployment`
    /// (or `Standard`), where KServe writes a plain Deployment and an HPA
    /// for each component (predictor, transformer, explainer) instead of a
    /// Knative Service:
    ///
    /// - a component that asks to autoscale (`scaleMetric`, `scaleTarget`
    ///   or `autoScaling`) without a `maxReplicas` above its minimum gets an
    ///   HPA whose maximum is its minimum: it never scales (a warning);
    /// - `minReplicas: 0` is raised to 1: raw mode cannot scale to zero (an
    ///   info, so that nobody counts on it);
    /// - `autoscaling.knative.dev/*` annotations configure Knative's
    ///   autoscaler, which raw mode does not run: they do nothing (a
    ///   warning naming the fields that do).
    ///
    /// Serverless (Knative) mode is not checked: there `maxReplicas: 0`
    /// means no upper bound.
    ///
    /// ## Why is this bad?
    /// KServe's HPA reconciler for raw deployments sets the HPA's
    /// `maxReplicas` to the component's `maxReplicas`, raised to the
    /// minimum when it is lower (an unset one is 0), and its `minReplicas`
    /// to at least 1 (kserve pkg/controller/v1beta1/inferenceservice/
    /// reconcilers/hpa/hpa_reconciler.go, createHPA). An InferenceService
    /// written for autoscaling but without `maxReplicas` stays at one
    /// replica under any load, and nothing reports it: the HPA exists and
    /// is healthy.
    ///
    /// ## Example
    /// ```yaml
    /// metadata:
    ///   annotations: {serving.kserve.io/deploymentMode: RawDeployment}
    /// spec:
    ///   predictor:
    ///     scaleMetric: cpu
    ///     scaleTarget: 60
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   predictor:
    ///     minReplicas: 1
    ///     maxReplicas: 4
    ///     scaleMetric: cpu
    ///     scaleTarget: 60
    /// ```
    ///
    /// ## Fix
    /// None: the upper bound is a capacity decision.
    pub struct KserveRawAutoscaling {
        id: "kserve-raw-autoscaling",
        severity: Warning,
        summary: "A raw-mode KServe InferenceService that autoscales needs maxReplicas above its minimum; Knative annotations and minReplicas 0 do nothing there.",
        fixable: false,
    }
}

/// The InferenceService components that get an HPA each.
const COMPONENTS: &[&str] = &["predictor", "transformer", "explainer"];

/// Knative's autoscaling annotations: their prefix.
const KNATIVE_PREFIX: &str = "autoscaling.knative.dev/";

impl Rule for KserveRawAutoscaling {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, _cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if object.kind() != "InferenceService" || object.group() != "serving.kserve.io" {
            return;
        }
        let Some(mode) = workload::kserve_raw_mode(object) else {
            return;
        };
        let knative = object
            .value
            .at("/metadata/annotations")
            .and_then(Value::as_object)
            .and_then(|annotations| {
                annotations
                    .keys()
                    .find(|key| key.starts_with(KNATIVE_PREFIX))
            });
        if let Some(first) = knative {
            let pointer = crate::input::pointer::join("/metadata/annotations", first);
            sink.report(
                pointer,
                format!("`{first}` configures Knative's autoscaler, which a {mode} InferenceService does not use"),
            )
            .short("Knative autoscaling annotations do nothing in raw mode")
            .help("set the component's minReplicas, maxReplicas and scaleMetric/scaleTarget (or autoScaling) instead, which KServe turns into the HPA");
        }
        for component in COMPONENTS {
            let base = format!("/spec/{component}");
            let Some(spec) = object.value.at(&base).filter(|spec| spec.is_object()) else {
                continue;
            };
            let number = |key: &str| spec.get(key).and_then(Value::as_i64);
            let minimum = number("minReplicas");
            if minimum == Some(0) {
                sink.report(
                    format!("{base}/minReplicas"),
                    format!("minReplicas 0 on the {component}: in raw mode KServe raises it to 1, so it never scales to zero"),
                )
                .severity(Severity::Info)
                .short("minReplicas 0 is raised to 1 in raw mode")
                .help("set minReplicas: 1 to say what runs, or use Serverless mode (or KEDA) to scale to zero");
            }
            let autoscales = ["scaleMetric", "scaleTarget", "autoScaling"]
                .iter()
                .any(|key| spec.get(*key).is_some());
            if !autoscales {
                continue;
            }
            let floor = minimum.unwrap_or(1).max(1);
            let maximum = number("maxReplicas");
            if maximum.is_some_and(|maximum| maximum > floor) {
                continue;
            }
            let (at, written) = match maximum {
                Some(maximum) => (
                    format!("{base}/maxReplicas"),
                    format!("maxReplicas {maximum}"),
                ),
                None => (base.clone(), "no maxReplicas".to_string()),
            };
            sink.report(
                at,
                format!("the {component} asks to autoscale with {written}: KServe's HPA gets maxReplicas {floor} = its minimum, so it never scales"),
            )
            .short(format!("{written}: the {component}'s HPA never scales"))
            .help(format!("set {component}.maxReplicas above {floor}"));
        }
    }
}
