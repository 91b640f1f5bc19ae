//! `infergate audit`: the engine over what a cluster already runs.
//!
//! [`list`] reads the kinds the rules know from the apiserver (paged, only
//! the kinds the cluster serves); [`check`] runs the engine over all of it
//! at once, with the Nodes' accelerator pools as cluster facts, so that
//! cross-resource rules see the real peers. [`report`] turns the findings
//! into PolicyReports. The CLI is a thin adapter over these.

pub mod report;

use crate::input::pointer::Lookup;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{json, Value};

use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::input::loader::Loaded;
use crate::input::object::{Object, PositionMap};
use crate::input::source::SourceFile;
use crate::k8s::kube_api::{describe, is_not_found};

/// A kind the audit lists.
#[derive(Debug, Clone, Copy)]
pub struct AuditedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Only the objects with this label (prometheus-adapter's ConfigMaps,
    /// selected as the webhook's objectSelector selects them).
    pub label_selector: Option<&'static str>,
}

const fn kind(
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> AuditedKind {
    AuditedKind {
        api_version,
        kind,
        plural,
        namespaced,
        label_selector: None,
    }
}

/// The label of prometheus-adapter's configuration ConfigMap (its Helm
/// chart's `app.kubernetes.io/name`), as webhook-deploy/webhooks.yaml
/// selects it.
pub const ADAPTER_CONFIG_SELECTOR: &str = "app.kubernetes.io/name=prometheus-adapter";

/// What the audit reads: the kinds the rules check, and Nodes for pools.
pub const AUDITED_KINDS: &[AuditedKind] = &[
    kind("apps/v1", "Deployment", "deployments", true),
    kind("ray.io/v1", "RayService", "rayservices", true),
    kind("ray.io/v1", "RayCluster", "rayclusters", true),
    kind(
        "serving.kserve.io/v1beta1",
        "InferenceService",
        "inferenceservices",
        true,
    ),
    kind(
        "serving.kserve.io/v1alpha1",
        "ServingRuntime",
        "servingruntimes",
        true,
    ),
    kind(
        "serving.kserve.io/v1alpha1",
        "ClusterServingRuntime",
        "clusterservingruntimes",
        false,
    ),
    kind(
        "serving.kserve.io/v1alpha1",
        "LLMInferenceService",
        "llminferenceservices",
        true,
    ),
    kind(
        "inference.networking.k8s.io/v1",
        "InferencePool",
        "inferencepools",
        true,
    ),
    kind(
        "inference.networking.x-k8s.io/v1alpha2",
        "InferencePool",
        "inferencepools",
        true,
    ),
    kind(
        "inference.networking.x-k8s.io/v1alpha2",
        "InferenceObjective",
        "inferenceobjectives",
        true,
    ),
    kind(
        "inference.networking.x-k8s.io/v1alpha2",
        "InferenceModel",
        "inferencemodels",
        true,
    ),
    kind(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "httproutes",
        true,
    ),
    kind("apps/v1", "StatefulSet", "statefulsets", true),
    kind(
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
        "leaderworkersets",
        true,
    ),
    kind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", true),
    kind(
        "monitoring.googleapis.com/v1",
        "PodMonitoring",
        "podmonitorings",
        true,
    ),
    kind(
        "monitoring.googleapis.com/v1",
        "ClusterPodMonitoring",
        "clusterpodmonitorings",
        false,
    ),
    kind(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    kind(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        "podmonitors",
        true,
    ),
    kind(
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    // Services: an InferencePool's endpoint picker and the Services whose
    // variables collide with a server's own settings.
    kind("v1", "Service", "services", true),
    AuditedKind {
        label_selector: Some(ADAPTER_CONFIG_SELECTOR),
        ..kind("v1", "ConfigMap", "configmaps", true)
    },
    kind("v1", "Node", "nodes", false),
];

/// The label that opts a namespace out of the webhook, and of the default
/// audit ([`crate::policy::OPT_OUT_LABEL`] as a selector).
pub const OPT_OUT_SELECTOR: &str = "infergate.dev/webhook=exclude";

/// Objects per page of a list, the apiserver's chunking (`limit`).
pub const PAGE_SIZE: u32 = 500;

/// At most this many pages of one kind (5 million objects): a server
/// that keeps handing out continue tokens does not keep the audit forever.
pub const MAX_PAGES: usize = 10_000;

/// How long one request (a page, a discovery document) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which namespaces an audit reads.
#[derive(Debug, Clone)]
pub enum Namespaces {
    /// One namespace (`-n`); cluster-scoped kinds are still read.
    One(String),
    /// Every namespace (`-A`), none left out but by the policy.
    All,
    /// Every namespace but these and those labelled
    /// [`OPT_OUT_SELECTOR`]: the webhook's exclusions.
    AllBut(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
}

/// What the apiserver gave.
#[derive(Debug, Default)]
pub struct Listing {
    /// The objects the rules check, with apiVersion and kind, without
    /// `managedFields` and kubectl's last-applied copy.
    pub objects: Vec<Value>,
    /// The cluster's Nodes, for accelerator pools only.
    pub nodes: Vec<Value>,
    /// Kinds the cluster does not serve (a CRD not installed).
    pub absent: Vec<AuditedKind>,
    /// Kinds that could not be listed, and why: the audit is incomplete.
    pub failed: Vec<(AuditedKind, String)>,
    /// Namespaces left out (the webhook's exclusions, the opt-out label).
    pub left_out: BTreeSet<String>,
    /// Namespaces labelled out of the webhook (listed whether or not they
    /// hold audited objects, and shown by every audit: a namespace that
    /// opts out is what a reviewer wants to see).
    pub opted_out: BTreeSet<String>,
    /// Objects listed per kind.
    pub counts: Vec<(AuditedKind, usize)>,
    /// List requests made (pages).
    pub pages: usize,
    pub elapsed: Duration,
}

/// One kind listed, for progress on a terminal.
pub struct Progress<'a> {
    pub kind: &'a AuditedKind,
    pub listed: usize,
}

/// Which of the kinds each group version serves: discovery, one request
/// per group version. A group version the apiserver does not know (404)
/// serves none; any other failure is returned.
async fn discover(
    client: &kube::Client,
) -> Result<BTreeMap<&'static str, Vec<String>>, AuditError> {
    let mut served = BTreeMap::new();
    let versions: BTreeSet<&'static str> =
        AUDITED_KINDS.iter().map(|kind| kind.api_version).collect();
    for api_version in versions {
        let request = async {
            if api_version.contains('/') {
                client.list_api_group_resources(api_version).await
            } else {
                client.list_core_api_resources(api_version).await
            }
        };
        let resources = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(list)) => list
                .resources
                .into_iter()
                .map(|resource| resource.name)
                .collect(),
            Ok(Err(error)) if is_not_found(&error) => Vec::new(),
            Ok(Err(error)) => {
                return Err(AuditError::Unreachable(format!(
                    "discovery of {api_version} failed: {}",
                    describe(&error)
                )))
            }
            Err(_) => {
                return Err(AuditError::Unreachable(format!(
                    "discovery of {api_version} took longer than {} s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            }
        };
        served.insert(api_version, resources);
    }
    Ok(served)
}

fn api_resource(kind: &AuditedKind) -> ApiResource {
    let (group, version) = kind
        .api_version
        .split_once('/')
        .unwrap_or(("", kind.api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, kind.plural)
}

/// An item of a list as the rules read objects: its apiVersion and kind
/// (items of a list carry neither), without the bookkeeping the apiserver
/// and kubectl add.
fn as_object(item: DynamicObject, kind: &AuditedKind) -> Option<Value> {
    let mut value = serde_json::to_value(item).ok()?;
    value["apiVersion"] = json!(kind.api_version);
    value["kind"] = json!(kind.kind);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    Some(value)
}

/// Every object of one kind, page by page.
async fn list_kind(
    client: &kube::Client,
    kind: &AuditedKind,
    namespace: Option<&str>,
    pages: &mut usize,
) -> Result<Vec<Value>, String> {
    let resource = api_resource(kind);
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    let mut seen_tokens = std::collections::HashSet::new();
    let mut pages_of_kind = 0;
    loop {
        pages_of_kind += 1;
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(selector) = kind.label_selector {
            params = params.labels(selector);
        }
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        *pages += 1;
        let page = match tokio::time::timeout(
            REQUEST_TIMEOUT,
            list_page(client, &resource, kind, namespace, &params),
        )
        .await
        {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(format!(
                    "a page took longer than {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            }
        };
        found.extend(
            page.items
                .into_iter()
                .filter_map(|item| as_object(item, kind)),
        );
        match page.metadata.continue_.filter(|next| !next.is_empty()) {
            // Any token seen before (A, B, A…), not only the last one: the
            // list would cycle for ever.
            Some(next) if !seen_tokens.insert(next.clone()) => {
                return Err(format!(
                    "the apiserver returned a continue token it had returned before ({next}); the list never ends"
                ))
            }
            Some(_) if found.len() >= MAX_PAGES * PAGE_SIZE as usize || pages_of_kind >= MAX_PAGES => {
                return Err(format!(
                    "more than {MAX_PAGES} pages of {PAGE_SIZE}; audit one namespace at a time (-n)"
                ))
            }
            Some(next) => token = Some(next),
            None => return Ok(found),
        }
    }
}

/// The most bytes one page of a list may take: 500 objects of the
/// apiserver's 3 MiB limit would be 1.5 GB, but audited objects are small
/// (manifests, not Secrets), and a body past this is a server that never
/// ends its answer. Past it: an error naming the kind, not an allocation.
pub const MAX_PAGE_BYTES: usize = 256 * 1024 * 1024;

/// One page of a list, its body read frame by frame up to
/// [`MAX_PAGE_BYTES`].
async fn list_page(
    client: &kube::Client,
    resource: &ApiResource,
    kind: &AuditedKind,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<kube::core::ObjectList<DynamicObject>, String> {
    use http_body_util::BodyExt as _;
    use kube::Resource as _;
    let scope = if kind.namespaced { namespace } else { None };
    let url = DynamicObject::url_path(resource, scope);
    let request = kube::core::Request::new(url)
        .list(params)
        .map_err(|error| error.to_string())?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|error| describe(&error))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("reading the list: {error}"))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_PAGE_BYTES {
                return Err(format!(
                    "a page of {} is larger than {} MiB, the most the audit reads; the apiserver's answer does not end",
                    kind.plural,
                    MAX_PAGE_BYTES / (1024 * 1024)
                ));
            }
            bytes.extend_from_slice(data);
        }
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|status| {
                status
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        return Err(format!("{status}: {message}"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|error| format!("the list is not what the apiserver sends: {error}"))
}

/// The namespaces labelled to opt out.
async fn opted_out(client: &kube::Client) -> Result<Vec<String>, String> {
    let api: kube::Api<DynamicObject> = kube::Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    let params = ListParams::default().labels(OPT_OUT_SELECTOR);
    match tokio::time::timeout(REQUEST_TIMEOUT, api.list(&params)).await {
        Ok(Ok(list)) => Ok(list
            .items
            .into_iter()
            .filter_map(|item| item.metadata.name)
            .collect()),
        Ok(Err(error)) => Err(describe(&error)),
        Err(_) => Err("timed out".to_string()),
    }
}

fn namespace_of(value: &Value) -> Option<&str> {
    value.at("/metadata/namespace").and_then(Value::as_str)
}

/// Where the audit reads prometheus-adapter's ConfigMaps. RBAC cannot
/// narrow a list to a label, so reading them everywhere takes a role that
/// may list every ConfigMap of the cluster; naming the adapter's
/// namespaces lets that grant be a RoleBinding there instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterConfigs {
    /// In every namespace the audit reads (the default of `audit`).
    Everywhere,
    /// Only in these namespaces; none at all when empty.
    In(Vec<String>),
}

/// Read the cluster: discovery, then every served kind in `namespaces`.
/// `progress` is called after each kind.
pub async fn list(
    client: &kube::Client,
    namespaces: &Namespaces,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Listing, AuditError> {
    list_with(client, namespaces, &AdapterConfigs::Everywhere, progress).await
}

/// [`list`], reading prometheus-adapter's ConfigMaps where
/// `adapter_configs` says.
pub async fn list_with(
    client: &kube::Client,
    namespaces: &Namespaces,
    adapter_configs: &AdapterConfigs,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Listing, AuditError> {
    let started = Instant::now();
    let served = discover(client).await?;
    let mut listing = Listing::default();
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    if let Namespaces::AllBut(names) = namespaces {
        excluded.extend(names.iter().cloned());
        match opted_out(client).await {
            Ok(names) => {
                listing.opted_out.extend(names.iter().cloned());
                excluded.extend(names);
            }
            Err(error) => listing.failed.push((
                kind("v1", "Namespace", "namespaces", false),
                format!("cannot read which namespaces opt out ({OPT_OUT_SELECTOR}): {error}"),
            )),
        }
    }
    if !matches!(namespaces, Namespaces::AllBut(_)) {
        if let Ok(names) = opted_out(client).await {
            listing.opted_out.extend(names);
        }
    }
    let only = match namespaces {
        Namespaces::One(namespace) => Some(namespace.as_str()),
        _ => None,
    };
    for kind in AUDITED_KINDS {
        let is_served = served
            .get(kind.api_version)
            .is_some_and(|resources| resources.iter().any(|name| name == kind.plural));
        if !is_served {
            listing.absent.push(*kind);
            continue;
        }
        let listed = match (kind.kind, adapter_configs) {
            ("ConfigMap", AdapterConfigs::In(names)) => {
                let mut objects = Vec::new();
                let mut outcome = Ok(());
                for name in names {
                    if only.is_some_and(|only| only != name) {
                        continue;
                    }
                    match list_kind(client, kind, Some(name), &mut listing.pages).await {
                        Ok(found) => objects.extend(found),
                        Err(error) => {
                            outcome = Err(format!("in namespace {name}: {error}"));
                            break;
                        }
                    }
                }
                outcome.map(|()| objects)
            }
            _ => list_kind(client, kind, only, &mut listing.pages).await,
        };
        match listed {
            Ok(objects) => {
                let before = objects.len();
                let kept: Vec<Value> = objects
                    .into_iter()
                    .filter(|object| match namespace_of(object) {
                        Some(namespace) if excluded.contains(namespace) => {
                            listing.left_out.insert(namespace.to_string());
                            false
                        }
                        _ => true,
                    })
                    .collect();
                progress(Progress {
                    kind,
                    listed: before,
                });
                listing.counts.push((*kind, kept.len()));
                if kind.kind == "Node" {
                    listing.nodes = kept;
                } else {
                    listing.objects.extend(kept);
                }
            }
            Err(error) => listing.failed.push((*kind, error)),
        }
    }
    listing.elapsed = started.elapsed();
    Ok(listing)
}

/// The result of checking a listing.
pub struct Audited {
    pub loaded: Loaded,
    pub outcome: Outcome,
    pub facts: ClusterFacts,
    pub elapsed: Duration,
}

/// `namespace/Kind/name`, or `Kind/name` for a cluster-scoped object: how
/// findings are placed.
pub fn identity(value: &Value) -> String {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = value
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match namespace_of(value) {
        Some(namespace) => format!("{namespace}/{kind}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The cluster facts of a listing: the pool of every set of node labels a
/// listed workload requires, from the listed Nodes, and the scale targets
/// autoscalers name that the cluster does not have.
pub fn facts(engine: &Engine, listing: &Listing) -> ClusterFacts {
    let resources = &engine.policy().inference.accelerator_resources;
    let mut label_sets: BTreeSet<BTreeMap<String, String>> = BTreeSet::new();
    for object in &listing.objects {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for template in crate::k8s::workload::template_pointers(kind) {
            if let Some(spec) = object.at(&format!("{template}/spec")) {
                let labels = crate::engine::pools::required_labels(spec);
                if !labels.is_empty() {
                    label_sets.insert(labels);
                }
            }
        }
    }
    let pools = label_sets
        .iter()
        .filter_map(|labels| crate::engine::pools::pool_of_nodes(labels, &listing.nodes, resources))
        .collect();
    ClusterFacts {
        namespace: None,
        missing: missing_targets(listing),
        pools,
    }
}

/// The workloads autoscalers scale that a complete listing of their kind
/// does not hold: (kind, namespace, name).
fn missing_targets(listing: &Listing) -> Vec<(String, String, String)> {
    let listed_kinds: BTreeSet<&str> = listing.counts.iter().map(|(kind, _)| kind.kind).collect();
    let present: BTreeSet<(&str, &str, &str)> = listing
        .objects
        .iter()
        .filter_map(|object| {
            Some((
                object.get("kind")?.as_str()?,
                namespace_of(object)?,
                object.at("/metadata/name")?.as_str()?,
            ))
        })
        .collect();
    let mut missing = Vec::new();
    for object in &listing.objects {
        let kind = object.get("kind").and_then(Value::as_str);
        let reference = match kind {
            Some("HorizontalPodAutoscaler") => object.at("/spec/scaleTargetRef"),
            Some("ScaledObject") => object.at("/spec/scaleTargetRef"),
            _ => None,
        };
        let (Some(reference), Some(namespace)) = (reference, namespace_of(object)) else {
            continue;
        };
        // KEDA's default target kind is a Deployment.
        let target_kind = reference
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Deployment");
        let Some(name) = reference.get("name").and_then(Value::as_str) else {
            continue;
        };
        if listed_kinds.contains(target_kind) && !present.contains(&(target_kind, namespace, name))
        {
            missing.push((
                target_kind.to_string(),
                namespace.to_string(),
                name.to_string(),
            ));
        }
    }
    missing
}

/// Run the engine over a listing: every object at once, placed by its
/// identity.
pub fn check(engine: &Engine, listing: Listing) -> Audited {
    let started = Instant::now();
    let facts = facts(engine, &listing);
    let mut loaded = Loaded::default();
    for value in listing.objects {
        let source: Arc<SourceFile> = SourceFile::live(identity(&value));
        if let Some(object) = Object::from_value(
            value,
            source.clone(),
            0,
            String::new(),
            PositionMap::default(),
        ) {
            loaded.files.push(source);
            loaded.objects.push(object);
        }
    }
    let outcome = engine.run(&loaded, &facts);
    Audited {
        loaded,
        outcome,
        facts,
        elapsed: started.elapsed(),
    }
}

/// The client of a kubeconfig file (and context), else of the pod's
/// service account, else of `$KUBECONFIG` / `~/.kube/config`.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, AuditError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|error| {
                AuditError::Unreachable(format!(
                    "cannot read kubeconfig {}: {error}",
                    path.display()
                ))
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|error| {
                    AuditError::Unreachable(format!("kubeconfig {}: {error}", path.display()))
                })?
        }
        None if context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().map_err(|error| {
                AuditError::Unreachable(format!("in-cluster configuration: {error}"))
            })?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|error| AuditError::Unreachable(format!("no kubeconfig: {error}")))?,
    };
    kube::Client::try_from(config).map_err(|error| AuditError::Unreachable(error.to_string()))
}
