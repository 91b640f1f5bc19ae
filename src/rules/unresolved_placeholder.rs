use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::loader::Document;
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::placeholder::{self, Field, Grammar};
use crate::policy::{GrammarFields, Placeholders};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reports values that are still placeholders from a tutorial or
    /// template: `$HPA_AVERAGEVALUE_TARGET`, `${VAR}`, `<namespace>`, and
    /// the words listed under `placeholders.words` in the policy
    /// (`PROJECT_ID`, `CLUSTER_NAME`, `MIN_REPLICAS`, `TARGET`…). In fields
    /// that must hold a number (`placeholders.numericFields`: `minReplicas`,
    /// `averageValue`…) and in ports any all-caps word is a placeholder.
    /// YAML documents that are not objects (Helm values) are read too: their
    /// values end up in objects.
    ///
    /// ## Why is this bad?
    /// The GKE and NVIDIA autoscaling guides ship manifests with
    /// placeholders to fill in (`PROJECT_ID`, `CLUSTER_NAME`). Applied
    /// as they are, they fail validation at best; at worst a placeholder in a
    /// string field (a PromQL filter `cluster="CLUSTER_NAME"`, a project id in
    /// an argument) is accepted and silently matches nothing.
    ///
    /// A file named as a template (`placeholders.templateExtensions`:
    /// `app.tftpl.yaml`, `job.tpl.yaml`) is filled in by Terraform's
    /// `templatefile()` or a script before it is applied: its `${…}`s (any
    /// Terraform expression: `${var.name}`, `${model-id}`) make one warning
    /// per object that says so and names them, instead of an error each.
    /// Other placeholders in it are still errors.
    ///
    /// Objects of tools that evaluate `${…}` themselves
    /// (`placeholders.toolExpressions`: kro's ResourceGraphDefinition,
    /// Crossplane, Argo CD, Flux) are written that way on purpose: their
    /// `${…}`s are not reported.
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
            tool_expressions: cx
                .policy
                .placeholders
                .tool_expressions
                .iter()
                .any(|tool| tool.group == object.group()),
        };
        scan(cx, &object.value, &object.source.name, kind, sink);
    }

    /// Helm values and other documents that are not objects: their values
    /// end up in objects (the TPU autoscaling guide's adapter values keep `CLUSTER_NAME`).
    fn check_document(&self, cx: &Context<'_>, document: &Document, sink: &mut Sink) {
        // Only documents a rule knows the shape of: a compose file or a CI
        // workflow has `${VAR}`s of its own tools.
        if !crate::k8s::adapter::is_adapter_config(&document.value) {
            return;
        }
        let kind = FieldKind {
            data: false,
            autoscaler: false,
            tool_expressions: false,
        };
        scan(cx, &document.value, &document.source.name, kind, sink);
    }
}

/// Report the placeholders among the strings of `value`, read from `file`.
fn scan(cx: &Context<'_>, value: &Value, file: &str, kind: FieldKind, sink: &mut Sink) {
    let template = is_template(file, &cx.policy.placeholders.template_extensions);
    // In a template, `${var}`s are filled in when it is rendered.
    let mut first: Option<(String, String, placeholder::Found)> = None;
    let mut names: Vec<String> = Vec::new();
    let mut visit = |pointer: &str, text: &str, key: Option<&str>| {
        if !placeholder::may_contain(text) {
            return;
        }
        let settings = &cx.policy.placeholders;
        let field = classify_field(pointer, key, text, kind, value, settings);
        let Some(field) = field else { return };
        if let Some(variable) = secret_stand_in(pointer, key, text, value, settings) {
            sink.report(
                pointer.to_string(),
                format!("`{text}` in `{variable}` is a stand-in for a secret, not the secret"),
            )
            .help(
                "take the value from a Secret (valueFrom.secretKeyRef) instead of writing it here",
            );
            return;
        }
        let mut masked = None;
        // A template's `${…}` are filled in when it is rendered; another
        // tool's (kro, Crossplane, Argo CD, Flux) are its expressions.
        if template || kind.tool_expressions {
            let variables = placeholder::template_variables(text);
            if let Some(variable) = variables.first().filter(|_| template) {
                first.get_or_insert_with(|| {
                    (pointer.to_string(), text.to_string(), variable.clone())
                });
                names.extend(variables.iter().map(|variable| variable.text.clone()));
            }
            if !variables.is_empty() {
                // other placeholders of the string are still looked for,
                // at the same offsets
                let mut blanked = text.to_string();
                for variable in &variables {
                    blanked.replace_range(
                        variable.start..variable.end,
                        &" ".repeat(variable.end - variable.start),
                    );
                }
                masked = Some(blanked);
            }
        }
        let searched = masked.as_deref().unwrap_or(text);
        let found = placeholder::find_all(searched, field, &cx.policy.placeholders);
        if let Some(first_found) = found.first() {
            let field_name = key.unwrap_or("value");
            let mut names: Vec<String> = Vec::new();
            for hit in &found {
                let name = format!("`{}`", hit.text);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let (subject, verb) = match names.as_slice() {
                [one] => (one.clone(), "is an unresolved placeholder"),
                [first @ .., last] => (
                    format!("{} and {last}", first.join(", ")),
                    "are unresolved placeholders",
                ),
                [] => unreachable!("found is not empty"),
            };
            let message = match field {
                Field::Grammar(grammar) => format!("{subject} in `{field_name}` {verb}: {}", grammar.rule()),
                Field::Command if found.iter().any(|hit| hit.text.starts_with('$')) => format!("{subject} in `{field_name}` {verb}: no shell runs the command, and Kubernetes expands only $(VAR)"),
                _ => format!("{subject} in `{field_name}` {verb}"),
            };
            let message = if message.chars().count() > 160 {
                match names.len() {
                    1 => format!("an unresolved placeholder in `{field_name}`"),
                    count => format!(
                        "{count} unresolved placeholders in `{field_name}`, the first {}",
                        names[0]
                    ),
                }
            } else {
                message
            };
            let help = match field {
                Field::Command if found.iter().any(|hit| hit.text.starts_with('$')) => "write $(VAR) for a variable of the container's env, or run the command with sh -c",
                _ => "replace the placeholder with the real value before applying (for example with envsubst, kustomize or Helm)",
            };
            sink.report(pointer.to_string(), message)
                .within(text, first_found.start, first_found.end - first_found.start)
                .help(help);
        }
    };
    walk(value, &mut Vec::new(), None, &mut visit);
    if let Some((pointer, text, found)) = first {
        let mut seen = std::collections::HashSet::new();
        names.retain(|name| seen.insert(name.clone()));
        let file = file_name(file);
        sink.report(
                pointer,
                format!("{} unfilled: render the template first", listed(&names)),
            )
            .short(format!(
                "{} template variable(s) unfilled: render the template before applying",
                names.len()
            ))
            .within(&text, found.start, found.end - found.start)
            .severity(Severity::Warning)
            .help(format!("`{file}` is a template: render it (Terraform's templatefile()) and lint the output; the other rules checked it as written"));
    }
}

/// "`${a}` is", "`${a}` and `${b}` are", "`${a}`, `${b}`, `${c}` and 4 more are".
fn listed(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => format!("template variable {one} is"),
        [first @ .., last]
            if quoted.len() <= 3 && quoted.iter().map(String::len).sum::<usize>() <= 80 =>
        {
            format!("template variables {} and {last} are", first.join(", "))
        }
        _ => {
            // As many names as fit in about 80 characters, at least one.
            let mut shown = Vec::new();
            let mut width = 0;
            for name in &quoted {
                if !shown.is_empty() && (width + name.len() > 80 || shown.len() == 3) {
                    break;
                }
                width += name.len() + 2;
                shown.push(name.as_str());
            }
            format!(
                "template variables {} and {} more are",
                shown.join(", "),
                quoted.len() - shown.len()
            )
        }
    }
}

/// Whether a file's name marks it as a template: a dotted part after the
/// stem is one of `extensions` (`job.tpl.yaml`, `app.tftpl.yaml`).
fn is_template(path: &str, extensions: &[String]) -> bool {
    file_name(path)
        .split('.')
        .skip(1)
        .any(|part| extensions.iter().any(|extension| extension == part))
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// What the object's kind says about its strings.
#[derive(Clone, Copy)]
struct FieldKind {
    /// ConfigMap or Secret: `data` holds scripts and configuration.
    data: bool,
    /// An HPA, whose numeric fields are listed in the policy.
    autoscaler: bool,
    /// An object of a tool that evaluates `${…}` itself (kro, Crossplane,
    /// Argo CD, Flux: `placeholders.toolExpressions`).
    tool_expressions: bool,
}

/// How a string at `pointer` is read, or `None` to skip it.
fn classify_field(
    pointer: &str,
    key: Option<&str>,
    text: &str,
    kind: FieldKind,
    root: &Value,
    settings: &Placeholders,
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
        let container = tokens[..tokens.len() - 2]
            .iter()
            .fold(String::new(), |pointer, token| format!("{pointer}/{token}"));
        let shell = root.at(&container).is_some_and(runs_shell);
        return Some(if shell { Field::Shell } else { Field::Command });
    }
    if let Some(grammar) = key.and_then(|key| grammar_of(key, &tokens, &settings.grammar)) {
        return Some(Field::Grammar(grammar));
    }
    let numeric = key.is_some_and(|key| {
        settings.numeric_fields.iter().any(|field| field == key)
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

/// The grammar of the value at `tokens` (whose last token is `key`).
fn grammar_of(key: &str, tokens: &[&str], fields: &GrammarFields) -> Option<Grammar> {
    let listed = |list: &[String], token: &str| list.iter().any(|entry| entry == token);
    let parent = tokens.len().checked_sub(2).map(|index| tokens[index]);
    let item_of = tokens.len().checked_sub(3).map(|index| tokens[index]);
    let is_item = parent.is_some_and(|parent| parent.bytes().all(|byte| byte.is_ascii_digit()));
    if listed(&fields.image_keys, key) {
        return Some(Grammar::ImageRepository);
    }
    if listed(&fields.bucket_keys, key) {
        return Some(Grammar::BucketName);
    }
    let name = listed(&fields.name_keys, key)
        || (key == "name" && parent.is_some_and(|parent| listed(&fields.name_parents, parent)))
        || (key == "name"
            && is_item
            && item_of.is_some_and(|list| listed(&fields.name_items, list)))
        || (key == "namespace" && parent == Some("metadata"));
    name.then_some(Grammar::DnsName)
}

/// Whether a container runs its command through a shell (`sh -c …`), which
/// expands `$VAR` itself.
fn runs_shell(container: &Value) -> bool {
    let words = |key: &str| -> Vec<&str> {
        container
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let mut line = words("command");
    line.extend(words("args"));
    let Some(program) = line.first() else {
        return false;
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    let shell = matches!(program, "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh");
    shell
        && line
            .iter()
            .any(|word| word.starts_with('-') && word.contains('c'))
}

/// The env var whose value is a stand-in for a secret, when `pointer` is
/// such a value: `HUGGING_FACE_HUB_TOKEN: HF_TOKEN`, `NGC_API_KEY:
/// nvapi-XXXX`. `LOG_LEVEL: INFO` is a real value.
fn secret_stand_in<'v>(
    pointer: &str,
    key: Option<&str>,
    text: &str,
    root: &'v Value,
    settings: &Placeholders,
) -> Option<&'v str> {
    if key != Some("value") {
        return None;
    }
    let entry = root.at(pointer::parent(pointer)?)?;
    let in_env = pointer::parent(pointer)
        .and_then(pointer::parent)
        .is_some_and(|list| list.ends_with("/env"));
    if !in_env {
        return None;
    }
    let name = entry.get("name").and_then(Value::as_str)?;
    let identifier = text.len() > 1
        && text
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
        && text.as_bytes()[0].is_ascii_uppercase();
    let stand_in = (identifier && settings.secret_names.is_match(name))
        || settings.vendor_key_stand_ins.is_match(text);
    stand_in.then_some(name)
}

/// Visit every string of a value with its JSON pointer and key. One
/// pointer buffer serves the whole walk: objects have many nodes.
/// One step from an object's root to one of its nodes.
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

/// Visit every string of `value` that may hold a placeholder, with its
/// pointer and the key it sits under. The pointer is built only for those
/// strings: most strings hold none, and building a pointer for every node
/// was a tenth of a lint's time.
fn walk<'v>(
    value: &'v Value,
    path: &mut Vec<Step<'v>>,
    key: Option<&'v str>,
    visit: &mut dyn FnMut(&str, &str, Option<&str>),
) {
    match value {
        Value::String(text) if placeholder::may_contain(text) => {
            let mut pointer = String::new();
            for step in path.iter() {
                match step {
                    Step::Key(key) => pointer::push(&mut pointer, key),
                    Step::Index(index) => pointer::push(&mut pointer, index),
                }
            }
            visit(&pointer, text, key);
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Step::Index(index));
                walk(item, path, key, visit);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (child_key, child) in map {
                path.push(Step::Key(child_key));
                walk(child, path, Some(child_key), visit);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_files_are_known_by_name() {
        let extensions = ["tftpl".to_string(), "tpl".to_string()];
        for template in [
            "templates/comfyui_nvidia-l4.tftpl.yaml",
            "job-a100.tpl.yaml",
            "deploy\\vllm.yaml.tpl",
        ] {
            assert!(is_template(template, &extensions), "{template}");
        }
        for plain in [
            "tpl/vllm.yaml",
            "tftpl.yaml",
            "<stdin>",
            "vllm-template.yaml",
        ] {
            assert!(!is_template(plain, &extensions), "{plain}");
        }
    }

    #[test]
    fn variables_are_listed_in_a_sentence() {
        let names = |count: usize| -> Vec<String> {
            ["${a}", "${b}", "${c}", "${d}", "${e}"][..count]
                .iter()
                .map(|name| name.to_string())
                .collect()
        };
        assert_eq!(listed(&names(1)), "template variable `${a}` is");
        assert_eq!(
            listed(&names(2)),
            "template variables `${a}` and `${b}` are"
        );
        assert_eq!(
            listed(&names(3)),
            "template variables `${a}`, `${b}` and `${c}` are"
        );
        assert_eq!(
            listed(&names(5)),
            "template variables `${a}`, `${b}`, `${c}` and 2 more are"
        );
    }
}
