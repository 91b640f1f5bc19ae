//! The `matchConditions` of the workloads webhooks: a CEL expression, built
//! from the policy's inference detection (rules/inference.yaml), that lets
//! the apiserver send only plausible inference workloads to infergate.
//!
//! The expression is the apiserver-side image of
//! `workload::inference_reason`: the marker label or annotation on the
//! object or a pod template, a model server in a main container's image,
//! command or args, or an accelerator resource in its limits or requests.
//! Every request that is not for a Deployment, StatefulSet or
//! LeaderWorkerSet (HPAs, ScaledObjects, monitors, `*/scale`) passes, so
//! autoscalers and the XLA gate are reviewed as before.
//!
//! Kubernetes evaluates matchConditions with CEL (admissionregistration
//! v1, GA in 1.30). A field that may be absent is guarded with `has()`,
//! in the object and in the request alike (the apiserver leaves out the
//! request's empty `omitempty` fields, such as `subResource`): an evaluation
//! error skips the webhook under `failurePolicy: Ignore`, quietly admitting
//! the workload unreviewed, and rejects the write under `Fail`.

use crate::policy::Policy;

/// The resources whose requests are filtered; every other request passes.
const WORKLOAD_RESOURCES: &[&str] = &["deployments", "statefulsets", "leaderworkersets"];

/// The name of the condition in the webhook configuration.
pub const CONDITION_NAME: &str = "plausible-inference-workload";

/// The CEL expression, one clause per line.
pub fn expression(policy: &Policy) -> String {
    let detection = &policy.inference;
    let servers = cel_string(&format!(
        "(?i){}",
        detection
            .servers
            .iter()
            .map(|server| format!("(?:{})", server.pattern.as_str()))
            .collect::<Vec<_>>()
            .join("|")
    ));
    let accelerators = cel_list(detection.accelerator_resources.iter().map(String::as_str));
    let resources = cel_list(WORKLOAD_RESOURCES.iter().copied());
    let marker = cel_string(&detection.marker);
    // The endpoint picker names its pool (often after the server) and is
    // no server (workload::inference_reason skips it too).
    let picker_flags = cel_list(
        policy
            .serving
            .endpoint_picker
            .pool_flags
            .iter()
            .map(String::as_str),
    );
    // The labels and annotations of `owner` that exist, one of them marked.
    let marked = |owner: &str| {
        format!(
            "((has({owner}.metadata) && has({owner}.metadata.labels) ? [{owner}.metadata.labels] : []) + \
             (has({owner}.metadata) && has({owner}.metadata.annotations) ? [{owner}.metadata.annotations] : []))\
             .exists(m, {marker} in m && string(m[{marker}]).matches('(?i)^true$'))"
        )
    };
    // The pod templates of a Deployment or StatefulSet, and of a
    // LeaderWorkerSet (workload::template_pointers).
    let lws = "object.spec.leaderWorkerTemplate";
    let templates = [
        "  (has(object.spec) && has(object.spec.template) ? [object.spec.template] : []) +".to_string(),
        format!("  (has(object.spec) && has({lws}) && has({lws}.leaderTemplate) ? [{lws}.leaderTemplate] : []) +"),
        format!("  (has(object.spec) && has({lws}) && has({lws}.workerTemplate) ? [{lws}.workerTemplate] : [])"),
    ];
    [
        // The apiserver omits an empty subResource from the request (it is
        // `omitempty`), and reading an absent key is an evaluation error, not
        // false: under failurePolicy Fail that rejected every plain workload.
        "(has(request.subResource) && request.subResource != '') ||".to_string(),
        format!("!(request.resource.resource in {resources}) ||"),
        "object == null ||".to_string(),
        format!("{} ||", marked("object")),
        "(".to_string(),
        templates.join("\n"),
        ").exists(t,".to_string(),
        format!("  {} ||", marked("t")),
        "  (has(t.spec) && has(t.spec.containers) && t.spec.containers.exists(c,".to_string(),
        format!("    !((has(c.command) ? c.command : []) + (has(c.args) ? c.args : [])).exists(w, w in {picker_flags} || {picker_flags}.exists(f, w.startsWith(f + '='))) && ("),
        "    ((has(c.image) ? [c.image] : []) + (has(c.command) ? c.command : []) + (has(c.args) ? c.args : []))".to_string(),
        format!("      .exists(s, s.matches({servers})) ||"),
        "    (has(c.resources) && ((has(c.resources.limits) ? [c.resources.limits] : []) + (has(c.resources.requests) ? [c.resources.requests] : []))".to_string(),
        format!("      .exists(m, m.exists(r, r in {accelerators})))))))"),
    ]
    .join("\n")
}

/// The `matchConditions` block of a webhook, as YAML at the indentation of
/// a webhook's fields in webhooks.yaml.
pub fn yaml(policy: &Policy) -> String {
    let mut out = String::from("matchConditions:\n");
    out.push_str(&format!("  - name: {CONDITION_NAME}\n"));
    out.push_str("    expression: |-\n");
    for line in expression(policy).lines() {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A CEL list of string literals.
fn cel_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(cel_string).collect::<Vec<_>>().join(", "))
}

/// A CEL single-quoted string literal.
fn cel_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_cel() {
        assert_eq!(cel_string(r"a\b'c"), r"'a\\b\'c'");
    }

    #[test]
    fn the_expression_names_every_server_and_accelerator_of_the_policy() {
        let policy = Policy::built_in().expect("policy");
        let text = expression(&policy);
        for resource in &policy.inference.accelerator_resources {
            assert!(text.contains(&format!("'{resource}'")), "{resource}");
        }
        for server in &policy.inference.servers {
            assert!(text.contains(server.pattern.as_str()), "{}", server.name);
        }
        assert!(text.contains(&policy.inference.marker));
    }
}
