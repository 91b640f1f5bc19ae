use crate::input::pointer::Lookup;
use serde_json::Value;

use crate::engine::{Context, Sink};
use crate::input::object::Object;
use crate::k8s::ray;
use crate::rules::{declare_rule, Rule, RuleMeta};

declare_rule! {
    /// ## What it does
    /// Reads the Ray Serve applications of a RayService
    /// (`spec.serveConfigV2`, a YAML string parsed with its positions, so
    /// findings point at the line inside it) and the GPUs each replica asks
    /// for:
    ///
    /// - a Ray Serve LLM entry of `args.llm_configs`:
    ///   `engine_kwargs.tensor_parallel_size` × `pipeline_parallel_size`
    ///   (each 1 by default, one GPU per rank);
    /// - a deployment of `deployments`: `ray_actor_options.num_gpus`.
    ///
    /// They are compared with the GPUs the RayService's Ray cluster can ever
    /// offer: per group, its pods (the head; a worker group's `replicas`, or
    /// `maxReplicas` when in-tree autoscaling is on) × `numOfHosts` × the
    /// GPUs each pod gives Ray (`rayStartParams.num-gpus`, else the Ray
    /// container's GPU limit).
    ///
    /// - One replica needing more GPUs than the whole cluster has is an
    ///   error.
    /// - The replicas that must run at once (`num_replicas`, or
    ///   `autoscaling_config.min_replicas`) needing more than that is an
    ///   error at that setting.
    ///
    /// A worker group that autoscales without `maxReplicas` has no bound,
    /// and the check is skipped; so is an LLM engine on `device: cpu`.
    ///
    /// ## Why is this bad?
    /// Ray Serve places each replica's GPUs before it starts it: Ray Serve
    /// LLM as a placement group of one GPU bundle per tensor- and
    /// pipeline-parallel rank (Ray Serve LLM documentation, "Deploy LLMs"),
    /// a plain deployment as an actor that needs `num_gpus`. When the
    /// cluster cannot hold them, the replica stays pending: the RayService
    /// never becomes ready, and KubeRay keeps waiting for it, with nothing
    /// in the pod events to say why.
    ///
    /// ## Example
    /// ```yaml
    /// serveConfigV2: |
    ///   applications:
    ///     - args:
    ///         llm_configs:
    ///           - engine_kwargs: {tensor_parallel_size: 8}
    /// rayClusterConfig:
    ///   workerGroupSpecs:
    ///     - replicas: 1        # one pod with nvidia.com/gpu: 4
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///           - engine_kwargs: {tensor_parallel_size: 4}
    /// ```
    /// or give the worker group pods enough for the ranks (two 4-GPU pods,
    /// or one 8-GPU pod).
    ///
    /// ## Fix
    /// None: whether to shard less or to add GPUs is the author's choice.
    pub struct RayServeFitsCluster {
        id: "ray-serve-fits-cluster",
        severity: Error,
        summary: "The GPUs a Ray Serve replica asks for (LLM tensor x pipeline parallel, or num_gpus) must fit the GPUs its RayService's cluster can offer.",
        fixable: false,
    }
}

/// The GPUs the Ray cluster of a KubeRay object can ever offer, or `None`
/// when a group has no bound.
fn cluster_gpus(object: &Object) -> Option<f64> {
    let spec = ray::cluster_spec(object)?;
    let mut total = 0.0;
    for group in ray::groups(object, spec) {
        let gpus = ray::group_gpus(object, &group);
        if gpus == 0.0 {
            continue;
        }
        total += ray::group_max_pods(object, spec, &group)? * gpus;
    }
    Some(total)
}

/// A setting of at least 1 (a parallel size, a replica count).
fn setting(config: &Value, pointer: &str) -> Option<f64> {
    config
        .at(pointer)
        .and_then(Value::as_f64)
        .filter(|value| *value >= 1.0)
}

/// The GPUs a Ray Serve deployment asks for per replica, and the replicas
/// that must run at once.
struct Demand {
    /// "LLM `qwen`", "deployment `VLLMDeployment`".
    what: String,
    per_replica: f64,
    /// How the GPUs per replica come about, for the message.
    shape: String,
    /// The setting that asks for them, inside the serve configuration.
    at: String,
    minimum: Option<(String, f64)>,
}

/// `num_replicas`, else `autoscaling_config.min_replicas`, of a deployment
/// config at `base`.
fn minimum(config: &Value, base: &str) -> Option<(String, f64)> {
    ["/num_replicas", "/autoscaling_config/min_replicas"]
        .into_iter()
        .find_map(|pointer| {
            setting(config, pointer).map(|value| (format!("{base}{pointer}"), value))
        })
}

/// Ray Serve LLM: each of `args.llm_configs` needs tensor × pipeline
/// parallel GPUs per replica.
fn llm_demands(application: &Value, app_index: usize) -> Vec<Demand> {
    let Some(configs) = application
        .at("/args/llm_configs")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let kwargs = "/engine_kwargs";
    let mut demands = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        let base = format!("/applications/{app_index}/args/llm_configs/{index}");
        if config
            .at(&format!("{kwargs}/device"))
            .and_then(Value::as_str)
            == Some("cpu")
        {
            continue;
        }
        let tp = setting(config, &format!("{kwargs}/tensor_parallel_size"));
        let pp = setting(config, &format!("{kwargs}/pipeline_parallel_size"));
        let model = config
            .at("/model_loading_config/model_id")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let at = if tp.is_some() || pp.is_none() {
            format!("{base}{kwargs}/tensor_parallel_size")
        } else {
            format!("{base}{kwargs}/pipeline_parallel_size")
        };
        let deployment = config.get("deployment_config").unwrap_or(&Value::Null);
        demands.push(Demand {
            what: format!("LLM `{model}`"),
            per_replica: tp.unwrap_or(1.0) * pp.unwrap_or(1.0),
            shape: format!(
                " (tensor parallel {} × pipeline {})",
                tp.unwrap_or(1.0),
                pp.unwrap_or(1.0)
            ),
            at,
            minimum: minimum(deployment, &format!("{base}/deployment_config")),
        });
    }
    demands
}

/// A Ray Serve deployment's `ray_actor_options.num_gpus` per replica.
fn deployment_demands(application: &Value, app_index: usize) -> Vec<Demand> {
    let Some(deployments) = application.get("deployments").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut demands = Vec::new();
    for (index, deployment) in deployments.iter().enumerate() {
        let base = format!("/applications/{app_index}/deployments/{index}");
        let Some(gpus) = deployment
            .at("/ray_actor_options/num_gpus")
            .and_then(Value::as_f64)
            .filter(|gpus| *gpus > 0.0)
        else {
            continue;
        };
        let name = deployment
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        demands.push(Demand {
            what: format!("deployment `{name}`"),
            per_replica: gpus,
            shape: String::new(),
            at: format!("{base}/ray_actor_options/num_gpus"),
            minimum: minimum(deployment, &base),
        });
    }
    demands
}

impl Rule for RayServeFitsCluster {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink) {
        if object.kind() != "RayService" {
            return;
        }
        let Some(capacity) = cluster_gpus(object) else {
            return;
        };
        for embedded in cx.embedded(object) {
            let Some(document) = embedded.loaded.documents.first() else {
                continue;
            };
            let Some(applications) = document.value.get("applications").and_then(Value::as_array)
            else {
                continue;
            };
            let mut demands = Vec::new();
            for (app_index, application) in applications.iter().enumerate() {
                demands.extend(llm_demands(application, app_index));
                demands.extend(deployment_demands(application, app_index));
            }
            // At the setting's line inside the configuration when the file
            // writes it as a literal block.
            let report = |inner: &str, message: String, help: String, sink: &mut Sink| {
                let report = sink.report(embedded.pointer.clone(), message);
                report.help(help);
                if let Some(location) = document
                    .positions
                    .locate(inner)
                    .and_then(|inner| embedded.locate(inner))
                {
                    report.at(location);
                }
            };
            for demand in demands {
                let (what, per_replica) = (&demand.what, demand.per_replica);
                if per_replica > capacity {
                    report(
                        &demand.at,
                        format!("{what} needs {per_replica} GPUs per replica{}; the RayService's cluster offers at most {capacity}: it never starts", demand.shape),
                        "need fewer GPUs per replica, or give the worker groups the GPUs (more pods, or more GPUs per pod)".to_string(),
                        sink,
                    );
                    continue;
                }
                if let Some((pointer, replicas)) = &demand.minimum {
                    if replicas * per_replica > capacity {
                        report(
                            pointer,
                            format!("{what} must run {replicas} replicas of {per_replica} GPUs; the RayService's cluster offers at most {capacity}"),
                            format!(
                                "lower it to {} or fewer, or give the worker groups more GPUs",
                                (capacity / per_replica).floor()
                            ),
                            sink,
                        );
                    }
                }
            }
        }
    }
}
