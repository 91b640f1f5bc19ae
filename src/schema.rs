//! Kubernetes JSON Schemas (rules/schemas/, strict: unknown fields are
//! errors), compiled once per process and Kubernetes version.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{json, Value};

/// The embedded schema documents by Kubernetes minor version.
const SCHEMAS: &[(&str, &str)] = &[
    (
        "1.33",
        include_str!("../rules/schemas/kubernetes-v1.33.json"),
    ),
    (
        "1.34",
        include_str!("../rules/schemas/kubernetes-v1.34.json"),
    ),
    (
        "1.35",
        include_str!("../rules/schemas/kubernetes-v1.35.json"),
    ),
    (
        "1.36",
        include_str!("../rules/schemas/kubernetes-v1.36.json"),
    ),
    (
        "1.37",
        include_str!("../rules/schemas/kubernetes-v1.37.json"),
    ),
];

/// The versions infergate has schemas for, oldest first.
pub fn versions() -> impl Iterator<Item = &'static str> {
    SCHEMAS.iter().map(|(version, _)| *version)
}

pub fn newest() -> &'static str {
    SCHEMAS.last().map_or("1.37", |(version, _)| *version)
}

/// One version's definitions and the root definition of each kind.
pub struct Definitions {
    pub defs: Value,
    pub roots: HashMap<String, String>,
}

static PARSED: LazyLock<HashMap<&'static str, Arc<Definitions>>> = LazyLock::new(|| {
    SCHEMAS
        .iter()
        .filter_map(|(version, text)| {
            let document: Value = serde_json::from_str(text).ok()?;
            let roots = document
                .get("x-infergate-roots")
                .and_then(Value::as_object)?
                .iter()
                .filter_map(|(key, root)| Some((key.clone(), root.as_str()?.to_string())))
                .collect();
            let defs = document.get("$defs")?.clone();
            Some((*version, Arc::new(Definitions { defs, roots })))
        })
        .collect()
});

type Cache = Mutex<HashMap<(String, String), Option<Arc<jsonschema::Validator>>>>;

static VALIDATORS: LazyLock<Cache> = LazyLock::new(Default::default);

pub fn definitions(version: &str) -> Option<Arc<Definitions>> {
    PARSED.get(version).cloned()
}

/// The root definition name for `apiVersion`/`kind`, if there is a schema.
pub fn root_for(version: &str, api_version: &str, kind: &str) -> Option<String> {
    definitions(version)?
        .roots
        .get(&format!("{api_version}/{kind}"))
        .cloned()
}

/// The compiled validator of a kind, built on first use and then shared.
pub fn validator(
    version: &str,
    api_version: &str,
    kind: &str,
) -> Option<Arc<jsonschema::Validator>> {
    let key = (version.to_string(), format!("{api_version}/{kind}"));
    let mut cache = VALIDATORS.lock().ok()?;
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let compiled = (|| {
        let definitions = definitions(version)?;
        let root = definitions.roots.get(&key.1)?;
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/$defs/{root}"),
            "$defs": definitions.defs,
        });
        jsonschema::validator_for(&schema).ok().map(Arc::new)
    })();
    cache.insert(key, compiled.clone());
    compiled
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
        } else {
            resolve(defs, node.get("properties")?.get(token)?)
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

/// The allowed field closest to a misspelt one (edit distance at most 2).
pub fn closest(allowed: &[String], name: &str) -> Option<String> {
    allowed
        .iter()
        .map(|candidate| {
            (
                edit_distance(&candidate.to_lowercase(), &name.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.clone())
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
    fn every_version_has_the_three_kinds() {
        for version in versions() {
            for (api_version, kind) in [
                ("apps/v1", "Deployment"),
                ("apps/v1", "StatefulSet"),
                ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ] {
                assert!(
                    validator(version, api_version, kind).is_some(),
                    "{version} {kind}"
                );
            }
        }
    }

    #[test]
    fn navigation_and_suggestions() {
        let definitions = definitions(newest()).expect("newest");
        let root = root_for(newest(), "autoscaling/v2", "HorizontalPodAutoscaler").expect("root");
        let tokens: Vec<String> = ["spec", "metrics", "0", "pods"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let pods = schema_at(&definitions, &root, &tokens).expect("pods schema");
        let mut allowed = allowed_fields(pods);
        allowed.sort();
        assert_eq!(allowed, ["metric", "target"]);
        assert_eq!(
            find_field(&definitions, pods, "averageValue", 3).as_deref(),
            Some("target.averageValue")
        );
        assert_eq!(
            closest(&["imagePullPolicy".to_string()], "imagePullPolicyy").as_deref(),
            Some("imagePullPolicy")
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
