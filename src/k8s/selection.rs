//! Which pods a label selector selects: the labels of a pod template plus
//! the ones its controller adds when it creates the pods
//! (`kubernetes.controllerLabels` in rules/kubernetes.yaml).
//!
//! Every rule that matches pods asks here, so a PodMonitoring that selects
//! `leaderworkerset.sigs.k8s.io/name: vllm` matches the pods of the
//! LeaderWorkerSet `vllm`, although its template never writes that label.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Expression, Selector, SelectorExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::input::object::Object;
use crate::k8s::workload::PodTemplate;
use crate::policy::Policy;

/// The labels of the pods a template makes: (key, value), `None` for a
/// value the controller sets at run time.
#[derive(Debug, Default)]
pub struct PodLabels<'a> {
    written: Option<&'a Map<String, Value>>,
    added: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> PodLabels<'a> {
    pub fn of(workload: &'a Object, template: &PodTemplate<'a>, policy: &'a Policy) -> Self {
        let added = policy
            .kubernetes
            .controller_labels
            .get(workload.kind())
            .into_iter()
            .flatten()
            .map(|added| {
                let value = match added.value.as_deref() {
                    Some("name") => workload.name(),
                    _ => None,
                };
                (added.label.as_str(), value)
            })
            .collect();
        Self {
            written: template.labels(),
            added,
        }
    }

    /// Labels written in a template only (no controller known).
    pub fn written(labels: &'a Map<String, Value>) -> Self {
        Self {
            written: Some(labels),
            added: Vec::new(),
        }
    }

    /// Every label the pods have: (key, value), `None` for a value set at
    /// run time (any value may be there).
    pub fn pairs(&self) -> Vec<(&'a str, Option<&'a str>)> {
        let mut pairs: Vec<(&'a str, Option<&'a str>)> = self.added.clone();
        for (key, value) in self.written.into_iter().flatten() {
            if !self.added.iter().any(|(added, _)| *added == key.as_str()) {
                pairs.push((key.as_str(), value.as_str()));
            }
        }
        pairs
    }

    /// What a pod has for `key`: absent, a known value, or some value.
    fn get(&self, key: &str) -> Label<'a> {
        if let Some((_, value)) = self.added.iter().find(|(label, _)| *label == key) {
            return value.map_or(Label::Unknown, Label::Known);
        }
        match self.written.and_then(|labels| labels.get(key)) {
            Some(value) => value.as_str().map_or(Label::Unknown, Label::Known),
            None => Label::Absent,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Label<'a> {
    Absent,
    Known(&'a str),
    /// Set by the controller at run time: any value may be there.
    Unknown,
}

/// Whether a label selector (matchLabels, matchExpressions) may select pods
/// with these labels. An empty selector selects nothing here: the rules
/// ask about monitors, where an empty selector is a mistake of its own. A
/// selector the apiserver would refuse (an unknown operator, `In` without
/// values, a value that is not a string) selects nothing either.
///
/// The selector is kube-core's; what it adds here is a label whose value
/// the controller sets at run time, which any value may match.
pub fn selects(selector: &Value, labels: &PodLabels<'_>) -> bool {
    let Ok(selector) = LabelSelector::deserialize(selector) else {
        return false;
    };
    let Ok(selector) = Selector::try_from(selector) else {
        return false;
    };
    !selector.selects_all()
        && selector
            .into_iter()
            .all(|expression| may_match(&expression, labels))
}

/// Whether the pods' labels may meet one requirement.
fn may_match(expression: &Expression, labels: &PodLabels<'_>) -> bool {
    let key = match expression {
        Expression::In(key, _)
        | Expression::NotIn(key, _)
        | Expression::Equal(key, _)
        | Expression::NotEqual(key, _)
        | Expression::Exists(key)
        | Expression::DoesNotExist(key) => key,
    };
    match labels.get(key) {
        Label::Unknown => !matches!(expression, Expression::DoesNotExist(_)),
        Label::Known(value) => {
            expression.matches(&BTreeMap::from([(key.clone(), value.to_string())]))
        }
        Label::Absent => expression.matches(&BTreeMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(value: &Value) -> &Map<String, Value> {
        value.as_object().expect("labels")
    }

    #[test]
    fn written_labels_and_expressions() {
        let written = json!({"app": "vllm", "tier": "serving"});
        let pods = PodLabels::written(labels(&written));
        assert!(selects(&json!({"matchLabels": {"app": "vllm"}}), &pods));
        assert!(!selects(&json!({"matchLabels": {"app": "tgi"}}), &pods));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["serving"]}]}),
            &pods
        ));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}),
            &pods
        ));
        assert!(!selects(&json!({}), &pods));
    }

    #[test]
    fn controller_labels_are_present() {
        let policy = Policy::built_in().expect("policy");
        let loaded = crate::input::loader::parse_source(crate::input::source::SourceFile::new(
            "lws.yaml",
            "apiVersion: leaderworkerset.x-k8s.io/v1\nkind: LeaderWorkerSet\nmetadata: {name: vllm}\nspec:\n  leaderWorkerTemplate:\n    leaderTemplate:\n      metadata: {labels: {role: leader}}\n      spec: {containers: [{name: a, image: x}]}\n    workerTemplate:\n      spec: {containers: [{name: a, image: x}]}\n".to_string(),
        ));
        let lws = &loaded.objects[0];
        let templates = crate::k8s::workload::pod_templates(lws);
        let leader = PodLabels::of(lws, &templates[0], &policy);
        let by_name =
            json!({"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "vllm", "role": "leader"}});
        assert!(selects(&by_name, &leader));
        let other = json!({"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "tgi"}});
        assert!(!selects(&other, &leader));
        // The leader's worker index is 0 at run time: unknown here, so it may match.
        let leaders = json!({"matchLabels": {"leaderworkerset.sigs.k8s.io/worker-index": "0"}});
        assert!(selects(&leaders, &leader));
        let absent = json!({"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/group-key", "operator": "DoesNotExist"}]});
        assert!(!selects(&absent, &leader));
    }
}
