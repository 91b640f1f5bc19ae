//! Which model a serving container loads, and how large its weights are.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::input::object::Object;
use crate::k8s::workload::{env_value, expand_references, Container};
use crate::policy::Models;

/// Where the model id was found.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub id: String,
    /// Pointer of the string that names it.
    pub pointer: String,
}

/// How large the model is and how that was learnt.
#[derive(Debug, Clone)]
pub struct ModelSize {
    pub bytes: f64,
    pub source: String,
}

/// The words of a container's command line, with `$(VAR)` expanded and
/// shell scripts (`sh -c "vllm serve …"`) split into words.
pub fn command_words(container: &Container<'_>) -> Vec<(String, String)> {
    let mut words = Vec::new();
    for key in ["command", "args"] {
        let Some(items) = container.value.get(key).and_then(Value::as_array) else {
            continue;
        };
        for (index, item) in items.iter().enumerate() {
            let Some(text) = item.as_str() else { continue };
            let pointer = format!("{}/{key}/{index}", container.pointer);
            for word in expand_references(container, text).split_whitespace() {
                let word = word.trim_matches(|ch| ch == '"' || ch == '\'' || ch == '\\');
                if !word.is_empty() {
                    words.push((word.to_string(), pointer.clone()));
                }
            }
        }
    }
    words
}

/// The repository of a KServe `storageUri` on the Hugging Face Hub,
/// `hf://ORG/MODEL[:REVISION]` (kserve `python/storage`: its tests name
/// the format): `ORG/MODEL`.
pub fn kserve_hub_id(uri: &str) -> Option<&str> {
    let repository = uri.strip_prefix("hf://")?;
    let id = repository.split(':').next().unwrap_or(repository);
    let (organisation, name) = id.split_once('/')?;
    (!organisation.is_empty() && !name.is_empty() && !name.contains('/')).then_some(id)
}

/// A KServe predictor whose `storageUri` is on the Hub: the storage
/// initializer downloads that repository to /mnt/models, where the
/// runtime's own `--model` points.
fn kserve_hub_model(container: &Container<'_>) -> Option<ModelRef> {
    let uri = container.value.get("storageUri").and_then(Value::as_str)?;
    Some(ModelRef {
        id: kserve_hub_id(uri)?.to_string(),
        pointer: format!("{}/storageUri", container.pointer),
    })
}

/// The model a container serves, from its flags, `vllm serve ID`, or env;
/// for a KServe predictor, what its `storageUri` downloads.
pub fn model_of(container: &Container<'_>, models: &Models) -> Option<ModelRef> {
    if let Some(model) = kserve_hub_model(container) {
        return Some(model);
    }
    let words = command_words(container);
    for (index, (word, pointer)) in words.iter().enumerate() {
        for flag in &models.model_flags {
            if word == flag {
                if let Some((value, _)) = words.get(index + 1) {
                    if !value.starts_with('-') {
                        return Some(ModelRef {
                            id: value.clone(),
                            pointer: pointer.clone(),
                        });
                    }
                }
            } else if let Some(value) = word.strip_prefix(&format!("{flag}=")) {
                return Some(ModelRef {
                    id: value.to_string(),
                    pointer: pointer.clone(),
                });
            }
        }
        if word == "serve" && index > 0 && words[index - 1].0.ends_with("vllm") {
            if let Some((value, value_pointer)) = words.get(index + 1) {
                if !value.starts_with('-') {
                    return Some(ModelRef {
                        id: value.clone(),
                        pointer: value_pointer.clone(),
                    });
                }
            }
        }
    }
    // `args: [MODEL, …]` after an entrypoint that takes the model first
    // (`vllm serve`, the vllm-openai image's ENTRYPOINT).
    if let Some(entrypoint) = image_entrypoint(container, models) {
        let first = container
            .value
            .get("args")
            .and_then(Value::as_array)
            .and_then(|args| args.first())
            .and_then(Value::as_str)
            .map(|text| expand_references(container, text));
        if let Some(first) = first {
            let repeats = entrypoint
                .repeats
                .iter()
                .any(|repeat| repeat.first().is_some_and(|word| *word == first));
            if entrypoint.positional_model
                && !first.is_empty()
                && !first.starts_with('-')
                && !repeats
                && !first.contains(char::is_whitespace)
            {
                return Some(ModelRef {
                    id: first,
                    pointer: format!("{}/args/0", container.pointer),
                });
            }
        }
    }
    models.model_env.iter().find_map(|name| {
        env_value(container, name).map(|(index, value)| ModelRef {
            id: expand_references(container, value),
            pointer: format!("{}/env/{index}/value", container.pointer),
        })
    })
}

/// The ENTRYPOINT a container's `args` are appended to: its image's, when
/// the container sets no `command` and the image is one the policy knows.
pub fn image_entrypoint<'m>(
    container: &Container<'_>,
    models: &'m Models,
) -> Option<&'m crate::policy::ImageEntrypoint> {
    if container
        .value
        .get("command")
        .is_some_and(|command| !command.is_null())
    {
        return None;
    }
    let image = container.image()?;
    models
        .image_entrypoints
        .iter()
        .find(|entrypoint| entrypoint.image.is_match(image))
}

/// Whether a model id names weights that are not downloaded from the
/// Hugging Face Hub: a local path or a bucket.
pub fn is_local_or_bucket(id: &str) -> bool {
    id.starts_with('/')
        || id.starts_with("./")
        || [
            "gs://", "s3://", "gcs://", "az://", "abfs://", "hdfs://", "file://", "pvc://",
            "oci://",
        ]
        .iter()
        .any(|scheme| id.starts_with(scheme))
}

static PARAMETERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[-_/.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?:$|[-_/.])")
        .unwrap_or_else(|error| unreachable!("static pattern: {error}"))
});

/// The size of a model: the object's `infergate.dev/model-size`
/// annotation, the catalogue, or an estimate from the name.
pub fn size_of(object: &Object, id: &str, models: &Models) -> Option<ModelSize> {
    if let Some(annotated) = object.annotation("infergate.dev/model-size") {
        if let Some(bytes) = crate::input::quantity::parse(annotated) {
            return Some(ModelSize {
                bytes,
                source: format!("annotation infergate.dev/model-size: {annotated}"),
            });
        }
    }
    let lookup = id.trim_end_matches('/');
    if let Some(entry) = models
        .catalogue
        .iter()
        .find(|entry| entry.id.eq_ignore_ascii_case(lookup))
    {
        let bytes = match entry.size {
            Some(size) => size.0,
            None => entry.parameters * 1e9 * bytes_per_parameter(&entry.dtype, models),
        };
        return Some(ModelSize {
            bytes,
            source: format!("catalogue in rules/models.yaml ({})", entry.source),
        });
    }
    let name = lookup.rsplit('/').next().unwrap_or(lookup);
    let billions = billions_from_name(name)?;
    let per_parameter = bytes_per_parameter(name, models);
    Some(ModelSize {
        bytes: billions * 1e9 * per_parameter,
        source: format!("estimate from the name: {billions}B parameters x {per_parameter} bytes"),
    })
}

/// The parameter count of a model (in billions), from the catalogue or
/// its name, when either says it.
pub fn parameters(id: &str, models: &Models) -> Option<f64> {
    let lookup = id.trim_end_matches('/');
    if let Some(entry) = models
        .catalogue
        .iter()
        .find(|entry| entry.id.eq_ignore_ascii_case(lookup))
    {
        return Some(entry.parameters);
    }
    billions_from_name(lookup.rsplit('/').next().unwrap_or(lookup))
}

/// Billions of parameters a model's name states (`8B`, `8x7B` for
/// experts), the estimate both the size and the count fall back to.
fn billions_from_name(name: &str) -> Option<f64> {
    let captures = PARAMETERS.captures(name)?;
    let experts: f64 = captures
        .get(1)
        .and_then(|count| count.as_str().parse().ok())
        .unwrap_or(1.0);
    let billions: f64 = captures.get(2)?.as_str().parse().ok()?;
    Some(experts * billions)
}

fn bytes_per_parameter(text: &str, models: &Models) -> f64 {
    models
        .precisions
        .iter()
        .find(|precision| precision.hint.is_match(text))
        .map_or(models.default_bytes_per_parameter, |precision| {
            precision.bytes_per_parameter
        })
}

/// Bytes as a short human quantity (`141 GB`, `90 GiB`).
pub fn gib(bytes: f64) -> String {
    format!("{:.0} GiB", bytes / 1024f64.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::SourceFile;
    use crate::policy::Policy;
    use serde_json::json;

    fn object(annotation: Option<&str>) -> Object {
        let mut value =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}});
        if let Some(size) = annotation {
            value["metadata"]["annotations"] = json!({"infergate.dev/model-size": size});
        }
        Object::from_value(
            value,
            SourceFile::new("t", String::new()),
            0,
            String::new(),
            Default::default(),
        )
        .expect("object")
    }

    #[test]
    fn sizes_come_from_annotation_catalogue_or_name() {
        let policy = Policy::built_in().expect("policy");
        let models = &policy.models;
        let size = size_of(&object(Some("200Gi")), "anything", models).expect("annotated");
        assert_eq!(size.bytes, 200.0 * 1024f64.powi(3));
        let size = size_of(&object(None), "meta-llama/Llama-3.1-405B-Instruct", models)
            .expect("catalogue");
        assert!((size.bytes - 811.8e9).abs() < 1e9, "{}", size.bytes);
        assert!(size.source.contains("catalogue"));
        let size = size_of(&object(None), "someorg/Custom-70B-AWQ", models).expect("estimate");
        assert_eq!(size.bytes, 35e9);
        let size = size_of(&object(None), "mistralai/Mixtral-8x7B-v0.1", models).expect("experts");
        assert_eq!(size.bytes, 112e9);
        assert!(size_of(&object(None), "my-model", models).is_none());
        assert!(policy.models.catalogue.len() >= 40);
    }

    #[test]
    fn models_from_flags_serve_and_env() {
        let policy = Policy::built_in().expect("policy");
        let cases = [
            json!({"args": ["--model=meta-llama/Llama-3.1-70B-Instruct"]}),
            json!({"args": ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tp", "8"]}),
            json!({"command": ["vllm", "serve", "meta-llama/Llama-3.1-70B-Instruct"]}),
            json!({"command": ["/bin/sh", "-c"], "args": ["vllm serve $(MODEL) --port 8000"], "env": [{"name": "MODEL", "value": "meta-llama/Llama-3.1-70B-Instruct"}]}),
            json!({"env": [{"name": "MODEL_ID", "value": "meta-llama/Llama-3.1-70B-Instruct"}]}),
            json!({"args": ["--model-id", "meta-llama/Llama-3.1-70B-Instruct"]}),
        ];
        for case in cases {
            let container = Container {
                pointer: "/c".into(),
                value: &case,
                init: false,
            };
            let found = model_of(&container, &policy.models).map(|model| model.id);
            assert_eq!(
                found.as_deref(),
                Some("meta-llama/Llama-3.1-70B-Instruct"),
                "{case}"
            );
        }
        assert!(is_local_or_bucket("/models/llama"));
        assert!(is_local_or_bucket("gs://bucket/llama"));
        assert!(!is_local_or_bucket("meta-llama/Llama-3.1-8B"));
    }
}

/// Where a container's server caches the models it downloads, and which
/// setting says so (see `models.cacheEnv` in rules/models.yaml).
#[derive(Debug, Clone)]
pub struct CacheDir {
    pub path: String,
    pub setting: CacheSetting,
    /// The variable a fix sets to move the cache; none when only a flag
    /// of the image moves it.
    pub fix_env: Option<String>,
    /// The flag that moves the cache for this image, if it has its own.
    pub flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSetting {
    /// An env var, with its index in the container's env.
    Env { name: String, index: usize },
    /// A server flag such as vLLM's `--download-dir`.
    Flag,
    /// The image's own default, with the source of that fact.
    Image { source: String },
    /// An image whose cache is not known: huggingface_hub's default in
    /// root's home, which holds for images that run as root and set no
    /// cache variable.
    Default,
}

pub fn cache_dir(container: &Container<'_>, models: &Models) -> CacheDir {
    let server = container.image().and_then(|image| {
        models
            .server_caches
            .iter()
            .find(|server| server.image.is_match(image))
    });
    let fix_env = match server {
        Some(server) => server.fix_env.clone(),
        None => Some("HF_HOME".to_string()),
    };
    let server_flags: &[String] = server.map_or(&[], |server| &server.flags);
    let flag = server_flags.first().cloned();
    // A server that downloads into a directory of its own ignores the hub
    // cache's variables and flags.
    let hub = server.is_none_or(|server| server.hub_cache);
    let hub_env: &[String] = if hub { &models.cache_env } else { &[] };
    let generic_flags: &[String] = if hub { &models.cache_flags } else { &[] };
    let env_names = server
        .into_iter()
        .flat_map(|server| server.env.iter())
        .chain(hub_env);
    for name in env_names {
        if let Some((index, value)) = env_value(container, name) {
            let path = expand_references(container, value);
            // HF_HOME holds the hub cache in its `hub` directory.
            let path = if name == "HF_HOME" {
                format!("{}/hub", path.trim_end_matches('/'))
            } else {
                path
            };
            return CacheDir {
                path,
                setting: CacheSetting::Env {
                    name: name.clone(),
                    index,
                },
                fix_env,
                flag,
            };
        }
    }
    let words = command_words(container);
    for (index, (word, _)) in words.iter().enumerate() {
        let value = server_flags.iter().chain(generic_flags).find_map(|flag| {
            match word
                .strip_prefix(flag.as_str())
                .map(|rest| rest.strip_prefix('='))
            {
                Some(Some(value)) => Some(value.to_string()),
                Some(None) if word == flag => words.get(index + 1).map(|(value, _)| value.clone()),
                _ => None,
            }
        });
        if let Some(path) = value {
            return CacheDir {
                path,
                setting: CacheSetting::Flag,
                fix_env,
                flag,
            };
        }
    }
    match server {
        Some(server) => CacheDir {
            path: server.cache_dir.clone(),
            setting: CacheSetting::Image {
                source: server.source.clone(),
            },
            fix_env,
            flag,
        },
        None => CacheDir {
            path: models.default_cache_dir.clone(),
            setting: CacheSetting::Default,
            fix_env,
            flag,
        },
    }
}

/// Whether a path is in the container's /dev/shm.
pub fn is_shm(path: &str) -> bool {
    path == "/dev/shm" || path.starts_with("/dev/shm/")
}

/// A sizeLimit that fits `bytes` plus headroom, in whole GiB.
pub fn size_limit_for(bytes: f64, headroom_fraction: f64) -> String {
    let gib = (bytes * (1.0 + headroom_fraction) / 1024f64.powi(3)).ceil();
    format!("{gib:.0}Gi")
}
