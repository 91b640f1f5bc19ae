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

/// The items of a JSON array pretty-printed as serde_json does, written
/// one at a time after the array's opening bracket: each on its own lines,
/// two spaces deeper than `indent` (the indentation of the line the array
/// opens on), then the closing bracket (`[]` when there is no item). The
/// reports use it so that no format holds all its findings as JSON.
fn write_array_items(
    out: &mut dyn std::io::Write,
    items: impl Iterator<Item = serde_json::Value>,
    indent: &str,
) -> std::io::Result<()> {
    let item_indent = format!("{indent}  ");
    let mut text = String::new();
    let mut first = true;
    for item in items {
        text.clear();
        text.push_str(if first { "\n" } else { ",\n" });
        first = false;
        // serde_json escapes line breaks inside strings, so the lines
        // are the printer's own.
        let pretty = serde_json::to_string_pretty(&item).unwrap_or_else(|_| "{}".to_string());
        for (index, line) in pretty.lines().enumerate() {
            if index > 0 {
                text.push('\n');
            }
            text.push_str(&item_indent);
            text.push_str(line);
        }
        out.write_all(text.as_bytes())?;
    }
    if first {
        out.write_all(b"]")
    } else {
        write!(out, "\n{indent}]")
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
