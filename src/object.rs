//! A Kubernetes object as the rules see it: its JSON value, where it came
//! from, and where each of its nodes sits in the source text.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::pointer;
use crate::source::{Location, SourceFile};

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
#[derive(Debug, Default, Clone)]
pub struct PositionMap {
    spans: HashMap<String, NodeSpan>,
}

impl PositionMap {
    pub fn insert(&mut self, pointer: String, span: NodeSpan) {
        self.spans.insert(pointer, span);
    }

    pub fn get(&self, pointer: &str) -> Option<&NodeSpan> {
        self.spans.get(pointer)
    }

    /// The best location for a finding at `pointer`: a scalar's value, a
    /// collection's key, or, for a node that does not exist (a missing
    /// field), the nearest ancestor that does.
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        let mut current = pointer;
        loop {
            if let Some(span) = self.spans.get(current) {
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
        let span = self.spans.get(pointer)?;
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
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.value
            .pointer("/metadata/labels")
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
