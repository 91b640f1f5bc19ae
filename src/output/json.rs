//! The JSON format (version 1). Its shape is documented in docs/linting.md and
//! stable: fields are added, never renamed or removed, within a version.

use serde_json::{json, Value};

use super::{ArrayItems, ReportWriter, Visibility};
use crate::engine::finding::Finding;
use crate::engine::{Outcome, Summary};

pub const FORMAT_VERSION: u32 = 1;

/// The report as pretty JSON, in one text (tests, small reports).
pub fn render(outcome: &Outcome, visibility: Visibility) -> String {
    super::to_text(|out| write(outcome, visibility, out))
}

/// The report as pretty JSON, written to `out` one finding at a time: a
/// run with a hundred thousand findings holds neither a JSON tree of them
/// nor the whole text (the report is often larger than the input).
pub fn write(
    outcome: &Outcome,
    visibility: Visibility,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    super::write_outcome(&mut Report::new(visibility), outcome, out)
}

/// The JSON report as a [`ReportWriter`]: the summary follows the findings.
pub struct Report {
    visibility: Visibility,
    items: ArrayItems,
}

impl Report {
    pub fn new(visibility: Visibility) -> Self {
        Self {
            visibility,
            items: ArrayItems::new("  "),
        }
    }
}

impl ReportWriter for Report {
    fn start(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        write!(
            out,
            "{{\n  \"version\": {FORMAT_VERSION},\n  \"findings\": ["
        )
    }

    fn finding(&mut self, finding: &Finding, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if finding.suppressed.is_none() || self.visibility.verbose {
            self.items.push(&finding_json(finding), out)?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.items.close(out)?;
        out.write_all(b",\n")?;
        let summary = json!({
            "files": summary.files,
            "objects": summary.objects,
            "skipped": summary.skipped,
            "errors": summary.errors,
            "warnings": summary.warnings,
            "infos": summary.infos,
            "suppressed": summary.suppressed,
        });
        let summary_text =
            serde_json::to_string_pretty(&summary).unwrap_or_else(|_| "{}".to_string());
        write!(
            out,
            "  \"summary\": {}\n}}\n",
            summary_text.replace('\n', "\n  ")
        )
    }
}

pub fn finding_json(finding: &Finding) -> Value {
    let object = finding.object.as_ref().map(|object| {
        json!({
            "apiVersion": object.api_version,
            "kind": object.kind,
            "namespace": object.namespace,
            "name": object.name,
        })
    });
    let fix = finding.fix.as_ref().map(|fix| {
        let mut value = json!({
            "applicability": fix.applicability,
            "description": fix.description,
            "patch": fix.patch,
        });
        if !fix.related.is_empty() {
            value["related"] = json!(fix
                .related
                .iter()
                .map(|related| json!({
                    "object": {
                        "apiVersion": related.object.api_version,
                        "kind": related.object.kind,
                        "namespace": related.object.namespace,
                        "name": related.object.name,
                    },
                    "patch": related.patch,
                }))
                .collect::<Vec<_>>());
        }
        value
    });
    // An object read from a cluster has no file: it is placed by `object`
    // and `pointer` (and `field`, the same path as kubectl writes it).
    let (file, line, column) = if finding.source.live {
        (Value::Null, Value::Null, Value::Null)
    } else {
        (
            json!(finding.file()),
            json!(finding.location.line),
            json!(finding.location.column),
        )
    };
    let mut value = json!({
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "help": finding.help,
        "file": file,
        "line": line,
        "column": column,
        "pointer": finding.pointer,
        "field": crate::input::pointer::display(&finding.pointer),
        "object": object,
        "inference": finding.inference,
        "fix": fix,
    });
    if let Some(reason) = &finding.suppressed {
        value["suppressed"] = json!({ "reason": reason });
    }
    value
}
