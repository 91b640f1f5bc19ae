use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::pointer::{self, Lookup};
use crate::k8s::workload;
use crate::policy::KnativeAutoscaling;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads the `autoscaling.knative.dev/*` annotations of a KServe
    /// InferenceService that Knative serves (Serverless mode: no
    /// `serving.kserve.io/deploymentMode: RawDeployment` or `Standard`),
    /// on the InferenceService and on each component (`predictor`,
    /// `transformer`, `explainer`; a component's own annotations win), as
    /// KServe and then Knative treat them:
    ///
    /// - an annotation KServe writes over from the component's fields
    ///   (`min-scale` from `minReplicas`, which defaults to 1; `max-scale`
    ///   from a non-zero `maxReplicas`; `target` from `scaleTarget`;
    ///   `metric` from `scaleMetric`) with another value is not applied (a
    ///   warning; the legacy camelCase keys count as the same annotation): `min-scale: "0"` on a GPU predictor without
    ///   `minReplicas: 0` keeps one replica running;
    /// - a value Knative's webhook rejects (an error when the
    ///   InferenceService states `deploymentMode: Serverless`, else a
    ///   warning: without the annotation the cluster's default mode
    ///   decides, and in raw mode the annotation only does nothing): a `metric` other
    ///   than `concurrency` or `rps` under the KPA class, a `class` in
    ///   Knative's domain other than KPA or HPA, a `target` below 0.01, a
    ///   `target-utilization-percentage` or `panic-window-percentage`
    ///   outside 1-100, a `panic-threshold-percentage` outside 110-1000, a
    ///   `window` outside 6s-1h, a number that is not one, a `max-scale`
    ///   below the minimum KServe writes.
    ///
    /// The ranges are data (`serving.knativeAutoscaling` in
    /// rules/serving.yaml) with their source. Raw mode is the business of
    /// `kserve-raw-autoscaling`.
    ///
    /// ## Why is this bad?
    /// KServe accepts the InferenceService and only then creates the
    /// Knative Service, with the annotations on its revision; Knative's
    /// webhook rejects a value out of range there, and the InferenceService
    /// stays not ready with the reason in the controller's log. An
    /// annotation KServe overwrites is silently lost: a scale-to-zero that
    /// never happens costs a GPU node around the clock, a `min-scale` above
    /// one that is dropped leaves a latency-critical model cold.
    ///
    /// ## Example
    /// ```yaml
    /// metadata:
    ///   annotations:
    ///     autoscaling.knative.dev/min-scale: "0"
    ///     autoscaling.knative.dev/metric: cpu
    /// spec:
    ///   predictor:
    ///     model: {modelFormat: {name: huggingface}}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   predictor:
    ///     minReplicas: 0
    ///     scaleMetric: concurrency
    ///     scaleTarget: 4
    /// ```
    ///
    /// ## Fix
    /// None: which of the two values was meant is the author's call.
    pub struct KserveKnativeAutoscaling {
        id: "kserve-knative-autoscaling",
        severity: Error,
        summary: "Knative autoscaling annotations on a Serverless KServe InferenceService must survive KServe and pass Knative's validation.",
        fixable: false,
    }
}

const COMPONENTS: [&str; 3] = ["predictor", "transformer", "explainer"];

/// An annotation as the Knative Service's revision gets it: its value and
/// where it is written.
struct Written<'a> {
    key: String,
    value: &'a str,
    pointer: String,
}

impl Rule for KserveKnativeAutoscaling {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if object.kind() != "InferenceService" || object.group() != "serving.kserve.io" {
            return;
        }
        if workload::kserve_raw_mode(object).is_some() {
            return;
        }
        let knative = &cx.policy.serving.knative_autoscaling;
        let top = object
            .value
            .at("/metadata/annotations")
            .and_then(Value::as_object);
        // The InferenceService's own annotations reach every component: a
        // finding about one of them is reported once.
        let mut seen = HashSet::new();
        // Without the annotation the mode is the cluster's default
        // (inferenceservice-config `defaultDeploymentMode`, Serverless
        // upstream): where it is raw, Knative never sees the annotations,
        // so what Knative would reject is a warning, not a denial.
        let serverless_stated = workload::kserve_mode(object) == Some("Serverless");
        for component in COMPONENTS {
            let base = format!("/spec/{component}");
            let Some(spec) = object.value.at(&base).and_then(Value::as_object) else {
                continue;
            };
            let own = spec.get("annotations").and_then(Value::as_object);
            let lookup = |key: &str| {
                find(own, key, &format!("{base}/annotations"))
                    .or_else(|| find(top, key, "/metadata/annotations"))
            };
            let first = |keys: &[String]| keys.iter().find_map(|key| lookup(key));
            let mut out = Once {
                sink,
                seen: &mut seen,
                serverless_stated,
            };
            check_overwritten(knative, component, spec, &first, &mut out);
            check_values(knative, component, spec, &lookup, &first, &mut out);
        }
    }
}

/// The sink, reporting each (place, message) once.
struct Once<'s> {
    sink: &'s mut Sink,
    seen: &'s mut HashSet<(String, String)>,
    /// Whether the InferenceService says it runs on Knative.
    serverless_stated: bool,
}

impl Once<'_> {
    /// The report, unless the same was made already.
    fn report(&mut self, pointer: &str, message: String) -> Option<&mut crate::engine::Report> {
        self.seen
            .insert((pointer.to_string(), message.clone()))
            .then(|| self.sink.report(pointer, message))
    }
}

fn find<'a>(
    annotations: Option<&'a Map<String, Value>>,
    key: &str,
    at: &str,
) -> Option<Written<'a>> {
    let value = annotations?.get(key)?.as_str()?;
    Some(Written {
        key: key.to_string(),
        value,
        pointer: pointer::join(at, key),
    })
}

/// What KServe writes for a field: its value, minReplicas' default of 1,
/// or nothing (a zero maxReplicas, an unset field).
fn kserve_value(spec: &Map<String, Value>, field: &str, always: bool) -> Option<String> {
    match spec.get(field) {
        Some(Value::Number(number)) if field == "maxReplicas" && number.as_f64() == Some(0.0) => {
            None
        }
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(Value::String(text)) => Some(text.clone()),
        _ if always => Some("1".to_string()),
        _ => None,
    }
}

fn check_overwritten<'a>(
    knative: &KnativeAutoscaling,
    component: &str,
    spec: &Map<String, Value>,
    first: &dyn Fn(&[String]) -> Option<Written<'a>>,
    out: &mut Once<'_>,
) {
    for entry in &knative.set_by_kserve {
        let Some(written) = first(&entry.annotations) else {
            continue;
        };
        let Some(kserve) = kserve_value(spec, &entry.field, entry.always) else {
            continue;
        };
        if same_number(written.value, &kserve) || written.value == kserve {
            continue;
        }
        let whence = if spec.contains_key(&entry.field) {
            format!("the {component}'s {}", entry.field)
        } else {
            format!("the {component}'s unset {} (default {kserve})", entry.field)
        };
        let message = format!(
            "KServe writes {kserve} from {whence} over `{}: {}`: the annotation is not applied",
            written.key, written.value
        );
        let Some(report) = out.report(&written.pointer, message) else {
            continue;
        };
        report
            .severity(Severity::Warning)
            .short(format!(
                "KServe writes {kserve} over this annotation from {}",
                entry.field
            ))
            .help(format!(
                "set spec.{component}.{} to the value you mean and drop the annotation",
                entry.field
            ));
    }
}

fn check_values<'a>(
    knative: &KnativeAutoscaling,
    component: &str,
    spec: &Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<Written<'a>>,
    first: &dyn Fn(&[String]) -> Option<Written<'a>>,
    out: &mut Once<'_>,
) {
    // What KServe writes from a field replaces the annotation: only an
    // annotation that survives reaches Knative.
    let survives = |written: &Written<'_>| {
        !knative.set_by_kserve.iter().any(|entry| {
            entry.annotations.contains(&written.key)
                && kserve_value(spec, &entry.field, entry.always).is_some()
        })
    };
    let class = lookup(&knative.class_annotation);
    if let Some(class) = &class {
        if class.value.ends_with(".knative.dev")
            && !knative.classes.iter().any(|c| c == class.value)
        {
            rejected(
                out,
                class,
                format!(
                    "its domain has only the {} classes",
                    short_names(&knative.classes)
                ),
            );
        }
    }
    let class_value = class
        .as_ref()
        .map_or(knative.default_class.as_str(), |c| c.value);
    if let Some(metric) = lookup(&knative.metric_annotation).filter(|m| survives(m)) {
        if class_value == knative.default_class
            && !knative.kpa_metrics.iter().any(|m| m == metric.value)
        {
            rejected(
                out,
                &metric,
                format!(
                    "KPA scales on {} only (cpu needs the HPA class)",
                    knative.kpa_metrics.join(" or ")
                ),
            );
        }
    }
    for bound in &knative.bounds {
        let Some(written) = first(&bound.annotations).filter(|w| survives(w)) else {
            continue;
        };
        let number = if bound.duration {
            // Go durations Prometheus' parser does not read ("1.5m") say
            // nothing.
            match crate::input::duration::parse(written.value) {
                Some(seconds) => seconds,
                None => continue,
            }
        } else {
            match written.value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => number,
                _ => {
                    rejected(out, &written, "not a number".to_string());
                    continue;
                }
            }
        };
        let below = bound.min.is_some_and(|min| number < min);
        let above = bound.max.is_some_and(|max| number > max);
        if below || above {
            let unit = if bound.duration { "s" } else { "" };
            let range = match (bound.min, bound.max) {
                (Some(min), Some(max)) => format!("{min}{unit} to {max}{unit}"),
                (Some(min), None) => format!("at least {min}{unit}"),
                (None, Some(max)) => format!("at most {max}{unit}"),
                (None, None) => continue,
            };
            rejected(out, &written, format!("it accepts {range}"));
        }
    }
    // max-scale below the min-scale KServe writes.
    let set_by = |field: &str| {
        knative
            .set_by_kserve
            .iter()
            .find(|entry| entry.field == field)
    };
    let minimum = set_by("minReplicas")
        .and_then(|entry| kserve_value(spec, &entry.field, entry.always))
        .and_then(|minimum| minimum.parse::<f64>().ok());
    let max_keys = set_by("maxReplicas").map_or(&[][..], |entry| entry.annotations.as_slice());
    if let (Some(minimum), Some(written)) = (minimum, first(max_keys).filter(|w| survives(w))) {
        if let Ok(maximum) = written.value.trim().parse::<f64>() {
            if maximum != 0.0 && maximum < minimum {
                rejected(
                    out,
                    &written,
                    format!("below the min-scale {minimum} KServe writes from the {component}'s minReplicas"),
                );
            }
        }
    }
}

fn rejected(out: &mut Once<'_>, written: &Written<'_>, why: String) {
    let message = format!(
        "Knative rejects `{}: {}`: {why}",
        written.key, written.value
    );
    let serverless_stated = out.serverless_stated;
    let Some(report) = out.report(&written.pointer, message) else {
        return;
    };
    report
        .short(format!("Knative rejects this value: {why}"))
        .help("in Serverless mode KServe accepts the InferenceService, then Knative rejects the Knative Service it creates: the InferenceService never becomes ready (in raw mode the annotation does nothing)");
    if !serverless_stated {
        report.severity(Severity::Warning);
    }
}

fn same_number(left: &str, right: &str) -> bool {
    matches!((left.trim().parse::<f64>(), right.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// `kpa and hpa` for `kpa.autoscaling.knative.dev`, `hpa.autoscaling.knative.dev`.
fn short_names(classes: &[String]) -> String {
    classes
        .iter()
        .map(|class| class.split('.').next().unwrap_or(class))
        .collect::<Vec<_>>()
        .join(" and ")
}
