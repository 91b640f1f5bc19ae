//! infergate: one rule engine for LLM inference workloads on Kubernetes,
//! served as an offline linter, an admission webhook, an audit of a live
//! cluster and an HPA simulator.
//!
//! The folders are layers, each importing only those listed before it
//! (`engine` and `rules` know each other, as a registry and its engine do):
//!
//! - [`input`]: files and documents read with positions (no Kubernetes meaning);
//! - [`policy`]: facts as data, a user's policy and config;
//! - [`k8s`]: what Kubernetes objects mean (workloads, autoscalers, metrics, models);
//! - [`engine`]: objects, policy and cluster facts in, findings out;
//! - [`rules`]: one file a rule;
//! - [`fix`], [`output`], [`webhook`], [`audit`], [`simulate`]: the ways
//!   findings are served, each an adapter over the engine;
//! - [`cli`]: the command line over all of them.

pub mod audit;
pub mod cli;
pub mod engine;
pub mod fix;
pub mod input;
pub mod k8s;
pub mod output;
pub mod policy;
pub mod rules;
pub mod simulate;
pub mod webhook;
