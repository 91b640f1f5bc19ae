//! What the engine reports: findings, their severity and their fixes.

use std::sync::Arc;

use json_patch::{Patch, PatchOperation};
use serde::Serialize;

use crate::input::object::ObjectId;
use crate::input::source::{Location, SourceFile};

pub use crate::policy::Severity;

/// Whether a fix may be applied without a person looking at it (ruff's
/// model): the webhook mutates and `lint --fix` writes only `Safe` fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applicability {
    Safe,
    Unsafe,
}

/// A repair: RFC 6902 operations on the finding's object, and possibly on
/// other objects of the same input.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub applicability: Applicability,
    /// What the fix does, in a few words.
    pub description: String,
    pub patch: Patch,
    /// Patches on other objects of the input (index into the bundle and the
    /// object's identity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedPatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelatedPatch {
    #[serde(skip)]
    pub object_index: usize,
    pub object: ObjectId,
    pub patch: Patch,
}

impl Fix {
    pub fn new(
        applicability: Applicability,
        description: impl Into<String>,
        ops: Vec<PatchOperation>,
    ) -> Self {
        Self {
            applicability,
            description: description.into(),
            patch: Patch(ops),
            related: Vec::new(),
        }
    }

    pub fn safe(description: impl Into<String>, ops: Vec<PatchOperation>) -> Self {
        Self::new(Applicability::Safe, description, ops)
    }

    pub fn unsafe_(description: impl Into<String>, ops: Vec<PatchOperation>) -> Self {
        Self::new(Applicability::Unsafe, description, ops)
    }
}

pub use crate::input::pointer::op;

/// One reported problem.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The finding in at most 120 characters with what to do, for an
    /// admission warning, when the message and advice do not fit there.
    pub short: Option<String>,
    pub help: Option<String>,
    /// The object, absent for file-level problems (invalid YAML).
    pub object: Option<ObjectId>,
    /// Index of the object in the bundle, for fixes.
    pub object_index: Option<usize>,
    /// JSON pointer of the offending node inside the object.
    pub pointer: String,
    pub source: Arc<SourceFile>,
    pub location: Location,
    pub fix: Option<Fix>,
    /// `Some(reason)` when an `infergate.dev/ignore` annotation covers it
    /// (the reason may be empty), or the policy exempts it (`exempted`).
    pub suppressed: Option<String>,
    /// Whether the suppression is the policy's `exceptions` (granted by
    /// the policy's owner) rather than the object's own annotation: only
    /// such an exemption lets a denied object in at admission.
    pub exempted: bool,
    /// Why the object counts as an inference workload (`runs vLLM`,
    /// `requests nvidia.com/gpu`), for findings on such a workload.
    pub inference: Option<String>,
}

impl Finding {
    pub fn file(&self) -> &str {
        &self.source.name
    }

    /// The finding as one admission warning: the rule id, what is wrong
    /// and what to do. Kubernetes advises at most 120 characters.
    pub fn warning(&self) -> String {
        format!(
            "{}: {}",
            self.rule,
            self.short.as_deref().unwrap_or(&self.message)
        )
    }
}
