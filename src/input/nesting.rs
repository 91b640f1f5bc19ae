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

/// A scalar key written twice in one mapping: the key and the start of
/// each occurrence. A key that is a mapping or a sequence (`? [a, b]: x`)
/// has no text: `key` is empty and `first` is where it starts.
#[derive(Debug, Clone)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Marker,
    pub second: Marker,
}

impl DuplicateKey {
    /// Whether this records a collection used as a key.
    pub fn is_complex(&self) -> bool {
        self.key.is_empty() && self.first == self.second
    }
}

/// Parse `text` into `receiver`, event by event, and list the duplicate
/// keys on the way. saphyr's own `Parser::load` recurses once per level,
/// so it is not used: this loop stops at the first event past
/// [`MAX_DEPTH`] with an error there.
pub fn load<'input, R: SpannedEventReceiver<'input>>(
    text: &'input str,
    receiver: R,
) -> Result<(R, Vec<DuplicateKey>), ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut guard = DepthGuard::new(receiver);
    for next in &mut parser {
        let (event, span) = next?;
        guard.on_event(event, span);
        if let Some(error) = guard.error() {
            return Err(error);
        }
    }
    Ok((guard.inner, guard.duplicates))
}

/// What an open collection is, for telling mapping keys from values.
#[derive(Debug)]
enum Frame {
    Sequence,
    Mapping {
        expecting_key: bool,
        keys: HashMap<String, Marker>,
    },
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
    frames: Vec<Frame>,
    duplicates: Vec<DuplicateKey>,
}

impl<R> DepthGuard<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            depth: 0,
            open: Vec::new(),
            heights: HashMap::new(),
            exceeded: None,
            frames: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    /// A node starts inside the innermost collection: in a mapping it is a
    /// key or a value, and a scalar key may have been seen before.
    fn node_starts(&mut self, key_text: Option<&str>, at: Marker) {
        if let Some(Frame::Mapping {
            expecting_key: true,
            keys,
        }) = self.frames.last_mut()
        {
            let Some(text) = key_text else {
                // A collection as a key: JSON has no such thing.
                self.duplicates.push(DuplicateKey {
                    key: String::new(),
                    first: at,
                    second: at,
                });
                return;
            };
            {
                match keys.get(text) {
                    Some(first) => self.duplicates.push(DuplicateKey {
                        key: text.to_string(),
                        first: *first,
                        second: at,
                    }),
                    None => {
                        keys.insert(text.to_string(), at);
                    }
                }
            }
        }
    }

    /// A node ended inside the innermost collection: a mapping now
    /// expects the other of key and value.
    fn node_ends(&mut self) {
        if let Some(Frame::Mapping { expecting_key, .. }) = self.frames.last_mut() {
            *expecting_key = !*expecting_key;
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
                self.node_starts(None, span.start);
                self.depth = level;
                self.open.push((*anchor, level));
                self.frames
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Mapping {
                            expecting_key: true,
                            keys: HashMap::new(),
                        }
                    } else {
                        Frame::Sequence
                    });
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
                self.frames.pop();
                self.node_ends();
            }
            Event::Scalar(text, _, anchor, _) => {
                if *anchor > 0 {
                    self.heights.insert(*anchor, 0);
                }
                self.node_starts(Some(text), span.start);
                self.node_ends();
            }
            Event::Alias(anchor) => {
                let height = self.heights.get(anchor).copied().unwrap_or(0);
                if !self.reach(self.depth + height, span) {
                    return;
                }
                // An alias key stands for its anchor's scalar: keyed by name.
                let name = format!("*{anchor}");
                self.node_starts(Some(&name), span.start);
                self.node_ends();
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
    fn duplicate_keys_are_listed_with_both_places() {
        let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
        let text = "a: 1\nb: {c: 1, c: 2}\nlist:\n- a: 1\n  a: 2\na: 3\n";
        let (_, duplicates) = load(text, loader).expect("parses");
        let found: Vec<(String, usize, usize)> = duplicates
            .iter()
            .map(|duplicate| {
                (
                    duplicate.key.clone(),
                    duplicate.first.line(),
                    duplicate.second.line(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [("c".into(), 2, 2), ("a".into(), 4, 5), ("a".into(), 1, 6)]
        );
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
