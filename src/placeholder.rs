//! Recognising tutorial placeholders left in values (`$TARGET`, `${VAR}`,
//! `PROJECT_ID`, `<namespace>`).

use std::sync::LazyLock;

use regex::Regex;

use crate::policy::Placeholders;

/// Where a string sits, which decides what counts as a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An ordinary value.
    Plain,
    /// A value that must be a number or a quantity.
    Numeric,
    /// Container `command`/`args`: a shell may expand `$VAR` there, and
    /// `$(VAR)` is Kubernetes' own expansion.
    Shell,
    /// ConfigMap or Secret data: scripts and templates with their own syntax.
    Data,
}

/// A placeholder found in a string: byte range and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

fn pattern(text: &str) -> Regex {
    Regex::new(text).unwrap_or_else(|error| unreachable!("static pattern {text}: {error}"))
}

/// `${name}`: a shell's or a template's (Terraform's templatefile) variable.
const BRACED_VARIABLE: &str = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}";
static SHELL_VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| pattern(&format!(r"{BRACED_VARIABLE}|\$[A-Z_][A-Z0-9_]*\b")));
static TEMPLATE_VARIABLE: LazyLock<Regex> = LazyLock::new(|| pattern(BRACED_VARIABLE));

/// Every `${name}` in `text`, for files that are templates; `$${name}` is
/// Terraform's escape for a literal `${name}` and is left out.
pub fn template_variables(text: &str) -> Vec<Found> {
    TEMPLATE_VARIABLE
        .find_iter(text)
        .filter(|hit| !text[..hit.start()].ends_with('$'))
        .map(|hit| Found {
            start: hit.start(),
            end: hit.end(),
            text: hit.as_str().to_string(),
        })
        .collect()
}
static ANGLE: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"<([A-Za-z][A-Za-z0-9_.-]*(?: [A-Za-z0-9_.-]+)*)>"));
static ALL_CAPS: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$"));

/// The first placeholder in `text`, if any.
/// Whether a string can hold a placeholder at all: every form has a `$`,
/// a `<` or an uppercase letter, and most strings have none.
pub fn may_contain(text: &str) -> bool {
    text.bytes()
        .any(|byte| byte == b'$' || byte == b'<' || byte.is_ascii_uppercase())
}

pub fn find(text: &str, field: Field, settings: &Placeholders) -> Option<Found> {
    if !may_contain(text) {
        return None;
    }
    let found = |start: usize, end: usize| Found {
        start,
        end,
        text: text[start..end].to_string(),
    };
    if field == Field::Numeric && ALL_CAPS.is_match(text) {
        return Some(found(0, text.len()));
    }
    if matches!(field, Field::Plain | Field::Numeric) {
        let is_environment = |variable: &str| {
            let name = variable
                .trim_start_matches('$')
                .trim_start_matches('{')
                .trim_end_matches('}');
            settings
                .environment_variables
                .iter()
                .any(|known| known == name)
        };
        if let Some(hit) = SHELL_VARIABLE
            .find_iter(text)
            .find(|hit| !is_environment(hit.as_str()))
        {
            return Some(found(hit.start(), hit.end()));
        }
        if let Some(hit) = ANGLE.find(text) {
            let doubled = text[..hit.start()].ends_with('<') || text[hit.end()..].starts_with('>');
            // `<none>` and `<unset>` are words kubectl prints, not placeholders
            // a person filled in; `<<.Series>>` is an adapter template.
            if !doubled && hit.len() > 3 {
                return Some(found(hit.start(), hit.end()));
            }
        }
    }
    settings
        .words
        .iter()
        .filter(|word| !word.is_empty())
        .find_map(|word| find_word(text, word).map(|start| found(start, start + word.len())))
}

/// A whole-word occurrence of `word` that is not a shell variable
/// (`$WORD`, `${WORD}`, `$(WORD)`) nor an assignment (`WORD=`).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_word_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(relative) = text[from..].find(word) {
        let start = from + relative;
        let end = start + word.len();
        let before = start.checked_sub(1).map(|index| bytes[index]);
        let after = bytes.get(end).copied();
        let bounded = !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte);
        let variable = matches!(before, Some(b'$' | b'{' | b'('));
        let assignment = after == Some(b'=');
        if bounded && !variable && !assignment {
            return Some(start);
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn first(text: &str, field: Field) -> Option<String> {
        let policy = Policy::built_in().expect("policy");
        find(text, field, &policy.placeholders).map(|found| found.text)
    }

    #[test]
    fn placeholders_from_the_seeds() {
        assert_eq!(
            first("$HPA_AVERAGEVALUE_TARGET", Field::Numeric).as_deref(),
            Some("$HPA_AVERAGEVALUE_TARGET")
        );
        assert_eq!(
            first("MIN_REPLICAS", Field::Numeric).as_deref(),
            Some("MIN_REPLICAS")
        );
        assert_eq!(
            first("--query.project-id=PROJECT_ID", Field::Shell).as_deref(),
            Some("PROJECT_ID")
        );
        assert_eq!(
            first("avg(x{cluster=\"CLUSTER_NAME\"})", Field::Data).as_deref(),
            Some("CLUSTER_NAME")
        );
        assert_eq!(
            first("<namespace>", Field::Plain).as_deref(),
            Some("<namespace>")
        );
        assert_eq!(first("${IMAGE}", Field::Plain).as_deref(), Some("${IMAGE}"));
        let variables: Vec<String> = template_variables("${app}-${gpu}:$${HOME}")
            .into_iter()
            .map(|found| found.text)
            .collect();
        assert_eq!(variables, ["${app}", "${gpu}"]);
    }

    #[test]
    fn real_values_are_not_placeholders() {
        assert_eq!(first("$(MODEL_ID)", Field::Shell), None);
        assert_eq!(first("echo $PROJECT_ID", Field::Shell), None);
        assert_eq!(first("export PROJECT_ID=x", Field::Data), None);
        assert_eq!(
            first("avg(<<.Series>>{<<.LabelMatchers>>})", Field::Plain),
            None
        );
        assert_eq!(first("TARGETS", Field::Plain), None);
        assert_eq!(first("my-target", Field::Plain), None);
        assert_eq!(first("<s>", Field::Plain), None);
        assert_eq!(first("80", Field::Numeric), None);
        assert_eq!(
            first("${LD_LIBRARY_PATH}:/usr/local/nvidia/lib64", Field::Plain),
            None
        );
        assert_eq!(
            first("$HOME/.cache ${BUCKET}", Field::Plain).as_deref(),
            Some("${BUCKET}")
        );
    }
}
