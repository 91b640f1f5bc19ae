//! The built binary: formats, exit codes, inputs and errors.

mod common;
#[path = "../benches/support/mod.rs"]
mod support;

use common::{infergate, stderr, stdout};
use serde_json::{json, Value};

const DCGM: &str = "testdata/examples/000-tgi-gemma.yaml";
const DCGM_NAME: &str = "prometheus.googleapis.com|DCGM_FI_DEV_GPU_UTIL|unknown";

fn json_findings(output: &std::process::Output) -> Vec<Value> {
    let document: Value = serde_json::from_str(&stdout(output)).expect("JSON output");
    assert_eq!(document["version"], 1);
    document["findings"].as_array().cloned().unwrap_or_default()
}

/// Line and column of the first occurrence of `needle` in a file.
fn position_of(path: &str, needle: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(common::root().join(path)).expect("fixture");
    text.lines()
        .enumerate()
        .find_map(|(index, line)| line.find(needle).map(|column| (index + 1, column + 1)))
        .expect("needle in file")
}

#[test]
fn uppercase_dcgm_name_is_reported_at_its_position_in_every_format() {
    let (line, column) = position_of(DCGM, DCGM_NAME);

    let human = infergate(&["lint", DCGM], None);
    assert_eq!(human.status.code(), Some(1));
    let text = stdout(&human);
    assert!(text.contains("metric-name-lowercase"), "{text}");
    assert!(text.contains(&format!("{DCGM}:{line}:{column}")), "{text}");
    assert!(
        text.contains(DCGM_NAME),
        "the snippet shows the line: {text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour when not on a terminal");

    let json = infergate(&["lint", "--format", "json", DCGM], None);
    let finding = json_findings(&json)
        .into_iter()
        .find(|finding| finding["rule"] == "metric-name-lowercase")
        .expect("metric-name-lowercase in JSON");
    assert_eq!(finding["line"], line);
    assert_eq!(finding["column"], column);
    assert_eq!(finding["file"], DCGM);
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["pointer"], "/spec/metrics/0/external/metric/name");
    assert_eq!(finding["object"]["kind"], "HorizontalPodAutoscaler");
    assert_eq!(finding["fix"]["applicability"], "safe");

    let sarif = infergate(&["lint", "--format", "sarif", DCGM], None);
    let document: Value = serde_json::from_str(&stdout(&sarif)).expect("SARIF is JSON");
    let result = document["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|result| result["ruleId"] == "metric-name-lowercase")
        .expect("metric-name-lowercase in SARIF")
        .clone();
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], line);
    assert_eq!(region["startColumn"], column);
}

#[test]
fn the_lowercase_name_is_not_reported() {
    let original = std::fs::read_to_string(common::root().join(DCGM)).expect("fixture");
    let lowered = original.replace(DCGM_NAME, &DCGM_NAME.to_lowercase());
    assert_ne!(original, lowered);
    let output = infergate(&["lint", "--format", "json", "-"], Some(&lowered));
    let findings = json_findings(&output);
    assert!(!findings.is_empty(), "other rules still report");
    assert!(findings
        .iter()
        .all(|finding| finding["rule"] != "metric-name-lowercase"));
    assert!(findings.iter().all(|finding| finding["file"] == "<stdin>"));
}

#[test]
fn exit_codes_follow_fail_on() {
    let quiet = "testdata/rules/hpa-stabilization-defaults/quiet.yaml";
    assert_eq!(infergate(&["lint", quiet], None).status.code(), Some(0));

    // Only warnings: 0 by default, 1 with --fail-on warning.
    let warnings = "testdata/rules/hpa-stabilization-defaults/fires.yaml";
    assert_eq!(infergate(&["lint", warnings], None).status.code(), Some(0));
    assert_eq!(
        infergate(&["lint", "--fail-on", "warning", warnings], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        infergate(&["lint", "--fail-on", "never", "testdata/examples"], None)
            .status
            .code(),
        Some(0)
    );
    // Usage errors.
    assert_eq!(infergate(&["lint"], None).status.code(), Some(2));
    assert_eq!(
        infergate(&["lint", "--format", "xml", quiet], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_missing_path_is_a_usage_error_that_names_it() {
    let output = infergate(&["lint", "testdata/does-not-exist.yaml"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("testdata/does-not-exist.yaml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn directories_are_searched_recursively() {
    let output = infergate(&["lint", "--format", "json", "testdata/rules"], None);
    let document: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let files = document["summary"]["files"].as_u64().expect("files");
    let on_disk = walk_yaml(&common::root().join("testdata/rules"));
    assert_eq!(files as usize, on_disk);
    assert!(on_disk >= 10);
}

fn walk_yaml(directory: &std::path::Path) -> usize {
    std::fs::read_dir(directory)
        .expect("directory")
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk_yaml(&path)
            } else {
                usize::from(matches!(
                    path.extension().and_then(|extension| extension.to_str()),
                    Some("yaml" | "yml")
                ))
            }
        })
        .sum()
}

/// The JSON findings of a lint of `paths` that must exit 1.
fn findings_of_failing_lint(paths: &[&str]) -> Vec<Value> {
    let mut args = vec!["lint", "--format", "json"];
    args.extend_from_slice(paths);
    let output = infergate(&args, None);
    assert_eq!(output.status.code(), Some(1));
    json_findings(&output)
}

/// The first finding of `rule`.
fn first_of<'a>(findings: &'a [Value], rule: &str) -> &'a Value {
    findings
        .iter()
        .find(|finding| finding["rule"] == rule)
        .unwrap_or_else(|| panic!("a {rule} finding in {findings:?}"))
}

#[test]
fn invalid_yaml_is_reported_and_the_rest_is_still_linted() {
    let findings = findings_of_failing_lint(&["testdata/loader/broken.yaml", DCGM]);
    let invalid = first_of(&findings, "invalid-yaml");
    assert_eq!(invalid["file"], "testdata/loader/broken.yaml");
    assert!(invalid["line"].as_u64().expect("line") >= 21);
    assert!(invalid["object"].is_null());
    // Documents before and after the broken one, and the other file.
    let rules_in_broken: Vec<&Value> = findings
        .iter()
        .filter(|finding| finding["file"] == "testdata/loader/broken.yaml")
        .map(|finding| &finding["rule"])
        .collect();
    assert!(rules_in_broken.contains(&&Value::from("metric-name-lowercase")));
    assert!(rules_in_broken.contains(&&Value::from("unresolved-placeholder")));
    assert!(findings.iter().any(|finding| finding["file"] == DCGM));
}

#[test]
fn a_ray_serve_configuration_that_does_not_parse_is_reported_at_its_line() {
    let findings = findings_of_failing_lint(&["testdata/loader/broken-serve-config.yaml"]);
    let invalid = first_of(&findings, "invalid-yaml");
    // The tab is on line 15 of the file, inside the literal block.
    assert_eq!(invalid["line"], 15, "{invalid}");
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|message| message.contains("serveConfigV2")),
        "{invalid}"
    );
}

#[test]
fn helm_templates_get_a_hint_and_do_not_fail() {
    let output = infergate(&["lint", "testdata/loader/helm-template.yaml"], None);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("helm-template"), "{text}");
    assert!(text.contains("helm template"), "{text}");
}

#[test]
fn lists_non_objects_and_suppressions_are_counted() {
    let output = infergate(
        &[
            "lint",
            "--format",
            "json",
            "testdata/loader/list-and-values.yaml",
            "testdata/loader/suppressed.yaml",
        ],
        None,
    );
    let document: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let summary = &document["summary"];
    assert_eq!(summary["objects"], 2); // the List's item and the suppressed HPA
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["suppressed"], 1);
    let findings = document["findings"].as_array().expect("findings");
    assert!(findings
        .iter()
        .any(|finding| finding["rule"] == "hpa-target-sanity" && finding["line"] == 12));
    assert!(findings
        .iter()
        .all(|finding| finding.get("suppressed").is_none()));

    let verbose = infergate(
        &[
            "lint",
            "--format",
            "json",
            "--verbose",
            "testdata/loader/suppressed.yaml",
        ],
        None,
    );
    assert_eq!(
        verbose.status.code(),
        Some(0),
        "a suppressed error does not fail"
    );
    let findings = json_findings(&verbose);
    let suppressed: Vec<&Value> = findings
        .iter()
        .filter(|finding| finding.get("suppressed").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["rule"], "unresolved-placeholder");
    assert_eq!(
        suppressed[0]["suppressed"]["reason"],
        "filled by envsubst in the pipeline"
    );
    let human = stdout(&infergate(
        &["lint", "testdata/loader/suppressed.yaml"],
        None,
    ));
    assert!(
        !human.contains("MAX_REPLICAS"),
        "hidden without --verbose: {human}"
    );
    assert!(human.contains("1 suppressed"), "{human}");
}

#[test]
fn a_bad_policy_names_the_key_and_exits_2() {
    let directory = tempfile::tempdir().expect("temp dir");
    let policy = directory.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  hpa-target-sanity:\n    severity: fatal\n",
    )
    .expect("write");
    let output = infergate(
        &[
            "lint",
            "--policy",
            policy.to_str().expect("utf-8 path"),
            DCGM,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("rules.hpa-target-sanity.severity"), "{text}");
    assert!(text.contains(":3:"), "names the line: {text}");

    std::fs::write(&policy, "hpaBehaviour: {}\n").expect("write");
    let output = infergate(
        &["lint", "--policy", policy.to_str().expect("utf-8"), DCGM],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("hpaBehaviour"),
        "{}",
        stderr(&output)
    );

    // A valid policy turns a rule off.
    std::fs::write(
        &policy,
        "rules:\n  metric-name-lowercase: {severity: off}\n",
    )
    .expect("write");
    let output = infergate(
        &[
            "lint",
            "--format",
            "json",
            "--policy",
            policy.to_str().expect("utf-8"),
            DCGM,
        ],
        None,
    );
    assert!(json_findings(&output)
        .iter()
        .all(|finding| finding["rule"] != "metric-name-lowercase"));
}

/// SARIF names the tool's home and each rule's page, and tells results
/// apart by file: the same HPA in two environment directories is two
/// alerts for code scanning, not one that moves between files.
#[test]
fn sarif_links_rule_pages_and_fingerprints_include_the_file() {
    let directory = tempfile::tempdir().expect("tempdir");
    let bad = std::fs::read_to_string(
        common::root().join("testdata/rules/metric-name-lowercase/fires.yaml"),
    )
    .expect("fixture");
    for environment in ["staging", "production"] {
        std::fs::create_dir_all(directory.path().join(environment)).expect("mkdir");
        std::fs::write(directory.path().join(environment).join("hpa.yaml"), &bad).expect("write");
    }
    let output = lint_in(directory.path(), &["--format", "sarif", "--no-config", "."]);
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sarif");
    let driver = &sarif["runs"][0]["tool"]["driver"];
    assert_eq!(
        driver["informationUri"],
        "https://github.com/infergate/infergate"
    );
    for rule in driver["rules"].as_array().expect("rules") {
        let id = rule["id"].as_str().expect("id");
        assert_eq!(
            rule["helpUri"],
            format!("https://github.com/infergate/infergate/blob/main/docs/rules/{id}.md")
        );
        assert!(
            common::root().join(format!("docs/rules/{id}.md")).is_file(),
            "{id}"
        );
    }
    let fingerprints: std::collections::BTreeSet<String> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["ruleId"] == "metric-name-lowercase")
        .map(|result| result["partialFingerprints"]["infergate/v2"].to_string())
        .collect();
    assert_eq!(fingerprints.len(), 2, "{fingerprints:?}");
}

#[test]
fn sarif_is_valid_with_and_without_results() {
    // The published schema's `language` patterns have a stray `]` that
    // ECMAScript reads as a literal and Rust's regex rejects: escape it,
    // which keeps the ECMAScript meaning.
    let text = std::fs::read_to_string(common::root().join("tests/data/sarif-schema-2.1.0.json"))
        .expect("schema file")
        .replace("{2}]?$", "{2}\\\\]?$");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for (args, expect_results) in [
        (
            vec![
                "lint",
                "--format",
                "sarif",
                "testdata/examples",
                "testdata/loader",
            ],
            true,
        ),
        (
            vec![
                "lint",
                "--format",
                "sarif",
                "testdata/rules/model-server-readiness/quiet.yaml",
            ],
            false,
        ),
        // An absolute path: still a relative URI, under the root given.
        (
            vec![
                "lint",
                "--format",
                "sarif",
                "--sarif-root",
                env!("CARGO_MANIFEST_DIR"),
                concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/examples"),
            ],
            true,
        ),
    ] {
        let output = infergate(&args, None);
        let document: Value = serde_json::from_str(&stdout(&output)).expect("SARIF is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");
        let results = document["runs"][0]["results"]
            .as_array()
            .expect("results present");
        assert_eq!(!results.is_empty(), expect_results);
        // GitHub's ingestion: a ruleId on every result, no absolute URI.
        for result in results {
            assert!(result["ruleId"].is_string(), "{result}");
            let location = &result["locations"][0]["physicalLocation"]["artifactLocation"];
            let uri = location["uri"].as_str().unwrap_or_default();
            assert!(!uri.starts_with('/') && !uri.contains("://"), "{uri}");
            assert_eq!(location["uriBaseId"], "%SRCROOT%", "{location}");
            assert!(uri.starts_with("testdata/"), "{uri}");
        }
        let rules = document["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .expect("rules");
        assert_eq!(rules.len(), infergate::rules::all_meta().len());
    }
}

#[test]
fn github_annotations() {
    let output = infergate(&["lint", "--format", "github", DCGM], None);
    let text = stdout(&output);
    let (line, column) = position_of(DCGM, DCGM_NAME);
    assert!(
        text.lines()
            .any(|annotation| annotation.starts_with(&format!(
            "::error file={DCGM},line={line},col={column},title=infergate metric-name-lowercase::"
        ))),
        "{text}"
    );
}

#[test]
fn rules_and_explain() {
    let output = infergate(&["rules"], None);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for meta in infergate::rules::all_meta() {
        assert!(text.contains(meta.id), "{} listed", meta.id);
    }
    let output = infergate(&["explain", "metric-name-lowercase"], None);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("## Why is this bad?"));
    assert!(text.contains("DCGM_FI_DEV_GPU_UTIL"));
    let output = infergate(&["explain", "no-such-rule"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("infergate rules"));
}

/// User documentation (every rule's `explain`, the README and docs/, the policy
/// defaults in rules/) names the public
/// guides a fact comes from by title, never the spec's internal file
/// numbers ("seed 003", "(004)").
#[test]
fn user_documentation_cites_guides_by_title() {
    let internal =
        regex::Regex::new(r"(?i)\bseeds?\s+(\d|guides?)|\bseed's|\(00[0-4]\b|\b00[0-4]:")
            .expect("regex");
    for meta in infergate::rules::all_meta() {
        let output = infergate(&["explain", meta.id], None);
        let text = stdout(&output);
        assert!(
            !internal.is_match(&text),
            "explain {} cites an internal name: {:?}",
            meta.id,
            internal.find(&text).map(|found| found.as_str())
        );
    }
    let mut documents = vec![common::root().join("README.md")];
    for entry in std::fs::read_dir(common::root().join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|extension| extension == "md") {
            documents.push(path);
        }
    }
    for entry in std::fs::read_dir(common::root().join("rules")).expect("rules/") {
        let path = entry.expect("entry").path();
        if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            documents.push(path);
        }
    }
    for path in documents {
        let text = std::fs::read_to_string(&path).expect("readable");
        if let Some(found) = internal.find(&text) {
            let line = text[..found.start()].lines().count();
            panic!(
                "{}:{line} cites an internal name: {}",
                path.display(),
                found.as_str()
            );
        }
    }
}

#[test]
fn fields_newer_than_the_target_version_are_warnings() {
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      hostnameOverride: web-0\n      containers:\n      - name: web\n        image: nginx:1.27\n";
    let newest = infergate(&["lint", "--format", "json", "-"], Some(manifest));
    assert!(
        json_findings(&newest).is_empty(),
        "valid on the newest version"
    );
    let finding = newer_field_warning(manifest, "1.33", 12);
    assert_eq!(finding["column"], 7);
    let unknown = infergate(&["lint", "--kube-version", "1.20", "-"], Some(manifest));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("1.33"), "{}", stderr(&unknown));
}

/// Providers still support 1.30 to 1.32 (extended support): a model volume
/// from an OCI image (`volumes[].image`, added in 1.31) is valid there and
/// a warning naming the version on 1.30.
#[test]
fn versions_in_extended_support_have_schemas() {
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n      volumes:\n      - name: model\n        image:\n          reference: registry.example/models/llama:1\n";
    for version in ["1.31", "1.32"] {
        let output = infergate(
            &["lint", "--format", "json", "--kube-version", version, "-"],
            Some(manifest),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(json_findings(&output).is_empty(), "valid on {version}");
    }
    newer_field_warning(manifest, "1.30", 17);
}

/// The schema-strict finding of `manifest` linted for Kubernetes
/// `version`: a warning at `line` that names the version.
fn newer_field_warning(manifest: &str, version: &str, line: u64) -> serde_json::Value {
    let output = infergate(
        &["lint", "--format", "json", "--kube-version", version, "-"],
        Some(manifest),
    );
    let finding = json_findings(&output)
        .into_iter()
        .find(|finding| finding["rule"] == "schema-strict")
        .unwrap_or_else(|| panic!("schema-strict on {version}"));
    assert_eq!(finding["severity"], "warning");
    assert_eq!(finding["line"], line);
    assert!(finding["message"]
        .as_str()
        .unwrap_or_default()
        .contains(version));
    finding
}

#[test]
fn misplaced_average_value_is_one_error_at_its_key_with_its_fix() {
    let output = infergate(
        &[
            "lint",
            "--format",
            "json",
            "testdata/examples/003-jetstream-hpa.yaml",
        ],
        None,
    );
    let findings = json_findings(&output);
    // One mistake, one finding: hpa-target-sanity's at the key, with the
    // fix that moves it; schema-strict's unknown field there is the same
    // mistake with the same fix, and is not repeated.
    let (line, column) = position_of(
        "testdata/examples/003-jetstream-hpa.yaml",
        "averageValue: JETSTREAM",
    );
    let at_key: Vec<&Value> = findings
        .iter()
        .filter(|finding| finding["line"] == line && finding["column"] == column)
        .collect();
    assert_eq!(at_key.len(), 1, "{at_key:?}");
    let finding = at_key[0];
    assert_eq!(finding["rule"], "hpa-target-sanity");
    assert_eq!(finding["severity"], "error");
    assert!(finding["message"]
        .as_str()
        .unwrap_or_default()
        .contains("written beside `target`"));
    assert_eq!(
        finding["fix"]["description"],
        "move `averageValue` into target"
    );
    let misplaced = findings
        .iter()
        .filter(|finding| finding["rule"] == "hpa-target-sanity" && finding["fix"].is_object())
        .count();
    assert_eq!(misplaced, 2, "{findings:?}");
}

/// Seed 003's first PodMonitoring as the guide prints it.
const SEED_003_POD_MONITORING: &str = "\
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata:
  name: jetstream-podmonitoring
selector:
  matchLabels:
    app: maxengine-server
spec:
  endpoints:
  - interval: 15s
    path: \"/\"
    port: PROMETHEUS_PORT
  targetLabels:
    metadata:
    - pod
    - container
    - node
";

#[test]
fn misplaced_pod_monitoring_selector_is_an_error_at_its_key_with_a_suggestion() {
    let output = infergate(
        &["lint", "--format", "json", "-"],
        Some(SEED_003_POD_MONITORING),
    );
    assert_eq!(output.status.code(), Some(1));
    let findings = json_findings(&output);
    let at = |rule: &str| {
        findings
            .iter()
            .find(|finding| finding["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} in {findings:?}"))
    };
    let selector = at("schema-strict");
    assert_eq!(
        (&selector["line"], &selector["column"]),
        (&json!(5), &json!(1))
    );
    assert_eq!(selector["severity"], "error");
    assert!(selector["message"]
        .as_str()
        .unwrap_or_default()
        .contains("did you mean `spec.selector`?"));
    assert_eq!(selector["fix"]["patch"][0]["op"], "move");
    let port = at("unresolved-placeholder");
    assert_eq!((&port["line"], &port["column"]), (&json!(12), &json!(11)));
}

#[test]
fn custom_resources_are_validated_at_the_misplaced_key() {
    let fixture = "testdata/rules/schema-strict/fires-custom-resources.yaml";
    let output = infergate(&["lint", "--format", "json", fixture], None);
    let findings = json_findings(&output);
    let schema: Vec<&Value> = findings
        .iter()
        .filter(|finding| finding["rule"] == "schema-strict")
        .collect();
    let (line, column) = position_of(fixture, "size: 2");
    let size = schema
        .iter()
        .find(|finding| finding["line"] == line)
        .expect("a finding on `size`");
    assert_eq!(size["column"], column);
    assert!(size["message"]
        .as_str()
        .unwrap_or_default()
        .contains("did you mean `spec.leaderWorkerTemplate.size`?"));
    let kinds: std::collections::BTreeSet<&str> = schema
        .iter()
        .filter_map(|finding| finding["object"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "LeaderWorkerSet",
            "PodMonitor",
            "ScaledObject",
            "ServiceMonitor"
        ]
    );
}

const PAIRING_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: [--model=meta-llama/Llama-3.1-8B-Instruct]
        ports: [{name: http, containerPort: 8000}]
        resources: {limits: {nvidia.com/gpu: \"1\"}}
";

const PAIRING_HPA: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: vllm}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 60}
";

/// Whether the HPA found its Deployment: paired, it is an inference HPA
/// on CPU; unpaired, its target "is not in the input".
fn hpa_unpaired(output: &std::process::Output) -> bool {
    json_findings(output).iter().any(|finding| {
        finding["rule"] == "hpa-scale-target-resolves"
            && finding["message"]
                .as_str()
                .is_some_and(|message| message.contains("not in the input"))
    })
}

/// Objects pair only within one application: the tree of the nearest
/// kustomization.yaml, else the top directory under the path given.
#[test]
fn objects_pair_only_within_one_application() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app_a, app_b) = (dir.path().join("app-a"), dir.path().join("app-b"));
    for app in [&app_a, &app_b] {
        std::fs::create_dir_all(app.join("hpa")).expect("mkdir");
    }
    std::fs::write(app_a.join("deployment.yaml"), PAIRING_DEPLOYMENT).expect("write");
    std::fs::write(app_b.join("hpa.yaml"), PAIRING_HPA).expect("write");
    let parent = dir.path().display().to_string();
    let (a, b) = (app_a.display().to_string(), app_b.display().to_string());
    let lint = |paths: &[&str]| {
        let mut command = vec!["lint", "--format", "json", "-v"];
        command.extend(paths);
        infergate(&command, None)
    };
    // Two top directories, or two paths given: two applications.
    assert!(hpa_unpaired(&lint(&[&parent])));
    assert!(hpa_unpaired(&lint(&[&a, &b])));
    // Even with the same namespace.
    let with_namespace =
        |text: &str| text.replace("{name: vllm}", "{name: vllm, namespace: serving}");
    std::fs::write(
        app_a.join("deployment.yaml"),
        with_namespace(PAIRING_DEPLOYMENT),
    )
    .expect("write");
    std::fs::write(app_b.join("hpa.yaml"), with_namespace(PAIRING_HPA)).expect("write");
    assert!(hpa_unpaired(&lint(&[&parent])));
    // One kustomization above both: one application.
    std::fs::write(dir.path().join("kustomization.yaml"), "resources: []\n").expect("write");
    assert!(!hpa_unpaired(&lint(&[&parent])));
    std::fs::remove_file(dir.path().join("kustomization.yaml")).expect("remove");
    // Within one top directory, subdirectories are one application...
    std::fs::rename(app_b.join("hpa.yaml"), app_a.join("hpa").join("hpa.yaml")).expect("move");
    assert!(!hpa_unpaired(&lint(&[&parent])));
    // ...where a namespace that differs is a mistake of the HPA.
    std::fs::write(
        app_a.join("hpa").join("hpa.yaml"),
        PAIRING_HPA.replace("{name: vllm}", "{name: vllm, namespace: other}"),
    )
    .expect("write");
    let other = lint(&[&parent]);
    assert!(!hpa_unpaired(&other));
    assert!(
        json_findings(&other)
            .iter()
            .any(|finding| finding["message"]
                .as_str()
                .is_some_and(|message| message.contains("only workloads of its own namespace"))),
        "{}",
        stdout(&other)
    );
}

/// A directory with no YAML file (empty, or a typo that names the wrong
/// one) is a usage error, not a green run.
#[test]
fn a_directory_without_yaml_is_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("README.md"), "# not a manifest\n").expect("write");
    let output = infergate(&["lint", &dir.path().display().to_string()], None);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("holds no YAML file"), "{error}");
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
}

/// Tools' own configuration files (a kustomization, a skaffold.yaml) have
/// apiVersion and kind but are never applied: skipped, not linted.
#[test]
fn tool_configurations_are_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  artifacts: [{image: app}]\ndeploy:\n  kubectl: {}\nmetadata: {name: '${NAME}'}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages: [{name: app, newTag: '${TAG}'}]\n",
    )
    .expect("write");
    let output = infergate(
        &[
            "lint",
            "--format",
            "json",
            &dir.path().display().to_string(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(report["summary"]["objects"], 0);
    assert_eq!(report["summary"]["skipped"], 2);
}

#[test]
fn version_names_the_commit_and_the_schemas() {
    let output = infergate(&["version"], None);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("infergate {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("commit: "), "{text}");
    assert!(
        text.contains("Kubernetes schemas: 1.30, 1.31, 1.32, 1.33"),
        "{text}"
    );
    assert_eq!(stdout(&infergate(&["--version"], None)), text);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = infergate(&["completions", shell], None);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(
            stdout(&output).contains("explain"),
            "{shell}: the subcommands are completed"
        );
        // clap_complete's PowerShell script completes no values.
        if shell != "powershell" {
            assert!(
                stdout(&output).contains("xla-cache-single-writer"),
                "{shell}: the rule ids of `explain` are completed"
            );
        }
    }
}

#[test]
fn explain_suggests_the_rule_a_typo_meant() {
    let output = infergate(&["explain", "metric-name-lower"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("did you mean `metric-name-lowercase`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_misspelt_rule_id_in_a_policy_names_its_line_and_the_id_meant() {
    let output = common::lint_examples_with_policy(
        "rules:\n  hpa-target-sanity: {severity: warning}\n  metric-name-lowercse: {severity: off}\n",
    );
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("policy.yaml:3:3"), "{error}");
    assert!(
        error.contains("did you mean `metric-name-lowercase`"),
        "{error}"
    );
    assert!(!error.contains("rules/policy.schema.json"), "{error}");
}

#[test]
fn a_misspelt_rule_id_in_the_ignore_annotation_is_reported_and_suppresses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hpa.yaml");
    std::fs::write(
        &path,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\n  annotations:\n    infergate.dev/ignore: 'metric-name-lowercse=relabelled upstream, see TICKET-12'\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics:\n  - type: External\n    external:\n      metric: {name: DCGM_FI_DEV_GPU_UTIL}\n      target: {type: AverageValue, averageValue: '80'}\n",
    )
    .expect("write");
    let output = infergate(
        &["lint", "--format", "json", &path.display().to_string()],
        None,
    );
    let report: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let findings = report["findings"].as_array().expect("findings");
    let typo = findings
        .iter()
        .find(|finding| finding["rule"] == "invalid-suppression")
        .expect("the typo is reported");
    assert_eq!(typo["line"], 6, "{typo}");
    assert!(typo["help"]
        .as_str()
        .unwrap_or_default()
        .contains("metric-name-lowercase"));
    assert!(findings.iter().any(
        |finding| finding["rule"] == "metric-name-lowercase" && finding["suppressed"].is_null()
    ));
}

#[test]
fn the_human_format_names_severities_in_words_and_points_at_the_fixes() {
    let output = infergate(&["lint", "--color", "never", "testdata/examples"], None);
    let report = stdout(&output);
    assert!(report.contains("error[metric-name-lowercase]"), "{report}");
    assert!(!report.contains('\u{1b}'), "no colour with --color never");
    let summary = report.lines().last().unwrap_or_default();
    assert!(summary.contains("fixable with --fix"), "{summary}");
    assert!(summary.contains("--unsafe-fixes"), "{summary}");
    assert!(summary.contains("(-v shows them)"), "{summary}");
    assert!(!summary.contains("--format json"), "{summary}");
    let coloured = stdout(&infergate(
        &["lint", "--color", "always", "testdata/examples"],
        None,
    ));
    assert!(
        coloured.contains('\u{1b}'),
        "colour with --color always, even into a pipe"
    );
}

#[test]
fn unsafe_fixes_without_fix_or_diff_is_a_usage_error() {
    let output = infergate(&["lint", "--unsafe-fixes", "testdata/examples"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--fix|--diff"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn github_annotations_never_fail_a_check_for_a_suppressed_finding() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hpa.yaml");
    std::fs::write(
        &path,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\n  annotations:\n    infergate.dev/ignore: 'metric-name-lowercase=relabelled upstream, see TICKET-12'\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics:\n  - type: External\n    external:\n      metric: {name: DCGM_FI_DEV_GPU_UTIL}\n      target: {type: AverageValue, averageValue: '80'}\n",
    )
    .expect("write");
    let output = infergate(
        &[
            "lint",
            "--format",
            "github",
            "-v",
            &path.display().to_string(),
        ],
        None,
    );
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|line| line.contains("metric-name-lowercase"))
        .expect("shown with -v");
    assert!(line.starts_with("::notice "), "{line}");
    assert!(
        line.contains("suppressed (relabelled upstream, see TICKET-12)"),
        "{line}"
    );
}

/// docs/webhook.md's table of `serve` options lists every flag `serve --help`
/// has, so a newcomer never has to read the source for one.
#[test]
fn the_readme_lists_every_serve_option() {
    let help = common::infergate(&["serve", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let readme =
        std::fs::read_to_string(common::root().join("docs/webhook.md")).expect("docs/webhook.md");
    let start = readme
        .find("| option | default | meaning |")
        .expect("the serve table");
    let table: String = readme[start..]
        .lines()
        .take_while(|line| line.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', ',', '=']).next())
        .filter(|flag| *flag != "help")
        .collect();
    assert!(flags.len() >= 14, "{flags:?}");
    for flag in flags {
        assert!(
            table.contains(&format!("`--{flag}")),
            "--{flag} is missing from docs/webhook.md"
        );
    }
}

/// `infergate lint` run in `directory` (no NO_COLOR games needed: json).
fn lint_in(directory: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .arg("lint")
        .args(args)
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary starts")
}

/// A scratch repository with a mistake in deploy/ and one in testdata/.
fn repository_with_fixtures() -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("tempdir");
    let root = directory.path();
    std::fs::create_dir_all(root.join(".git")).expect("git");
    let bad = std::fs::read_to_string(
        common::root().join("testdata/rules/metric-name-lowercase/fires.yaml"),
    )
    .expect("fixture");
    for folder in ["deploy", "testdata/rules", "deploy/base"] {
        std::fs::create_dir_all(root.join(folder)).expect("folder");
    }
    std::fs::write(root.join("deploy/hpa.yaml"), &bad).expect("write");
    std::fs::write(root.join("testdata/rules/bad.yaml"), &bad).expect("write");
    directory
}

#[test]
fn a_config_file_is_found_up_to_the_repository_root_and_filters_paths() {
    let repository = repository_with_fixtures();
    let root = repository.path();
    std::fs::write(
        root.join(".infergate.yaml"),
        "exclude:\n  - testdata/**\nrules:\n  hpa-target-sanity: {severity: off}\n",
    )
    .expect("config");
    // Found from a subdirectory; the excluded fixture is not linted even
    // when named on the command line (as the pre-commit hook names files).
    let nested = root.join("deploy/base");
    let excluded = lint_in(&nested, &["-v", "../../testdata/rules/bad.yaml"]);
    let stderr = String::from_utf8_lossy(&excluded.stderr);
    assert_eq!(excluded.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("config: ") && stderr.contains(".infergate.yaml"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was linted"), "{stderr}");
    // A directory walk skips it too, and still lints the rest.
    let walked = lint_in(root, &["--format", "json", "."]);
    assert_eq!(walked.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&walked.stdout).expect("json");
    let files: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|finding| finding["file"].as_str())
        .collect();
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|file| file.contains("deploy")),
        "{files:?}"
    );
    // The config's policy applies: hpa-target-sanity is off.
    assert!(report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|finding| finding["rule"] != "hpa-target-sanity"));
    // --no-config ignores it; --config names another.
    let ignored = lint_in(root, &["--no-config", "testdata/rules/bad.yaml"]);
    assert_eq!(ignored.status.code(), Some(1));
    std::fs::write(root.join("other.yaml"), "include: [nowhere]\n").expect("other");
    let other = lint_in(root, &["--config", "other.yaml", "deploy/hpa.yaml"]);
    assert_eq!(
        other.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

#[test]
fn a_config_above_the_repository_is_not_used() {
    let outer = tempfile::tempdir().expect("tempdir");
    std::fs::write(outer.path().join(".infergate.yaml"), "exclude: ['**']\n").expect("config");
    let repository = outer.path().join("repo");
    std::fs::create_dir_all(repository.join(".git")).expect("git");
    let bad = std::fs::read_to_string(
        common::root().join("testdata/rules/metric-name-lowercase/fires.yaml"),
    )
    .expect("fixture");
    std::fs::write(repository.join("hpa.yaml"), bad).expect("write");
    let output = lint_in(&repository, &["-v", "hpa.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("config: none"));
}

#[test]
fn config_mistakes_are_usage_errors_at_their_line() {
    let repository = repository_with_fixtures();
    let root = repository.path();
    std::fs::write(
        root.join(".infergate.yaml"),
        "exclude: [testdata]\nrule:\n  x: {}\n",
    )
    .expect("config");
    let output = lint_in(root, &["deploy"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(".infergate.yaml:2:1"), "{stderr}");
    assert!(
        stderr.contains("--no-config") || stderr.contains("policy-schema"),
        "{stderr}"
    );
    // Path filters belong to the config file, not to a --policy file.
    std::fs::write(root.join(".infergate.yaml"), "{}\n").expect("config");
    std::fs::write(root.join("policy.yaml"), "rules: {}\nexclude: [testdata]\n").expect("policy");
    let output = lint_in(root, &["--policy", "policy.yaml", "deploy"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("policy.yaml:2:1") && stderr.contains(".infergate.yaml"),
        "{stderr}"
    );
    // A glob that cannot be compiled names its line, not a silent no-match.
    std::fs::write(
        root.join(".infergate.yaml"),
        "include:\n  - deploy\n  - 'charts/[web'\n",
    )
    .expect("config");
    let output = lint_in(root, &["deploy"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(".infergate.yaml:3:5") && stderr.contains("charts/[web"),
        "{stderr}"
    );
}

/// `-v` names each document that was read but not linted, with its line
/// and why; without it only the summary counts them.
#[test]
fn verbose_lists_the_skipped_documents() {
    let directory = tempfile::tempdir().expect("tempdir");
    let root = directory.path();
    std::fs::write(
        root.join("workflow.yaml"),
        "name: ci\non: [push]\njobs: {}\n",
    )
    .expect("write");
    std::fs::write(
        root.join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nmetadata: {name: app}\n",
    )
    .expect("write");
    std::fs::copy(
        common::root().join("testdata/rules/metric-name-lowercase/quiet.yaml"),
        root.join("app.yaml"),
    )
    .expect("copy");
    let output = lint_in(root, &["-v", "--no-config", "."]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipped: workflow.yaml:1: document 1 is not a Kubernetes object"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "skipped: skaffold.yaml:1: skaffold/v4beta11 Config is a tool's configuration"
        ),
        "{stderr}"
    );
    let quiet = lint_in(root, &["--no-config", "."]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("skipped: "));
}

/// Per-path rule ignores (`ignore: [{paths, rules, reason}]`), as ruff's
/// per-file-ignores: the rule is suppressed in the matched files only, with
/// the reason, `--fix` leaves those files alone, and a path filter that
/// matches nothing is a warning naming it.
#[test]
fn per_path_ignores_and_patterns_that_match_nothing() {
    let repository = repository_with_fixtures();
    let root = repository.path();
    std::fs::create_dir_all(root.join("legacy")).expect("mkdir");
    let bad = std::fs::read_to_string(
        common::root().join("testdata/rules/metric-name-lowercase/fires.yaml"),
    )
    .expect("fixture");
    std::fs::write(root.join("legacy/hpa.yaml"), &bad).expect("legacy");
    std::fs::write(
        root.join(".infergate.yaml"),
        "exclude: [testdata, docs/**]
ignore:
  - paths: [legacy/**]
    rules: [metric-name-lowercase]
    reason: migrated next quarter
",
    )
    .expect("config");
    let output = lint_in(root, &["--format", "json", "-v", "."]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let by_file = |file: &str| -> Vec<serde_json::Value> {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|finding| {
                finding["rule"] == "metric-name-lowercase"
                    && finding["file"]
                        .as_str()
                        .is_some_and(|name| name.contains(file))
            })
            .cloned()
            .collect()
    };
    let legacy = by_file("legacy/");
    assert!(!legacy.is_empty(), "{report}");
    assert!(
        legacy.iter().all(|finding| finding["suppressed"]["reason"]
            .as_str()
            .is_some_and(|why| why.contains("migrated next quarter"))),
        "{legacy:?}"
    );
    let deploy = by_file("deploy/");
    assert!(
        !deploy.is_empty() && deploy.iter().all(|finding| finding["suppressed"].is_null()),
        "{deploy:?}"
    );
    assert_eq!(output.status.code(), Some(1), "deploy/ still fails");
    assert!(
        stderr.contains("exclude[1] `docs/**` matches no file"),
        "{stderr}"
    );
    assert!(!stderr.contains("legacy/**` matches no file"), "{stderr}");
    // --fix fixes deploy/ and leaves the ignored file as it was.
    let output = lint_in(root, &["--fix", "--unsafe-fixes", "."]);
    assert!(output.status.code().is_some(), "{output:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("legacy/hpa.yaml")).expect("legacy"),
        bad
    );
    assert_ne!(
        std::fs::read_to_string(root.join("deploy/hpa.yaml")).expect("deploy"),
        bad
    );
    // An entry without rules is an error at its line; `ignore` in a
    // --policy file is refused like the other path filters.
    std::fs::write(
        root.join(".infergate.yaml"),
        "ignore:
  - paths: [legacy]
",
    )
    .expect("config");
    let output = lint_in(root, &["deploy"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(".infergate.yaml:2:"), "{stderr}");
    std::fs::write(
        root.join(".infergate.yaml"),
        "{}
",
    )
    .expect("config");
    std::fs::write(
        root.join("policy.yaml"),
        "ignore:
  - {paths: [legacy], rules: ['*']}
",
    )
    .expect("policy");
    let output = lint_in(root, &["--policy", "policy.yaml", "deploy"]);
    assert_eq!(output.status.code(), Some(2));
}

/// A newcomer's repository: a kustomize base, overlays with a replicas
/// patch, a strategic-merge resources patch and a JSON 6902 patch, a
/// workflow, a compose file and another chart's Helm values. Patches are
/// fragments (no "`selector` is required"), the rest is skipped, and only
/// the deliberate mistake is reported, in the patch, at its line.
#[test]
fn a_repository_with_kustomize_overlays_reports_only_its_mistake() {
    let output = infergate(&["lint", "--format", "json", "-v", "testdata/repo"], None);
    let findings = json_findings(&output);
    let placed: Vec<(String, String, u64)> = findings
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap_or_default().to_string(),
                finding["file"].as_str().unwrap_or_default().to_string(),
                finding["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [(
            "metric-name-lowercase".to_string(),
            "testdata/repo/overlays/staging/hpa-max.yaml".to_string(),
            13
        )],
        "{findings:#?}"
    );
    assert_eq!(output.status.code(), Some(1));
}

/// docs/ci.md's GitHub Actions workflow (also
/// testdata/repo/.github/workflows/infergate.yml), played as the runner
/// plays it on manifests with errors: a step runs only while no earlier
/// step failed unless its `if` is `always()`. The SARIF report is uploaded,
/// the annotation step still runs and prints annotations, and the job
/// fails. (The former example failed at the SARIF step, so the
/// annotations were skipped exactly when there were errors.)
#[test]
fn the_documented_workflow_annotates_when_the_manifests_have_errors() {
    let readme = std::fs::read_to_string(common::root().join("docs/ci.md")).expect("docs/ci.md");
    let section = &readme[readme
        .find("## GitHub Actions and code scanning")
        .expect("the GitHub Actions section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("block end")];
    let shipped = std::fs::read_to_string(
        common::root().join("testdata/repo/.github/workflows/infergate.yml"),
    )
    .expect("the workflow file");
    assert_eq!(block, shipped, "docs/ci.md's workflow and the file differ");

    let loaded = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        "infergate.yml",
        shipped,
    ));
    let workflow = &loaded.documents.first().expect("a workflow").value;
    let steps = workflow["jobs"]["lint"]["steps"].as_array().expect("steps");
    let manifests = common::root().join("testdata/examples");
    let mut failed = false;
    let mut annotations = None;
    let mut uploaded = false;
    for step in steps {
        let always = step["if"].as_str() == Some("always()");
        if failed && !always {
            continue;
        }
        if step["uses"]
            .as_str()
            .is_some_and(|uses| uses.starts_with("github/codeql-action/upload-sarif"))
        {
            uploaded = true;
            continue;
        }
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        let Some(command) = run.trim().strip_prefix("infergate ") else {
            continue; // checkout, install
        };
        let command = command.split(" > ").next().unwrap_or(command);
        let args: Vec<String> = command
            .split_whitespace()
            .map(|arg| match arg {
                "manifests/" => manifests.display().to_string(),
                other => other.to_string(),
            })
            .collect();
        let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = common::infergate(&borrowed, None);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if args.iter().any(|arg| arg == "github") {
            annotations = Some(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        failed |= output.status.code() != Some(0);
    }
    assert!(uploaded, "the SARIF report was not uploaded");
    let annotations = annotations.expect("the annotation step was skipped");
    assert!(annotations.contains("::error"), "{annotations}");
    assert!(failed, "the job must fail on errors");
}

/// `lint .` and `lint ./a.yaml` name the file `a.yaml` (in every format,
/// so fingerprints and config globs see one name), and `--fix .` still
/// writes the file.
#[test]
fn paths_are_shown_without_a_leading_dot() {
    let directory = tempfile::tempdir().expect("temp dir");
    let fixture = common::root().join("testdata/fix/hpa-stabilization-defaults.yaml");
    std::fs::copy(&fixture, directory.path().join("a.yaml")).expect("copy");
    for target in [".", "./a.yaml", "./."] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(["lint", "--format", "json", target])
            .current_dir(directory.path())
            .output()
            .expect("run");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let findings = json["findings"].as_array().expect("findings");
        assert!(!findings.is_empty());
        for finding in findings {
            assert_eq!(finding["file"], "a.yaml", "{target}: {finding}");
        }
    }
    let before = std::fs::read_to_string(directory.path().join("a.yaml")).expect("file");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "--fix", "."])
        .current_dir(directory.path())
        .output()
        .expect("run");
    assert!(matches!(output.status.code(), Some(0 | 1)));
    let after = std::fs::read_to_string(directory.path().join("a.yaml")).expect("file");
    assert_ne!(before, after, "the fix was written");
}

/// A directory walk skips what `.gitignore` (also a parent's, also outside
/// a git work tree), `.git/info/exclude` and `.ignore` leave out, walks
/// hidden directories such as `.github/` but never `.git/`, and a path
/// named on the command line is linted even when ignored.
#[test]
fn directory_walks_honour_ignore_files() {
    let directory = tempfile::tempdir().expect("temp dir");
    let root = directory.path();
    let object = std::fs::read_to_string(
        common::root().join("testdata/fix/hpa-stabilization-defaults.yaml"),
    )
    .expect("fixture");
    for (path, text) in [
        (".gitignore", "rendered/\n*.generated.yaml\n"),
        ("app/.ignore", "scratch.yaml\n"),
        ("app/deploy.yaml", object.as_str()),
        ("app/scratch.yaml", object.as_str()),
        ("app/hpa.generated.yaml", object.as_str()),
        ("rendered/all.yaml", object.as_str()),
        (".github/workflows/ci.yaml", object.as_str()),
        (".git/info/exclude", "app/local.yaml\n"),
        (".git/hooks.yaml", object.as_str()),
        ("app/local.yaml", object.as_str()),
    ] {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, text).expect("write");
    }
    let files_of = |target: &str| -> Vec<String> {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(["lint", "-v", "--format", "json", target])
            .current_dir(root)
            .output()
            .expect("run");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let mut files: Vec<String> = json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter_map(|finding| finding["file"].as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        files
    };
    assert_eq!(
        files_of("."),
        [".github/workflows/ci.yaml", "app/deploy.yaml"]
    );
    assert_eq!(files_of("rendered"), ["rendered/all.yaml"]);
    assert_eq!(files_of("app/scratch.yaml"), ["app/scratch.yaml"]);
}

/// `--stdin-filename` names what `-` reads: findings carry that path, the
/// config's globs filter it as they filter the file, and without `-` it
/// is a usage error.
#[test]
fn stdin_takes_the_name_it_is_given() {
    let directory = tempfile::tempdir().expect("temp dir");
    let root = directory.path();
    std::fs::create_dir(root.join(".git")).expect("a repository root");
    std::fs::write(root.join(".infergate.yaml"), "exclude: [testdata]\n").expect("config");
    let text = std::fs::read_to_string(
        common::root().join("testdata/fix/hpa-stabilization-defaults.yaml"),
    )
    .expect("fixture");
    let run = |args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(args)
            .current_dir(root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let named = run(&[
        "lint",
        "-v",
        "--format",
        "json",
        "--stdin-filename",
        "./deploy/hpa.yaml",
        "-",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&named.stdout).expect("JSON");
    let findings = json["findings"].as_array().expect("findings");
    assert!(!findings.is_empty());
    assert!(
        findings
            .iter()
            .all(|finding| finding["file"] == "deploy/hpa.yaml"),
        "{findings:?}"
    );
    let excluded = run(&[
        "lint",
        "--format",
        "json",
        "--stdin-filename",
        "testdata/hpa.yaml",
        "-",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&excluded.stdout).expect("JSON");
    assert_eq!(json["summary"]["files"], 0, "{json}");
    std::fs::create_dir(root.join("deploy")).expect("mkdir");
    std::fs::write(root.join("deploy/hpa.yaml"), &text).expect("write");
    let alone = run(&["lint", "--stdin-filename", "a.yaml", "deploy"]);
    let errors = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{errors}");
    assert!(errors.contains("--stdin-filename"), "{errors}");
}

/// A repository with its Deployment in `app/` and its HPAs in `app/hpa/`,
/// and a kustomization at the top when `kustomized`.
fn repository_with_nested_hpas(kustomized: bool) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temp dir");
    let repo = directory.path().join("repo");
    std::fs::create_dir_all(repo.join("app/hpa")).expect("dirs");
    std::fs::write(
        repo.join("app/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: 'nginx:1.27'}]\n",
    )
    .expect("deployment");
    for (name, kind) in [("hpa", "Deployment"), ("hpa-missing", "StatefulSet")] {
        std::fs::write(
            repo.join("app/hpa").join(format!("{name}.yaml")),
            format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {name}, namespace: prod}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: {kind}, name: web}}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}}}]\n"),
        )
        .expect("hpa");
    }
    if kustomized {
        std::fs::write(
            repo.join("kustomization.yaml"),
            "resources: [app/deploy.yaml, app/hpa/hpa.yaml]\n",
        )
        .expect("kustomization");
    }
    directory
}

/// `lint .` inside a repository groups its files into applications as
/// `lint repo` from outside does (and as CI and pre-commit must agree):
/// the HPA in app/hpa/ finds its Deployment in app/ either way.
#[test]
fn lint_dot_pairs_as_lint_of_the_directory() {
    for kustomized in [false, true] {
        let directory = repository_with_nested_hpas(kustomized);
        let run = |cwd: &std::path::Path, path: &str| -> Vec<(String, String)> {
            let output = lint_in(cwd, &["--format", "json", path]);
            json_findings(&output)
                .iter()
                .map(|finding| {
                    let file = finding["file"].as_str().unwrap_or_default();
                    (
                        finding["rule"].as_str().unwrap_or_default().to_string(),
                        file.strip_prefix("repo/").unwrap_or(file).to_string(),
                    )
                })
                .collect()
        };
        let inside = run(&directory.path().join("repo"), ".");
        let outside = run(directory.path(), "repo");
        assert_eq!(inside, outside, "kustomized: {kustomized}");
        assert_eq!(
            inside,
            [(
                "hpa-scale-target-resolves".to_string(),
                "app/hpa/hpa-missing.yaml".to_string()
            )],
            "kustomized: {kustomized}"
        );
    }
}

/// pre-commit's view: `--application-context` with one staged file reads
/// the rest of its application for context and reports what `lint .`
/// reports of that file (a conflict with an unstaged HPA applied
/// together; none beside an alternative), never a finding of a context
/// file, and `--fix` leaves context files alone.
#[test]
fn application_context_reports_the_staged_files_as_lint_dot_does() {
    let directory = tempfile::tempdir().expect("temp dir");
    let root = directory.path();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: 'nginx:1.27'}]\n";
    let hpa = |name: &str| {
        format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {name}, namespace: prod}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}}}]\n")
    };
    for app in ["conflict", "alternatives"] {
        let folder = root.join("apps").join(app);
        std::fs::create_dir_all(&folder).expect("dirs");
        std::fs::write(folder.join("deploy.yaml"), deployment).expect("deployment");
        std::fs::write(folder.join("hpa-a.yaml"), hpa("web-a")).expect("hpa");
        std::fs::write(folder.join("hpa-b.yaml"), hpa("web-b")).expect("hpa");
    }
    std::fs::write(
        root.join("apps/conflict/kustomization.yaml"),
        "resources: [deploy.yaml, hpa-a.yaml, hpa-b.yaml]\n",
    )
    .expect("kustomization");
    // A mistake in a context file, fixable: never reported or fixed.
    let context_mistake = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: other, namespace: prod}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: other}\n  minReplicas: 1\n  maxReplicas: 3\n  metrics:\n  - type: External\n    external:\n      metric: {name: DCGM_FI_DEV_GPU_UTIL}\n      target: {type: AverageValue, averageValue: '80'}\n";
    std::fs::write(root.join("apps/conflict/other.yaml"), context_mistake).expect("other");
    let dot = lint_in(root, &["--format", "json", "."]);
    let dot_files: Vec<(String, String)> = json_findings(&dot)
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap_or_default().to_string(),
                finding["file"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        dot_files
            .iter()
            .any(|(rule, file)| rule == "single-autoscaler-per-workload"
                && file.starts_with("apps/conflict/")),
        "{dot_files:?}"
    );
    assert!(
        !dot_files
            .iter()
            .any(|(_, file)| file.starts_with("apps/alternatives/")),
        "{dot_files:?}"
    );
    for staged in ["apps/conflict/hpa-a.yaml", "apps/conflict/hpa-b.yaml"] {
        let output = lint_in(root, &["--format", "json", "--application-context", staged]);
        let findings = json_findings(&output);
        assert_eq!(output.status.code(), Some(1), "{staged}");
        assert!(
            findings.iter().all(|finding| finding["file"] == staged)
                && findings
                    .iter()
                    .any(|finding| finding["rule"] == "single-autoscaler-per-workload"),
            "{staged}: {findings:?}"
        );
    }
    let output = lint_in(
        root,
        &[
            "--format",
            "json",
            "--application-context",
            "apps/alternatives/hpa-a.yaml",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stdout(&output));
    // --fix with a context file that has a fixable mistake: untouched.
    let output = lint_in(
        root,
        &[
            "--fix",
            "--unsafe-fixes",
            "--application-context",
            "apps/conflict/deploy.yaml",
        ],
    );
    assert!(
        output.status.code().is_some(),
        "{}",
        common::stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("apps/conflict/other.yaml")).expect("other"),
        context_mistake
    );
    // Directories are not what the option takes.
    let output = lint_in(root, &["--application-context", "apps"]);
    assert_eq!(output.status.code(), Some(2));
}

/// A progress line on standard error, drawn in place and erased, when it
/// is a terminal (here a pseudo-terminal from util-linux's `script`); the
/// report on standard output stays clean, and a pipe never sees it.
#[test]
fn progress_line_only_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    // Hundreds of fixtures: the run lasts long enough for a first draw.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rules");
    let command = format!(
        "{} lint --format json {examples} > {}",
        env!("CARGO_BIN_EXE_infergate"),
        report.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("INFERGATE_PROGRESS_AFTER_MS", "0")
        .output()
        .expect("script (util-linux) runs");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(terminal.contains("\r\x1b[Kinfergate: "), "{terminal:?}");
    assert!(terminal.ends_with("\r\x1b[K"), "erased: {terminal:?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("the report is JSON alone");
    assert!(json["findings"]
        .as_array()
        .is_some_and(|all| !all.is_empty()));

    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["lint", "--format", "json", examples])
        .env("INFERGATE_PROGRESS_AFTER_MS", "0")
        .output()
        .expect("infergate runs");
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("infergate: "));
}

/// GitHub's anchor for a heading: lowercase, spaces to hyphens, other
/// punctuation dropped.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors_of(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut anchors = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            anchors.push(heading_anchor(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// Every relative link of the README and docs/ reaches a file of the
/// repository, and every `#anchor` a heading of its page: the README is the
/// way in, and its pages must be where it says.
#[test]
fn documentation_links_resolve() {
    let root = common::root();
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").expect("regex");
    let mut pages = vec![root.join("README.md")];
    for folder in ["docs", "docs/rules"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("docs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|extension| extension == "md") {
                pages.push(path);
            }
        }
    }
    assert!(pages.len() > 20, "docs/ pages: {pages:?}");
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("page");
        for captures in link.captures_iter(&text) {
            let target = &captures[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("folder").join(file)
            };
            assert!(
                resolved.exists(),
                "{}: link to {target}: {} does not exist",
                page.display(),
                resolved.display()
            );
            if !anchor.is_empty() {
                let anchors = anchors_of(&std::fs::read_to_string(&resolved).expect("target"));
                assert!(
                    anchors.iter().any(|known| known == anchor),
                    "{}: link to {target}: no such heading ({anchors:?})",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} links");
    // The first screen: the two commands a newcomer runs, first of all.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    assert!(
        readme.starts_with("# infergate\n\n```sh\ncargo run --release -- lint testdata/examples/\ncargo test\n```\n"),
        "the README's first lines"
    );
    assert!(readme.lines().count() < 200, "the README stays a way in");
    // The first command runs as the README says: findings, and exit 1
    // because the examples hold mistakes on purpose.
    let first = readme
        .lines()
        .find_map(|line| line.strip_prefix("cargo run --release -- "))
        .expect("the first command");
    let args: Vec<&str> = first.split_whitespace().collect();
    let output = infergate(&args, None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("error["), "{}", stdout(&output));
    assert!(
        readme.contains("it exits 1, because the"),
        "the README says why the first command exits 1"
    );
}

/// The summary's "N fixable with --fix, M more with --unsafe-fixes" is
/// what `--diff` then fixes: counted in findings resolved (one fix may
/// resolve two findings), with the findings that the fixes uncover (an
/// HPA converted to autoscaling/v2 gets v2's defaults) counted apart.
#[test]
fn the_summary_fixable_count_is_what_diff_fixes() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rules");
    let number_before = |text: &str, marker: &str| -> usize {
        text.split(marker)
            .next()
            .and_then(|head| head.split_whitespace().last())
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("`{marker}` in: {text}"))
    };
    let summary = stdout(&infergate(&["lint", "--color", "never", fixtures], None));
    let summary = summary.lines().last().unwrap_or_default().to_string();
    let safe = number_before(&summary, " fixable with --fix");
    let unsafe_only = number_before(&summary, " more with --unsafe-fixes");
    let diff = stderr(&infergate(&["lint", "--diff", fixtures], None));
    assert_eq!(
        number_before(&diff, " finding(s)"),
        safe,
        "{summary}\n{diff}"
    );
    assert!(diff.contains("more that those fixes uncovered"), "{diff}");
    let diff = stderr(&infergate(
        &["lint", "--diff", "--unsafe-fixes", fixtures],
        None,
    ));
    assert_eq!(
        number_before(&diff, " finding(s)"),
        safe + unsafe_only,
        "{summary}\n{diff}"
    );
}

/// `lint` writes its report a batch of applications at a time, each
/// batch's findings written and dropped before the next is checked: every
/// format prints exactly the report of one run over the whole input, with
/// its exit code. The input spans several batches: 2.2 MB of applications
/// under two roots given in reverse order, one with a kustomization nested
/// among another application's files (their names interleave), and the
/// fixtures and examples beside them.
#[test]
fn the_report_written_batch_by_batch_is_the_report_of_one_run() {
    use infergate::output::{github, json, sarif, Visibility};
    let directory = tempfile::tempdir().expect("tempdir");
    let mut index = 0;
    for root in ["b", "a"] {
        for application in 0..12 {
            let folder = directory
                .path()
                .join(root)
                .join(format!("app-{application:02}"));
            std::fs::create_dir_all(folder.join("base")).expect("mkdir");
            for file in 0..84 {
                // Files sort before and after the nested `base/`.
                let name = if file % 2 == 0 { "a" } else { "z" };
                std::fs::write(
                    folder.join(format!("{name}-{file:03}.yaml")),
                    support::bundle(index),
                )
                .expect("write");
                index += 1;
            }
            std::fs::write(folder.join("base/deploy.yaml"), support::bundle(index)).expect("write");
            std::fs::write(
                folder.join("base/kustomization.yaml"),
                "resources: [deploy.yaml]\n",
            )
            .expect("write");
            index += 1;
        }
    }
    let b = directory.path().join("b").display().to_string();
    let a = directory.path().join("a").display().to_string();
    let paths = [
        b.as_str(),
        a.as_str(),
        "testdata/rules",
        "testdata/examples",
    ];
    let outcome = common::lint(&paths);
    assert!(outcome.findings.len() > 1000, "the mistakes are found");
    let root = sarif::SourceRoot::find(None);
    let quiet = Visibility { verbose: false };
    let verbose = Visibility { verbose: true };
    let expected = [
        ("json", false, json::render(&outcome, quiet)),
        ("json", true, json::render(&outcome, verbose)),
        ("github", false, github::render(&outcome, quiet)),
        ("sarif", false, sarif::render(&outcome, &root)),
    ];
    for (format, verbose, report) in expected {
        let mut args = vec!["lint", "--format", format];
        if verbose {
            args.push("-v");
        }
        args.extend(paths);
        let output = infergate(&args, None);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}: {}",
            stderr(&output)
        );
        assert!(
            stdout(&output) == report,
            "{format} (verbose: {verbose}): the binary's report differs from one run's"
        );
    }
}
