use crate::input::pointer::Lookup;
use serde_json::{json, Value};

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::model::command_words;
use crate::k8s::workload::{self, pod_templates};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Finds inference pods with `hostNetwork: true` and no `dnsPolicy:
    /// ClusterFirstWithHostNet` whose servers name their peers by cluster
    /// DNS: a rendezvous flag (`--dist-init-addr`, `--master-addr`,
    /// `--ray-address`, `--address`, …) or variable (`MASTER_ADDR`,
    /// `RAY_ADDRESS`, `LWS_LEADER_ADDRESS`) whose value is a Service or pod
    /// name, or a LeaderWorkerSet, whose workers reach the leader by its
    /// pod DNS name.
    ///
    /// ## Why is this bad?
    /// With `hostNetwork: true` the default `dnsPolicy: ClusterFirst`
    /// falls back to the node's resolver (Kubernetes documentation, "DNS
    /// for Services and Pods", Pod's DNS Policy): `leader.vllm.svc` and
    /// `vllm-0.vllm` do not resolve, and multi-node serving waits at its
    /// rendezvous until it times out.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   hostNetwork: true
    ///   containers:
    ///   - args: ["--dist-init-addr", "sglang-leader.serving.svc:5000", "--nnodes", "2"]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   hostNetwork: true
    ///   dnsPolicy: ClusterFirstWithHostNet
    /// ```
    ///
    /// ## Fix
    /// Sets `dnsPolicy: ClusterFirstWithHostNet` (safe: it is what
    /// `hostNetwork` pods that use cluster names need).
    pub struct HostNetworkDns {
        id: "host-network-dns",
        severity: Error,
        summary: "hostNetwork pods that reach peers by cluster DNS need dnsPolicy: ClusterFirstWithHostNet.",
        fixable: true,
    }
}

impl Rule for HostNetworkDns {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if cx.inference_reason(object).is_none() || workload::may_be_completed(object) {
            return;
        }
        // A group of one pod (size 1, the CRD's default) has no workers
        // that look the leader up.
        let group = object.kind() == "LeaderWorkerSet"
            && object
                .value
                .at("/spec/leaderWorkerTemplate/size")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                > 1;
        for template in pod_templates(object) {
            let Some(spec) = template.spec() else {
                continue;
            };
            if spec.get("hostNetwork") != Some(&Value::Bool(true)) {
                continue;
            }
            if spec.get("dnsPolicy").and_then(Value::as_str) == Some("ClusterFirstWithHostNet") {
                continue;
            }
            let peer = template
                .main_containers()
                .iter()
                .find_map(|container| cluster_name_peer(container, &cx.policy.serving.rendezvous));
            let reason = match (peer, group) {
                (Some(peer), _) => format!("the servers reach `{peer}` by cluster DNS"),
                (None, true) => {
                    "the LeaderWorkerSet's workers reach their leader by its pod DNS name"
                        .to_string()
                }
                (None, false) => continue,
            };
            let spec_pointer = template.spec_pointer.clone();
            sink.report(
                format!("{spec_pointer}/hostNetwork"),
                format!("hostNetwork without dnsPolicy ClusterFirstWithHostNet resolves via the node; {reason}"),
            )
            .short("hostNetwork without dnsPolicy: ClusterFirstWithHostNet: cluster names do not resolve")
            .help("set dnsPolicy: ClusterFirstWithHostNet, or the rendezvous never completes (Kubernetes documentation, DNS for Services and Pods)")
            .maybe_fix(
                op::add(&format!("{spec_pointer}/dnsPolicy"), json!("ClusterFirstWithHostNet"))
                    .map(|operation| {
                        Fix::safe("set dnsPolicy: ClusterFirstWithHostNet", vec![operation])
                    }),
            );
        }
    }
}

/// A rendezvous peer a container names by a cluster DNS name (a name with
/// no dot, or one under `.svc`/`.cluster.local`; not an IP address).
fn cluster_name_peer(
    container: &workload::Container<'_>,
    rendezvous: &crate::policy::Rendezvous,
) -> Option<String> {
    let words = command_words(container);
    let from_flags = words.iter().enumerate().find_map(|(index, (word, _))| {
        rendezvous.flags.iter().find_map(|flag| {
            if word == flag.as_str() {
                words.get(index + 1).map(|(value, _)| value.clone())
            } else {
                word.strip_prefix(&format!("{flag}=")).map(str::to_string)
            }
        })
    });
    let from_env = || {
        rendezvous.env.iter().find_map(|name| {
            workload::env_value(container, name).map(|(_, value)| value.to_string())
        })
    };
    let value = from_flags.or_else(from_env)?;
    let host = value
        .trim_start_matches("ray://")
        .trim_start_matches("tcp://")
        .split([':', '/'])
        .next()
        .unwrap_or_default()
        .to_string();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_variable = host.starts_with('$') || host.is_empty();
    let cluster = !host.contains('.') || host.contains(".svc") || host.ends_with(".cluster.local");
    (!is_ip && !is_variable && cluster && host != "localhost").then_some(host)
}
