use serde_json::Value;

use crate::engine::{Context, Sink};
use crate::object::Object;
use crate::placeholder::{self, Field};
use crate::pointer;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reports values that are still placeholders from a tutorial or
    /// template: `$HPA_AVERAGEVALUE_TARGET`, `${VAR}`, `<namespace>`, and
    /// the words listed under `placeholders.words` in the policy
    /// (`PROJECT_ID`, `CLUSTER_NAME`, `MIN_REPLICAS`, `TARGET`…). In fields
    /// that must hold a number (`placeholders.numericFields`: `minReplicas`,
    /// `averageValue`…) any all-caps word is a placeholder.
    ///
    /// ## Why is this bad?
    /// Every seed guide ships manifests with placeholders to fill in. Applied
    /// as they are, they fail validation at best; at worst a placeholder in a
    /// string field (a PromQL filter `cluster="CLUSTER_NAME"`, a project id in
    /// an argument) is accepted and silently matches nothing.
    ///
    /// `$(VAR)` in container `command`/`args` is Kubernetes' own expansion
    /// and `$VAR` there may be a shell's, so only the placeholder words are
    /// looked for in those fields and in ConfigMap data.
    ///
    /// ## Example
    /// ```yaml
    /// minReplicas: MIN_REPLICAS
    /// target:
    ///   type: AverageValue
    ///   averageValue: $HPA_AVERAGEVALUE_TARGET
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// minReplicas: 1
    /// target:
    ///   type: AverageValue
    ///   averageValue: 5
    /// ```
    ///
    /// ## Fix
    /// None: only a person knows the value.
    pub struct UnresolvedPlaceholder {
        id: "unresolved-placeholder",
        severity: Error,
        summary: "Values must not be template placeholders such as $TARGET, ${VAR}, PROJECT_ID or <namespace>.",
        fixable: false,
    }
}

impl Rule for UnresolvedPlaceholder {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A CRD's schema describes fields in prose (`<operator>`), it does
        // not hold values.
        if object.kind() == "CustomResourceDefinition" {
            return;
        }
        let kind = FieldKind {
            data: matches!(object.kind(), "ConfigMap" | "Secret"),
            autoscaler: object.kind() == "HorizontalPodAutoscaler",
        };
        let mut visit = |pointer: &str, text: &str, key: Option<&str>| {
            if !placeholder::may_contain(text) {
                return;
            }
            let field = classify_field(
                pointer,
                key,
                text,
                kind,
                &cx.policy.placeholders.numeric_fields,
            );
            let Some(field) = field else { return };
            if let Some(found) = placeholder::find(text, field, &cx.policy.placeholders) {
                let field_name = key.unwrap_or("value");
                sink.report(
                    pointer.to_string(),
                    format!("`{}` in `{field_name}` is an unresolved placeholder", found.text),
                )
                .within(text, found.start, found.end - found.start)
                .help("replace the placeholder with the real value before applying (for example with envsubst, kustomize or Helm)");
            }
        };
        walk(&object.value, &mut String::new(), None, &mut visit);
    }
}

/// What the object's kind says about its strings.
#[derive(Clone, Copy)]
struct FieldKind {
    /// ConfigMap or Secret: `data` holds scripts and configuration.
    data: bool,
    /// An HPA, whose numeric fields are listed in the policy.
    autoscaler: bool,
}

/// How a string at `pointer` is read, or `None` to skip it.
fn classify_field(
    pointer: &str,
    key: Option<&str>,
    text: &str,
    kind: FieldKind,
    numeric_fields: &[String],
) -> Option<Field> {
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    if pointer.starts_with("/metadata/managedFields")
        || pointer
            .starts_with("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        || pointer.starts_with("/status")
    {
        return None;
    }
    if key == Some("description") {
        return None;
    }
    // A multi-line string is an embedded script or configuration file
    // (ConfigMap data, a RayService's serveConfigV2) with its own syntax.
    let embedded = kind.data
        && matches!(
            tokens.first(),
            Some(&"data" | &"stringData" | &"binaryData")
        );
    if embedded || text.contains('\n') {
        return Some(Field::Data);
    }
    // An environment variable's name is legitimately all caps.
    if key == Some("name") && tokens.len() >= 3 && tokens[tokens.len() - 3] == "env" {
        return None;
    }
    let in_command = tokens.len() >= 2
        && matches!(tokens[tokens.len() - 2], "command" | "args")
        && tokens[tokens.len() - 1]
            .bytes()
            .all(|byte| byte.is_ascii_digit());
    if in_command {
        return Some(Field::Shell);
    }
    let numeric = key.is_some_and(|key| {
        numeric_fields.iter().any(|field| field == key)
            // Port names are lowercase (IANA service names), so an all-caps
            // `port: PROMETHEUS_PORT` can only be a placeholder.
            && (kind.autoscaler || pointer == "/spec/replicas" || key == "port" || key.ends_with("Port"))
    });
    Some(if numeric {
        Field::Numeric
    } else {
        Field::Plain
    })
}

/// Visit every string of a value with its JSON pointer and key. One
/// pointer buffer serves the whole walk: objects have many nodes.
fn walk(
    value: &Value,
    pointer: &mut String,
    key: Option<&str>,
    visit: &mut dyn FnMut(&str, &str, Option<&str>),
) {
    match value {
        Value::String(text) => visit(pointer, text, key),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&index.to_string());
                walk(item, pointer, key, visit);
                pointer.truncate(length);
            }
        }
        Value::Object(map) => {
            for (child_key, child) in map {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer::escape(child_key));
                walk(child, pointer, Some(child_key), visit);
                pointer.truncate(length);
            }
        }
        _ => {}
    }
}
