use serde_json::{json, Value};

use crate::engine::finding::{op, Applicability, Fix, RelatedPatch};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::metrics::{base_name, hpa_metrics};
use crate::k8s::monitor;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reports HorizontalPodAutoscaler metrics (`External`, `Pods` and
    /// `Object`) whose `metric.name` contains an uppercase letter.
    ///
    /// ## Why is this bad?
    /// The HPA does not work with uppercase external metric names: the
    /// autoscaler never gets a value and the workload never scales. GKE's
    /// "Configure autoscaling for LLM workloads on GPUs" (its DCGM section,
    /// cloud.google.com/kubernetes-engine/docs/how-to/machine-learning/inference/autoscaling)
    /// renames `DCGM_FI_DEV_GPU_UTIL` to lowercase at scrape time for
    /// exactly this reason.
    ///
    /// ## Example
    /// ```yaml
    /// metrics:
    /// - type: External
    ///   external:
    ///     metric:
    ///       name: prometheus.googleapis.com|DCGM_FI_DEV_GPU_UTIL|unknown
    /// ```
    ///
    /// ## Use instead
    /// Relabel the series to lowercase where it is scraped, and use the
    /// lowercase name in the HPA:
    /// ```yaml
    /// # PodMonitoring of the exporter
    /// metricRelabeling:
    /// - action: replace
    ///   sourceLabels: [__name__]
    ///   targetLabel: __name__
    ///   regex: DCGM_FI_DEV_GPU_UTIL
    ///   replacement: dcgm_fi_dev_gpu_util
    /// # HPA
    /// metric:
    ///   name: prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown
    /// ```
    ///
    /// ## Fix
    /// Lowercases the name in the HPA. When the exporter's PodMonitoring is
    /// in the same input (recognised by the `externalMetrics.exporters`
    /// hints of the policy), the fix also adds the `replace` relabelling rule
    /// to each of its endpoints, and is safe (the monitors of the HPA's
    /// application; those in its namespace when there are some; none when
    /// more than four look alike, as it is then unclear which one scrapes
    /// the series). Without it the lowercase series
    /// does not exist until someone relabels, so the fix is unsafe and the
    /// webhook denies with the relabelling advice instead of mutating.
    pub struct MetricNameLowercase {
        id: "metric-name-lowercase",
        severity: Error,
        summary: "HPA metric names must be lowercase; the HPA ignores uppercase external metric names.",
        fixable: true,
    }
}

impl Rule for MetricNameLowercase {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        for metric in hpa_metrics(object) {
            // KEDA names and selects its own External metrics.
            if metric.version == crate::k8s::metrics::HpaVersion::Keda {
                continue;
            }
            if !matches!(metric.metric_type, "External" | "Pods" | "Object") {
                continue;
            }
            let Some(name) = metric.name else { continue };
            if !name.chars().any(char::is_uppercase) {
                continue;
            }
            let lowercase = name.to_lowercase();
            let series = base_name(name);
            let mut fix = Fix::new(
                Applicability::Unsafe,
                format!(
                    "relabel {series} to {} where scraped; lowercase the name",
                    series.to_lowercase()
                ),
                op::replace(&metric.name_pointer(), json!(lowercase))
                    .into_iter()
                    .collect(),
            );
            let relabel = relabel_rule(series);
            let monitors = exporter_monitors(cx, object, series);
            let already_relabelled = monitors
                .iter()
                .any(|(_, monitor)| monitor::renames_to_lowercase(monitor, series));
            for (index, monitor) in &monitors {
                if monitor::renames_to_lowercase(monitor, series) {
                    continue;
                }
                let ops = relabel_ops(monitor, &relabel);
                if !ops.is_empty() {
                    fix.related.push(RelatedPatch {
                        object_index: *index,
                        object: monitor.id.clone(),
                        patch: json_patch::Patch(ops),
                    });
                }
            }
            if already_relabelled || !fix.related.is_empty() {
                fix.applicability = Applicability::Safe;
                fix.description = if already_relabelled {
                    "lowercase the metric name, as its PodMonitoring relabels it".to_string()
                } else {
                    "lowercase the metric name and relabel the series in its PodMonitoring"
                        .to_string()
                };
            }
            let help = format!(
                "relabel the series where it is scraped (metricRelabeling: action replace, sourceLabels [__name__], targetLabel __name__, regex {series}, replacement {}) and use `{lowercase}` here",
                series.to_lowercase()
            );
            sink.report(
                metric.name_pointer(),
                format!("metric name `{name}` has uppercase letters; the HPA does not work with uppercase metric names"),
            )
            .help(help)
            .fix(fix);
        }
    }
}

fn relabel_rule(series: &str) -> Value {
    json!({
        "action": "replace",
        "sourceLabels": ["__name__"],
        "targetLabel": "__name__",
        "regex": series,
        "replacement": series.to_lowercase(),
    })
}

/// At most this many exporter PodMonitorings are patched for one HPA. More
/// look-alikes in one application (the same monitor copied into every
/// namespace) leave it open which one scrapes the series; patching them
/// all from every HPA would grow the output with the square of the input.
const MAX_PATCHED_MONITORS: usize = 4;

/// PodMonitorings of the exporter that emits `series` for `hpa`: of its
/// application, recognised by the policy's hint word in their name or
/// selector labels, or by a relabelling rule that already names the series.
/// Those in the HPA's own namespace, when there are any (a per-namespace
/// exporter), else those elsewhere (GKE's DCGM exporter: gmp-public); none when more than
/// [`MAX_PATCHED_MONITORS`] remain.
fn exporter_monitors<'a>(cx: &Context<'a>, hpa: &Object, series: &str) -> Vec<(usize, &'a Object)> {
    let mut monitors = exporter_look_alikes(cx, hpa, series);
    let namespace = cx.namespace_of(hpa);
    if namespace.is_some()
        && monitors
            .iter()
            .any(|(_, monitor)| cx.namespace_of(monitor) == namespace)
    {
        monitors.retain(|(_, monitor)| cx.namespace_of(monitor) == namespace);
    }
    if monitors.len() > MAX_PATCHED_MONITORS {
        monitors.clear();
    }
    monitors
}

fn exporter_look_alikes<'a>(
    cx: &Context<'a>,
    hpa: &Object,
    series: &str,
) -> Vec<(usize, &'a Object)> {
    // The exporter's PodMonitoring usually lives in another namespace than
    // the HPA (GKE's DCGM exporter: gmp-public), so namespaces are not
    // compared.
    cx.exporter_monitors_of(hpa, series)
        .filter(|(_, monitor)| cx.same_scope(hpa, monitor))
        .collect()
}

fn relabel_ops(monitor: &Object, relabel: &Value) -> Vec<json_patch::PatchOperation> {
    monitor::endpoints(monitor)
        .iter()
        .enumerate()
        .filter_map(|(index, endpoint)| {
            let endpoint_pointer = pointer::join("/spec/endpoints", index);
            if endpoint
                .get("metricRelabeling")
                .is_some_and(Value::is_array)
            {
                op::add(
                    &pointer::join(&format!("{endpoint_pointer}/metricRelabeling"), "-"),
                    relabel.clone(),
                )
            } else {
                op::add(
                    &format!("{endpoint_pointer}/metricRelabeling"),
                    json!([relabel]),
                )
            }
        })
        .collect()
}
