//! The rules, one file each, and the registry that lists them.
//!
//! A rule's doc comment is its user documentation: `infergate explain`,
//! the SARIF rule table and docs/rules/ read it from [`RuleMeta::doc`].

use crate::engine::finding::Severity;
use crate::engine::{Context, Sink};
use crate::input::loader::Document;
use crate::input::object::Object;

mod adapter_query_namespace_filter;
mod external_metric_namespace_filter;
mod hf_home_shm_for_large_models;
mod host_network_dns;
mod hpa_metric_semantics;
mod hpa_scale_target_resolves;
mod hpa_stabilization_defaults;
mod hpa_status_unhealthy;
mod hpa_target_sanity;
mod httproute_inference_backend;
mod inference_objective_pool_ref;
mod inference_pool_endpoint_picker;
mod inference_pool_selects_servers;
mod keda_prometheus_query;
mod kserve_knative_autoscaling;
mod kserve_raw_autoscaling;
mod max_replicas_chip_pool;
mod metric_name_lowercase;
mod model_fits_accelerator_memory;
mod model_server_readiness;
mod model_server_startup_probe;
mod no_queue_and_hbm_mix;
mod parallelism_matches_accelerators;
mod podmonitoring_scrape;
mod pool_reference;
mod ray_serve_fits_cluster;
mod ray_start_params_resources;
mod scale_to_zero_cold_start;
mod schema_strict;
mod server_command_valid;
mod service_env_collision;
mod shared_cache_access_mode;
mod shm_memory_budget;
mod single_autoscaler_per_workload;
mod tensor_parallel_needs_shm;
mod unresolved_placeholder;
pub mod xla_cache_single_writer;

/// What the registry knows of a rule.
#[derive(Debug)]
pub struct RuleMeta {
    pub id: &'static str,
    pub default_severity: Severity,
    pub summary: &'static str,
    /// The doc comment of the rule's struct, as written in its source file.
    pub doc: &'static str,
    /// Whether the rule offers fixes.
    pub fixable: bool,
}

impl RuleMeta {
    /// The documentation without the one space that `///` leaves on each line.
    pub fn documentation(&self) -> String {
        self.doc
            .lines()
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `infergate explain ID`: the rule's page, in Markdown. The same text
    /// is kept in docs/rules/ID.md, where SARIF's helpUri points.
    pub fn explanation(&self) -> String {
        format!(
            "# {}\n\nDefault severity: {}. {}\n\n{}\n",
            self.id,
            self.default_severity,
            if self.fixable {
                "Has a fix."
            } else {
                "No fix."
            },
            self.documentation().trim_end()
        )
    }

    /// Where the rule's page is published: docs/rules/ID.md of the
    /// repository.
    pub fn help_uri(&self) -> String {
        format!(
            "{}/blob/main/docs/rules/{}.md",
            env!("CARGO_PKG_REPOSITORY"),
            self.id
        )
    }
}

/// A check over one object, with the whole input reachable through the
/// context. Rules are pure: no I/O, no knowledge of linter or webhook.
pub trait Rule: Send + Sync {
    fn meta(&self) -> &'static RuleMeta;
    fn check(&self, cx: &Context<'_>, object: &Object, sink: &mut Sink);

    /// Check a YAML document that is not a Kubernetes object (Helm values).
    /// Most rules have nothing to say about those.
    fn check_document(&self, _cx: &Context<'_>, _document: &Document, _sink: &mut Sink) {}
}

/// Declare a rule: its struct, with the doc comment as documentation, and
/// its registry entry.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            id: $id:literal,
            severity: $severity:ident,
            summary: $summary:literal,
            fixable: $fixable:literal $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl $name {
            pub const META: $crate::rules::RuleMeta = $crate::rules::RuleMeta {
                id: $id,
                default_severity: $crate::engine::finding::Severity::$severity,
                summary: $summary,
                doc: concat!($($doc, "\n"),*),
                fixable: $fixable,
            };
        }
    };
}
pub(crate) use declare_rule;

/// The loader's "kind without apiVersion" is schema-strict's finding: the
/// apiserver rejects such an object.
pub static SCHEMA_STRICT_PROBLEM: &RuleMeta = &schema_strict::SchemaStrict::META;

/// Problems found while reading files rather than by a rule; listed so that
/// `rules`, `explain` and SARIF know them.
pub static INVALID_YAML: RuleMeta = RuleMeta {
    id: "invalid-yaml",
    default_severity: Severity::Error,
    summary: "The file is not valid YAML; the other files are still linted.",
    doc: " ## What it does\n The YAML parser rejected the file (or one document of it). The finding\n gives the parser's message at the line and column where it stopped.\n\n ## Why is this bad?\n kubectl and the apiserver reject the file too, and infergate cannot check\n what it cannot read. Other documents of the same file are still linted.\n",
    fixable: false,
};

pub static SKIPPED_INPUT: RuleMeta = RuleMeta {
    id: "skipped-input",
    default_severity: Severity::Warning,
    summary: "A path was not read (not a regular file, a link out of the tree, too large, not UTF-8); the rest is linted.",
    doc: " ## What it does\n Reports the paths a run did not read, and why: a FIFO, socket or device\n found by a directory walk, a broken symbolic link or one that leads out of\n the directory linted, a file larger than 64 MiB, a file that is not UTF-8\n (the offset of the first bad byte is named; UTF-16 is said so).\n\n ## Why is this bad?\n What is not read is not checked. A FIFO would block the run, `/dev/zero`\n would never end, and a link to `/proc/self/environ` would print the\n environment into CI logs; such paths are reported instead of read, and\n the other files are still linted.\n",
    fixable: false,
};

pub static HELM_TEMPLATE: RuleMeta = RuleMeta {
    id: "helm-template",
    default_severity: Severity::Warning,
    summary: "The file is a Helm template; render it and lint the output.",
    doc: " ## What it does\n Reports files that hold Helm template markers (`{{ .Values... }}`,\n `{{- if }}`...). They are not linted: what they produce depends on the\n values.\n\n ## Why is this bad?\n A template is not a manifest: `{{ .Values.replicas }}` is no number, and\n parts of the file exist only for some values. Linting it would report\n noise and miss what the chart really produces.\n\n ## Use instead\n Render the chart and lint the result:\n\n ```sh\n helm template my-release ./chart -f values.yaml | infergate lint -\n ```\n",
    fixable: false,
};

pub static INVALID_SUPPRESSION: RuleMeta = RuleMeta {
    id: "invalid-suppression",
    default_severity: Severity::Error,
    summary: "An infergate.dev/ignore annotation names a rule that does not exist, so it suppresses nothing.",
    doc: " ## What it does\n Reports each entry of an object's `infergate.dev/ignore` annotation that\n is not a rule id (nor `*` or `all`), with the id it most likely meant.\n\n ## Why is this bad?\n A misspelt id silences nothing: the finding it was written for is still\n reported (or, in the webhook, still denies), and the annotation reads as\n if it worked.\n\n ## Example\n ```yaml\n metadata:\n   annotations:\n     infergate.dev/ignore: metric-name-lowercse=relabelled upstream\n ```\n\n ## Use instead\n ```yaml\n metadata:\n   annotations:\n     infergate.dev/ignore: metric-name-lowercase=relabelled upstream\n ```\n Entries are separated by commas; a comma followed by anything but a\n rule id continues the reason, so reasons may contain commas.\n",
    fixable: false,
};

/// Every rule, in the order `infergate rules` lists them.
pub fn registry() -> &'static [&'static dyn Rule] {
    &[
        &metric_name_lowercase::MetricNameLowercase,
        &external_metric_namespace_filter::ExternalMetricNamespaceFilter,
        &hpa_target_sanity::HpaTargetSanity,
        &unresolved_placeholder::UnresolvedPlaceholder,
        &hpa_stabilization_defaults::HpaStabilizationDefaults,
        &hf_home_shm_for_large_models::HfHomeShmForLargeModels,
        &shm_memory_budget::ShmMemoryBudget,
        &xla_cache_single_writer::XlaCacheSingleWriter,
        &no_queue_and_hbm_mix::NoQueueAndHbmMix,
        &hpa_scale_target_resolves::HpaScaleTargetResolves,
        &hpa_status_unhealthy::HpaStatusUnhealthy,
        &max_replicas_chip_pool::MaxReplicasChipPool,
        &podmonitoring_scrape::PodmonitoringScrape,
        &adapter_query_namespace_filter::AdapterQueryNamespaceFilter,
        &parallelism_matches_accelerators::ParallelismMatchesAccelerators,
        &model_fits_accelerator_memory::ModelFitsAcceleratorMemory,
        &server_command_valid::ServerCommandValid,
        &service_env_collision::ServiceEnvCollision,
        &tensor_parallel_needs_shm::TensorParallelNeedsShm,
        &model_server_startup_probe::ModelServerStartupProbe,
        &model_server_readiness::ModelServerReadiness,
        &host_network_dns::HostNetworkDns,
        &single_autoscaler_per_workload::SingleAutoscalerPerWorkload,
        &hpa_metric_semantics::HpaMetricSemantics,
        &shared_cache_access_mode::SharedCacheAccessMode,
        &keda_prometheus_query::KedaPrometheusQuery,
        &scale_to_zero_cold_start::ScaleToZeroColdStart,
        &inference_pool_selects_servers::InferencePoolSelectsServers,
        &inference_pool_endpoint_picker::InferencePoolEndpointPicker,
        &httproute_inference_backend::HttprouteInferenceBackend,
        &inference_objective_pool_ref::InferenceObjectivePoolRef,
        &ray_start_params_resources::RayStartParamsResources,
        &ray_serve_fits_cluster::RayServeFitsCluster,
        &kserve_raw_autoscaling::KserveRawAutoscaling,
        &kserve_knative_autoscaling::KserveKnativeAutoscaling,
        &schema_strict::SchemaStrict,
    ]
}

/// The metadata of every rule and loader check.
pub fn all_meta() -> Vec<&'static RuleMeta> {
    registry()
        .iter()
        .map(|rule| rule.meta())
        .chain([
            &INVALID_YAML,
            &HELM_TEMPLATE,
            &SKIPPED_INPUT,
            &INVALID_SUPPRESSION,
        ])
        .collect()
}

/// The rule id a misspelt `given` most likely meant.
pub fn closest_id(given: &str) -> Option<&'static str> {
    crate::policy::suggest::closest(given, all_meta().into_iter().map(|meta| meta.id))
}

/// Find a rule's metadata by id.
pub fn meta(id: &str) -> Option<&'static RuleMeta> {
    all_meta().into_iter().find(|meta| meta.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, SeverityLevel};

    /// The policy layer checks a user's rule ids against the built-in
    /// policy's (it cannot see this registry), so the two must agree, and
    /// the built-in severity of each rule is its documented default.
    #[test]
    fn built_in_policy_names_every_rule_at_its_default_severity() {
        let policy = Policy::built_in().expect("built-in policy");
        let mut registered: Vec<&str> = all_meta().iter().map(|meta| meta.id).collect();
        registered.sort_unstable();
        let mut named: Vec<&str> = policy.rules.keys().map(String::as_str).collect();
        named.sort_unstable();
        assert_eq!(registered, named);
        for meta in all_meta() {
            let expected = match meta.default_severity {
                Severity::Error => SeverityLevel::Error,
                Severity::Warning => SeverityLevel::Warning,
                Severity::Info => SeverityLevel::Info,
            };
            assert_eq!(policy.level(meta.id), Some(expected), "{}", meta.id);
        }
    }
}
