//! Hostile and broken input: every entry point ends in a finding or a
//! clear error within its bounds, never a crash, a hang or a lost file.

mod common;

use common::{infergate, stderr, stdout};
use serde_json::Value;

/// `- - - … x`: YAML nested `levels` deep in a few bytes a level.
fn nested_sequences(levels: usize) -> String {
    format!("{}x\n", "- ".repeat(levels))
}

/// A Deployment with an unknown field that nests `levels` deep in total.
fn deep_but_readable(levels: usize) -> String {
    let inner = levels - 1;
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: deep}}\nspec:\n  selector: {{matchLabels: {{app: deep}}}}\n  template:\n    metadata: {{labels: {{app: deep}}}}\n    spec:\n      containers: [{{name: c, image: nginx:1.27}}]\nextra: {}1{}\n",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

const VALID: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n";

fn json_findings(output: &std::process::Output) -> Vec<Value> {
    let document: Value = serde_json::from_str(&stdout(output)).expect("JSON output");
    document["findings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn nesting_past_the_limit_is_an_invalid_yaml_finding_in_lint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deep = dir.path().join("deep.yaml");
    std::fs::write(&deep, nested_sequences(100_000)).expect("write");
    // A second file puts the parse on rayon's workers, not the main thread.
    std::fs::write(dir.path().join("plain.yaml"), VALID).expect("write");
    let dir_arg = dir.path().display().to_string();
    let output = infergate(&["lint", "--format", "json", &dir_arg], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let findings = json_findings(&output);
    let finding = findings
        .iter()
        .find(|finding| finding["rule"] == "invalid-yaml")
        .expect("invalid-yaml finding");
    assert_eq!(finding["file"], deep.display().to_string());
    assert_eq!(finding["line"], 1);
    assert_eq!(finding["column"], 257, "where level 129 starts");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|message| message.contains("deeper than 128 levels")),
        "{finding}"
    );
    // The human format reports it the same way.
    let human = infergate(&["lint", &deep.display().to_string()], None);
    assert_eq!(human.status.code(), Some(1));
    assert!(
        stdout(&human).contains("deep.yaml:1:257"),
        "{}",
        stdout(&human)
    );
}

#[test]
fn nesting_past_the_limit_leaves_the_file_alone_with_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deep = dir.path().join("deep.yaml");
    let text = nested_sequences(100_000);
    std::fs::write(&deep, &text).expect("write");
    let output = infergate(&["lint", "--fix", &deep.display().to_string()], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&deep).expect("read"), text);
}

#[test]
fn a_policy_nested_past_the_limit_is_a_usage_error_naming_its_line() {
    let output = common::lint_examples_with_policy(&nested_sequences(100_000));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("policy.yaml")
            && message.contains("deeper than 128 levels")
            && message.contains("line 1"),
        "{message}"
    );
}

#[test]
fn nesting_at_the_limit_is_read_checked_and_fixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deep = dir.path().join("deep.yaml");
    std::fs::write(
        &deep,
        deep_but_readable(infergate::input::nesting::MAX_DEPTH),
    )
    .expect("write");
    std::fs::write(dir.path().join("plain.yaml"), VALID).expect("write");
    let dir_arg = dir.path().display().to_string();
    let output = infergate(&["lint", "--format", "json", &dir_arg], None);
    let findings = json_findings(&output);
    assert!(
        findings
            .iter()
            .all(|finding| finding["rule"] != "invalid-yaml"),
        "{findings:?}"
    );
    // schema-strict walks the whole document and reports the unknown field.
    assert!(
        findings
            .iter()
            .any(|finding| finding["rule"] == "schema-strict" && finding["pointer"] == "/extra"),
        "{findings:?}"
    );
    let fixed = infergate(&["lint", "--fix", &dir_arg], None);
    assert!(fixed.status.code().is_some(), "{}", stderr(&fixed));
}

/// A 5 MB ConfigMap written on one line: positions come from the line
/// index (no walk along the line per node), and the findings at its end
/// have the right columns.
#[test]
fn a_five_megabyte_single_line_document_is_placed_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("one-line.yaml");
    let mut text = String::from("{apiVersion: v1, kind: Deployment, metadata: {name: big}, spec: {template: {spec: {containers: [{name: c, image: nginx, env: [");
    let mut entries = Vec::new();
    while text.len() < 5_000_000 {
        let entry = format!(
            "{{name: V{}, value: plain-value-{}}}, ",
            entries.len(),
            entries.len()
        );
        text.push_str(&entry);
        entries.push(entry);
    }
    let placeholder_at = text.len() + "{name: LAST, value: ".len();
    text.push_str("{name: LAST, value: <fill-me-in>}]}]}}}}\n");
    std::fs::write(&path, &text).expect("write");
    let output = infergate(
        &["lint", "--format", "json", &path.display().to_string()],
        None,
    );
    let findings = json_findings(&output);
    let placeholder = findings
        .iter()
        .find(|finding| finding["rule"] == "unresolved-placeholder")
        .expect("the placeholder at the end is found");
    assert_eq!(placeholder["line"], 1);
    assert_eq!(placeholder["column"], placeholder_at + 1);
}

/// 20,000 findings in one file render in the human format, each from the
/// lines around it.
#[test]
fn twenty_thousand_findings_render_in_the_human_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("many.yaml");
    let mut text = String::from("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: many\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        env:\n");
    for index in 0..20_000 {
        text.push_str(&format!(
            "        - name: V{index}\n          value: <fill-me-in-{index}>\n"
        ));
    }
    std::fs::write(&path, &text).expect("write");
    let output = infergate(&["lint", &path.display().to_string()], None);
    let report = stdout(&output);
    assert!(
        report.contains("<fill-me-in-19999>"),
        "the last finding is rendered"
    );
    let summary = report.lines().last().unwrap_or_default();
    assert!(summary.starts_with("20"), "{summary}");
    assert!(summary.contains("errors"), "{summary}");
}

/// A directory walk reads regular files only; what it does not read is a
/// finding on its path, and the rest is linted (machine formats complete).
#[cfg(unix)]
#[test]
fn a_walk_reports_what_it_does_not_read_and_lints_the_rest() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::write(root.join("good.yaml"), VALID).expect("write");
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("pipe.yaml"))
        .status()
        .expect("mkfifo runs");
    assert!(fifo.success());
    symlink("/dev/zero", root.join("zero.yaml")).expect("link");
    symlink("/proc/self/environ", root.join("environ.yaml")).expect("link");
    symlink(root.join("nowhere.yaml"), root.join("dangling.yaml")).expect("link");
    symlink(root.join("good.yaml"), root.join("inside.yaml")).expect("link");
    std::fs::write(
        root.join("latin1.yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n",
    )
    .expect("write");
    std::fs::write(root.join("utf16.yaml"), b"\xff\xfea\x00p\x00i\x00").expect("write");
    let output = infergate(
        &["lint", "--format", "json", &root.display().to_string()],
        None,
    );
    // Warnings only: the default --fail-on error passes.
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let findings = json_findings(&output);
    let reason = |file: &str| {
        findings
            .iter()
            .find(|finding| {
                finding["rule"] == "skipped-input"
                    && finding["file"]
                        .as_str()
                        .is_some_and(|name| name.ends_with(file))
            })
            .and_then(|finding| finding["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no skipped-input for {file}: {findings:?}"))
    };
    assert!(reason("pipe.yaml").contains("not a regular file"));
    assert!(reason("zero.yaml").contains("not a regular file"));
    assert!(reason("environ.yaml").contains("out of the directory"));
    assert!(reason("dangling.yaml").contains("broken symbolic link"));
    assert!(reason("latin1.yaml").contains("offset 51"));
    assert!(reason("utf16.yaml").contains("UTF-16"));
    // Nothing of the environment reaches the output.
    assert!(!stdout(&output).contains("PATH="));
    // The link inside the tree is read like the file it names.
    let read: Vec<&str> = findings
        .iter()
        .filter_map(|finding| finding["file"].as_str())
        .collect();
    assert!(!read
        .iter()
        .any(|file| file.ends_with("inside.yaml") || file.ends_with("good.yaml")));
    let document: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(
        document["summary"]["objects"], 2,
        "good.yaml and the link to it"
    );
}

/// A file named on the command line is read up to a bound: `/dev/zero`
/// ends in a finding, not in exhausted memory.
#[cfg(unix)]
#[test]
fn an_endless_file_is_read_up_to_the_limit() {
    let output = infergate(&["lint", "--format", "json", "/dev/zero"], None);
    let findings = json_findings(&output);
    assert!(
        findings
            .iter()
            .any(|finding| finding["rule"] == "skipped-input"
                && finding["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("larger than 64 MiB"))),
        "{findings:?}"
    );
}

const FIXABLE: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: q, namespace: serving}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: tgi}\n  maxReplicas: 4\n  metrics:\n  - type: External\n    external:\n      metric:\n        name: prometheus.googleapis.com|DCGM_FI_DEV_GPU_UTIL|unknown\n      target: {type: AverageValue, averageValue: \"80\"}\n";

/// --fix through a symbolic link fixes the file it names and keeps the link.
#[cfg(unix)]
#[test]
fn fix_through_a_symlink_keeps_the_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let real = dir.path().join("real.yaml");
    let link = dir.path().join("link.yaml");
    std::fs::write(&real, FIXABLE).expect("write");
    std::os::unix::fs::symlink(&real, &link).expect("link");
    let output = infergate(&["lint", "--fix", &link.display().to_string()], None);
    assert!(output.status.code().is_some(), "{}", stderr(&output));
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    let fixed = std::fs::read_to_string(&real).expect("read");
    assert_ne!(fixed, FIXABLE, "the target was fixed");
}

/// A read-only file is reported as not writable, not replaced.
#[cfg(unix)]
#[test]
fn fix_leaves_a_read_only_file_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ro.yaml");
    std::fs::write(&path, FIXABLE).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let output = infergate(&["lint", "--fix", &path.display().to_string()], None);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FIXABLE);
    assert!(stderr(&output).contains("read-only"), "{}", stderr(&output));
}

/// Run as root on someone else's file, --fix keeps its owner and group.
#[cfg(unix)]
#[test]
fn fix_keeps_owner_and_group() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("owned.yaml");
    std::fs::write(&path, FIXABLE).expect("write");
    // nobody:nogroup where the test may change owners (as root); otherwise
    // the owner is the test's own and must simply stay.
    let _ = std::os::unix::fs::chown(&path, Some(65534), Some(65534));
    let before = std::fs::metadata(&path).expect("metadata");
    let output = infergate(&["lint", "--fix", &path.display().to_string()], None);
    let after = std::fs::metadata(&path).expect("metadata");
    assert_ne!(
        std::fs::read_to_string(&path).expect("read"),
        FIXABLE,
        "{}",
        stderr(&output)
    );
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.mode() & 0o777, before.mode() & 0o777);
}

/// An 800-container Deployment, every container on 2 GPUs without
/// /dev/shm: /mutate repairs all of them in one review (the fixes that do
/// not overlap go in the same round) and says so in one warning per kind.
#[test]
fn mutate_repairs_every_container_of_a_huge_pod_with_one_warning_per_kind() {
    use infergate::engine::Engine;
    use infergate::policy::Policy;
    use infergate::webhook::review::{self, ClusterContext, Mode, Review, Scope};
    let containers: Vec<Value> = (0..800)
        .map(|index| {
            serde_json::json!({"name": format!("server-{index}"), "image": "example.com/diffusion:1",
                "resources": {"limits": {"nvidia.com/gpu": 2}}})
        })
        .collect();
    let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "wide", "namespace": "serving"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "wide"}},
            "template": {"metadata": {"labels": {"app": "wide"}},
                "spec": {"containers": containers}}}});
    let body = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "wide", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "wide", "namespace": "serving", "operation": "CREATE",
            "userInfo": {"username": "test"}, "object": deployment}});
    let parsed = Review::parse(&serde_json::to_vec(&body).expect("json")).expect("a review");
    let engine = Engine::new(Policy::built_in().expect("policy"));
    let decision = review::decide(
        &engine,
        &Scope {
            excluded_namespaces: Vec::new(),
        },
        &parsed,
        Mode::Mutate,
        None,
        &ClusterContext::default(),
    );
    let mut patched = deployment.clone();
    json_patch::patch(&mut patched, &decision.patch).expect("the patch applies");
    let pod = &patched["spec"]["template"]["spec"];
    let mounted = pod["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|container| {
            container["volumeMounts"]
                .as_array()
                .is_some_and(|mounts| mounts.iter().any(|mount| mount["mountPath"] == "/dev/shm"))
        })
        .count();
    assert_eq!(mounted, 800);
    // One volume shared by all, never one per container.
    assert_eq!(
        pod["volumes"].as_array().map(Vec::len),
        Some(1),
        "{}",
        pod["volumes"]
    );
    let shm_warnings: Vec<&String> = decision
        .warnings
        .iter()
        .filter(|warning| warning.contains("tensor-parallel-needs-shm"))
        .collect();
    assert!(
        (1..=2).contains(&shm_warnings.len()),
        "one warning per kind of mutation: {shm_warnings:?}"
    );
    assert!(
        shm_warnings.iter().any(|warning| warning.contains("799")),
        "{shm_warnings:?}"
    );
}

/// Many HPAs on an uppercase exporter metric beside many look-alike
/// exporter PodMonitorings (the same name in every namespace): each finding
/// carries relabelling patches for a bounded number of monitors, so the
/// output grows with the input, not with its square.
#[test]
fn related_patches_stay_bounded_when_many_monitors_look_alike() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("same-names.yaml");
    let copies = 200;
    let mut text = String::new();
    for index in 0..copies {
        text.push_str(&format!(
            "apiVersion: monitoring.googleapis.com/v1\nkind: PodMonitoring\nmetadata: {{name: nvidia-dcgm-exporter, namespace: ns{index}}}\nspec:\n  selector: {{matchLabels: {{app.kubernetes.io/name: nvidia-dcgm-exporter}}}}\n  endpoints: [{{port: metrics, interval: 15s}}]\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: gpu, namespace: ns{index}}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: gpu}}\n  minReplicas: 1\n  maxReplicas: 4\n  metrics:\n  - type: External\n    external:\n      metric: {{name: prometheus.googleapis.com|DCGM_FI_DEV_GPU_UTIL|unknown}}\n      target: {{type: AverageValue, averageValue: '80'}}\n---\n"
        ));
    }
    std::fs::write(&path, &text).expect("write");
    let output = infergate(
        &["lint", "--format", "json", &path.display().to_string()],
        None,
    );
    let findings: Vec<Value> = json_findings(&output)
        .into_iter()
        .filter(|finding| finding["rule"] == "metric-name-lowercase")
        .collect();
    assert_eq!(findings.len(), copies);
    let related: usize = findings
        .iter()
        .map(|finding| finding["fix"]["related"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        related <= copies,
        "{related} related patches for {copies} findings"
    );
    // Each HPA's own namespace has its exporter's monitor: that one is patched.
    assert!(
        findings.iter().all(|finding| {
            let namespace = finding["object"]["namespace"].clone();
            finding["fix"]["related"].as_array().is_some_and(|related| {
                related
                    .iter()
                    .all(|patch| patch["object"]["namespace"] == namespace)
                    && related.len() == 1
            })
        }),
        "{:#}",
        findings[0]
    );
}

/// 100 alias bombs in one embedded config.yaml (23 KB) took lint to 1.3 GB
/// and 21 s: every document got a fresh alias budget. The budget is the
/// input's now: one finding, and the documents past it are not expanded.
#[test]
fn aliases_are_budgeted_per_input_across_documents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("adapter.yaml");
    let text = common::adapter_config_map_yaml(&common::alias_bomb_documents(100));
    std::fs::write(&path, &text).expect("write");
    let output = infergate(
        &["lint", "--format", "json", path.to_str().expect("utf-8")],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let findings = json_findings(&output);
    let refused: Vec<&Value> = findings
        .iter()
        .filter(|finding| {
            finding["message"]
                .as_str()
                .is_some_and(|message| message.contains("aliases of this input expand"))
        })
        .collect();
    assert_eq!(refused.len(), 1, "{findings:#?}");
    assert_eq!(refused[0]["rule"], "invalid-yaml");

    // What was expanded stays within the budget: count every node the
    // embedded documents were read into.
    let loaded = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        "adapter.yaml",
        text,
    ));
    let object = &loaded.objects[0];
    let budget = std::cell::Cell::new(
        infergate::input::nesting::MAX_ALIAS_NODES - object.source.aliased_nodes(),
    );
    let embedded = infergate::input::embedded::of(object, &budget);
    fn nodes(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(nodes).sum(),
            Value::Object(map) => map.values().map(nodes).sum(),
            _ => 0,
        }
    }
    let read: usize = embedded
        .iter()
        .flat_map(|document| &document.loaded.documents)
        .map(|document| nodes(&document.value))
        .sum();
    assert!(
        read <= infergate::input::nesting::MAX_ALIAS_NODES + text_nodes(100),
        "{read} nodes read"
    );
}

/// The nodes 100 bomb documents hold as written (anchors, not copies).
fn text_nodes(documents: usize) -> usize {
    documents * 60
}

/// Whether this process may give files away (root): the ownership tests
/// need it. Elsewhere they say so and check nothing.
#[cfg(unix)]
fn may_chown(path: &std::path::Path) -> bool {
    let probe = path.join("probe");
    std::fs::write(&probe, "").expect("write");
    let able = std::os::unix::fs::chown(&probe, Some(65534), Some(65534)).is_ok();
    std::fs::remove_file(&probe).expect("remove");
    if !able {
        eprintln!("skipped: changing a file's owner needs root (CI runs as root)");
    }
    able
}

/// A privileged fix in a directory another user can write is refused
/// before anything is written: that user could swap the temporary file for
/// a link between its writing and its rename. A sticky directory (as /tmp)
/// is safe, since only the temporary file's owner may rename it.
#[cfg(unix)]
#[test]
fn fix_refuses_a_directory_another_user_can_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    if !may_chown(dir.path()) {
        return;
    }
    for (mode, owner, fixed) in [
        (0o777, 0, false),     // every user may write
        (0o755, 65534, false), // another user owns the directory
        (0o775, 0, false),     // its group may write, and the file is not ours
        (0o1777, 65534, true), // sticky: only the temporary file's owner renames it
        (0o755, 0, true),      // only root writes
    ] {
        let shared = dir.path().join(format!("d{mode:o}-{owner}"));
        std::fs::create_dir(&shared).expect("mkdir");
        let path = shared.join("hpa.yaml");
        std::fs::write(&path, FIXABLE).expect("write");
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).expect("chown file");
        std::os::unix::fs::chown(&shared, Some(owner), Some(65534)).expect("chown dir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let output = infergate(&["lint", "--fix", &path.display().to_string()], None);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text != FIXABLE, fixed, "mode {mode:o}: {}", stderr(&output));
        if !fixed {
            assert!(
                stderr(&output).contains("who could swap the file"),
                "{}",
                stderr(&output)
            );
            let left: Vec<_> = std::fs::read_dir(&shared).expect("list").collect();
            assert_eq!(left.len(), 1, "no temporary file left behind");
        }
    }
}

/// A fix keeps setuid and setgid: the owner is set before the mode, since
/// changing the owner clears them.
#[cfg(unix)]
#[test]
fn fix_keeps_setuid_and_setgid_bits() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().expect("temp dir");
    if !may_chown(dir.path()) {
        return;
    }
    let path = dir.path().join("odd.yaml");
    std::fs::write(&path, FIXABLE).expect("write");
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o6754)).expect("chmod");
    let output = infergate(&["lint", "--fix", &path.display().to_string()], None);
    assert_ne!(
        std::fs::read_to_string(&path).expect("read"),
        FIXABLE,
        "{}",
        stderr(&output)
    );
    let after = std::fs::metadata(&path).expect("metadata");
    assert_eq!(after.mode() & 0o7777, 0o6754);
    assert_eq!((after.uid(), after.gid()), (65534, 65534));
}

/// Values from the input are printed with their control characters as
/// escapes: an ESC or BEL cannot retitle or clear a terminal (even with
/// `--color never`), a newline cannot start a line that GitHub Actions'
/// runner reads as a workflow command, and `##[` (which its legacy parser
/// matches anywhere) is broken up in the `github` format.
#[test]
fn control_characters_from_values_are_printed_as_escapes() {
    let text = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x, namespace: default}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 3\n  metrics:\n  - type: External\n    external:\n      metric: {name: \"prometheus.googleapis.com|DCGM\\e]0;owned\\u0007\\n::error::injected ##[error]x|gauge\"}\n      target: {type: AverageValue, averageValue: \"1\"}\n";
    for format in ["human", "github"] {
        let output = infergate(
            &["lint", "--color", "never", "--format", format, "-"],
            Some(text),
        );
        let printed = stdout(&output);
        assert!(printed.contains("owned"), "{format}: {printed}");
        assert!(
            !printed.contains('\u{1b}') && !printed.contains('\u{7}'),
            "{format}: raw control characters"
        );
        for line in printed.lines() {
            assert!(
                !line.trim_start().starts_with("::")
                    || format == "github" && line.starts_with("::error file="),
                "{format}: a line a runner would run: {line}"
            );
        }
        if format == "github" {
            assert!(!printed.contains("##["), "{printed}");
        }
    }
}

/// Config and policy files get the read cap manifests get: `--config
/// /dev/zero` read until memory ran out. And a config is not looked for
/// above the user's home when there is no repository.
#[cfg(unix)]
#[test]
fn config_files_are_capped_and_not_found_above_home() {
    for flag in ["--config", "--policy"] {
        let output = infergate(&["lint", flag, "/dev/zero", "testdata/examples"], None);
        assert_eq!(output.status.code(), Some(2), "{flag}");
        assert!(
            stderr(&output).contains("larger than 64 MiB"),
            "{}",
            stderr(&output)
        );
    }
    let outer = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        outer.path().join(".infergate.yaml"),
        "rules: {nonsense: 1}\n",
    )
    .expect("write");
    let home = outer.path().join("home");
    let project = home.join("project");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::write(project.join("cm.yaml"), VALID).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "-v", "cm.yaml"])
        .current_dir(&project)
        .env("HOME", &home)
        .output()
        .expect("run");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{errors}");
    assert!(errors.contains("config: none"), "{errors}");
}

/// prometheus-adapter `name.matches` patterns are compiled once each, in a
/// size budget: twenty rules of `\w{300}` cost 6 s per HPA when each HPA
/// compiled each pattern again (ten HPAs took a minute; now they answer
/// at once; a hang here is the regression, no time is asserted).
#[test]
fn adapter_name_patterns_are_compiled_once() {
    let mut rules = String::new();
    for index in 0..20 {
        rules.push_str(&format!(
            "    - seriesQuery: 'queue_{index}'\n      name: {{matches: '\\w{{300}}', as: 'q{index}'}}\n      metricsQuery: sum(<<.Series>>{{<<.LabelMatchers>>}})\n"
        ));
    }
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adapter\n  namespace: monitoring\n  labels: {{app.kubernetes.io/name: prometheus-adapter}}\ndata:\n  config.yaml: |\n    rules:\n{}",
        rules
    );
    for index in 0..10 {
        text.push_str(&format!(
            "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: h{index}, namespace: monitoring}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: d{index}}}\n  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods:\n      metric: {{name: requests_total}}\n      target: {{type: AverageValue, averageValue: '1'}}\n"
        ));
    }
    let output = infergate(&["lint", "--format", "json", "-"], Some(&text));
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        stderr(&output)
    );
    assert!(!json_findings(&output).is_empty());
}
