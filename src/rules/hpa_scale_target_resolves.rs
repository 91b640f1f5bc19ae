use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix, Severity};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks that an HPA's `scaleTargetRef` names a workload of the input
    /// with the same kind, apiVersion and namespace. When an object of that
    /// name is in the input with another kind, apiVersion or namespace, that
    /// is a warning; when nothing of that name is in the input, only an info
    /// (an HPA is often linted apart from its Deployment). In the admission
    /// webhook with a cluster client, a Deployment target is looked up: found,
    /// it is checked like one in the input; missing, that is a warning.
    ///
    /// ## Why is this bad?
    /// An HPA whose target does not resolve reports `FailedGetScale` and
    /// never scales; the typical causes are a Deployment renamed or turned
    /// into a StatefulSet or LeaderWorkerSet, an old apiVersion, or an HPA
    /// applied to another namespace than its workload.
    ///
    /// ## Example
    /// ```yaml
    /// scaleTargetRef:
    ///   apiVersion: apps/v1
    ///   kind: Deployment
    ///   name: vllm-llama      # is a LeaderWorkerSet
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// scaleTargetRef:
    ///   apiVersion: leaderworkerset.x-k8s.io/v1
    ///   kind: LeaderWorkerSet
    ///   name: vllm-llama
    /// ```
    ///
    /// ## Fix
    /// When exactly one object of that name is in the HPA's namespace, sets
    /// `kind` and `apiVersion` to its (unsafe: the input may be partial).
    pub struct HpaScaleTargetResolves {
        id: "hpa-scale-target-resolves",
        severity: Warning,
        summary: "An HPA's scaleTargetRef should name a workload of the same kind, apiVersion and namespace.",
        fixable: true,
    }
}

impl Rule for HpaScaleTargetResolves {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A ScaledObject's reference defaults to an apps/v1 Deployment.
        let Some(target) = crate::k8s::autoscaler::scale_target(object) else {
            return;
        };
        let Some(reference) = object.value.at(target.pointer) else {
            return;
        };
        let (kind, name) = (target.kind, target.name);
        let api_version = reference.get("apiVersion").and_then(Value::as_str);
        // Objects of other applications are not this HPA's business.
        let named: Vec<&Object> = cx
            .named(object, name)
            .map(|(_, other)| other)
            .filter(|other| !NEVER_SCALED.contains(&other.kind()) && cx.same_scope(object, other))
            .collect();
        if named.is_empty() && cx.facts.is_missing(kind, cx.namespace_of(object), name) {
            sink.report(
                "/spec/scaleTargetRef/name",
                format!("scaleTargetRef {kind} `{name}` does not exist in the cluster; the HPA cannot scale it"),
            )
            .short(format!(
                "{kind} `{name}` does not exist in the cluster: create it, or fix scaleTargetRef"
            ))
            .help("create the workload first, or fix the name in scaleTargetRef");
            return;
        }
        if named.is_empty() {
            sink.report(
                "/spec/scaleTargetRef/name",
                format!(
                    "scaleTargetRef {kind} `{name}` is not in the input; it cannot be checked here"
                ),
            )
            .help("lint the HPA together with its workload to check the reference")
            .severity(Severity::Info);
            return;
        }
        let same_namespace: Vec<&Object> = named
            .iter()
            .copied()
            .filter(|other| cx.paired(object, other))
            .collect();
        if same_namespace.is_empty() {
            // Same scope, other namespace: both state one and they differ.
            let mut namespaces: Vec<String> = named
                .iter()
                .filter(|other| other.kind() == kind)
                .chain(named.iter().filter(|other| other.kind() != kind))
                .filter_map(|other| other.namespace())
                .map(|namespace| format!("`{namespace}`"))
                .collect();
            namespaces.dedup();
            sink.report(
                "/spec/scaleTargetRef/name",
                format!(
                    "`{name}` is in namespace {} but the HPA is in `{}`; an HPA scales only workloads of its own namespace",
                    namespaces.join(", "),
                    cx.namespace_of(object).unwrap_or("?")
                ),
            )
            .short(format!(
                "`{name}` is in namespace {}: create the HPA there",
                namespaces.first().map_or("?", String::as_str)
            ))
            .help("create the HPA in the workload's namespace");
            return;
        }
        if let Some(exact) = same_namespace.iter().find(|other| other.kind() == kind) {
            if let Some(version) = api_version.filter(|version| *version != exact.id.api_version) {
                sink.report(
                    "/spec/scaleTargetRef/apiVersion",
                    format!(
                        "scaleTargetRef apiVersion `{version}` differs from the {kind}'s `{}`",
                        exact.id.api_version
                    ),
                )
                .help(format!("use apiVersion: {}", exact.id.api_version))
                .maybe_fix(
                    op::replace(
                        "/spec/scaleTargetRef/apiVersion",
                        json!(exact.id.api_version),
                    )
                    .map(|operation| {
                        Fix::safe(
                            format!("use apiVersion {}", exact.id.api_version),
                            vec![operation],
                        )
                    }),
                );
            }
            return;
        }
        let mut kinds: Vec<&str> = same_namespace.iter().map(|other| other.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let fix = match same_namespace.as_slice() {
            [only] => {
                // A ScaledObject may leave the kind to its default.
                let kind_written = reference.get("kind").is_some();
                let operations: Vec<_> = [
                    if kind_written {
                        op::replace("/spec/scaleTargetRef/kind", json!(only.kind()))
                    } else {
                        op::add("/spec/scaleTargetRef/kind", json!(only.kind()))
                    },
                    if api_version.is_some() {
                        op::replace(
                            "/spec/scaleTargetRef/apiVersion",
                            json!(only.id.api_version),
                        )
                    } else {
                        op::add(
                            "/spec/scaleTargetRef/apiVersion",
                            json!(only.id.api_version),
                        )
                    },
                ]
                .into_iter()
                .flatten()
                .collect();
                Some(Fix::unsafe_(
                    format!("target the {} `{name}`", only.kind()),
                    operations,
                ))
            }
            _ => None,
        };
        sink.report(
            "/spec/scaleTargetRef/kind",
            format!(
                "scaleTargetRef names {} `{name}`, but `{name}` is {}",
                with_article(kind),
                match kinds.as_slice() {
                    [first, second, rest @ ..] if !rest.is_empty() => format!(
                        "{}, {} and {} more",
                        with_article(first),
                        with_article(second),
                        rest.len()
                    ),
                    _ => kinds
                        .iter()
                        .map(|kind| with_article(kind))
                        .collect::<Vec<_>>()
                        .join(" and "),
                }
            ),
        )
        .help("make scaleTargetRef's kind and apiVersion those of the workload")
        .maybe_fix(fix);
    }
}

/// Kinds that share names with workloads but never have a scale
/// subresource: a name clash with them says nothing about the target.
const NEVER_SCALED: &[&str] = &[
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "ScaledJob",
    "TriggerAuthentication",
    "PodMonitoring",
    "ClusterPodMonitoring",
    "ServiceMonitor",
    "PodMonitor",
    "Service",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
    "Role",
    "RoleBinding",
    // Serving objects named after the model they serve.
    "ServingRuntime",
    "ClusterServingRuntime",
    "LLMInferenceServiceConfig",
    "InferencePool",
    "InferenceObjective",
    "InferenceModel",
    "InferenceModelRewrite",
    "HTTPRoute",
    "Gateway",
];

/// A kind with its indefinite article: "an InferenceService", "a Deployment".
fn with_article(kind: &str) -> String {
    let vowel = kind
        .chars()
        .next()
        .is_some_and(|first| "AEIOUaeiou".contains(first));
    format!("{} {kind}", if vowel { "an" } else { "a" })
}
