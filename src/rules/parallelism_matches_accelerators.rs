use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::input::pointer;
use crate::k8s::kserve;
use crate::k8s::serving::{self, Degree, Reading};
use crate::k8s::workload::{self, accelerator_chips, pod_templates, Container};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads the parallel degree a model server's flags state and compares
    /// it with the accelerators it gets:
    ///
    /// - vLLM: `--tensor-parallel-size`/`-tp` x `--pipeline-parallel-size`/`-pp`
    ///   (x `--data-parallel-size`/`-dp` in one pod), in `vllm serve`,
    ///   `python -m vllm.entrypoints.openai.api_server` and image-entrypoint
    ///   forms; 1 when none is written and the container runs vLLM's own
    ///   entrypoint;
    /// - SGLang: `--tp-size`/`--tp` x `--pp-size` x `--dp-size` (not with
    ///   `--enable-dp-attention`), spread over `--nnodes` pods;
    /// - TGI: `--num-shard` or `NUM_SHARD`;
    /// - NIM: `NIM_TENSOR_PARALLEL_SIZE` x `NIM_PIPELINE_PARALLEL_SIZE`.
    ///
    /// `$(VAR)` references are resolved from the container's env (and
    /// `LWS_GROUP_SIZE` from a LeaderWorkerSet's `size`); a value that is
    /// still no number (`${TP:-1}`) says nothing. In a Deployment or
    /// StatefulSet the degree is compared with the container's own
    /// `nvidia.com/gpu`, `amd.com/gpu`, `google.com/tpu`, `habana.ai/gaudi`
    /// or `aws.amazon.com/neuroncore` limit (`serving.rankResources`: one
    /// unit, one rank); in a
    /// LeaderWorkerSet, tensor x pipeline parallel is compared with the
    /// group's accelerators (leader + workers x (size - 1)). A KServe
    /// LLMInferenceService that keeps the presets' vLLM server (its `main`
    /// container states no command or args, the part has no `worker`)
    /// runs `parallelism.tensor`, or vLLM's default of 1.
    ///
    /// - fewer accelerators than the degree: error, the server cannot start;
    /// - more: warning, the extra accelerators sit idle.
    ///
    /// Flags and defaults are data in rules/serving.yaml (`parallelism`),
    /// each with its source.
    ///
    /// ## Why is this bad?
    /// A vLLM or SGLang server asked for tensor parallel 4 on a pod with 2
    /// GPUs fails at start-up, after the image pull and often after the
    /// model download, and crash-loops. The reverse is quieter and costlier:
    /// a pod that requests 8 GPUs and serves with tensor parallel 1 holds 7
    /// accelerators nobody else can schedule.
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    /// - name: vllm
    ///   image: vllm/vllm-openai:v0.9.0
    ///   args: ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4"]
    ///   resources:
    ///     limits:
    ///       nvidia.com/gpu: 2
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   resources:
    ///     limits:
    ///       nvidia.com/gpu: 4
    /// ```
    ///
    /// ## Fix
    /// None: whether the flag or the request is wrong is the author's call.
    pub struct ParallelismMatchesAccelerators {
        id: "parallelism-matches-accelerators",
        severity: Error,
        summary: "A model server's tensor x pipeline parallel degree must equal the accelerators its pod (or LeaderWorkerSet group) gets.",
        fixable: false,
    }
}

impl Rule for ParallelismMatchesAccelerators {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        // A kustomize patch shows only part of the pod.
        // KServe's LLMInferenceService templates are completed from presets:
        // a container without an image of its own is the presets' server.
        let presets = object.kind() == "LLMInferenceService";
        if cx.inference_reason(object).is_none() || (workload::is_fragment(object) && !presets) {
            return;
        }
        let serving = &cx.policy.serving;
        let resources = &serving.rank_resources;
        let templates = pod_templates(object);
        if object.kind() == "LeaderWorkerSet" {
            let size = object
                .value
                .at("/spec/leaderWorkerTemplate/size")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let substitutions = [("LWS_GROUP_SIZE", size.to_string())];
            // The leader's command states the group's degree; a worker
            // that states one must agree too.
            for template in &templates {
                for container in template.main_containers() {
                    if let Reading::Known(degree) =
                        serving::degree(&container, serving, true, &substitutions)
                    {
                        let chips = group_chips(size, &templates, &container, resources);
                        if chips > 0.0 {
                            compare(
                                sink,
                                &degree,
                                chips,
                                &container,
                                &format!("the LeaderWorkerSet group ({size} pods)"),
                                resources,
                            );
                        }
                        return;
                    }
                }
            }
            return;
        }
        for template in &templates {
            if let Some(server) = kserve::llmisvc_preset_server(object, &template.pointer) {
                let container = server.container();
                if let Reading::Known(mut degree) = serving::degree(&container, serving, false, &[])
                {
                    for factor in &mut degree.factors {
                        factor.pointer = server.place(&factor.pointer);
                        if factor.pointer.ends_with("/parallelism/tensor") {
                            factor.written = format!("parallelism.tensor: {}", factor.value);
                        }
                    }
                    let chips = accelerator_chips(&container, resources);
                    if chips > 0.0 {
                        let whom = format!("container `{}`", container.name().unwrap_or("?"));
                        compare(sink, &degree, chips, &container, &whom, resources);
                    }
                }
                continue;
            }
            for container in template.main_containers() {
                if presets && container.image().is_none() {
                    continue;
                }
                let Reading::Known(degree) = serving::degree(&container, serving, false, &[])
                else {
                    continue;
                };
                let chips = accelerator_chips(&container, resources);
                if chips <= 0.0 {
                    continue;
                }
                let per_pod = Degree {
                    total: degree.total.div_ceil(degree.nodes.max(1)),
                    ..degree
                };
                let whom = format!("container `{}`", container.name().unwrap_or("?"));
                compare(sink, &per_pod, chips, &container, &whom, resources);
            }
        }
    }
}

/// The accelerators a LeaderWorkerSet group gives the server that states
/// the degree: its container in the leader and the matching one in each of
/// the `size - 1` workers (by name; else a template's only container with
/// accelerators). A sidecar's accelerators are not the server's.
fn group_chips(
    size: u64,
    templates: &[workload::PodTemplate<'_>],
    server: &Container<'_>,
    resources: &[String],
) -> f64 {
    let in_template = |suffix: &str| -> Option<f64> {
        let template = templates
            .iter()
            .find(|template| template.pointer.ends_with(suffix))?;
        let containers = template.main_containers();
        let with_chips: Vec<f64> = containers
            .iter()
            .map(|container| accelerator_chips(container, resources))
            .filter(|chips| *chips > 0.0)
            .collect();
        containers
            .iter()
            .find(|container| container.name().is_some() && container.name() == server.name())
            .map(|container| accelerator_chips(container, resources))
            .or_else(|| {
                with_chips
                    .first()
                    .copied()
                    .filter(|_| with_chips.len() == 1)
            })
            .or_else(|| Some(with_chips.iter().sum()))
    };
    let worker = in_template("workerTemplate").unwrap_or(0.0);
    let leader = in_template("leaderTemplate").unwrap_or(worker);
    leader + worker * size.saturating_sub(1) as f64
}

/// The name of the accelerator resource a container asks for.
fn resource_name<'r>(container: &Container<'_>, resources: &'r [String]) -> &'r str {
    resources
        .iter()
        .find(|resource| container.resource(resource).is_some())
        .map_or("accelerators", String::as_str)
}

fn compare(
    sink: &mut Sink,
    degree: &Degree<'_>,
    chips: f64,
    container: &Container<'_>,
    whom: &str,
    resources: &[String],
) {
    let wanted = degree.total as f64;
    if (wanted - chips).abs() < 0.5 {
        return;
    }
    let resource = resource_name(container, resources);
    let section = if container
        .value
        .at(&format!("/resources/limits/{}", pointer::escape(resource)))
        .is_some()
    {
        "limits"
    } else {
        "requests"
    };
    let limit_pointer = pointer::join(
        &format!("{}/resources/{section}", container.pointer),
        resource,
    );
    let pointer = degree.pointer().map_or(limit_pointer, str::to_string);
    let server = &degree.server.server;
    let written = degree
        .factors
        .iter()
        .map(|factor| format!("`{}`", factor.written))
        .collect::<Vec<_>>()
        .join(", ");
    let set_by = if written.is_empty() {
        String::new()
    } else {
        format!(" (set by {written})")
    };
    if wanted > chips {
        sink.report(
            pointer,
            format!(
                "{server} runs {} = {} accelerators, but {whom} gets {chips} {resource}; it fails at start",
                degree.describe(),
                degree.total,
            ),
        )
        .short(format!(
            "{server} needs {} accelerators, {whom} gets {chips}",
            degree.total
        ))
        .help(format!(
            "request {} {resource}, or lower the parallel degree{set_by} to {chips}",
            degree.total
        ));
    } else {
        let idle = chips - wanted;
        sink.report(
            pointer,
            format!(
                "{server} runs {} on {} accelerators, but {whom} gets {chips} {resource}: {idle} sit idle",
                degree.describe(),
                degree.total,
            ),
        )
        .short(format!(
            "{server} uses {} of the {chips} accelerators {whom} gets",
            degree.total
        ))
        .help(format!(
            "raise the parallel degree{set_by} to {chips}, or request {} {resource}",
            degree.total
        ))
        .severity(Severity::Warning);
    }
}
