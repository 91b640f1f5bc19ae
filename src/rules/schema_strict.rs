use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::engine::{Context, Sink};
use crate::finding::Severity;
use crate::object::Object;
use crate::placeholder::{self, Field};
use crate::pointer;
use crate::rules::{declare_rule, Rule, RuleMeta};
use crate::schema;

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
    /// HorizontalPodAutoscaler (rules/schemas/, from the PyPI package
    /// kubernetes-validate; `scripts/update-schemas.py` regenerates them).
    ///
    /// ## Why is this bad?
    /// The apiserver drops unknown fields or, with strict field validation,
    /// rejects the object; either way what the author meant does not happen.
    /// Seed 003's multi-metric HPA writes `averageValue` beside `target`
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
    /// None here: `hpa-target-sanity` moves a misplaced target value; other
    /// unknown fields need a person.
    pub struct SchemaStrict {
        id: "schema-strict",
        severity: Error,
        summary: "Objects must match the Kubernetes schema of the target version, unknown fields included.",
        fixable: false,
    }
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
            ));
            return;
        }
        let target = kubernetes.version.as_str();
        let (api_version, kind) = (object.id.api_version.as_str(), object.kind());
        let (Some(validator), Some(root), Some(definitions)) = (
            schema::validator(target, api_version, kind),
            schema::root_for(target, api_version, kind),
            schema::definitions(target),
        ) else {
            return;
        };
        let partial = is_partial(object);
        let newest = schema::newest();
        let newer = (target != newest)
            .then(|| schema::validator(newest, api_version, kind))
            .flatten();
        for error in validator.iter_errors(&object.value) {
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
                    let node = schema::schema_at(&definitions, &root, &tokens);
                    let mut allowed = node.map(schema::allowed_fields).unwrap_or_default();
                    allowed.sort();
                    for key in unexpected {
                        let key_pointer = pointer::join(&instance, key);
                        // A field the newest Kubernetes knows is only too new.
                        let known_later = newer.as_ref().is_some_and(|newer| {
                            !newer.iter_errors(&object.value).any(|later| {
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
                        let suggestion = node
                            .and_then(|node| schema::find_field(&definitions, node, key, 3))
                            .map(|path| {
                                format!("{}.{path}", tokens.last().map_or("", String::as_str))
                            })
                            .map(|path| path.trim_start_matches('.').to_string())
                            .or_else(|| schema::closest(&allowed, key));
                        let mut message = format!("`{key}` is not allowed under `{here}`");
                        if let Some(path) = &suggestion {
                            message.push_str(&format!("; did you mean `{path}`?"));
                        }
                        sink.report(key_pointer, message).on_key().help(format!(
                            "the fields allowed under `{here}` are: {}",
                            if allowed.is_empty() {
                                "none".to_string()
                            } else {
                                allowed.join(", ")
                            }
                        ));
                    }
                }
                ValidationErrorKind::Required { .. } if partial => {}
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_string);
                    sink.report(
                        instance.clone(),
                        format!("`{name}` is required under `{here}`"),
                    )
                    .help(format!("add `{name}`"));
                }
                _ => {
                    let value = object.value.pointer(&instance);
                    let is_placeholder = value.and_then(Value::as_str).is_some_and(|text| {
                        placeholder::find(text, Field::Numeric, &cx.policy.placeholders).is_some()
                    });
                    if is_placeholder {
                        continue; // unresolved-placeholder reports it
                    }
                    sink.report(instance.clone(), format!("`{here}`: {error}"))
                        .help(
                        "see the field's type and allowed values in the Kubernetes API reference",
                    );
                }
            }
        }
    }
}

/// Whether the object is a fragment for kustomize or `kubectl patch`
/// rather than a whole object: a workload whose containers have no image,
/// an HPA without scaleTargetRef. Missing required
/// fields are expected there; unknown fields and wrong types are not.
fn is_partial(object: &Object) -> bool {
    if object.kind() == "HorizontalPodAutoscaler" {
        return object.value.pointer("/spec/scaleTargetRef").is_none();
    }
    crate::workload::pod_templates(object)
        .iter()
        .any(|template| {
            template
                .containers()
                .iter()
                .any(|container| container.value.get("image").is_none())
        })
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
