//! A lint of many applications, one batch of them at a time.
//!
//! Rules pair objects of one application scope only
//! ([`super::Context::paired`], [`super::Context::same_scope`]), so the
//! scopes of an input can be checked apart and give the findings one run
//! over all of them gives. Checking them a batch at a time lets each
//! batch's object trees, position maps and index go before the next batch
//! is parsed: the peak memory of a lint then follows its largest batch
//! (about [`BATCH_BYTES`] of YAML, or one application larger than that)
//! plus the findings, instead of the whole input.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::{sort_for_report, ClusterFacts, Engine, Outcome};
use crate::input::loader::{self, Loaded};
use crate::input::source::SourceFile;

/// The YAML a batch gathers before it is checked: enough objects (about a
/// thousand of a typical manifest's) that parsing and checking still keep
/// every core busy, few enough that their trees (about 25 times the YAML)
/// stay small beside the findings.
pub const BATCH_BYTES: usize = 1 << 20;

/// The sources grouped into batches that no rule looks across: each
/// application scope whole, in one batch; small scopes gathered until a
/// batch holds at least `batch_bytes` of text. Scopes come in the order
/// their first file was given, and files keep their order within a scope.
pub fn batches(sources: Vec<Arc<SourceFile>>, batch_bytes: usize) -> Vec<Vec<Arc<SourceFile>>> {
    let mut scopes: Vec<Vec<Arc<SourceFile>>> = Vec::new();
    let mut scope_at: HashMap<String, usize> = HashMap::new();
    for source in sources {
        let at = *scope_at.entry(source.scope.clone()).or_insert_with(|| {
            scopes.push(Vec::new());
            scopes.len() - 1
        });
        if let Some(scope) = scopes.get_mut(at) {
            scope.push(source);
        }
    }
    let mut batches: Vec<Vec<Arc<SourceFile>>> = Vec::new();
    let mut filled = 0;
    for scope in scopes {
        let bytes: usize = scope.iter().map(|source| source.text.len()).sum();
        match batches.last_mut() {
            Some(batch) if filled < batch_bytes => {
                batch.extend(scope);
                filled += bytes;
            }
            _ => {
                batches.push(scope);
                filled = bytes;
            }
        }
    }
    batches
}

impl Engine {
    /// Check `sources` a batch of application scopes at a time (see the
    /// module's documentation), calling `each` with every batch's input
    /// and outcome before the input is dropped: to suppress, narrow or
    /// note what needs the objects. The outcome is the one a single
    /// [`Engine::run`] over every source gives.
    pub fn run_by_application(
        &self,
        sources: Vec<Arc<SourceFile>>,
        facts: &ClusterFacts,
        batch_bytes: usize,
        mut each: impl FnMut(&Loaded, &mut Outcome),
    ) -> Outcome {
        let mut merged = Outcome::default();
        for batch in batches(sources, batch_bytes) {
            let loaded = loader::parse_all(batch);
            let mut outcome = self.run(&loaded, facts);
            each(&loaded, &mut outcome);
            drop(loaded);
            merged.findings.append(&mut outcome.findings);
            merged.summary.files += outcome.summary.files;
            merged.summary.objects += outcome.summary.objects;
            merged.summary.skipped += outcome.summary.skipped;
            merged.candidates += outcome.candidates;
        }
        sort_for_report(&mut merged.findings);
        merged.summary.tally(&merged.findings);
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, scope: &str, bytes: usize) -> Arc<SourceFile> {
        SourceFile::in_scope(name, "#".repeat(bytes), scope.to_string())
    }

    fn names(batches: &[Vec<Arc<SourceFile>>]) -> Vec<Vec<&str>> {
        batches
            .iter()
            .map(|batch| batch.iter().map(|source| source.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_scope_is_never_split_and_small_scopes_are_gathered() {
        let sources = vec![
            source("a/1.yaml", "a", 60),
            source("b/1.yaml", "b", 30),
            source("a/2.yaml", "a", 60),
            source("c/1.yaml", "c", 30),
            source("d/1.yaml", "d", 30),
            source("e/1.yaml", "e", 10),
        ];
        let batches = batches(sources, 100);
        assert_eq!(
            names(&batches),
            vec![
                vec!["a/1.yaml", "a/2.yaml"],
                vec!["b/1.yaml", "c/1.yaml", "d/1.yaml", "e/1.yaml"],
            ]
        );
    }

    #[test]
    fn every_scope_alone_when_batches_are_tiny() {
        let sources = vec![
            source("a/1.yaml", "a", 5),
            source("b/1.yaml", "b", 5),
            source("a/2.yaml", "a", 5),
        ];
        assert_eq!(
            names(&batches(sources, 1)),
            vec![vec!["a/1.yaml", "a/2.yaml"], vec!["b/1.yaml"]]
        );
    }
}
