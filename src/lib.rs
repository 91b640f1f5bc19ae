//! infergate: one rule engine for LLM inference workloads on Kubernetes,
//! served as an offline linter and as an admission webhook.

pub mod adapter;
pub mod audit;
pub mod autoscaler;
pub mod cli;
pub mod config;
pub mod duration;
pub mod embedded;
pub mod engine;
pub mod finding;
pub mod fix;
pub mod kube_api;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod nesting;
pub mod object;
pub mod output;
pub mod placeholder;
pub mod pointer;
pub mod policy;
pub mod pools;
pub mod promql;
pub mod quantity;
pub mod rules;
pub mod schema;
pub mod selection;
pub mod serving;
pub mod simulate;
pub mod source;
pub mod suggest;
pub mod webhook;
pub mod workload;
