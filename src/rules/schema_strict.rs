use crate::input::pointer::Lookup;
use jsonschema::error::ValidationErrorKind;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix, Severity};
use crate::engine::schema;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::metrics;
use crate::k8s::placeholder::{self, Field};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Validates objects against the Kubernetes JSON Schemas of the target
    /// version (`kubernetes.version` in the policy, `--kube-version` on the
    /// command line), strictly: unknown fields are errors, as with
    /// `kubeconform -strict`, along with wrong types, missing required fields
    /// and bad enum values. The message names the field, the fields allowed
    /// at that level, and the closest valid path when the field belongs
    /// elsewhere. A field that exists only in newer Kubernetes versions is a
    /// warning. Removed API versions (autoscaling/v2beta1 and v2beta2,
    /// extensions/v1beta1 and apps/v1beta1/v1beta2 workloads) are errors that
    /// name the replacement.
    ///
    /// Fragments meant for kustomize or `kubectl patch` (containers without
    /// an image, an HPA without scaleTargetRef) are not
    /// held to required fields, only to known fields and types.
    ///
    /// Kinds with schemas: apps/v1 Deployment and StatefulSet, autoscaling/v2
    /// HorizontalPodAutoscaler (rules/schemas/kubernetes-v1.*.json, from the
    /// PyPI package kubernetes-validate; `scripts/update-schemas.py`
    /// regenerates them), and the custom resources
    /// leaderworkerset.x-k8s.io/v1 LeaderWorkerSet, keda.sh/v1alpha1
    /// ScaledObject, monitoring.coreos.com/v1 ServiceMonitor and PodMonitor
    /// (rules/schemas/custom-resources.json, converted from the kopium-generated
    /// kcr_* crates on crates.io by `scripts/update-crd-schemas.py`). A custom
    /// resource's schema is the same for every Kubernetes version, and a
    /// null value in one is not reported: the apiserver drops it. GKE's
    /// monitoring.googleapis.com PodMonitoring has no schema here (no package
    /// ships one); `podmonitoring-scrape` checks its layout instead.
    ///
    /// The serving CRDs (Inference Extension, KServe, KubeRay, llm-d) gain
    /// fields between releases faster than infergate's copy of them: below
    /// the top level, a field they do not know and that is near no known
    /// one is a warning naming the CRD's repository and commit, not an
    /// error (a newer CRD may define it).
    ///
    /// ## Why is this bad?
    /// The apiserver drops unknown fields or, with strict field validation,
    /// rejects the object; either way what the author meant does not happen.
    /// The multi-metric HPA of GKE's "Configure autoscaling for LLM
    /// workloads on TPUs" writes `averageValue` beside `target`
    /// instead of inside it, so the HPA has no target value.
    ///
    /// ## Example
    /// ```yaml
    /// - type: Pods
    ///   pods:
    ///     metric:
    ///       name: jetstream_prefill_backlog_size
    ///     target:
    ///       type: AverageValue
    ///     averageValue: 10
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// - type: Pods
    ///   pods:
    ///     metric:
    ///       name: jetstream_prefill_backlog_size
    ///     target:
    ///       type: AverageValue
    ///       averageValue: 10
    /// ```
    ///
    /// ## Fix
    /// An HPA of a removed version (autoscaling/v2beta1 or v2beta2) is
    /// converted to autoscaling/v2, field by field, as a safe fix: the same
    /// autoscaler spelt the new way. A Deployment or StatefulSet of a removed
    /// version gets `apps/v1` when it already has the `spec.selector` that
    /// apps/v1 requires. `hpa-target-sanity` moves a misplaced target value;
    /// other unknown fields need a person.
    pub struct SchemaStrict {
        id: "schema-strict",
        severity: Error,
        summary: "Objects must match the Kubernetes schema of the target version, unknown fields included.",
        fixable: true,
    }
}

/// The fix that moves an object of a removed version to its replacement,
/// when that is a pure re-spelling: HPAs are rewritten field by field;
/// a workload only needs the new apiVersion when it already has the
/// `spec.selector` that apps/v1 requires.
fn conversion(object: &Object, replacement: &str) -> Option<Fix> {
    let operations = match object.kind() {
        "HorizontalPodAutoscaler" if replacement == "autoscaling/v2" => {
            metrics::to_v2_operations(object)
        }
        "Deployment" | "StatefulSet"
            if replacement == "apps/v1" && object.value.at("/spec/selector").is_some() =>
        {
            op::replace("/apiVersion", json!(replacement))
                .into_iter()
                .collect()
        }
        _ => return None,
    };
    (!operations.is_empty()).then(|| Fix::safe(format!("convert to {replacement}"), operations))
}

impl Rule for SchemaStrict {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        let kubernetes = &cx.policy.kubernetes;
        if let Some(removed) = kubernetes.removed_apis.iter().find(|removed| {
            removed.api_version == object.id.api_version && removed.kind == object.kind()
        }) {
            sink.report(
                "/apiVersion",
                format!(
                    "{} {} was removed in Kubernetes {}; use {}",
                    removed.api_version, removed.kind, removed.removed_in, removed.replacement
                ),
            )
            .help(format!(
                "change apiVersion to {} and check the fields that changed with it",
                removed.replacement
            ))
            .maybe_fix(conversion(object, &removed.replacement));
            return;
        }
        let target = kubernetes.version.as_str();
        let (api_version, kind) = (object.id.api_version.as_str(), object.kind());
        let Some(schema) = schema::kind_schema(target, api_version, kind) else {
            return;
        };
        let (definitions, root) = (&schema.definitions, &schema.root);
        let partial = crate::k8s::workload::may_be_completed(object);
        let newest = schema::newest();
        // Custom resources have one schema for every Kubernetes version.
        let newer = (!schema.custom && target != newest)
            .then(|| schema::kind_schema(newest, api_version, kind))
            .flatten();
        for error in schema.validator.iter_errors(&object.value) {
            let instance = error.instance_path().to_string();
            if instance.starts_with("/status") {
                continue;
            }
            let tokens: Vec<String> = instance
                .split('/')
                .skip(1)
                .map(|token| token.replace("~1", "/").replace("~0", "~"))
                .collect();
            let here = dotted(&tokens);
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let node = schema::schema_at(definitions, root, &tokens);
                    let mut allowed = node.map(schema::allowed_fields).unwrap_or_default();
                    allowed.sort();
                    for key in unexpected {
                        let key_pointer = pointer::join(&instance, key);
                        // A field the newest Kubernetes knows is only too new.
                        let known_later = newer.as_ref().is_some_and(|newer| {
                            !newer.validator.iter_errors(&object.value).any(|later| {
                                later.instance_path().to_string() == instance
                                    && matches!(later.kind(), ValidationErrorKind::AdditionalProperties { unexpected } if unexpected.contains(key))
                            })
                        });
                        if known_later {
                            sink.report(key_pointer, format!("`{key}` under `{here}` is not in Kubernetes {target}; it was added in a later version"))
                                .on_key()
                                .help(format!("drop it, or target a newer Kubernetes with --kube-version (schemas up to {newest})"))
                                .severity(Severity::Warning);
                            continue;
                        }
                        let nested =
                            node.and_then(|node| schema::find_field(definitions, node, key, 3));
                        let suggestion = nested
                            .as_ref()
                            .map(|path| {
                                format!("{}.{path}", tokens.last().map_or("", String::as_str))
                            })
                            .map(|path| path.trim_start_matches('.').to_string())
                            .or_else(|| schema::closest(&allowed, key));
                        let place = if tokens.is_empty() {
                            format!("at the top level of a {}", object.kind())
                        } else {
                            format!("under `{here}`")
                        };
                        let mut message = format!("`{key}` is not allowed {place}");
                        if let Some(path) = &suggestion {
                            message.push_str(&format!("; did you mean `{path}`?"));
                        }
                        let fix = nested
                            .as_deref()
                            .and_then(|path| misplaced_fix(&object.value, &instance, key, path));
                        // A serving CRD gains fields between releases: below
                        // the top level, an unknown field with nothing near it
                        // may be newer than infergate's copy of the CRD.
                        let maybe_newer = schema
                            .source
                            .as_ref()
                            .filter(|_| !tokens.is_empty() && suggestion.is_none());
                        if let Some(source) = maybe_newer {
                            sink.report(
                                key_pointer,
                                format!("`{key}` is not in the {} CRD infergate has ({source}) {place}", object.kind()),
                            )
                            .on_key()
                            .severity(Severity::Warning)
                            .short(format!(
                                "`{key}` is not in the {} CRD; a newer one may have it",
                                source.rsplit('/').next().unwrap_or(source)
                            ))
                            .help(format!(
                                "a newer CRD may define it: check the version the cluster runs; the fields infergate knows {place} are: {}",
                                allowed.join(", ")
                            ));
                            continue;
                        }
                        sink.report(key_pointer, message)
                            .on_key()
                            .help(format!(
                                "the fields allowed {place} are: {}",
                                if allowed.is_empty() {
                                    "none".to_string()
                                } else {
                                    allowed.join(", ")
                                }
                            ))
                            .maybe_fix(fix);
                    }
                }
                ValidationErrorKind::Required { .. } if partial => {}
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_string);
                    // Written one level too high: the misplaced-field finding
                    // (with its move) says it.
                    let written_above = pointer::parent(&instance)
                        .and_then(|parent| object.value.at(parent))
                        .is_some_and(|above| above.get(&name).is_some());
                    if written_above {
                        continue;
                    }
                    // Written under another name (`targetPortNumber` for
                    // `targetPorts`): the unknown field's "did you mean"
                    // says it, once.
                    let allowed = schema::schema_at(definitions, root, &tokens)
                        .map(schema::allowed_fields)
                        .unwrap_or_default();
                    let misnamed = object
                        .value
                        .at(&instance)
                        .and_then(Value::as_object)
                        .is_some_and(|map| {
                            map.keys().any(|key| {
                                !allowed.contains(key)
                                    && schema::closest(&allowed, key).as_deref()
                                        == Some(name.as_str())
                            })
                        });
                    if misnamed {
                        continue;
                    }
                    sink.report(
                        instance.clone(),
                        format!("`{name}` is required under `{here}`"),
                    )
                    .help(format!("add `{name}`"));
                }
                other => {
                    let Some(value) = object.value.at(&instance) else {
                        continue;
                    };
                    let is_placeholder = value.as_str().is_some_and(|text| {
                        placeholder::find(text, Field::Numeric, &cx.policy.placeholders).is_some()
                    });
                    if is_placeholder {
                        continue; // unresolved-placeholder reports it
                    }
                    if schema.custom && value.is_null() {
                        continue; // the apiserver prunes nulls from custom resources
                    }
                    let node = schema::schema_at(definitions, root, &tokens);
                    let (message, help) = match other {
                        ValidationErrorKind::Type { .. } => {
                            let parent = tokens
                                .split_last()
                                .and_then(|(_, above)| schema::schema_at(definitions, root, above));
                            let key = tokens.last().map_or("", String::as_str);
                            wrong_type(&here, value, node, sibling_for(parent, key, value))
                        }
                        ValidationErrorKind::Enum { options } => not_in_enum(&here, value, options),
                        ValidationErrorKind::Pattern { pattern } => (
                            format!("`{here}` does not match the pattern `{pattern}`"),
                            "write a value of the form the pattern allows".to_string(),
                        ),
                        _ => (
                            format!("`{here}`: {error}"),
                            "see the field's type and allowed values in the API reference"
                                .to_string(),
                        ),
                    };
                    sink.report(instance.clone(), message).help(help);
                }
            }
        }
    }
}

/// Moving a field written one level too high (a PodMonitoring's
/// `selector` beside `spec`) to where the schema has a field of that name:
/// safe, since it is the same field, when nothing is there yet and the
/// mapping it goes into exists.
fn misplaced_fix(value: &Value, instance: &str, key: &str, path: &str) -> Option<Fix> {
    let target = path
        .split('.')
        .fold(instance.to_string(), |pointer, token| {
            pointer::join(&pointer, token)
        });
    let parent = pointer::parent(&target)?;
    if value.at(&target).is_some() || !value.at(parent).is_some_and(Value::is_object) {
        return None;
    }
    let from = pointer::join(instance, key);
    op::move_(&from, &target)
        .map(|operation| Fix::safe(format!("move `{key}` to `{path}`"), vec![operation]))
}

/// "must be a string, not an integer", with the quoting that fixes the
/// common cases (`threshold: 5` in a map of strings, `replicas: "2"`).
fn wrong_type(
    here: &str,
    value: &Value,
    node: Option<&Value>,
    sibling: Option<String>,
) -> (String, String) {
    let expected: Vec<&str> = match node.and_then(|node| node.get("type")) {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // "or null" says nothing useful: leaving the field out is the way to null
    let expected: Vec<&str> = expected
        .into_iter()
        .filter(|name| *name != "null")
        .collect();
    let found = json_type(value);
    if expected.is_empty() {
        // the schema combines types (oneOf): no short way to say which
        return (
            format!("`{here}` cannot be {} `{value}`", with_article(found)),
            "see the field's type in the API reference".to_string(),
        );
    }
    let wanted = expected
        .iter()
        .map(|name| with_article(name))
        .collect::<Vec<_>>()
        .join(" or ");
    let message = format!(
        "`{here}` must be {wanted}, not {} `{value}`",
        with_article(found)
    );
    let wants = |name: &str| expected.contains(&name);
    let help = match (value, sibling) {
        (_, Some(sibling)) => format!("{} goes in `{sibling}`", with_article(found)),
        (Value::Number(_) | Value::Bool(_), None) if wants("string") => {
            format!("quote it: `\"{value}\"`")
        }
        (Value::String(text), None)
            if (wants("integer") && text.trim().parse::<i64>().is_ok())
                || (wants("number") && text.trim().parse::<f64>().is_ok()) =>
        {
            format!("write the number without quotes: `{}`", text.trim())
        }
        (Value::String(text), None)
            if wants("boolean") && matches!(text.as_str(), "true" | "false") =>
        {
            format!("write it without quotes: `{text}`")
        }
        _ => format!("write {wanted} here"),
    };
    (message, help)
}

/// A field beside `key` named after it that takes the value's type:
/// PodMonitor's `portNumber` for a number written in `port`.
fn sibling_for(parent: Option<&Value>, key: &str, value: &Value) -> Option<String> {
    let found = json_type(value);
    parent?
        .get("properties")?
        .as_object()?
        .iter()
        .find(|(name, schema)| {
            name.len() > key.len()
                && name.starts_with(key)
                && match schema.get("type") {
                    Some(Value::String(one)) => one == found,
                    Some(Value::Array(many)) => many.iter().any(|one| one == found),
                    _ => false,
                }
        })
        .map(|(name, _)| name.clone())
}

/// "is `X`, which is not one of …", with the closest allowed value.
fn not_in_enum(here: &str, value: &Value, options: &Value) -> (String, String) {
    let allowed: Vec<String> = options
        .as_array()
        .map(|options| {
            options
                .iter()
                .map(|option| {
                    option
                        .as_str()
                        .map_or_else(|| option.to_string(), str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let shown = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    let mut message = format!("`{here}` is `{shown}`, which is not an allowed value");
    if let Some(closest) = schema::closest(&allowed, &shown) {
        message.push_str(&format!("; did you mean `{closest}`?"));
    }
    (message, format!("allowed values: {}", allowed.join(", ")))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn with_article(name: &str) -> String {
    match name {
        "null" => "null".to_string(),
        "integer" | "object" | "array" => format!("an {name}"),
        _ => format!("a {name}"),
    }
}

/// `spec.metrics[0].pods` from path tokens.
fn dotted(tokens: &[String]) -> String {
    let mut out = String::new();
    for token in tokens {
        if !token.is_empty() && token.bytes().all(|byte| byte.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(token);
        }
    }
    if out.is_empty() {
        "the object".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wrong_types_say_what_is_wanted_and_how_to_write_it() {
        let string = json!({"type": "string"});
        assert_eq!(
            wrong_type("spec.threshold", &json!(5), Some(&string), None),
            (
                "`spec.threshold` must be a string, not an integer `5`".to_string(),
                "quote it: `\"5\"`".to_string()
            )
        );
        let flag = json!({"type": ["boolean", "null"]});
        assert_eq!(
            wrong_type("spec.paused", &json!("true"), Some(&flag), None).1,
            "write it without quotes: `true`"
        );
        let list = json!({"type": "array"});
        assert_eq!(
            wrong_type("spec.args", &json!("--port"), Some(&list), None).1,
            "write an array here"
        );
        let combined = json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(
            wrong_type("spec.cpu", &json!([1]), Some(&combined), None).0,
            "`spec.cpu` cannot be an array `[1]`"
        );
        let parent =
            json!({"properties": {"port": {"type": "string"}, "portNumber": {"type": "integer"}}});
        assert_eq!(
            sibling_for(Some(&parent), "port", &json!(8080)).as_deref(),
            Some("portNumber")
        );
        assert_eq!(sibling_for(Some(&parent), "port", &json!("x")), None);
    }

    #[test]
    fn enum_values_are_listed_with_the_closest() {
        let options = json!(["RollingUpdate"]);
        let (message, help) = not_in_enum("spec.type", &json!("Rolling"), &options);
        assert_eq!(
            message,
            "`spec.type` is `Rolling`, which is not an allowed value; did you mean `RollingUpdate`?"
        );
        assert_eq!(help, "allowed values: RollingUpdate");
    }
}
