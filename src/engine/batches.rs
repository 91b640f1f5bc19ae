//! A lint of many applications, one batch of them at a time.
//!
//! Rules pair objects of one application scope only
//! ([`super::Context::paired`], [`super::Context::same_scope`]), so the
//! scopes of an input can be checked apart and give the findings one run
//! over all of them gives. Checking them a batch at a time lets each
//! batch's object trees, position maps and index go before the next batch
//! is parsed, and its findings be reported and dropped: the peak memory
//! of a lint then follows its largest batch (about [`BATCH_BYTES`] of
//! YAML, or one application larger than that) rather than the whole
//! input. The batches cover disjoint, ascending ranges of file names, so
//! their findings, each batch sorted, come out in the report's order.

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::input::loader::{self, Loaded, Pending};

/// The YAML a batch gathers before it is checked: enough objects (about a
/// thousand of a typical manifest's) that parsing and checking still keep
/// every core busy, few enough that their trees (about 25 times the YAML)
/// stay small.
pub const BATCH_BYTES: usize = 1 << 20;

/// One application scope's files and the range of their names.
struct Scope {
    files: Vec<Pending>,
    first: String,
    last: String,
    bytes: usize,
}

/// The sources grouped into batches that no rule looks across: each
/// application scope whole, in one batch. Scopes are taken in the order of
/// their first file's name and gathered until a batch holds at least
/// `batch_bytes` of text; a scope whose names fall inside the batch's
/// range (an application nested in another's directory) joins it, so that
/// the batches' names never interleave. Files keep their order within a
/// scope.
pub fn batches(sources: Vec<Pending>, batch_bytes: usize) -> Vec<Vec<Pending>> {
    let mut scopes: Vec<Scope> = Vec::new();
    let mut scope_at: HashMap<String, usize> = HashMap::new();
    for source in sources {
        let name = source.name();
        let at = *scope_at
            .entry(source.scope().to_string())
            .or_insert_with(|| {
                scopes.push(Scope {
                    files: Vec::new(),
                    first: name.to_string(),
                    last: name.to_string(),
                    bytes: 0,
                });
                scopes.len() - 1
            });
        if let Some(scope) = scopes.get_mut(at) {
            if name < scope.first.as_str() {
                scope.first = name.to_string();
            }
            if name > scope.last.as_str() {
                scope.last = name.to_string();
            }
            scope.bytes = scope.bytes.saturating_add(source.bytes());
            scope.files.push(source);
        }
    }
    scopes.sort_by(|a, b| a.first.cmp(&b.first));
    let mut batches: Vec<Scope> = Vec::new();
    for scope in scopes {
        match batches.last_mut() {
            Some(batch) if batch.bytes < batch_bytes || scope.first <= batch.last => {
                batch.files.extend(scope.files);
                batch.bytes = batch.bytes.saturating_add(scope.bytes);
                if scope.last > batch.last {
                    batch.last = scope.last;
                }
            }
            _ => batches.push(scope),
        }
    }
    batches.into_iter().map(|batch| batch.files).collect()
}

impl Engine {
    /// Check `sources` a batch of application scopes at a time (see the
    /// module's documentation), reading the files of each batch when its
    /// turn comes ([`loader::read_pending`]), handing `each` every batch's input and
    /// outcome in the report's order, to be dropped before the next batch
    /// is read; `each` may stop the run. The findings handed over, one batch after
    /// another, are the ones a single [`Engine::run`] over every source
    /// gives, in its order, and the batches' summaries add up to its
    /// summary.
    pub fn run_by_application(
        &self,
        sources: Vec<Pending>,
        facts: &ClusterFacts,
        batch_bytes: usize,
        mut each: impl FnMut(Loaded, Outcome) -> ControlFlow<()>,
    ) {
        for batch in batches(sources, batch_bytes) {
            let loaded = loader::parse_all(loader::read_pending(batch));
            let outcome = self.run(&loaded, facts);
            if each(loaded, outcome).is_break() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::input::source::SourceFile;

    fn source(name: &str, scope: &str, bytes: usize) -> Pending {
        Pending::Read(SourceFile::in_scope(
            name,
            "#".repeat(bytes),
            scope.to_string(),
        ))
    }

    fn names(batches: &[Vec<Pending>]) -> Vec<Vec<&str>> {
        batches
            .iter()
            .map(|batch| batch.iter().map(Pending::name).collect())
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
    fn batches_never_interleave_by_name() {
        // `app/base/` has a kustomization (a scope of its own) inside the
        // scope of `app/`, whose files sort before and after it.
        let sources = vec![
            source("app/a.yaml", "app", 5),
            source("app/base/d.yaml", "k:app/base", 5),
            source("app/z.yaml", "app", 5),
            source("other/x.yaml", "other", 5),
        ];
        assert_eq!(
            names(&batches(sources, 1)),
            vec![
                vec!["app/a.yaml", "app/z.yaml", "app/base/d.yaml"],
                vec!["other/x.yaml"],
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

    #[test]
    fn batches_follow_the_names_not_the_order_given() {
        let sources = vec![source("b/1.yaml", "b", 5), source("a/1.yaml", "a", 5)];
        assert_eq!(
            names(&batches(sources, 1)),
            vec![vec!["a/1.yaml"], vec!["b/1.yaml"]]
        );
    }
}
