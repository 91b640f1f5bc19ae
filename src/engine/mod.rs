//! The rule engine: objects, policy and cluster facts in; findings out.
//!
//! Pure and synchronous. The linter and the webhook are adapters that build
//! the input and present the output.
//!
//! The engine layer imports `input`, `policy`, `k8s` and the rule registry
//! (`rules`), which imports it back: a registry and its engine.

pub mod batches;
pub mod budget;
pub mod finding;
pub mod pools;
pub mod schema;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::engine::finding::{Finding, Fix, Severity};
use crate::input::embedded::{self, Embedded};
use crate::input::loader::{Document, Loaded, ProblemKind};
use crate::input::nesting::MAX_ALIAS_NODES;
use crate::input::object::{Object, PositionMap};
use crate::input::source::{Location, SourceFile};
use crate::k8s::autoscaler;
use crate::k8s::monitor;
use crate::k8s::selection::PodLabels;
use crate::k8s::workload::{self, InferenceReason};
use crate::policy::Policy;
use crate::rules;

/// The annotation that suppresses rules on one object.
pub const IGNORE_ANNOTATION: &str = "infergate.dev/ignore";

/// What is known of the cluster. Empty offline; the webhook fills in the
/// namespace of the admission request.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// The namespace objects without `metadata.namespace` will land in.
    pub namespace: Option<String>,
    /// Objects the cluster was asked for and did not have:
    /// (kind, namespace, name). Those that it had are added to the input
    /// as context by the caller.
    pub missing: Vec<(String, String, String)>,
    /// Accelerator pools read from the cluster's Nodes.
    pub pools: Vec<crate::policy::AcceleratorPool>,
}

impl ClusterFacts {
    /// Whether the cluster was asked for this object and had none.
    pub fn is_missing(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        self.missing
            .iter()
            .any(|(missing_kind, missing_namespace, missing_name)| {
                missing_kind == kind
                    && missing_name == name
                    && namespace.is_none_or(|namespace| namespace == missing_namespace)
            })
    }
}

/// Objects by name, so that cross-resource rules can find their peers.
#[derive(Debug, Default)]
pub struct Index {
    /// Every map below is keyed by the application scope first
    /// ([`crate::input::source::SourceFile::scope`]): rules pair objects of
    /// one scope only, and the same names repeat across scopes (an
    /// environment directory per cluster), so a lookup meets only its own.
    by_name: Scoped<String>,
    /// Why each object is an inference workload, computed once: several
    /// rules ask, some for every pair of objects.
    inference: Vec<Option<InferenceReason>>,
    /// The YAML documents embedded in each object (ConfigMap data).
    embedded: Vec<Vec<Embedded>>,
    /// Autoscalers (HPAs, ScaledObjects) by the name of the workload they
    /// scale, so that a workload finds its own without a scan.
    autoscalers_by_target: Scoped<String>,
    /// Objects by kind, in input order.
    by_kind: Scoped<String>,
    /// Workloads by the labels of their pods, (key, value), `None` for a
    /// label whose value is set at run time: a monitor's selector finds its
    /// candidate workloads without comparing itself with every one.
    workloads_by_label: Scoped<(String, Option<String>)>,
    /// Workloads by the directory of their file.
    workloads_by_directory: HashMap<String, Vec<usize>>,
    /// For each exporter of the policy (`externalMetrics.exporters`, in
    /// order), the PodMonitorings that look like its monitor.
    exporter_monitors: Vec<Scoped<()>>,
    /// PodMonitorings by the series they already rename to lowercase.
    lowercase_renames: Scoped<String>,
    /// Candidates the lookups below have handed to rules: linear in the
    /// input when every rule asks the index rather than scanning (a test
    /// holds it to that; see [`Outcome::candidates`]).
    candidates: AtomicUsize,
}

/// Bundle indices by application scope, then by a key: a lookup borrows
/// the object's scope and its key, allocating nothing.
#[derive(Debug)]
struct Scoped<K>(HashMap<String, HashMap<K, Vec<usize>>>);

impl<K> Default for Scoped<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq> Scoped<K> {
    /// Add `index` under the scope of `object` and `key`, once.
    fn push(&mut self, object: &Object, key: K, index: usize) {
        let entry = self
            .0
            .entry(object.source.scope.clone())
            .or_default()
            .entry(key)
            .or_default();
        if entry.last() != Some(&index) {
            entry.push(index);
        }
    }

    /// The indices under the scope of `near` and `key`.
    fn get<Q>(&self, near: &Object, key: &Q) -> &[usize]
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0
            .get(near.source.scope.as_str())
            .and_then(|keyed| keyed.get(key))
            .map_or(&[], Vec::as_slice)
    }

    /// Every index, of every scope and key.
    fn all(&self) -> impl Iterator<Item = (&K, usize)> + '_ {
        self.0
            .values()
            .flat_map(|keyed| keyed.iter())
            .flat_map(|(key, indices)| indices.iter().map(move |index| (key, *index)))
    }
}

impl Index {
    pub fn new(objects: &[Object], policy: &Policy) -> Self {
        let mut by_name: Scoped<String> = Scoped::default();
        for (index, object) in objects.iter().enumerate() {
            if let Some(name) = object.name() {
                by_name.push(object, name.to_string(), index);
            }
        }
        let reason = |object| workload::inference_reason(object, policy);
        let inference = if in_parallel(objects.len()) {
            objects.par_iter().map(reason).collect()
        } else {
            objects.iter().map(reason).collect()
        };
        // The YAML embedded in a file's objects draws on what the file's own
        // aliases left of the input's budget, object after object (so the
        // same object is refused whatever the thread count).
        let mut alias_budgets: HashMap<*const SourceFile, Cell<usize>> = HashMap::new();
        let embedded = objects
            .iter()
            .map(|object| {
                if !embedded::may_embed(object) {
                    return Vec::new();
                }
                let budget = alias_budgets
                    .entry(Arc::as_ptr(&object.source))
                    .or_insert_with(|| {
                        Cell::new(MAX_ALIAS_NODES.saturating_sub(object.source.aliased_nodes()))
                    });
                embedded::of(object, budget)
            })
            .collect();
        let mut autoscalers_by_target: Scoped<String> = Scoped::default();
        for (index, object) in objects.iter().enumerate() {
            if let Some(target) = autoscaler::scale_target(object) {
                autoscalers_by_target.push(object, target.name.to_string(), index);
            }
        }
        let mut by_kind: Scoped<String> = Scoped::default();
        let mut workloads_by_label: Scoped<(String, Option<String>)> = Scoped::default();
        let mut workloads_by_directory: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            by_kind.push(object, object.kind().to_string(), index);
            if !workload::is_workload_kind(object.kind()) {
                continue;
            }
            workloads_by_directory
                .entry(directory_of(object))
                .or_default()
                .push(index);
            for template in workload::pod_templates(object) {
                for (key, value) in PodLabels::of(object, &template, policy).pairs() {
                    workloads_by_label.push(
                        object,
                        (key.to_string(), value.map(str::to_string)),
                        index,
                    );
                }
            }
        }
        let mut monitors: Vec<usize> = by_kind
            .all()
            .filter(|(kind, _)| monitor::POD_MONITORING_KINDS.contains(&kind.as_str()))
            .map(|(_, index)| index)
            .collect();
        monitors.sort_unstable();
        let exporter_monitors = policy
            .external_metrics
            .exporters
            .iter()
            .map(|exporter| {
                let mut found: Scoped<()> = Scoped::default();
                for index in &monitors {
                    if let Some(object) = objects
                        .get(*index)
                        .filter(|object| monitor::looks_like(object, &exporter.pod_monitoring_hint))
                    {
                        found.push(object, (), *index);
                    }
                }
                found
            })
            .collect();
        let mut lowercase_renames: Scoped<String> = Scoped::default();
        for index in &monitors {
            let Some(object) = objects.get(*index) else {
                continue;
            };
            for series in monitor::lowercase_renames(object) {
                lowercase_renames.push(object, series.to_string(), *index);
            }
        }
        Self {
            by_name,
            inference,
            embedded,
            autoscalers_by_target,
            by_kind,
            workloads_by_label,
            workloads_by_directory,
            exporter_monitors,
            lowercase_renames,
            candidates: AtomicUsize::new(0),
        }
    }
}

/// Inputs of fewer objects than this are checked on the calling thread. A
/// webhook review holds a handful: handing them to rayon's pool and
/// waiting for it cost more than the checks (thread wake-ups were a
/// quarter of the webhook's CPU, benches/webhook_throughput).
const PARALLEL_FROM: usize = 64;

fn in_parallel(items: usize) -> bool {
    items >= PARALLEL_FROM
}

/// What a rule sees besides the object it checks.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub objects: &'a [Object],
    /// YAML documents that are not Kubernetes objects (Helm values,
    /// prometheus-adapter's configuration file).
    pub documents: &'a [Document],
    pub index: &'a Index,
    pub facts: &'a ClusterFacts,
}

impl<'a> Context<'a> {
    /// Counts a candidate a lookup hands out.
    fn counted<T>(&self, item: T) -> T {
        self.index.candidates.fetch_add(1, Ordering::Relaxed);
        item
    }

    /// The object at a bundle index, counted as a candidate handed out.
    fn handed_out(&self, index: usize) -> Option<(usize, &'a Object)> {
        self.objects
            .get(index)
            .map(|object| self.counted((index, object)))
    }

    /// The namespace an object lives in: its own, or the one the cluster
    /// facts give. `None` offline for objects without one.
    pub fn namespace_of<'o>(&'o self, object: &'o Object) -> Option<&'o str> {
        object.namespace().or(self.facts.namespace.as_deref())
    }

    /// Objects with this name (any kind) in the scope of `near`, with their
    /// bundle indices.
    pub fn named(
        &self,
        near: &Object,
        name: &str,
    ) -> impl Iterator<Item = (usize, &'a Object)> + '_ {
        self.index
            .by_name
            .get(near, name)
            .iter()
            .filter_map(move |index| self.handed_out(*index))
    }

    /// Objects of one of these kinds in the scope of `near`, with their
    /// bundle indices, in input order.
    pub fn of_kind(
        &self,
        near: &Object,
        kinds: &[&str],
    ) -> impl Iterator<Item = (usize, &'a Object)> + '_ {
        let mut indices: Vec<usize> = kinds
            .iter()
            .flat_map(|kind| self.index.by_kind.get(near, *kind))
            .copied()
            .collect();
        indices.sort_unstable();
        indices
            .into_iter()
            .filter_map(move |index| self.handed_out(index))
    }

    /// The PodMonitorings that may scrape the exporter of `series`: those
    /// that look like the monitor of an exporter whose metrics match it
    /// (the policy's `externalMetrics.exporters` hints) and those that
    /// already rename it to lowercase, in input order.
    pub fn exporter_monitors_of(
        &self,
        near: &Object,
        series: &str,
    ) -> impl Iterator<Item = (usize, &'a Object)> + '_ {
        let mut indices: Vec<usize> = self
            .policy
            .external_metrics
            .exporters
            .iter()
            .zip(&self.index.exporter_monitors)
            .filter(|(exporter, _)| exporter.metrics.is_match(series))
            .flat_map(|(_, monitors)| monitors.get(near, &()))
            .chain(self.index.lowercase_renames.get(near, series))
            .copied()
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .filter_map(move |index| self.handed_out(index))
    }

    /// The workloads whose files are in the same directory as this object's.
    pub fn workloads_beside(
        &self,
        object: &Object,
    ) -> impl Iterator<Item = (usize, &'a Object)> + '_ {
        self.index
            .workloads_by_directory
            .get(&directory_of(object))
            .into_iter()
            .flatten()
            .filter_map(move |index| self.handed_out(*index))
    }

    /// The workloads (Deployments, StatefulSets, LeaderWorkerSets) a label
    /// selector may select: those whose pods carry the first of its
    /// `matchLabels` (or a controller label of that key set at run time);
    /// every workload when it has no `matchLabels`. A superset: the caller
    /// still asks [`crate::k8s::selection::selects`].
    pub fn workloads_selectable_by(
        &self,
        near: &Object,
        selector: &Value,
    ) -> impl Iterator<Item = (usize, &'a Object)> + '_ {
        let first = selector
            .get("matchLabels")
            .and_then(Value::as_object)
            .and_then(|labels| labels.iter().next())
            .and_then(|(key, value)| Some((key.clone(), value.as_str()?.to_string())));
        let indices: Vec<usize> = match first {
            Some((key, value)) => {
                let mut found: Vec<usize> = [Some(value), None]
                    .into_iter()
                    .flat_map(|value| {
                        self.index
                            .workloads_by_label
                            .get(near, &(key.clone(), value))
                    })
                    .copied()
                    .collect();
                found.sort_unstable();
                found.dedup();
                found
            }
            None => self
                .of_kind(near, &["Deployment", "StatefulSet", "LeaderWorkerSet"])
                .map(|(index, _)| index)
                .collect(),
        };
        indices
            .into_iter()
            .filter_map(move |index| self.handed_out(index))
    }

    /// Whether two objects belong to one application, so that a rule may
    /// pair them (an HPA and its target, a monitor and its pods): they come
    /// from the same scope (see [`crate::input::source::SourceFile::scope`]) and
    /// their namespaces may be the same one (equal when both state one).
    /// Unrelated directories linted together are never paired, even when
    /// they share a namespace name (`default`, a `replaced-by-kustomize`
    /// stand-in).
    pub fn paired(&self, a: &Object, b: &Object) -> bool {
        let namespaces_agree = match (self.namespace_of(a), self.namespace_of(b)) {
            (Some(left), Some(right)) => left == right,
            _ => true,
        };
        namespaces_agree && self.same_scope(a, b)
    }

    /// Whether two paired objects are applied together, so that both exist
    /// at once: the same file, or a scope whose files are applied together
    /// (a kustomization, one stream). Rules about two objects conflicting
    /// use this rather than [`Self::paired`].
    pub fn applied_together(&self, a: &Object, b: &Object) -> bool {
        self.paired(a, b)
            && (Arc::ptr_eq(&a.source, &b.source) || a.source.scope_is_applied_together())
    }

    /// Whether two objects come from the same file or the same scope.
    pub fn same_scope(&self, a: &Object, b: &Object) -> bool {
        Arc::ptr_eq(&a.source, &b.source) || a.source.scope == b.source.scope
    }

    /// The workload an autoscaler's `scaleTargetRef` names (an HPA's, or a
    /// ScaledObject's with KEDA's default kind), if it is in the input with
    /// that kind and a compatible namespace.
    pub fn hpa_target(&self, hpa: &Object) -> Option<&'a Object> {
        let reference = autoscaler::scale_target(hpa)?;
        self.named(hpa, reference.name)
            .map(|(_, object)| object)
            .find(|object| object.kind() == reference.kind && self.paired(hpa, object))
    }

    /// The autoscalers of the input (HPAs, ScaledObjects) that scale this
    /// workload: their reference names its kind and name, and they are
    /// paired with it. KEDA's own HPA of a ScaledObject is left out.
    pub fn autoscalers_of<'o>(
        &'o self,
        workload: &'o Object,
    ) -> impl Iterator<Item = (usize, &'a Object)> + 'o {
        workload
            .name()
            .map(|name| self.index.autoscalers_by_target.get(workload, name))
            .unwrap_or_default()
            .iter()
            .filter_map(move |index| self.handed_out(*index))
            .filter(move |(_, autoscaler)| {
                !autoscaler::is_keda_owned(autoscaler)
                    && autoscaler::scale_target(autoscaler)
                        .is_some_and(|target| target.kind == workload.kind())
                    && self.paired(autoscaler, workload)
            })
    }

    /// The autoscalers of the input that scale the same workload as this
    /// one (by kind and name), paired with it, itself left out.
    pub fn fellow_autoscalers<'o>(
        &'o self,
        autoscaler: &'o Object,
    ) -> impl Iterator<Item = (usize, &'a Object)> + 'o {
        let target = autoscaler::scale_target(autoscaler);
        target
            .as_ref()
            .map(|target| {
                self.index
                    .autoscalers_by_target
                    .get(autoscaler, target.name)
            })
            .unwrap_or_default()
            .iter()
            .filter_map(move |index| self.handed_out(*index))
            .filter(move |(_, other)| {
                !std::ptr::eq(*other, autoscaler)
                    && !autoscaler::is_keda_owned(other)
                    && autoscaler::scale_target(other)
                        .is_some_and(|theirs| Some(theirs.kind) == target.as_ref().map(|t| t.kind))
                    && self.paired(other, autoscaler)
            })
    }

    /// The position of an object in the input, `None` for one from
    /// elsewhere.
    pub fn position(&self, object: &Object) -> Option<usize> {
        self.index_of(object)
    }

    /// The YAML documents embedded in an object of the input.
    pub fn embedded(&self, object: &Object) -> &'a [Embedded] {
        self.index_of(object)
            .and_then(|index| self.index.embedded.get(index))
            .map_or(&[], Vec::as_slice)
    }

    pub fn inference_reason(&self, object: &Object) -> Option<InferenceReason> {
        match self.index_of(object) {
            Some(index) => self.index.inference.get(index).cloned().flatten(),
            None => workload::inference_reason(object, self.policy),
        }
    }

    /// The position of an object of this input in `objects`, found from its
    /// address (no search); `None` for an object from elsewhere.
    fn index_of(&self, object: &Object) -> Option<usize> {
        let size = std::mem::size_of::<Object>();
        let base = self.objects.as_ptr() as usize;
        let address = object as *const Object as usize;
        let offset = address.checked_sub(base)?;
        if size == 0 || offset % size != 0 {
            return None;
        }
        let index = offset / size;
        self.objects
            .get(index)
            .filter(|candidate| std::ptr::eq(*candidate, object))
            .map(|_| index)
    }

    /// Whether an HPA is in scope of the inference rules: its target is an
    /// inference workload, or (when the target is not in the input) it
    /// scales on an inference metric.
    pub fn is_inference_hpa(&self, hpa: &Object) -> bool {
        if !autoscaler::is_autoscaler(hpa) || autoscaler::is_keda_owned(hpa) {
            return false;
        }
        match self.hpa_target(hpa) {
            Some(target) => self.inference_reason(target).is_some(),
            None => crate::k8s::metrics::hpa_metrics(hpa).iter().any(|metric| {
                metric
                    .name
                    .is_some_and(|name| crate::k8s::metrics::classify(name, self.policy).is_some())
            }),
        }
    }
}

/// The directory of an object's file (its name up to the last `/`).
pub fn directory_of(object: &Object) -> String {
    std::path::Path::new(&object.source.name)
        .parent()
        .map(|parent| parent.display().to_string())
        .unwrap_or_default()
}

/// What a rule reports before the engine places it.
#[derive(Debug)]
pub struct Report {
    pointer: String,
    message: String,
    short: Option<String>,
    help: Option<String>,
    fix: Option<Fix>,
    severity: Option<Severity>,
    /// A part of the string value to underline: (text of the whole value,
    /// byte start, byte length).
    within: Option<(String, usize, usize)>,
    /// An exact location, for findings inside an embedded document (a
    /// ConfigMap's config.yaml) that no pointer of the object reaches.
    at: Option<Location>,
    /// Point at the key that introduces the node, not its value.
    on_key: bool,
}

impl Report {
    /// Where the finding goes in the file of a document with `positions`.
    fn location(&self, positions: &PositionMap, source: &SourceFile) -> Location {
        let mut location = positions
            .locate(&self.pointer)
            .or_else(|| positions.locate(""))
            .unwrap_or_default();
        if let Some((value, start, len)) = &self.within {
            location = narrow(source, location, value, *start, *len);
        }
        if let Some(exact) = self.at {
            location = exact;
        }
        if self.on_key {
            if let Some(key) = positions.locate_key(&self.pointer) {
                location = key;
            }
        }
        location
    }

    /// Place the finding on the node's key (an unknown field's name).
    pub fn on_key(&mut self) -> &mut Self {
        self.on_key = true;
        self
    }

    /// Place the finding at an exact location of the file.
    pub fn at(&mut self, location: Location) -> &mut Self {
        self.at = Some(location);
        self
    }

    /// Underline only `start..start + len` (bytes) of the string `value`
    /// found at the pointer, when the source writes it on one line.
    pub fn within(&mut self, value: &str, start: usize, len: usize) -> &mut Self {
        self.within = Some((value.to_string(), start, len));
        self
    }

    /// The finding in at most 120 characters, advice included, for an
    /// admission warning (when the message does not fit there).
    pub fn short(&mut self, short: impl Into<String>) -> &mut Self {
        self.short = Some(short.into());
        self
    }

    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }

    pub fn fix(&mut self, fix: Fix) -> &mut Self {
        self.fix = Some(fix);
        self
    }

    pub fn maybe_fix(&mut self, fix: Option<Fix>) -> &mut Self {
        self.fix = fix;
        self
    }

    /// A severity other than the rule's default for this one finding.
    pub fn severity(&mut self, severity: Severity) -> &mut Self {
        self.severity = Some(severity);
        self
    }
}

/// Where a rule puts its reports.
#[derive(Debug, Default)]
pub struct Sink {
    reports: Vec<Report>,
}

impl Sink {
    pub fn report(
        &mut self,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Report {
        self.reports.push(Report {
            pointer: pointer.into(),
            message: message.into(),
            short: None,
            help: None,
            fix: None,
            severity: None,
            within: None,
            at: None,
            on_key: false,
        });
        let last = self.reports.len() - 1;
        &mut self.reports[last]
    }
}

/// Counts over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub objects: usize,
    /// YAML documents that are not Kubernetes objects (no apiVersion/kind).
    pub skipped: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub suppressed: usize,
}

impl Summary {
    /// Add the counts of another part of the input (a batch of
    /// applications checked apart).
    pub fn add(&mut self, other: &Summary) {
        self.files += other.files;
        self.objects += other.objects;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.warnings += other.warnings;
        self.infos += other.infos;
        self.suppressed += other.suppressed;
    }

    /// Count the findings by severity, the suppressed apart.
    fn tally(&mut self, findings: &[Finding]) {
        self.errors = 0;
        self.warnings = 0;
        self.infos = 0;
        self.suppressed = 0;
        for finding in findings {
            if finding.suppressed.is_some() {
                self.suppressed += 1;
                continue;
            }
            match finding.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
                Severity::Info => self.infos += 1,
            }
        }
    }
}

/// The report's order: by file, then place in it, rule and message.
fn sort_for_report(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.file(), a.location.offset, a.rule, &a.message).cmp(&(
            b.file(),
            b.location.offset,
            b.rule,
            &b.message,
        ))
    });
}

/// One finding per root cause: findings on one object whose fixes are the
/// same patch (a misplaced `averageValue` is both a field schema-strict
/// does not know and the value hpa-target-sanity misses) are one mistake
/// with one fix, reported once: the finding at the node the fix moves
/// (where the mistake is written), by the rule that knows what the field
/// means rather than schema-strict, else the first.
fn one_finding_per_fix(findings: &mut Vec<Finding>) {
    let patch_of = |finding: &Finding| {
        let fix = finding.fix.as_ref()?;
        if fix.patch.0.is_empty() || !fix.related.is_empty() {
            return None;
        }
        Some((
            finding.object_index?,
            serde_json::to_string(&fix.patch).ok()?,
        ))
    };
    let at_moved_node = |finding: &Finding| {
        finding.fix.as_ref().is_some_and(|fix| {
            fix.patch.0.iter().any(|operation| {
                matches!(operation, json_patch::PatchOperation::Move(moved) if moved.from == finding.pointer.as_str())
            })
        })
    };
    // Where the mistake is written first; then the rule that knows what
    // the field means over schema-strict, which only knows it is unknown.
    let schema = crate::rules::SCHEMA_STRICT_PROBLEM.id;
    let better = |finding: &Finding, kept: &Finding| {
        (at_moved_node(finding), finding.rule != schema)
            > (at_moved_node(kept), kept.rule != schema)
    };
    let mut kept: HashMap<(usize, String), usize> = HashMap::new();
    let mut dropped = vec![false; findings.len()];
    for (position, finding) in findings.iter().enumerate() {
        let Some(key) = patch_of(finding) else {
            continue;
        };
        match kept.get(&key) {
            None => {
                kept.insert(key, position);
            }
            Some(&earlier) if better(finding, &findings[earlier]) => {
                dropped[earlier] = true;
                kept.insert(key, position);
            }
            Some(_) => dropped[position] = true,
        }
    }
    let mut position = 0;
    findings.retain(|_| {
        let keep = !dropped[position];
        position += 1;
        keep
    });
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// How many objects the index's lookups handed to rules in all: a
    /// measure of the cross-object work, which must grow linearly with
    /// the input.
    pub candidates: usize,
}

impl Outcome {
    /// Keep only the findings, files and objects of the files `keep`
    /// accepts (the files given beside those read for context), and count
    /// again.
    pub fn narrow_to(&mut self, loaded: &Loaded, keep: impl Fn(&str) -> bool) {
        self.findings.retain(|finding| keep(finding.file()));
        self.summary.files = loaded.files.iter().filter(|file| keep(&file.name)).count();
        self.summary.objects = loaded
            .objects
            .iter()
            .filter(|object| keep(&object.source.name))
            .count();
        self.summary.tally(&self.findings);
    }

    /// Suppress the findings `why` gives a reason for (a repository
    /// config's per-path ignores, which the engine does not see), and
    /// count again.
    pub fn suppress_where(&mut self, why: impl Fn(&Finding) -> Option<String>) {
        for finding in self
            .findings
            .iter_mut()
            .filter(|finding| finding.suppressed.is_none())
        {
            finding.suppressed = why(finding);
        }
        self.summary.tally(&self.findings);
    }
}

pub struct Engine {
    policy: Arc<Policy>,
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Self {
        Self { policy }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Run every enabled rule over the loaded input.
    pub fn run(&self, loaded: &Loaded, facts: &ClusterFacts) -> Outcome {
        let index = Index::new(&loaded.objects, &self.policy);
        let cx = Context {
            policy: &self.policy,
            objects: &loaded.objects,
            documents: &loaded.documents,
            index: &index,
            facts,
        };
        let check = |(object_index, object)| self.check_object(&cx, object_index, object);
        let mut findings: Vec<Finding> = if in_parallel(loaded.objects.len()) {
            loaded
                .objects
                .par_iter()
                .enumerate()
                .flat_map_iter(check)
                .collect()
        } else {
            loaded.objects.iter().enumerate().flat_map(check).collect()
        };
        let check = |document| self.check_document(&cx, document);
        if in_parallel(loaded.documents.len()) {
            findings.par_extend(loaded.documents.par_iter().flat_map_iter(check));
        } else {
            findings.extend(loaded.documents.iter().flat_map(check));
        }
        findings.extend(self.problem_findings(loaded));
        findings.extend(self.embedded_problem_findings(&cx));
        for finding in &mut findings {
            finding.inference = finding
                .object_index
                .and_then(|object_index| index.inference.get(object_index))
                .and_then(Option::as_ref)
                .map(|reason| reason.describe(&self.policy));
            self.apply_exception(&cx, finding);
        }
        sort_for_report(&mut findings);
        one_finding_per_fix(&mut findings);
        let tool_configurations = loaded
            .objects
            .iter()
            .filter(|object| self.policy.is_tool_configuration(object))
            .count();
        let mut summary = Summary {
            // Objects read from a cluster have a stand-in file each; they
            // are counted as objects, not as files.
            files: loaded.files.iter().filter(|file| !file.live).count(),
            objects: loaded.objects.len() - tool_configurations,
            skipped: loaded.documents.len() + tool_configurations,
            ..Summary::default()
        };
        summary.tally(&findings);
        let candidates = index.candidates.load(Ordering::Relaxed);
        Outcome {
            findings,
            summary,
            candidates,
        }
    }

    /// Suppress a finding the policy's `exceptions` cover, saying so; it
    /// stands before the object's own annotation.
    fn apply_exception(&self, cx: &Context<'_>, finding: &mut Finding) {
        if self.policy.exceptions.is_empty() {
            return;
        }
        let Some(object) = finding.object_index.and_then(|index| cx.objects.get(index)) else {
            return;
        };
        let exception = self.policy.exception_for(
            finding.rule,
            object.kind(),
            cx.namespace_of(object),
            object.name(),
        );
        if let Some(exception) = exception {
            finding.suppressed = Some(format!("policy exception: {}", exception.reason));
            finding.exempted = true;
        }
    }

    /// Run every enabled rule through `visit` and turn each report into a
    /// finding with `place`, which knows where the reports belong.
    fn collect(
        &self,
        visit: impl Fn(&dyn rules::Rule, &mut Sink),
        place: impl Fn(&'static rules::RuleMeta, Severity, Report) -> Finding,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for rule in rules::registry() {
            if budget::expired() {
                break;
            }
            let meta = rule.meta();
            let Some(configured) = self.policy.severity(meta.id, meta.default_severity) else {
                continue;
            };
            let mut sink = Sink::default();
            visit(*rule, &mut sink);
            for report in sink.reports {
                let severity = report.severity.unwrap_or(configured);
                findings.push(place(meta, severity, report));
            }
        }
        findings
    }

    fn check_object(&self, cx: &Context<'_>, object_index: usize, object: &Object) -> Vec<Finding> {
        if !self.policy.namespace_in_scope(cx.namespace_of(object))
            || self.policy.is_tool_configuration(object)
        {
            return Vec::new();
        }
        // The HPA KEDA generates for a ScaledObject (owned by it): what is
        // wrong with it is written in the ScaledObject and reported there.
        if autoscaler::is_hpa(object) && autoscaler::is_keda_owned(object) {
            return Vec::new();
        }
        let suppressions = parse_suppressions(object.annotation(IGNORE_ANNOTATION));
        let mut findings = self.invalid_suppressions(object, object_index, &suppressions);
        findings.extend(self.collect(
            |rule, sink| rule.check(cx, object, sink),
            |meta, severity, report| {
                let location = report.location(&object.positions, &object.source);
                Finding {
                    rule: meta.id,
                    severity,
                    message: report.message,
                    short: report.short,
                    help: report.help,
                    object: Some(object.id.clone()),
                    object_index: Some(object_index),
                    pointer: report.pointer,
                    source: object.source.clone(),
                    location,
                    fix: report.fix,
                    suppressed: suppression_for(&suppressions, meta.id),
                    inference: None,
                    exempted: false,
                }
            },
        ));
        findings
    }

    /// An `infergate.dev/ignore` entry that names no rule silences nothing:
    /// the finding it was meant for stays, so the typo is reported.
    fn invalid_suppressions(
        &self,
        object: &Object,
        object_index: usize,
        suppressions: &[(String, String)],
    ) -> Vec<Finding> {
        let meta = &rules::INVALID_SUPPRESSION;
        let Some(severity) = self.policy.severity(meta.id, meta.default_severity) else {
            return Vec::new();
        };
        let pointer = format!(
            "/metadata/annotations/{}",
            crate::input::pointer::escape(IGNORE_ANNOTATION)
        );
        unknown_suppressions(suppressions)
            .into_iter()
            .map(|(id, close)| Finding {
                rule: meta.id,
                severity,
                message: format!("`{IGNORE_ANNOTATION}` names `{id}`, which is no rule, so it suppresses nothing"),
                short: None,
                help: Some(match close {
                    Some(close) => format!("did you mean `{close}`? (`infergate rules` lists the rule ids)"),
                    None => "use a rule id as `infergate rules` lists it, or `*` for every rule".to_string(),
                }),
                object: Some(object.id.clone()),
                object_index: Some(object_index),
                location: object.locate(&pointer).unwrap_or_default(),
                pointer: pointer.clone(),
                source: object.source.clone(),
                fix: None,
                suppressed: None,
                inference: None,
                exempted: false,
            })
            .collect()
    }

    /// Rules that read documents which are not Kubernetes objects (Helm
    /// values of prometheus-adapter).
    fn check_document(&self, cx: &Context<'_>, document: &Document) -> Vec<Finding> {
        self.collect(
            |rule, sink| rule.check_document(cx, document, sink),
            |meta, severity, report| Finding {
                rule: meta.id,
                severity,
                location: report.location(&document.positions, &document.source),
                message: report.message,
                short: report.short,
                help: report.help,
                object: None,
                object_index: None,
                pointer: report.pointer,
                source: document.source.clone(),
                fix: None,
                suppressed: None,
                inference: None,
                exempted: false,
            },
        )
    }

    fn problem_findings(&self, loaded: &Loaded) -> Vec<Finding> {
        loaded
            .problems
            .iter()
            .filter_map(|problem| {
                let (meta, severity, message, help) = self.describe_problem(&problem.kind, None)?;
                Some(Finding {
                    rule: meta.id,
                    severity,
                    message,
                    short: None,
                    help: Some(help),
                    object: None,
                    object_index: None,
                    pointer: String::new(),
                    source: problem.source.clone(),
                    location: problem.location,
                    fix: None,
                    suppressed: None,
                    inference: None,
                    exempted: false,
                })
            })
            .collect()
    }

    /// Problems of the documents embedded in objects (a ConfigMap's
    /// `config.yaml` that does not parse), placed in the outer file.
    fn embedded_problem_findings(&self, cx: &Context<'_>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (object_index, object) in cx.objects.iter().enumerate() {
            if !self.policy.namespace_in_scope(cx.namespace_of(object)) {
                continue;
            }
            for embedded in cx.embedded(object) {
                for problem in &embedded.loaded.problems {
                    let Some((meta, severity, message, help)) =
                        self.describe_problem(&problem.kind, Some(&embedded.pointer))
                    else {
                        continue;
                    };
                    let location = embedded
                        .locate(problem.location)
                        .or_else(|| object.positions.locate_key(&embedded.pointer))
                        .unwrap_or_default();
                    let suppressions = parse_suppressions(object.annotation(IGNORE_ANNOTATION));
                    findings.push(Finding {
                        rule: meta.id,
                        severity,
                        message,
                        short: None,
                        help: Some(help),
                        object: Some(object.id.clone()),
                        object_index: Some(object_index),
                        pointer: embedded.pointer.clone(),
                        source: object.source.clone(),
                        location,
                        fix: None,
                        suppressed: suppression_for(&suppressions, meta.id),
                        inference: None,
                        exempted: false,
                    });
                }
            }
        }
        findings
    }

    /// The rule, severity, message and help of a loader problem, `None`
    /// when the policy turns that check off. `within` names the string
    /// that holds an embedded document.
    fn describe_problem(
        &self,
        kind: &ProblemKind,
        within: Option<&str>,
    ) -> Option<(&'static rules::RuleMeta, Severity, String, String)> {
        let place = within
            .map(|pointer| format!(" in `{}`", crate::input::pointer::display(pointer)))
            .unwrap_or_default();
        let (meta, message, help) = match kind {
            ProblemKind::InvalidYaml(message) => (
                &rules::INVALID_YAML,
                format!("invalid YAML{place}: {message}"),
                "fix the syntax at this position; the other documents and files are still linted"
                    .to_string(),
            ),
            ProblemKind::TooDeep => (
                &rules::INVALID_YAML,
                match within {
                    Some(pointer) => format!(
                        "in `{}`: {}",
                        crate::input::pointer::display(pointer),
                        crate::input::nesting::too_deep_message()
                    ),
                    None => crate::input::nesting::too_deep_message(),
                },
                format!(
                    "no Kubernetes object nests this deep; flatten the data or split it (the limit, {}, is documented in docs/limits.md)",
                    crate::input::nesting::MAX_DEPTH
                ),
            ),
            ProblemKind::TooManyAliases => (
                &rules::INVALID_YAML,
                match within {
                    Some(pointer) => format!(
                        "in `{}`: {}",
                        crate::input::pointer::display(pointer),
                        crate::input::nesting::alias_budget_message()
                    ),
                    None => crate::input::nesting::alias_budget_message(),
                },
                "the documents of this input that use aliases from here on are not read; \
                 the limit is documented in docs/limits.md"
                    .to_string(),
            ),
            ProblemKind::DuplicateKey {
                key,
                first_line,
                second_line,
                dropped,
            } => (
                &rules::INVALID_YAML,
                match dropped {
                    Some(dropped) => format!("`{key}` is written twice{place} (lines {first_line} and {second_line}): the later value wins and `{dropped}` is dropped"),
                    None => format!("`{key}` is written twice{place} (lines {first_line} and {second_line}): the later value wins and the first is dropped"),
                },
                "keep one of them: depending on the client and its version, strict field validation warns about the duplicate or rejects the object, and where it is accepted the apiserver keeps the later value; the rest is linted with the later value".to_string(),
            ),
            ProblemKind::IncompleteObject { missing } => (
                rules::SCHEMA_STRICT_PROBLEM,
                format!("this document has no `{missing}`, so the apiserver rejects it and it was not linted as an object"),
                format!("add `{missing}` (and check the other of apiVersion and kind)"),
            ),
            ProblemKind::Unread(reason) => (
                &rules::SKIPPED_INPUT,
                reason.clone(),
                "infergate reads regular UTF-8 files of at most 64 MiB, and symbolic links to files inside the directory linted (docs/limits.md)".to_string(),
            ),
            ProblemKind::HelmTemplate => (
                &rules::HELM_TEMPLATE,
                format!("this file{place} is a Helm template and was not linted"),
                "render it first: helm template RELEASE CHART -f values.yaml | infergate lint -"
                    .to_string(),
            ),
        };
        let severity = self.policy.severity(meta.id, meta.default_severity)?;
        Some((meta, severity, message, help))
    }
}

/// Narrow a scalar's location to a part of its text when the source holds
/// the text verbatim (plain, or quoted without escapes before the part).
fn narrow(
    source: &SourceFile,
    location: Location,
    value: &str,
    start: usize,
    len: usize,
) -> Location {
    let Some(prefix) = value.get(..start) else {
        return location;
    };
    let written = source.text.get(location.offset..).unwrap_or_default();
    let skip = usize::from(written.starts_with(['"', '\'']));
    let body = &written[skip..];
    if !body.starts_with(prefix)
        || !body[start..].starts_with(value.get(start..start + len).unwrap_or("\u{0}"))
    {
        return location;
    }
    let offset = location.offset + skip + start;
    let (line, column) = source.line_column_of(offset);
    Location {
        line,
        column,
        offset,
        len,
    }
}

/// Read `infergate.dev/ignore`: entries `rule` or `rule=reason`, separated
/// by commas. A comma starts a new entry only when what follows it is
/// shaped like a rule id (lowercase letters, digits and hyphens, or `*` /
/// `all`, then `=` or the end); any other text after a comma belongs to the
/// reason before it, so reasons may contain commas ("relabelled upstream,
/// see TICKET-12").
pub fn parse_suppressions(annotation: Option<&str>) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for piece in annotation.into_iter().flat_map(|text| text.split(',')) {
        let trimmed = piece.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (rule, reason) = trimmed.split_once('=').unwrap_or((trimmed, ""));
        let rule = rule.trim();
        let is_entry = is_wildcard(rule)
            || (!rule.is_empty()
                && rule
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'));
        match entries.last_mut() {
            Some((_, previous)) if !is_entry => {
                previous.push(',');
                previous.push_str(piece.trim_end());
            }
            _ => entries.push((rule.to_string(), reason.trim().to_string())),
        }
    }
    entries
}

/// `*` or `all`: every rule.
fn is_wildcard(id: &str) -> bool {
    id == "*" || id == "all"
}

/// The ids of `suppressions` that name no rule, each with the id it most
/// likely meant.
fn unknown_suppressions(suppressions: &[(String, String)]) -> Vec<(&str, Option<&'static str>)> {
    suppressions
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !is_wildcard(id) && rules::meta(id).is_none())
        .map(|id| (id, rules::closest_id(id)))
        .collect()
}

fn suppression_for(suppressions: &[(String, String)], rule: &str) -> Option<String> {
    suppressions
        .iter()
        .find(|(id, _)| id == rule || is_wildcard(id))
        .map(|(_, reason)| reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressions_with_reasons() {
        let parsed = parse_suppressions(Some(
            "hpa-target-sanity, metric-name-lowercase=relabelled upstream",
        ));
        assert_eq!(
            suppression_for(&parsed, "hpa-target-sanity"),
            Some(String::new())
        );
        assert_eq!(
            suppression_for(&parsed, "metric-name-lowercase"),
            Some("relabelled upstream".to_string())
        );
        assert_eq!(suppression_for(&parsed, "unresolved-placeholder"), None);
        assert!(suppression_for(&parse_suppressions(Some("*")), "anything").is_some());
    }

    #[test]
    fn suppression_reasons_may_hold_commas_and_typos_are_named() {
        let parsed = parse_suppressions(Some(
            "metric-name-lowercase=relabelled upstream, see TICKET-12, hpa-target-sanity,metric-name-lowercse",
        ));
        assert_eq!(
            suppression_for(&parsed, "metric-name-lowercase"),
            Some("relabelled upstream, see TICKET-12".to_string())
        );
        assert_eq!(
            suppression_for(&parsed, "hpa-target-sanity"),
            Some(String::new())
        );
        assert_eq!(
            unknown_suppressions(&parsed),
            vec![("metric-name-lowercse", Some("metric-name-lowercase"))]
        );
    }
}
