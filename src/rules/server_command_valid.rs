use serde_json::Value;

use crate::engine::finding::{op, Fix};
use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::model::image_entrypoint;
use crate::k8s::workload::{self, expand_references, pod_templates};
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Checks a model server container's `args` against its image's
    /// entrypoint. A container that sets `args` but no `command` runs the
    /// image's ENTRYPOINT with the args appended: in the `vllm/vllm-openai`
    /// image that is `vllm serve`, so `args: ["serve", …]`,
    /// `["vllm", "serve", …]` or `["python3", "-m",
    /// "vllm.entrypoints.openai.api_server", …]` run `vllm serve serve …`,
    /// which exits at once; TGI's image runs `text-generation-launcher`
    /// likewise. The images, their entrypoints and the args that repeat
    /// them are data (`models.imageEntrypoints` in rules/models.yaml, each
    /// from the image's Dockerfile).
    ///
    /// After an entrypoint that takes the model first (`vllm serve`), a
    /// positional model (`args: ["Qwen/Qwen3-8B", …]`) is the model every
    /// rule that needs one reads (size, cache, start-up, fit).
    ///
    /// ## Why is this bad?
    /// The server exits with "unrecognized arguments" before it loads
    /// anything, the pod goes into CrashLoopBackOff, and nothing serves:
    /// a mistake that passes every schema check.
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    /// - name: vllm
    ///   image: vllm/vllm-openai:v0.10.1
    ///   args: ["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192"]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   args: ["Qwen/Qwen3-8B", "--max-model-len", "8192"]
    /// ```
    /// or set `command: ["vllm", "serve"]` and keep the model in `args`.
    ///
    /// ## Fix
    /// Removes the args that repeat the entrypoint (safe: what remains is
    /// what the author meant the server to get).
    pub struct ServerCommandValid {
        id: "server-command-valid",
        severity: Error,
        summary: "A container's args must not repeat its image's entrypoint (`vllm serve serve` exits at once).",
        fixable: true,
    }
}

impl Rule for ServerCommandValid {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if workload::is_fragment(object) {
            return;
        }
        let models = &cx.policy.models;
        for template in pod_templates(object) {
            for container in template.main_containers() {
                let Some(entrypoint) = image_entrypoint(&container, models) else {
                    continue;
                };
                let Some(args) = container.value.get("args").and_then(Value::as_array) else {
                    continue;
                };
                let words: Vec<String> = args
                    .iter()
                    .map(|arg| {
                        arg.as_str()
                            .map(|text| expand_references(&container, text))
                            .unwrap_or_default()
                    })
                    .collect();
                let Some(repeat) = entrypoint
                    .repeats
                    .iter()
                    .filter(|repeat| words.starts_with(repeat))
                    .max_by_key(|repeat| repeat.len())
                else {
                    continue;
                };
                let runs = entrypoint
                    .entrypoint
                    .iter()
                    .chain(repeat.iter())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
                let pointer = format!("{}/args/0", container.pointer);
                // Last first, so that each index still names the item it
                // named before the removals.
                let ops: Option<Vec<_>> = (0..repeat.len())
                    .rev()
                    .map(|index| op::remove(&format!("{}/args/{index}", container.pointer)))
                    .collect();
                sink.report(
                    pointer.clone(),
                    format!(
                        "args start with `{}`, which the image's entrypoint `{}` already runs: the container runs `{runs} …` and exits",
                        repeat.join(" "),
                        entrypoint.entrypoint.join(" ")
                    ),
                )
                .short(format!(
                    "args repeat the entrypoint `{}`: the server exits at start",
                    entrypoint.entrypoint.join(" ")
                ))
                .help(format!(
                    "drop `{}` from args (the image runs `{}` itself: {}), or set command to run something else",
                    repeat.join(" "),
                    entrypoint.entrypoint.join(" "),
                    entrypoint.source
                ))
                .maybe_fix(ops.map(|ops| {
                    Fix::safe(
                        format!("remove `{}` from args", repeat.join(" ")),
                        ops,
                    )
                }));
            }
        }
    }
}
