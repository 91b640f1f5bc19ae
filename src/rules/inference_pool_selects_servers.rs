use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::inference_pool;
use crate::k8s::selection::{self, PodLabels};
use crate::k8s::serving::listen_port;
use crate::k8s::workload::{pod_templates, PodTemplate};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks an InferencePool of the Gateway API Inference Extension
    /// (`inference.networking.k8s.io/v1`, or `inference.networking.x-k8s.io/v1alpha2`)
    /// against the workloads of its application and namespace in the input:
    /// its selector (v1 `spec.selector.matchLabels`, v1alpha2
    /// `spec.selector`) must select the pods of at least one model-server
    /// workload, and a server the pool selects must not be told to listen
    /// on another port than the pool's `targetPorts` (v1) or
    /// `targetPortNumber` (v1alpha2). A selector that also selects pods
    /// that run no model server (the endpoint picker, a router) is a
    /// warning. A pool whose application has no workload in the input
    /// (installed by another chart) is not checked.
    ///
    /// ## Why is this bad?
    /// The endpoint picker routes only to the pool's pods on the target
    /// port ("InferencePool", Gateway API Inference Extension
    /// documentation): a selector that matches no server pod leaves the
    /// pool empty and every request to its HTTPRoute fails; a server
    /// listening elsewhere is picked but refuses the connection; and an
    /// endpoint picker selected as an endpoint is sent inference requests
    /// it cannot serve.
    ///
    /// ## Example
    /// ```yaml
    /// kind: InferencePool
    /// spec:
    ///   selector: {matchLabels: {app: vllm-llama3}}
    ///   targetPorts: [{number: 8000}]
    /// ---
    /// kind: Deployment        # pods labelled app: vllm-llama3-8b
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   selector: {matchLabels: {app: vllm-llama3-8b}}
    /// ```
    ///
    /// ## Fix
    /// None: which pods belong in the pool is the author's choice.
    pub struct InferencePoolSelectsServers {
        id: "inference-pool-selects-servers",
        severity: Error,
        summary: "An InferencePool must select model-server pods that listen on its target port.",
        fixable: false,
    }
}

impl Rule for InferencePoolSelectsServers {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if !inference_pool::is_pool(object) {
            return;
        }
        let Some((selector_pointer, selector)) = inference_pool::selector(&object.value) else {
            return;
        };
        // The workloads of the pool's application and namespace; none in
        // the input means the servers come from elsewhere.
        let beside: Vec<&Object> = cx
            .of_kind(object, &["Deployment", "StatefulSet", "LeaderWorkerSet"])
            .map(|(_, workload)| workload)
            .filter(|workload| cx.paired(object, workload))
            .collect();
        if beside.is_empty() {
            return;
        }
        let mut servers: Vec<PodTemplate<'_>> = Vec::new();
        let mut others: Vec<String> = Vec::new();
        for (_, workload) in cx.workloads_selectable_by(object, &selector) {
            if !cx.paired(object, workload) {
                continue;
            }
            let inference = cx.inference_reason(workload).is_some();
            for template in pod_templates(workload) {
                if !selection::selects(&selector, &PodLabels::of(workload, &template, cx.policy)) {
                    continue;
                }
                if inference {
                    servers.push(template);
                } else {
                    others.push(format!(
                        "{} `{}`",
                        workload.kind(),
                        workload.name().unwrap_or("?")
                    ));
                }
            }
        }
        let any_server_beside = beside
            .iter()
            .any(|workload| cx.inference_reason(workload).is_some());
        if servers.is_empty() {
            if any_server_beside {
                sink.report(
                    selector_pointer,
                    "the selector matches none of the model-server pods beside the pool: the pool has no endpoints and its route fails",
                )
                .short("the selector matches no model-server pod beside it: match the server's pod labels")
                .help("make the selector match the labels of the model server's pod template");
            }
            return;
        }
        if !others.is_empty() {
            others.sort();
            others.dedup();
            sink.report(
                selector_pointer,
                format!(
                    "the selector also matches pods that run no model server ({}): the endpoint picker sends them inference requests",
                    others.join(", ")
                ),
            )
            .severity(Severity::Warning)
            .short("the selector also matches pods that serve no model: narrow it to the servers")
            .help("give the model-server pods a label of their own and select only it");
        }
        let scraping = &cx.policy.scraping;
        let containers: Vec<_> = servers
            .iter()
            .flat_map(|template| template.main_containers())
            .collect();
        let told: Vec<i64> = containers
            .iter()
            .filter_map(|container| {
                listen_port(container, &scraping.port_flags, &scraping.port_env)
            })
            .collect();
        for (port_pointer, port) in inference_pool::target_ports(&object.value) {
            let declared = containers
                .iter()
                .any(|container| container.declares_port(port));
            if declared || told.is_empty() || told.contains(&port) {
                continue;
            }
            let other = told[0];
            sink.report(
                port_pointer,
                format!(
                    "the pool targets port {port}, but its model servers are told to listen on {other} and declare no {port}: every picked endpoint refuses the request"
                ),
            )
            .short(format!("targets port {port}, the servers listen on {other}: use {other}"))
            .help(format!("set the pool's target port to {other}, or start the servers on {port}"));
        }
    }
}
