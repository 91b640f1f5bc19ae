//! The JSON format (version 1). Its shape is documented in the README and
//! stable: fields are added, never renamed or removed, within a version.

use serde_json::{json, Value};

use super::Visibility;
use crate::engine::Outcome;
use crate::finding::Finding;

pub const FORMAT_VERSION: u32 = 1;

pub fn render(outcome: &Outcome, visibility: Visibility) -> String {
    let findings: Vec<Value> = outcome
        .findings
        .iter()
        .filter(|finding| finding.suppressed.is_none() || visibility.verbose)
        .map(finding_json)
        .collect();
    let summary = &outcome.summary;
    let document = json!({
        "version": FORMAT_VERSION,
        "findings": findings,
        "summary": {
            "files": summary.files,
            "objects": summary.objects,
            "skipped": summary.skipped,
            "errors": summary.errors,
            "warnings": summary.warnings,
            "infos": summary.infos,
            "suppressed": summary.suppressed,
        }
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
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
    let mut value = json!({
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "help": finding.help,
        "file": finding.file(),
        "line": finding.location.line,
        "column": finding.location.column,
        "pointer": finding.pointer,
        "object": object,
        "inference": finding.inference,
        "fix": fix,
    });
    if let Some(reason) = &finding.suppressed {
        value["suppressed"] = json!({ "reason": reason });
    }
    value
}
