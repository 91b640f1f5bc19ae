//! prometheus-adapter's configuration, as the rules read it: the rules of
//! its own `config.yaml` (`rules`, `externalRules`) and of the Helm chart's
//! values (`rules.custom`, `rules.external`), also nested under
//! `prometheus-adapter:` in an umbrella chart.

use serde_json::Value;

use crate::pointer;

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
