use crate::input::pointer::Lookup;
use std::sync::LazyLock;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, VectorSelector};
use regex::Regex;
use serde_json::Value;

use crate::engine::{Context, Sink};
use crate::input::loader::Document;
use crate::input::object::Object;
use crate::input::source::Location;
use crate::k8s::adapter::adapter_rules;
use crate::policy::AdapterBackend;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads prometheus-adapter configuration — a ConfigMap whose
    /// `config.yaml` holds `externalRules`, or Helm values with
    /// `rules.external` / `rules.custom` — and parses every `metricsQuery`
    /// as PromQL, after substituting the adapter's template markers
    /// (`<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>`).
    ///
    /// - Every vector selector of an external rule must be filtered on the
    ///   namespace. prometheus-adapter does it itself when the rule maps a
    ///   namespace resource (an override to `namespace`, or a `template`)
    ///   and does not set `resources.namespaced: false`: it puts the HPA's
    ///   namespace into `<<.LabelMatchers>>`. Otherwise the selector needs
    ///   a matcher of its own on one of `adapter.namespaceLabels`. The
    ///   message says which case applies.
    /// - With `adapter.backend: gmp`, every selector of an external or
    ///   custom rule needs a matcher on one of `adapter.clusterLabels`
    ///   (`cluster`, `location`, `project_id`…), and every `seriesQuery`
    ///   must name its metric exactly: no regex matcher on the metric name.
    ///
    /// ## Why is this bad?
    /// The adapter sends each query to Prometheus as written: when two
    /// namespaces run applications that emit a metric of the same name, an
    /// HPA on an unfiltered external metric scales on both
    /// (prometheus-adapter docs, "External Metrics", Namespacing). Google
    /// Cloud Managed Service for Prometheus answers for every cluster of
    /// the project and the adapter never adds a cluster matcher, and it
    /// does not accept a regex matcher on the metric name in `seriesQuery`
    /// (GKE documentation, "Autoscale LLM inference workloads on TPUs").
    ///
    /// ## Example
    /// ```yaml
    /// rules:
    ///   external:
    ///   - seriesQuery: 'vllm:num_requests_waiting'
    ///     metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// rules:
    ///   external:
    ///   - seriesQuery: 'vllm:num_requests_waiting{namespace!=""}'
    ///     resources:
    ///       overrides:
    ///         namespace: {resource: namespace}   # the adapter adds the HPA's namespace
    ///     metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
    /// ```
    ///
    /// ## Fix
    /// None: which namespace or cluster to pin is for a person to say.
    pub struct AdapterQueryNamespaceFilter {
        id: "adapter-query-namespace-filter",
        severity: Error,
        summary: "prometheus-adapter external queries must stay in the HPA's namespace; with GMP every query names its cluster and seriesQuery no regex name.",
        fixable: false,
    }
}

impl Rule for AdapterQueryNamespaceFilter {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if object.kind() != "ConfigMap" {
            return;
        }
        for embedded in cx.embedded(object) {
            let Some(document) = embedded.loaded.documents.first() else {
                continue;
            };
            let locate =
                |inner_pointer: &str| embedded.locate(document.positions.locate(inner_pointer)?);
            check_config(cx, &document.value, sink, &locate, Some(&embedded.pointer));
        }
    }

    fn check_document(&self, cx: &Context<'_>, document: &Document, sink: &mut Sink) {
        let locate = |inner_pointer: &str| document.positions.locate(inner_pointer);
        check_config(cx, &document.value, sink, &locate, None);
    }
}

static TEMPLATE_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<<\s*\.(\w+)\s*>>").unwrap_or_else(|error| unreachable!("static pattern: {error}"))
});

/// The matcher `<<.LabelMatchers>>` becomes, so that the query parses.
const LABEL_MATCHERS: &str = "infergate_label_matchers";

/// Substitute prometheus-adapter's template markers with PromQL that
/// parses: the series name, a label matcher, a label list.
fn substitute_markers(query: &str) -> String {
    TEMPLATE_MARKER
        .replace_all(query, |captures: &regex::Captures<'_>| match &captures[1] {
            "Series" => "infergate_series".to_string(),
            "LabelMatchers" => format!("{LABEL_MATCHERS}=\"x\""),
            "GroupBy" => "infergate_group_by".to_string(),
            other => format!("infergate_{}", other.to_lowercase()),
        })
        .into_owned()
}

fn display_selector(selector: &VectorSelector) -> String {
    crate::k8s::promql::selector_name(selector)
        .map(|name| name.replace("infergate_series", "<<.Series>>"))
        .unwrap_or_else(|| "{…}".to_string())
}

/// Check one adapter configuration. Findings go at `outer_pointer` (the
/// ConfigMap's data key) when given, else at the rule's own pointer, and at
/// the exact location `locate` finds for the offending query.
fn check_config(
    cx: &Context<'_>,
    config: &Value,
    sink: &mut Sink,
    locate: &dyn Fn(&str) -> Option<Location>,
    outer_pointer: Option<&str>,
) {
    let adapter = &cx.policy.adapter;
    for rule in adapter_rules(config) {
        let name = rule
            .value
            .at("/name/as")
            .and_then(Value::as_str)
            .or_else(|| rule.value.get("seriesQuery").and_then(Value::as_str))
            .unwrap_or("?");
        let mut report = |inner_pointer: String, message: String, help: &str| {
            let report = sink.report(
                outer_pointer.map_or_else(|| inner_pointer.clone(), str::to_string),
                message,
            );
            report.help(help.to_string());
            if let Some(location) = locate(&inner_pointer) {
                report.at(location);
            }
        };
        if adapter.backend == AdapterBackend::Gmp {
            if let Some(series) = rule.value.get("seriesQuery").and_then(Value::as_str) {
                let series_pointer = format!("{}/seriesQuery", rule.pointer);
                if let Ok(expr) = parser::parse(&substitute_markers(series)) {
                    let selectors = crate::k8s::promql::selectors(&expr);
                    let regex_on_name = selectors.iter().any(|selector| {
                        selector.matchers.matchers.iter().any(|matcher| {
                            matcher.name == "__name__"
                                && matches!(matcher.op, MatchOp::Re(_) | MatchOp::NotRe(_))
                        })
                    });
                    if regex_on_name {
                        report(
                            series_pointer,
                            format!("seriesQuery `{series}` matches the metric name with a regex, which Google Cloud Managed Service for Prometheus does not support"),
                            "name the metric exactly in seriesQuery, one rule per metric",
                        );
                    }
                }
            }
        }
        let Some(query) = rule.value.get("metricsQuery").and_then(Value::as_str) else {
            continue;
        };
        let gmp = adapter.backend == AdapterBackend::Gmp;
        if !rule.external && !gmp {
            continue;
        }
        let query_pointer = format!("{}/metricsQuery", rule.pointer);
        let expr = match parser::parse(&substitute_markers(query)) {
            Ok(expr) => expr,
            Err(error) => {
                report(
                    query_pointer,
                    format!(
                        "metricsQuery of rule `{name}` is not valid PromQL: {}",
                        error.lines().next().unwrap_or_default()
                    ),
                    "fix the query; the adapter rejects it",
                );
                continue;
            }
        };
        let selectors = crate::k8s::promql::selectors(&expr);
        let pins = |selector: &VectorSelector, labels: &[String]| {
            selector.matchers.matchers.iter().any(|matcher| {
                labels.contains(&matcher.name) && matches!(matcher.op, MatchOp::Equal)
            })
        };
        let adapter_adds_namespace = rule.external && adds_namespace(rule.value);
        let without = |test: &dyn Fn(&VectorSelector) -> bool| -> Vec<String> {
            selectors
                .iter()
                .filter(|selector| !test(selector))
                .map(display_selector)
                .collect()
        };
        if rule.external {
            let unscoped = without(&|selector| {
                pins(selector, &adapter.namespace_labels)
                    || (adapter_adds_namespace && uses_label_matchers(selector))
            });
            if !unscoped.is_empty() {
                let label = adapter
                    .namespace_labels
                    .first()
                    .map_or("namespace", String::as_str);
                // The remedy follows the cause: a rule that opted out of
                // namespaces can only be filtered in its query; one that
                // maps the namespace needs the matchers the adapter fills.
                let (why, help) = if !adapter_adds_namespace && namespaced_false(rule.value) {
                    (
                        "the rule sets resources.namespaced: false, so the adapter adds no namespace",
                        format!("the adapter passes no namespace for this rule: write {label}=\"<namespace>\" into each selector of the query (or drop namespaced: false and use <<.LabelMatchers>>); unfiltered, the HPA averages every namespace's series"),
                    )
                } else if !adapter_adds_namespace {
                    (
                        "the rule maps no namespace resource, so the adapter adds no namespace",
                        format!("add {label}=\"<namespace>\" to the selector, or map the namespace resource and use <<.LabelMatchers>>; unfiltered, the HPA averages every namespace's series"),
                    )
                } else {
                    (
                        "it has no <<.LabelMatchers>>, where the adapter puts the HPA's namespace",
                        format!("add <<.LabelMatchers>> to the selector (the adapter writes the HPA's namespace there), or {label}=\"<namespace>\"; unfiltered, the HPA averages every namespace's series"),
                    )
                };
                report(
                    query_pointer.clone(),
                    format!(
                        "external rule `{name}`: {} is not filtered on namespace; {why}",
                        quoted(&unscoped)
                    ),
                    &help,
                );
            }
        }
        if gmp {
            let unclustered = without(&|selector| pins(selector, &adapter.cluster_labels));
            if !unclustered.is_empty() {
                report(
                    query_pointer,
                    format!(
                        "rule `{name}`: {} has no cluster filter, and Managed Prometheus answers for every cluster of the project",
                        quoted(&unclustered)
                    ),
                    &format!(
                        "add cluster=\"<cluster>\" (or one of {}) to every selector; the adapter never adds it",
                        adapter.cluster_labels.join(", ")
                    ),
                );
            }
        }
    }
}

fn quoted(selectors: &[String]) -> String {
    selectors
        .iter()
        .map(|selector| format!("`{selector}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the query writes `<<.LabelMatchers>>` into this selector.
fn uses_label_matchers(selector: &VectorSelector) -> bool {
    selector
        .matchers
        .matchers
        .iter()
        .any(|matcher| matcher.name == LABEL_MATCHERS)
}

fn namespaced_false(rule: &Value) -> bool {
    rule.at("/resources/namespaced") == Some(&Value::Bool(false))
}

/// Whether prometheus-adapter adds the HPA's namespace to an external
/// rule's label matchers: the rule maps a namespace resource (an override
/// to `namespace`, or a template) and does not opt out.
fn adds_namespace(rule: &Value) -> bool {
    if namespaced_false(rule) {
        return false;
    }
    let Some(resources) = rule.get("resources") else {
        return false;
    };
    let overrides_namespace = resources
        .get("overrides")
        .and_then(Value::as_object)
        .is_some_and(|overrides| {
            overrides
                .values()
                .any(|target| target.get("resource").and_then(Value::as_str) == Some("namespace"))
        });
    overrides_namespace || resources.get("template").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_substituted_into_valid_promql() {
        let query = substitute_markers(
            "avg(<<.Series>>{<<.LabelMatchers>>,cluster=\"c\"}) by (<<.GroupBy>>)",
        );
        assert_eq!(
            query,
            "avg(infergate_series{infergate_label_matchers=\"x\",cluster=\"c\"}) by (infergate_group_by)"
        );
        assert!(parser::parse(&query).is_ok());
    }
}
