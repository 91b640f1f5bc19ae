//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use infergate::engine::{ClusterFacts, Engine, Outcome};
use infergate::input::loader::{self, Input, Loaded};
use infergate::policy::Policy;

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Load files through the library, with paths relative to the crate root.
pub fn load(paths: &[&str]) -> Loaded {
    let inputs: Vec<Input> = paths
        .iter()
        .map(|path| Input::File(PathBuf::from(path)))
        .collect();
    std::env::set_current_dir(root()).expect("crate root");
    loader::load(&inputs).expect("fixtures are readable")
}

pub fn run(loaded: &Loaded) -> Outcome {
    let engine = Engine::new(Policy::built_in().expect("built-in policy"));
    engine.run(loaded, &ClusterFacts::default())
}

pub fn lint(paths: &[&str]) -> Outcome {
    run(&load(paths))
}

/// The policy of a rule fixture: the built-in one, or with the
/// `policy.yaml` beside the fixture merged over it.
pub fn fixture_policy(path: &str) -> std::sync::Arc<Policy> {
    let beside = root().join(path).with_file_name("policy.yaml");
    if beside.is_file() {
        Policy::with_file(&beside).expect("fixture policy is valid")
    } else {
        Policy::built_in().expect("built-in policy")
    }
}

/// Run a rule fixture with its policy.
pub fn run_fixture(path: &str, loaded: &Loaded) -> Outcome {
    Engine::new(fixture_policy(path)).run(loaded, &ClusterFacts::default())
}

pub fn lint_fixture(path: &str) -> Outcome {
    run_fixture(path, &load(&[path]))
}

/// Run the built binary from the crate root.
pub fn infergate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_infergate"));
    command
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100");
    run_command(command, stdin)
}

/// Run `command` with `stdin` (or none) as its input; its output.
pub fn run_command(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the command starts");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes())
            .expect("stdin accepts the input");
    }
    child.wait_with_output().expect("the command finishes")
}

/// `infergate lint --policy FILE testdata/examples`, FILE holding `text`.
pub fn lint_examples_with_policy(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, text).expect("write");
    infergate(
        &[
            "lint",
            "--policy",
            &policy.display().to_string(),
            "testdata/examples",
        ],
        None,
    )
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every fixture file of a rule: (path relative to the crate root, fires?).
pub fn rule_fixtures(rule: &str) -> Vec<(String, bool)> {
    let directory = root().join("testdata/rules").join(rule);
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.ends_with(".fixed.yaml") || name == "policy.yaml" {
            continue;
        }
        let relative = Path::new("testdata/rules").join(rule).join(&name);
        found.push((relative.display().to_string(), name.starts_with("fires")));
    }
    found.sort();
    found
}

/// Every rule fixture of every rule, with whether it is a `fires` one.
pub fn all_rule_fixtures() -> Vec<(String, bool)> {
    infergate::rules::all_meta()
        .iter()
        .flat_map(|meta| rule_fixtures(meta.id))
        .collect()
}

/// `documents` YAML documents, each a small billion-laughs: 230 bytes whose
/// aliases stand for 70,000 nodes apiece (more than a tenth of a million
/// with the anchors), so that no one document passes a per-document bound
/// by much but together they ask for millions of nodes.
pub fn alias_bomb_documents(documents: usize) -> String {
    let one = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
               b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
               c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
               d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
               e: &e [*d, *d, *d, *d, *d, *d, *d]\n";
    vec![one; documents].join("---\n")
}

/// A prometheus-adapter ConfigMap whose `config.yaml` is `text`, as YAML
/// with the text in a literal block.
pub fn adapter_config_map_yaml(text: &str) -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adapter-config\n  namespace: monitoring\n  labels:\n    app.kubernetes.io/name: prometheus-adapter\ndata:\n  config.yaml: |\n",
    );
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The YAML files under `directory`, recursively, sorted.
pub fn yaml_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            found.push(path);
        }
    }
}

/// Whether a test that needs something outside the checkout may run:
/// in CI (`CI` set, as `.ci/run` runs) its absence is a failure; in a fresh
/// clone elsewhere the test says what it skips and why, and passes.
pub fn available(test: &str, what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    assert!(!in_ci, "{test}: {what} is missing, and CI needs it");
    eprintln!("skipped {test}: {what} is missing (CI runs it)");
    false
}

/// ../shared/corpus, the real manifests beside the checkout, when present.
pub fn shared_corpus(test: &str) -> Option<PathBuf> {
    let path = root().join("../shared/corpus");
    available(test, "../shared/corpus", path.is_dir()).then_some(path)
}

/// Whether kubectl runs here.
pub fn kubectl(test: &str) -> bool {
    let runs = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|output| output.status.success());
    available(test, "kubectl", runs)
}

/// The objects of a YAML stream (rendered manifests), parsed by the
/// project's own loader.
pub fn objects_of(text: String) -> Vec<serde_json::Value> {
    let loaded = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        "rendered", text,
    ));
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded
        .objects
        .into_iter()
        .map(|object| object.value)
        .collect()
}

/// (t, desired, ready) at each sync of a replay's JSON series (simulate's
/// `series`, or the HPA oracle's).
pub fn replay_series(series: &serde_json::Value) -> Vec<(f64, i64, i64)> {
    series
        .as_array()
        .map(|points| {
            points
                .iter()
                .map(|point| {
                    (
                        point["t"].as_f64().unwrap_or(f64::NAN),
                        point["desired"].as_i64().unwrap_or(-1),
                        point["ready"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
