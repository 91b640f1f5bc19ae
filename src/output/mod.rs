//! Presenting an [`Outcome`](crate::engine::Outcome): human, JSON, SARIF and
//! GitHub Actions formats.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use crate::engine::finding::{Finding, Severity};
use crate::engine::{Outcome, Summary};

/// What a writer of a format wrote, as one text. Writing into memory
/// cannot fail, and every format writes UTF-8.
fn to_text(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write(&mut bytes);
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// A report written a finding at a time, in the report's order: what a
/// format writes before the findings, for each, and after them. A lint
/// checked a batch of applications at a time hands each batch's findings
/// to it and drops them; [`write_outcome`] hands it a whole outcome.
pub trait ReportWriter {
    fn start(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    fn finding(&mut self, finding: &Finding, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    fn finish(&mut self, summary: &Summary, out: &mut dyn std::io::Write) -> std::io::Result<()>;
}

/// Writes a whole outcome through `writer`.
pub fn write_outcome(
    writer: &mut dyn ReportWriter,
    outcome: &Outcome,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    writer.start(out)?;
    for finding in &outcome.findings {
        writer.finding(finding, out)?;
    }
    writer.finish(&outcome.summary, out)
}

/// The items of a JSON array pretty-printed as serde_json does, written
/// one at a time after the array's opening bracket: each on its own lines,
/// two spaces deeper than the indentation of the line the array opens on,
/// then the closing bracket (`[]` when there is no item). The reports use
/// it so that no format holds all its findings as JSON.
struct ArrayItems {
    indent: String,
    items: usize,
    text: String,
}

impl ArrayItems {
    fn new(indent: &str) -> Self {
        Self {
            indent: indent.to_string(),
            items: 0,
            text: String::new(),
        }
    }

    fn push(
        &mut self,
        item: &serde_json::Value,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        self.text.clear();
        self.text
            .push_str(if self.items == 0 { "\n" } else { ",\n" });
        self.items += 1;
        // serde_json escapes line breaks inside strings, so the lines
        // are the printer's own.
        let pretty = serde_json::to_string_pretty(item).unwrap_or_else(|_| "{}".to_string());
        for (index, line) in pretty.lines().enumerate() {
            if index > 0 {
                self.text.push('\n');
            }
            self.text.push_str(&self.indent);
            self.text.push_str("  ");
            self.text.push_str(line);
        }
        out.write_all(self.text.as_bytes())
    }

    fn close(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if self.items == 0 {
            out.write_all(b"]")
        } else {
            write!(out, "\n{}]", self.indent)
        }
    }
}

/// Which findings a format shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visibility {
    /// Show infos and suppressed findings.
    pub verbose: bool,
}

impl Visibility {
    /// Whether a human-facing format shows this finding.
    pub fn shows(&self, finding: &Finding) -> bool {
        self.verbose || (finding.suppressed.is_none() && finding.severity > Severity::Info)
    }
}

/// A text from the input (a YAML value in a message) made safe to print:
/// control characters are shown as escapes (`\e`, `\n`, `\u{7}`), so a
/// value cannot retitle or clear a terminal, nor start a new line that a
/// CI runner reads as a command (`::error::…`). Tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |ch: char| ch != '\t' && (ch.is_control() || ch == '\u{2028}' || ch == '\u{2029}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            ch if unsafe_char(ch) => out.push_str(&format!("\\u{{{:x}}}", ch as u32)),
            ch => out.push(ch),
        }
    }
    std::borrow::Cow::Owned(out)
}
