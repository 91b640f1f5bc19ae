//! Presenting an [`Outcome`](crate::engine::Outcome): human, JSON, SARIF and
//! GitHub Actions formats.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use crate::engine::finding::{Finding, Severity};

/// Which findings a format shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visibility {
    /// Show infos and suppressed findings.
    pub verbose: bool,
}

impl Visibility {
    /// Whether a human-facing format shows this finding.
    pub fn shows(&self, finding: &Finding) -> bool {
        self.verbose || (finding.suppressed.is_none() && finding.severity > Severity::Info)
    }
}
