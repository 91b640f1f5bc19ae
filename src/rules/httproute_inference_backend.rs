use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::inference_pool::{self, GROUPS};
use crate::rules::pool_reference::{self, PoolLookup};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the `backendRefs` of a Gateway API HTTPRoute that send
    /// traffic to an InferencePool of the Gateway API Inference Extension:
    ///
    /// - a reference of kind `InferencePool` must name its API group:
    ///   `inference.networking.k8s.io` for a v1 pool,
    ///   `inference.networking.x-k8s.io` for a v1alpha2 one (an omitted
    ///   group is the core group, where no InferencePool exists);
    /// - the pool it names must exist: in the input when the input has
    ///   pools beside the route (or, in the webhook, in the cluster), with
    ///   the group the reference names;
    /// - a reference without `kind` means a Service: when its name is an
    ///   InferencePool of the input and no Service of that name is there,
    ///   the route was meant for the pool.
    ///
    /// References to another namespace (they need a ReferenceGrant) and
    /// routes whose pools are installed elsewhere are not checked offline.
    ///
    /// ## Why is this bad?
    /// A backendRef that resolves to nothing makes the route's
    /// `ResolvedRefs` condition false, and the gateway answers the
    /// requests it would have sent there with HTTP 500 (Gateway API
    /// specification, HTTPBackendRef). The group is the usual slip: the
    /// project moved InferencePool from `inference.networking.x-k8s.io`
    /// to `inference.networking.k8s.io` at v1, and a route written for one
    /// finds nothing of the other ("InferencePool", Gateway API Inference
    /// Extension documentation).
    ///
    /// ## Example
    /// ```yaml
    /// kind: HTTPRoute
    /// spec:
    ///   rules:
    ///     - backendRefs:
    ///         - {kind: InferencePool, name: llama}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///         - {group: inference.networking.k8s.io, kind: InferencePool, name: llama}
    /// ```
    ///
    /// ## Fix
    /// When the input holds the pool the reference means (its name), sets
    /// the reference's `group` (and `kind`) to that pool's (safe: the route
    /// then names the object that exists). Otherwise none.
    pub struct HttprouteInferenceBackend {
        id: "httproute-inference-backend",
        severity: Error,
        summary: "An HTTPRoute backendRef to an InferencePool must name its API group and kind and an existing pool.",
        fixable: true,
    }
}

/// The fix that makes a reference name `pool` by its group and kind.
fn point_at(pointer: &str, pool: &Object) -> Option<Fix> {
    let group = pool.group();
    Some(Fix::safe(
        format!("set group {group}, kind InferencePool"),
        vec![
            op::add(&format!("{pointer}/group"), json!(group))?,
            op::add(&format!("{pointer}/kind"), json!("InferencePool"))?,
        ],
    ))
}

impl Rule for HttprouteInferenceBackend {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if object.kind() != "HTTPRoute" || object.group() != "gateway.networking.k8s.io" {
            return;
        }
        let route_namespace = cx.namespace_of(object);
        for (pointer, backend) in inference_pool::route_backends(&object.value, route_namespace) {
            let text = |key: &str| backend.get(key).and_then(Value::as_str);
            let Some(name) = text("name") else {
                continue;
            };
            let group = text("group").unwrap_or("");
            match text("kind").unwrap_or("Service") {
                "InferencePool" => check_pool_ref(cx, object, &pointer, group, name, sink),
                "Service" if group.is_empty() => {
                    check_service_ref(cx, object, &pointer, name, sink)
                }
                _ => {}
            }
        }
    }
}

fn check_pool_ref(
    cx: &Context<'_>,
    route: &Object,
    pointer: &str,
    group: &str,
    name: &str,
    sink: &mut Sink,
) {
    let consequence = "the gateway answers its requests with 500";
    if !GROUPS.contains(&group) {
        let written = if group.is_empty() {
            "no group (the core group)".to_string()
        } else {
            format!("group `{group}`")
        };
        // The pool it means, by name, whatever its group.
        let pool = cx
            .of_kind(route, &["InferencePool"])
            .map(|(_, pool)| pool)
            .find(|pool| {
                inference_pool::is_pool(pool) && pool.name() == Some(name) && cx.paired(route, pool)
            });
        let at = if group.is_empty() {
            pointer.to_string()
        } else {
            format!("{pointer}/group")
        };
        sink.report(
            at,
            format!("InferencePool backendRef `{name}` has {written}, where no pool exists: {consequence}"),
        )
        .short(format!("InferencePool `{name}` needs its API group"))
        .help(format!(
            "set `group: {}` (v1 pools; `{}` for v1alpha2)",
            GROUPS[0], GROUPS[1]
        ))
        .maybe_fix(pool.and_then(|pool| point_at(pointer, pool)));
        return;
    }
    match pool_reference::resolve(cx, route, group, name) {
        PoolLookup::Found | PoolLookup::Unknown => {}
        PoolLookup::OtherGroup(pool) => {
            sink.report(
                format!("{pointer}/group"),
                format!(
                    "backendRef `{name}` names group {group}, but the pool is {}: answered with 500",
                    pool.id.api_version
                ),
            )
            .short(format!("InferencePool `{name}` is in group {}", pool.group()))
            .help(format!(
                "set the backendRef's group to {}",
                pool.group()
            ))
            .maybe_fix(point_at(pointer, pool));
        }
        PoolLookup::Missing(names) => {
            sink.report(
                format!("{pointer}/name"),
                format!("no InferencePool `{name}` in the route's namespace: {consequence}"),
            )
            .short(format!("no InferencePool `{name}`"))
            .help(format!(
                "name an existing pool{}, or create `{name}`",
                pool_reference::beside(&names)
            ));
        }
    }
}

/// A Service reference (no kind) whose name is a pool of the input and of
/// no Service there: the author meant the pool.
fn check_service_ref(cx: &Context<'_>, route: &Object, pointer: &str, name: &str, sink: &mut Sink) {
    let mut pool = None;
    for (_, candidate) in cx.named(route, name) {
        if !cx.paired(route, candidate) {
            continue;
        }
        if candidate.kind() == "Service" {
            return;
        }
        if inference_pool::is_pool(candidate) {
            pool = Some(candidate);
        }
    }
    let Some(pool) = pool else {
        return;
    };
    sink.report(
        pointer,
        format!("backendRef `{name}` without kind names a Service, which does not exist; an InferencePool has that name: the gateway answers with 500"),
    )
    .short(format!("`{name}` is an InferencePool: set group and kind"))
    .help(format!(
        "set `group: {}` and `kind: InferencePool` on the backendRef",
        pool.group()
    ))
    .maybe_fix(point_at(pointer, pool));
}
