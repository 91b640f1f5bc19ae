//! Source files and the mapping between YAML positions and byte offsets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The prefix of a scope found from a kustomization file: its objects are
/// applied together (see [`SourceFile::scope_is_applied_together`]).
pub const KUSTOMIZATION_SCOPE: &str = "kustomization:";

/// One input file (or standard input) as read from disk.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown to users: the path as given on the command line, or `<stdin>`.
    pub name: String,
    pub text: String,
    /// Byte offset of the first character of every line.
    line_starts: Vec<usize>,
    /// The application this file belongs to, for pairing objects across
    /// files (the engine pairs objects of one scope): the directory of the
    /// nearest `kustomization.yaml`, else the top directory under the path
    /// given on the command line. Empty where there is no file tree (the
    /// webhook, whose objects are all one application).
    pub scope: String,
    /// Whether the text is ASCII, where a character column is a byte
    /// column and positions are found without walking the line.
    ascii: bool,
    /// Why the file was not read (its text is then empty).
    pub unread: Option<String>,
    /// An object read from a live cluster (`infergate audit`): there is no
    /// text, and findings are placed by object and field path.
    pub live: bool,
    /// A file a kustomization names as a patch (`patches:` with `path`,
    /// `patchesStrategicMerge:`): its objects are fragments merged into
    /// others, not whole objects.
    pub kustomize_patch: bool,
    /// Nodes that aliases added when the file was parsed: the YAML
    /// embedded in its objects may add only what is left of the input's
    /// budget ([`crate::input::nesting::MAX_ALIAS_NODES`]).
    aliased_nodes: AtomicUsize,
}

/// A position in a source file. `line` and `column` are 1-based; `column`
/// counts characters, not bytes, as editors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// Byte offset of the start of the span.
    pub offset: usize,
    /// Byte length of the span (at least 1 where the file has a character there).
    pub len: usize,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: String) -> Arc<Self> {
        Self::in_scope(name, text, String::new())
    }

    /// Whether the files of this file's scope are applied together: a
    /// kustomization's, one stream (stdin, an admission request and the
    /// cluster's objects). A directory of files is not: examples and
    /// alternatives often sit side by side.
    pub fn scope_is_applied_together(&self) -> bool {
        self.scope.is_empty()
            || self.scope == "<stdin>"
            || self.scope.starts_with(KUSTOMIZATION_SCOPE)
    }

    /// The same file with another text (a fix pass), in the same scope.
    pub fn with_text(&self, text: String) -> Arc<Self> {
        if let Some(reason) = &self.unread {
            return Self::unread(self.name.clone(), self.scope.clone(), reason.clone());
        }
        Self::in_scope_as(
            self.name.clone(),
            text,
            self.scope.clone(),
            self.kustomize_patch,
        )
    }

    /// A file that was not read, and why; it is reported, never fixed.
    pub fn unread(name: String, scope: String, reason: String) -> Arc<Self> {
        Arc::new(Self {
            name,
            text: String::new(),
            line_starts: vec![0],
            scope,
            ascii: true,
            unread: Some(reason),
            live: false,
            kustomize_patch: false,
            aliased_nodes: AtomicUsize::new(0),
        })
    }

    /// The stand-in file of one object read from a cluster, named
    /// `namespace/Kind/name`. Its scope is the cluster's: every object of
    /// a cluster exists at once.
    pub fn live(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            text: String::new(),
            line_starts: vec![0],
            scope: String::new(),
            ascii: true,
            unread: None,
            live: true,
            kustomize_patch: false,
            aliased_nodes: AtomicUsize::new(0),
        })
    }

    pub fn in_scope(name: impl Into<String>, text: String, scope: String) -> Arc<Self> {
        Self::in_scope_as(name, text, scope, false)
    }

    /// A file of `scope`, marked as a kustomize patch or not.
    pub fn in_scope_as(
        name: impl Into<String>,
        text: String,
        scope: String,
        kustomize_patch: bool,
    ) -> Arc<Self> {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, byte)| *byte == b'\n')
                .map(|(index, _)| index + 1),
        );
        Arc::new(Self {
            name: name.into(),
            ascii: text.is_ascii(),
            text,
            line_starts,
            scope,
            unread: None,
            live: false,
            kustomize_patch,
            aliased_nodes: AtomicUsize::new(0),
        })
    }

    /// Nodes that aliases added when this file was parsed.
    pub fn aliased_nodes(&self) -> usize {
        self.aliased_nodes.load(Ordering::Relaxed)
    }

    /// Record what aliases added when this file was parsed.
    pub fn set_aliased_nodes(&self, nodes: usize) {
        self.aliased_nodes.store(nodes, Ordering::Relaxed);
    }

    /// Byte offset of a 1-based line and a 0-based character column, clamped
    /// to the file so that a marker past the end never panics.
    pub fn offset_of(&self, line: usize, char_column: usize) -> usize {
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[line_start..];
        if self.ascii {
            // The next line's start bounds this one: no scan along it.
            let line_end = self
                .line_starts
                .get(line)
                .map_or(self.text.len(), |next| next - 1);
            return (line_start + char_column).min(line_end);
        }
        let in_line = rest
            .char_indices()
            .take_while(|(_, ch)| *ch != '\n')
            .nth(char_column)
            .map(|(index, _)| index)
            .unwrap_or_else(|| rest.find('\n').unwrap_or(rest.len()));
        line_start + in_line
    }

    /// The 1-based line and column of a byte offset.
    pub fn line_column_of(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let line_start = self.line_starts[line_index];
        let column = if self.ascii {
            offset - line_start
        } else {
            self.text
                .get(line_start..offset)
                .map_or(0, |prefix| prefix.chars().count())
        };
        (line_index + 1, column + 1)
    }

    /// A location from saphyr markers: 1-based line, 0-based character column.
    pub fn location(&self, start: (usize, usize), end: (usize, usize)) -> Location {
        let offset = self.offset_of(start.0, start.1);
        let end_offset = self.offset_of(end.0, end.1).max(offset);
        let len = if end_offset > offset {
            // A span that runs over several lines (a block mapping) is cut at
            // the end of its first line so that the underline stays readable.
            let first_line_end = self.text[offset..end_offset]
                .find('\n')
                .map_or(end_offset, |newline| offset + newline);
            (first_line_end - offset).max(1)
        } else {
            self.text[offset..].chars().next().map_or(0, char::len_utf8)
        };
        Location {
            line: start.0.max(1),
            column: start.1 + 1,
            offset,
            len,
        }
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let rest = &self.text[start..];
        let end = rest.find('\n').unwrap_or(rest.len());
        rest[..end].trim_end_matches('\r')
    }
}

/// The snippet of a finding is read from the lines around it, found with
/// the line index: rendering stays linear in the number of findings
/// (miette's reader for a plain string scans from the file's start).
impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let start = span.offset();
        let end = start + span.len();
        if end > self.text.len() {
            return Err(miette::MietteError::OutOfBounds);
        }
        let line_of = |offset: usize| match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let first_line = line_of(start).saturating_sub(context_lines_before);
        let last_line = (line_of(end.saturating_sub(1).max(start)) + context_lines_after)
            .min(self.line_starts.len() - 1);
        let window_start = self.line_starts[first_line];
        let window_end = self
            .line_starts
            .get(last_line + 1)
            .copied()
            .unwrap_or(self.text.len());
        // Without lines before, the contents start at the span itself, with
        // its column (miette reads the header's position from this).
        let (window_start, column) = if context_lines_before == 0 {
            let (_, column) = self.line_column_of(start);
            (start, column - 1)
        } else {
            (window_start, 0)
        };
        Ok(Box::new(miette::MietteSpanContents::new(
            &self.text.as_bytes()[window_start..window_end],
            (window_start, window_end - window_start).into(),
            first_line,
            column,
            last_line - first_line + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_not_bytes() {
        let file = SourceFile::new("t.yaml", "a: é\nb: ü x\n".to_string());
        // 'x' is character 5 on line 2 but byte 6 within it.
        let offset = file.offset_of(2, 5);
        assert_eq!(&file.text[offset..offset + 1], "x");
        assert_eq!(file.line_column_of(offset), (2, 6));
    }

    #[test]
    fn markers_past_the_end_are_clamped() {
        let file = SourceFile::new("t.yaml", "a: 1".to_string());
        assert_eq!(file.offset_of(9, 9), 4);
        assert_eq!(file.offset_of(1, 99), 4);
        let location = file.location((1, 99), (1, 120));
        assert_eq!(location.offset, 4);
        assert_eq!(location.len, 0);
    }

    #[test]
    fn multi_line_spans_are_cut_at_the_first_line() {
        let file = SourceFile::new("t.yaml", "key:\n  a: 1\n  b: 2\n".to_string());
        let location = file.location((2, 2), (3, 6));
        assert_eq!(location.line, 2);
        assert_eq!(location.column, 3);
        assert_eq!(
            &file.text[location.offset..location.offset + location.len],
            "a: 1"
        );
    }
}
