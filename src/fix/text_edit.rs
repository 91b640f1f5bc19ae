//! Turning RFC 6902 operations into edits of the YAML text, so that every
//! byte outside the edited nodes stays as it was.

use crate::input::pointer::Lookup;
use json_patch::PatchOperation;
use serde_json::Value;

use super::emit::{self, Layout};
use crate::input::object::Object;
use crate::input::pointer;

/// Replace `start..end` of the text with `text` (an insertion when the range
/// is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Why an operation could not become a text edit. The fix is then left
/// out: infergate never rewrites what it cannot place exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot edit {path} in place: {reason}")]
pub struct Unsupported {
    pub path: String,
    pub reason: &'static str,
}

fn unsupported(path: &str, reason: &'static str) -> Unsupported {
    Unsupported {
        path: path.to_string(),
        reason,
    }
}

/// How the file is laid out, read from its text.
pub fn detect_layout(text: &str) -> Layout {
    let lines: Vec<&str> = text.lines().collect();
    let mut indent = None;
    let mut indent_sequences = None;
    for pair in lines.windows(2) {
        let (parent, child) = (pair[0], pair[1]);
        let parent_trimmed = parent.trim_end();
        if parent_trimmed.trim_start().starts_with('#') || !parent_trimmed.ends_with(':') {
            continue;
        }
        let parent_indent = indentation(parent);
        let child_indent = indentation(child);
        let child_content = child.trim_start();
        let parent_is_item = parent.trim_start().starts_with("- ");
        if child_content.starts_with("- ") || child_content == "-" {
            if indent_sequences.is_none() && !parent_is_item {
                indent_sequences = Some(child_indent > parent_indent);
            }
        } else if indent.is_none() && child_indent > parent_indent && !parent_is_item {
            indent = Some(child_indent - parent_indent);
        }
        if indent.is_some() && indent_sequences.is_some() {
            break;
        }
    }
    Layout {
        indent: indent.unwrap_or(2),
        indent_sequences: indent_sequences.unwrap_or(false),
        newline: if text.contains("\r\n") { "\r\n" } else { "\n" },
    }
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |newline| newline + 1)
}

/// End of the line holding `offset`, after its line break.
fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map_or(text.len(), |newline| offset + newline + 1)
}

/// What a scan for the end of a block node is looking at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    /// A mapping entry whose key starts at this column: its value may be a
    /// sequence whose dashes sit at the same column.
    Entry(usize),
    /// A sequence item whose dash is at this column.
    Item(usize),
}

/// The offset just after the last line of the block node that starts on
/// the line holding `offset`: following lines belong to it while they are
/// indented deeper (comments included, trailing blank lines not).
fn block_end(text: &str, offset: usize, block: Block) -> usize {
    let column = match block {
        Block::Entry(column) | Block::Item(column) => column,
    };
    let mut end = line_end(text, offset);
    let mut cursor = end;
    while cursor < text.len() {
        let next = line_end(text, cursor);
        let line = &text[cursor..next];
        let content = line.trim();
        if content.is_empty() {
            cursor = next;
            continue;
        }
        let indent = indentation(line);
        let belongs = indent > column
            || (matches!(block, Block::Entry(_))
                && indent == column
                && (content.starts_with("- ") || content == "-"));
        if !belongs || content == "---" || content == "..." {
            break;
        }
        end = next;
        cursor = next;
    }
    end
}

fn column_of(text: &str, offset: usize) -> usize {
    text[line_start(text, offset)..offset].chars().count()
}

/// The edits for one operation on `object`, whose value is `before` at the
/// time the operation runs (earlier operations of the same fix applied).
pub fn edits_for(
    object: &Object,
    before: &Value,
    operation: &PatchOperation,
    layout: Layout,
) -> Result<Vec<TextEdit>, Unsupported> {
    let text = &object.source.text;
    match operation {
        PatchOperation::Replace(replace) => {
            replace_value(object, text, &replace.path.to_string(), &replace.value)
        }
        PatchOperation::Add(add) => {
            let path = add.path.to_string();
            if before.at(&path).is_some() && !path.ends_with("/-") {
                let parent_is_array = pointer::parent(&path)
                    .and_then(|parent| before.at(parent))
                    .is_some_and(Value::is_array);
                if !parent_is_array {
                    return replace_value(object, text, &path, &add.value);
                }
            }
            add_value(object, text, before, &path, &add.value, layout)
        }
        PatchOperation::Remove(remove) => remove_entry(object, text, &remove.path.to_string()),
        PatchOperation::Move(moved) => move_entry(
            object,
            text,
            before,
            &moved.from.to_string(),
            &moved.path.to_string(),
            layout,
        ),
        _ => Err(unsupported(
            operation.path().as_ref(),
            "only add, replace, remove and move are written to files",
        )),
    }
}

fn replace_value(
    object: &Object,
    text: &str,
    path: &str,
    value: &Value,
) -> Result<Vec<TextEdit>, Unsupported> {
    let span = object
        .positions
        .get(path)
        .ok_or_else(|| unsupported(path, "the node is not in the file"))?;
    let start = span.value.offset;
    if span.is_collection {
        let opening = text[start..].chars().next();
        let closing = match opening {
            Some('{') => '}',
            Some('[') => ']',
            _ => return Err(unsupported(path, "replacing a block collection")),
        };
        if !text[span.end..].starts_with(closing) {
            return Err(unsupported(
                path,
                "the flow collection's end is not where expected",
            ));
        }
        return Ok(vec![TextEdit {
            start,
            end: span.end + 1,
            text: emit::flow(value),
        }]);
    }
    let end = span.end;
    let written = &text[start..end];
    if written.contains('\n') || written.starts_with(['|', '>']) {
        return Err(unsupported(path, "replacing a multi-line scalar"));
    }
    let replacement = match (written.chars().next(), value) {
        (Some('"'), Value::String(new)) => emit::double_quoted(new),
        (Some('\''), Value::String(new)) => {
            emit::single_quoted(new).unwrap_or_else(|| emit::double_quoted(new))
        }
        (_, new) => emit::scalar(new),
    };
    Ok(vec![TextEdit {
        start,
        end,
        text: replacement,
    }])
}

fn add_value(
    object: &Object,
    text: &str,
    before: &Value,
    path: &str,
    value: &Value,
    layout: Layout,
) -> Result<Vec<TextEdit>, Unsupported> {
    let parent_path = pointer::parent(path).ok_or_else(|| unsupported(path, "adding the root"))?;
    let token = path[parent_path.len() + 1..]
        .replace("~1", "/")
        .replace("~0", "~");
    let parent_value = before
        .at(parent_path)
        .ok_or_else(|| unsupported(path, "the parent does not exist"))?;
    let parent_span = object
        .positions
        .get(parent_path)
        .ok_or_else(|| unsupported(path, "the parent is not in the file"))?;
    let parent_start = parent_span.value.offset;
    // A flow collection starts with its own bracket; a block sequence whose
    // first item is a flow mapping starts with that item's `{`.
    let first = text[parent_start..].chars().next();
    let is_flow = match parent_value {
        Value::Array(_) => first == Some('['),
        _ => first == Some('{'),
    };
    match parent_value {
        Value::Object(map) => {
            if is_flow {
                let closing = parent_span.end;
                if !text[closing..].starts_with('}') {
                    return Err(unsupported(
                        path,
                        "the flow mapping's end is not where expected",
                    ));
                }
                let separator = if map.is_empty() { "" } else { ", " };
                return Ok(vec![TextEdit {
                    start: closing,
                    end: closing,
                    text: format!(
                        "{separator}{}: {}",
                        emit::string_scalar(&token),
                        emit::flow(value)
                    ),
                }]);
            }
            // The last entry that is written in the file: keys added by
            // earlier operations of this pass are not, and new keys go
            // after them in the same place.
            let key_location = map
                .keys()
                .rev()
                .find_map(|key| {
                    object
                        .positions
                        .locate_key(&pointer::join(parent_path, key))
                })
                .ok_or_else(|| unsupported(path, "an empty block mapping"))?;
            let column = column_of(text, key_location.offset);
            let at = block_end(text, key_location.offset, Block::Entry(column));
            let mut insertion = String::new();
            if at > 0 && !text[..at].ends_with('\n') {
                insertion.push_str(layout.newline);
            }
            insertion.push_str(&" ".repeat(column));
            insertion.push_str(&emit::string_scalar(&token));
            insertion.push(':');
            insertion.push_str(&emit::after_key(value, column, layout));
            Ok(vec![TextEdit {
                start: at,
                end: at,
                text: insertion,
            }])
        }
        Value::Array(items) => {
            let appends = token == "-" || token.parse::<usize>().ok() == Some(items.len());
            if !appends {
                return Err(unsupported(path, "inserting in the middle of a sequence"));
            }
            if is_flow {
                let closing = parent_span.end;
                if !text[closing..].starts_with(']') {
                    return Err(unsupported(
                        path,
                        "the flow sequence's end is not where expected",
                    ));
                }
                let separator = if items.is_empty() { "" } else { ", " };
                return Ok(vec![TextEdit {
                    start: closing,
                    end: closing,
                    text: format!("{separator}{}", emit::flow(value)),
                }]);
            }
            let item = (0..items.len())
                .rev()
                .find_map(|index| object.positions.get(&pointer::join(parent_path, index)))
                .ok_or_else(|| unsupported(path, "an empty block sequence"))?;
            let item_start = item.value.offset;
            let before_item = &text[line_start(text, item_start)..item_start];
            let dash = before_item
                .trim_end()
                .strip_suffix('-')
                .filter(|prefix| prefix.chars().all(|ch| ch == ' '))
                .ok_or_else(|| unsupported(path, "the sequence item does not start its line"))?;
            let column = dash.chars().count();
            let at = block_end(text, item_start, Block::Item(column));
            let mut insertion = String::new();
            if at > 0 && !text[..at].ends_with('\n') {
                insertion.push_str(layout.newline);
            }
            insertion.push_str(&" ".repeat(column));
            insertion.push_str("- ");
            insertion.push_str(&emit::sequence_item(value, column + 2, layout));
            Ok(vec![TextEdit {
                start: at,
                end: at,
                text: insertion,
            }])
        }
        _ => Err(unsupported(path, "the parent is a scalar")),
    }
}

/// Move a mapping entry. When both ends are block mappings the entry's own
/// lines are moved and re-indented, so its comments and quoting travel with
/// it; otherwise it is removed and written anew.
fn move_entry(
    object: &Object,
    text: &str,
    before: &Value,
    from: &str,
    path: &str,
    layout: Layout,
) -> Result<Vec<TextEdit>, Unsupported> {
    let value = before
        .at(from)
        .cloned()
        .ok_or_else(|| unsupported(from, "the source of the move does not exist"))?;
    let mut removal = remove_entry(object, text, from)?;
    let mut after_removal = before.clone();
    if let (Some(parent), Some(key)) = (pointer::parent(from), from.rsplit('/').next()) {
        if let Some(map) = after_removal
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
        {
            map.remove(&key.replace("~1", "/").replace("~0", "~"));
        }
    }
    let same_key = from.rsplit('/').next() == path.rsplit('/').next();
    let insertion = add_value(object, text, &after_removal, path, &value, layout)?;
    let (Some(removed), [added]) = (removal.first().cloned(), insertion.as_slice()) else {
        removal.extend(insertion);
        return Ok(removal);
    };
    let target_column = indentation(&added.text);
    let block_insert = added.start == added.end && added.text.ends_with('\n') && same_key;
    let source_column = object
        .positions
        .locate_key(from)
        .map(|key| column_of(text, key.offset));
    match (block_insert, source_column) {
        (true, Some(source_column)) => {
            let lines = &text[removed.start..removed.end];
            let moved = reindent(lines, source_column, target_column)
                .ok_or_else(|| unsupported(from, "the entry cannot be re-indented"))?;
            Ok(vec![
                removed,
                TextEdit {
                    start: added.start,
                    end: added.end,
                    text: moved,
                },
            ])
        }
        _ => {
            removal.extend(insertion);
            Ok(removal)
        }
    }
}

/// Shift every non-blank line of `lines` from `from` to `to` columns.
fn reindent(lines: &str, from: usize, to: usize) -> Option<String> {
    let mut out = String::with_capacity(lines.len() + 16);
    for line in lines.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push_str(line);
        } else if to >= from {
            out.push_str(&" ".repeat(to - from));
            out.push_str(line);
        } else {
            let cut = from - to;
            if indentation(line) < cut {
                return None;
            }
            out.push_str(&line[cut..]);
        }
    }
    Some(out)
}

fn remove_entry(object: &Object, text: &str, path: &str) -> Result<Vec<TextEdit>, Unsupported> {
    let span = object
        .positions
        .get(path)
        .ok_or_else(|| unsupported(path, "the node has no position"))?;
    let Some(key) = span.key else {
        return remove_item(
            text,
            path,
            span.value.offset,
            span.end.max(span.value.offset + span.value.len),
        );
    };
    let start = line_start(text, key.offset);
    if !text[start..key.offset].chars().all(|ch| ch == ' ') {
        return Err(unsupported(path, "the key does not start its line"));
    }
    let column = column_of(text, key.offset);
    let end = block_end(text, key.offset, Block::Entry(column));
    Ok(vec![TextEdit {
        start,
        end,
        text: String::new(),
    }])
}

/// Remove a sequence item whose value spans `start..end`: in block style
/// the item's lines (`- x` and what is indented under it), in flow style
/// the item and the comma that separates it from its neighbour.
fn remove_item(
    text: &str,
    path: &str,
    start: usize,
    end: usize,
) -> Result<Vec<TextEdit>, Unsupported> {
    let end = end.min(text.len());
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) || start > end {
        return Err(unsupported(path, "the item's span is not in the text"));
    }
    let line = line_start(text, start);
    let before = &text[line..start];
    let dash = before.trim_end();
    if dash.trim_start() == "-" {
        // Block style: `  - item`, the dash first on its line.
        let dash_offset = line + dash.len() - 1;
        let column = column_of(text, dash_offset);
        let item_end = block_end(text, dash_offset, Block::Item(column));
        return Ok(vec![TextEdit {
            start: line,
            end: item_end,
            text: String::new(),
        }]);
    }
    // Flow style: `[a, b, c]`.
    let after = &text[end..];
    let skipped = after.len() - after.trim_start_matches([' ', '\t']).len();
    if after[skipped..].starts_with(',') {
        let rest = &after[skipped + 1..];
        let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        return Ok(vec![TextEdit {
            start,
            end: end + skipped + 1 + spaces,
            text: String::new(),
        }]);
    }
    let head = &text[..start];
    let trimmed = head.trim_end_matches([' ', '\t']);
    if trimmed.ends_with(',') {
        return Ok(vec![TextEdit {
            start: trimmed.len() - 1,
            end,
            text: String::new(),
        }]);
    }
    if trimmed.ends_with('[') {
        // The only item.
        return Ok(vec![TextEdit {
            start,
            end,
            text: String::new(),
        }]);
    }
    Err(unsupported(
        path,
        "the item is neither a block item nor a flow item",
    ))
}

/// Apply edits (non-overlapping) to a text. Insertions at the same offset
/// go deepest first: a key added to an inner mapping that ends where its
/// parent ends must come before a key added to the parent. Insertions at
/// the same depth keep their order.
pub fn apply(text: &str, edits: &[TextEdit]) -> Result<String, &'static str> {
    // A sequence item written at the same column as a mapping key belongs
    // to that key's value (`volumeMounts:` / `- name: …`), so it is deeper.
    let depth = |edit: &TextEdit| {
        if edit.start == edit.end {
            let inserted = edit.text.trim_start_matches(['\r', '\n']);
            let column = indentation(inserted);
            2 * column + usize::from(inserted[column..].starts_with('-'))
        } else {
            0
        }
    };
    let mut ordered: Vec<(usize, &TextEdit)> = edits.iter().enumerate().collect();
    ordered.sort_by_key(|(index, edit)| {
        (edit.start, edit.end, std::cmp::Reverse(depth(edit)), *index)
    });
    for pair in ordered.windows(2) {
        let (first, second) = (pair[0].1, pair[1].1);
        if second.start < first.end {
            return Err("two edits overlap");
        }
    }
    let mut out = String::with_capacity(text.len() + 256);
    let mut cursor = 0;
    for (_, edit) in ordered {
        if edit.start < cursor
            || edit.end > text.len()
            || !text.is_char_boundary(edit.start)
            || !text.is_char_boundary(edit.end)
        {
            return Err("an edit falls outside the text");
        }
        out.push_str(&text[cursor..edit.start]);
        out.push_str(&edit.text);
        cursor = edit.end;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_read_from_the_file() {
        let kubectl = "spec:\n  metrics:\n  - type: Pods\n    pods: {}\n";
        let layout = detect_layout(kubectl);
        assert_eq!(layout.indent, 2);
        assert!(!layout.indent_sequences);
        let indented = "spec:\n    metrics:\n        - a\n";
        let layout = detect_layout(indented);
        assert_eq!(layout.indent, 4);
        assert!(layout.indent_sequences);
        assert_eq!(detect_layout("a:\r\n  b: 1\r\n").newline, "\r\n");
    }

    #[test]
    fn block_ends_keep_trailing_blank_lines_and_shallow_comments_outside() {
        let text = "a:\n  b: 1\n  # deep comment\n\n# top comment\nc: 2\n";
        assert_eq!(
            block_end(text, 0, Block::Entry(0)),
            "a:\n  b: 1\n  # deep comment\n".len()
        );
        let sequence = "m:\n- x: 1\n  y: 2\n- z: 3\nn: 1\n";
        assert_eq!(
            block_end(sequence, 0, Block::Entry(0)),
            "m:\n- x: 1\n  y: 2\n- z: 3\n".len()
        );
        assert_eq!(
            block_end(sequence, 3, Block::Item(0)),
            "m:\n- x: 1\n  y: 2\n".len()
        );
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let edits = [
            TextEdit {
                start: 0,
                end: 3,
                text: "x".into(),
            },
            TextEdit {
                start: 2,
                end: 4,
                text: "y".into(),
            },
        ];
        assert!(apply("abcdef", &edits).is_err());
        let inserts = [
            TextEdit {
                start: 1,
                end: 1,
                text: "1".into(),
            },
            TextEdit {
                start: 1,
                end: 1,
                text: "2".into(),
            },
        ];
        assert_eq!(apply("ab", &inserts).as_deref(), Ok("a12b"));
        // A deeper block inserted at the same place goes first.
        let nested = [
            TextEdit {
                start: 10,
                end: 10,
                text: "  b: 1\n".into(),
            },
            TextEdit {
                start: 10,
                end: 10,
                text: "    c: 2\n".into(),
            },
        ];
        assert_eq!(
            apply("x:\n  a: 1\n", &nested).as_deref(),
            Ok("x:\n  a: 1\n    c: 2\n  b: 1\n")
        );
    }
}
