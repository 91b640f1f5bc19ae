//! `infergate serve`: the admission endpoints over TLS, and health and
//! metrics over plain HTTP on a separate port.

use crate::input::pointer::Lookup;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::metrics::{Metrics, RefusedConnection, Unreviewed};
use super::review::{self, Decision, Mode, Review, ScaleTarget, Scope, WorkloadRef};
use super::tls::{self, CertStore};
use crate::engine::Engine;
use crate::policy::AcceleratorPool;

/// On drain, a connection younger than this is kept open until it has had
/// the chance to send its first request.
const FRESH_CONNECTION_GRACE: Duration = Duration::from_millis(1000);

/// How long a TLS handshake may take: an apiserver's takes milliseconds;
/// a client that opens connections and never completes one holds a slot
/// no longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client may take to send a request's headers, also after an
/// idle keep-alive period.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections open at once from one client address: one pod that opens
/// idle connections cannot take the slots the apiserver needs (whose
/// reviews, --max-concurrent-reviews at a time, need far fewer).
pub const MAX_CONNECTIONS_PER_CLIENT: usize = MAX_CONNECTIONS / 4;
/// The pause after a failed accept (no file descriptor left).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Request bodies above this are refused. The apiserver takes at most 3 MiB
/// per request (objects are about 1.5 MiB at most, etcd's limit), and an
/// AdmissionReview carries the object and its old version: 8 MiB leaves
/// room for both and the envelope.
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Bytes of request bodies that may be read or reviewed at once, across
/// connections (each reserves its Content-Length, or [`BODY_LIMIT`] when it
/// states none, before it is read, and keeps it until its review's work
/// ends). Without it, every connection could hold a body at the limit at
/// once, and eight reviews of the largest Deployments took 560 MiB; with
/// it, two of the apiserver's largest reviews (or hundreds of ordinary
/// ones, which --max-concurrent-reviews bounds first) run at once, and a
/// request past it is answered 429 at once.
pub const BODY_BUDGET: usize = 16 * 1024 * 1024;

/// The budget's unit: one permit per KiB.
const BUDGET_UNIT: usize = 1024;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    /// Whether reviews may look the cluster up. Off unless the apiserver
    /// authenticates itself (`client_ca`) or the admin accepts the risk:
    /// a lookup's outcome shows in the reply, so whoever can send a review
    /// could otherwise probe which names exist in any namespace.
    pub lookups: bool,
    pub excluded_namespaces: Vec<String>,
    /// Per-request budget, kept under the webhook's timeoutSeconds.
    pub request_timeout: Duration,
    /// Reviews that may run at once; more get HTTP 429.
    pub max_concurrent_reviews: usize,
    /// How often the certificate files are checked for rotation.
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish on SIGTERM.
    pub drain_timeout: Duration,
    /// After SIGTERM, how long the server keeps accepting and serving
    /// before it stops listening and closes idle connections: the
    /// apiserver keeps routing to the pod until its endpoint is removed.
    pub shutdown_delay: Duration,
    /// Certificates kept in a Secret and the caBundles by the server
    /// itself (`--managed-certificates`); `tls_cert`/`tls_key` are then
    /// where it writes the serving pair.
    pub managed: Option<super::managed_certs::Options>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("cannot wait for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Managed(#[from] super::managed_certs::ManagedError),
    #[error("--managed-certificates needs a cluster client: run in a pod or give --kubeconfig")]
    NoClusterForCertificates,
}

/// Looks workloads up in the cluster (the Deployment of a
/// `deployments/scale` review, the target of an HPA) and the Nodes of
/// their pools, with a short cache and a timeout well under the webhook's.
pub struct Cluster {
    client: kube::Client,
    cache: Mutex<std::collections::HashMap<WorkloadRef, (Instant, ScaleTarget)>>,
    pools: Mutex<std::collections::HashMap<String, (Instant, f64)>>,
    /// Watch-backed HPAs and ScaledObjects of every namespace.
    autoscalers: Vec<super::watched::Watched>,
    timeout: Duration,
}

/// At most this many workloads of each kind are listed for a monitor.
const LIST_LIMIT: u32 = 500;

const LOOKUP_CACHE: Duration = Duration::from_secs(5);

/// Whether a lookup may be answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Cached,
    Now,
}

/// A client of the cluster: from `kubeconfig`, else in-cluster when running
/// in a pod, else none.
async fn client(kubeconfig: Option<&PathBuf>) -> Result<Option<kube::Client>, ServeError> {
    let config = match kubeconfig {
        Some(path) => {
            let failed = |message: String| ServeError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|error| failed(error.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|error| failed(error.to_string()))?
        }
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            match kube::Config::incluster() {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("infergate: no cluster client ({error}); scale requests are allowed with a warning");
                    return Ok(None);
                }
            }
        }
        None => return Ok(None),
    };
    let client = kube::Client::try_from(config).map_err(|error| ServeError::Kubeconfig {
        path: "in-cluster configuration".to_string(),
        message: error.to_string(),
    })?;
    Ok(Some(client))
}

impl Cluster {
    pub async fn connect(kubeconfig: Option<&PathBuf>) -> Result<Option<Self>, ServeError> {
        let Some(client) = client(kubeconfig).await? else {
            return Ok(None);
        };
        let autoscalers = review::FETCHED_AUTOSCALERS
            .iter()
            .map(|&kind| super::watched::Watched::start(client.clone(), kind))
            .collect();
        Ok(Some(Self {
            client,
            cache: Mutex::new(Default::default()),
            pools: Mutex::new(Default::default()),
            autoscalers,
            timeout: Duration::from_millis(1000),
        }))
    }

    /// A workload of `FETCHED_WORKLOADS` as the cluster has it: from the
    /// cache when `freshness` allows (context that only adds warnings),
    /// always asked anew when a denial depends on it.
    async fn workload(&self, target: &WorkloadRef, freshness: Freshness) -> ScaleTarget {
        if freshness == Freshness::Cached {
            if let Ok(cache) = self.cache.lock() {
                if let Some((at, found)) = cache.get(target) {
                    if at.elapsed() < LOOKUP_CACHE {
                        return found.clone();
                    }
                }
            }
        }
        let Some(plural) = target.resource() else {
            return ScaleTarget::Unknown(format!("{} is not looked up", target.kind));
        };
        let (group, version) = target
            .api_version
            .split_once('/')
            .unwrap_or(("", target.api_version.as_str()));
        let kind = kube::api::GroupVersionKind::gvk(group, version, &target.kind);
        let resource = kube::api::ApiResource::from_gvk_with_plural(&kind, plural);
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(self.client.clone(), &target.namespace, &resource);
        let found = match tokio::time::timeout(self.timeout, api.get_opt(&target.name)).await {
            Ok(Ok(Some(workload))) => match serde_json::to_value(workload) {
                Ok(value) => ScaleTarget::Found(value),
                Err(error) => ScaleTarget::Unknown(error.to_string()),
            },
            Ok(Ok(None)) => ScaleTarget::NotFound,
            // A 404 without a Status body: the resource type itself is not
            // served (the LeaderWorkerSet CRD is absent), so neither is it.
            Ok(Err(error)) if crate::k8s::kube_api::is_not_found(&error) => ScaleTarget::NotFound,
            Ok(Err(error)) => ScaleTarget::Unknown(format!("lookup failed: {error}")),
            Err(_) => ScaleTarget::Unknown("lookup timed out".to_string()),
        };
        // Only what exists is remembered. A dry-run (Argo CD, `kubectl diff`)
        // of an HPA before its workload is created must not leave a "does
        // not exist" that the real create a second later would read.
        if matches!(found, ScaleTarget::Found(_)) {
            if let Ok(mut cache) = self.cache.lock() {
                cache.insert(target.clone(), (Instant::now(), found.clone()));
            }
        }
        found
    }
}

impl Cluster {
    /// The Deployments, StatefulSets and LeaderWorkerSets of a namespace
    /// (`None`: of every namespace), at most `LIST_LIMIT` of each kind. A
    /// kind that cannot be listed (the LWS CRD absent, a timeout) adds
    /// nothing.
    async fn workloads_in(&self, namespace: Option<&str>) -> Vec<Value> {
        self.list_in(review::FETCHED_WORKLOADS, namespace).await
    }

    /// The HPAs and KEDA ScaledObjects of a namespace: from the watches
    /// when they are current, else listed (a cluster without KEDA lists no
    /// ScaledObjects).
    async fn autoscalers_in(&self, namespace: &str) -> Vec<Value> {
        let mut found = Vec::new();
        for (watched, kind) in self.autoscalers.iter().zip(review::FETCHED_AUTOSCALERS) {
            match watched.namespace(namespace) {
                Some(objects) => found.extend(objects),
                None => found.extend(
                    self.list_in(std::slice::from_ref(kind), Some(namespace))
                        .await,
                ),
            }
        }
        found
    }

    /// Lists are never cached: what a list lacks is an absence, and a
    /// create in the seconds before (a sync that applies an HPA, then its
    /// Deployment) must be seen, as must a delete; a denial
    /// (`single-autoscaler-per-workload`, `shared-cache-access-mode`) may
    /// rest on the list. The price: a consistent list of a kind that
    /// rarely changes waits for the apiserver's watch cache to confirm it
    /// is current (a progress request every 100 ms), 25-50 ms on the e2e
    /// control plane. A list at resourceVersion 0 would not wait, but the
    /// apiserver ignores `limit` there, and the bound of `LIST_LIMIT`
    /// keeps a namespace of many HPAs from growing every review's memory.
    /// Watch-backed caches are the way to both (performance issue).
    async fn list_in(&self, kinds: &[(&str, &str, &str)], namespace: Option<&str>) -> Vec<Value> {
        let mut found = Vec::new();
        for (api_version, kind, plural) in kinds {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
            let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
            let api: kube::Api<kube::api::DynamicObject> = match namespace {
                Some(namespace) => {
                    kube::Api::namespaced_with(self.client.clone(), namespace, &resource)
                }
                None => kube::Api::all_with(self.client.clone(), &resource),
            };
            let params = kube::api::ListParams::default().limit(LIST_LIMIT);
            if let Ok(Ok(list)) = tokio::time::timeout(self.timeout, api.list(&params)).await {
                for item in list.items {
                    if let Ok(mut value) = serde_json::to_value(item) {
                        // Items of a list carry no apiVersion and kind.
                        value["apiVersion"] = json!(api_version);
                        value["kind"] = json!(kind);
                        found.push(value);
                    }
                }
            }
        }
        found
    }
}

impl Cluster {
    /// The Nodes a workload's pods select (the node labels its first pod
    /// template requires, [`crate::engine::pools::required_labels`]) as a pool:
    /// their allocatable accelerator chips. Cached like workloads.
    async fn pool_for(&self, workload: &Value, resources: &[String]) -> Option<AcceleratorPool> {
        let kind = workload
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let labels = crate::k8s::workload::template_pointers(kind)
            .iter()
            .filter_map(|template| workload.at(&format!("{template}/spec")))
            .map(crate::engine::pools::required_labels)
            .find(|labels| !labels.is_empty())?;
        let query = crate::engine::pools::selector_text(&labels);
        let cached = self.pools.lock().ok().and_then(|cache| {
            cache
                .get(&query)
                .filter(|(at, _)| at.elapsed() < LOOKUP_CACHE)
                .map(|(_, chips)| *chips)
        });
        let chips = match cached {
            Some(chips) => chips,
            None => {
                let api: kube::Api<Node> = kube::Api::all(self.client.clone());
                let listed = tokio::time::timeout(
                    self.timeout,
                    api.list(&kube::api::ListParams::default().labels(&query)),
                )
                .await;
                let Ok(Ok(nodes)) = listed else { return None };
                let chips: f64 = nodes
                    .items
                    .iter()
                    .filter_map(|node| serde_json::to_value(node).ok())
                    .map(|node| crate::engine::pools::node_chips(&node, resources))
                    .sum();
                if let Ok(mut cache) = self.pools.lock() {
                    cache.insert(query.clone(), (Instant::now(), chips));
                }
                chips
            }
        };
        (chips > 0.0).then(|| AcceleratorPool {
            name: format!("nodes with {query}"),
            node_labels: labels,
            chips,
            max_chips: None,
        })
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    scope: Arc<Scope>,
    metrics: Arc<Metrics>,
    cluster: Option<Arc<Cluster>>,
    request_timeout: Duration,
    /// One permit per review that may run at once.
    reviews: Arc<tokio::sync::Semaphore>,
    /// One permit per KiB of [`BODY_BUDGET`].
    bodies: Arc<tokio::sync::Semaphore>,
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request(state: &AppState, message: impl std::fmt::Display) -> Response {
    state.metrics.record_bad_request();
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": message.to_string()}),
    )
}

/// A request answered before its review finished: HTTP `status` with a
/// JSON error, so that the apiserver applies the webhook's failurePolicy.
fn unreviewed(state: &AppState, reason: Unreviewed, status: StatusCode, message: &str) -> Response {
    state.metrics.record_unreviewed(reason);
    let mut response = json_response(status, &json!({ "error": message }));
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

const TIMED_OUT: &str = "infergate did not finish in time; the object was not checked";

/// The answer when a review was read but not finished: allowed, with a
/// warning that says so (the apiserver shows it to the user).
fn allowed_unchecked(warning: &str) -> Decision {
    Decision {
        allowed: true,
        warnings: vec![warning.to_string()],
        ..Decision::default()
    }
}

async fn handle(state: AppState, mode: Mode, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT) {
        return bad_request(
            &state,
            format!("the body is larger than {BODY_LIMIT} bytes, more than the apiserver sends"),
        );
    }
    let reserved = declared.unwrap_or(BODY_LIMIT).div_ceil(BUDGET_UNIT).max(1);
    let Some(body_permit) = u32::try_from(reserved)
        .ok()
        .and_then(|units| Arc::clone(&state.bodies).try_acquire_many_owned(units).ok())
    else {
        return unreviewed(
            &state,
            Unreviewed::Busy,
            StatusCode::TOO_MANY_REQUESTS,
            "infergate holds as many request bodies as it is allowed to; retry",
        );
    };
    let bytes: Bytes =
        match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, BODY_LIMIT)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(error)) => {
                return bad_request(
                    &state,
                    format!(
                        "the body cannot be read or is larger than {BODY_LIMIT} bytes: {error}"
                    ),
                )
            }
            Err(_) => {
                return unreviewed(
                    &state,
                    Unreviewed::Timeout,
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within the review budget",
                )
            }
        };
    // Engine work is CPU-bound: at most `max_concurrent_reviews` at once.
    // A large review runs on the blocking pool, never on the async workers
    // that also accept connections; a small one (microseconds of work) runs
    // here under a cooperative deadline. The permit travels with the work,
    // so a review abandoned at its deadline still counts until it ends.
    // A review that finds every place taken waits for one until its
    // deadline (a burst of the apiserver's concurrent calls is queued, not
    // refused: the apiserver does not retry a refused webhook call); only
    // then is it refused, and the webhook's failurePolicy decides. While
    // it waits it holds its body's share of the budget, so waiting reviews
    // are bounded in memory like running ones.
    let permit = match tokio::time::timeout_at(
        deadline,
        Arc::clone(&state.reviews).acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            return unreviewed(
                &state,
                Unreviewed::Busy,
                StatusCode::TOO_MANY_REQUESTS,
                "infergate was reviewing as many requests as it is allowed to until this review's deadline; retry",
            )
        }
    };
    // The body's share of the budget is held until the review's work ends:
    // a review's memory grows with its body (about 10x for a large
    // Deployment, measured by benches/webhook_memory).
    let permit = Arc::new((permit, body_permit));
    // A small body is parsed where it was read: the parse is linear and
    // takes microseconds, less than handing it to the blocking pool and
    // back. A larger one goes to the blocking pool under the deadline.
    let small = bytes.len() <= INLINE_PARSE_LIMIT;
    let review = if small {
        let parsed = Review::parse(&bytes);
        drop(bytes);
        match parsed {
            Ok(review) => Arc::new(review),
            Err(error) => return bad_request(&state, error),
        }
    } else {
        match parse_on_the_blocking_pool(&state, bytes, Arc::clone(&permit), deadline).await {
            Ok(review) => review,
            Err(response) => return response,
        }
    };
    let reviewing = {
        let state = state.clone();
        let review = Arc::clone(&review);
        async move {
            let (scale_target, context) = cluster_context(&state, &review).await;
            let engine = Arc::clone(&state.engine);
            let scope = Arc::clone(&state.scope);
            let decide = move || {
                review::decide(
                    &engine,
                    &scope,
                    &review,
                    mode,
                    scale_target.as_ref(),
                    &context,
                )
            };
            // A small review is decided here, on the async worker: handing
            // it to the blocking pool and back cost more than deciding it
            // (benches/webhook_throughput: about 125 -> 95 us of CPU a
            // review at saturation). The engine stops at the deadline
            // between rules, so it is never answered late; a large one goes
            // to the pool, where the timeout below abandons it.
            if small {
                let _permit = permit;
                return Ok(crate::engine::budget::within(deadline.into_std(), decide));
            }
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                Some(decide())
            })
            .await
        }
    };
    let decision = match tokio::time::timeout_at(deadline, reviewing).await {
        Ok(Ok(Some(decision))) => decision,
        Ok(Err(_)) => {
            state.metrics.record_unreviewed(Unreviewed::Failed);
            allowed_unchecked(
                "infergate failed on this object (a bug, please report it); it was not checked",
            )
        }
        // Past the deadline: the engine stopped (a small review) or the
        // work was abandoned on the pool (a large one).
        Ok(Ok(None)) | Err(_) => {
            state.metrics.record_unreviewed(Unreviewed::Timeout);
            allowed_unchecked(TIMED_OUT)
        }
    };
    for (rule, severity, outcome) in &decision.findings {
        state.metrics.record_finding(rule, *severity, *outcome);
    }
    state.metrics.record(
        match mode {
            Mode::Validate => "validate",
            Mode::Mutate => "mutate",
        },
        review.operation_label(),
        &review.kind_label(),
        decision.allowed,
        !decision.patch.is_empty(),
        started.elapsed().as_secs_f64(),
    );
    json_response(
        StatusCode::OK,
        &review::response(&review.request.uid, &decision),
    )
}

/// What the cluster says about the objects a review refers to: the
/// workload of a scale request, an HPA's target and its node pool.
/// Bodies up to this size are parsed on the async worker that read them.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// Parses a large review on the blocking pool, holding the review's permit,
/// and answers for it when parsing fails or passes the deadline.
async fn parse_on_the_blocking_pool<P: Send + Sync + 'static>(
    state: &AppState,
    bytes: Bytes,
    permit: Arc<P>,
    deadline: tokio::time::Instant,
) -> Result<Arc<Review>, Response> {
    // The body is kept for its uid only while parsing can time out.
    let uid_source = bytes.clone();
    let parse = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        Review::parse(&bytes)
    });
    match tokio::time::timeout_at(deadline, parse).await {
        Ok(Ok(Ok(review))) => Ok(Arc::new(review)),
        Ok(Ok(Err(error))) => Err(bad_request(state, error)),
        Ok(Err(_)) => Err(unreviewed(
            state,
            Unreviewed::Failed,
            StatusCode::INTERNAL_SERVER_ERROR,
            "infergate failed while reading the request",
        )),
        // Even a review that could not be read in time is answered as one,
        // when its uid can be found.
        Err(_) => Err(match super::uid::peek(&uid_source) {
            Some(uid) => {
                state.metrics.record_unreviewed(Unreviewed::Timeout);
                json_response(
                    StatusCode::OK,
                    &review::response(&uid, &allowed_unchecked(TIMED_OUT)),
                )
            }
            None => unreviewed(
                state,
                Unreviewed::Timeout,
                StatusCode::SERVICE_UNAVAILABLE,
                "the request could not be read within the review budget",
            ),
        }),
    }
}

async fn cluster_context(
    state: &AppState,
    review: &Review,
) -> (Option<ScaleTarget>, review::ClusterContext) {
    let scale_target = match (
        &state.cluster,
        review.is_scale(),
        review.request.namespace.as_deref(),
    ) {
        // The gate denies on this object's readiness: never from a cache.
        (Some(cluster), true, Some(_)) => match review.scaled_workload() {
            Some(workload) => Some(cluster.workload(&workload, Freshness::Now).await),
            None => None,
        },
        _ => None,
    };
    // An HPA's workload, when the cluster can be asked, is checked as
    // if it were in the input.
    let mut context = review::ClusterContext::default();
    if let (Some(cluster), Some(target)) = (&state.cluster, review.hpa_target()) {
        match cluster.workload(&target, Freshness::Cached).await {
            ScaleTarget::Found(workload) => {
                let resources = &state.engine.policy().inference.accelerator_resources;
                if let Some(pool) = cluster.pool_for(&workload, resources).await {
                    context.pools.push(pool);
                }
                context.objects.push(workload);
            }
            ScaleTarget::NotFound => {
                context
                    .missing
                    .push((target.kind, target.namespace, target.name))
            }
            ScaleTarget::Unknown(_) => {}
        }
    }
    // Autoscalers: the others on an HPA's workload (two autoscalers on
    // one workload fight); those on a workload under review, and the
    // claims and node pool its pods use.
    if let Some(cluster) = &state.cluster {
        add_autoscaling_context(state, cluster, review, &mut context).await;
    }
    // An InferencePool's endpoint picker Service: found, it is checked
    // as context; missing, the pool's reference leads nowhere.
    if let (Some(cluster), Some(reference)) = (&state.cluster, review.picker_service()) {
        match cluster.workload(&reference, Freshness::Cached).await {
            ScaleTarget::Found(service) => context.objects.push(service),
            ScaleTarget::NotFound => {
                context
                    .missing
                    .push((reference.kind, reference.namespace, reference.name))
            }
            ScaleTarget::Unknown(_) => {}
        }
    }
    // The pools a route or an objective refers to, of either version:
    // found, they are context; of neither, the reference leads nowhere.
    if let (Some(cluster), Some(namespace)) = (&state.cluster, review.request.namespace.as_deref())
    {
        for name in review.pool_names() {
            let mut found = false;
            let mut known = true;
            for api_version in review::pool_versions() {
                let reference = WorkloadRef {
                    api_version: api_version.to_string(),
                    kind: "InferencePool".to_string(),
                    namespace: namespace.to_string(),
                    name: name.clone(),
                };
                match cluster.workload(&reference, Freshness::Cached).await {
                    ScaleTarget::Found(pool) => {
                        found = true;
                        context.objects.push(pool);
                    }
                    ScaleTarget::NotFound => {}
                    ScaleTarget::Unknown(_) => known = false,
                }
            }
            if !found && known {
                context
                    .missing
                    .push(("InferencePool".to_string(), namespace.to_string(), name));
            }
        }
    }
    // A monitor's pods: the workloads of its namespace (a
    // ClusterPodMonitoring's: of every namespace) whose pod templates its
    // selector matches, checked as context.
    if let (Some(cluster), Some((namespace, selector))) =
        (&state.cluster, review.monitor_selector())
    {
        for workload in cluster.workloads_in(namespace.as_deref()).await {
            if selects_pods_of(&workload, &selector, state.engine.policy()) {
                context.objects.push(workload);
            }
        }
    }
    (scale_target, context)
}

/// The autoscalers, claims and pools a review of an HPA or a workload is
/// checked with.
async fn add_autoscaling_context(
    state: &AppState,
    cluster: &Cluster,
    review: &Review,
    context: &mut review::ClusterContext,
) {
    let (Some(namespace), Some(object)) = (review.request.namespace.as_deref(), &review.object)
    else {
        return;
    };
    let reviewed = crate::k8s::autoscaler::Reference::of_value(object);
    let workload = review.reviewed_workload();
    if reviewed.is_none() && workload.is_none() {
        return;
    }
    let (kind, name) = match (&reviewed, &workload) {
        (Some(target), _) => (target.kind.clone(), target.name.clone()),
        (None, Some(workload)) => (workload.kind.clone(), workload.name.clone()),
        (None, None) => return,
    };
    for autoscaler in cluster.autoscalers_in(namespace).await {
        let target = crate::k8s::autoscaler::Reference::of_value(&autoscaler);
        if target.is_some_and(|target| target.kind == kind && target.name == name) {
            context.objects.push(autoscaler);
        }
    }
    let Some(workload) = workload else { return };
    for claim in review::claim_names(object) {
        let reference = WorkloadRef {
            api_version: "v1".to_string(),
            kind: "PersistentVolumeClaim".to_string(),
            namespace: workload.namespace.clone(),
            name: claim,
        };
        if let ScaleTarget::Found(found) = cluster.workload(&reference, Freshness::Cached).await {
            context.objects.push(found);
        }
    }
    let resources = &state.engine.policy().inference.accelerator_resources;
    if let Some(pool) = cluster.pool_for(object, resources).await {
        context.pools.push(pool);
    }
}

/// Whether a label selector matches the pods of a workload read from the
/// cluster (its templates' labels and those its controller adds).
fn selects_pods_of(workload: &Value, selector: &Value, policy: &crate::policy::Policy) -> bool {
    let Some(object) = review::to_object(workload, "cluster") else {
        return false;
    };
    crate::k8s::workload::pod_templates(&object)
        .iter()
        .any(|template| {
            crate::k8s::selection::selects(
                selector,
                &crate::k8s::selection::PodLabels::of(&object, template, policy),
            )
        })
}

fn admission_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/validate",
            post(
                |State(state): State<AppState>, headers: HeaderMap, body: Body| {
                    handle(state, Mode::Validate, headers, body)
                },
            ),
        )
        .route(
            "/mutate",
            post(
                |State(state): State<AppState>, headers: HeaderMap, body: Body| {
                    handle(state, Mode::Mutate, headers, body)
                },
            ),
        )
        .with_state(state)
}

/// Adds `Connection: close` to every response once `closing` is set;
/// hyper then also closes the connection after writing that response.
fn announce_close_when(router: Router, closing: Arc<std::sync::atomic::AtomicBool>) -> Router {
    router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let closing = Arc::clone(&closing);
            async move {
                if closing.load(std::sync::atomic::Ordering::Acquire) {
                    response.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        },
    ))
}

fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
}

/// /healthz, /readyz and /metrics on a thread and runtime of their own, so
/// that the kubelet's probes are answered however busy the admission
/// workers are.
struct HealthServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthServer {
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_health_apart(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
) -> Result<HealthServer, ServeError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let bind_error = |source| ServeError::Bind { addr, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(bind_error)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("infergate-health".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    eprintln!("infergate: the health and metrics listener could not start");
                    return;
                };
                let _ = axum::serve(listener, metrics_router(metrics))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })
        .map_err(bind_error)?;
    Ok(HealthServer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Open connections per client address.
type PerClient = Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One of a client address's [`MAX_CONNECTIONS_PER_CLIENT`] slots, given
/// back when the connection ends.
struct ClientSlot {
    clients: PerClient,
    address: std::net::IpAddr,
}

impl ClientSlot {
    fn take(clients: &PerClient, address: std::net::IpAddr) -> Option<Self> {
        let mut open = clients.lock().ok()?;
        let count = open.entry(address).or_default();
        if *count >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(Self {
            clients: Arc::clone(clients),
            address,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.lock() {
            if let Some(count) = open.get_mut(&self.address) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&self.address);
                }
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() -> Result<(), ServeError> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(ServeError::Signals)?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}

/// Serve until SIGTERM, then finish the requests in flight and return.
pub async fn run(options: ServeOptions, engine: Arc<Engine>) -> Result<(), ServeError> {
    // Managed certificates: agreed with the other replicas through the
    // Secret, written where the TLS loader reads them, kept current.
    let _renewal = match &options.managed {
        Some(managed) => {
            let client = client(options.kubeconfig.as_ref())
                .await?
                .ok_or(ServeError::NoClusterForCertificates)?;
            super::managed_certs::ensure(&client, managed).await?;
            Some(super::managed_certs::spawn(client, managed.clone()))
        }
        None => None,
    };
    let store = CertStore::load(&options.tls_cert, &options.tls_key)?;
    store.watch(options.reload_interval);
    let config = tls::server_config(Arc::clone(&store), options.client_ca.as_deref())?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let cluster = if options.lookups {
        Cluster::connect(options.kubeconfig.as_ref())
            .await?
            .map(Arc::new)
    } else {
        eprintln!("infergate: cluster lookups are off: without --client-ca any pod could send a review and learn from the reply which names exist; give --client-ca (or --unauthenticated-lookups to accept that)");
        None
    };
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        engine,
        scope: Arc::new(Scope {
            excluded_namespaces: options.excluded_namespaces.clone(),
        }),
        metrics: Arc::clone(&metrics),
        cluster,
        request_timeout: options.request_timeout,
        reviews: Arc::new(tokio::sync::Semaphore::new(
            options.max_concurrent_reviews.max(1),
        )),
        bodies: Arc::new(tokio::sync::Semaphore::new(BODY_BUDGET / BUDGET_UNIT)),
    };
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?;
    let metrics_listener = std::net::TcpListener::bind(options.metrics_addr)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|source| ServeError::Bind {
            addr: options.metrics_addr,
            source,
        })?;
    eprintln!(
        "infergate: serving admission reviews on https://{} and metrics on http://{}",
        listener.local_addr().unwrap_or(options.addr),
        metrics_listener
            .local_addr()
            .unwrap_or(options.metrics_addr)
    );
    let state_metrics = Arc::clone(&metrics);
    let metrics_server = serve_health_apart(metrics_listener, metrics)?;

    // From SIGTERM on, every answer says `Connection: close`: clients
    // then open a fresh connection for their next review (to a pod still
    // serving) instead of keeping this one alive into the drain, where a
    // request written as the server closes an idle connection is lost.
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let router = announce_close_when(admission_router(state), Arc::clone(&closing));
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // After SIGTERM, keep accepting for `shutdown_delay` (the apiserver
    // still routes to this pod until its endpoint is gone), then stop.
    let mut stop_at: Option<tokio::time::Instant> = None;
    let mut accept_failing = false;
    let connection_slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client: PerClient = Arc::default();
    loop {
        let deadline = async {
            match stop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors (or another passing
                        // failure): wait instead of spinning on accept.
                        if !accept_failing {
                            eprintln!("infergate: cannot accept connections ({error}); retrying");
                        }
                        accept_failing = true;
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                accept_failing = false;
                // At most MAX_CONNECTIONS at once: a further one is closed
                // at once, so idle clients cannot hold the server's sockets.
                let Some(client_slot) = ClientSlot::take(&per_client, peer.ip()) else {
                    state_metrics.record_refused_connection(RefusedConnection::PerClient);
                    drop(stream);
                    continue;
                };
                let Ok(slot) = Arc::clone(&connection_slots).try_acquire_owned() else {
                    state_metrics.record_refused_connection(RefusedConnection::Capacity);
                    drop(stream);
                    continue;
                };
                let handshake_metrics = Arc::clone(&state_metrics);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                let mut stopping = stopping_rx.clone();
                connections.spawn(async move {
                    let _slots = (slot, client_slot);
                    let accepted_at = tokio::time::Instant::now();
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(_)) => return,
                        Err(_) => {
                            handshake_metrics.record_refused_connection(RefusedConnection::HandshakeTimeout);
                            return;
                        }
                    };
                    // A client that trickles its headers, or keeps an idle
                    // connection without sending the next request, is
                    // closed after HEADER_READ_TIMEOUT.
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(tls), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        _ = stopping.wait_for(|stop| *stop) => {}
                    }
                    // A connection opened just before the drain gets its
                    // first request answered before it is closed.
                    let grace = tokio::time::sleep_until(accepted_at + FRESH_CONNECTION_GRACE);
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        () = grace => {}
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
                // Reap finished connection tasks so the set stays small.
                while connections.try_join_next().is_some() {}
            }
            signal = &mut shutdown, if stop_at.is_none() => {
                signal?;
                eprintln!("infergate: SIGTERM; serving for {:?} more, then draining", options.shutdown_delay);
                closing.store(true, std::sync::atomic::Ordering::Release);
                stop_at = Some(tokio::time::Instant::now() + options.shutdown_delay);
            }
            () = deadline => break,
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(options.drain_timeout, drained).await;
    metrics_server.stop();
    eprintln!("infergate: stopped");
    Ok(())
}
