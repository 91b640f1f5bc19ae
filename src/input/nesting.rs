//! The bounds on how deeply input may nest and how much its aliases may
//! expand.
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

use std::cell::Cell;
use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError, Span, SpannedEventReceiver};

/// The deepest nesting of mappings and sequences that is read.
pub const MAX_DEPTH: usize = 128;

/// The most nodes that YAML aliases may add to one input: a file, or an
/// admission review, together with every YAML document embedded in its
/// objects (a ConfigMap's `config.yaml`). An alias copies the node its
/// anchor names, so a few hundred bytes of nested aliases can stand for
/// billions of nodes. saphyr bounds one loader's expansion at 100,000
/// nodes, but a loader reads one document, so a hundred small documents
/// got a hundred budgets (1.3 GB); this bound is carried across every
/// document of the input. Copies are what cost (about 130 bytes and
/// 4 µs a node once converted, with its position), and shared blocks in
/// real manifests copy tens or hundreds of nodes (the reviewed corpus has
/// no alias at all), so 10,000 leaves a wide margin while one input's
/// aliases cost at most about 1.3 MB.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// The message of an input whose aliases expand past [`MAX_ALIAS_NODES`].
pub fn alias_budget_message() -> String {
    format!(
        "the aliases of this input expand to more than {MAX_ALIAS_NODES} nodes \
         (an alias copies its anchor's node, and nested aliases multiply); write \
         the values out or nest fewer aliases"
    )
}

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
/// [`MAX_DEPTH`], or at the first alias that would add more nodes than
/// `alias_budget` holds, with an error there. What the aliases add is taken
/// from `alias_budget`, which the caller shares across an input's texts.
pub fn load<'input, R: SpannedEventReceiver<'input>>(
    text: &'input str,
    receiver: R,
    alias_budget: &Cell<usize>,
) -> Result<(R, Vec<DuplicateKey>), ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut guard = DepthGuard::new(receiver, alias_budget);
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
/// An alias counts as deep as the node its anchor names, and as many
/// nodes, since the loader copies that node in its place.
struct DepthGuard<'b, R> {
    inner: R,
    depth: usize,
    /// Open collections: their anchor id, the deepest level reached inside
    /// and the nodes read inside (aliases counted as what they copy).
    open: Vec<OpenCollection>,
    /// Anchor id -> height of the node it names (0 for a scalar).
    heights: HashMap<usize, usize>,
    /// Anchor id -> nodes of the node it names (1 for a scalar).
    sizes: HashMap<usize, usize>,
    alias_budget: &'b Cell<usize>,
    exceeded: Option<ScanError>,
    frames: Vec<Frame>,
    duplicates: Vec<DuplicateKey>,
}

struct OpenCollection {
    anchor: usize,
    deepest: usize,
    nodes: usize,
}

impl<'b, R> DepthGuard<'b, R> {
    fn new(inner: R, alias_budget: &'b Cell<usize>) -> Self {
        Self {
            inner,
            depth: 0,
            open: Vec::new(),
            heights: HashMap::new(),
            sizes: HashMap::new(),
            alias_budget,
            exceeded: None,
            frames: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    /// Count `nodes` read inside the innermost open collection.
    fn count(&mut self, nodes: usize) {
        if let Some(open) = self.open.last_mut() {
            open.nodes = open.nodes.saturating_add(nodes);
        }
    }

    /// Take what an alias copies from the budget, or stop at it.
    fn expand(&mut self, nodes: usize, span: Span) -> bool {
        let left = self.alias_budget.get();
        if nodes > left {
            self.exceeded = Some(ScanError::new(span.start, alias_budget_message()));
            return false;
        }
        self.alias_budget.set(left - nodes);
        self.count(nodes);
        true
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

    /// The error to report when the input nested too deeply or expanded
    /// too much.
    fn error(&self) -> Option<ScanError> {
        self.exceeded.clone()
    }

    fn reach(&mut self, level: usize, span: Span) -> bool {
        if level > MAX_DEPTH {
            self.exceeded = Some(ScanError::new(span.start, too_deep_message()));
            return false;
        }
        if let Some(open) = self.open.last_mut() {
            open.deepest = open.deepest.max(level);
        }
        true
    }
}

impl<'input, R: SpannedEventReceiver<'input>> SpannedEventReceiver<'input> for DepthGuard<'_, R> {
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
                self.open.push(OpenCollection {
                    anchor: *anchor,
                    deepest: level,
                    nodes: 1,
                });
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
                if let Some(closed) = self.open.pop() {
                    if closed.anchor > 0 {
                        self.heights
                            .insert(closed.anchor, closed.deepest + 1 - self.depth);
                        self.sizes.insert(closed.anchor, closed.nodes);
                    }
                    if let Some(parent) = self.open.last_mut() {
                        parent.deepest = parent.deepest.max(closed.deepest);
                    }
                    self.count(closed.nodes);
                }
                self.depth = self.depth.saturating_sub(1);
                self.frames.pop();
                self.node_ends();
            }
            Event::Scalar(text, _, anchor, _) => {
                if *anchor > 0 {
                    self.heights.insert(*anchor, 0);
                    self.sizes.insert(*anchor, 1);
                }
                self.count(1);
                self.node_starts(Some(text), span.start);
                self.node_ends();
            }
            Event::Alias(anchor) => {
                let height = self.heights.get(anchor).copied().unwrap_or(0);
                if !self.reach(self.depth + height, span) {
                    return;
                }
                let nodes = self.sizes.get(anchor).copied().unwrap_or(1);
                if !self.expand(nodes, span) {
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
        load(text, loader, &Cell::new(MAX_ALIAS_NODES)).err()
    }

    #[test]
    fn duplicate_keys_are_listed_with_both_places() {
        let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
        let text = "a: 1\nb: {c: 1, c: 2}\nlist:\n- a: 1\n  a: 2\na: 3\n";
        let (_, duplicates) = load(text, loader, &Cell::new(MAX_ALIAS_NODES)).expect("parses");
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

    /// `a` is 10 nodes; each level of `b..` copies the one before 10 times.
    fn laughs(levels: usize) -> String {
        let mut text = String::from("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        let mut previous = 'a';
        for name in ('b'..='z').take(levels) {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
            previous = name;
        }
        text
    }

    #[test]
    fn aliases_take_what_they_copy_from_the_budget() {
        let budget = Cell::new(MAX_ALIAS_NODES);
        let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
        // b copies a (10 nodes) ten times; c copies b (1 + 100) ten times.
        load(&laughs(2), loader, &budget).expect("within the budget");
        assert_eq!(MAX_ALIAS_NODES - budget.get(), 10 * 10 + 10 * 101);
    }

    #[test]
    fn the_budget_is_shared_by_every_text_that_draws_on_it() {
        // 1,110 nodes a text: nine texts fit, the next two do not.
        let budget = Cell::new(MAX_ALIAS_NODES);
        let text = laughs(2);
        let mut refused = 0;
        for _ in 0..11 {
            let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
            if let Err(error) = load(&text, loader, &budget) {
                assert_eq!(error.info(), alias_budget_message());
                refused += 1;
            }
        }
        assert_eq!(refused, 2);
    }

    #[test]
    fn a_billion_laughs_stops_at_the_first_alias_past_the_budget() {
        let loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
        let error = load(&laughs(9), loader, &Cell::new(MAX_ALIAS_NODES))
            .err()
            .expect("refused");
        assert_eq!(error.info(), alias_budget_message());
        // d (ten copies of c's 1,011 nodes, after 1,110 for b and c) is the
        // first level past the budget.
        assert_eq!(error.marker().line(), 4);
    }
}
