//! SARIF 2.1.0 for code-scanning tools. The document is complete and valid
//! whatever the findings and the exit code: `results` is always present.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{ArrayItems, ReportWriter};
use crate::engine::finding::{Finding, Severity};
use crate::engine::{Outcome, Summary};
use crate::rules::{self, RuleMeta};

const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn rule_json(meta: &RuleMeta) -> Value {
    let documentation = meta.documentation();
    json!({
        "id": meta.id,
        "name": pascal_case(meta.id),
        "shortDescription": { "text": meta.summary },
        "fullDescription": { "text": meta.summary },
        "help": { "text": documentation, "markdown": documentation },
        "helpUri": meta.help_uri(),
        "defaultConfiguration": { "level": level(meta.default_severity) },
        "properties": { "fixable": meta.fixable },
    })
}

fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Where SARIF paths are relative to: `%SRCROOT%`, the repository root
/// (or `--sarif-root`), which the upload step resolves; never an absolute
/// path in a result, as GitHub's code scanning requires.
#[derive(Debug, Clone)]
pub struct SourceRoot {
    /// Absolute and canonical.
    root: PathBuf,
    /// The current directory, canonical, for paths given relative to it.
    current: PathBuf,
}

impl SourceRoot {
    /// `given`, else the git work tree of the current directory, else the
    /// current directory.
    pub fn find(given: Option<&Path>) -> Self {
        let current = std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .unwrap_or_default();
        let root = given
            .map(Path::to_path_buf)
            .or_else(git_top_level)
            .and_then(|root| std::fs::canonicalize(root).ok())
            .unwrap_or_else(|| current.clone());
        Self { root, current }
    }

    /// `file` (as the user gave it) relative to the root, and the base it
    /// is relative to: `%SRCROOT%`, or for a file outside the root
    /// `FILESYSTEM` (the file system's root, still a relative reference).
    fn relative(&self, file: &str) -> (&'static str, String) {
        let path = Path::new(file);
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| self.current.join(path));
        match absolute.strip_prefix(&self.root) {
            Ok(inside) => (SOURCE_ROOT, inside.to_string_lossy().into_owned()),
            Err(_) => (
                FILE_SYSTEM,
                absolute
                    .to_string_lossy()
                    .trim_start_matches(['/', '\\'])
                    .to_string(),
            ),
        }
    }

    fn uri(&self) -> String {
        let mut uri = format!("file://{}", encode_path(&self.root.to_string_lossy()));
        if !uri.ends_with('/') {
            uri.push('/');
        }
        uri
    }
}

fn git_top_level() -> Option<PathBuf> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let top = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (!top.is_empty()).then(|| PathBuf::from(top))
}

const SOURCE_ROOT: &str = "%SRCROOT%";
const FILE_SYSTEM: &str = "FILESYSTEM";

/// A file's artifactLocation: a relative URI reference with forward
/// slashes, and its base.
fn artifact_location(file: &str, root: &SourceRoot) -> Value {
    if file == "<stdin>" {
        return json!({ "uri": "stdin" });
    }
    let (base, path) = root.relative(file);
    json!({ "uri": encode_path(&path), "uriBaseId": base })
}

fn encode_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|byte| match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                        (byte as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn result_json(finding: &Finding, rule_index: Option<usize>, artifact: &Value) -> Value {
    let (end_line, end_column) = finding
        .source
        .line_column_of(finding.location.offset + finding.location.len);
    let mut message = finding.message.clone();
    if let Some(help) = &finding.help {
        message.push_str(". Help: ");
        message.push_str(help);
    }
    let mut result = json!({
        "ruleId": finding.rule,
        "level": level(finding.severity),
        "message": { "text": message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact,
                "region": {
                    "startLine": finding.location.line,
                    "startColumn": finding.location.column,
                    "endLine": end_line.max(finding.location.line),
                    "endColumn": if end_line > finding.location.line { end_column } else { end_column.max(finding.location.column + 1) },
                }
            }
        }],
        // The file is part of the identity: the same object and field in
        // two environment directories are two results, not one.
        "partialFingerprints": {
            "infergate/v2": format!(
                "{}:{}:{}:{}",
                finding.rule,
                artifact.get("uri").and_then(Value::as_str).unwrap_or_default(),
                finding.object.as_ref().map(ToString::to_string).unwrap_or_default(),
                finding.pointer
            ),
        },
    });
    if finding.source.live {
        // An object of a cluster: a logical location, no file region.
        result["locations"] = json!([{
            "logicalLocations": [{
                "name": finding.object.as_ref().and_then(|object| object.name.clone()),
                "fullyQualifiedName": format!("{}/{}", finding.file(), crate::input::pointer::display(&finding.pointer)),
                "kind": "resource",
            }]
        }]);
    }
    if let Some(index) = rule_index {
        result["ruleIndex"] = json!(index);
    }
    if let Some(object) = &finding.object {
        result["properties"] = json!({ "object": object.to_string(), "pointer": finding.pointer });
        if let Some(inference) = &finding.inference {
            result["properties"]["inference"] = json!(inference);
        }
    }
    if let Some(fix) = &finding.fix {
        result["properties"]["fix"] = json!({
            "applicability": fix.applicability,
            "description": fix.description,
            "patch": fix.patch,
        });
    }
    if let Some(reason) = &finding.suppressed {
        result["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
    }
    result
}

/// The SARIF log in one text (tests).
pub fn render(outcome: &Outcome, root: &SourceRoot) -> String {
    super::to_text(|out| write(outcome, root, out))
}

/// The SARIF log, pretty-printed as one document, written to `out` a
/// result at a time: the document is printed with an empty `results`
/// array, and the results are written into its place one by one, so a
/// run with many findings never holds them all as JSON.
pub fn write(
    outcome: &Outcome,
    root: &SourceRoot,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    super::write_outcome(&mut Report::new(root), outcome, out)
}

/// The SARIF log as a [`ReportWriter`].
pub struct Report<'r> {
    root: &'r SourceRoot,
    metas: Vec<&'static RuleMeta>,
    /// The document after its `results` array, once the part before it is
    /// written; `None` before [`ReportWriter::start`].
    after: Option<String>,
    results: ArrayItems,
    /// The file of the last finding and its artifact location. Findings
    /// come file by file, so each path (resolving it touches the file
    /// system) is resolved once, and nothing is kept per file over a run
    /// written a batch of applications at a time.
    artifact: Option<(String, Value)>,
}

impl<'r> Report<'r> {
    pub fn new(root: &'r SourceRoot) -> Self {
        Self {
            root,
            metas: rules::all_meta(),
            after: None,
            results: ArrayItems::new(""),
            artifact: None,
        }
    }
}

impl ReportWriter for Report<'_> {
    fn start(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let document = json!({
            "$schema": SCHEMA_URI,
            "version": "2.1.0",
            "runs": [{
                "tool": {
                    "driver": {
                        "name": "infergate",
                        "version": env!("CARGO_PKG_VERSION"),
                        "informationUri": env!("CARGO_PKG_HOMEPAGE"),
                        "rules": self.metas.iter().map(|meta| rule_json(meta)).collect::<Vec<_>>(),
                    }
                },
                "originalUriBaseIds": {
                    SOURCE_ROOT: { "uri": self.root.uri() },
                    FILE_SYSTEM: { "uri": "file:///" },
                },
                "columnKind": "unicodeCodePoints",
                "results": [],
            }]
        });
        let text = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
        // `results` is the run's last key and no string holds its printed
        // form (quotes inside strings are escaped), so the last match is it.
        const EMPTY_RESULTS: &str = "\"results\": []";
        let Some(at) = text.rfind(EMPTY_RESULTS) else {
            return Err(std::io::Error::other(
                "the SARIF document has no results array",
            ));
        };
        let (before, after) = (&text[..at], &text[at + EMPTY_RESULTS.len()..]);
        let indent = &before[before.rfind('\n').map_or(0, |line| line + 1)..];
        self.results = ArrayItems::new(indent);
        self.after = Some(after.to_string());
        out.write_all(before.as_bytes())?;
        out.write_all(b"\"results\": [")
    }

    fn finding(&mut self, finding: &Finding, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let index = self.metas.iter().position(|meta| meta.id == finding.rule);
        let artifact = if finding.source.live {
            &Value::Null
        } else {
            let resolved = self
                .artifact
                .as_ref()
                .is_some_and(|(file, _)| file == finding.file());
            if !resolved {
                let location = artifact_location(finding.file(), self.root);
                self.artifact = Some((finding.file().to_string(), location));
            }
            self.artifact
                .as_ref()
                .map_or(&Value::Null, |(_, location)| location)
        };
        let result = result_json(finding, index, artifact);
        self.results.push(&result, out)
    }

    fn finish(&mut self, _summary: &Summary, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.results.close(out)?;
        writeln!(out, "{}", self.after.as_deref().unwrap_or_default())
    }
}
