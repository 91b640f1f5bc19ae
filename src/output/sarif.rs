//! SARIF 2.1.0 for code-scanning tools. The document is complete and valid
//! whatever the findings and the exit code: `results` is always present.

use serde_json::{json, Value};

use crate::engine::Outcome;
use crate::finding::{Finding, Severity};
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

/// A file name as a relative URI reference with forward slashes.
fn artifact_uri(file: &str) -> String {
    if file == "<stdin>" {
        return "stdin".to_string();
    }
    let path = file.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
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

fn result_json(finding: &Finding, rule_index: Option<usize>) -> Value {
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
                "artifactLocation": { "uri": artifact_uri(finding.file()) },
                "region": {
                    "startLine": finding.location.line,
                    "startColumn": finding.location.column,
                    "endLine": end_line.max(finding.location.line),
                    "endColumn": if end_line > finding.location.line { end_column } else { end_column.max(finding.location.column + 1) },
                }
            }
        }],
        "partialFingerprints": {
            "infergate/v1": format!("{}:{}:{}", finding.rule, finding.object.as_ref().map(ToString::to_string).unwrap_or_default(), finding.pointer),
        },
    });
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

pub fn render(outcome: &Outcome) -> String {
    let metas = rules::all_meta();
    let results: Vec<Value> = outcome
        .findings
        .iter()
        .map(|finding| {
            let index = metas.iter().position(|meta| meta.id == finding.rule);
            result_json(finding, index)
        })
        .collect();
    let document = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "infergate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": metas.iter().map(|meta| rule_json(meta)).collect::<Vec<_>>(),
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}
