use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::metrics::{classify, hpa_metrics};
use crate::policy::MetricFamily;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reports an HPA that scales on a queue-size metric (prefill backlog,
    /// `tgi_queue_size`, `vllm:num_requests_waiting`…) and on accelerator
    /// memory (HBM: `memory_used`, `kubernetes.io|node|accelerator|memory_used`,
    /// DCGM framebuffer) at the same time. The families are policy data
    /// (`metricFamilies`); names match in bare and adapter form.
    ///
    /// ## Why is this bad?
    /// HBM use rises with load and triggers scaling first, so the queue
    /// target never governs and the latency goal it encodes is lost. GKE's
    /// "Best practices for autoscaling large language model (LLM) inference
    /// workloads with TPUs" recommends against scaling on both at once.
    ///
    /// ## Example
    /// ```yaml
    /// metrics:
    /// - type: Pods
    ///   pods:
    ///     metric: {name: jetstream_prefill_backlog_size}
    ///     target: {type: AverageValue, averageValue: 5}
    /// - type: External
    ///   external:
    ///     metric: {name: memory_used_percentage}
    ///     target: {type: AverageValue, averageValue: 800m}
    /// ```
    ///
    /// ## Use instead
    /// Keep one signal: the queue size to hold a latency target, or HBM use
    /// to maximise hardware use (the same guide), in separate HPAs for separate
    /// workloads if both are needed.
    ///
    /// ## Fix
    /// None: which signal to keep is a choice.
    pub struct NoQueueAndHbmMix {
        id: "no-queue-and-hbm-mix",
        severity: Error,
        summary: "An HPA must not scale on both the queue size and accelerator memory (HBM).",
        fixable: false,
    }
}

impl Rule for NoQueueAndHbmMix {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let metrics = hpa_metrics(object);
        let family_of = |name: Option<&str>| {
            name.and_then(|name| classify(name, cx.policy))
                .map(|(family, _)| family)
        };
        let Some(queue) = metrics
            .iter()
            .find(|metric| family_of(metric.name) == Some(MetricFamily::Queue))
        else {
            return;
        };
        let who = if crate::k8s::autoscaler::is_scaled_object(object) {
            "ScaledObject"
        } else {
            "HPA"
        };
        for hbm in metrics
            .iter()
            .filter(|metric| family_of(metric.name) == Some(MetricFamily::Hbm))
        {
            sink.report(
                hbm.name_pointer(),
                format!(
                    "{who} scales on HBM `{}` and queue size `{}`; HBM triggers first, so the queue target never governs",
                    crate::k8s::metrics::base_name(hbm.name.unwrap_or_default()),
                    crate::k8s::metrics::base_name(queue.name.unwrap_or_default())
                ),
            )
            .help(format!(
                "accelerator memory (HBM) `{}` rises with load; scale on one of them: the queue size for latency, or HBM for hardware use",
                hbm.name.unwrap_or_default()
            ));
        }
    }
}
