//! The policy: severities, scope, detection patterns and thresholds, read
//! from the YAML files in `rules/` (embedded in the binary) and optionally
//! merged with a user's file.
//!
//! The policy layer: facts as data and the user's policy and config.
//! Imports `input` only.

pub mod config;
pub mod suggest;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, OnceLock};

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::input::loader;
use crate::input::source::SourceFile;

/// The files of `rules/` that make up the built-in policy, merged in order.
const BUILT_IN: &[(&str, &str)] = &[
    ("rules/policy.yaml", include_str!("../../rules/policy.yaml")),
    (
        "rules/inference.yaml",
        include_str!("../../rules/inference.yaml"),
    ),
    (
        "rules/metrics.yaml",
        include_str!("../../rules/metrics.yaml"),
    ),
    ("rules/hpa.yaml", include_str!("../../rules/hpa.yaml")),
    ("rules/models.yaml", include_str!("../../rules/models.yaml")),
    (
        "rules/capacity.yaml",
        include_str!("../../rules/capacity.yaml"),
    ),
    (
        "rules/monitoring.yaml",
        include_str!("../../rules/monitoring.yaml"),
    ),
    (
        "rules/kubernetes.yaml",
        include_str!("../../rules/kubernetes.yaml"),
    ),
    (
        "rules/serving.yaml",
        include_str!("../../rules/serving.yaml"),
    ),
    ("rules/keda.yaml", include_str!("../../rules/keda.yaml")),
    (
        "rules/accelerators.yaml",
        include_str!("../../rules/accelerators.yaml"),
    ),
];

/// The JSON Schema of the policy format.
pub const SCHEMA: &str = include_str!("../../rules/policy.schema.json");

/// A policy that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the policy is not valid YAML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}:{line}:{column}: policy key `{key}`: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("the policy does not match its schema: {0}")]
    Shape(String),
}

/// How much a finding matters: what a rule reports at, as the policy sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub rules: BTreeMap<String, RuleSetting>,
    pub namespaces: NamespaceScope,
    pub exceptions: Vec<PolicyException>,
    pub webhook: WebhookPolicy,
    pub inference: InferenceDetection,
    pub metric_families: MetricFamilies,
    pub external_metrics: ExternalMetrics,
    pub metric_semantics: MetricSemantics,
    pub hpa_behavior: HpaBehavior,
    pub hpa_status: HpaStatus,
    pub hpa_controller: HpaController,
    pub placeholders: Placeholders,
    pub models: Models,
    pub accelerator_pools: Vec<AcceleratorPool>,
    pub scraping: Scraping,
    pub adapter: Adapter,
    pub kubernetes: Kubernetes,
    pub serving: Serving,
    pub keda: Keda,
    pub accelerators: Accelerators,
}

/// Accelerator memory and how servers use it (rules/accelerators.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accelerators {
    pub labels: Vec<String>,
    pub catalogue: Vec<AcceleratorKind>,
    pub memory_fraction: Vec<MemoryFraction>,
    pub kv_cache_minimum_fraction: f64,
    pub quantization: Quantization,
}

/// One accelerator: the node label values that name it and its memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorKind {
    pub name: String,
    /// The label values that name it (anchored in the data).
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub memory: Quantity,
    pub source: String,
}

/// The share of accelerator memory a server uses, and its flag.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryFraction {
    pub server: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub default: f64,
    pub source: String,
}

/// Bytes per parameter that quantization flags load weights at.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quantization {
    pub flags: Vec<String>,
    pub bytes_per_parameter: BTreeMap<String, f64>,
    pub source: String,
}

/// The label that opts a namespace out of the webhook (its
/// namespaceSelector) and of the default audit: (key, value).
pub const OPT_OUT_LABEL: (&str, &str) = ("infergate.dev/webhook", "exclude");

/// What only the webhook reads (rules/policy.yaml `webhook`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPolicy {
    pub opt_out: OptOutGrant,
}

/// The users and groups who may label a namespace out of the webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptOutGrant {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl OptOutGrant {
    /// Whether a user with these groups may set the opt-out label.
    pub fn allows(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|allowed| allowed == user)
            || groups
                .iter()
                .any(|group| self.groups.iter().any(|allowed| allowed == group))
    }
}

/// An exemption the policy's owner grants (rules/policy.yaml
/// `exceptions`): findings of `rules` on the objects it names are
/// suppressed, at admission too.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyException {
    pub rules: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub reason: String,
}

impl PolicyException {
    fn covers(&self, rule: &str, kind: &str, namespace: Option<&str>, name: Option<&str>) -> bool {
        let globs = |patterns: &[String], value: Option<&str>| {
            patterns.is_empty()
                || value
                    .is_some_and(|value| patterns.iter().any(|pattern| glob_match(pattern, value)))
        };
        self.rules.iter().any(|id| id == rule || id == "*")
            && (self.kinds.is_empty() || self.kinds.iter().any(|known| known == kind))
            && globs(&self.namespaces, namespace)
            && globs(&self.names, name)
    }
}

/// KEDA's defaults and the aggregations keda-prometheus-query tells apart
/// (rules/keda.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keda {
    pub defaults: KedaDefaults,
    pub total_aggregations: Vec<String>,
    pub per_pod_aggregations: Vec<String>,
    pub cold_start_seconds: Seconds,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KedaDefaults {
    pub min_replica_count: i64,
    pub max_replica_count: i64,
    pub polling_interval: i64,
    pub cooldown_period: i64,
}

/// How model servers start (rules/serving.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    pub parallelism: Vec<ServerParallelism>,
    pub rank_resources: Vec<String>,
    pub shared_memory: SharedMemory,
    pub startup: Startup,
    pub single_node_access_modes: Vec<String>,
    /// Variables a server reads as its own settings (service-env-collision).
    #[serde(default)]
    pub reads_env: Vec<ServerEnv>,
    /// Where each server says it is ready (model-server-readiness).
    #[serde(default)]
    pub health: Vec<ServerHealth>,
    /// How multi-node servers name their rendezvous peer (host-network-dns).
    pub rendezvous: Rendezvous,
    /// The Inference Extension's endpoint picker (inference-pool-endpoint-picker).
    pub endpoint_picker: EndpointPicker,
    /// Knative's autoscaling annotations as KServe and Knative treat them
    /// (kserve-knative-autoscaling).
    pub knative_autoscaling: KnativeAutoscaling,
}

/// Knative's autoscaling annotations on a KServe InferenceService: which
/// KServe writes over, and the values Knative's webhook accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnativeAutoscaling {
    pub prefix: String,
    #[serde(rename = "setByKServe")]
    pub set_by_kserve: Vec<KnativeSetByKServe>,
    pub class_annotation: String,
    pub default_class: String,
    pub classes: Vec<String>,
    pub metric_annotation: String,
    pub kpa_metrics: Vec<String>,
    pub bounds: Vec<KnativeBound>,
    pub source: String,
}

/// Annotations KServe writes from a component's field.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnativeSetByKServe {
    pub annotations: Vec<String>,
    pub field: String,
    #[serde(default)]
    pub always: bool,
}

/// The range Knative accepts for an annotation's number (or duration, in
/// seconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnativeBound {
    pub annotations: Vec<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub duration: bool,
}

/// What the Gateway API Inference Extension's endpoint picker defaults to
/// and the flags that tie it to its pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPicker {
    /// Flags naming the pool the picker serves (Go flags: `-x` or `--x`).
    pub pool_flags: Vec<String>,
    /// Flags of the picker's gRPC (ext-proc) port.
    pub grpc_port_flags: Vec<String>,
    pub default_grpc_port: i64,
    /// The port a v1alpha2 `extensionRef` without `portNumber` means.
    pub default_ref_port: i64,
    pub default_failure_mode: String,
    pub source: String,
}

/// The flags and variables that name a multi-node rendezvous peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendezvous {
    pub flags: Vec<String>,
    pub env: Vec<String>,
    pub source: String,
}

/// A server's readiness endpoint and the port it listens on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerHealth {
    pub server: String,
    pub path: String,
    #[serde(default)]
    pub port_flags: Vec<String>,
    #[serde(default)]
    pub port_env: Vec<String>,
    pub default_port: Option<u16>,
    /// The image is the model (NIM): it loads one without naming it.
    #[serde(default)]
    pub image_is_model: bool,
    pub source: String,
}

/// The environment variables a server reads as its own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerEnv {
    pub server: String,
    pub variables: Vec<String>,
    pub source: String,
}

/// Where a server states its parallel degree.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerParallelism {
    pub server: String,
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub entrypoint: Option<Pattern>,
    pub default_images: Option<Pattern>,
    /// KServe predictor model formats (`model.modelFormat.name`) whose
    /// runtime runs this server: the predictor's `model` container names
    /// no image or command of its own.
    #[serde(default)]
    pub kserve_formats: Vec<String>,
    pub default: Option<u64>,
    pub factors: Vec<ParallelFactor>,
    #[serde(default)]
    pub nodes_flags: Vec<String>,
    #[serde(default)]
    pub no_default_with: Vec<String>,
    pub spans_pods: Option<SpansPods>,
    pub source: String,
}

/// What says a server's ranks run across a Ray cluster rather than in the
/// pod.
#[derive(Debug, Clone, Deserialize)]
pub struct SpansPods {
    pub command: Option<Pattern>,
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParallelFactor {
    pub name: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub per_pod: bool,
    #[serde(default)]
    pub unless_flags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedMemory {
    pub resources: Vec<String>,
    pub size_limit: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    pub download_bytes_per_second: Quantity,
    pub volume_bytes_per_second: Quantity,
    pub startup_overhead: Seconds,
    pub probe_period_seconds: u64,
    pub source: String,
}

/// What metric names say about their use in an HPA (rules/metrics.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSemantics {
    pub counter_suffixes: Vec<String>,
    pub rate_functions: Vec<String>,
    pub rated_kinds: Vec<String>,
    pub raw_kinds: Vec<String>,
    pub distribution_kinds: Vec<String>,
    pub exporter_series: Vec<ExporterSeries>,
    /// Series that are already an average over a pool's pods.
    #[serde(default)]
    pub pod_averages: Vec<PodAverage>,
}

/// A series that is already averaged over the pods of a pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAverage {
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub source: String,
}

/// The Prometheus metric inside an adapter name
/// (`prometheus.googleapis.com|tgi_queue_size|gauge` -> `tgi_queue_size`),
/// or the name itself.
pub fn base_name(name: &str) -> &str {
    let mut parts = name.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("prometheus.googleapis.com"), Some(metric), Some(_), None) => metric,
        _ => name,
    }
}

impl MetricSemantics {
    /// The exporter whose series `name` is (matched on the whole name and
    /// on the bare name of the adapter form), if any.
    pub fn exporter_of(&self, name: &str) -> Option<&ExporterSeries> {
        let base = base_name(name);
        self.exporter_series
            .iter()
            .find(|series| series.pattern.is_match(name) || series.pattern.is_match(base))
    }

    /// Whether `name` (or the bare name of its adapter form) is a series
    /// already averaged over a pool's pods.
    pub fn pod_average(&self, name: &str) -> Option<&PodAverage> {
        let base = base_name(name);
        self.pod_averages
            .iter()
            .find(|average| average.pattern.is_match(name) || average.pattern.is_match(base))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExporterSeries {
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub exporter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubernetes {
    /// The target Kubernetes minor version, such as "1.37".
    pub version: String,
    pub removed_apis: Vec<RemovedApi>,
    /// API groups of tools' configuration files, which are never applied.
    #[serde(default)]
    pub tool_configuration_groups: Vec<String>,
    /// Labels each controller kind adds to its pods.
    #[serde(default)]
    pub controller_labels: std::collections::BTreeMap<String, Vec<ControllerLabel>>,
}

/// A label a controller adds to the pods it creates.
#[derive(Debug, Clone, Deserialize)]
pub struct ControllerLabel {
    pub label: String,
    /// `name`: the controller's own name; `None`: known only at run time.
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedApi {
    pub api_version: String,
    pub kind: String,
    pub replacement: String,
    pub removed_in: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Models {
    pub boot_disk_size: Quantity,
    pub boot_disk_reserved_fraction: f64,
    pub shm_cache_path: String,
    pub headroom_fraction: f64,
    /// Host memory a model server needs besides a cache in /dev/shm.
    pub server_memory_overhead: Quantity,
    pub model_flags: Vec<String>,
    pub model_env: Vec<String>,
    pub cache_env: Vec<String>,
    pub cache_flags: Vec<String>,
    pub default_cache_dir: String,
    pub server_caches: Vec<ServerCache>,
    /// What an image runs when a container sets only `args`.
    #[serde(default)]
    pub image_entrypoints: Vec<ImageEntrypoint>,
    pub precisions: Vec<Precision>,
    pub default_bytes_per_parameter: f64,
    pub catalogue: Vec<CatalogueEntry>,
}

impl Models {
    /// Bytes of boot disk left to workloads (GKE Inference Quickstart: 100 GiB less 10 %).
    pub fn disk_budget(&self) -> f64 {
        self.boot_disk_size.0 * (1.0 - self.boot_disk_reserved_fraction)
    }
}

/// An image's ENTRYPOINT, which a container's `args` are appended to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntrypoint {
    pub image: Pattern,
    pub entrypoint: Vec<String>,
    /// Leading args that spell the entrypoint again.
    pub repeats: Vec<Vec<String>>,
    /// Whether the entrypoint takes the model as its first argument.
    pub positional_model: bool,
    pub source: String,
}

fn hub_cache_default() -> bool {
    true
}

/// Where the server of an image caches downloads by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCache {
    pub image: Pattern,
    pub cache_dir: String,
    /// Variables this image reads before `models.cacheEnv`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Flags this image reads before `models.cacheFlags`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Whether the server downloads through the Hugging Face hub cache, so
    /// that `models.cacheEnv` moves it (false: a server that downloads into
    /// a directory of its own flag, whatever HF_HOME says).
    #[serde(default = "hub_cache_default")]
    pub hub_cache: bool,
    /// The variable a fix sets to move the cache; none when only a flag
    /// moves it (the fix is then left to a person).
    #[serde(default)]
    pub fix_env: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Precision {
    pub hint: Pattern,
    pub bytes_per_parameter: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogueEntry {
    pub id: String,
    /// Billions of parameters.
    pub parameters: f64,
    pub dtype: String,
    /// The published download size, when it is not parameters x precision.
    pub size: Option<Quantity>,
    pub source: String,
}

/// A Kubernetes quantity in the policy (`100Gi`, `65G`), as bytes.
#[derive(Debug, Clone, Copy)]
pub struct Quantity(pub f64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        crate::input::quantity::from_value(&value)
            .map(Quantity)
            .ok_or_else(|| serde::de::Error::custom(format!("`{value}` is not a quantity")))
    }
}

/// A duration in the policy (`5s`, `1m`), as seconds.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::input::duration::parse(&text)
            .map(Seconds)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a duration")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorPool {
    pub name: String,
    pub node_labels: BTreeMap<String, String>,
    pub chips: f64,
    pub max_chips: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scraping {
    pub server_min_interval: Seconds,
    pub system_min_interval: Seconds,
    pub max_interval: Seconds,
    pub system_exporter_hints: Vec<String>,
    #[serde(default)]
    pub port_flags: Vec<String>,
    #[serde(default)]
    pub port_env: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterBackend {
    Prometheus,
    Gmp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adapter {
    pub backend: AdapterBackend,
    pub namespace_labels: Vec<String>,
    pub cluster_labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuleSetting {
    pub severity: Option<SeverityLevel>,
}

/// A rule's configured level: a severity, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeverityLevel {
    Error,
    Warning,
    Info,
    Off,
}

impl<'de> Deserialize<'de> for SeverityLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An unquoted `off` is the boolean false under the YAML 1.1 rules
        // that Kubernetes (and so this loader) uses; accept it as `off`.
        match Value::deserialize(deserializer)? {
            Value::Bool(false) => Ok(Self::Off),
            Value::String(text) => match text.as_str() {
                "error" => Ok(Self::Error),
                "warning" => Ok(Self::Warning),
                "info" => Ok(Self::Info),
                "off" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "unknown severity `{other}`; use error, warning, info or off"
                ))),
            },
            other => Err(serde::de::Error::custom(format!(
                "unknown severity `{other}`; use error, warning, info or off"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamespaceScope {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceDetection {
    pub marker: String,
    pub servers: Vec<ServerPattern>,
    pub accelerator_resources: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerPattern {
    pub name: String,
    pub pattern: Pattern,
}

/// A case-insensitive regular expression from the policy. In the built-in
/// policy its syntax is checked when the policy is read and the matcher is
/// built the first time a rule uses it: building every pattern was a
/// quarter of a small file's cold lint, and most runs use few of them. A
/// policy with a user's layers builds every pattern as it is read, so a
/// pattern the regex engine refuses (too large once compiled, say) is an
/// error that names its file, never a pattern that silently matches
/// nothing.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    compiled: OnceLock<Option<Regex>>,
}

thread_local! {
    /// Set while a policy with user layers is deserialised: patterns are
    /// then built at once (see [`Pattern`]).
    static BUILD_PATTERNS_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The compiled size of the patterns built so far in that policy.
    static PATTERN_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The most memory all the patterns of a policy may compile to (their
/// Thompson NFAs, which the matchers are built from; the engine's lazy
/// DFA caches come on top, bounded per pattern by the regex crate). The
/// built-in policy's take 0.12 MiB (measured with a user layer that
/// changes no pattern).
pub const PATTERN_BUDGET: usize = 32 * 1024 * 1024;

/// Deserialises a policy with every pattern built as it is read.
fn with_patterns_built<T>(read: impl FnOnce() -> T) -> T {
    BUILD_PATTERNS_NOW.with(|flag| flag.set(true));
    PATTERN_BYTES.with(|bytes| bytes.set(0));
    let result = read();
    BUILD_PATTERNS_NOW.with(|flag| flag.set(false));
    result
}

fn build_pattern(text: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(text).case_insensitive(true).build()
}

/// The compiled size of `text` (its Thompson NFA), counted against
/// [`PATTERN_BUDGET`]: an error once the policy's patterns pass it.
fn charge_pattern(text: &str) -> Result<(), String> {
    use regex_automata::nfa::thompson;
    let used = PATTERN_BYTES.with(std::cell::Cell::get);
    let remaining = PATTERN_BUDGET.saturating_sub(used);
    let nfa = thompson::Compiler::new()
        .syntax(regex_automata::util::syntax::Config::new().case_insensitive(true))
        .configure(thompson::Config::new().nfa_size_limit(Some(remaining)))
        .build(text)
        .map_err(|error| {
            format!(
                "the policy's patterns compile to more than {} MiB in all: `{}` does not fit in what is left of that size limit ({error}); simplify the patterns (bounded repetitions like \\w{{300}} are costly)",
                PATTERN_BUDGET / (1024 * 1024),
                shorten(text)
            )
        })?;
    PATTERN_BYTES.with(|bytes| bytes.set(used + nfa.memory_usage()));
    if used + nfa.memory_usage() > PATTERN_BUDGET {
        return Err(format!(
            "the policy's patterns compile to more than {} MiB in all (at `{}`); simplify the patterns",
            PATTERN_BUDGET / (1024 * 1024),
            shorten(text)
        ));
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(60).collect::<String>())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let compiled = OnceLock::new();
        if BUILD_PATTERNS_NOW.with(std::cell::Cell::get) {
            charge_pattern(&text).map_err(serde::de::Error::custom)?;
            let regex = build_pattern(&text).map_err(serde::de::Error::custom)?;
            let _ = compiled.set(Some(regex));
        } else {
            regex_syntax::ParserBuilder::new()
                .case_insensitive(true)
                .build()
                .parse(&text)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(Pattern { text, compiled })
    }
}

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        self.regex().is_some_and(|regex| regex.is_match(text))
    }

    /// The pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The built matcher. `None` only for a built-in pattern the regex
    /// engine refuses, which a test rules out.
    pub fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| build_pattern(&self.text).ok())
            .as_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricFamily {
    Queue,
    Batch,
    KvCache,
    Hbm,
    DutyCycle,
}

impl MetricFamily {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Queue => "queue size",
            Self::Batch => "batch size / slots",
            Self::KvCache => "KV-cache usage",
            Self::Hbm => "accelerator memory (HBM)",
            Self::DutyCycle => "accelerator duty cycle",
        }
    }
}

/// The range a metric's values live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricScale {
    Fraction,
    Percent,
}

pub type MetricFamilies = BTreeMap<MetricFamily, Vec<MetricEntry>>;

#[derive(Debug, Clone, Deserialize)]
pub struct MetricEntry {
    pub name: String,
    pub scale: Option<MetricScale>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetrics {
    pub namespace_labels: Vec<NamespaceLabel>,
    pub exporters: Vec<Exporter>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamespaceLabel {
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub label: String,
    /// The label is that of the pod the series were scraped from: the
    /// workload's own only for a server metric (an exporter's series carry
    /// the exporter's namespace there).
    #[serde(default, rename = "scrapedFromPod")]
    pub scraped_from_pod: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exporter {
    pub metrics: Pattern,
    pub pod_monitoring_hint: String,
}

/// The HPA controller's constants and the apiserver's default behavior
/// (rules/hpa.yaml), which `infergate simulate` replays.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaController {
    pub sync_period_seconds: f64,
    pub tolerance: f64,
    pub downscale_stabilization_seconds: f64,
    pub scale_up_limit_factor: f64,
    pub scale_up_limit_minimum: f64,
    pub default_scale_up: ScalingRules,
    pub default_scale_down: ScalingRules,
}

/// `HPAScalingRules` of autoscaling/v2: one direction of a behavior.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    #[serde(default)]
    pub stabilization_window_seconds: Option<i64>,
    #[serde(default)]
    pub select_policy: Option<String>,
    #[serde(default)]
    pub policies: Option<Vec<ScalingPolicy>>,
}

/// `HPAScalingPolicy`: at most `value` pods or percent per `period_seconds`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub policy_type: String,
    pub value: i64,
    pub period_seconds: i64,
}

/// What an HPA's own status says about its health (rules/hpa.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaStatus {
    /// Condition type -> the reasons that, with status False, mean the
    /// controller cannot scale.
    pub failing_conditions: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaBehavior {
    pub scale_down_stabilization_seconds: i64,
    pub scale_up_stabilization_seconds: i64,
    pub min_scale_down_stabilization_seconds: i64,
    pub low_queue_target: f64,
    pub scale_up_policies: Vec<Value>,
    pub scale_up_select_policy: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placeholders {
    pub words: Vec<String>,
    pub numeric_fields: Vec<String>,
    pub environment_variables: Vec<String>,
    /// File name parts that mark a template (`x.tftpl.yaml`): its `${…}`
    /// variables are reported once per object, as a template to render.
    pub template_extensions: Vec<String>,
    /// API groups whose objects hold another tool's `${…}` expressions.
    #[serde(default)]
    pub tool_expressions: Vec<ToolExpressions>,
    pub grammar: GrammarFields,
    pub secret_names: Pattern,
    pub vendor_key_stand_ins: Pattern,
}

/// An API group whose objects another tool evaluates (`${…}` of kro).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExpressions {
    pub group: String,
    pub tool: String,
}

/// Where values follow a grammar that an uppercase placeholder breaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrammarFields {
    pub name_keys: Vec<String>,
    pub name_parents: Vec<String>,
    pub name_items: Vec<String>,
    pub image_keys: Vec<String>,
    pub bucket_keys: Vec<String>,
}

/// One user layer of the policy: its file name (for messages), its text and
/// whether it is a repository config file, the only place the path filters
/// of `CONFIG_ONLY_KEYS` are read.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub config: bool,
}

impl<'a> Layer<'a> {
    pub fn policy(name: &'a str, text: &'a str) -> Self {
        Self {
            name,
            text,
            config: false,
        }
    }

    pub fn config(name: &'a str, text: &'a str) -> Self {
        Self {
            name,
            text,
            config: true,
        }
    }
}

/// Keys of the policy schema that only a config file (`.infergate.yaml`)
/// may hold: they choose files, which a policy does not.
pub const CONFIG_ONLY_KEYS: &[&str] = &["include", "exclude", "ignore"];

fn config_only_key(layer: &Layer<'_>, key: &str) -> PolicyError {
    let source = SourceFile::new(layer.name, layer.text.to_string());
    let loaded = loader::parse_source(source);
    let location = loaded.documents.first().and_then(|document| {
        document
            .positions
            .locate_key(&crate::input::pointer::join("", key))
    });
    let (line, column) = location.map_or((1, 1), |location| (location.line, location.column));
    PolicyError::Invalid {
        file: layer.name.to_string(),
        line,
        column,
        key: key.to_string(),
        message: format!(
            "`{key}` chooses files, so it is read from the repository's .infergate.yaml (or --config FILE), not from --policy"
        ),
    }
}

/// The built-in layers of `rules/` merged, read once: the built-in policy
/// and every user policy start from it.
static BUILT_IN_MERGED: LazyLock<Result<Value, String>> = LazyLock::new(|| {
    let mut merged = Value::Object(serde_json::Map::new());
    for (name, text) in BUILT_IN {
        let layer = read_layer(name, text, None).map_err(|error| error.to_string())?;
        merge(&mut merged, layer);
    }
    Ok(merged)
});

static BUILT_IN_POLICY: LazyLock<Result<Arc<Policy>, String>> = LazyLock::new(|| {
    let merged = BUILT_IN_MERGED.clone()?;
    serde_json::from_value::<Policy>(merged)
        .map(Arc::new)
        .map_err(|error| error.to_string())
});

impl Policy {
    /// The policy of `rules/`, as embedded in the binary.
    pub fn built_in() -> Result<Arc<Policy>, PolicyError> {
        BUILT_IN_POLICY.clone().map_err(PolicyError::Shape)
    }

    /// The built-in policy with a user's file merged over it.
    pub fn with_file(path: &Path) -> Result<Arc<Policy>, PolicyError> {
        let text = config::read_capped(path).map_err(|source| PolicyError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        Self::with_overrides(&path.display().to_string(), &text)
    }

    /// The built-in policy with a user's policy text merged over it.
    pub fn with_overrides(name: &str, text: &str) -> Result<Arc<Policy>, PolicyError> {
        Self::with_layers(&[Layer::policy(name, text)])
    }

    /// The built-in policy with user layers merged over it in order (a
    /// repository's `.infergate.yaml`, then a `--policy` file).
    pub fn with_layers(layers: &[Layer<'_>]) -> Result<Arc<Policy>, PolicyError> {
        let mut merged = BUILT_IN_MERGED.clone().map_err(PolicyError::Shape)?;
        // The built-in policy names every rule (a test in rules/ holds it to
        // the registry), so a user's rule ids are checked against it.
        let rule_ids: Vec<String> = merged
            .get("rules")
            .and_then(Value::as_object)
            .map(|rules| rules.keys().cloned().collect())
            .unwrap_or_default();
        let mut last_name = "the built-in policy";
        for layer in layers {
            let mut value = read_layer(layer.name, layer.text, Some(&rule_ids))?;
            if let Some(map) = value.as_object_mut() {
                for key in CONFIG_ONLY_KEYS {
                    if map.remove(*key).is_some() && !layer.config {
                        return Err(config_only_key(layer, key));
                    }
                }
            }
            merge(&mut merged, value);
            last_name = layer.name;
        }
        with_patterns_built(|| serde_json::from_value::<Policy>(merged))
            .map(Arc::new)
            .map_err(|error| PolicyError::Shape(format!("{last_name}: {error}")))
    }

    /// The policy's exemption of `rule` on an object, if it grants one.
    pub fn exception_for(
        &self,
        rule: &str,
        kind: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Option<&PolicyException> {
        self.exceptions
            .iter()
            .find(|exception| exception.covers(rule, kind, namespace, name))
    }

    /// The configured level of a rule, `None` when the policy is silent.
    pub fn level(&self, rule: &str) -> Option<SeverityLevel> {
        self.rules.get(rule).and_then(|setting| setting.severity)
    }

    /// The severity findings of `rule` get, or `None` when it is off.
    pub fn severity(&self, rule: &str, default: Severity) -> Option<Severity> {
        match self.level(rule) {
            None => Some(default),
            Some(SeverityLevel::Off) => None,
            Some(SeverityLevel::Error) => Some(Severity::Error),
            Some(SeverityLevel::Warning) => Some(Severity::Warning),
            Some(SeverityLevel::Info) => Some(Severity::Info),
        }
    }

    /// Whether `object` is a tool's configuration file (a kustomization, a
    /// skaffold.yaml), which is never applied to a cluster.
    pub fn is_tool_configuration(&self, object: &crate::input::object::Object) -> bool {
        // `skaffold/v4beta11` reads as group `skaffold`.
        let group = object.group();
        self.kubernetes
            .tool_configuration_groups
            .iter()
            .any(|tool| tool == group)
    }

    /// Whether objects of `namespace` are linted.
    pub fn namespace_in_scope(&self, namespace: Option<&str>) -> bool {
        let Some(namespace) = namespace else {
            return true;
        };
        let included = self.namespaces.include.is_empty()
            || self
                .namespaces
                .include
                .iter()
                .any(|pattern| glob_match(pattern, namespace));
        included
            && !self
                .namespaces
                .exclude
                .iter()
                .any(|pattern| glob_match(pattern, namespace))
    }
}

/// Parse one policy layer and check it against the schema (and its rule ids
/// against `rule_ids`, when given), naming the offending key and its line on
/// failure.
fn read_layer(name: &str, text: &str, rule_ids: Option<&[String]>) -> Result<Value, PolicyError> {
    let source = SourceFile::new(name, text.to_string());
    let loaded = loader::parse_source(source.clone());
    if let Some(problem) = loaded.problems.first() {
        let message = match &problem.kind {
            loader::ProblemKind::InvalidYaml(message) => {
                format!("{message} (line {})", problem.location.line)
            }
            loader::ProblemKind::TooManyAliases => format!(
                "{} (line {}, column {})",
                crate::input::nesting::alias_budget_message(),
                problem.location.line,
                problem.location.column
            ),
            loader::ProblemKind::TooDeep => format!(
                "{} (line {}, column {})",
                crate::input::nesting::too_deep_message(),
                problem.location.line,
                problem.location.column
            ),
            loader::ProblemKind::DuplicateKey {
                key,
                first_line,
                second_line,
                ..
            } => format!("`{key}` is written twice (lines {first_line} and {second_line})"),
            loader::ProblemKind::IncompleteObject { .. } => {
                "the policy must be a plain mapping, not an object".to_string()
            }
            loader::ProblemKind::Unread(reason) => reason.clone(),
            loader::ProblemKind::HelmTemplate => {
                "it holds template markers; give the rendered file".to_string()
            }
        };
        return Err(PolicyError::Syntax {
            file: name.to_string(),
            message,
        });
    }
    let (value, positions) = match (loaded.documents.first(), loaded.objects.first()) {
        (Some(document), _) => (document.value.clone(), document.positions.clone()),
        (None, Some(object)) => (object.value.clone(), object.positions.clone()),
        (None, None) if text.trim().is_empty() => return Ok(Value::Object(Default::default())),
        (None, None) => {
            return Err(PolicyError::Syntax {
                file: name.to_string(),
                message: "the policy must be a YAML mapping".to_string(),
            })
        }
    };
    // A misspelt rule id gets the id it most likely meant, at its key.
    let known_ids = rule_ids.unwrap_or_default();
    let given_ids = value
        .get("rules")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|rules| rules.keys())
        .filter(|_| rule_ids.is_some());
    for id in given_ids {
        if known_ids.iter().any(|known| known == id) {
            continue;
        }
        let location = positions.locate_key(&crate::input::pointer::join("/rules", id));
        let (line, column) = location.map_or((1, 1), |location| (location.line, location.column));
        let message = match suggest::closest(id, known_ids.iter().map(String::as_str)) {
            Some(close) => format!("no rule is named `{id}`; did you mean `{close}`?"),
            None => format!("no rule is named `{id}`; `infergate rules` lists the rule ids"),
        };
        return Err(PolicyError::Invalid {
            file: name.to_string(),
            line,
            column,
            key: format!("rules.{id}"),
            message,
        });
    }
    let validator = schema_validator().map_err(PolicyError::Shape)?;
    if let Some(error) = validator.iter_errors(&value).next() {
        let pointer = error.instance_path().to_string();
        // For an unknown key the error sits on its parent; name the key.
        let (key_pointer, key) = match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                let key = unexpected.first().cloned().unwrap_or_default();
                (crate::input::pointer::join(&pointer, &key), key)
            }
            _ => (pointer.clone(), pointer_to_dotted(&pointer)),
        };
        let location = positions
            .locate_key(&key_pointer)
            .or_else(|| positions.locate(&key_pointer));
        let (line, column) = location.map_or((1, 1), |location| (location.line, location.column));
        let message = match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { .. } => {
                let parent = pointer_to_dotted(&pointer);
                if parent.is_empty() {
                    "unknown key; `infergate policy-schema` lists the top-level keys".to_string()
                } else {
                    format!("unknown key under `{parent}`; see `infergate policy-schema`")
                }
            }
            _ => error.to_string(),
        };
        return Err(PolicyError::Invalid {
            file: name.to_string(),
            line,
            column,
            key: if key.is_empty() {
                "(root)".to_string()
            } else {
                key
            },
            message,
        });
    }
    Ok(value)
}

fn pointer_to_dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|error| error.to_string())?;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|error| error.to_string())
});

fn schema_validator() -> Result<&'static jsonschema::Validator, String> {
    VALIDATOR.as_ref().map_err(Clone::clone)
}

/// Merge `overlay` into `base`: mappings key by key, anything else replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Glob matching with `*` for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = rest.split_last().unwrap_or((&"", &[]));
    for part in middle {
        match remaining.find(part) {
            Some(index) => remaining = &remaining[index + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_loads() {
        let policy = Policy::built_in().expect("built-in policy");
        assert_eq!(policy.hpa_behavior.scale_down_stabilization_seconds, 300);
        assert!(policy.metric_families.contains_key(&MetricFamily::Queue));
    }

    /// Every built-in pattern builds: with no user layer, `with_layers`
    /// builds them all as it reads them, and `regex()` then never has to
    /// answer `None`.
    #[test]
    fn every_built_in_pattern_builds() {
        let policy = Policy::with_layers(&[]).expect("built-in patterns build");
        let server = policy.inference.servers.first().expect("a server pattern");
        assert!(server.pattern.compiled.get().is_some_and(Option::is_some));
    }

    /// A user's pattern the regex engine refuses although its syntax is
    /// fine (here: too large once compiled) is an error when the policy is
    /// read, not a pattern that matches nothing later.
    #[test]
    fn a_user_pattern_too_large_to_build_is_refused_on_load() {
        let error = Policy::with_overrides(
            "big.yaml",
            "inference:\n  servers:\n    - name: big\n      pattern: '(\\w{100}){100}'\n",
        )
        .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.contains("big.yaml") && message.contains("size limit"),
            "{message}"
        );
    }

    /// Patterns each small enough to build, but together past
    /// [`PATTERN_BUDGET`], are refused when the policy is read, naming its
    /// file; fewer of the same fit.
    #[test]
    fn a_policy_whose_patterns_pass_the_total_budget_is_refused() {
        let one = "(\\w{40})";
        let size = regex_automata::nfa::thompson::Compiler::new()
            .syntax(regex_automata::util::syntax::Config::new().case_insensitive(true))
            .build("(\\w{40})")
            .expect("builds")
            .memory_usage();
        let servers = |count: usize| -> String {
            (0..count)
                .map(|index| format!("    - name: s{index}\n      pattern: '{one}'\n"))
                .collect()
        };
        let over = PATTERN_BUDGET / size + 2;
        let error = Policy::with_overrides(
            "many.yaml",
            &format!("inference:\n  servers:\n{}", servers(over)),
        )
        .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.contains("many.yaml") && message.contains("MiB in all"),
            "{message}"
        );
        Policy::with_overrides(
            "few.yaml",
            &format!(
                "inference:\n  servers:\n{}",
                servers(PATTERN_BUDGET / size / 2)
            ),
        )
        .expect("within the budget");
    }

    #[test]
    fn overrides_merge_and_unknown_keys_are_named() {
        let policy = Policy::with_overrides(
            "p.yaml",
            "rules:\n  hpa-target-sanity: {severity: warning}\nnamespaces:\n  exclude: [kube-*]\n",
        )
        .expect("valid override");
        assert_eq!(
            policy.level("hpa-target-sanity"),
            Some(SeverityLevel::Warning)
        );
        assert_eq!(
            policy.level("metric-name-lowercase"),
            Some(SeverityLevel::Error)
        );
        assert!(!policy.namespace_in_scope(Some("kube-system")));
        assert!(policy.namespace_in_scope(Some("serving")));

        let error = Policy::with_overrides("p.yaml", "hpaBehavior:\n  scaleDownWindow: 10\n")
            .expect_err("unknown key");
        let text = error.to_string();
        assert!(text.contains("p.yaml:2:3"), "{text}");
        assert!(text.contains("scaleDownWindow"), "{text}");

        let error = Policy::with_overrides("p.yaml", "rules:\n  no-such-rule: {severity: error}\n")
            .expect_err("unknown rule");
        assert!(error.to_string().contains("no-such-rule"), "{error}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("kube-*", "kube-system"));
        assert!(glob_match("*-prod", "team-a-prod"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b", "ab-c"));
        assert!(glob_match("exact", "exact"));
    }
}
