use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::inference_pool::{self, PickerRef};
use crate::k8s::selection::{self, PodLabels};
use crate::k8s::serving::container_flag;
use crate::k8s::workload::{pod_templates, Container};
use crate::policy::EndpointPicker;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks the endpoint picker an InferencePool of the Gateway API
    /// Inference Extension names: `spec.endpointPickerRef` (v1) or
    /// `spec.extensionRef` (v1alpha2), a Service unless it says otherwise.
    ///
    /// - A v1 reference to a Service must give `port.number` (the CRD's
    ///   validation rule rejects the pool otherwise). A v1alpha2
    ///   `extensionRef` without `portNumber` means port 9002.
    /// - The Service it names, when the input (or, in the webhook, the
    ///   cluster) has it, must expose that port, and must send it to the
    ///   port the endpoint picker it selects listens on (`--grpc-port`,
    ///   older `-grpcPort`, default 9002). A `targetPort` given by name is
    ///   looked up among the picker container's ports, as the endpoints
    ///   controller does in each pod: a name the container does not
    ///   declare leaves the Service without endpoints.
    /// - When the input runs the endpoint picker of this pool (a container
    ///   started with `--pool-name` or `-poolName` set to the pool's name)
    ///   but defines no Service of the referenced name, the reference
    ///   leads nowhere. When the picker and its Service are installed
    ///   apart (the project's Helm chart, another directory), nothing is
    ///   reported offline; the webhook asks the cluster.
    /// - A reference without `failureMode` is an info: the default,
    ///   `FailClose`, fails every request to the pool while the picker is
    ///   unreachable, which the help names so that it is a choice.
    ///
    /// Flags, ports and defaults are policy data (`serving.endpointPicker`),
    /// from the project's source and API reference.
    ///
    /// ## Why is this bad?
    /// The gateway asks the endpoint picker, over gRPC on that Service
    /// port, which pod gets each request ("InferencePool", Gateway API
    /// Inference Extension documentation). A reference to a Service that
    /// does not exist or to the wrong port leaves the gateway without a
    /// picker: with the default `FailClose` every request to the pool's
    /// HTTPRoute fails, though every model server is healthy.
    ///
    /// ## Example
    /// ```yaml
    /// kind: InferencePool
    /// spec:
    ///   endpointPickerRef: {name: llama-epp, port: {number: 9002}}
    /// ---
    /// kind: Service
    /// metadata: {name: llama-epp}
    /// spec:
    ///   ports: [{port: 9090}]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   ports: [{name: grpc-ext-proc, port: 9002}]
    /// ```
    ///
    /// ## Fix
    /// None: whether the Service or the pool has the right port is the
    /// author's choice.
    pub struct InferencePoolEndpointPicker {
        id: "inference-pool-endpoint-picker",
        severity: Error,
        summary: "An InferencePool's endpoint picker reference must lead to a Service and port the picker listens on.",
        fixable: false,
    }
}

/// The workload kinds an endpoint picker may run as.
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet"];

/// Where a Service port sends its traffic in the pod.
#[derive(Clone, Copy)]
enum TargetPort<'a> {
    Number(i64),
    /// A container port's name, resolved in each pod.
    Named(&'a str),
}

/// The port the picker's container listens on for the gateway.
fn grpc_port(container: &Container<'_>, picker: &EndpointPicker) -> i64 {
    container_flag(container, &picker.grpc_port_flags)
        .and_then(|value| value.parse().ok())
        .unwrap_or(picker.default_grpc_port)
}

/// Whether a container is the endpoint picker of the pool `name`.
fn serves_pool(container: &Container<'_>, picker: &EndpointPicker, name: &str) -> bool {
    container_flag(container, &picker.pool_flags).is_some_and(|value| value == name)
}

impl Rule for InferencePoolEndpointPicker {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !inference_pool::is_pool(object) {
            return;
        }
        let Some(pool_name) = object.name() else {
            return;
        };
        let Some(reference) = PickerRef::of(&object.value) else {
            return;
        };
        let Some(name) = reference.service() else {
            return;
        };
        let pointer = reference.pointer;
        let picker = &cx.policy.serving.endpoint_picker;
        let failure_mode = reference.text("failureMode");
        let mode = failure_mode.unwrap_or(&picker.default_failure_mode);
        let (port, port_pointer) = if reference.v1 {
            match reference.value.at("/port/number").and_then(Value::as_i64) {
                Some(port) => (port, format!("{pointer}/port/number")),
                None => {
                    sink.report(
                        pointer,
                        format!("the reference to Service `{name}` gives no port: the apiserver rejects an endpointPickerRef to a Service without `port.number`"),
                    )
                    .short("a Service reference needs port.number")
                    .help(format!(
                        "add `port: {{number: {}}}`, the port of the picker's Service",
                        picker.default_grpc_port
                    ));
                    return;
                }
            }
        } else {
            match reference.value.get("portNumber").and_then(Value::as_i64) {
                Some(port) => (port, format!("{pointer}/portNumber")),
                None => (picker.default_ref_port, pointer.to_string()),
            }
        };
        if failure_mode.is_none() {
            sink.report(
                pointer,
                format!("failureMode is not stated: the default, {mode}, fails every request to the pool while the endpoint picker is unreachable"),
            )
            .severity(Severity::Info)
            .short(format!("no failureMode: {mode} applies"))
            .help(format!(
                "state `failureMode: {mode}` to keep that, or `FailOpen` to let the gateway route without the picker's choice while it is down"
            ));
        }
        let consequence = if mode == "FailOpen" {
            "with FailOpen the gateway routes without the picker's load-aware choice".to_string()
        } else {
            format!("with {mode} every request to the pool fails")
        };
        let service = cx
            .named(object, name)
            .map(|(_, candidate)| candidate)
            .find(|candidate| candidate.kind() == "Service" && cx.paired(object, candidate));
        let Some(service) = service else {
            self.report_missing(cx, object, pool_name, name, pointer, &consequence, sink);
            return;
        };
        let ports: Vec<&Value> = service
            .value
            .at("/spec/ports")
            .and_then(Value::as_array)
            .map(|ports| ports.iter().collect())
            .unwrap_or_default();
        let Some(service_port) = ports
            .iter()
            .find(|candidate| candidate.get("port").and_then(Value::as_i64) == Some(port))
        else {
            let listed: Vec<String> = ports
                .iter()
                .filter_map(|candidate| candidate.get("port").and_then(Value::as_i64))
                .map(|number| number.to_string())
                .collect();
            let has = if listed.is_empty() {
                "no ports".to_string()
            } else {
                format!("port {}", listed.join(", "))
            };
            sink.report(
                port_pointer,
                format!("Service `{name}` has {has}, not {port}: the gateway cannot reach the picker; {consequence}"),
            )
            .short(format!("Service `{name}` has no port {port}"))
            .help(format!(
                "point the reference at the Service's picker port, or expose {port} on Service `{name}`"
            ));
            return;
        };
        // The picker behind the Service: does it listen where the Service
        // sends the gateway? A targetPort is a number, a name of one of the
        // pod's container ports, or absent (the Service port itself).
        let target = match service_port.get("targetPort") {
            None => TargetPort::Number(port),
            Some(Value::String(name)) => match name.parse::<i64>() {
                Ok(number) => TargetPort::Number(number),
                Err(_) => TargetPort::Named(name),
            },
            Some(value) => match value.as_i64() {
                Some(number) => TargetPort::Number(number),
                None => return,
            },
        };
        let Some(selector) = service
            .value
            .at("/spec/selector")
            .filter(|value| value.is_object())
        else {
            return;
        };
        let selector = json!({ "matchLabels": selector });
        for (_, workload) in cx.of_kind(object, WORKLOADS) {
            if !cx.paired(object, workload) {
                continue;
            }
            for template in pod_templates(workload) {
                if !selection::selects(&selector, &PodLabels::of(workload, &template, cx.policy)) {
                    continue;
                }
                for container in template.main_containers() {
                    if !serves_pool(&container, picker, pool_name) {
                        continue;
                    }
                    let listens = grpc_port(&container, picker);
                    let target = match target {
                        TargetPort::Number(number) => number,
                        TargetPort::Named(port_name) => {
                            // The endpoints controller resolves the name in
                            // each pod; a pod without it gets no endpoint.
                            let declared = container.declared_ports().iter().find(|declared| {
                                declared.get("name").and_then(Value::as_str) == Some(port_name)
                            });
                            match declared
                                .and_then(|declared| declared.get("containerPort"))
                                .and_then(Value::as_i64)
                            {
                                Some(number) => number,
                                None => {
                                    sink.report(
                                        port_pointer.clone(),
                                        format!(
                                            "Service `{name}` targets port `{port_name}`, which picker `{}` does not name: {consequence}",
                                            workload.name().unwrap_or("?")
                                        ),
                                    )
                                    .short(format!("the picker declares no port named `{port_name}`"))
                                    .help(format!(
                                        "name the picker's container port {listens} `{port_name}` (ports: [{{name: {port_name}, containerPort: {listens}}}]), or set the Service's targetPort to {listens}"
                                    ));
                                    return;
                                }
                            }
                        }
                    };
                    if target != listens {
                        sink.report(
                            port_pointer.clone(),
                            format!(
                                "Service `{name}` sends port {port} to {target}, but the picker in {} `{}` listens on {listens}: {consequence}",
                                workload.kind(),
                                workload.name().unwrap_or("?")
                            ),
                        )
                        .short(format!("the picker listens on {listens}, the Service targets another port"))
                        .help(format!(
                            "set the Service port's targetPort to {listens}, or start the picker with --grpc-port matching it"
                        ));
                    }
                    return;
                }
            }
        }
    }
}

impl InferencePoolEndpointPicker {
    /// The Service named is not in the input: an error when the cluster
    /// said it has none, or when the input runs this pool's picker (so its
    /// Service belongs here too); otherwise it is installed elsewhere.
    #[allow(clippy::too_many_arguments)]
    fn report_missing(
        &self,
        cx: &Context<'_>,
        pool: &Object,
        pool_name: &str,
        name: &str,
        pointer: &str,
        consequence: &str,
        sink: &mut Sink,
    ) {
        let name_pointer = format!("{pointer}/name");
        if cx.facts.is_missing("Service", cx.namespace_of(pool), name) {
            sink.report(
                name_pointer,
                format!("Service `{name}` does not exist in the namespace, so the gateway has no endpoint picker: {consequence}"),
            )
            .short(format!("Service `{name}` does not exist"))
            .help("create the endpoint picker's Service, or name the one that exists");
            return;
        }
        let picker = &cx.policy.serving.endpoint_picker;
        let running = cx
            .of_kind(pool, WORKLOADS)
            .map(|(_, workload)| workload)
            .filter(|workload| cx.paired(pool, workload))
            .find(|workload| {
                pod_templates(workload).iter().any(|template| {
                    template
                        .main_containers()
                        .iter()
                        .any(|container| serves_pool(container, picker, pool_name))
                })
            });
        let Some(workload) = running else {
            return;
        };
        let services: Vec<&str> = cx
            .of_kind(pool, &["Service"])
            .map(|(_, service)| service)
            .filter(|service| cx.paired(pool, service))
            .filter_map(Object::name)
            .collect();
        let mut help = format!(
            "add a Service named `{name}` that selects the pods of {} `{}`",
            workload.kind(),
            workload.name().unwrap_or("?")
        );
        if !services.is_empty() {
            help.push_str(&format!(
                ", or name one of the Services beside it ({})",
                services.join(", ")
            ));
        }
        sink.report(
            name_pointer,
            format!(
                "this pool's endpoint picker runs in {} `{}`, but no Service `{name}` is defined beside it: {consequence}",
                workload.kind(),
                workload.name().unwrap_or("?")
            ),
        )
        .short(format!("no Service `{name}` beside the picker"))
        .help(help);
    }
}
