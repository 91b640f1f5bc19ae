//! How a reference to an InferencePool (an HTTPRoute backendRef, an
//! InferenceObjective's poolRef) resolves against the input, or the
//! cluster in the webhook. Shared by the rules that check such references.

use crate::engine::Context;
use crate::input::object::Object;
use crate::k8s::inference_pool;

/// What a reference to pool `name` of API group `group` finds.
pub enum PoolLookup<'a> {
    /// A pool of that name and group.
    Found,
    /// A pool of that name, but of the other API group: the reference
    /// names a resource that does not exist.
    OtherGroup(&'a Object),
    /// No pool of that name where there are pools (their names), or the
    /// cluster said it has none (no names).
    Missing(Vec<String>),
    /// The input has no pool beside the reference: installed elsewhere.
    Unknown,
}

pub fn resolve<'a>(cx: &Context<'a>, near: &Object, group: &str, name: &str) -> PoolLookup<'a> {
    let pools: Vec<&'a Object> = cx
        .of_kind(near, &["InferencePool"])
        .map(|(_, pool)| pool)
        .filter(|pool| inference_pool::is_pool(pool) && cx.paired(near, pool))
        .collect();
    if pools
        .iter()
        .any(|pool| pool.name() == Some(name) && pool.group() == group)
    {
        return PoolLookup::Found;
    }
    if let Some(pool) = pools.iter().find(|pool| pool.name() == Some(name)) {
        return PoolLookup::OtherGroup(pool);
    }
    if cx
        .facts
        .is_missing("InferencePool", cx.namespace_of(near), name)
    {
        return PoolLookup::Missing(Vec::new());
    }
    if pools.is_empty() {
        return PoolLookup::Unknown;
    }
    let mut names: Vec<String> = pools
        .iter()
        .filter_map(|pool| pool.name().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    PoolLookup::Missing(names)
}

/// "the pools beside it are a, b" for a help text; empty without names.
pub fn beside(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (pools beside it: {})", names.join(", "))
    }
}
