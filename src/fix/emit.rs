//! Writing JSON values as YAML text that fits into an existing file.

use serde_json::Value;

use crate::input::loader::resolve_scalar;

/// How the file lays out what it already has.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Spaces per nesting level of mappings.
    pub indent: usize,
    /// Whether block sequences are indented under their key
    /// (`key:\n  - a`) or not (`key:\n- a`).
    pub indent_sequences: bool,
    /// The file's line ending.
    pub newline: &'static str,
}

/// A string as a YAML scalar that reads back as the same string under the
/// YAML 1.1 rules Kubernetes uses: plain when that is unambiguous, single
/// quoted when the text holds double quotes but no single quote (a PromQL
/// query with its label values), double quoted otherwise.
pub fn string_scalar(text: &str) -> String {
    if is_plain_safe(text) {
        return text.to_string();
    }
    let readable = text.contains('"')
        && !text.contains('\'')
        && !text.chars().any(|ch| ch.is_control() || ch == '\\');
    match readable.then(|| single_quoted(text)).flatten() {
        Some(quoted) => quoted,
        None => double_quoted(text),
    }
}

/// JSON string syntax is valid YAML double-quoted syntax.
pub fn double_quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{}\"", text.escape_default()))
}

/// A single-quoted scalar, or `None` when the text cannot be one.
pub fn single_quoted(text: &str) -> Option<String> {
    (!text.contains(['\n', '\r'])).then(|| format!("'{}'", text.replace('\'', "''")))
}

fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if text.ends_with([' ', ':']) || text.contains(": ") || text.contains(" #") {
        return false;
    }
    if text
        .chars()
        .any(|ch| ch.is_control() || "{}[],".contains(ch))
    {
        return false;
    }
    matches!(
        resolve_scalar(text, saphyr::ScalarStyle::Plain, None),
        Value::String(_)
    )
}

/// A scalar value (string, number, boolean, null) as YAML.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => string_scalar(text),
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Array(_) | Value::Object(_) => flow(value),
    }
}

/// Any value in flow style (`{a: 1, b: [x]}`), valid wherever a value goes.
pub fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", string_scalar(key), flow(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        scalar_value => scalar(scalar_value),
    }
}

fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// What follows `key:` for a value whose key sits at column `column`
/// (0-based): ` scalar` on the same line, or a block on the lines below.
/// Always ends with a newline.
pub fn after_key(value: &Value, column: usize, layout: Layout) -> String {
    let newline = layout.newline;
    match value {
        Value::Object(map) if !map.is_empty() => {
            let child = column + layout.indent;
            let mut out = newline.to_string();
            for (key, value) in map {
                out.push_str(&" ".repeat(child));
                out.push_str(&string_scalar(key));
                out.push(':');
                out.push_str(&after_key(value, child, layout));
            }
            out
        }
        Value::Array(items) if !items.is_empty() => {
            let dash = if layout.indent_sequences {
                column + layout.indent
            } else {
                column
            };
            let mut out = newline.to_string();
            for item in items {
                out.push_str(&" ".repeat(dash));
                out.push_str("- ");
                out.push_str(&sequence_item(item, dash + 2, layout));
            }
            out
        }
        other if is_empty_collection(other) => format!(" {}{newline}", flow(other)),
        other => format!(" {}{newline}", scalar(other)),
    }
}

/// What follows `- ` for an item whose content starts at `column`.
pub fn sequence_item(value: &Value, column: usize, layout: Layout) -> String {
    let newline = layout.newline;
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut out = String::new();
            for (index, (key, value)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(&" ".repeat(column));
                }
                out.push_str(&string_scalar(key));
                out.push(':');
                out.push_str(&after_key(value, column, layout));
            }
            out
        }
        other => format!("{}{newline}", flow(other)),
    }
}

/// A whole document: a mapping written as a block at column 0, anything
/// else as one flow value. Ends with a newline.
pub fn document(value: &Value, layout: Layout) -> String {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut out = String::new();
            for (key, value) in map {
                out.push_str(&string_scalar(key));
                out.push(':');
                out.push_str(&after_key(value, 0, layout));
            }
            out
        }
        other => format!("{}{}", flow(other), layout.newline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LAYOUT: Layout = Layout {
        indent: 2,
        indent_sequences: true,
        newline: "\n",
    };

    #[test]
    fn strings_that_would_change_type_are_quoted() {
        assert_eq!(
            string_scalar("dcgm_fi_dev_gpu_util"),
            "dcgm_fi_dev_gpu_util"
        );
        assert_eq!(
            string_scalar("prometheus.googleapis.com|x|gauge"),
            "prometheus.googleapis.com|x|gauge"
        );
        assert_eq!(string_scalar("yes"), "\"yes\"");
        assert_eq!(string_scalar("80"), "\"80\"");
        assert_eq!(string_scalar("a: b"), "\"a: b\"");
        assert_eq!(string_scalar(""), "\"\"");
        assert_eq!(string_scalar("__name__"), "__name__");
        assert_eq!(string_scalar("*"), "\"*\"");
    }

    #[test]
    fn block_values_follow_the_layout() {
        let value = json!({"scaleDown": {"stabilizationWindowSeconds": 300}, "rules": [{"a": 1, "b": [2]}]});
        assert_eq!(
            after_key(&value, 2, LAYOUT),
            "\n    scaleDown:\n      stabilizationWindowSeconds: 300\n    rules:\n      - a: 1\n        b:\n          - 2\n"
        );
        let flat = Layout {
            indent_sequences: false,
            ..LAYOUT
        };
        assert_eq!(after_key(&json!(["x"]), 0, flat), "\n- x\n");
        assert_eq!(after_key(&json!({}), 0, flat), " {}\n");
        assert_eq!(flow(&json!({"k": [1, "yes"]})), "{k: [1, \"yes\"]}");
    }
}
