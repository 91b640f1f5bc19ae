//! The Kubernetes model: what workloads, autoscalers, metrics, monitors,
//! adapters, serving images and models mean, read from input objects and
//! the policy's facts. Imports `input` and `policy` only.

pub mod adapter;
pub mod autoscaler;
pub mod inference_pool;
pub mod kserve;
pub mod kube_api;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod placeholder;
pub mod promql;
pub mod ray;
pub mod selection;
pub mod serving;
pub mod workload;
