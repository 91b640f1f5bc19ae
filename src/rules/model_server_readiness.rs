use crate::input::pointer::Lookup;
use serde_json::json;

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::model::{self, command_words};
use crate::k8s::selection::{selects, PodLabels};
use crate::k8s::serving;
use crate::k8s::workload::{self, env_value, pod_templates, Container};
use crate::policy::ServerHealth;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds model server containers (a server that loads a model the
    /// rules can name) without a `readinessProbe` whose pods
    /// get traffic: a Service of the input selects them, or an autoscaler
    /// scales their workload. The server's health endpoint and port are
    /// data (`serving.health`: vLLM `/health` on `--port`, default 8000;
    /// SGLang `/health`, 30000; TGI `/health` on `--port` or `PORT`; NIM
    /// `/v1/health/ready`, 8000).
    ///
    /// ## Why is this bad?
    /// Without a readiness probe a pod is Ready as soon as its container
    /// starts, while the server is still downloading and loading weights
    /// for minutes: the Service sends it requests that fail or wait, and an
    /// HPA counts it as capacity it does not yet have (new pods report no
    /// metrics, so the averages it reads are wrong until they load).
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    /// - name: vllm
    ///   image: vllm/vllm-openai:v0.8.5
    ///   args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   readinessProbe:
    ///     httpGet: {path: /health, port: 8000}
    ///     periodSeconds: 10
    /// ```
    ///
    /// ## Fix
    /// Adds that probe on the server's health endpoint: safe when the
    /// container states its port (the server's flag or variable); when the
    /// port is the server's default, unsafe, to be checked against the
    /// container's ports.
    pub struct ModelServerReadiness {
        id: "model-server-readiness",
        severity: Warning,
        summary: "A model server behind a Service or an autoscaler needs a readinessProbe, or it gets traffic while it loads weights.",
        fixable: true,
    }
}

impl Rule for ModelServerReadiness {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() || workload::may_be_completed(object) {
            return;
        }
        let autoscaled = cx.autoscalers_of(object).next().is_some();
        for template in pod_templates(object) {
            let labels = PodLabels::of(object, &template, cx.policy);
            let service = cx
                .of_kind(object, &["Service"])
                .map(|(_, service)| service)
                .filter(|service| cx.paired(service, object))
                .find(|service| {
                    service
                        .value
                        .at("/spec/selector")
                        .filter(|selector| selector.is_object())
                        .is_some_and(|selector| {
                            selects(&json!({ "matchLabels": selector }), &labels)
                        })
                });
            let why = match (service, autoscaled) {
                (Some(service), _) => format!(
                    "Service `{}` sends it traffic while it loads the model",
                    service.name().unwrap_or("?")
                ),
                (None, true) => {
                    "its autoscaler counts it as capacity while it loads the model".to_string()
                }
                (None, false) => continue,
            };
            for container in template.main_containers() {
                if container.value.get("readinessProbe").is_some() {
                    continue;
                }
                // A server that loads a model: a router or a mock that only
                // names the server does not take minutes to be ready.
                let Some(server) = serving::server_of(&container, &cx.policy.serving) else {
                    continue;
                };
                let Some(health) = cx
                    .policy
                    .serving
                    .health
                    .iter()
                    .find(|health| health.server == server.server)
                else {
                    continue;
                };
                let loads_model = model::model_of(&container, &cx.policy.models).is_some()
                    || health.image_is_model;
                if !loads_model {
                    continue;
                }
                let name = container.name().unwrap_or("?");
                let port = port_of(&container, health);
                sink.report(
                    container.pointer.clone(),
                    format!(
                        "{} container `{name}` has no readinessProbe: {why}",
                        server.server
                    ),
                )
                .short(format!(
                    "`{name}` has no readinessProbe: it is Ready before its model loads; probe {}",
                    health.path
                ))
                .help(format!(
                    "add readinessProbe: httpGet {} on the server's port ({})",
                    health.path, health.source
                ))
                .maybe_fix(
                    port.and_then(|(port, stated)| probe_fix(&container, health, port, stated)),
                );
            }
        }
    }
}

/// The port the server listens on and whether the container states it
/// (a flag or variable) rather than relying on the server's default.
fn port_of(container: &Container<'_>, health: &ServerHealth) -> Option<(u16, bool)> {
    let words = command_words(container);
    let flagged = words.iter().enumerate().find_map(|(index, (word, _))| {
        health.port_flags.iter().find_map(|flag| {
            if word == flag {
                words.get(index + 1).map(|(value, _)| value.clone())
            } else {
                word.strip_prefix(&format!("{flag}=")).map(str::to_string)
            }
        })
    });
    let from_env = || {
        health
            .port_env
            .iter()
            .find_map(|name| env_value(container, name).map(|(_, value)| value.to_string()))
    };
    match flagged.or_else(from_env) {
        Some(text) => text.trim().parse().ok().map(|port| (port, true)),
        None => health.default_port.map(|port| (port, false)),
    }
}

fn probe_fix(
    container: &Container<'_>,
    health: &ServerHealth,
    port: u16,
    stated: bool,
) -> Option<Fix> {
    let probe = json!({
        "httpGet": {"path": health.path, "port": port},
        "periodSeconds": 10,
        "failureThreshold": 3,
    });
    let operation = op::add(&format!("{}/readinessProbe", container.pointer), probe)?;
    let description = format!("add a readinessProbe on {}:{port}", health.path);
    // A default port is the server's, but the container may listen elsewhere.
    let declared_elsewhere =
        !container.declared_ports().is_empty() && !container.declares_port(i64::from(port));
    Some(if stated && !declared_elsewhere {
        Fix::safe(description, vec![operation])
    } else {
        Fix::unsafe_(description, vec![operation])
    })
}
