//! A Kubernetes object as the rules see it: its JSON value, where it came
//! from, and where each of its nodes sits in the source text.

use crate::input::pointer::Lookup;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::input::pointer;
use crate::input::source::{Location, SourceFile};

/// What identifies an object to a user: apiVersion, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => write!(f, " {namespace}/{name}"),
            (None, Some(name)) => write!(f, " {name}"),
            _ => Ok(()),
        }
    }
}

/// Where a node of the object is written: the key that introduces it (absent
/// for sequence items and the root) and the value itself.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpan {
    pub key: Option<Location>,
    pub value: Location,
    /// True for mappings and sequences, whose value span is large.
    pub is_collection: bool,
    /// Byte offset where the value's span ends (exclusive). For a flow
    /// collection it is the offset of the closing bracket; for a block
    /// collection, the start of whatever follows it.
    pub end: usize,
}

/// JSON pointer -> where that node is written.
///
/// Kept compact because there is one entry per node of every object held in
/// memory: a 64-bit hash of the pointer (not the pointer text) and the span
/// in 32-bit numbers, in one vector sorted by hash once the object is read.
/// The hasher is keyed per process, so no input can be crafted to make two
/// pointers of an object collide; only an accidental collision (one in
/// 2^64 per pair of pointers) would give one node the other's place.
#[derive(Debug, Default, Clone)]
pub struct PositionMap {
    entries: Vec<(u64, PackedSpan)>,
    /// Whether `entries` is sorted by hash with one entry per hash; until
    /// [`PositionMap::seal`], lookups scan it.
    sealed: bool,
}

/// A [`NodeSpan`] in 32-bit numbers (files are far below 4 GiB: see
/// `loader::MAX_FILE_BYTES`; larger numbers saturate).
#[derive(Debug, Clone, Copy)]
struct PackedSpan {
    key: PackedLocation,
    value: PackedLocation,
    end: u32,
    has_key: bool,
    is_collection: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct PackedLocation {
    line: u32,
    column: u32,
    offset: u32,
    len: u32,
}

fn narrow(number: usize) -> u32 {
    u32::try_from(number).unwrap_or(u32::MAX)
}

impl PackedLocation {
    fn pack(location: Location) -> Self {
        Self {
            line: narrow(location.line),
            column: narrow(location.column),
            offset: narrow(location.offset),
            len: narrow(location.len),
        }
    }

    fn unpack(self) -> Location {
        Location {
            line: self.line as usize,
            column: self.column as usize,
            offset: self.offset as usize,
            len: self.len as usize,
        }
    }
}

impl PackedSpan {
    fn pack(span: NodeSpan) -> Self {
        Self {
            key: span.key.map(PackedLocation::pack).unwrap_or_default(),
            value: PackedLocation::pack(span.value),
            end: narrow(span.end),
            has_key: span.key.is_some(),
            is_collection: span.is_collection,
        }
    }

    fn unpack(self) -> NodeSpan {
        NodeSpan {
            key: self.has_key.then(|| self.key.unpack()),
            value: self.value.unpack(),
            is_collection: self.is_collection,
            end: self.end as usize,
        }
    }
}

fn pointer_hash(pointer: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(pointer)
}

impl PositionMap {
    /// Record where `pointer` is written; a later entry for the same
    /// pointer (a duplicate key) replaces the earlier one.
    pub fn insert(&mut self, pointer: &str, span: NodeSpan) {
        self.entries
            .push((pointer_hash(pointer), PackedSpan::pack(span)));
        self.sealed = false;
    }

    /// Sort the entries for lookups by binary search, once every node is in.
    pub fn seal(&mut self) {
        // Stable: equal hashes keep their insertion order, and of each run
        // the last inserted is kept (moved over the first, which stays).
        self.entries.sort_by_key(|(hash, _)| *hash);
        self.entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                *kept = *later;
            }
            same
        });
        self.entries.shrink_to_fit();
        self.sealed = true;
    }

    pub fn get(&self, pointer: &str) -> Option<NodeSpan> {
        let hash = pointer_hash(pointer);
        let found = if self.sealed {
            self.entries
                .binary_search_by_key(&hash, |(entry, _)| *entry)
                .ok()
                .map(|index| self.entries[index].1)
        } else {
            self.entries
                .iter()
                .rev()
                .find(|(entry, _)| *entry == hash)
                .map(|(_, span)| *span)
        };
        found.map(PackedSpan::unpack)
    }

    /// The best location for a finding at `pointer`: a scalar's value, a
    /// collection's key, or, for a node that does not exist (a missing
    /// field), the nearest ancestor that does.
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        let mut current = pointer;
        loop {
            if let Some(span) = self.get(current) {
                return Some(match (span.is_collection, span.key) {
                    (true, Some(key)) => key,
                    _ => span.value,
                });
            }
            current = pointer::parent(current)?;
        }
    }

    /// The location of the key that introduces `pointer`, or of its value.
    pub fn locate_key(&self, pointer: &str) -> Option<Location> {
        let span = self.get(pointer)?;
        Some(span.key.unwrap_or(span.value))
    }
}

/// One Kubernetes object read from a file.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: ObjectId,
    pub value: Value,
    pub source: Arc<SourceFile>,
    /// 0-based index of the YAML document in its file.
    pub document: usize,
    /// Pointer of the object inside its document: empty, or `/items/N` for
    /// the items of a `kind: List`.
    pub base_pointer: String,
    pub positions: PositionMap,
}

impl Object {
    /// Build an object from a JSON value, reading its identity from it.
    /// Returns `None` when the value has no string `apiVersion` and `kind`.
    pub fn from_value(
        value: Value,
        source: Arc<SourceFile>,
        document: usize,
        base_pointer: String,
        positions: PositionMap,
    ) -> Option<Self> {
        let id = object_id(&value)?;
        Some(Self {
            id,
            value,
            source,
            document,
            base_pointer,
            positions,
        })
    }

    pub fn kind(&self) -> &str {
        &self.id.kind
    }

    pub fn name(&self) -> Option<&str> {
        self.id.name.as_deref()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.id.namespace.as_deref()
    }

    /// The API group of the object (empty for the core group).
    pub fn group(&self) -> &str {
        self.id
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value
            .at("/metadata/annotations")
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.value
            .at("/metadata/labels")
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    }

    pub fn locate(&self, pointer: &str) -> Option<Location> {
        self.positions.locate(pointer)
    }
}

/// Read apiVersion, kind, namespace and name from a JSON value.
pub fn object_id(value: &Value) -> Option<ObjectId> {
    let api_version = value.get("apiVersion")?.as_str()?.to_string();
    let kind = value.get("kind")?.as_str()?.to_string();
    let metadata = value.get("metadata");
    let text = |key: &str| {
        metadata
            .and_then(|metadata| metadata.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some(ObjectId {
        api_version,
        kind,
        namespace: text("namespace"),
        name: text("name"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(line: usize) -> NodeSpan {
        let at = Location {
            line,
            column: 3,
            offset: line * 10,
            len: 2,
        };
        NodeSpan {
            key: (line > 1).then_some(at),
            value: at,
            is_collection: false,
            end: line * 10 + 2,
        }
    }

    #[test]
    fn positions_are_found_before_and_after_sealing_and_a_duplicate_keeps_the_later() {
        let mut positions = PositionMap::default();
        positions.insert("", span(1));
        positions.insert("/spec", span(2));
        positions.insert("/spec/replicas", span(3));
        positions.insert("/spec/replicas", span(4));
        for sealed in [false, true] {
            if sealed {
                positions.seal();
            }
            assert_eq!(
                positions.get("/spec/replicas").map(|s| s.value.line),
                Some(4)
            );
            assert_eq!(
                positions.get("/spec").and_then(|s| s.key).map(|k| k.line),
                Some(2)
            );
            assert!(positions.get("").is_some_and(|s| s.key.is_none()));
            // A missing node is placed at its nearest ancestor.
            assert_eq!(
                positions.locate("/spec/template/spec").map(|l| l.line),
                Some(2)
            );
            assert!(positions.get("/status").is_none());
            assert_eq!(positions.get("/spec/replicas").map(|s| s.end), Some(42));
        }
        assert_eq!(positions.entries.len(), 3);
    }
}
