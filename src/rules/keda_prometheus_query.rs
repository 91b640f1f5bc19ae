use promql_parser::parser;
use serde_json::json;

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::autoscaler;
use crate::k8s::metrics::{self, hpa_metrics, HpaMetric};
use crate::k8s::promql::{self, Series};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Parses the PromQL `query` of every `prometheus` trigger of a KEDA
    /// ScaledObject, and of every External metric with the Prometheus
    /// backend in a KServe predictor's `autoScaling.metrics` (KServe makes
    /// a ScaledObject trigger of it), and checks what KEDA does with its
    /// answer:
    ///
    /// - **namespace**: every vector selector filters on a namespace label
    ///   (`namespace`, `exported_namespace`…: `adapter.namespaceLabels` in
    ///   rules/monitoring.yaml) with `=` or a regex without wildcards;
    /// - **one series**: the query returns one series: an aggregation
    ///   without `by (…)`, a `by` whose labels the query pins to one value,
    ///   `histogram_quantile` over a `sum by (le)`, or arithmetic of such;
    ///   a bare selector, a `rate(…)` or a `sum by (pod)` returns one
    ///   series per pod;
    /// - **a total for AverageValue**: with `metricType: AverageValue`
    ///   (KEDA's default) the query returns a total over the pods (`sum`,
    ///   `count`), not a per-pod value (`avg`, `max`, `min`, a quantile).
    ///
    /// ## Why is this bad?
    /// KEDA asks Prometheus without any namespace of its own: a selector
    /// without a namespace filter adds up every namespace's pods that
    /// publish the metric (a staging copy of the model server scales
    /// production). The Prometheus scaler accepts one element only: a query
    /// that returns one series per pod fails at every poll and the
    /// ScaledObject never scales. With AverageValue the HPA KEDA generates
    /// divides the query's value by the current replicas; an average
    /// divided again shrinks as replicas grow, so the target is met too
    /// early and scale-out stops short.
    ///
    /// ## Example
    /// ```yaml
    /// triggers:
    /// - type: prometheus
    ///   metadata:
    ///     serverAddress: http://prometheus.monitoring:9090
    ///     query: avg(vllm:num_requests_waiting)
    ///     threshold: "5"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///     query: sum(vllm:num_requests_waiting{namespace="serving"})
    /// ```
    ///
    /// ## Fix
    /// Adds `namespace="<the ScaledObject's namespace>"` to the selectors
    /// that lack a namespace filter (unsafe: a query that reads another
    /// namespace on purpose changes meaning). The other two findings have
    /// no fix: `sum(…)` or `metricType: Value` is the author's choice.
    pub struct KedaPrometheusQuery {
        id: "keda-prometheus-query",
        severity: Error,
        summary: "A KEDA Prometheus query must filter on its namespace, return one series, and return a total when metricType is AverageValue.",
        fixable: true,
    }
}

impl Rule for KedaPrometheusQuery {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A KServe predictor's External metrics become the triggers of
        // the ScaledObject KServe makes for it.
        let metrics = if autoscaler::is_scaled_object(object) {
            hpa_metrics(object)
        } else {
            metrics::kserve_metrics(object)
        };
        for metric in metrics {
            check_trigger(cx, object, &metric, sink);
        }
    }
}

fn check_trigger(cx: &Context<'_>, object: &Object, metric: &HpaMetric<'_>, sink: &mut Sink) {
    let Some((query, query_pointer)) = metrics::prometheus_query(metric) else {
        return;
    };
    let expr = match parser::parse(query) {
        Ok(expr) => expr,
        Err(error) => {
            sink.report(
                query_pointer,
                format!(
                    "the query is not valid PromQL: {}",
                    error.lines().next().unwrap_or("")
                ),
            )
            .help("KEDA sends the query to Prometheus as written; check it in the Prometheus UI");
            return;
        }
    };
    let labels = &cx.policy.adapter.namespace_labels;
    let unfiltered: Vec<String> = promql::selectors(&expr)
        .iter()
        .filter(|selector| !promql::filters_on(selector, labels))
        .map(|selector| promql::selector_name(selector).unwrap_or("{…}").to_string())
        .collect();
    if !unfiltered.is_empty() {
        let namespace = cx.namespace_of(object);
        let fix = namespace
            .and_then(|namespace| with_namespace(query, &unfiltered, namespace, labels))
            .and_then(|fixed| op::replace(&query_pointer, json!(fixed)))
            .map(|operation| {
                Fix::unsafe_(
                    format!(
                        "filter the query on namespace `{}`",
                        namespace.unwrap_or_default()
                    ),
                    vec![operation],
                )
            });
        sink.report(
            query_pointer.clone(),
            format!(
                "`{}` has no namespace filter; KEDA queries Prometheus across every namespace",
                unfiltered.join("`, `")
            ),
        )
        .short(format!(
            "query reads `{}` of every namespace: add namespace=\"…\"",
            unfiltered.first().map_or("", String::as_str)
        ))
        .help(format!(
            "add namespace=\"{}\" to each selector",
            namespace.unwrap_or("<namespace>")
        ))
        .maybe_fix(fix);
    }
    if promql::series(&expr) == Series::Many {
        sink.report(
            query_pointer.clone(),
            "the query can return several series (one per pod or label value); KEDA's Prometheus scaler fails on more than one",
        )
        .short("the query returns several series: wrap it in sum(…)")
        .help("aggregate to one series, for example sum(…) without `by`");
        return;
    }
    let average_value = metric
        .target
        .as_ref()
        .and_then(|target| target.target_type)
        .is_none_or(|target_type| target_type == "AverageValue");
    if !average_value {
        return;
    }
    let Some(aggregate) = promql::top_aggregation(&expr) else {
        return;
    };
    let op = aggregate.op.to_string();
    let keda = &cx.policy.keda;
    if keda.per_pod_aggregations.contains(&op) {
        sink.report(
            query_pointer,
            format!(
                "`{op}(…)` is a per-pod value, and metricType AverageValue divides it by the replicas again; the ScaledObject scales out too little"
            ),
        )
        .short(format!("{op}(…) with AverageValue is divided by replicas twice"))
        .help(format!(
            "return a total over the pods ({}), or set the trigger's metricType: Value to compare the value as it is",
            keda.total_aggregations
                .iter()
                .map(|total| format!("{total}(…)"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// The query with `label="namespace"` added to the selectors of these
/// metrics, if the result parses and every selector then filters on a
/// namespace.
fn with_namespace(
    query: &str,
    metrics: &[String],
    namespace: &str,
    labels: &[String],
) -> Option<String> {
    let label = labels.first()?;
    let matcher = format!("{label}=\"{namespace}\"");
    let mut fixed = String::with_capacity(query.len() + 32);
    let bytes = query.as_bytes();
    let mut index = 0;
    let mut in_quotes: Option<u8> = None;
    let is_name = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':';
    while index < bytes.len() {
        let byte = bytes[index];
        if let Some(quote) = in_quotes {
            fixed.push(byte as char);
            if byte == quote && bytes.get(index.wrapping_sub(1)) != Some(&b'\\') {
                in_quotes = None;
            }
            index += 1;
            continue;
        }
        if byte == b'"' || byte == b'\'' || byte == b'`' {
            in_quotes = Some(byte);
            fixed.push(byte as char);
            index += 1;
            continue;
        }
        let starts_name = is_name(byte) && (index == 0 || !is_name(bytes[index - 1]));
        if starts_name {
            let end = (index..bytes.len())
                .find(|at| !is_name(bytes[*at]))
                .unwrap_or(bytes.len());
            let word = query.get(index..end)?;
            fixed.push_str(word);
            if metrics.iter().any(|metric| metric == word) {
                let rest = query.get(end..)?;
                let spaces = rest.len() - rest.trim_start().len();
                if rest.trim_start().starts_with('{') {
                    fixed.push_str(rest.get(..spaces + 1)?);
                    let after = rest.get(spaces + 1..)?.trim_start();
                    if after.starts_with('}') {
                        fixed.push_str(&matcher);
                    } else {
                        fixed.push_str(&matcher);
                        fixed.push(',');
                    }
                    index = end + spaces + 1;
                    continue;
                }
                // A function call (`sum (`) is no selector.
                if !rest.trim_start().starts_with('(') {
                    fixed.push('{');
                    fixed.push_str(&matcher);
                    fixed.push('}');
                }
            }
            index = end;
            continue;
        }
        fixed.push(byte as char);
        index += 1;
    }
    let parsed = parser::parse(&fixed).ok()?;
    promql::selectors(&parsed)
        .iter()
        .all(|selector| promql::filters_on(selector, labels))
        .then_some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_added_to_every_unfiltered_selector() {
        let labels = vec!["namespace".to_string()];
        let metrics = |names: &[&str]| {
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            with_namespace(
                "sum(vllm:num_requests_waiting)",
                &metrics(&["vllm:num_requests_waiting"]),
                "serving",
                &labels
            )
            .as_deref(),
            Some("sum(vllm:num_requests_waiting{namespace=\"serving\"})")
        );
        assert_eq!(
            with_namespace(
                "sum(rate(tgi_request_count{model=\"a\"}[2m]))",
                &metrics(&["tgi_request_count"]),
                "serving",
                &labels
            )
            .as_deref(),
            Some("sum(rate(tgi_request_count{namespace=\"serving\",model=\"a\"}[2m]))")
        );
        assert_eq!(
            with_namespace(
                "sum(x{}) / sum(y{namespace=\"serving\"})",
                &metrics(&["x"]),
                "serving",
                &labels
            )
            .as_deref(),
            Some("sum(x{namespace=\"serving\"}) / sum(y{namespace=\"serving\"})")
        );
        // A selector by __name__ only cannot be rewritten safely here.
        assert_eq!(
            with_namespace(
                "sum({__name__=\"x\"})",
                &metrics(&["{…}"]),
                "serving",
                &labels
            ),
            None
        );
    }
}
