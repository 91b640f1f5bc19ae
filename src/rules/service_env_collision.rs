use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::serving;
use crate::k8s::workload::{self, env_value, pod_templates};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds model servers whose pods get, from a Service of their
    /// namespace, an environment variable the server reads as its own
    /// setting. Kubernetes gives every container `<NAME>_SERVICE_HOST`,
    /// `<NAME>_SERVICE_PORT`, `<NAME>_PORT=tcp://10.0.0.1:8000` and
    /// `<NAME>_PORT_<port>_<PROTO>…` for each Service of the namespace
    /// (NAME in capitals, `-` as `_`) unless the pod sets
    /// `enableServiceLinks: false`. A Service named `vllm` gives every pod
    /// `VLLM_PORT=tcp://…`, which vLLM reads as its port.
    ///
    /// The variables each server reads are data (`serving.readsEnv`,
    /// sourced). A variable the container sets itself wins over the
    /// Service's and is not reported. The Services are those of the input
    /// in the workload's namespace applied with it: the same file, a
    /// kustomization or one stream (in the webhook, the reviewed object's).
    /// A KServe InferenceService in Serverless mode is left alone (Knative
    /// turns Service links off in every revision), and so is a
    /// ServingRuntime (its pods are an InferenceService's, and its pod spec
    /// cannot turn the links off).
    ///
    /// ## Why is this bad?
    /// vLLM parses `VLLM_PORT` as an integer and stops at start with a
    /// ValueError on `tcp://10.0.0.1:8000` (vLLM's environment variable
    /// documentation warns about exactly this Service name): the pod
    /// crash-loops as soon as the Service exists, though the same manifest
    /// ran before it was added.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// metadata: {name: vllm}
    /// ---
    /// kind: Deployment
    /// spec:
    ///   template:
    ///     spec:
    ///       containers: [{name: vllm, image: vllm/vllm-openai:v0.8.5}]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   template:
    ///     spec:
    ///       enableServiceLinks: false
    /// ```
    /// or name the Service otherwise (`vllm-server`).
    ///
    /// ## Fix
    /// Sets `enableServiceLinks: false` on the pod template (safe: model
    /// servers find their peers through DNS, not through these variables).
    pub struct ServiceEnvCollision {
        id: "service-env-collision",
        severity: Error,
        summary: "A Service's injected variables must not collide with a server's own settings (a Service named vllm sets VLLM_PORT).",
        fixable: true,
    }
}

impl Rule for ServiceEnvCollision {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() || workload::is_fragment(object) {
            return;
        }
        if !service_links_default_on(object) {
            return;
        }
        let services: Vec<&Object> = cx
            .of_kind(object, &["Service"])
            .map(|(_, service)| service)
            .filter(|service| cx.paired(service, object))
            // Applied beside the workload: the same file, or one stream
            // (a kustomization, stdin, a review). Directories of examples
            // hold alternatives that a namespace may never see together.
            .filter(|service| {
                std::sync::Arc::ptr_eq(&service.source, &object.source)
                    || service.source.scope_is_applied_together()
            })
            // The kubelet gives variables only for Services with a
            // cluster IP: not headless ones nor ExternalName.
            .filter(|service| {
                let cluster_ip = service.value.at("/spec/clusterIP").and_then(Value::as_str);
                let kind = service.value.at("/spec/type").and_then(Value::as_str);
                cluster_ip != Some("None") && kind != Some("ExternalName")
            })
            .collect();
        if services.is_empty() {
            return;
        }
        for template in pod_templates(object) {
            let Some(spec) = template.spec() else {
                continue;
            };
            if spec.get("enableServiceLinks") == Some(&Value::Bool(false)) {
                continue;
            }
            for container in template.main_containers() {
                let Some(server) = serving::server_of(&container, &cx.policy.serving) else {
                    continue;
                };
                let Some(reads) = cx
                    .policy
                    .serving
                    .reads_env
                    .iter()
                    .find(|reads| reads.server == server.server)
                else {
                    continue;
                };
                let collision = services.iter().find_map(|service| {
                    let name = service.name()?;
                    let injected = injected_variables(name, service);
                    let variable = reads.variables.iter().find(|variable| {
                        injected.contains(variable) && env_value(&container, variable).is_none()
                    })?;
                    Some((name, variable))
                });
                let Some((service, variable)) = collision else {
                    continue;
                };
                let spec_pointer = template.spec_pointer.clone();
                sink.report(
                    spec_pointer.clone(),
                    format!(
                        "Service `{service}` gives container `{}` `{variable}=tcp://…`, which {} reads as its own setting and fails on",
                        container.name().unwrap_or("?"),
                        server.server
                    ),
                )
                .short(format!(
                    "Service `{service}` sets {variable} in the pods: {} fails at start; set enableServiceLinks: false",
                    server.server
                ))
                .help(format!(
                    "set enableServiceLinks: false on the pod, or rename the Service ({})",
                    reads.source
                ))
                .maybe_fix(
                    op::add(&format!("{spec_pointer}/enableServiceLinks"), json!(false))
                        .map(|operation| Fix::safe("set enableServiceLinks: false", vec![operation])),
                );
                break;
            }
        }
    }
}

/// Whether the pods an object makes get Service links unless their spec
/// turns them off. Knative defaults a revision's `enableServiceLinks` to
/// false (knative serving pull 9685, revision defaults), so a KServe
/// InferenceService in Serverless mode gets none; a ServingRuntime's pods
/// are an InferenceService's, in a mode the runtime does not know, and its
/// pod spec has no `enableServiceLinks` to set.
fn service_links_default_on(object: &Object) -> bool {
    match object.kind() {
        "InferenceService" => workload::kserve_raw_mode(object).is_some(),
        "ServingRuntime" | "ClusterServingRuntime" => false,
        _ => true,
    }
}

/// The variables Kubernetes gives containers for a Service: the
/// `{NAME}_SERVICE_HOST` family and the Docker-links `{NAME}_PORT` family
/// (pkg/kubelet/envvars).
fn injected_variables(name: &str, service: &Object) -> Vec<String> {
    let prefix = name.to_ascii_uppercase().replace('-', "_");
    let mut variables = vec![
        format!("{prefix}_SERVICE_HOST"),
        format!("{prefix}_SERVICE_PORT"),
        format!("{prefix}_PORT"),
    ];
    for port in service
        .value
        .at("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let number = port.get("port").and_then(Value::as_i64).unwrap_or_default();
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_ascii_uppercase();
        let base = format!("{prefix}_PORT_{number}_{protocol}");
        variables.extend([
            format!("{base}_PROTO"),
            format!("{base}_PORT"),
            format!("{base}_ADDR"),
            base,
        ]);
        if let Some(port_name) = port.get("name").and_then(Value::as_str) {
            variables.push(format!(
                "{prefix}_SERVICE_PORT_{}",
                port_name.to_ascii_uppercase().replace('-', "_")
            ));
        }
    }
    variables
}
