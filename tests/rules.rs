//! Every rule fires on its `fires*.yaml` fixtures and stays quiet on its
//! `quiet*.yaml` ones; the findings are pinned by snapshots.

mod common;

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
