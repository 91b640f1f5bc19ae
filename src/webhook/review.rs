//! The admission decision, as pure functions: an AdmissionReview in, an
//! AdmissionReview out. The server only moves bytes.

use crate::input::pointer::Lookup;
use base64::Engine as _;
use json_patch::PatchOperation;
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::DynamicObject;
use serde_json::{json, Value};

use super::metrics::Outcome;
use crate::engine::finding::{op, Applicability, Finding, Severity};
use crate::engine::{ClusterFacts, Engine};
use crate::input::loader::Loaded;
use crate::input::object::{Object, PositionMap};
use crate::input::pointer::display as field;
use crate::input::source::SourceFile;
use crate::rules::xla_cache_single_writer;

/// What a request asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Validate,
    Mutate,
}

/// A request that cannot be reviewed: answered with HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {0}")]
    WrongType(String),
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    #[error("the request is malformed: {0}")]
    Malformed(String),
}

/// The kinds the server reviews; anything else is allowed untouched.
pub const HANDLED_KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("keda.sh", "ScaledObject"),
    ("monitoring.googleapis.com", "PodMonitoring"),
    ("monitoring.googleapis.com", "ClusterPodMonitoring"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("", "ConfigMap"),
    ("", "Namespace"),
    ("autoscaling", "Scale"),
    // Where inference is deployed besides the built-in workloads: their
    // pod templates are read as rules/workloads.yaml lays them out.
    ("ray.io", "RayService"),
    ("ray.io", "RayCluster"),
    ("serving.kserve.io", "InferenceService"),
    ("serving.kserve.io", "ServingRuntime"),
    ("serving.kserve.io", "ClusterServingRuntime"),
    ("serving.kserve.io", "LLMInferenceService"),
    // The Inference Extension's pools, checked against their endpoint
    // picker's Service (looked up by name).
    ("inference.networking.k8s.io", "InferencePool"),
    ("inference.networking.x-k8s.io", "InferencePool"),
    // What refers to a pool, checked against the pools of its namespace.
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("inference.networking.x-k8s.io", "InferenceObjective"),
    ("inference.networking.x-k8s.io", "InferenceModel"),
];

/// The workloads an HPA may scale that the server looks up in the cluster
/// to review the HPA in context: (apiVersion, kind, resource).
pub const FETCHED_WORKLOADS: &[(&str, &str, &str)] = &[
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    (
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
        "leaderworkersets",
    ),
];

/// The autoscalers the server lists as context of an HPA or a workload
/// under review: (apiVersion, kind, resource).
pub const FETCHED_AUTOSCALERS: &[(&str, &str, &str)] = &[
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
];

/// Other objects the server gets by name: the claims of a workload's pods,
/// and the Service of an InferencePool's endpoint picker.
const FETCHED_OBJECTS: &[(&str, &str, &str)] = &[
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "Service", "services"),
    (
        "inference.networking.k8s.io/v1",
        "InferencePool",
        "inferencepools",
    ),
    (
        "inference.networking.x-k8s.io/v1alpha2",
        "InferencePool",
        "inferencepools",
    ),
];

/// The InferencePool versions a reference to a pool may mean: those the
/// server gets by name.
pub fn pool_versions() -> impl Iterator<Item = &'static str> {
    FETCHED_OBJECTS
        .iter()
        .filter(|(_, kind, _)| *kind == "InferencePool")
        .map(|(api_version, _, _)| *api_version)
}

/// The PersistentVolumeClaims a workload's pod templates mount (every
/// template rules/workloads.yaml knows: Ray worker groups, a KServe
/// predictor's inline pod spec…).
pub fn claim_names(workload: &Value) -> Vec<String> {
    let Some(object) = to_object(workload, "review") else {
        return Vec::new();
    };
    let mut names: Vec<String> = crate::k8s::workload::pod_templates(&object)
        .iter()
        .filter_map(|template| template.spec()?.get("volumes")?.as_array())
        .flatten()
        .filter_map(|volume| {
            volume
                .at("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A namespaced workload by apiVersion, kind and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The workloads whose `scale` subresource the XLA warm-up gate reviews:
/// (API group, resource). A scale write never reaches the webhooks of the
/// workload itself (kubernetes #84530), so each is registered on its own.
pub const SCALED_RESOURCES: &[(&str, &str)] = &[
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets"),
];

impl WorkloadRef {
    pub fn deployment(namespace: &str, name: &str) -> Self {
        Self {
            api_version: "apps/v1".to_string(),
            kind: "Deployment".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The workload a `scale` subresource request is about, from the
    /// resource it names (`statefulsets` with subResource `scale`).
    pub fn scaled(group: &str, resource: &str, namespace: &str, name: &str) -> Option<Self> {
        if !SCALED_RESOURCES.contains(&(group, resource)) {
            return None;
        }
        let (api_version, kind, _) = FETCHED_WORKLOADS
            .iter()
            .find(|(_, _, plural)| *plural == resource)?;
        Some(Self {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The API resource (plural) of a kind the server gets by name.
    pub fn resource(&self) -> Option<&'static str> {
        FETCHED_WORKLOADS
            .iter()
            .chain(FETCHED_OBJECTS)
            .find(|(api_version, kind, _)| *api_version == self.api_version && *kind == self.kind)
            .map(|(_, _, resource)| *resource)
    }
}

/// A parsed AdmissionReview: the typed request and the raw objects.
pub struct Review {
    pub request: AdmissionRequest<DynamicObject>,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
}

impl Review {
    pub fn parse(body: &[u8]) -> Result<Self, BadRequest> {
        let mut raw: Value = serde_json::from_slice(body).map_err(|error| {
            // serde_json stops at 128 levels, the same bound as YAML input.
            if error.to_string().starts_with("recursion limit exceeded") {
                BadRequest::NotJson(format!(
                    "{error}: the body nests deeper than {} levels, which infergate does not read",
                    crate::input::nesting::MAX_DEPTH
                ))
            } else {
                BadRequest::NotJson(error.to_string())
            }
        })?;
        let api_version = raw
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = raw.get("kind").and_then(Value::as_str).unwrap_or_default();
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            return Err(BadRequest::WrongType(format!("{api_version:?} {kind:?}")));
        }
        let mut request_value = raw
            .get_mut("request")
            .filter(|request| !request.is_null())
            .map(Value::take)
            .ok_or(BadRequest::MissingRequest)?;
        // The objects are moved out, not copied: they are most of the body
        // (up to 3 MiB each), and the typed request never reads them.
        let mut take = |key: &str| {
            let fields = request_value.as_object_mut()?;
            if !fields.get(key).is_some_and(Value::is_object) {
                return None;
            }
            fields.shift_remove(key)
        };
        // The reviewed object's own status is never what its admission
        // decides: on CREATE the apiserver clears it, on an UPDATE of the
        // resource it keeps the stored one. Rules that read status
        // (hpa-status-unhealthy) are for objects read back from a cluster;
        // here a stale status must not deny the write that fixes it.
        let mut object = take("object");
        if let Some(fields) = object.as_mut().and_then(Value::as_object_mut) {
            fields.shift_remove("status");
        }
        let old_object = take("oldObject");
        let request: AdmissionRequest<DynamicObject> = serde_json::from_value(request_value)
            .map_err(|error| BadRequest::Malformed(error.to_string()))?;
        Ok(Self {
            object,
            old_object,
            request,
        })
    }

    fn kind(&self) -> (&str, &str) {
        (
            self.request.kind.group.as_str(),
            self.request.kind.kind.as_str(),
        )
    }

    pub fn kind_label(&self) -> String {
        self.request.kind.kind.clone()
    }

    pub fn operation_label(&self) -> &'static str {
        match self.request.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// The workload an HPA under review scales, when it is of a kind the
    /// webhook looks up (`FETCHED_WORKLOADS`).
    pub fn hpa_target(&self) -> Option<WorkloadRef> {
        // A ScaledObject's reference defaults to an apps/v1 Deployment.
        let keda = self.kind() == ("keda.sh", "ScaledObject");
        if self.kind() != ("autoscaling", "HorizontalPodAutoscaler") && !keda {
            return None;
        }
        let reference = self.object.as_ref()?.at("/spec/scaleTargetRef")?;
        let text = |key: &str| reference.get(key).and_then(Value::as_str);
        let (api_version, kind) = if keda {
            (
                text("apiVersion").unwrap_or("apps/v1"),
                text("kind").unwrap_or("Deployment"),
            )
        } else {
            (text("apiVersion")?, text("kind")?)
        };
        FETCHED_WORKLOADS
            .iter()
            .any(|(known_api, known_kind, _)| *known_api == api_version && *known_kind == kind)
            .then(|| WorkloadRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: self.request.namespace.clone().unwrap_or_default(),
                name: text("name").unwrap_or_default().to_string(),
            })
            .filter(|target| !target.namespace.is_empty() && !target.name.is_empty())
    }

    /// The workload under review (a Deployment, StatefulSet or
    /// LeaderWorkerSet), by reference.
    pub fn reviewed_workload(&self) -> Option<WorkloadRef> {
        let object = self.object.as_ref()?;
        let (group, kind) = self.kind();
        let (api_version, _, _) = FETCHED_WORKLOADS.iter().find(|(api_version, known, _)| {
            *known == kind && api_version.rsplit_once('/').map_or("", |(group, _)| group) == group
        })?;
        Some(WorkloadRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: self.request.namespace.clone()?,
            name: object
                .at("/metadata/name")
                .and_then(Value::as_str)
                .map_or_else(|| self.request.name.clone(), str::to_string),
        })
    }

    /// For a PodMonitoring, ClusterPodMonitoring or PodMonitor: the
    /// namespace its pods are in (`None` for a ClusterPodMonitoring, which
    /// selects in every namespace) and its selector.
    pub fn monitor_selector(&self) -> Option<(Option<String>, Value)> {
        let (group, kind) = self.kind();
        let cluster_wide = match (group, kind) {
            ("monitoring.googleapis.com", "PodMonitoring")
            | ("monitoring.coreos.com", "PodMonitor") => false,
            ("monitoring.googleapis.com", "ClusterPodMonitoring") => true,
            _ => return None,
        };
        let selector = self.object.as_ref()?.at("/spec/selector")?.clone();
        let namespace = if cluster_wide {
            None
        } else {
            Some(self.request.namespace.clone()?)
        };
        Some((namespace, selector))
    }

    /// For an InferencePool: the Service its endpoint picker reference
    /// names, in the pool's namespace.
    pub fn picker_service(&self) -> Option<WorkloadRef> {
        let (group, kind) = self.kind();
        if kind != "InferencePool" || !crate::k8s::inference_pool::GROUPS.contains(&group) {
            return None;
        }
        let object = self.object.as_ref()?;
        let name = crate::k8s::inference_pool::PickerRef::of(object)?.service()?;
        Some(WorkloadRef {
            api_version: "v1".to_string(),
            kind: "Service".to_string(),
            namespace: self.request.namespace.clone()?,
            name: name.to_string(),
        })
    }

    /// For an HTTPRoute, InferenceObjective or InferenceModel: the names
    /// of the InferencePools of its namespace it refers to (an HTTPRoute's
    /// backendRefs of kind InferencePool, or without kind: a Service that
    /// may be meant as a pool).
    pub fn pool_names(&self) -> Vec<String> {
        let (group, kind) = self.kind();
        let Some(object) = self.object.as_ref() else {
            return Vec::new();
        };
        let namespace = self.request.namespace.as_deref();
        let mut names: Vec<String> = match (group, kind) {
            ("gateway.networking.k8s.io", "HTTPRoute") => {
                crate::k8s::inference_pool::route_backends(object, namespace)
                    .into_iter()
                    .filter(|(_, backend)| {
                        matches!(
                            backend.get("kind").and_then(Value::as_str),
                            None | Some("InferencePool")
                        )
                    })
                    .filter_map(|(_, backend)| Some(backend.get("name")?.as_str()?.to_string()))
                    .collect()
            }
            _ => crate::k8s::inference_pool::pool_ref(kind, group, object)
                .map(|reference| vec![reference.name.to_string()])
                .unwrap_or_default(),
        };
        names.sort();
        names.dedup();
        names
    }

    /// The workload whose replicas a `scale` request sets.
    pub fn scaled_workload(&self) -> Option<WorkloadRef> {
        WorkloadRef::scaled(
            &self.request.resource.group,
            &self.request.resource.resource,
            self.request.namespace.as_deref()?,
            &self.request.name,
        )
    }

    pub fn is_scale(&self) -> bool {
        self.request.sub_resource.as_deref() == Some("scale")
            || self.kind() == ("autoscaling", "Scale")
    }
}

/// The answer to one review.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub allowed: bool,
    pub message: Option<String>,
    pub warnings: Vec<String>,
    pub patch: Vec<PatchOperation>,
    /// Findings by (rule, severity, outcome), for the metrics.
    pub findings: Vec<(&'static str, Severity, Outcome)>,
}

impl Decision {
    fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }
}

/// Namespaces the webhook never reviews, besides the policy's excludes.
#[derive(Debug, Clone)]
pub struct Scope {
    pub excluded_namespaces: Vec<String>,
}

/// Kubernetes advises warnings of at most 120 characters.
pub const WARNING_LIMIT: usize = 120;

/// A warning within [`WARNING_LIMIT`]: names in backticks (an object, a
/// pool, a metric, which may be long) are shortened first, so that the
/// advice at the end survives; only then is the text cut.
fn short(text: &str) -> String {
    let mut text = text.to_string();
    while text.chars().count() > WARNING_LIMIT {
        let Some((start, end)) = longest_quoted(&text) else {
            break;
        };
        let inner: Vec<char> = text[start + 1..end].chars().collect();
        let excess = text.chars().count() - WARNING_LIMIT;
        let keep = inner.len().saturating_sub(excess + 1).max(8);
        if keep + 1 >= inner.len() {
            break;
        }
        let shortened: String = inner[..keep].iter().collect::<String>() + "…";
        text.replace_range(start + 1..end, &shortened);
    }
    if text.chars().count() <= WARNING_LIMIT {
        return text;
    }
    let mut cut: String = text.chars().take(WARNING_LIMIT - 1).collect();
    cut.push('…');
    cut
}

/// Byte offsets of the backticks around the longest `quoted` span.
fn longest_quoted(text: &str) -> Option<(usize, usize)> {
    let ticks: Vec<usize> = text.match_indices('`').map(|(at, _)| at).collect();
    ticks
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .max_by_key(|(start, end)| end - start)
}

pub(super) fn to_object(value: &Value, label: &str) -> Option<Object> {
    Object::from_value(
        value.clone(),
        SourceFile::new(label.to_string(), String::new()),
        0,
        String::new(),
        PositionMap::default(),
    )
}

/// What the cluster told about the objects a review refers to: objects
/// found (added to the input as context, not reviewed themselves) and
/// objects asked for but missing.
#[derive(Debug, Clone, Default)]
pub struct ClusterContext {
    pub objects: Vec<Value>,
    pub missing: Vec<(String, String, String)>,
    pub pools: Vec<crate::policy::AcceleratorPool>,
}

fn lint(
    engine: &Engine,
    value: &Value,
    namespace: Option<&str>,
    context: &ClusterContext,
) -> Vec<Finding> {
    let Some(object) = to_object(value, "admission") else {
        return Vec::new();
    };
    // The cluster's objects come first and the reviewed object last: a
    // rule that reports the later of two conflicting objects (a second
    // autoscaler) reports the one under review.
    let mut loaded = Loaded::default();
    loaded.objects.extend(
        context
            .objects
            .iter()
            .filter_map(|value| to_object(value, "cluster")),
    );
    let reviewed = loaded.objects.len();
    loaded.files = loaded
        .objects
        .iter()
        .map(|object| object.source.clone())
        .collect();
    loaded.files.push(object.source.clone());
    loaded.objects.push(object);
    let facts = ClusterFacts {
        namespace: namespace.map(str::to_string),
        missing: context.missing.clone(),
        pools: context.pools.clone(),
    };
    engine
        .run(&loaded, &facts)
        .findings
        .into_iter()
        .filter(|finding| !finding.exempted && finding.object_index == Some(reviewed))
        .collect()
}

/// The annotation through which an object suppresses findings on itself.
const IGNORE_ANNOTATION: &str = crate::engine::IGNORE_ANNOTATION;

/// What the review of a `deployments/scale` request needs from the
/// cluster: the Deployment, when it could be fetched.
#[derive(Debug, Clone)]
pub enum ScaleTarget {
    Found(Value),
    NotFound,
    /// No cluster client, or the lookup failed or timed out.
    Unknown(String),
}

/// Review one request.
pub fn decide(
    engine: &Engine,
    scope: &Scope,
    review: &Review,
    mode: Mode,
    scale_target: Option<&ScaleTarget>,
    context: &ClusterContext,
) -> Decision {
    // Checked before any exclusion: the label is what excludes.
    if review.kind() == ("", "Namespace") {
        return decide_opt_out(engine, review, mode);
    }
    let namespace = review.request.namespace.as_deref();
    let excluded = namespace.is_some_and(|namespace| {
        scope
            .excluded_namespaces
            .iter()
            .any(|excluded| excluded == namespace)
            || !engine.policy().namespace_in_scope(Some(namespace))
    });
    if excluded
        || !matches!(
            review.request.operation,
            Operation::Create | Operation::Update
        )
    {
        return Decision::allow();
    }
    if review.is_scale() {
        return decide_scale(review, mode, scale_target);
    }
    if !HANDLED_KINDS.contains(&review.kind()) {
        return Decision::allow();
    }
    let Some(object) = &review.object else {
        return Decision::allow();
    };
    // The HPA KEDA makes of a ScaledObject was reviewed as the ScaledObject.
    if review.kind() == ("autoscaling", "HorizontalPodAutoscaler")
        && crate::k8s::autoscaler::owned_by_scaled_object(object)
    {
        return Decision::allow();
    }
    match mode {
        Mode::Validate => validate(engine, review, object, namespace, context),
        Mode::Mutate => mutate(engine, review, object, namespace, context),
    }
}

/// The opt-out label set on a namespace that did not have it: only the
/// users and groups the policy names (`webhook.optOut`) may do that, or
/// any user allowed to edit a namespace could walk around every denial.
/// Keeping or removing the label is always allowed.
fn decide_opt_out(engine: &Engine, review: &Review, mode: Mode) -> Decision {
    if mode == Mode::Mutate
        || !matches!(
            review.request.operation,
            Operation::Create | Operation::Update
        )
    {
        return Decision::allow();
    }
    let (key, value) = crate::policy::OPT_OUT_LABEL;
    let opted_out = |object: Option<&Value>| {
        object
            .and_then(|object| object.at("/metadata/labels"))
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
            == Some(value)
    };
    if !opted_out(review.object.as_ref()) || opted_out(review.old_object.as_ref()) {
        return Decision::allow();
    }
    let user = &review.request.user_info;
    let username = user.username.as_deref().unwrap_or_default();
    let groups = user.groups.as_deref().unwrap_or_default();
    if engine.policy().webhook.opt_out.allows(username, groups) {
        return Decision::allow();
    }
    Decision {
        allowed: false,
        message: Some(format!(
            "infergate denied this namespace:\n- [opt-out] metadata.labels.{key}: only the users and groups the webhook's policy names (webhook.optOut) may opt a namespace out of its review, and `{username}` is not one of them (fix: ask a cluster admin to set the label, or to name you in webhook.optOut)"
        )),
        findings: vec![("opt-out", Severity::Error, Outcome::Denied)],
        ..Decision::default()
    }
}

/// The old object had a Ready replica: the XLA cache has been written.
fn was_ready(old: Option<&Value>) -> bool {
    old.and_then(|old| old.at("/status/readyReplicas"))
        .and_then(Value::as_i64)
        .is_some_and(|ready| ready > 0)
}

fn replicas(value: Option<&Value>) -> i64 {
    value
        .and_then(|value| value.at("/spec/replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn validate(
    engine: &Engine,
    review: &Review,
    object: &Value,
    namespace: Option<&str>,
    context: &ClusterContext,
) -> Decision {
    let findings = lint(engine, object, namespace, context);
    let mut decision = Decision::allow();
    let mut denials = Vec::new();
    for finding in &findings {
        // The object's own annotation needs no right at all to write, so at
        // admission it cannot let a denied object in unseen: the denial is
        // a warning naming the annotation and its reason, and is counted.
        // Only the policy's exceptions (the cluster admins') skip it.
        if let Some(reason) = &finding.suppressed {
            decision
                .findings
                .push((finding.rule, finding.severity, Outcome::Suppressed));
            if finding.severity == Severity::Error {
                let reason = if reason.is_empty() {
                    "no reason given"
                } else {
                    reason.as_str()
                };
                decision.warnings.push(short(&format!(
                    "{}: denial suppressed by the object's {IGNORE_ANNOTATION} ({reason})",
                    finding.rule
                )));
            }
            continue;
        }
        let mut severity = finding.severity;
        // The warm-up gate: once a replica has been Ready the XLA cache is
        // filled, and more replicas only read it.
        // Raising replicas of a cold workload by updating it (a GitOps
        // re-sync of the manifest that asked for 3) is not denied: /mutate
        // holds replicas at the stored value instead. Only the imperative
        // scale subresource is denied. Once a replica has been Ready the
        // cache is filled and more replicas only read it.
        if finding.rule == xla_cache_single_writer::ID
            && review.request.operation == Operation::Update
            && !matches!(review.kind().1, "HorizontalPodAutoscaler" | "ScaledObject")
        {
            severity = Severity::Warning;
        }
        decision.findings.push((
            finding.rule,
            severity,
            match severity {
                Severity::Error => Outcome::Denied,
                Severity::Warning => Outcome::Warned,
                Severity::Info => Outcome::Noted,
            },
        ));
        match severity {
            Severity::Error => denials.push(denial_line(finding)),
            Severity::Warning => decision.warnings.push(short(&finding.warning())),
            Severity::Info => {}
        }
    }
    if !denials.is_empty() {
        decision.allowed = false;
        decision.message = Some(format!(
            "infergate denied this object:\n{}",
            denials.join("\n")
        ));
    }
    decision
}

fn denial_line(finding: &Finding) -> String {
    let mut line = format!(
        "- [{}] {}: {}",
        finding.rule,
        field(&finding.pointer),
        finding.message
    );
    // The fix in a few words: the repair's own description, else the help.
    let fix = finding
        .fix
        .as_ref()
        .map(|fix| fix.description.clone())
        .or_else(|| finding.help.clone());
    if let Some(fix) = fix {
        line.push_str(&format!(" (fix: {fix})"));
    }
    line
}

/// At most this many rounds of safe fixes per request.
const MUTATION_ROUNDS: usize = 8;

fn mutate(
    engine: &Engine,
    review: &Review,
    object: &Value,
    namespace: Option<&str>,
    context: &ClusterContext,
) -> Decision {
    let mut decision = Decision::allow();
    let mut current = object.clone();
    let mut applied: Vec<PatchOperation> = Vec::new();
    // The warm-up gate on update: a cold workload keeps the replicas it has.
    if review.request.operation == Operation::Update {
        let (wanted, stored) = (replicas(Some(object)), replicas(review.old_object.as_ref()));
        let cold = !was_ready(review.old_object.as_ref());
        let shared = to_object(object, "admission")
            .is_some_and(|target| xla_cache_single_writer::shared_cache_path(&target).is_some());
        if shared && cold && wanted > stored && object.at("/spec/replicas").is_some() {
            if let Some(operation) = op::replace("/spec/replicas", json!(stored)) {
                if json_patch::patch(&mut current, std::slice::from_ref(&operation)).is_ok() {
                    applied.push(operation);
                    decision.warnings.push(short(&format!(
                        "xla-cache-single-writer: replicas held at {stored} until one is Ready; scale to {wanted} then"
                    )));
                }
            }
        }
    }
    // The warm-up gate on creation: start at one replica.
    if review.request.operation == Operation::Create && replicas(Some(object)) > 1 {
        if let Some(target) = to_object(object, "admission") {
            if xla_cache_single_writer::shared_cache_path(&target).is_some() {
                if let Some(operation) = op::replace("/spec/replicas", json!(1)) {
                    if json_patch::patch(&mut current, std::slice::from_ref(&operation)).is_ok() {
                        applied.push(operation);
                        decision.warnings.push(short(
                            "xla-cache-single-writer: replicas set to 1; scale up once the first replica is Ready and has filled the XLA cache",
                        ));
                    }
                }
            }
        }
    }
    // Each round applies every safe fix whose paths do not touch those of a
    // fix applied before it in the round (all were computed on the same
    // object), then lints again: 800 containers are fixed in one round.
    let mut mutations: Vec<(String, usize)> = Vec::new();
    for _ in 0..MUTATION_ROUNDS {
        let findings = lint(engine, &current, namespace, context);
        let mut touched: Vec<String> = Vec::new();
        // What the object suppresses on itself is not changed for it.
        for finding in findings
            .into_iter()
            .filter(|finding| finding.suppressed.is_none())
        {
            let Some(fix) = &finding.fix else { continue };
            if fix.applicability != Applicability::Safe {
                continue;
            }
            let paths: Vec<String> = fix
                .patch
                .0
                .iter()
                .map(|operation| operation.path().to_string())
                .collect();
            let overlaps = paths.iter().any(|path| {
                touched.iter().any(|other| {
                    path.starts_with(other.as_str()) || other.starts_with(path.as_str())
                })
            });
            if overlaps {
                continue;
            }
            let mut candidate = current.clone();
            if json_patch::patch(&mut candidate, &fix.patch.0).is_ok() && candidate != current {
                current = candidate;
                applied.extend(fix.patch.0.iter().cloned());
                touched.extend(paths);
                decision
                    .findings
                    .push((finding.rule, finding.severity, Outcome::Mutated));
                let line = format!("mutated: {} ({})", fix.description, finding.rule);
                match mutations.iter_mut().find(|(known, _)| *known == line) {
                    Some((_, count)) => *count += 1,
                    None => mutations.push((line, 1)),
                }
            }
        }
        if touched.is_empty() {
            break;
        }
    }
    // One warning per kind of mutation, with how many times it was made.
    for (line, count) in mutations {
        decision.warnings.push(if count > 1 {
            short(&format!("{line} x{count}"))
        } else {
            short(&line)
        });
    }
    decision.patch = applied;
    decision
}

fn decide_scale(review: &Review, mode: Mode, target: Option<&ScaleTarget>) -> Decision {
    if mode == Mode::Mutate {
        return Decision::allow();
    }
    let wanted = review
        .object
        .as_ref()
        .and_then(|scale| scale.at("/spec/replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if wanted <= 1 {
        return Decision::allow();
    }
    let mut decision = Decision::allow();
    match target {
        Some(ScaleTarget::Found(deployment)) => {
            let Some(object) = to_object(deployment, "cluster") else {
                return decision;
            };
            if xla_cache_single_writer::shared_cache_path(&object).is_some()
                && !was_ready(Some(deployment))
            {
                decision.allowed = false;
                decision.findings.push((
                    xla_cache_single_writer::ID,
                    Severity::Error,
                    Outcome::Denied,
                ));
                decision.message = Some(format!(
                    "infergate denied this scale:\n- [{}] spec.replicas: scaling to {wanted} before any replica has been Ready lets replicas write the shared XLA cache concurrently (fix: keep 1 replica until it is Ready, then scale)",
                    xla_cache_single_writer::ID
                ));
            }
        }
        Some(ScaleTarget::NotFound) => {}
        Some(ScaleTarget::Unknown(reason)) => {
            decision.warnings.push(short(&format!(
                "infergate could not check the XLA warm-up gate: {reason}"
            )));
        }
        None => decision.warnings.push(short(
            "infergate could not check the XLA warm-up gate: no cluster client configured",
        )),
    }
    decision
}

/// The AdmissionReview to send back. The JSONPatch is base64 as the
/// apiserver expects (built here rather than with kube's response type,
/// which serialises the patch as an array of numbers: kube-rs #1781).
pub fn response(uid: &str, decision: &Decision) -> Value {
    let mut response = json!({
        "uid": uid,
        "allowed": decision.allowed,
    });
    if let Some(message) = &decision.message {
        response["status"] = json!({
            "code": 403,
            "reason": "Forbidden",
            "message": message,
        });
    }
    if !decision.warnings.is_empty() {
        response["warnings"] = json!(decision.warnings);
    }
    if !decision.patch.is_empty() {
        let bytes = serde_json::to_vec(&decision.patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_like_kubectl_paths() {
        assert_eq!(
            field("/spec/metrics/0/external/metric/name"),
            "spec.metrics[0].external.metric.name"
        );
        assert_eq!(
            field("/metadata/annotations/a~1b"),
            "metadata.annotations.a/b"
        );
        assert_eq!(field(""), "object");
    }

    #[test]
    fn long_names_are_shortened_before_the_advice_is_cut() {
        let name = "a".repeat(200);
        let warning = short(&format!(
            "hpa-scale-target-resolves: scaleTargetRef Deployment `{name}` does not exist: create it first or fix the name"
        ));
        assert!(warning.chars().count() <= WARNING_LIMIT, "{warning}");
        assert!(
            warning.ends_with("create it first or fix the name"),
            "{warning}"
        );
        let metric = format!("prometheus.googleapis.com|{}|gauge", "m".repeat(150));
        let warning = short(&format!(
            "metric-name-lowercase: `{metric}` is not lowercase: relabel it in the exporter"
        ));
        assert!(warning.chars().count() <= WARNING_LIMIT, "{warning}");
        assert!(warning.ends_with("relabel it in the exporter"), "{warning}");
    }

    #[test]
    fn warnings_are_cut_at_120_characters() {
        let long = "x".repeat(300);
        assert_eq!(short(&long).chars().count(), WARNING_LIMIT);
        assert_eq!(short("fine"), "fine");
    }

    #[test]
    fn claims_of_every_template_kind_are_found() {
        let ray = json!({"apiVersion": "ray.io/v1", "kind": "RayService",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"rayClusterConfig": {
                "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "x"}]}}},
                "workerGroupSpecs": [{"replicas": 1, "template": {"spec": {
                    "containers": [{"name": "w", "image": "x"}],
                    "volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": "ray-models"}}]}}}]}}});
        assert_eq!(claim_names(&ray), ["ray-models"]);
        let kserve = json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "k", "namespace": "n"},
            "spec": {"predictor": {"containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": "kserve-models"}}]}}});
        assert_eq!(claim_names(&kserve), ["kserve-models"]);
    }
}
