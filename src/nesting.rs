//! The one bound on how deeply input may nest.
//!
//! Every walk over a document (building the JSON value, recording
//! positions, schema validation, fixes, dropping the tree) recurses once
//! per level, so a document nested thousands of levels deep would overflow
//! the stack of whichever thread reads it. Rather than making every walk
//! iterative, the loader refuses such a document while it is still a
//! stream of parser events, before any tree exists.
//!
//! [`MAX_DEPTH`] is serde_json's own recursion limit, so YAML read by the
//! linter and JSON read by the webhook share one bound. Real manifests nest
//! far less: the deepest document of the reviewed corpus (a CRD schema)
//! is 20 levels deep, and Kubernetes' CBOR decoder notes a depth of 16 for
//! a fuzzed CronJobList. The apiserver itself accepts up to 10,000 levels
//! (the limit of Go's JSON decoder), so an object between 128 and 10,000
//! levels deep is valid for Kubernetes yet not read by infergate; it gets
//! an `invalid-yaml` finding that says so, never a crash.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError, Span, SpannedEventReceiver};

/// The deepest nesting of mappings and sequences that is read.
pub const MAX_DEPTH: usize = 128;

/// The message of a document that nests too deeply.
pub fn too_deep_message() -> String {
    format!(
        "nesting deeper than {MAX_DEPTH} levels; infergate reads at most {MAX_DEPTH} \
         (real manifests nest about 20 deep)"
    )
}

/// Parse `text` into `receiver`, event by event. saphyr's own
/// `Parser::load` recurses once per level, so it is not used: this loop
/// stops at the first event past [`MAX_DEPTH`] with an error there.
pub fn load<'input, R: SpannedEventReceiver<'input>>(
    text: &'input str,
    receiver: R,
) -> Result<R, ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut guard = DepthGuard::new(receiver);
    for next in &mut parser {
        let (event, span) = next?;
        guard.on_event(event, span);
        if let Some(error) = guard.error() {
            return Err(error);
        }
    }
    Ok(guard.inner)
}

/// Forwards parser events to `inner` while the nesting stays within
/// [`MAX_DEPTH`]; past it, stops forwarding and remembers where.
///
/// An alias counts as deep as the node its anchor names, since the loader
/// copies that node in its place.
struct DepthGuard<R> {
    inner: R,
    depth: usize,
    /// Open collections: (anchor id, deepest level reached inside).
    open: Vec<(usize, usize)>,
    /// Anchor id -> height of the node it names (0 for a scalar).
    heights: HashMap<usize, usize>,
    exceeded: Option<Marker>,
}

impl<R> DepthGuard<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            depth: 0,
            open: Vec::new(),
            heights: HashMap::new(),
            exceeded: None,
        }
    }

    /// The error to report when the input nested too deeply.
    fn error(&self) -> Option<ScanError> {
        self.exceeded
            .map(|marker| ScanError::new(marker, too_deep_message()))
    }

    fn reach(&mut self, level: usize, span: Span) -> bool {
        if level > MAX_DEPTH {
            self.exceeded = Some(span.start);
            return false;
        }
        if let Some((_, deepest)) = self.open.last_mut() {
            *deepest = (*deepest).max(level);
        }
        true
    }
}

impl<'input, R: SpannedEventReceiver<'input>> SpannedEventReceiver<'input> for DepthGuard<R> {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.exceeded.is_some() {
            return;
        }
        match &event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let level = self.depth + 1;
                if !self.reach(level, span) {
                    return;
                }
                self.depth = level;
                self.open.push((*anchor, level));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, deepest)) = self.open.pop() {
                    if anchor > 0 {
                        self.heights.insert(anchor, deepest + 1 - self.depth);
                    }
                    if let Some((_, parent_deepest)) = self.open.last_mut() {
                        *parent_deepest = (*parent_deepest).max(deepest);
                    }
                }
                self.depth = self.depth.saturating_sub(1);
            }
            Event::Scalar(_, _, anchor, _) if *anchor > 0 => {
                self.heights.insert(*anchor, 0);
            }
            Event::Alias(anchor) => {
                let height = self.heights.get(anchor).copied().unwrap_or(0);
                if !self.reach(self.depth + height, span) {
                    return;
                }
            }
            _ => {}
        }
        self.inner.on_event(event, span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saphyr::{MarkedYaml, YamlLoader};

    fn guarded(text: &str) -> Option<ScanError> {
        let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
        load(text, loader).err()
    }

    #[test]
    fn nesting_at_the_limit_is_read() {
        let text = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        assert!(guarded(&text).is_none());
    }

    #[test]
    fn nesting_past_the_limit_is_refused_where_it_passes() {
        let text = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        let error = guarded(&text).expect("too deep");
        assert_eq!(error.marker().line(), 1);
        assert_eq!(error.marker().col(), 2 * MAX_DEPTH);
    }

    #[test]
    fn an_alias_counts_as_deep_as_its_anchor() {
        let half = MAX_DEPTH / 2 + 1;
        let anchored = format!("{}1{}", "[".repeat(half), "]".repeat(half));
        let use_it = format!("{}*a{}", "[".repeat(half), "]".repeat(half));
        let text = format!("a: &a {anchored}\nb: {use_it}\n");
        assert!(guarded(&text).is_some());
        let shallow = format!("a: &a [1]\nb: {use_it}\n");
        assert!(guarded(&shallow).is_none());
    }
}
