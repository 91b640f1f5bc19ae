//! Kubernetes JSON Schemas (rules/schemas/, strict: unknown fields are
//! errors), compiled once per process and Kubernetes version.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use serde_json::{json, Value};

/// The embedded schema documents by Kubernetes minor version.
const SCHEMAS: &[(&str, &str)] = &[
    (
        "1.30",
        include_str!("../../rules/schemas/kubernetes-v1.30.json"),
    ),
    (
        "1.31",
        include_str!("../../rules/schemas/kubernetes-v1.31.json"),
    ),
    (
        "1.32",
        include_str!("../../rules/schemas/kubernetes-v1.32.json"),
    ),
    (
        "1.33",
        include_str!("../../rules/schemas/kubernetes-v1.33.json"),
    ),
    (
        "1.34",
        include_str!("../../rules/schemas/kubernetes-v1.34.json"),
    ),
    (
        "1.35",
        include_str!("../../rules/schemas/kubernetes-v1.35.json"),
    ),
    (
        "1.36",
        include_str!("../../rules/schemas/kubernetes-v1.36.json"),
    ),
    (
        "1.37",
        include_str!("../../rules/schemas/kubernetes-v1.37.json"),
    ),
];

/// The versions infergate has schemas for, oldest first.
pub fn versions() -> impl Iterator<Item = &'static str> {
    SCHEMAS.iter().map(|(version, _)| *version)
}

pub fn newest() -> &'static str {
    SCHEMAS.last().map_or("1.37", |(version, _)| *version)
}

/// Custom resources, the same for every Kubernetes version
/// (rules/schemas/custom-resources.json, from crates.io; see
/// scripts/update-crd-schemas.py).
const CUSTOM_RESOURCES: &str = include_str!("../../rules/schemas/custom-resources.json");

/// One schema document's definitions and the root definition of each kind.
pub struct Definitions {
    pub defs: Value,
    pub roots: HashMap<String, String>,
    /// For CRDs copied from a project that moves faster than infergate's
    /// copy: the repository and commit (or tag) of each kind's CRD.
    pub sources: HashMap<String, String>,
}

impl Definitions {
    fn parse(text: &str) -> Option<Self> {
        let document: Value = serde_json::from_str(text).ok()?;
        let roots = document
            .get("x-infergate-roots")
            .and_then(Value::as_object)?
            .iter()
            .filter_map(|(key, root)| Some((key.clone(), root.as_str()?.to_string())))
            .collect();
        let sources = document
            .get("x-infergate-root-sources")
            .and_then(Value::as_object)
            .map(|sources| {
                sources
                    .iter()
                    .filter_map(|(key, source)| Some((key.clone(), source.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let defs = document.get("$defs")?.clone();
        Some(Self {
            defs,
            roots,
            sources,
        })
    }
}

/// Each version's definitions, parsed the first time that version is
/// asked for: a run uses one version, and parsing all of them was a fifth
/// of a small file's cold lint.
static BUILT_IN: [OnceLock<Option<Arc<Definitions>>>; SCHEMAS.len()] =
    [const { OnceLock::new() }; SCHEMAS.len()];

/// The definitions of Kubernetes `version`, if infergate has them.
fn built_in(version: &str) -> Option<(&'static str, Arc<Definitions>)> {
    let position = SCHEMAS.iter().position(|(known, _)| *known == version)?;
    let (known, text) = SCHEMAS.get(position)?;
    let definitions = BUILT_IN
        .get(position)?
        .get_or_init(|| Definitions::parse(text).map(Arc::new))
        .clone()?;
    Some((known, definitions))
}

static CUSTOM: LazyLock<Option<Arc<Definitions>>> =
    LazyLock::new(|| Definitions::parse(CUSTOM_RESOURCES).map(Arc::new));

/// Everything schema-strict needs for one kind.
pub struct KindSchema {
    pub definitions: Arc<Definitions>,
    /// The name of the kind's definition in `definitions`.
    pub root: String,
    pub validator: jsonschema::Validator,
    /// A custom resource: its schema does not depend on the Kubernetes version.
    pub custom: bool,
    /// Where the kind's CRD was copied from, when it is one of the serving
    /// CRDs that gain fields between releases.
    pub source: Option<String>,
}

type Cache = Mutex<HashMap<(&'static str, String), Option<Arc<KindSchema>>>>;

static KINDS: LazyLock<Cache> = LazyLock::new(Default::default);

/// The schema of `apiVersion`/`kind` in Kubernetes `version` (built-in kinds)
/// or of the custom resource, compiled on first use and then shared.
pub fn kind_schema(version: &str, api_version: &str, kind: &str) -> Option<Arc<KindSchema>> {
    let key = format!("{api_version}/{kind}");
    let (document, definitions, custom) = match built_in(version) {
        Some((version, definitions)) if definitions.roots.contains_key(&key) => {
            (version, definitions, false)
        }
        _ => ("custom", CUSTOM.as_ref()?.clone(), true),
    };
    let root = definitions.roots.get(&key)?.clone();
    let mut cache = KINDS.lock().ok()?;
    if let Some(found) = cache.get(&(document, key.clone())) {
        return found.clone();
    }
    // Only the definitions the kind reaches: the custom resources share one
    // document of several hundred, and compiling all of them for each kind
    // doubled a lint of the corpus.
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/$defs/{root}"),
        "$defs": reachable(&definitions.defs, &root),
    });
    let source = definitions.sources.get(&key).cloned();
    let compiled = jsonschema::validator_for(&schema).ok().map(|validator| {
        Arc::new(KindSchema {
            definitions,
            root,
            validator,
            custom,
            source,
        })
    });
    cache.insert((document, key), compiled.clone());
    compiled
}

/// The definitions reachable from `root` through `$ref`s.
fn reachable(defs: &Value, root: &str) -> Value {
    let mut found = serde_json::Map::new();
    let mut pending = vec![root.to_string()];
    while let Some(name) = pending.pop() {
        if found.contains_key(&name) {
            continue;
        }
        let Some(definition) = defs.get(&name) else {
            continue;
        };
        collect_refs(definition, &mut pending);
        found.insert(name, definition.clone());
    }
    Value::Object(found)
}

/// The definition names of the `$ref`s in a schema node, appended.
fn collect_refs(node: &Value, names: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        if let Some(name) = reference.strip_prefix("#/$defs/") {
                            names.push(name.to_string());
                        }
                    }
                    _ => collect_refs(value, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, names)),
        _ => {}
    }
}

/// Follow `$ref`s from a schema node.
fn resolve<'a>(defs: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        let Some(name) = reference.strip_prefix("#/$defs/") else {
            return node;
        };
        match defs.get(name) {
            Some(target) => node = target,
            None => return node,
        }
    }
    node
}

/// The schema of the node at `tokens` (object keys and array indices)
/// below the root definition.
pub fn schema_at<'a>(
    definitions: &'a Definitions,
    root: &str,
    tokens: &[String],
) -> Option<&'a Value> {
    let defs = &definitions.defs;
    let mut node = resolve(defs, defs.get(root)?);
    for token in tokens {
        node = if let Some(items) = node.get("items") {
            resolve(defs, items)
        } else if let Some(property) = node.get("properties").and_then(|p| p.get(token)) {
            resolve(defs, property)
        } else {
            // a map: every key has the same schema
            resolve(
                defs,
                node.get("additionalProperties").filter(|a| a.is_object())?,
            )
        };
    }
    Some(node)
}

/// The property names a schema node allows.
pub fn allowed_fields(node: &Value) -> Vec<String> {
    node.get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

/// Where below `node` (at most `depth` levels) a field called `name`
/// exists: the dotted path to it. Exact names first, then case-insensitive.
pub fn find_field(
    definitions: &Definitions,
    node: &Value,
    name: &str,
    depth: usize,
) -> Option<String> {
    let defs = &definitions.defs;
    let mut frontier: Vec<(String, &Value)> = vec![(String::new(), node)];
    for _ in 0..depth {
        let mut next = Vec::new();
        for (path, schema) in frontier {
            let schema = resolve(defs, schema);
            let schema = schema
                .get("items")
                .map_or(schema, |items| resolve(defs, items));
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (key, child) in properties {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key == name || key.eq_ignore_ascii_case(name) {
                    return Some(child_path);
                }
                next.push((child_path, child));
            }
        }
        frontier = next;
    }
    None
}

/// The allowed name closest to a misspelt one: within a few edits (more
/// for longer names), or else sharing most of its beginning
/// (`minReplicas` for KEDA's `minReplicaCount`).
pub fn closest(allowed: &[String], name: &str) -> Option<String> {
    let name = name.to_lowercase();
    let within = 2.max(name.chars().count() / 6);
    let by_distance = allowed
        .iter()
        .map(|candidate| (edit_distance(&candidate.to_lowercase(), &name), candidate))
        .filter(|(distance, _)| *distance <= within)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.clone());
    by_distance.or_else(|| {
        allowed
            .iter()
            .map(|candidate| (common_prefix(&candidate.to_lowercase(), &name), candidate))
            .filter(|(shared, candidate)| {
                *shared >= 6
                    && *shared * 3 >= 2 * name.chars().count().min(candidate.chars().count())
            })
            .max_by_key(|(shared, _)| *shared)
            .map(|(_, candidate)| candidate.clone())
    })
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, left) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, right) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(left != *right);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_every_kind() {
        for version in versions() {
            for (api_version, kind, custom) in [
                ("apps/v1", "Deployment", false),
                ("apps/v1", "StatefulSet", false),
                ("autoscaling/v2", "HorizontalPodAutoscaler", false),
                ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", true),
                ("keda.sh/v1alpha1", "ScaledObject", true),
                ("monitoring.coreos.com/v1", "ServiceMonitor", true),
                ("monitoring.coreos.com/v1", "PodMonitor", true),
            ] {
                let schema = kind_schema(version, api_version, kind);
                assert!(
                    schema.is_some_and(|schema| schema.custom == custom),
                    "{version} {kind}"
                );
            }
        }
        assert!(kind_schema(newest(), "v1", "ConfigMap").is_none());
    }

    #[test]
    fn a_custom_resource_is_compiled_once_for_all_versions() {
        let oldest = versions().next().expect("a version");
        let first = kind_schema(oldest, "keda.sh/v1alpha1", "ScaledObject").expect("keda");
        let second = kind_schema(newest(), "keda.sh/v1alpha1", "ScaledObject").expect("keda");
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn navigation_and_suggestions() {
        let hpa = kind_schema(newest(), "autoscaling/v2", "HorizontalPodAutoscaler").expect("hpa");
        let (definitions, root) = (&hpa.definitions, &hpa.root);
        let tokens: Vec<String> = ["spec", "metrics", "0", "pods"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let pods = schema_at(definitions, root, &tokens).expect("pods schema");
        let mut allowed = allowed_fields(pods);
        allowed.sort();
        assert_eq!(allowed, ["metric", "target"]);
        assert_eq!(
            find_field(definitions, pods, "averageValue", 3).as_deref(),
            Some("target.averageValue")
        );
        assert_eq!(
            closest(&["imagePullPolicy".to_string()], "imagePullPolicyy").as_deref(),
            Some("imagePullPolicy")
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let keda = ["maxReplicaCount", "minReplicaCount", "triggers"].map(String::from);
        assert_eq!(
            closest(&keda, "minReplicas").as_deref(),
            Some("minReplicaCount")
        );
        assert_eq!(closest(&keda, "replicas"), None);
        let policies = [
            "Default",
            "RecreateGroupOnPodRestart",
            "RecreateGroupAfterStart",
            "None",
        ]
        .map(String::from);
        assert_eq!(
            closest(&policies, "RecreateGroupOnRestart").as_deref(),
            Some("RecreateGroupOnPodRestart")
        );
    }
}
