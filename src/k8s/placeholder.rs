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
    /// A container's `command`/`args` when no shell runs them: Kubernetes
    /// expands only `$(VAR)`, so `$VAR` and `${VAR}` reach the program as
    /// written.
    Command,
    /// A value with a grammar that an uppercase placeholder breaks.
    Grammar(Grammar),
}

/// The grammars that tell a placeholder from a value by its letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// A DNS-1123 name (object, container, volume, claim, Secret…): lowercase.
    DnsName,
    /// The repository path of an image reference: lowercase.
    ImageRepository,
    /// A Cloud Storage bucket name: lowercase.
    BucketName,
}

impl Grammar {
    /// What the grammar requires, for the finding's message.
    pub fn rule(self) -> &'static str {
        match self {
            Self::DnsName => {
                "a Kubernetes name is lowercase (DNS-1123), so the apiserver rejects it"
            }
            Self::ImageRepository => "an image repository is lowercase, so the pull fails",
            Self::BucketName => "a bucket name is lowercase, so the mount fails",
        }
    }
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

/// `${name}`, `${a.b}` and the shell's and envsubst's defaults and checks:
/// `${VAR:-default}`, `${VAR:=x}`, `${VAR-x}`, `${VAR:?}`, `${VAR:+x}`.
const SHELL_FORMS: &str = r"\$\{[A-Za-z_][A-Za-z0-9_.]*(?::?[-=?+][^}]*)?\}|\$[A-Z_][A-Z0-9_]*\b";
static SHELL_VARIABLE: LazyLock<Regex> = LazyLock::new(|| pattern(SHELL_FORMS));
/// `${…}` of a template: Terraform interpolates any expression there
/// (`${var.name}`, `${rule.x}`, `${model-id}`, `${lower(x)}`), so a
/// template's variable is whatever the braces hold.
static TEMPLATE_VARIABLE: LazyLock<Regex> = LazyLock::new(|| pattern(r"\$\{[^{}\n]+\}"));
/// A run of capitals (an `ALL_CAPS` word or part of one) inside a value.
static CAPITAL_RUN: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"[A-Z][A-Z0-9_]*(?:-[A-Z][A-Z0-9_]*)*"));

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

/// Whether a string can hold a placeholder at all: every form has a `$`,
/// a `<` or an uppercase letter, and most strings have none.
pub fn may_contain(text: &str) -> bool {
    text.bytes()
        .any(|byte| byte == b'$' || byte == b'<' || byte.is_ascii_uppercase())
}

/// The first placeholder in `text`, if any.
pub fn find(text: &str, field: Field, settings: &Placeholders) -> Option<Found> {
    find_all(text, field, settings).into_iter().next()
}

/// Every placeholder in `text`, in order, without overlaps.
pub fn find_all(text: &str, field: Field, settings: &Placeholders) -> Vec<Found> {
    if !may_contain(text) {
        return Vec::new();
    }
    let found = |start: usize, end: usize| Found {
        start,
        end,
        text: text[start..end].to_string(),
    };
    let mut hits: Vec<Found> = Vec::new();
    if field == Field::Numeric && ALL_CAPS.is_match(text) {
        return vec![found(0, text.len())];
    }
    if let Field::Grammar(grammar) = field {
        let checked = match grammar {
            Grammar::ImageRepository => image_repository(text),
            Grammar::DnsName | Grammar::BucketName => 0..text.len(),
        };
        hits.extend(
            CAPITAL_RUN
                .find_iter(&text[checked.clone()])
                .map(|hit| found(checked.start + hit.start(), checked.start + hit.end())),
        );
    }
    if matches!(
        field,
        Field::Plain | Field::Numeric | Field::Command | Field::Grammar(_)
    ) {
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
        hits.extend(
            SHELL_VARIABLE
                .find_iter(text)
                .filter(|hit| !is_environment(hit.as_str()))
                .map(|hit| found(hit.start(), hit.end())),
        );
        for hit in ANGLE.find_iter(text) {
            let doubled = text[..hit.start()].ends_with('<') || text[hit.end()..].starts_with('>');
            // `<none>` and `<unset>` are words kubectl prints, not placeholders
            // a person filled in; `<<.Series>>` is an adapter template.
            if !doubled && hit.len() > 3 {
                hits.push(found(hit.start(), hit.end()));
            }
        }
    }
    for word in settings.words.iter().filter(|word| !word.is_empty()) {
        let mut from = 0;
        while let Some(start) = find_word(&text[from..], word).map(|start| from + start) {
            hits.push(found(start, start + word.len()));
            from = start + word.len();
        }
    }
    // In order; a hit inside a longer one (`$X` in `${X:-$X}`) is the same.
    hits.sort_by_key(|hit| (hit.start, std::cmp::Reverse(hit.end)));
    let mut kept: Vec<Found> = Vec::new();
    for hit in hits {
        if kept.last().is_none_or(|last| hit.start >= last.end) {
            kept.push(hit);
        }
    }
    kept
}

/// The byte range of an image reference's registry and repository path,
/// without its tag and digest (tags may hold capitals).
fn image_repository(reference: &str) -> std::ops::Range<usize> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let path_start = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    let end = without_digest[path_start..]
        .find(':')
        .map_or(without_digest.len(), |colon| path_start + colon);
    0..end
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

    fn all(text: &str, field: Field) -> Vec<String> {
        let policy = Policy::built_in().expect("policy");
        find_all(text, field, &policy.placeholders)
            .into_iter()
            .map(|found| found.text)
            .collect()
    }

    #[test]
    fn shell_forms_and_every_placeholder_of_a_value() {
        assert_eq!(all("${TAG:-latest}", Field::Plain), ["${TAG:-latest}"]);
        assert_eq!(
            all("${REGISTRY:=gcr.io}/x", Field::Plain),
            ["${REGISTRY:=gcr.io}"]
        );
        assert_eq!(all("${VAR-x}", Field::Plain), ["${VAR-x}"]);
        assert_eq!(all("${values.image}", Field::Plain), ["${values.image}"]);
        assert_eq!(
            all("<registry>/vllm:${TAG} in PROJECT_ID", Field::Plain),
            ["<registry>", "${TAG}", "PROJECT_ID"]
        );
        assert_eq!(all("--port=$PORT", Field::Command), ["$PORT"]);
        assert_eq!(all("--port=$(PORT)", Field::Command), Vec::<String>::new());
    }

    #[test]
    fn grammars_tell_placeholders_by_their_capitals() {
        let name = Field::Grammar(Grammar::DnsName);
        assert_eq!(
            all("vllm-openai-V_MODEL_STORAGE-V_ACCELERATOR", name),
            ["V_MODEL_STORAGE-V_ACCELERATOR"]
        );
        assert_eq!(all("vllm-openai", name), Vec::<String>::new());
        let image = Field::Grammar(Grammar::ImageRepository);
        assert_eq!(all("SERVER_IMAGE", image), ["SERVER_IMAGE"]);
        assert_eq!(all("us-docker.pkg.dev/P/repo/vllm:v1", image), ["P"]);
        // Tags and digests may hold capitals.
        assert_eq!(
            all("vllm/vllm-openai:V0.8.5-RC1", image),
            Vec::<String>::new()
        );
        assert_eq!(all("localhost:5000/vllm:TAG", image), Vec::<String>::new());
        assert_eq!(
            all("MY_BUCKET", Field::Grammar(Grammar::BucketName)),
            ["MY_BUCKET"]
        );
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
