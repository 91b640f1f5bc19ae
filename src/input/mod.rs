//! The ground layer: files and standard input read into YAML documents and
//! JSON objects with the position of every node, and the plain values
//! (pointers, quantities, durations) the layers above parse. Nothing here
//! knows what a Kubernetes object means; it imports no other layer.

pub mod duration;
pub mod embedded;
pub mod loader;
pub mod nesting;
pub mod object;
pub mod pointer;
pub mod quantity;
pub mod source;
