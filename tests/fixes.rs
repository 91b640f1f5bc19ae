//! Fixes are RFC 6902 patches that apply to the objects they were made for
//! and make the finding go away.

mod common;

use infergate::engine::finding::Finding;
use infergate::input::loader::Loaded;
use infergate::rules;

/// Apply every fix of `rule` to a copy of the input.
fn apply_fixes(loaded: &Loaded, findings: &[&Finding]) -> Loaded {
    let mut objects = loaded.objects.clone();
    for finding in findings {
        let Some(fix) = &finding.fix else { continue };
        let index = finding
            .object_index
            .expect("rule findings name their object");
        json_patch::patch(&mut objects[index].value, &fix.patch.0)
            .unwrap_or_else(|error| panic!("{}: patch does not apply: {error}", finding.message));
        for related in &fix.related {
            json_patch::patch(&mut objects[related.object_index].value, &related.patch.0)
                .unwrap_or_else(|error| {
                    panic!("{}: related patch does not apply: {error}", finding.message)
                });
        }
    }
    // The patched values are read again as objects, as the fix loop and the
    // webhook do: a patch may change the apiVersion.
    let objects = objects
        .into_iter()
        .map(|object| {
            infergate::input::object::Object::from_value(
                object.value,
                object.source,
                object.document,
                object.base_pointer,
                object.positions,
            )
            .expect("a patched object is still an object")
        })
        .collect();
    Loaded {
        files: loaded.files.clone(),
        objects,
        documents: loaded.documents.clone(),
        problems: loaded.problems.clone(),
    }
}

#[test]
fn fixes_apply_and_resolve_their_findings() {
    let mut fixed_some = 0;
    for rule in rules::registry() {
        let meta = rule.meta();
        for (path, _) in common::rule_fixtures(meta.id) {
            let loaded = common::load(&[&path]);
            let outcome = common::run_fixture(&path, &loaded);
            let with_fix: Vec<&Finding> = outcome
                .findings
                .iter()
                .filter(|finding| finding.rule == meta.id && finding.fix.is_some())
                .collect();
            if with_fix.is_empty() {
                continue;
            }
            assert!(
                meta.fixable,
                "{}: offers fixes but is declared unfixable",
                meta.id
            );
            let patched = apply_fixes(&loaded, &with_fix);
            let after = common::run_fixture(&path, &patched);
            for finding in &with_fix {
                let remains = after.findings.iter().any(|other| {
                    other.rule == finding.rule
                        && other.object == finding.object
                        && other.pointer == finding.pointer
                        && other.message == finding.message
                });
                assert!(!remains, "{path}: fix did not resolve: {}", finding.message);
                fixed_some += 1;
            }
            // A second run finds nothing more to fix for this rule.
            let again: Vec<_> = after
                .findings
                .iter()
                .filter(|finding| finding.rule == meta.id && finding.fix.is_some())
                .map(|finding| finding.message.clone())
                .collect();
            assert!(
                again.is_empty(),
                "{path}: fixes are not idempotent: {again:?}"
            );
        }
    }
    assert!(fixed_some >= 8, "only {fixed_some} fixes were exercised");
}

/// The fix of the first metric-name-lowercase finding in a fixture.
fn lowercase_fix(path: &str) -> infergate::engine::finding::Fix {
    common::lint(&[path])
        .findings
        .into_iter()
        .find(|finding| finding.rule == "metric-name-lowercase")
        .and_then(|finding| finding.fix)
        .expect("the rule fires with a fix")
}

#[test]
fn the_dcgm_fix_relabels_the_exporter_and_is_safe() {
    let fix = lowercase_fix("testdata/rules/metric-name-lowercase/fires-with-podmonitoring.yaml");
    assert_eq!(
        fix.applicability,
        infergate::engine::finding::Applicability::Safe
    );
    assert_eq!(fix.related.len(), 1);
    let patch = serde_json::to_value(&fix.related[0].patch).expect("patch serialises");
    assert_eq!(
        patch,
        serde_json::json!([{
            "op": "add",
            "path": "/spec/endpoints/0/metricRelabeling",
            "value": [{
                "action": "replace",
                "sourceLabels": ["__name__"],
                "targetLabel": "__name__",
                "regex": "DCGM_FI_DEV_GPU_UTIL",
                "replacement": "dcgm_fi_dev_gpu_util"
            }]
        }])
    );
}

#[test]
fn without_the_exporter_the_rename_is_unsafe() {
    let fix = lowercase_fix("testdata/rules/metric-name-lowercase/fires.yaml");
    assert_eq!(
        fix.applicability,
        infergate::engine::finding::Applicability::Unsafe
    );
    assert!(fix.related.is_empty());
}

/// A namespace filter that names a label the series do not carry matches
/// nothing: an HPA with no metric. For every External-metric finding of
/// the fixtures, the label the fix adds is the one rules/metrics.yaml
/// names for that series, and a fix on a series not known to carry the
/// workload's namespace there is never safe.
#[test]
fn namespace_filter_fixes_use_the_series_own_label() {
    use infergate::engine::finding::Applicability;
    let policy = infergate::policy::Policy::built_in().expect("policy");
    let mut checked = 0;
    for (path, _) in common::all_rule_fixtures() {
        let loaded = common::load(&[&path]);
        let outcome = common::run_fixture(&path, &loaded);
        for finding in outcome
            .findings
            .iter()
            .filter(|finding| finding.rule == "external-metric-namespace-filter")
        {
            let Some(fix) = &finding.fix else { continue };
            let object = &loaded.objects[finding.object_index.expect("object")];
            let name_pointer = format!("{}/name", finding.pointer.trim_end_matches("/name"));
            let Some(name) = object.value.pointer(&name_pointer).and_then(|v| v.as_str()) else {
                continue;
            };
            let mapping = policy
                .external_metrics
                .namespace_labels
                .iter()
                .find(|mapping| mapping.pattern.is_match(name))
                .expect("a mapping for the series");
            let patch = serde_json::to_string(&fix.patch).expect("json");
            if fix.description.starts_with("add `") {
                assert!(
                    patch.contains(&mapping.label.replace('/', "~1")),
                    "{path}: {name}: {patch} does not add {}",
                    mapping.label
                );
                let known = !mapping.scraped_from_pod
                    || infergate::k8s::metrics::classify(name, &policy).is_some();
                if !known {
                    assert_eq!(fix.applicability, Applicability::Unsafe, "{path}: {name}");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3,
        "only {checked} namespace filter fixes checked"
    );
}

/// (rule, object) of the findings a lint reports, suppressed ones left
/// out: a rule that reports an object after a fix and not before is what
/// the fix caused (a finding that moves to another field, as a converted
/// HPA's does, is the same finding).
fn finding_keys(outcome: &infergate::engine::Outcome) -> std::collections::BTreeSet<String> {
    outcome
        .findings
        .iter()
        .filter(|finding| finding.suppressed.is_none())
        .map(|finding| {
            let object = finding
                .object
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            format!("{} {object}", finding.rule)
        })
        .collect()
}

/// Every fix leaves the object better: after `--fix --unsafe-fixes` a
/// second lint reports nothing the fixes caused, on every fixture, every
/// fix triple and every file of ../shared/corpus.
#[test]
fn fixing_everything_causes_no_new_finding() {
    use infergate::engine::{ClusterFacts, Engine};
    use infergate::fix::{self, FixOptions};
    let mut paths: Vec<String> = common::all_rule_fixtures()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let corpus = common::shared_corpus("fixing_everything_causes_no_new_finding");
    let mut directories = vec![common::root().join("testdata/fix")];
    directories.extend(corpus);
    for directory in directories {
        let mut found = Vec::new();
        common::yaml_files(&directory, &mut found);
        paths.extend(
            found
                .into_iter()
                .filter(|path| !path.to_string_lossy().ends_with(".fixed.yaml"))
                .map(|path| path.display().to_string()),
        );
    }
    let mut fixed_files = 0;
    let mut caused = Vec::new();
    for path in &paths {
        let policy = common::fixture_policy(path);
        let engine = Engine::new(policy);
        let loaded = common::load(&[path]);
        let before = finding_keys(&engine.run(&loaded, &ClusterFacts::default()));
        let result = fix::fix_sources(
            &engine,
            loaded.files.clone(),
            &ClusterFacts::default(),
            FixOptions { unsafe_fixes: true },
        );
        let changed: Vec<_> = result.files.iter().filter(|file| file.changed()).collect();
        if changed.is_empty() {
            continue;
        }
        fixed_files += 1;
        let sources = result
            .files
            .iter()
            .map(|file| file.original.with_text(file.text.clone()))
            .collect();
        let after = finding_keys(&engine.run(
            &infergate::input::loader::parse_all(sources),
            &ClusterFacts::default(),
        ));
        for key in after.difference(&before) {
            caused.push(format!("{path}: {key}"));
        }
    }
    assert!(fixed_files >= 20, "only {fixed_files} files were fixed");
    assert!(
        caused.is_empty(),
        "findings the fixes caused:\n{}",
        caused.join("\n")
    );
}
