//! Which model server a container runs and the parallel degree its flags
//! state (`serving.parallelism` in rules/serving.yaml), read alike by the
//! rules that compare it with the accelerators the pod gets.

use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::k8s::model::command_words;
use crate::k8s::workload::{env_value, expand_references, Container};
use crate::policy::{ParallelFactor, ServerParallelism, Serving};

/// One factor of the degree as the manifest states it.
#[derive(Debug, Clone)]
pub struct StatedFactor {
    /// The factor's name (`tensor parallel`).
    pub name: String,
    pub value: u64,
    /// How it is written (`--tensor-parallel-size 4`, `NUM_SHARD=2`).
    pub written: String,
    /// Pointer of the string that states it.
    pub pointer: String,
}

/// The parallel degree of a server container.
#[derive(Debug, Clone)]
pub struct Degree<'p> {
    pub server: &'p ServerParallelism,
    /// Accelerators the server expects: the product of the factors.
    pub total: u64,
    /// The factors written; empty when the degree is the server's default.
    pub factors: Vec<StatedFactor>,
    /// Pods the degree is spread over (SGLang's `--nnodes`).
    pub nodes: u64,
}

impl Degree<'_> {
    /// The degree in words: `tensor parallel 4 x pipeline parallel 2`, or
    /// `vLLM's default of 1`.
    pub fn describe(&self) -> String {
        if self.factors.is_empty() {
            return format!("{}'s default degree of {}", self.server.server, self.total);
        }
        self.factors
            .iter()
            .map(|factor| format!("{} {}", factor.name, factor.value))
            .collect::<Vec<_>>()
            .join(" x ")
    }

    /// Where to report: the first factor written, else `None`.
    pub fn pointer(&self) -> Option<&str> {
        self.factors.first().map(|factor| factor.pointer.as_str())
    }
}

/// What can be said of a container's degree.
#[derive(Debug, Clone)]
pub enum Reading<'p> {
    Known(Degree<'p>),
    /// A factor is written but is no number (`${TP:-1}`, an unset
    /// `$(VAR)`): nothing can be said.
    Unknown,
    /// No server whose degree can be read, or none written and no default.
    NotStated,
}

/// Variables a controller sets in the pods it creates, replaced before
/// the flags are read: `LWS_GROUP_SIZE` in a LeaderWorkerSet's pods.
pub type Substitutions<'s> = &'s [(&'s str, String)];

/// The words of a container's command line, `$(VAR)` expanded from its env
/// and from `substitutions` (also in the shell forms `$VAR`, `${VAR}`).
fn words(container: &Container<'_>, substitutions: Substitutions<'_>) -> Vec<(String, String)> {
    let mut words = command_words(container);
    for (word, _) in &mut words {
        for (name, value) in substitutions {
            for form in [
                format!("$({name})"),
                format!("${{{name}}}"),
                format!("${name}"),
            ] {
                if word.contains(&form) {
                    *word = word.replace(&form, value);
                }
            }
        }
    }
    words
}

/// The server a container runs, recognised in its command line first (the
/// command decides what runs), then in its image.
pub fn server_of<'p>(
    container: &Container<'_>,
    serving: &'p Serving,
) -> Option<&'p ServerParallelism> {
    let text = command_text(&command_words(container));
    serving
        .parallelism
        .iter()
        .find(|server| server.pattern.is_match(&text))
        .or_else(|| {
            let image = container.image()?;
            serving
                .parallelism
                .iter()
                .find(|server| server.pattern.is_match(image))
        })
        .or_else(|| {
            serving
                .parallelism
                .iter()
                .find(|server| by_kserve_format(container, server))
        })
}

/// Whether a KServe predictor's `model` container, which names no image,
/// is served by `server` through its model format's runtime.
fn by_kserve_format(container: &Container<'_>, server: &ServerParallelism) -> bool {
    container.image().is_none()
        && container
            .value
            .at("/modelFormat/name")
            .and_then(Value::as_str)
            .is_some_and(|format| {
                server
                    .kserve_formats
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(format))
            })
}

fn command_text(words: &[(String, String)]) -> String {
    words
        .iter()
        .map(|(word, _)| word.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last value of one of `flags` on the command line (`--flag N` or
/// `--flag=N`), with how it is written and where.
fn flag_value<'w>(
    words: &'w [(String, String)],
    flags: &[String],
) -> Option<(&'w str, String, &'w str)> {
    let mut found = None;
    for (index, (word, pointer)) in words.iter().enumerate() {
        for flag in flags {
            if word == flag {
                if let Some((value, _)) = words.get(index + 1) {
                    found = Some((value.as_str(), format!("{flag} {value}"), pointer.as_str()));
                }
            } else if let Some(value) = word
                .strip_prefix(flag.as_str())
                .and_then(|rest| rest.strip_prefix('='))
            {
                found = Some((value, word.clone(), pointer.as_str()));
            }
        }
    }
    found
}

fn has_flag(words: &[(String, String)], flags: &[String]) -> bool {
    words.iter().any(|(word, _)| {
        flags.iter().any(|flag| {
            word == flag
                || word
                    .strip_prefix(flag.as_str())
                    .is_some_and(|rest| rest.starts_with('='))
        })
    })
}

/// A factor's value as stated: `Some(Ok)` a number, `Some(Err)` written
/// but no number, `None` not written.
fn stated(
    container: &Container<'_>,
    words: &[(String, String)],
    factor: &ParallelFactor,
) -> Option<Result<StatedFactor, ()>> {
    if let Some((value, written, pointer)) = flag_value(words, &factor.flags) {
        return Some(parse_degree(value).map(|value| StatedFactor {
            name: factor.name.clone(),
            value,
            written,
            pointer: pointer.to_string(),
        }));
    }
    factor.env.iter().find_map(|name| {
        let (index, value) = env_value(container, name)?;
        let value = expand_references(container, value);
        Some(parse_degree(&value).map(|number| StatedFactor {
            name: factor.name.clone(),
            value: number,
            written: format!("{name}={value}"),
            pointer: format!("{}/env/{index}/value", container.pointer),
        }))
    })
}

fn env_names<'c>(container: &Container<'c>) -> impl Iterator<Item = &'c str> {
    container
        .value
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("name").and_then(Value::as_str))
}

fn parse_degree(text: &str) -> Result<u64, ()> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|value| (1..=65_536).contains(value))
        .ok_or(())
}

/// The parallel degree a server container states. `group`: the container
/// runs in a LeaderWorkerSet group, whose pods share one degree, so
/// per-pod factors (data parallel replicas) are left out and the degree
/// is not divided by a node count.
pub fn degree<'p>(
    container: &Container<'_>,
    serving: &'p Serving,
    group: bool,
    substitutions: Substitutions<'_>,
) -> Reading<'p> {
    let Some(server) = server_of(container, serving) else {
        return Reading::NotStated;
    };
    let words = words(container, substitutions);
    let text = command_text(&words);
    // Ranks spread over a Ray cluster: the pod's accelerators are a part.
    if !group {
        if let Some(spans) = &server.spans_pods {
            let joins_cluster = spans
                .command
                .as_ref()
                .is_some_and(|command| command.is_match(&text))
                || spans
                    .env
                    .iter()
                    .any(|name| env_names(container).any(|have| have == name));
            if joins_cluster {
                return Reading::Unknown;
            }
        }
    }
    let mut factors = Vec::new();
    for factor in &server.factors {
        if (group && factor.per_pod) || has_flag(&words, &factor.unless_flags) {
            continue;
        }
        match stated(container, &words, factor) {
            Some(Ok(found)) => factors.push(found),
            Some(Err(())) => return Reading::Unknown,
            None => {}
        }
    }
    let nodes = match flag_value(&words, &server.nodes_flags) {
        Some((value, _, _)) => match parse_degree(value) {
            Ok(nodes) => nodes,
            Err(()) => return Reading::Unknown,
        },
        None => 1,
    };
    if factors.is_empty() {
        if has_flag(&words, &server.no_default_with) {
            return Reading::NotStated;
        }
        let runs_entrypoint = by_kserve_format(container, server)
            || server
                .entrypoint
                .as_ref()
                .is_some_and(|entrypoint| entrypoint.is_match(&text))
            || (container.value.get("command").is_none_or(Value::is_null)
                && container.image().is_some_and(|image| {
                    server
                        .default_images
                        .as_ref()
                        .is_some_and(|images| images.is_match(image))
                }));
        return match server.default {
            Some(default) if runs_entrypoint && !group => Reading::Known(Degree {
                server,
                total: default,
                factors,
                nodes,
            }),
            _ => Reading::NotStated,
        };
    }
    let total = factors
        .iter()
        .fold(1u64, |product, factor| product.saturating_mul(factor.value));
    Reading::Known(Degree {
        server,
        total,
        factors,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    fn read(value: Value, group: bool) -> Option<(String, u64, u64)> {
        let policy = Policy::built_in().expect("policy");
        let container = Container {
            pointer: "/c".into(),
            value: &value,
            init: false,
        };
        match degree(
            &container,
            &policy.serving,
            group,
            &[("LWS_GROUP_SIZE", "2".into())],
        ) {
            Reading::Known(degree) => {
                Some((degree.server.server.clone(), degree.total, degree.nodes))
            }
            _ => None,
        }
    }

    #[test]
    fn degrees_are_read_from_every_server_form() {
        let cases = [
            (
                json!({"image": "vllm/vllm-openai:v0.9.0", "args": ["--model", "m", "--tensor-parallel-size", "4"]}),
                Some(("vLLM", 4, 1)),
            ),
            (
                json!({"command": ["sh", "-c"], "args": ["vllm serve m -tp 2 --pipeline_parallel_size=2"]}),
                Some(("vLLM", 4, 1)),
            ),
            (
                json!({"command": ["python3", "-m", "vllm.entrypoints.openai.api_server"], "args": ["--tensor-parallel-size=$(TP)"], "env": [{"name": "TP", "value": "8"}]}),
                Some(("vLLM", 8, 1)),
            ),
            (
                json!({"image": "vllm/vllm-openai:latest", "args": ["--model", "m"]}),
                Some(("vLLM", 1, 1)),
            ),
            (
                json!({"image": "ghcr.io/huggingface/text-generation-inference:2.4", "env": [{"name": "NUM_SHARD", "value": "2"}]}),
                Some(("Text Generation Inference", 2, 1)),
            ),
            (
                json!({"image": "lmsysorg/sglang:latest", "command": ["python3", "-m", "sglang.launch_server", "--tp", "2", "--dp-size", "2"]}),
                Some(("SGLang", 4, 1)),
            ),
            (
                json!({"image": "lmsysorg/sglang:latest", "command": ["python3", "-m", "sglang.launch_server", "--tp", "4", "--dp", "2", "--enable-dp-attention"]}),
                Some(("SGLang", 4, 1)),
            ),
            (
                json!({"image": "nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3", "env": [{"name": "NIM_TENSOR_PARALLEL_SIZE", "value": "4"}]}),
                Some(("NVIDIA NIM", 4, 1)),
            ),
        ];
        for (value, expected) in cases {
            let found = read(value.clone(), false);
            assert_eq!(
                found
                    .as_ref()
                    .map(|(server, total, nodes)| (server.as_str(), *total, *nodes)),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn unknown_and_unstated_degrees_say_nothing() {
        // A shell default, an unset variable, TGI and NIM without a setting,
        // a wrapper script that may pass anything.
        for value in [
            json!({"command": ["sh", "-c", "vllm serve m --tensor-parallel-size ${TP:-1}"]}),
            json!({"args": ["--tensor-parallel-size", "$(TP)"], "image": "vllm/vllm-openai"}),
            json!({"image": "ghcr.io/huggingface/text-generation-inference:2.4"}),
            json!({"image": "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3"}),
            json!({"image": "vllm/vllm-openai", "command": ["python3", "/app/start.py"]}),
            json!({"command": ["vllm", "serve", "Qwen/Qwen2.5-Omni-7B", "--omni"]}),
            json!({"command": ["sh", "-c", "ray start --address=$(HEAD):6379; vllm serve m -tp 16"]}),
            json!({"command": ["vllm", "serve", "m", "-tp", "8"], "env": [{"name": "RAY_ADDRESS", "value": "ray://head:10001"}]}),
        ] {
            assert_eq!(read(value.clone(), false), None, "{value}");
        }
    }

    #[test]
    fn a_group_leaves_out_per_pod_factors_and_reads_the_group_size() {
        let leader = json!({"command": ["sh", "-c", "ray start --head; vllm serve m --tensor-parallel-size 8 --pipeline-parallel-size $(LWS_GROUP_SIZE) -dp 2"]});
        assert_eq!(read(leader, true), Some(("vLLM".into(), 16, 1)));
        // No default inside a group: the worker's command states nothing.
        let worker = json!({"image": "vllm/vllm-openai", "args": ["--model", "m"]});
        assert_eq!(read(worker, true), None);
    }
}

/// How long a server container is expected to take to load its model and
/// answer (model-server-startup-probe, scale-to-zero-cold-start).
#[derive(Debug, Clone)]
pub struct LoadEstimate {
    pub model_id: String,
    pub bytes: f64,
    /// How the size was learnt (`model::ModelSize::source`).
    pub size_source: String,
    /// The weights are read from a volume rather than downloaded.
    pub from_volume: bool,
    /// The throughput assumed, in bytes per second.
    pub throughput: f64,
    pub seconds: f64,
}

impl LoadEstimate {
    pub fn how(&self) -> &'static str {
        if self.from_volume {
            "read from a volume"
        } else {
            "downloaded"
        }
    }
}

/// The slowest load estimate of a workload's serving containers: how long
/// its pods take to become Ready.
pub fn slowest_load(
    workload: &crate::input::object::Object,
    policy: &crate::policy::Policy,
) -> Option<LoadEstimate> {
    crate::k8s::workload::pod_templates(workload)
        .iter()
        .flat_map(|template| {
            template
                .main_containers()
                .into_iter()
                .filter_map(|container| load_estimate(workload, template, &container, policy))
                .collect::<Vec<_>>()
        })
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
}

/// The load estimate of a container: its model's size (as
/// hf-home-shm-for-large-models finds it) over the policy's throughput
/// for a download or a volume (`serving.startup`), plus the server's own
/// start. Weights read from a volume (a local path, a bucket, a cache on
/// storage that outlives the pod) load faster than a download; a memory
/// or disk emptyDir starts empty.
pub fn load_estimate(
    object: &crate::input::object::Object,
    template: &crate::k8s::workload::PodTemplate<'_>,
    container: &Container<'_>,
    policy: &crate::policy::Policy,
) -> Option<LoadEstimate> {
    use crate::k8s::model;
    use crate::k8s::workload::{mount_for, mounts, Storage};
    let models = &policy.models;
    let startup = &policy.serving.startup;
    let model_ref = model::model_of(container, models)?;
    let size = model::size_of(object, &model_ref.id, models)?;
    let container_mounts = mounts(template, container);
    let cache = model::cache_dir(container, models);
    let from_volume = model::is_local_or_bucket(&model_ref.id)
        || mount_for(&container_mounts, &cache.path)
            .is_some_and(|mount| matches!(mount.storage, Storage::Shared(_)));
    let throughput = if from_volume {
        startup.volume_bytes_per_second.0
    } else {
        startup.download_bytes_per_second.0
    };
    if throughput <= 0.0 {
        return None;
    }
    Some(LoadEstimate {
        model_id: model_ref.id,
        bytes: size.bytes,
        size_source: size.source,
        from_volume,
        throughput,
        seconds: size.bytes / throughput + startup.startup_overhead.0,
    })
}

/// The port a container's server is told to listen on, by one of `flags`
/// (`--port 8080`, `--port=8080`) or variables (`PORT`), if it is.
pub fn listen_port(container: &Container<'_>, flags: &[String], env: &[String]) -> Option<i64> {
    let words: Vec<&str> = container
        .command_line()
        .flat_map(str::split_whitespace)
        .collect();
    for (index, word) in words.iter().enumerate() {
        for flag in flags {
            let value = match word.strip_prefix(flag.as_str()) {
                Some("") => words.get(index + 1).copied(),
                Some(rest) => rest.strip_prefix('='),
                None => None,
            };
            if let Some(port) = value.and_then(|value| value.trim_matches(['"', '\'']).parse().ok())
            {
                return Some(port);
            }
        }
    }
    env.iter()
        .find_map(|name| crate::k8s::workload::env_value(container, name))
        .and_then(|(_, value)| value.parse().ok())
}

/// The value a container's command line gives one of `flags` (the last
/// one given: `--flag value` or `--flag=value`).
pub fn container_flag(container: &Container<'_>, flags: &[String]) -> Option<String> {
    flag_value(&command_words(container), flags).map(|(value, _, _)| value.to_string())
}
