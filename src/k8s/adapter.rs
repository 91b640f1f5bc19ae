//! prometheus-adapter's configuration, as the rules read it: the rules of
//! its own `config.yaml` (`rules`, `externalRules`) and of the Helm chart's
//! values (`rules.custom`, `rules.external`), also nested under
//! `prometheus-adapter:` in an umbrella chart.

use regex::Regex;
use serde_json::Value;

use crate::input::pointer;

/// A rule of the adapter configuration.
pub struct AdapterRule<'a> {
    /// An external rule (`externalRules`, `rules.external`).
    pub external: bool,
    pub pointer: String,
    pub value: &'a Value,
}

fn collect_rules<'a>(
    found: &mut Vec<AdapterRule<'a>>,
    list: Option<&'a Value>,
    base: &str,
    external: bool,
) {
    for (index, value) in list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if value.get("seriesQuery").is_some() || value.get("metricsQuery").is_some() {
            found.push(AdapterRule {
                external,
                pointer: pointer::join(base, index),
                value,
            });
        }
    }
}

pub fn adapter_rules(config: &Value) -> Vec<AdapterRule<'_>> {
    let mut found = Vec::new();
    collect_config(&mut found, config, "");
    // An umbrella chart's values nest the adapter's under its name.
    if let Some(nested) = config
        .get("prometheus-adapter")
        .filter(|nested| nested.is_object())
    {
        collect_config(&mut found, nested, "/prometheus-adapter");
    }
    found
}

fn collect_config<'a>(found: &mut Vec<AdapterRule<'a>>, config: &'a Value, base: &str) {
    // prometheus-adapter's own configuration file.
    collect_rules(
        found,
        config.get("externalRules"),
        &format!("{base}/externalRules"),
        true,
    );
    collect_rules(
        found,
        config.get("rules").filter(|rules| rules.is_array()),
        &format!("{base}/rules"),
        false,
    );
    // The Helm chart's values.
    if let Some(rules) = config.get("rules").filter(|rules| rules.is_object()) {
        collect_rules(
            found,
            rules.get("external"),
            &format!("{base}/rules/external"),
            true,
        );
        collect_rules(
            found,
            rules.get("custom"),
            &format!("{base}/rules/custom"),
            false,
        );
    }
}

/// Whether a YAML document that is not a Kubernetes object is
/// prometheus-adapter configuration (Helm values or its config file): the
/// only such documents rules read.
pub fn is_adapter_config(document: &Value) -> bool {
    if !adapter_rules(document).is_empty() {
        return true;
    }
    let chart_rules = |values: &Value| {
        values
            .get("rules")
            .and_then(Value::as_object)
            .is_some_and(|rules| {
                ["default", "custom", "external", "resource"]
                    .iter()
                    .any(|key| rules.contains_key(*key))
            })
    };
    chart_rules(document)
        || document.get("prometheus-adapter").is_some_and(chart_rules)
        || document.get("externalRules").is_some()
        || document.get("resourceRules").is_some()
}

/// The metric name a rule serves, when it can be known without the
/// series: `seriesQuery` names one metric (`name{…}` or
/// `{__name__="name"}`) and `name.matches`/`name.as` rename it
/// (prometheus-adapter's docs/config.md: `as` defaults to `$1` with one
/// capture group, else `$0`). `None` when the series query matches names
/// by regex.
pub fn served_name(rule: &AdapterRule<'_>) -> Option<String> {
    let series = rule
        .value
        .get("seriesQuery")
        .and_then(Value::as_str)?
        .trim();
    let series_name = series_metric(series)?;
    let Some(naming) = rule.value.get("name") else {
        return Some(series_name.to_string());
    };
    let Some(pattern) = naming.get("matches").and_then(Value::as_str) else {
        return naming
            .get("as")
            .and_then(Value::as_str)
            .filter(|name| !name.contains('$'))
            .map(str::to_string)
            .or_else(|| Some(series_name.to_string()));
    };
    let regex = name_pattern(pattern)?;
    let default = if regex.captures_len() > 1 { "$1" } else { "$0" };
    let replacement = naming
        .get("as")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .unwrap_or(default);
    let captures = regex.captures(series_name)?;
    let mut served = String::new();
    captures.expand(replacement, &mut served);
    Some(served)
}

/// A rule's `name.matches`, compiled once per pattern for the process
/// (every HPA asks about every rule: twenty `\w{300}` rules cost 6 s per
/// HPA when compiled on each call), within a compiled-size budget so that
/// a pattern too large to be a metric name matcher is refused, not built.
fn name_pattern(pattern: &str) -> Option<Regex> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    /// Patterns remembered at most (a config has tens of rules).
    const REMEMBERED: usize = 4096;
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
        LazyLock::new(Default::default);
    if let Some(found) = COMPILED
        .lock()
        .ok()
        .and_then(|cache| cache.get(pattern).cloned())
    {
        return found;
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .ok();
    if let Ok(mut cache) = COMPILED.lock() {
        if cache.len() < REMEMBERED {
            cache.insert(pattern.to_string(), compiled.clone());
        }
    }
    compiled
}

/// The one metric name of a series query, if it names exactly one.
fn series_metric(series: &str) -> Option<&str> {
    let is_name_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    if let Some(selector) = series.strip_prefix('{') {
        let start = selector.find("__name__")?;
        let rest = selector[start + "__name__".len()..].trim_start();
        let rest = rest.strip_prefix('=')?;
        if rest.starts_with('~') {
            return None;
        }
        let rest = rest.trim_start().strip_prefix(['"', '\''])?;
        let end = rest.find(['"', '\''])?;
        let name = &rest[..end];
        return name.chars().all(is_name_char).then_some(name);
    }
    let end = series
        .find(|ch: char| !is_name_char(ch))
        .unwrap_or(series.len());
    let name = &series[..end];
    (!name.is_empty()).then_some(name)
}

/// Every prometheus-adapter rule of the input: in Helm values or config
/// documents, and in ConfigMaps' embedded configuration.
pub fn rules_of_input<'a>(
    documents: &'a [crate::input::loader::Document],
    embedded: impl Iterator<Item = &'a crate::input::embedded::Embedded>,
) -> Vec<AdapterRule<'a>> {
    let mut found: Vec<AdapterRule<'a>> = documents
        .iter()
        .flat_map(|document| adapter_rules(&document.value))
        .collect();
    for embedded in embedded {
        for document in &embedded.loaded.documents {
            found.extend(adapter_rules(&document.value));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn served(rule: Value) -> Option<String> {
        served_name(&AdapterRule {
            external: false,
            pointer: String::new(),
            value: &rule,
        })
    }

    #[test]
    fn served_names_follow_the_naming_rules() {
        assert_eq!(
            served(json!({"seriesQuery": "vllm:num_requests_waiting{namespace!=\"\"}"})).as_deref(),
            Some("vllm:num_requests_waiting")
        );
        assert_eq!(
            served(json!({"seriesQuery": "http_requests_total", "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"}})).as_deref(),
            Some("http_requests_per_second")
        );
        assert_eq!(
            served(json!({"seriesQuery": "{__name__=\"memory_used\"}", "name": {"as": "memory_used_percentage"}})).as_deref(),
            Some("memory_used_percentage")
        );
        assert_eq!(
            served(
                json!({"seriesQuery": "http_requests_total", "name": {"matches": "^(.*)_total$"}})
            )
            .as_deref(),
            Some("http_requests")
        );
        assert_eq!(
            served(json!({"seriesQuery": "{__name__=~\"^container_.*_total\"}"})),
            None
        );
    }
}
