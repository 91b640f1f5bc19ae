//! The admission webhook: the engine served over HTTPS to the apiserver.

pub mod managed_certs;
pub mod match_conditions;
pub mod metrics;
pub mod review;
pub mod selfsigned;
pub mod server;
pub mod tls;
pub mod uid;
pub mod watched;
