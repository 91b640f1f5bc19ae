//! The real-world corpus in ../shared/corpus: every file is linted without
//! a panic or a hang, and invalid files are findings, not failures.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn corpus(test: &str) -> Option<PathBuf> {
    common::shared_corpus(test)
}

fn yaml_files(directory: &std::path::Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(directory)
        .expect("readable")
        .flatten()
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
}

#[test]
fn every_corpus_file_is_linted_on_its_own() {
    let Some(corpus) = corpus("every_corpus_file_is_linted_on_its_own") else {
        return;
    };
    let mut files = Vec::new();
    yaml_files(&corpus, &mut files);
    assert!(files.len() >= 150, "corpus has {} files", files.len());
    let mut objects = 0;
    for file in &files {
        let path = file.to_str().expect("utf-8 path");
        let outcome = common::lint(&[path]);
        objects += outcome.summary.objects;
        for finding in &outcome.findings {
            assert!(finding.location.line >= 1, "{path}: finding without a line");
            assert!(
                finding.location.offset <= finding.source.text.len(),
                "{path}: offset past the end"
            );
        }
    }
    assert!(
        objects >= 200,
        "only {objects} objects read from the corpus"
    );
}

#[test]
fn the_binary_lints_the_whole_corpus_and_answers() {
    let Some(corpus) = corpus("the_binary_lints_the_whole_corpus_and_answers") else {
        return;
    };
    let child = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "--format", "json", "--verbose"])
        .arg(&corpus)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // A hang guard, not a performance assertion: the benchmark measures
    // speed. The output is read while the child runs, so a large report
    // cannot fill the pipe and block it.
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(Duration::from_secs(300)) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the linter did not finish on the corpus");
        }
    };
    let status = output.status;
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let mut files = Vec::new();
    yaml_files(&corpus, &mut files);
    assert_eq!(
        document["summary"]["files"].as_u64(),
        Some(files.len() as u64)
    );
    for finding in document["findings"].as_array().expect("findings") {
        assert!(finding["line"].as_u64().is_some_and(|line| line >= 1));
        assert!(finding["file"]
            .as_str()
            .is_some_and(|file| !file.is_empty()));
    }
}

/// Truncated and mangled copies of every corpus file never make the loader
/// or the engine panic; they become findings.
#[test]
fn damaged_corpus_files_do_not_panic() {
    let Some(corpus) = corpus("damaged_corpus_files_do_not_panic") else {
        return;
    };
    let mut files = Vec::new();
    yaml_files(&corpus, &mut files);
    let mut damaged = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let length = text.len();
        for fraction in [3, 5, 7] {
            let mut cut = length * fraction / 11;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            for variant in [
                text[..cut].to_string(),
                format!("{}\t: [{{\n{}", &text[..cut], &text[cut..]),
            ] {
                let source = infergate::input::source::SourceFile::new("damaged.yaml", variant);
                let loaded = infergate::input::loader::parse_all(vec![source]);
                let _ = common::run(&loaded);
                damaged += 1;
            }
        }
    }
    assert!(damaged >= 1000, "only {damaged} damaged variants");
}

/// (file, rule, line, severity) of every finding of a JSON report, with the
/// corpus prefix taken off the file names.
fn finding_rows(output: &std::process::Output) -> std::collections::BTreeSet<String> {
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    document["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|finding| finding["suppressed"].is_null() || finding["suppressed"] == false)
        .map(|finding| {
            let file = finding["file"].as_str().unwrap_or_default();
            let file = file.strip_prefix("../shared/corpus/").unwrap_or(file);
            format!(
                "{file}\t{}\t{}\t{}",
                finding["rule"].as_str().unwrap_or_default(),
                finding["line"],
                finding["severity"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Precision is kept, not re-measured: every finding on the corpus was
/// reviewed and recorded in tests/corpus-expectations.tsv with a verdict. A
/// finding that appears or disappears fails here until the file says so.
#[test]
fn corpus_findings_match_the_reviewed_expectations() {
    if corpus("corpus_findings_match_the_reviewed_expectations").is_none() {
        return;
    }
    let output = common::infergate(
        &["lint", "--format", "json", "-v", "../shared/corpus"],
        None,
    );
    let actual = finding_rows(&output);
    let text = std::fs::read_to_string(common::root().join("tests/corpus-expectations.tsv"))
        .expect("tests/corpus-expectations.tsv");
    let mut expected = std::collections::BTreeSet::new();
    for line in text.lines().filter(|line| !line.starts_with('#')).skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        assert!(columns.len() >= 5, "malformed row: {line}");
        assert!(
            matches!(columns[4], "TP" | "FP" | "debatable"),
            "verdict must be TP, FP or debatable: {line}"
        );
        expected.insert(columns[..4].join("\t"));
    }
    let appeared: Vec<_> = actual.difference(&expected).collect();
    let disappeared: Vec<_> = expected.difference(&actual).collect();
    assert!(
        appeared.is_empty() && disappeared.is_empty(),
        "corpus findings changed; review them and update tests/corpus-expectations.tsv\nnew:\n{}\ngone:\n{}",
        appeared.iter().map(|row| row.as_str()).collect::<Vec<_>>().join("\n"),
        disappeared.iter().map(|row| row.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// A message is one idea that fits on a screen: at most 160 characters on
/// every fixture and corpus file; provenance belongs in the help.
#[test]
fn messages_fit_on_a_screen() {
    if corpus("messages_fit_on_a_screen").is_none() {
        return;
    }
    let output = common::infergate(
        &[
            "lint",
            "--format",
            "json",
            "-v",
            "testdata",
            "../shared/corpus",
        ],
        None,
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let findings = document["findings"].as_array().cloned().unwrap_or_default();
    assert!(findings.len() > 100, "only {} findings", findings.len());
    let long: Vec<String> = findings
        .iter()
        .filter_map(|finding| finding["message"].as_str())
        .filter(|message| message.chars().count() > 160)
        .map(str::to_string)
        .collect();
    assert!(long.is_empty(), "messages over 160 characters: {long:#?}");
}

/// Every admission warning fits Kubernetes' 120 characters by construction
/// (a short form with its advice where the message is long), so none is
/// cut: on every fixture and corpus file, each warning and each mutation
/// warning of the webhook is at most 120 characters.
#[test]
fn admission_warnings_fit_without_being_cut() {
    if corpus("admission_warnings_fit_without_being_cut").is_none() {
        return;
    }
    let paths = ["testdata", "../shared/corpus"];
    let outcome = common::lint(&paths);
    let mut checked = 0;
    let mut long = Vec::new();
    for finding in &outcome.findings {
        let mut texts = Vec::new();
        if finding.severity == infergate::engine::finding::Severity::Warning {
            texts.push(finding.warning());
        }
        if let Some(fix) = &finding.fix {
            texts.push(format!("mutated: {} ({})", fix.description, finding.rule));
        }
        for text in texts {
            checked += 1;
            if text.chars().count() > 120 {
                long.push(text);
            }
        }
    }
    assert!(checked > 50, "only {checked} warnings");
    assert!(long.is_empty(), "warnings over 120 characters: {long:#?}");
}

/// docs/rules.md's precision table is what the reviewed expectations say:
/// per rule, the errors and warnings on the corpus and their verdicts.
#[test]
fn the_readme_states_the_precision_the_expectations_record() {
    let text = std::fs::read_to_string(common::root().join("tests/corpus-expectations.tsv"))
        .expect("tests/corpus-expectations.tsv");
    let mut counts: std::collections::BTreeMap<&str, [usize; 3]> = Default::default();
    for line in text.lines().filter(|line| !line.starts_with('#')).skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        if !matches!(columns.get(3), Some(&"error" | &"warning")) {
            continue;
        }
        let slot = match columns[4] {
            "TP" => 0,
            "FP" => 1,
            _ => 2,
        };
        counts.entry(columns[1]).or_default()[slot] += 1;
    }
    let mut expected = vec![
        "| rule | errors and warnings | TP | FP | debatable | precision |".to_string(),
        "| --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for (rule, [tp, fp, debatable]) in &counts {
        let total = tp + fp + debatable;
        expected.push(format!(
            "| `{rule}` | {total} | {tp} | {fp} | {debatable} | {} % |",
            100 * tp / total
        ));
    }
    let readme =
        std::fs::read_to_string(common::root().join("docs/rules.md")).expect("docs/rules.md");
    let start = readme
        .find("<!-- precision:start -->\n")
        .expect("precision table start");
    let end = readme
        .find("\n<!-- precision:end -->")
        .expect("precision table end");
    let table = &readme[start + "<!-- precision:start -->\n".len()..end];
    assert_eq!(
        table,
        expected.join("\n"),
        "docs/rules.md precision table is stale: run python3 scripts/corpus-precision.py"
    );
}
