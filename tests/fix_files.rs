//! `lint --fix` and `--diff`: fixes written into files with every comment
//! and byte outside the edited nodes kept (clippy-style triples:
//! testdata/fix/RULE.yaml, its findings snapshot, RULE.fixed.yaml).

mod common;

use std::path::{Path, PathBuf};

use infergate::engine::{ClusterFacts, Engine};
use infergate::fix::{self, FixOptions};
use infergate::input::loader;
use infergate::input::source::SourceFile;
use infergate::policy::Policy;

fn triples() -> Vec<(String, PathBuf, PathBuf)> {
    let directory = common::root().join("testdata/fix");
    let mut found: Vec<_> = std::fs::read_dir(&directory)
        .expect("testdata/fix")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            name.ends_with(".yaml")
                && !name.ends_with(".fixed.yaml")
                && !name.ends_with(".policy.yaml")
        })
        .map(|input| {
            let rule = input
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("utf-8 name")
                .to_string();
            let fixed = input.with_extension("fixed.yaml");
            (rule, input, fixed)
        })
        .collect();
    found.sort();
    found
}

fn copy_to_temp(input: &Path) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().expect("temp dir");
    let target = directory.path().join(input.file_name().expect("file name"));
    std::fs::copy(input, &target).expect("copy");
    (directory, target)
}

/// `--policy RULE.policy.yaml` when the triple has one.
fn policy_args(input: &Path) -> Vec<String> {
    let policy = input.with_extension("policy.yaml");
    if policy.is_file() {
        vec!["--policy".to_string(), policy.display().to_string()]
    } else {
        Vec::new()
    }
}

fn run_with(args: &[&str], input: &Path, target: &Path) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    all.extend(policy_args(input));
    all.push(target.display().to_string());
    let borrowed: Vec<&str> = all.iter().map(String::as_str).collect();
    common::infergate(&borrowed, None)
}

fn lint_json(input: &Path, target: &Path) -> serde_json::Value {
    let output = run_with(&["lint", "--format", "json"], input, target);
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn every_fixable_rule_has_a_triple() {
    let rules: Vec<String> = triples().into_iter().map(|(rule, _, _)| rule).collect();
    for rule in infergate::rules::registry() {
        let meta = rule.meta();
        if meta.fixable {
            assert!(
                rules.iter().any(|name| name == meta.id),
                "no testdata/fix/{}.yaml",
                meta.id
            );
        }
    }
}

#[test]
fn fixes_produce_the_fixed_files_and_converge() {
    for (rule, input, fixed) in triples() {
        let before = lint_json(&input, &input);
        let findings: Vec<String> = before["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|finding| {
                format!(
                    "{}:{}: {} [{}]",
                    finding["line"], finding["column"], finding["message"], finding["rule"]
                )
            })
            .collect();
        insta::assert_snapshot!(format!("fix__{rule}.findings"), findings.join("\n"));
        assert!(
            findings
                .iter()
                .any(|line| line.ends_with(&format!("[\"{rule}\"]"))),
            "{rule}: the input must have a finding of the rule"
        );

        // Unsafe fixes too: the triple shows everything the rule can repair
        // (`unsafe_fixes_only_when_asked` checks the difference).
        let (_directory, target) = copy_to_temp(&input);
        let output = run_with(&["lint", "--fix", "--unsafe-fixes"], &input, &target);
        let expected = std::fs::read_to_string(&fixed).expect("the .fixed.yaml file");
        let actual = std::fs::read_to_string(&target).expect("fixed file");
        assert_eq!(
            actual,
            expected,
            "{rule}: --fix output differs from {}",
            fixed.display()
        );
        assert!(
            common::stderr(&output).contains("fixed "),
            "{}",
            common::stderr(&output)
        );

        // Every comment line of the input is still there.
        let original = std::fs::read_to_string(&input).expect("input");
        for comment in original
            .lines()
            .filter(|line| line.trim_start().starts_with('#'))
        {
            assert!(actual.contains(comment), "{rule}: lost comment {comment:?}");
        }
        // The fixed findings are gone; a second run changes nothing.
        let after = lint_json(&input, &target);
        let remaining = after["findings"].as_array().expect("findings");
        assert!(
            remaining
                .iter()
                .all(|finding| finding["rule"] != rule.as_str() || finding["fix"].is_null()),
            "{rule}: fixable findings remain: {remaining:?}"
        );
        let again = run_with(&["lint", "--fix", "--unsafe-fixes"], &input, &target);
        assert!(
            common::stderr(&again).contains("fixed 0 finding(s)"),
            "{rule}: {}",
            common::stderr(&again)
        );
        assert_eq!(
            std::fs::read_to_string(&target).expect("file"),
            expected,
            "{rule}: not idempotent"
        );
    }
}

#[test]
fn diff_writes_nothing_and_exit_codes_reflect_what_remains() {
    let input = common::root().join("testdata/fix/hpa-stabilization-defaults.yaml");
    let (_directory, target) = copy_to_temp(&input);
    let path = target.to_str().expect("utf-8");
    let original = std::fs::read_to_string(&target).expect("file");

    let diff = common::infergate(&["lint", "--diff", path], None);
    assert_eq!(diff.status.code(), Some(1), "a pending fix fails --diff");
    let text = common::stdout(&diff);
    assert!(text.contains("+  behavior:"), "{text}");
    assert!(
        text.starts_with(&format!("--- {path}\n+++ {path}\n")),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&target).expect("file"), original);

    // After fixing nothing is left at warning level.
    let fixed = common::infergate(&["lint", "--fix", "--fail-on", "warning", path], None);
    assert_eq!(fixed.status.code(), Some(0), "{}", common::stdout(&fixed));
    // A warning without a fix (a queue target of 4 that the default
    // scale-up cannot follow from 1 to 12 replicas) fails --fail-on
    // warning and passes the default --fail-on error.
    let text = std::fs::read_to_string(&target).expect("file");
    std::fs::write(&target, text.replace("maxReplicas: 5", "maxReplicas: 12")).expect("write");
    let warned = common::infergate(&["lint", "--fail-on", "warning", path], None);
    assert_eq!(warned.status.code(), Some(1), "{}", common::stdout(&warned));
    assert!(common::stdout(&warned).contains("tune scale-up policies"));
    let errors_only = common::infergate(&["lint", path], None);
    assert_eq!(
        errors_only.status.code(),
        Some(0),
        "{}",
        common::stdout(&errors_only)
    );
    let clean = common::infergate(&["lint", "--diff", path], None);
    assert_eq!(clean.status.code(), Some(0));
    assert!(common::stdout(&clean).is_empty());

    // An error without a fix remains after fixing: exit 1.
    let (_other, example) =
        copy_to_temp(&common::root().join("testdata/examples/000-tgi-gemma.yaml"));
    let output = common::infergate(&["lint", "--fix", example.to_str().expect("utf-8")], None);
    assert_eq!(output.status.code(), Some(1));
    let text = common::stdout(&output);
    assert!(text.contains("unresolved-placeholder"), "{text}");
    assert!(!text.contains("metric-name-lowercase"), "{text}");
}

#[test]
fn unsafe_fixes_only_when_asked() {
    let input = common::root().join("testdata/rules/metric-name-lowercase/fires.yaml");
    let (_directory, target) = copy_to_temp(&input);
    let path = target.to_str().expect("utf-8");
    common::infergate(&["lint", "--fix", path], None);
    assert!(std::fs::read_to_string(&target)
        .expect("file")
        .contains("DCGM_FI_DEV_GPU_UTIL"));
    common::infergate(&["lint", "--fix", "--unsafe-fixes", path], None);
    let text = std::fs::read_to_string(&target).expect("file");
    assert!(
        text.contains("prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn permissions_and_line_endings_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let input = common::root().join("testdata/fix/hpa-stabilization-defaults.yaml");
    let directory = tempfile::tempdir().expect("temp dir");
    let target = directory.path().join("crlf.yaml");
    let crlf = std::fs::read_to_string(&input)
        .expect("input")
        .replace('\n', "\r\n");
    std::fs::write(&target, &crlf).expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    common::infergate(&["lint", "--fix", target.to_str().expect("utf-8")], None);
    let fixed = std::fs::read_to_string(&target).expect("file");
    assert_ne!(fixed, crlf, "the fix was applied");
    assert!(
        !fixed.replace("\r\n", "").contains('\n'),
        "only CRLF line endings"
    );
    let mode = std::fs::metadata(&target)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
    let leftovers = std::fs::read_dir(directory.path()).expect("dir").count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[test]
fn a_file_changed_since_it_was_read_is_not_overwritten() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("x.yaml");
    std::fs::write(&path, "a: 2\n").expect("write");
    let error = fix::write_atomically(&path, "a: 1\n", "a: 3\n").expect_err("refused");
    assert!(error.to_string().contains("changed since it was read"));
    assert_eq!(std::fs::read_to_string(&path).expect("file"), "a: 2\n");
}

/// A document that does not parse (placed first, between and last) keeps
/// its bytes, and the other documents of its file are still fixed; a
/// duplicate key, whose line moves with the edit, does not block either.
#[test]
fn a_broken_document_does_not_block_the_fixes_of_the_others() {
    let fixable = std::fs::read_to_string(
        common::root().join("testdata/fix/hf-home-shm-for-large-models.yaml"),
    )
    .expect("fixture");
    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n";
    let duplicate = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n  name: again\n";
    let layouts = [
        format!("{broken}---\n{fixable}"),
        format!("{fixable}---\n{broken}---\n{fixable}"),
        format!("{fixable}---\n{broken}"),
        format!("{fixable}---\n{duplicate}"),
    ];
    for text in layouts {
        let directory = tempfile::tempdir().expect("temp dir");
        let target = directory.path().join("mixed.yaml");
        std::fs::write(&target, &text).expect("write");
        let path = target.to_str().expect("utf-8");
        let before = common::infergate(&["lint", "--format", "json", path], None);
        let output = common::infergate(&["lint", "--fix", path], None);
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(!errors.contains("not applied"), "{errors}");
        let fixed = std::fs::read_to_string(&target).expect("file");
        assert_ne!(fixed, text, "the readable documents were fixed");
        for piece in [broken, duplicate] {
            assert_eq!(
                text.contains(piece),
                fixed.contains(piece),
                "the unreadable document keeps its bytes"
            );
        }
        let after = common::infergate(&["lint", "--format", "json", path], None);
        let count = |output: &std::process::Output| {
            let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
            json["findings"].as_array().map_or(0, Vec::len)
        };
        assert!(count(&after) < count(&before), "{errors}");
    }
}

#[test]
fn fix_refuses_stdin() {
    let output = common::infergate(&["lint", "--fix", "-"], Some("a: 1\n"));
    assert_eq!(output.status.code(), Some(2));
}

/// Fix one source in memory (unsafe fixes included) and check that the
/// text re-parses to exactly the objects the recorded patches give, and
/// that only lines of edited nodes change. Returns the fixes applied.
fn check_exact_fix(engine: &Engine, source: std::sync::Arc<SourceFile>) -> (usize, Vec<String>) {
    let original = loader::parse_source(source.clone());
    if !original.problems.is_empty() {
        return (0, Vec::new());
    }
    let result = fix::fix_sources(
        engine,
        vec![source.clone()],
        &ClusterFacts::default(),
        FixOptions { unsafe_fixes: true },
    );
    let file = &result.files[0];
    let mut expected: Vec<serde_json::Value> = original
        .objects
        .iter()
        .map(|object| object.value.clone())
        .collect();
    for (index, patch) in &result.patches {
        json_patch::patch(&mut expected[*index], &patch.0).expect("recorded patch applies");
    }
    let reparsed = loader::parse_source(SourceFile::new(file.name.clone(), file.text.clone()));
    let actual: Vec<serde_json::Value> = reparsed
        .objects
        .iter()
        .map(|object| object.value.clone())
        .collect();
    assert_eq!(actual, expected, "{}: text and patches disagree", file.name);
    assert!(
        reparsed.problems.is_empty(),
        "{}: fixed file does not parse",
        file.name
    );
    if file.changed() {
        assert_only_edited_lines_change(&original, &result.patches, &source.text, &file.text);
    }
    (result.applied, result.skipped)
}

/// Every parseable corpus file: after fixing (unsafe fixes included),
/// re-parsing gives exactly the objects that applying the patches to the
/// parsed objects gives, and only lines of edited nodes change.
#[test]
fn corpus_fixes_are_exact_text_edits() {
    let Some(corpus) = common::shared_corpus("corpus_fixes_are_exact_text_edits") else {
        return;
    };
    let sources = loader::read_sources(&[loader::Input::File(corpus)]).expect("corpus");
    let engine = Engine::new(Policy::built_in().expect("policy"));
    let mut fixed_files = 0;
    for source in sources {
        let (applied, skipped) = check_exact_fix(&engine, source);
        assert!(skipped.is_empty(), "{skipped:?}");
        fixed_files += usize::from(applied > 0);
    }
    // The corpus has few fixable findings per file (an HPA linted alone
    // often has no target to call it an inference HPA); these are real.
    assert!(
        fixed_files >= 4,
        "only {fixed_files} corpus files had fixes"
    );
}

/// The same property over every fixture of testdata/, whose layouts (flow
/// and block collections, comments, quoting) were written to exercise it.
#[test]
fn fixture_fixes_are_exact_text_edits() {
    let sources = loader::read_sources(&[loader::Input::File(common::root().join("testdata"))])
        .expect("testdata");
    let engine = Engine::new(Policy::built_in().expect("policy"));
    let mut applied = 0;
    for source in sources {
        if source.name.ends_with(".fixed.yaml") {
            continue;
        }
        let (count, skipped) = check_exact_fix(&engine, source);
        assert!(skipped.is_empty(), "{skipped:?}");
        applied += count;
    }
    assert!(applied >= 30, "only {applied} fixes applied over testdata/");
}

/// Removed or rewritten lines lie inside nodes the patches replace, remove
/// or move; inserted lines sit beside the node they were added to.
fn assert_only_edited_lines_change(
    original: &loader::Loaded,
    patches: &[(usize, json_patch::Patch)],
    before: &str,
    after: &str,
) {
    let mut touched: Vec<(usize, usize)> = Vec::new();
    for (index, patch) in patches {
        let object = &original.objects[*index];
        for operation in &patch.0 {
            let mut paths = vec![operation.path().to_string()];
            if let json_patch::PatchOperation::Move(moved) = operation {
                paths.push(moved.from.to_string());
            }
            for path in paths {
                // The node itself, or for an added node its nearest
                // existing ancestor, whose lines the insertion follows.
                let mut current = path.as_str();
                let span = loop {
                    if let Some(span) = object.positions.get(current) {
                        break span;
                    }
                    match infergate::input::pointer::parent(current) {
                        Some(parent) => current = parent,
                        None => panic!("{path}: no ancestor in the file"),
                    }
                };
                let start = span.key.unwrap_or(span.value).line;
                let end = object.source.line_column_of(span.end).0;
                touched.push((start, end + 1));
            }
        }
    }
    let diff = similar::TextDiff::from_lines(before, after);
    for change in diff.iter_all_changes() {
        let line = match change.tag() {
            similar::ChangeTag::Delete => change.old_index().map(|index| index + 1),
            // An insertion is placed after old line `index` of the nearest
            // kept line; check that line.
            similar::ChangeTag::Insert => None,
            similar::ChangeTag::Equal => None,
        };
        if let Some(line) = line {
            assert!(
                touched
                    .iter()
                    .any(|(start, end)| (*start..=*end).contains(&line)),
                "line {line} changed outside the edited nodes: {:?}",
                change.value()
            );
        }
    }
    for op in diff.ops() {
        if let similar::DiffOp::Insert { old_index, .. } = op {
            let line = *old_index; // 1-based number of the line before it
            assert!(
                touched
                    .iter()
                    .any(|(start, end)| (*start..=*end + 1).contains(&line.max(1))),
                "insertion after line {line} is not beside an edited node"
            );
        }
    }
}

#[test]
fn a_fix_edits_every_file_it_touches() {
    // The HPA and the exporter's PodMonitoring in two files of one run: the
    // rename and the relabelling land together.
    let fixture = std::fs::read_to_string(
        common::root().join("testdata/rules/metric-name-lowercase/fires-with-podmonitoring.yaml"),
    )
    .expect("fixture");
    let (monitor, hpa) = fixture.split_once("---\n").expect("two documents");
    let directory = tempfile::tempdir().expect("temp dir");
    std::fs::write(directory.path().join("podmonitoring.yaml"), monitor).expect("write");
    std::fs::write(directory.path().join("hpa.yaml"), hpa).expect("write");
    let path = directory.path().to_str().expect("utf-8");
    let output = common::infergate(&["lint", "--fix", "--format", "json", path], None);
    assert!(
        common::stderr(&output).contains("in 2 file(s)"),
        "{}",
        common::stderr(&output)
    );
    let hpa = std::fs::read_to_string(directory.path().join("hpa.yaml")).expect("hpa");
    let monitor =
        std::fs::read_to_string(directory.path().join("podmonitoring.yaml")).expect("monitor");
    assert!(hpa.contains("prometheus.googleapis.com|dcgm_fi_dev_gpu_util|unknown"));
    assert!(monitor.contains("replacement: dcgm_fi_dev_gpu_util"));
    let findings: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(findings["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|finding| finding["rule"] != "metric-name-lowercase"));
}

/// What a finding is about, stable across fixes that move fields: its rule
/// and the object (kind, namespace, name) it is on.
fn finding_subject(finding: &infergate::engine::finding::Finding) -> (String, String) {
    let object = finding
        .object
        .as_ref()
        .map(|id| format!("{} {:?} {:?}", id.kind, id.namespace, id.name))
        .unwrap_or_else(|| finding.file().to_string());
    (finding.rule.to_string(), object)
}

/// `--fix` never leaves behind a finding that was not there before: no
/// rule fires on an object after its safe fixes that did not fire on it
/// before (a fix that made a 15Gi /dev/shm for a 638 GiB model did).
#[test]
fn safe_fixes_introduce_no_findings() {
    let sources = loader::read_sources(&[loader::Input::File(common::root().join("testdata"))])
        .expect("testdata");
    let mut checked = 0;
    for source in sources {
        if source.name.ends_with(".fixed.yaml") {
            continue;
        }
        let engine = Engine::new(common::fixture_policy(&source.name));
        let before = engine.run(
            &loader::parse_source(source.clone()),
            &ClusterFacts::default(),
        );
        let result = fix::fix_sources(
            &engine,
            vec![source.clone()],
            &ClusterFacts::default(),
            FixOptions::default(),
        );
        if result.applied == 0 {
            continue;
        }
        checked += 1;
        let file = &result.files[0];
        let after = engine.run(
            &loader::parse_source(SourceFile::new(file.name.clone(), file.text.clone())),
            &ClusterFacts::default(),
        );
        let known: std::collections::HashSet<_> =
            before.findings.iter().map(finding_subject).collect();
        let introduced: Vec<_> = after
            .findings
            .iter()
            .filter(|finding| !known.contains(&finding_subject(finding)))
            .map(|finding| {
                format!(
                    "{} {}: {}",
                    finding.rule, finding.location.line, finding.message
                )
            })
            .collect();
        assert!(
            introduced.is_empty(),
            "{}: the fixes introduced {introduced:?}",
            source.name
        );
    }
    assert!(checked >= 10, "only {checked} fixtures had safe fixes");
}

/// A `--fix` run reports from its last fixing pass, which checked the
/// fixed texts; that report must be the one a plain lint of the written
/// files gives, finding for finding (for the safe and the unsafe fixes).
#[test]
fn the_fix_report_is_a_lint_of_the_fixed_files() {
    for unsafe_fixes in [false, true] {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut files = Vec::new();
        common::yaml_files(&common::root().join("testdata/fix"), &mut files);
        for file in files.iter().filter(|file| {
            let name = file.to_string_lossy();
            !name.ends_with(".fixed.yaml") && !name.ends_with(".policy.yaml")
        }) {
            std::fs::copy(file, directory.path().join(file.file_name().expect("name")))
                .expect("copy");
        }
        let path = directory.path().display().to_string();
        let mut fix_args = vec!["lint", "--fix", "--format", "json", path.as_str()];
        if unsafe_fixes {
            fix_args.push("--unsafe-fixes");
        }
        let fixed = common::infergate(&fix_args, None);
        let said = common::stderr(&fixed);
        assert!(
            said.contains("fixed ") && !said.contains("fixed 0 "),
            "{said}"
        );
        let linted = common::infergate(&["lint", "--format", "json", path.as_str()], None);
        assert_eq!(common::stdout(&fixed), common::stdout(&linted));
        assert_eq!(fixed.status.code(), linted.status.code());
    }
}
