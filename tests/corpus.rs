//! The real-world corpus in ../shared/corpus: every file is linted without
//! a panic or a hang, and invalid files are findings, not failures.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn corpus() -> PathBuf {
    let path = common::root().join("../shared/corpus");
    assert!(
        path.is_dir(),
        "the corpus is expected at {} (shared/ beside the checkout)",
        path.display()
    );
    path
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
    let mut files = Vec::new();
    yaml_files(&corpus(), &mut files);
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
    let child = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "--format", "json", "--verbose"])
        .arg(corpus())
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
    yaml_files(&corpus(), &mut files);
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
    let mut files = Vec::new();
    yaml_files(&corpus(), &mut files);
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
                let source = infergate::source::SourceFile::new("damaged.yaml", variant);
                let loaded = infergate::loader::parse_all(vec![source]);
                let _ = common::run(&loaded);
                damaged += 1;
            }
        }
    }
    assert!(damaged >= 1000, "only {damaged} damaged variants");
}
