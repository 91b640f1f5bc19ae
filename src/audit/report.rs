//! Findings as `wgpolicyk8s.io/v1alpha2` PolicyReports, the format Kyverno,
//! kube-bench adapters and Policy Reporter read: one PolicyReport per
//! audited namespace and one ClusterPolicyReport, each with `results[]`
//! and a `summary` of counts (field list: kubernetes-sigs/wg-policy-prototypes,
//! "Policy Report API", v1alpha2).

use crate::input::pointer::Lookup;
use std::collections::{BTreeMap, BTreeSet};

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{json, Map, Value};

use super::Audited;
use crate::engine::finding::{Finding, Severity};
use crate::k8s::kube_api::describe;

pub const GROUP_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The report's name in every namespace, the policy and source of every result.
pub const NAME: &str = "infergate";
/// The label that marks infergate's reports, so that a later run replaces them.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "infergate");
/// The field manager of server-side apply.
pub const FIELD_MANAGER: &str = "infergate";

fn result_of(severity: Severity) -> Option<(&'static str, &'static str)> {
    // (result, severity): errors fail, warnings warn; infos are not reported.
    match severity {
        Severity::Error => Some(("fail", "high")),
        Severity::Warning => Some(("warn", "medium")),
        Severity::Info => None,
    }
}

/// The kinds that are infergate's domain whatever they run: a clean one of
/// these gets a `pass` result. Workloads get one only when they serve a
/// model (a web server's Deployment is not something infergate checked).
const CHECKED_KINDS: &[&str] = &[
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "PodMonitoring",
    "ClusterPodMonitoring",
    "PodMonitor",
    "ServiceMonitor",
    "InferencePool",
    "InferenceObjective",
    "InferenceModel",
    "RayService",
    "RayCluster",
    "InferenceService",
    "ServingRuntime",
    "ClusterServingRuntime",
    "LLMInferenceService",
];

/// The resource a result is about.
fn resource_of(object: &Value) -> Value {
    let mut resource = Map::new();
    resource.insert(
        "apiVersion".into(),
        object.get("apiVersion").cloned().unwrap_or(Value::Null),
    );
    resource.insert(
        "kind".into(),
        object.get("kind").cloned().unwrap_or(Value::Null),
    );
    for key in ["namespace", "name", "uid"] {
        if let Some(value) = object
            .get("metadata")
            .and_then(|metadata| metadata.get(key))
        {
            resource.insert(key.into(), value.clone());
        }
    }
    Value::Object(resource)
}

/// Kyverno's convention: a resource that was checked and held gets a
/// `pass`, so a report tells "checked, clean" from "never looked at".
/// One per object (not per rule: most rules have nothing to say about most
/// kinds, and a pass per rule would say they did).
fn pass_json(object: &Value, seconds: i64) -> Value {
    json!({
        "source": NAME,
        "policy": NAME,
        "category": "LLM inference",
        "result": "pass",
        "scored": true,
        "message": "no infergate rule found an error or a warning",
        "timestamp": {"seconds": seconds, "nanos": 0},
        "resources": [resource_of(object)],
    })
}

fn result_json(finding: &Finding, object: &Value, seconds: i64) -> Option<Value> {
    let (mut result, severity) = result_of(finding.severity)?;
    // A suppressed finding is listed as skipped with who suppressed it and
    // why: the object's own annotation needs no right to write, so an
    // audit must show what it hides.
    if finding.suppressed.is_some() {
        result = "skip";
    }
    let resource = resource_of(object);
    // Properties are strings (map[string]string).
    let mut properties = Map::new();
    properties.insert(
        "field".into(),
        json!(crate::input::pointer::display(&finding.pointer)),
    );
    properties.insert("pointer".into(), json!(finding.pointer));
    if let Some(fix) = &finding.fix {
        properties.insert("fix".into(), json!(fix.description));
    }
    if let Some(help) = &finding.help {
        properties.insert("help".into(), json!(help));
    }
    if let Some(inference) = &finding.inference {
        properties.insert("inference".into(), json!(inference));
    }
    if let Some(reason) = &finding.suppressed {
        let by = if finding.exempted {
            "policy exception"
        } else {
            "infergate.dev/ignore annotation"
        };
        properties.insert("suppressedBy".into(), json!(by));
        properties.insert("suppressionReason".into(), json!(reason));
    }
    Some(json!({
        "source": NAME,
        "policy": NAME,
        "rule": finding.rule,
        "category": "LLM inference",
        "result": result,
        "severity": severity,
        "scored": true,
        "message": finding.message,
        "timestamp": {"seconds": seconds, "nanos": 0},
        "resources": [resource],
        "properties": properties,
    }))
}

fn report(kind: &str, namespace: Option<&str>, results: Vec<Value>) -> Value {
    let count = |result: &str| {
        results
            .iter()
            .filter(|entry| entry["result"] == result)
            .count()
    };
    let mut metadata = json!({
        "name": NAME,
        "labels": {MANAGED_BY.0: MANAGED_BY.1},
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": GROUP_VERSION,
        "kind": kind,
        "metadata": metadata,
        "summary": {"pass": count("pass"), "fail": count("fail"), "warn": count("warn"), "error": 0, "skip": count("skip")},
        "results": results,
    })
}

/// One PolicyReport per namespace that holds an audited object (with no
/// results where nothing is wrong, so that an earlier report is replaced)
/// and one ClusterPolicyReport for cluster-scoped objects. Infos are left
/// out; suppressed errors and warnings are results `skip`, with who
/// suppressed them (the object's annotation or a policy exception) and why;
/// an object of infergate's domain with none of these is a `pass`
/// (`serves_a_model` tells which workloads are).
pub fn reports(
    audited: &Audited,
    seconds: i64,
    serves_a_model: &dyn Fn(&crate::input::object::Object) -> bool,
) -> Vec<Value> {
    let mut by_namespace: BTreeMap<String, Vec<Value>> = audited
        .loaded
        .objects
        .iter()
        .filter_map(|object| {
            object
                .namespace()
                .map(|namespace| (namespace.to_string(), Vec::new()))
        })
        .collect();
    let mut cluster = Vec::new();
    let mut place = |object: &crate::input::object::Object, entry: Value| match object.namespace() {
        Some(namespace) => by_namespace
            .entry(namespace.to_string())
            .or_default()
            .push(entry),
        None => cluster.push(entry),
    };
    let mut reported = vec![false; audited.loaded.objects.len()];
    for finding in &audited.outcome.findings {
        let Some(object) = finding
            .object_index
            .and_then(|index| audited.loaded.objects.get(index))
        else {
            continue;
        };
        let Some(entry) = result_json(finding, &object.value, seconds) else {
            continue;
        };
        if let Some(index) = finding.object_index {
            if let Some(flag) = reported.get_mut(index) {
                *flag = true;
            }
        }
        place(object, entry);
    }
    for (object, _) in audited
        .loaded
        .objects
        .iter()
        .zip(&reported)
        .filter(|(_, reported)| !**reported)
    {
        if !(CHECKED_KINDS.contains(&object.kind()) || serves_a_model(object)) {
            continue;
        }
        let entry = pass_json(&object.value, seconds);
        place(object, entry);
    }
    let mut out: Vec<Value> = by_namespace
        .into_iter()
        .map(|(namespace, results)| report("PolicyReport", Some(&namespace), results))
        .collect();
    out.push(report("ClusterPolicyReport", None, cluster));
    out
}

/// The reports as one YAML stream, ready for `kubectl apply -f -`.
pub fn yaml(reports: &[Value]) -> String {
    let layout = crate::fix::emit::Layout {
        indent: 2,
        indent_sequences: true,
        newline: "\n",
    };
    reports
        .iter()
        .map(|report| crate::fix::emit::document(report, layout))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the PolicyReport CRD ({GROUP_VERSION}) is not installed in the cluster")]
    NotInstalled,
    #[error("cannot write {report}: {message}")]
    Write { report: String, message: String },
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// What makes two reports the same for a reader: their results without
/// the time each was found, and their summary.
fn unchanged(earlier: &Value, report: &Value) -> bool {
    let results = |report: &Value| -> Vec<Value> {
        report
            .get("results")
            .and_then(Value::as_array)
            .map(|results| {
                results
                    .iter()
                    .map(|result| {
                        let mut result = result.clone();
                        if let Some(fields) = result.as_object_mut() {
                            fields.remove("timestamp");
                        }
                        result
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    earlier.get("summary") == report.get("summary") && results(earlier) == results(report)
}

/// What [`write`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub written: usize,
    /// Reports left as they were: the same results as this run's, so the
    /// report's readers (and its resourceVersion) see no change.
    pub unchanged: usize,
    pub deleted: usize,
}

/// Apply the reports with server-side apply (field manager
/// [`FIELD_MANAGER`]), leaving alone a report whose results have not
/// changed since the last run, and delete infergate's earlier PolicyReports
/// in the audited namespaces that no longer have one (`scope`: one
/// namespace, or every namespace when `None`).
pub async fn write(
    client: &kube::Client,
    reports: &[Value],
    scope: Option<&str>,
) -> Result<Written, WriteError> {
    let served = client
        .list_api_group_resources(GROUP_VERSION)
        .await
        .map(|list| {
            list.resources
                .into_iter()
                .map(|resource| resource.name)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !served.iter().any(|name| name == "policyreports")
        || !served.iter().any(|name| name == "clusterpolicyreports")
    {
        return Err(WriteError::NotInstalled);
    }
    let namespaced = resource("PolicyReport", "policyreports");
    let cluster = resource("ClusterPolicyReport", "clusterpolicyreports");
    // infergate's reports of earlier runs, in the audited scope.
    let earlier_api: kube::Api<DynamicObject> = match scope {
        Some(namespace) => kube::Api::namespaced_with(client.clone(), namespace, &namespaced),
        None => kube::Api::all_with(client.clone(), &namespaced),
    };
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let earlier = earlier_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|error| WriteError::Write {
            report: "earlier PolicyReports".to_string(),
            message: describe(&error),
        })?;
    let earlier_in = |namespace: &str| -> Option<Value> {
        earlier
            .items
            .iter()
            .find(|item| {
                item.metadata.namespace.as_deref() == Some(namespace)
                    && item.metadata.name.as_deref() == Some(NAME)
            })
            .and_then(|item| serde_json::to_value(item).ok())
    };
    let cluster_api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &cluster);
    let earlier_cluster = cluster_api
        .get_opt(NAME)
        .await
        .ok()
        .flatten()
        .and_then(|item| serde_json::to_value(item).ok());
    // Strict: a field the installed CRD does not know is an error naming it,
    // not silently pruned from the report (the apiserver's default warns).
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    let mut outcome = Written::default();
    let mut written_namespaces = BTreeSet::new();
    for report in reports {
        let namespace = report.at("/metadata/namespace").and_then(Value::as_str);
        if let Some(namespace) = namespace {
            written_namespaces.insert(namespace.to_string());
        }
        let before = match namespace {
            Some(namespace) => earlier_in(namespace),
            None => earlier_cluster.clone(),
        };
        if before.is_some_and(|before| unchanged(&before, report)) {
            outcome.unchanged += 1;
            continue;
        }
        let api: kube::Api<DynamicObject> = match namespace {
            Some(namespace) => kube::Api::namespaced_with(client.clone(), namespace, &namespaced),
            None => cluster_api.clone(),
        };
        let label = match namespace {
            Some(namespace) => format!("PolicyReport {namespace}/{NAME}"),
            None => format!("ClusterPolicyReport {NAME}"),
        };
        api.patch(NAME, &params, &Patch::Apply(report))
            .await
            .map_err(|error| WriteError::Write {
                report: label,
                message: describe(&error),
            })?;
        outcome.written += 1;
    }
    // Reports of an earlier run in namespaces with nothing audited now.
    for stale in earlier.items.iter().filter(|item| {
        item.metadata
            .namespace
            .as_ref()
            .is_some_and(|namespace| !written_namespaces.contains(namespace))
    }) {
        let (Some(namespace), Some(name)) = (&stale.metadata.namespace, &stale.metadata.name)
        else {
            continue;
        };
        let api: kube::Api<DynamicObject> =
            kube::Api::namespaced_with(client.clone(), namespace, &namespaced);
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|error| WriteError::Write {
                report: format!("PolicyReport {namespace}/{name}"),
                message: describe(&error),
            })?;
        outcome.deleted += 1;
    }
    Ok(outcome)
}
