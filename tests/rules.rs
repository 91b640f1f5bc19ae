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

/// A finding as the report shows it, for comparing two runs.
fn shown(finding: &infergate::engine::finding::Finding) -> String {
    serde_json::json!({
        "file": finding.file(),
        "offset": finding.location.offset,
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "pointer": finding.pointer,
        "object": finding.object,
        "fix": finding.fix,
        "suppressed": finding.suppressed,
        "exempted": finding.exempted,
        "inference": finding.inference,
    })
    .to_string()
}

/// A lint a batch of applications at a time (each batch's objects dropped
/// before the next is read) finds exactly what one run over everything
/// finds, in the same order: on every fixture, the bundled examples and
/// the real corpus, with each application alone and with applications
/// gathered into batches.
#[test]
fn a_lint_by_batches_of_applications_finds_what_one_run_finds() {
    use infergate::input::loader::Input;
    std::env::set_current_dir(common::root()).expect("crate root");
    let mut inputs = vec![
        Input::File("testdata/rules".into()),
        Input::File("testdata/examples".into()),
    ];
    if let Some(corpus) =
        common::shared_corpus("a_lint_by_batches_of_applications_finds_what_one_run_finds")
    {
        inputs.push(Input::File(corpus));
    }
    let sources = infergate::input::loader::read_sources(&inputs).expect("readable");
    let engine = infergate::engine::Engine::new(
        infergate::policy::Policy::built_in().expect("built-in policy"),
    );
    let facts = infergate::engine::ClusterFacts::default();
    let whole = engine.run(
        &infergate::input::loader::parse_all(sources.clone()),
        &facts,
    );
    let expected: Vec<String> = whole.findings.iter().map(shown).collect();
    assert!(expected.len() > 100, "the fixtures have findings");
    for batch_bytes in [1, 64 * 1024] {
        let mut batches = 0;
        let mut found = Vec::new();
        let mut summary = infergate::engine::Summary::default();
        let pending = sources
            .iter()
            .cloned()
            .map(infergate::input::loader::Pending::Read)
            .collect();
        engine.run_by_application(pending, &facts, batch_bytes, |_, outcome| {
            batches += 1;
            found.extend(outcome.findings.iter().map(shown));
            summary.add(&outcome.summary);
            std::ops::ControlFlow::Continue(())
        });
        assert!(batches > 5, "{batches} batches of {batch_bytes} bytes");
        assert_eq!(found, expected, "batches of {batch_bytes} bytes");
        assert_eq!(summary, whole.summary);
    }
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

/// Where the pod template of a Deployment goes in each kind that also runs
/// model servers (rules/workloads.yaml), and the pointer under which a
/// finding about it must then be reported.
fn transplant(kind: &str, deployment: &serde_json::Value) -> Option<(serde_json::Value, String)> {
    use serde_json::json;
    let template = deployment.pointer("/spec/template")?.clone();
    let spec = template.get("spec")?.clone();
    let metadata = json!({"name": deployment.pointer("/metadata/name")?.clone(),
        "namespace": deployment.pointer("/metadata/namespace").cloned().unwrap_or(json!("default"))});
    let replicas = deployment
        .pointer("/spec/replicas")
        .filter(|replicas| replicas.is_u64())
        .cloned()
        .unwrap_or(json!(1));
    let head = json!({"rayStartParams": {}, "template": {"spec": {"containers": [
        {"name": "ray-head", "image": "rayproject/ray:2.9.0"}]}}});
    let worker = json!({"groupName": "gpu", "replicas": replicas, "rayStartParams": {},
        "template": template});
    Some(match kind {
        "RayCluster" => (
            json!({"apiVersion": "ray.io/v1", "kind": kind, "metadata": metadata,
                "spec": {"headGroupSpec": head, "workerGroupSpecs": [worker]}}),
            "/spec/workerGroupSpecs/0/template".into(),
        ),
        "RayService" => (
            json!({"apiVersion": "ray.io/v1", "kind": kind, "metadata": metadata,
                "spec": {"rayClusterConfig": {"headGroupSpec": head, "workerGroupSpecs": [worker]}}}),
            "/spec/rayClusterConfig/workerGroupSpecs/0/template".into(),
        ),
        // Groups of one pod, as a Deployment's are: a group of several
        // shares its parallel degree and its leader's address, which the
        // LeaderWorkerSet fixtures of those rules cover.
        "LeaderWorkerSet" => (
            json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": kind, "metadata": metadata,
                "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": 1,
                    "leaderTemplate": template.clone(), "workerTemplate": template}}}),
            "/spec/leaderWorkerTemplate/leaderTemplate".into(),
        ),
        "InferenceService" => {
            let mut predictor = spec;
            predictor["minReplicas"] = replicas;
            (
                json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": kind, "metadata": metadata,
                    "spec": {"predictor": predictor}}),
                "/spec/predictor".into(),
            )
        }
        // Its template is a bare pod spec the controller merges with the
        // well-known presets (rules/workloads.yaml mergedWithPresets).
        "LLMInferenceService" => (
            json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata,
                "spec": {"replicas": replicas, "template": spec}}),
            "/spec/template".into(),
        ),
        "ServingRuntime" => {
            let mut runtime = spec;
            runtime["supportedModelFormats"] = json!([{"name": "custom"}]);
            (
                json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata,
                    "spec": runtime}),
                "/spec".into(),
            )
        }
        _ => return None,
    })
}

/// The kinds every pod-template rule reads as it reads a Deployment.
const TEMPLATE_KINDS: &[&str] = &[
    "RayCluster",
    "RayService",
    "LeaderWorkerSet",
    "InferenceService",
    "ServingRuntime",
    "LLMInferenceService",
];

/// Where a finding at `pointer` of a Deployment's template is in `kind`'s
/// template at `under`. KServe's kinds keep a pod spec without the pods'
/// metadata: a finding about the labels has no place there.
fn moved_pointer(kind: &str, under: &str, pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix("/spec/template")?;
    match kind {
        "InferenceService" | "ServingRuntime" | "LLMInferenceService" => {
            let inner = rest.strip_prefix("/spec")?;
            (inner.is_empty() || inner.starts_with('/')).then(|| format!("{under}{inner}"))
        }
        _ => Some(format!("{under}{rest}")),
    }
}

/// Rules that read more than the pod template in a kind, and why the
/// Deployment's findings do not carry over there.
const NOT_CARRIED: &[(&str, &str, &str)] = &[
    (
        "service-env-collision",
        "InferenceService",
        "Knative turns Service links off in Serverless mode (raw mode has its fixture)",
    ),
    (
        "service-env-collision",
        "ServingRuntime",
        "its pods are an InferenceService's, in a mode it does not know",
    ),
    // KServe's well-known LLMInferenceServiceConfig presets, merged under
    // the template, add probes, /dev/shm and a model cache to `main`.
    (
        "model-server-readiness",
        "LLMInferenceService",
        "the presets add a readiness probe",
    ),
    (
        "model-server-startup-probe",
        "LLMInferenceService",
        "the presets add a startup probe",
    ),
    (
        "tensor-parallel-needs-shm",
        "LLMInferenceService",
        "the presets mount /dev/shm",
    ),
    (
        "hf-home-shm-for-large-models",
        "LLMInferenceService",
        "the presets set the model cache",
    ),
    (
        "model-server-readiness",
        "InferenceService",
        "KServe makes the Service in front of a predictor",
    ),
    (
        "model-server-readiness",
        "ServingRuntime",
        "KServe makes the Service in front of a predictor",
    ),
    (
        "schema-strict",
        "ServingRuntime",
        "a ServingRuntime's pod spec has a subset of PodSpec's fields",
    ),
    (
        "xla-cache-single-writer",
        "ServingRuntime",
        "a runtime has no replicas: the InferenceServices using it do",
    ),
    (
        "shared-cache-access-mode",
        "ServingRuntime",
        "a runtime has no replicas: the InferenceServices using it do",
    ),
];

/// A fixture with its Deployments moved into `kind` (the rest unchanged;
/// autoscalers of a Deployment retargeted where the kind has a scale
/// subresource): the new file, the pointer under which the moved template
/// sits, and the moved objects' names. `None` when the fixture says
/// nothing about `kind`.
struct Transplanted {
    moved: infergate::input::loader::Loaded,
    under: String,
    names: Vec<String>,
}

fn transplant_fixture(
    path: &str,
    loaded: &infergate::input::loader::Loaded,
    kind: &str,
) -> Option<Transplanted> {
    // An autoscaler of a Deployment follows it into a kind with a scale
    // subresource (LeaderWorkerSet); the other kinds scale by their own
    // fields, so such a fixture says nothing about them.
    let autoscaled = loaded.objects.iter().any(|object| {
        matches!(object.kind(), "HorizontalPodAutoscaler" | "ScaledObject")
            && object.value.pointer("/spec/scaleTargetRef").is_some()
    });
    if autoscaled && kind != "LeaderWorkerSet" {
        return None;
    }
    let mut under = String::new();
    let mut documents = Vec::new();
    let mut names = Vec::new();
    for object in &loaded.objects {
        match (object.kind(), transplant(kind, &object.value)) {
            ("Deployment", Some((moved, at))) => {
                under = at;
                names.push(object.name().unwrap_or_default().to_string());
                documents.push(moved);
            }
            ("HorizontalPodAutoscaler" | "ScaledObject", _) => {
                let mut autoscaler = object.value.clone();
                if let Some(target) = autoscaler.pointer_mut("/spec/scaleTargetRef") {
                    if target.get("kind").is_none_or(|k| k == "Deployment") {
                        target["kind"] = serde_json::json!(kind);
                        target["apiVersion"] = serde_json::json!("leaderworkerset.x-k8s.io/v1");
                    }
                }
                documents.push(autoscaler);
            }
            _ => documents.push(object.value.clone()),
        }
    }
    let text = documents
        .iter()
        .map(|document| {
            infergate::fix::emit::document(
                document,
                infergate::fix::emit::Layout {
                    indent: 2,
                    indent_sequences: true,
                    newline: "\n",
                },
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let moved = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        format!("{path} as {kind}"),
        text,
    ));
    Some(Transplanted {
        moved,
        under,
        names,
    })
}

/// The kinds a fixture of `rule` is moved into.
fn carried_kinds(rule: &str) -> impl Iterator<Item = &'static str> + '_ {
    TEMPLATE_KINDS.iter().copied().filter(move |kind| {
        !NOT_CARRIED
            .iter()
            .any(|(not_rule, not_in, _)| *not_rule == rule && not_in == kind)
    })
}

/// The findings of `rule` on the objects named `names` of kind `kind`
/// (the Deployments, or what they became), by (name, pointer).
fn findings_on(
    outcome: &infergate::engine::Outcome,
    objects: &[infergate::input::object::Object],
    rule: &str,
    kind: &str,
    names: Option<&[String]>,
) -> Vec<(String, String)> {
    outcome
        .findings
        .iter()
        .filter(|finding| finding.rule == rule)
        .filter_map(|finding| {
            let object = finding.object_index.and_then(|index| objects.get(index))?;
            let name = object.name().unwrap_or_default().to_string();
            (object.kind() == kind && names.is_none_or(|names| names.contains(&name)))
                .then(|| (name, finding.pointer.clone()))
        })
        .collect()
}

/// The findings (rule, object name, pointer) on the objects named
/// `names` of `kind` that the second outcome has and the first had not.
fn introduced(
    (before, objects_before): (
        &infergate::engine::Outcome,
        &[infergate::input::object::Object],
    ),
    (after, objects_after): (
        &infergate::engine::Outcome,
        &[infergate::input::object::Object],
    ),
    kind: &str,
    names: &[String],
) -> Vec<(String, String, String)> {
    let all = |outcome: &infergate::engine::Outcome,
               objects: &[infergate::input::object::Object]| {
        outcome
            .findings
            .iter()
            .filter_map(|finding| {
                let object = finding.object_index.and_then(|index| objects.get(index))?;
                let name = object.name().unwrap_or_default().to_string();
                (object.kind() == kind && names.contains(&name))
                    .then(|| (finding.rule.to_string(), name, finding.pointer.clone()))
            })
            .collect::<Vec<_>>()
    };
    let was = all(before, objects_before);
    all(after, objects_after)
        .into_iter()
        .filter(|item| !was.contains(item))
        .collect()
}

/// The findings of `rule` inside the moved template.
fn inside_moved(
    outcome: &infergate::engine::Outcome,
    transplanted: &Transplanted,
    objects: &[infergate::input::object::Object],
    rule: &str,
    kind: &str,
) -> Vec<(String, String)> {
    findings_on(outcome, objects, rule, kind, Some(&transplanted.names))
        .into_iter()
        .filter(|(_, pointer)| pointer.starts_with(&transplanted.under))
        .collect()
}

/// Findings on a Deployment's template, placed where the template went.
fn moved_to(findings: Vec<(String, String)>, kind: &str, under: &str) -> Vec<(String, String)> {
    findings
        .into_iter()
        .filter_map(|(name, pointer)| {
            moved_pointer(kind, under, &pointer).map(|pointer| (name, pointer))
        })
        .collect()
}

fn fixtures_with_deployments(rule: &str) -> Vec<(String, infergate::input::loader::Loaded)> {
    common::rule_fixtures(rule)
        .into_iter()
        .map(|(path, _)| path)
        .chain(
            std::iter::once(format!("testdata/fix/{rule}.yaml"))
                .filter(|path| common::root().join(path).is_file()),
        )
        .filter_map(|path| {
            let loaded = common::load(&[path.as_str()]);
            loaded
                .objects
                .iter()
                .any(|object| object.kind() == "Deployment")
                .then_some((path, loaded))
        })
        .collect()
}

/// Every rule that reads a Deployment's pod template reads the same
/// template in each kind that runs model servers: each fixture's
/// Deployments moved into RayCluster and RayService worker groups, a
/// LeaderWorkerSet's workers, a KServe predictor, a ServingRuntime and an
/// LLMInferenceService (the rest of the fixture unchanged) give the same
/// findings of the rule, at the same place inside the new kind's template,
/// and no others there.
#[test]
fn pod_template_rules_read_every_kind_that_serves() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for rule in rules::registry() {
        let id = rule.meta().id;
        for (path, loaded) in fixtures_with_deployments(id) {
            let policy = common::fixture_policy(&path);
            let engine = infergate::engine::Engine::new(std::sync::Arc::clone(&policy));
            let facts = infergate::engine::ClusterFacts::default();
            let original = engine.run(&loaded, &facts);
            for kind in carried_kinds(id) {
                let Some(transplanted) = transplant_fixture(&path, &loaded, kind) else {
                    continue;
                };
                let moved = &transplanted.moved;
                let outcome = engine.run(moved, &facts);
                let expected = moved_to(
                    findings_on(&original, &loaded.objects, id, "Deployment", None),
                    kind,
                    &transplanted.under,
                );
                let found = inside_moved(&outcome, &transplanted, &moved.objects, id, kind);
                checked += 1;
                let name = format!("{path} as {kind}");
                for missing in expected.iter().filter(|item| !found.contains(item)) {
                    failures.push(format!("{name}: {id} not at {missing:?}"));
                }
                for extra in found.iter().filter(|item| !expected.contains(item)) {
                    failures.push(format!("{name}: {id} also at {extra:?}"));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} transplants");
    assert!(
        failures.is_empty(),
        "{} failures in {checked} transplants:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What `--fix` (with unsafe fixes) resolves of a rule's findings on a
/// Deployment it resolves on the same template moved into each kind that
/// serves: the findings left after fixing are the same, moved, and the
/// fixes leave no more findings of any rule on the moved objects than
/// there were (a fix that adds a field the kind does not have would).
#[test]
fn fixes_reach_the_template_of_every_kind_that_serves() {
    use infergate::fix::{self, FixOptions};
    let mut failures = Vec::new();
    let mut checked = 0;
    let options = FixOptions { unsafe_fixes: true };
    for rule in rules::registry().iter().filter(|rule| rule.meta().fixable) {
        let id = rule.meta().id;
        for (path, loaded) in fixtures_with_deployments(id) {
            let policy = common::fixture_policy(&path);
            let engine = infergate::engine::Engine::new(std::sync::Arc::clone(&policy));
            let facts = infergate::engine::ClusterFacts::default();
            let fixed_and_run = |loaded: &infergate::input::loader::Loaded| {
                let result = fix::fix_sources(&engine, loaded.files.clone(), &facts, options);
                let sources = result
                    .files
                    .into_iter()
                    .map(|file| file.original.with_text(file.text))
                    .collect();
                let after = infergate::input::loader::parse_all(sources);
                let outcome = engine.run(&after, &facts);
                (after, outcome, result.applied)
            };
            let before = engine.run(&loaded, &facts);
            if findings_on(&before, &loaded.objects, id, "Deployment", None).is_empty() {
                continue;
            }
            let (after, deployments_after, _) = fixed_and_run(&loaded);
            let left_on_deployments =
                findings_on(&deployments_after, &after.objects, id, "Deployment", None);
            for kind in carried_kinds(id) {
                let Some(transplanted) = transplant_fixture(&path, &loaded, kind) else {
                    continue;
                };
                let (moved, under, names) = (
                    &transplanted.moved,
                    &transplanted.under,
                    &transplanted.names,
                );
                let moved_before = engine.run(moved, &facts);
                if inside_moved(&moved_before, &transplanted, &moved.objects, id, kind).is_empty() {
                    continue;
                }
                let (moved_after, outcome, applied) = fixed_and_run(moved);
                let name = format!("{path} as {kind}");
                checked += 1;
                if applied == 0 {
                    failures.push(format!("{name}: no fix applied for {id}"));
                    continue;
                }
                let expected = moved_to(left_on_deployments.clone(), kind, under);
                let left = inside_moved(&outcome, &transplanted, &moved_after.objects, id, kind);
                for extra in left.iter().filter(|item| !expected.contains(item)) {
                    failures.push(format!("{name}: {id} still at {extra:?} after --fix"));
                }
                // What the fixes brought on the moved objects that they did
                // not bring on the Deployments.
                let introduced_here: Vec<(String, String, String)> = introduced(
                    (&moved_before, &moved.objects),
                    (&outcome, &moved_after.objects),
                    kind,
                    names,
                );
                let introduced_there: Vec<(String, String, String)> = introduced(
                    (&before, &loaded.objects),
                    (&deployments_after, &after.objects),
                    "Deployment",
                    names,
                )
                .into_iter()
                .filter_map(|(rule, object, pointer)| {
                    moved_pointer(kind, under, &pointer).map(|pointer| (rule, object, pointer))
                })
                .collect();
                for new in introduced_here
                    .iter()
                    .filter(|item| !introduced_there.contains(item))
                {
                    failures.push(format!("{name}: --fix for {id} brought {new:?}"));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} transplanted fixes");
    assert!(
        failures.is_empty(),
        "{} failures in {checked} transplanted fixes:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
