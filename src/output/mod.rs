//! Presenting an [`Outcome`](crate::engine::Outcome): human, JSON, SARIF and
//! GitHub Actions formats.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use crate::engine::finding::{Finding, Severity};

/// What a writer of a format wrote, as one text. Writing into memory
/// cannot fail, and every format writes UTF-8.
fn to_text(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write(&mut bytes);
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// A value pretty-printed as serde_json does, every line indented.
/// serde_json escapes line breaks inside strings, so lines are the
/// printer's own.
fn push_indented(text: &mut String, value: &serde_json::Value, indent: &str) {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    for (index, line) in pretty.lines().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.push_str(indent);
        text.push_str(line);
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
