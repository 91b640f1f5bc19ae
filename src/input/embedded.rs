//! YAML documents written as strings inside an object: the `*.yaml` and
//! `*.yml` data of a ConfigMap, such as prometheus-adapter's `config.yaml`,
//! and a KubeRay RayService's Ray Serve configuration (`serveConfigV2`).
//!
//! They are parsed once per run (in the engine's index) with the same
//! loader as files, so they get the same bounds, and a problem in one is
//! reported as `invalid-yaml` at its line in the outer file.

use std::cell::Cell;
use std::sync::Arc;

use serde_json::Value;

use crate::input::loader::{self, Loaded};
use crate::input::object::Object;
use crate::input::pointer::{self, Lookup};
use crate::input::source::{Location, SourceFile};

/// One embedded document: the data key that holds it and what it parsed to.
#[derive(Debug)]
pub struct Embedded {
    /// The JSON pointer of the string in the outer object (`/data/config.yaml`).
    pub pointer: String,
    /// The parsed text, named `file:key`.
    pub loaded: Loaded,
    placement: Option<Placement>,
}

impl Embedded {
    /// Where a location of the embedded text is in the outer file, when the
    /// outer file writes the text as a literal block (`key: |`).
    pub fn locate(&self, inner: Location) -> Option<Location> {
        let source = self.loaded.files.first()?;
        self.placement.as_ref()?.map(source, inner)
    }
}

/// Whether an object may embed YAML documents (a ConfigMap, a RayService).
pub fn may_embed(object: &Object) -> bool {
    matches!(object.kind(), "ConfigMap" | "RayService")
}

/// The strings of an object that hold YAML: their pointers, the names
/// their documents are given after the file's (`file:key`), and the text.
fn yaml_strings(object: &Object) -> Vec<(String, &str, &str)> {
    if object.kind() == "RayService" {
        return object
            .value
            .at(SERVE_CONFIG)
            .and_then(Value::as_str)
            .map(|text| vec![(SERVE_CONFIG.to_string(), "serveConfigV2", text)])
            .unwrap_or_default();
    }
    let Some(data) = object.value.get("data").and_then(Value::as_object) else {
        return Vec::new();
    };
    data.iter()
        .filter(|(key, _)| key.ends_with(".yaml") || key.ends_with(".yml"))
        .filter_map(|(key, text)| Some((pointer::join("/data", key), key.as_str(), text.as_str()?)))
        .collect()
}

/// Where a RayService holds its Ray Serve configuration, a YAML string.
pub const SERVE_CONFIG: &str = "/spec/serveConfigV2";

/// The embedded YAML documents of an object (none for most kinds). Their
/// aliases draw on `alias_budget`: what the object's input has left (see
/// [`crate::input::nesting::MAX_ALIAS_NODES`]).
pub fn of(object: &Object, alias_budget: &Cell<usize>) -> Vec<Embedded> {
    if !may_embed(object) {
        return Vec::new();
    }
    yaml_strings(object)
        .into_iter()
        .map(|(data_pointer, key, text)| {
            let loaded = loader::parse_source_within(
                SourceFile::new(format!("{}:{key}", object.source.name), text.to_string()),
                alias_budget,
            );
            Embedded {
                placement: Placement::new(object, &data_pointer),
                pointer: data_pointer,
                loaded,
            }
        })
        .collect()
}

/// Where an embedded document (a literal block scalar) sits in its file.
#[derive(Debug)]
struct Placement {
    source: Arc<SourceFile>,
    /// 1-based file line of the block's first content line.
    first_line: usize,
    indent: usize,
}

impl Placement {
    fn new(object: &Object, data_pointer: &str) -> Option<Self> {
        let span = object.positions.get(data_pointer)?;
        let key = span.key?;
        let source = object.source.clone();
        // saphyr starts a block scalar's span at its first content line; the
        // key's line must end with the literal indicator.
        let key_line = source.line_text(key.line).trim_end();
        let literal = key_line
            .rsplit_once(':')
            .is_some_and(|(_, indicator)| indicator.trim().starts_with('|'));
        if !literal || span.value.line <= key.line {
            return None;
        }
        Some(Self {
            source,
            first_line: span.value.line,
            indent: span.value.column - 1,
        })
    }

    fn map(&self, inner: &SourceFile, location: Location) -> Option<Location> {
        let line = self.first_line + location.line - 1;
        let column = self.indent + location.column - 1;
        let offset = self.source.offset_of(line, column);
        // Only trust the mapping when the text is the same at both ends.
        let here = self.source.text.get(offset..offset + location.len)?;
        let there = inner
            .text
            .get(location.offset..location.offset + location.len)?;
        (here == there).then(|| {
            self.source
                .location((line, column), (line, column + here.chars().count()))
        })
    }
}
