//! A stand-in kube-apiserver for `infergate audit`: discovery documents,
//! paged lists (`limit`/`continue`) with label selectors, a plain-text 404
//! for a group it does not serve (as the real one answers for a CRD that
//! is not installed), and server-side apply, list and delete of the
//! objects it holds (PolicyReports). Shared by tests/audit.rs and
//! benches/audit.rs.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// A resource the stand-in knows: (apiVersion, kind, plural, namespaced).
pub type Resource = (&'static str, &'static str, &'static str, bool);

pub const RESOURCES: &[Resource] = &[
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    (
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
        "leaderworkersets",
        true,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    ("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", true),
    (
        "monitoring.googleapis.com/v1",
        "PodMonitoring",
        "podmonitorings",
        true,
    ),
    (
        "monitoring.googleapis.com/v1",
        "ClusterPodMonitoring",
        "clusterpodmonitorings",
        false,
    ),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "PodMonitor",
        "podmonitors",
        true,
    ),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Node", "nodes", false),
    ("v1", "Namespace", "namespaces", false),
    (
        "wgpolicyk8s.io/v1alpha2",
        "PolicyReport",
        "policyreports",
        true,
    ),
    (
        "wgpolicyk8s.io/v1alpha2",
        "ClusterPolicyReport",
        "clusterpolicyreports",
        false,
    ),
];

/// What the stand-in holds and what it was asked.
#[derive(Default)]
pub struct Store {
    pub objects: Vec<Value>,
    /// Group versions answered with a 404 (their CRDs "not installed").
    pub unserved: BTreeSet<String>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    /// Field managers of the applies.
    pub field_managers: Vec<String>,
    /// Answer every list with the same continue token (a broken server).
    pub endless: bool,
    /// Answer lists with continue tokens that cycle A, B, A… (a broken
    /// server that never repeats a token twice in a row).
    pub cycling: bool,
}

pub type Shared = Arc<Mutex<Store>>;

pub fn store(objects: Vec<Value>, unserved: &[&str]) -> Shared {
    Arc::new(Mutex::new(Store {
        objects,
        unserved: unserved.iter().map(|name| name.to_string()).collect(),
        ..Store::default()
    }))
}

fn resource_of(api_version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|(version, _, name, _)| *version == api_version && *name == plural)
}

fn not_found() -> axum::response::Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

fn json_response(status: u16, body: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

/// `key=value,key=value` against an object's labels.
fn matches_selector(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|selector| !selector.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let Some((key, value)) = term.split_once('=') else {
            return false;
        };
        object
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
            == Some(value)
    })
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a resource path: (apiVersion, namespace, plural, name).
fn parse_path(path: &str) -> Option<(String, Option<String>, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    match rest {
        [] => Some((api_version, None, String::new(), None)),
        ["namespaces", namespace, plural] => Some((
            api_version,
            Some(namespace.to_string()),
            plural.to_string(),
            None,
        )),
        ["namespaces", namespace, plural, name] => Some((
            api_version,
            Some(namespace.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        )),
        [plural] => Some((api_version, None, plural.to_string(), None)),
        [plural, name] => Some((
            api_version,
            None,
            plural.to_string(),
            Some(name.to_string()),
        )),
        _ => None,
    }
}

fn same_object(object: &Value, kind: &str, namespace: Option<&str>, name: &str) -> bool {
    object["kind"] == kind
        && object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            == namespace
        && object.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
}

fn handle(
    store: &Shared,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> axum::response::Response {
    let Ok(mut store) = store.lock() else {
        return json_response(500, json!({"message": "poisoned"}));
    };
    store.requests.push(format!("{method} {path}?{query}"));
    let Some((api_version, namespace, plural, name)) = parse_path(path) else {
        return not_found();
    };
    if store.unserved.contains(&api_version) {
        return not_found();
    }
    if plural.is_empty() {
        // Discovery: the group version's resources.
        let resources: Vec<Value> = RESOURCES
            .iter()
            .filter(|(version, ..)| *version == api_version)
            .map(|(_, kind, plural, namespaced)| {
                json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                    "verbs": ["get", "list", "create", "patch", "delete"]})
            })
            .collect();
        if resources.is_empty() {
            return not_found();
        }
        return json_response(
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version, "resources": resources}),
        );
    }
    let Some(&(_, kind, _, _)) = resource_of(&api_version, &plural) else {
        return not_found();
    };
    match (method, name) {
        ("GET", None) => {
            let selector = query_value(query, "labelSelector");
            let limit = query_value(query, "limit").and_then(|limit| limit.parse::<usize>().ok());
            let start = query_value(query, "continue")
                .and_then(|token| token.parse::<usize>().ok())
                .unwrap_or(0);
            let matching: Vec<&Value> = store
                .objects
                .iter()
                .filter(|object| object["kind"] == kind)
                .filter(|object| {
                    namespace.is_none()
                        || object
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            == namespace.as_deref()
                })
                .filter(|object| matches_selector(object, selector.as_deref()))
                .collect();
            let end = limit.map_or(matching.len(), |limit| (start + limit).min(matching.len()));
            // Items of a list carry no apiVersion and kind, as the real
            // apiserver sends them.
            let items: Vec<Value> = matching[start.min(end)..end]
                .iter()
                .map(|object| {
                    let mut item = (*object).clone();
                    if let Some(map) = item.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                    item
                })
                .collect();
            let mut metadata = json!({"resourceVersion": "1"});
            if store.endless {
                metadata["continue"] = json!("again");
            } else if store.cycling {
                let next = match query_value(query, "continue").as_deref() {
                    Some("A") => "B",
                    _ => "A",
                };
                metadata["continue"] = json!(next);
            } else if end < matching.len() {
                metadata["continue"] = json!(end.to_string());
                metadata["remainingItemCount"] = json!(matching.len() - end);
            }
            json_response(
                200,
                json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": metadata, "items": items}),
            )
        }
        ("PATCH", Some(name)) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
                return json_response(
                    400,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not JSON", "code": 400}),
                );
            };
            if let Some(manager) = query_value(query, "fieldManager") {
                store.field_managers.push(manager);
            }
            object["metadata"]["name"] = json!(name);
            if let Some(namespace) = &namespace {
                object["metadata"]["namespace"] = json!(namespace);
            }
            store
                .objects
                .retain(|held| !same_object(held, kind, namespace.as_deref(), &name));
            store.objects.push(object.clone());
            json_response(200, object)
        }
        ("DELETE", Some(name)) => {
            let before = store.objects.len();
            store
                .objects
                .retain(|held| !same_object(held, kind, namespace.as_deref(), &name));
            if store.objects.len() == before {
                return json_response(
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": format!("{plural} \"{name}\" not found"), "code": 404}),
                );
            }
            json_response(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            )
        }
        ("GET", Some(name)) => match store
            .objects
            .iter()
            .find(|held| same_object(held, kind, namespace.as_deref(), &name))
        {
            Some(object) => json_response(200, object.clone()),
            None => json_response(
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": format!("{plural} \"{name}\" not found"), "code": 404}),
            ),
        },
        _ => json_response(
            405,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "method not allowed", "code": 405}),
        ),
    }
}

/// Serve the store on a local port.
pub async fn serve(store: Shared) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                handle(
                    &store,
                    method.as_str(),
                    uri.path(),
                    uri.query().unwrap_or_default(),
                    &body,
                )
            }
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A kubeconfig that points at `apiserver` over plain HTTP.
pub fn kubeconfig_for(apiserver: SocketAddr) -> tempfile::NamedTempFile {
    let kubeconfig = tempfile::NamedTempFile::new().expect("kubeconfig");
    std::fs::write(
        kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{apiserver}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\ncurrent-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .expect("write kubeconfig");
    kubeconfig
}

/// The objects of a YAML file, as the loader reads them.
pub fn objects_of(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("fixture");
    let source = infergate::input::source::SourceFile::new(path.display().to_string(), text);
    infergate::input::loader::parse_source(source)
        .objects
        .into_iter()
        .map(|object| object.value)
        .collect()
}
