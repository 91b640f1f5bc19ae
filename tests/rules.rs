//! Every rule fires on its `fires*.yaml` fixtures and stays quiet on its
//! `quiet*.yaml` ones; the findings are pinned by snapshots.

mod common;
#[path = "../benches/support/mod.rs"]
mod support;

use infergate::output::{human, json, Visibility};
use infergate::rules;

#[test]
fn every_rule_has_fixtures_that_fire_and_stay_quiet() {
    for rule in rules::registry() {
        let id = rule.meta().id;
        let fixtures = common::rule_fixtures(id);
        assert!(
            fixtures.iter().any(|(_, fires)| *fires),
            "{id}: no fires*.yaml under testdata/rules/{id}"
        );
        assert!(
            fixtures.iter().any(|(_, fires)| !*fires),
            "{id}: no quiet*.yaml under testdata/rules/{id}"
        );
        for (path, fires) in fixtures {
            let outcome = common::lint_fixture(&path);
            let hits: Vec<_> = outcome
                .findings
                .iter()
                .filter(|finding| finding.rule == id)
                .collect();
            if fires {
                assert!(!hits.is_empty(), "{path}: expected {id} to fire");
            } else {
                assert!(
                    hits.is_empty(),
                    "{path}: expected {id} to stay quiet, got {:?}",
                    hits.iter()
                        .map(|hit| (&hit.message, hit.location.line))
                        .collect::<Vec<_>>()
                );
            }
            assert!(
                outcome
                    .findings
                    .iter()
                    .all(|finding| finding.rule != "invalid-yaml"),
                "{path}: fixture must be valid YAML"
            );
        }
    }
}

#[test]
fn snapshots_of_human_and_json_output() {
    let style = human::Style {
        color: false,
        width: 100,
    };
    for rule in rules::registry() {
        for (path, _) in common::rule_fixtures(rule.meta().id) {
            let outcome = common::lint_fixture(&path);
            let name = path
                .trim_start_matches("testdata/rules/")
                .trim_end_matches(".yaml")
                .replace('/', "__");
            insta::assert_snapshot!(
                format!("{name}.human"),
                human::render(&outcome, Visibility { verbose: true }, style)
            );
            insta::assert_snapshot!(
                format!("{name}.json"),
                json::render(&outcome, Visibility { verbose: true })
            );
        }
    }
}

#[test]
fn every_rule_is_documented_in_the_sections_users_expect() {
    for meta in rules::all_meta() {
        let doc = meta.documentation();
        assert!(
            doc.contains("## What it does"),
            "{}: no 'What it does'",
            meta.id
        );
        assert!(doc.contains("## Why is this bad?"), "{}: no 'Why'", meta.id);
        if rules::registry()
            .iter()
            .any(|rule| rule.meta().id == meta.id)
        {
            assert!(doc.contains("## Example"), "{}: no example", meta.id);
            assert!(
                doc.contains("## Use instead"),
                "{}: no 'Use instead'",
                meta.id
            );
            assert!(doc.contains("## Fix"), "{}: no 'Fix'", meta.id);
        }
    }
}

#[test]
fn the_policy_schema_knows_every_rule_id() {
    let schema: serde_json::Value =
        serde_json::from_str(infergate::policy::SCHEMA).expect("schema is JSON");
    let listed: Vec<&str> = schema["$defs"]["ruleId"]["enum"]
        .as_array()
        .expect("rule id enum")
        .iter()
        .filter_map(|value| value.as_str())
        .collect();
    let mut registered: Vec<&str> = rules::all_meta().iter().map(|meta| meta.id).collect();
    let mut listed_sorted = listed.clone();
    registered.sort_unstable();
    listed_sorted.sort_unstable();
    assert_eq!(listed_sorted, registered);
}

/// One application of `index`: the benchmarks' bundle (a vLLM Deployment,
/// its HPA and PodMonitoring, one in five with a mistake, in one of 37
/// namespaces), every third with a KEDA ScaledObject beside it, and in each
/// namespace a DCGM exporter's monitor.
fn application(index: usize) -> String {
    let namespace = format!("ns{}", index % 37);
    let mut text = support::bundle(index);
    if index % 3 == 2 {
        text.push_str(&format!("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: vllm-{index}-keda, namespace: {namespace}}}\nspec:\n  scaleTargetRef: {{name: vllm-{index}}}\n  triggers:\n    - type: prometheus\n      metadata: {{serverAddress: \"http://prometheus:9090\", query: \"sum(vllm:num_requests_waiting{{namespace=\\\"{namespace}\\\"}})\", threshold: \"5\"}}\n---\n"));
    }
    if index < 37 {
        text.push_str(&format!("apiVersion: monitoring.googleapis.com/v1\nkind: PodMonitoring\nmetadata: {{name: dcgm-exporter, namespace: {namespace}}}\nspec:\n  selector: {{matchLabels: {{app: nvidia-dcgm-exporter}}}}\n  endpoints: [{{port: metrics, interval: 15s}}]\n"));
    }
    text
}

/// Objects and index candidates of `applications` applications, one file
/// each, in one directory (one scope: every object may pair with every
/// other, as in a repository's manifests folder).
fn candidates_for(applications: usize) -> (usize, usize) {
    let directory = tempfile::tempdir().expect("tempdir");
    let inputs: Vec<infergate::input::loader::Input> = (0..applications)
        .map(|index| {
            let path = directory.path().join(format!("app-{index:04}.yaml"));
            std::fs::write(&path, application(index)).expect("write");
            infergate::input::loader::Input::File(path)
        })
        .collect();
    let loaded = infergate::input::loader::load(&inputs).expect("readable");
    let outcome = common::run(&loaded);
    assert!(
        outcome
            .findings
            .iter()
            .any(|finding| finding.rule == "metric-name-lowercase"),
        "the mistakes are found"
    );
    (loaded.objects.len(), outcome.candidates)
}

/// Cross-object rules ask the engine's index for their peers: the
/// candidates it hands out per object stay the same when the input grows
/// fourfold (a rule that scanned every monitor, HPA or workload per object
/// would multiply them by four).
#[test]
fn cross_object_lookups_per_object_do_not_grow_with_the_input() {
    assert_lookups_stay_flat(candidates_for(60), candidates_for(240));
}

/// Candidates per object of the larger input within 25 % of the smaller's.
fn assert_lookups_stay_flat(
    (small_objects, small): (usize, usize),
    (large_objects, large): (usize, usize),
) {
    let per_object_small = small as f64 / small_objects as f64;
    let per_object_large = large as f64 / large_objects as f64;
    assert!(small > 0, "the rules use the index");
    assert!(
        per_object_large <= per_object_small * 1.25,
        "{per_object_small:.2} candidates per object at {small_objects} objects, {per_object_large:.2} at {large_objects}"
    );
}

/// `environments` copies of the same applications, one directory with a
/// kustomization each (`clusters/env-N/`, the environment layout): the
/// same names in every scope.
fn repeated_candidates_for(environments: usize) -> (usize, usize) {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut inputs = Vec::new();
    for environment in 0..environments {
        let folder = directory.path().join(format!("env-{environment:03}"));
        std::fs::create_dir_all(&folder).expect("mkdir");
        let mut resources = Vec::new();
        for index in 0..5 {
            let file = format!("app-{index}.yaml");
            std::fs::write(folder.join(&file), application(index)).expect("write");
            resources.push(format!("  - {file}"));
        }
        std::fs::write(
            folder.join("kustomization.yaml"),
            format!("resources:\n{}\n", resources.join("\n")),
        )
        .expect("write");
        inputs.push(infergate::input::loader::Input::File(folder));
    }
    let loaded = infergate::input::loader::load(&inputs).expect("readable");
    let outcome = common::run(&loaded);
    (loaded.objects.len(), outcome.candidates)
}

/// Names repeated across environments do not make lookups scan every
/// environment: candidates per object stay the same when the copies grow
/// fourfold (#32: by name alone, each lookup met every copy).
#[test]
fn repeated_names_across_environments_do_not_grow_lookups() {
    assert_lookups_stay_flat(repeated_candidates_for(10), repeated_candidates_for(40));
}

/// docs/rules/ID.md is `infergate explain ID` for every rule (SARIF's
/// helpUri points there). INFERGATE_UPDATE_DOCS=1 rewrites them.
#[test]
fn rule_pages_in_docs_are_the_explanations() {
    let directory = common::root().join("docs/rules");
    let update = std::env::var_os("INFERGATE_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for meta in rules::all_meta() {
        let path = directory.join(format!("{}.md", meta.id));
        let expected = meta.explanation();
        if update {
            std::fs::create_dir_all(&directory).expect("docs/rules");
            std::fs::write(&path, &expected).expect("write the page");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(meta.id);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/rules/ is stale for {stale:?}: run INFERGATE_UPDATE_DOCS=1 cargo test --test rules rule_pages"
    );
}

/// docs/rules.md's rules table lists every rule and loader check the
/// registry knows, with its default severity.
#[test]
fn the_readme_rules_table_lists_every_rule() {
    let readme =
        std::fs::read_to_string(common::root().join("docs/rules.md")).expect("docs/rules.md");
    for meta in rules::all_meta() {
        let row = format!("| `{}` | {} |", meta.id, meta.default_severity.as_str());
        assert!(
            readme.contains(&row),
            "docs/rules.md rules table lacks {row}"
        );
    }
}

/// A `${var}` is never read as the namespace, name or duration it stands
/// for: in fields that other rules compare (pairing by name and
/// namespace, an External metric's namespace filter, a scrape interval),
/// only unresolved-placeholder reports, once per placeholder.
#[test]
fn placeholders_are_not_compared_by_other_rules() {
    let path = "testdata/rules/unresolved-placeholder/fires-compared-fields.yaml";
    let outcome = common::lint_fixture(path);
    let others: Vec<(&str, String)> = outcome
        .findings
        .iter()
        .filter(|finding| {
            finding.rule != "unresolved-placeholder"
                && finding.severity != infergate::engine::finding::Severity::Info
        })
        .map(|finding| (finding.rule, finding.message.clone()))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    let placeholders = outcome
        .findings
        .iter()
        .filter(|finding| finding.rule == "unresolved-placeholder")
        .count();
    assert!(placeholders >= 8, "{placeholders}");
}
