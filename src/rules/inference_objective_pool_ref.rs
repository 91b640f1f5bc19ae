use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::inference_pool;
use crate::rules::pool_reference::{self, PoolLookup};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the `poolRef` of the Inference Extension's per-model objects,
    /// InferenceObjective (`inference.networking.x-k8s.io/v1alpha2`, and
    /// llm-d's `llm-d.ai/v1alpha2`), InferenceModelRewrite and the older
    /// InferenceModel: the pool it names must exist in the group the
    /// reference means. An omitted `group` is not "whichever pool": it
    /// defaults to `inference.networking.k8s.io` (the v1 pool) for
    /// InferenceObjective and InferenceModelRewrite, and to
    /// `inference.networking.x-k8s.io` (the v1alpha2 pool) for
    /// InferenceModel, each CRD's default. The pools are those of the input
    /// beside the object (or, in the webhook, the cluster's); an object
    /// whose pools are installed elsewhere is not checked offline.
    ///
    /// ## Why is this bad?
    /// The endpoint picker applies an objective (its priority, a model
    /// rewrite, a criticality) only to requests of the pool it references.
    /// A poolRef that resolves to no pool is silently ignored: requests are
    /// served, but with the default priority and no rewrite, so the
    /// shedding or routing the object was written for never happens.
    ///
    /// ## Example
    /// ```yaml
    /// kind: InferencePool
    /// apiVersion: inference.networking.x-k8s.io/v1alpha2
    /// metadata: {name: llama}
    /// ---
    /// kind: InferenceObjective
    /// spec:
    ///   poolRef: {name: llama}   # group defaults to inference.networking.k8s.io
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   poolRef: {group: inference.networking.x-k8s.io, name: llama}
    /// ```
    ///
    /// ## Fix
    /// When the input holds a pool of that name in the other group, sets
    /// `poolRef.group` to it (safe: the reference then names the pool that
    /// exists). Otherwise none.
    pub struct InferenceObjectivePoolRef {
        id: "inference-objective-pool-ref",
        severity: Error,
        summary: "An InferenceObjective's (or InferenceModel's) poolRef must name an InferencePool that exists, in the group it defaults to.",
        fixable: true,
    }
}

impl Rule for InferenceObjectivePoolRef {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let Some(reference) =
            inference_pool::pool_ref(object.kind(), object.group(), &object.value)
        else {
            return;
        };
        let (name, group) = (reference.name, reference.group);
        let stated = reference.stated.then_some(group);
        let consequence = "its settings never apply";
        match pool_reference::resolve(cx, object, group, name) {
            PoolLookup::Found | PoolLookup::Unknown => {}
            PoolLookup::OtherGroup(pool) => {
                let pool_group = pool.group();
                let written = match stated {
                    Some(group) => format!("names group {group}"),
                    None => format!("defaults to group {group}"),
                };
                let at = if stated.is_some() {
                    "/spec/poolRef/group"
                } else {
                    "/spec/poolRef"
                };
                let fix = op::add("/spec/poolRef/group", serde_json::json!(pool_group)).map(
                    |operation| {
                        Fix::safe(format!("set poolRef.group: {pool_group}"), vec![operation])
                    },
                );
                sink.report(
                    at,
                    format!(
                        "poolRef `{name}` {written}, but that pool is {}: {consequence}",
                        pool.id.api_version
                    ),
                )
                .short(format!("poolRef group should be {pool_group}"))
                .help(format!("set `poolRef.group: {pool_group}`"))
                .maybe_fix(fix);
            }
            PoolLookup::Missing(names) => {
                sink.report(
                    "/spec/poolRef/name",
                    format!("no InferencePool `{name}` in the namespace: {consequence}"),
                )
                .short(format!("no InferencePool `{name}`"))
                .help(format!(
                    "name an existing pool{}",
                    pool_reference::beside(&names)
                ));
            }
        }
    }
}
