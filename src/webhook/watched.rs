//! Watch-backed copies of the cluster's autoscalers (HPAs, KEDA
//! ScaledObjects), the context of every workload review.
//!
//! A list per review is correct but slow: a consistent list of a kind that
//! rarely changes waits for the apiserver's watch cache to confirm it is
//! current (a progress request every 100 ms), 25-50 ms a review on the e2e
//! control plane. A cached list is fast but wrong for seconds after a create
//! or a delete, and a denial can rest on it. A watch is both: the copy
//! trails the cluster by the delivery of one event. Until a kind's watch has
//! listed once, and while it is failing (RBAC without `watch`, the CRD not
//! installed), [`Watched::namespace`] answers `None` and the caller lists.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::ResourceExt as _;
use serde_json::{json, Value};

/// One watched kind: its store and whether the store is current.
pub struct Watched {
    api_version: &'static str,
    kind: &'static str,
    store: Store<DynamicObject>,
    current: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watched {
    /// Start watching `kind` in every namespace. The task runs until the
    /// server stops; errors back off and retry (kube-runtime's default).
    pub fn start(
        client: kube::Client,
        (api_version, kind, plural): (&'static str, &'static str, &'static str),
    ) -> Self {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: kube::Api<DynamicObject> = kube::Api::all_with(client, &resource);
        let writer = reflector::store::Writer::new(resource);
        let store = writer.as_reader();
        let current = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&current);
        let events = watcher(api, watcher::Config::default().any_semantic())
            // Only what review context reads is kept: managed fields and
            // status are most of an object's size.
            .modify(|object: &mut DynamicObject| {
                object.managed_fields_mut().clear();
                if let Some(fields) = object.data.as_object_mut() {
                    fields.remove("status");
                }
            })
            .default_backoff();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(reflector::reflector(writer, events));
            while let Some(event) = events.next().await {
                match event {
                    // A (re)list in progress: the store keeps the previous
                    // list until InitDone swaps the new one in.
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    // A complete list, or an event of a watch resumed from
                    // the last resourceVersion it saw: nothing was missed.
                    Ok(_) => flag.store(true, Ordering::Release),
                    // A failed list or watch: until the watcher has
                    // recovered, the store may miss changes.
                    Err(_) => flag.store(false, Ordering::Release),
                }
            }
        });
        Watched {
            api_version,
            kind,
            store,
            current,
            task,
        }
    }

    /// The watched objects of `namespace`, as the list of the kind would
    /// give them (with apiVersion and kind), or `None` while the watch is
    /// not current.
    pub fn namespace(&self, namespace: &str) -> Option<Vec<Value>> {
        if !self.current.load(Ordering::Acquire) {
            return None;
        }
        let objects = self
            .store
            .state_filter(|object| object.namespace().as_deref() == Some(namespace));
        Some(
            objects
                .iter()
                .filter_map(|object| {
                    let mut value = serde_json::to_value(object.as_ref()).ok()?;
                    value["apiVersion"] = json!(self.api_version);
                    value["kind"] = json!(self.kind);
                    Some(value)
                })
                .collect(),
        )
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}
