//! `infergate audit` against a stand-in apiserver (tests/common/apiserver.rs):
//! listing with discovery and paging, findings placed by object, cluster
//! facts from Nodes, HPA status, PolicyReports printed and written.

#[path = "common/apiserver.rs"]
mod apiserver;
mod common;

use std::process::Output;

use serde_json::{json, Value};

use apiserver::Shared;

fn cluster_objects() -> Vec<Value> {
    apiserver::objects_of(&common::root().join("testdata/audit/cluster.yaml"))
}

/// Run `infergate audit` against the store; the stand-in runs on this
/// test's runtime while the binary runs in a blocking thread.
async fn audit(store: &Shared, args: &[&str]) -> Output {
    let addr = apiserver::serve(std::sync::Arc::clone(store)).await;
    let kubeconfig = apiserver::kubeconfig_for(addr);
    let mut full = vec![
        "audit".to_string(),
        format!("--kubeconfig={}", kubeconfig.path().display()),
        "--color=never".to_string(),
    ];
    full.extend(args.iter().map(|arg| arg.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(&full)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAMESPACE")
            .output()
            .expect("run infergate")
    })
    .await
    .expect("join");
    drop(kubeconfig);
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn findings(output: &Output) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("JSON: {error}\n{}\n{}", stdout(output), stderr(output)));
    report["findings"].as_array().cloned().unwrap_or_default()
}

fn rules_on(findings: &[Value], kind: &str, name: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|finding| finding["object"]["kind"] == kind && finding["object"]["name"] == name)
        .map(|finding| finding["rule"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The YAML documents of a PolicyReport stream.
fn documents(text: &str) -> Vec<Value> {
    let source = infergate::input::source::SourceFile::new("reports.yaml", text.to_string());
    infergate::input::loader::parse_source(source)
        .objects
        .into_iter()
        .map(|object| object.value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_mistakes_are_found_in_the_cluster_with_their_identity() {
    let store = apiserver::store(cluster_objects(), &[]);
    let output = audit(&store, &["-A", "--format=json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let found = findings(&output);
    // Seed 000: the uppercase metric, and the HPA's own status that says it
    // cannot read it, naming the rule that explains why.
    let gemma = rules_on(&found, "HorizontalPodAutoscaler", "gemma-hpa");
    assert!(
        gemma.contains(&"metric-name-lowercase".to_string()),
        "{gemma:?}"
    );
    let status = found
        .iter()
        .find(|finding| finding["rule"] == "hpa-status-unhealthy")
        .expect("hpa-status-unhealthy");
    assert_eq!(status["pointer"], "/status/conditions/1/reason");
    assert_eq!(status["field"], "status.conditions[1].reason");
    assert!(status["help"].as_str().is_some_and(
        |help| help.contains("metric-name-lowercase") && help.contains("no metrics returned")
    ));
    // Seed 001: a 405B model without HF_HOME.
    let large = rules_on(&found, "Deployment", "vllm-llama-405b");
    assert!(
        large.contains(&"hf-home-shm-for-large-models".to_string()),
        "{large:?}"
    );
    // Seed 003: 4 x 8 chips against the 16 chips the two TPU Nodes offer.
    let pool = found
        .iter()
        .find(|finding| finding["rule"] == "max-replicas-chip-pool")
        .expect("max-replicas-chip-pool from the Nodes' pool");
    assert_eq!(pool["object"]["name"], "jetstream-hpa");
    assert_eq!(pool["pointer"], "/spec/maxReplicas");
    let message = pool["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("32 chips") && message.contains("16"),
        "{message}"
    );
    // Placed by object: no file, no line.
    for finding in &found {
        assert!(
            finding["file"].is_null() && finding["line"].is_null(),
            "{finding}"
        );
        assert!(finding["object"]["name"].is_string(), "{finding}");
    }
    // -A includes kube-system.
    assert!(!rules_on(&found, "HorizontalPodAutoscaler", "system-hpa").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_exclusions_apply_by_default() {
    let mut objects = cluster_objects();
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "serving", "labels": {"infergate.dev/webhook": "exclude"}}}));
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["--format=json"]).await;
    let found = findings(&output);
    assert!(rules_on(&found, "HorizontalPodAutoscaler", "system-hpa").is_empty());
    // The namespace labelled to opt out is left out too.
    assert!(rules_on(&found, "Deployment", "vllm-llama-405b").is_empty());
    assert!(!rules_on(&found, "HorizontalPodAutoscaler", "gemma-hpa").is_empty());
    // ... and named, so that an opt-out is never invisible.
    assert!(
        stderr(&output).contains(
            "note: namespaces opted out of the webhook (infergate.dev/webhook=exclude, not audited; -A audits them): serving"
        ),
        "{}",
        stderr(&output)
    );
    let output = audit(&store, &["-A", "--format=json"]).await;
    assert!(!rules_on(&findings(&output), "Deployment", "vllm-llama-405b").is_empty());
    assert!(
        stderr(&output).contains("infergate.dev/webhook=exclude, audited here): serving"),
        "{}",
        stderr(&output)
    );
    // One namespace: only its objects.
    let output = audit(&store, &["-n", "serving", "--format=json"]).await;
    let found = findings(&output);
    assert!(
        found
            .iter()
            .all(|finding| finding["object"]["namespace"] == "serving"),
        "{found:?}"
    );
    assert!(!found.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_read_page_by_page() {
    // 1,234 Deployments: three pages of at most 500.
    let mut objects = cluster_objects();
    for index in 0..1234 {
        objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("web-{index}"), "namespace": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
    }
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["-A", "--format=json"]).await;
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let deployments = 1234 + 3;
    let hpas = 3;
    assert_eq!(
        report["summary"]["objects"],
        deployments + hpas,
        "{}",
        stderr(&output)
    );
    assert_eq!(report["summary"]["files"], 0);
    let requests = store.lock().expect("store").requests.clone();
    let pages: Vec<&String> = requests
        .iter()
        .filter(|request| request.starts_with("GET /apis/apps/v1/deployments?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages.iter().all(|page| page.contains("limit=500")),
        "{pages:?}"
    );
    assert!(pages[1].contains("continue=500") && pages[2].contains("continue=1000"));
    // ConfigMaps are asked for by the adapter's label only.
    assert!(
        requests
            .iter()
            .any(|request| request.starts_with("GET /api/v1/configmaps?")
                && request.contains("labelSelector=app.kubernetes.io%2Fname%3Dprometheus-adapter")),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_cluster_does_not_serve_is_skipped_and_said_once() {
    let mut objects = cluster_objects();
    objects.push(
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "never-read", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "tgi-gemma-deployment"}, "triggers": []}}),
    );
    let store = apiserver::store(
        objects,
        &["keda.sh/v1alpha1", "leaderworkerset.x-k8s.io/v1"],
    );
    let output = audit(&store, &["-A", "--format=json"]).await;
    let errors = stderr(&output);
    assert_eq!(
        errors.matches("not served by this cluster").count(),
        1,
        "{errors}"
    );
    assert!(
        errors.contains("ScaledObject (keda.sh/v1alpha1)") && errors.contains("LeaderWorkerSet"),
        "{errors}"
    );
    // The audit still ran, and its exit code is the findings'.
    assert_eq!(output.status.code(), Some(1));
    assert!(!findings(&output).is_empty());
    let requests = store.lock().expect("store").requests.clone();
    assert!(
        !requests
            .iter()
            .any(|request| request.contains("/scaledobjects")),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_pinned_at_its_maximum_in_a_full_pool_is_reported_with_the_pool() {
    let mut objects = cluster_objects();
    for object in &mut objects {
        if object["metadata"]["name"] == "jetstream-hpa" {
            object["spec"]["maxReplicas"] = json!(2);
            object["status"] = json!({"currentReplicas": 2, "desiredReplicas": 2, "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
                {"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas",
                 "message": "the desired replica count is more than the maximum replica count"}]});
        }
    }
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["--format=json", "--fail-on=never"]).await;
    let found = findings(&output);
    let pinned = found
        .iter()
        .find(|finding| {
            finding["rule"] == "hpa-status-unhealthy"
                && finding["object"]["name"] == "jetstream-hpa"
        })
        .unwrap_or_else(|| panic!("pinned HPA not reported: {found:?}"));
    assert_eq!(pinned["pointer"], "/status/conditions/2/reason");
    let text = format!("{} {}", pinned["message"], pinned["help"]);
    assert!(
        text.contains("16 chips") && text.contains("2 replicas of 8"),
        "{text}"
    );
    assert_eq!(output.status.code(), Some(0));
}

/// Each report against testdata/schemas/policyreport-v1alpha2.json.
fn assert_follow_the_schema(reports: &[Value]) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::root().join("testdata/schemas/policyreport-v1alpha2.json"),
        )
        .expect("schema"),
    )
    .expect("schema JSON");
    for report in reports {
        let definition = match report["kind"].as_str() {
            Some("PolicyReport") => &schema["definitions"]["PolicyReport"],
            Some("ClusterPolicyReport") => &schema["definitions"]["ClusterPolicyReport"],
            other => panic!("unexpected kind {other:?}"),
        };
        let mut document = definition.clone();
        document["definitions"] = schema["definitions"].clone();
        let validator = jsonschema::validator_for(&document).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(report)
            .map(|error| error.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{report}");
    }
}

/// As Kyverno's reports do, a checked object with nothing wrong is a
/// `pass`, counted in the summary; a Deployment that serves no model was
/// not infergate's to check and gets no result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_objects_of_the_domain_pass() {
    let mut objects = apiserver::objects_of(
        &common::root().join("testdata/rules/max-replicas-chip-pool/quiet.yaml"),
    );
    objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["-A", "--format=policyreport"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let reports = documents(&stdout(&output));
    assert_follow_the_schema(&reports);
    let in_namespace = |namespace: &str| {
        reports
            .iter()
            .find(|report| report["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("a report in {namespace}: {reports:?}"))
    };
    let default = in_namespace("default");
    let passed: Vec<&str> = default["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["result"] == "pass" && result["policy"] == "infergate")
        .filter_map(|result| result["resources"][0]["kind"].as_str())
        .collect();
    assert_eq!(
        passed,
        ["Deployment", "HorizontalPodAutoscaler"],
        "{default}"
    );
    assert_eq!(default["summary"]["pass"], 2, "{default}");
    let web = in_namespace("web");
    assert_eq!(web["results"].as_array().map(Vec::len), Some(0), "{web}");
    assert_eq!(web["summary"]["pass"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reports_follow_the_v1alpha2_schema() {
    let store = apiserver::store(cluster_objects(), &[]);
    let output = audit(&store, &["-A", "--format=policyreport"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let reports = documents(&stdout(&output));
    assert_follow_the_schema(&reports);
    let kinds: Vec<&str> = reports
        .iter()
        .filter_map(|report| report["kind"].as_str())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "ClusterPolicyReport")
            .count(),
        1
    );
    let default = reports
        .iter()
        .find(|report| report["metadata"]["namespace"] == "default")
        .expect("default's report");
    let results = default["results"].as_array().expect("results");
    let lowercase = results
        .iter()
        .find(|result| result["rule"] == "metric-name-lowercase")
        .expect("the uppercase metric");
    assert_eq!(lowercase["result"], "fail");
    assert_eq!(lowercase["policy"], "infergate");
    assert_eq!(lowercase["source"], "infergate");
    assert_eq!(lowercase["resources"][0]["kind"], "HorizontalPodAutoscaler");
    assert_eq!(
        lowercase["resources"][0]["uid"],
        "0b6c1a52-3f0e-4d55-9a2e-000000000002"
    );
    assert_eq!(
        lowercase["properties"]["field"],
        "spec.metrics[0].external.metric.name"
    );
    let pool = results
        .iter()
        .find(|result| result["rule"] == "max-replicas-chip-pool")
        .expect("the pool");
    assert_eq!(
        (pool["result"].as_str(), pool["severity"].as_str()),
        (Some("warn"), Some("medium"))
    );
    let count = |result: &str| {
        results
            .iter()
            .filter(|entry| entry["result"] == result)
            .count()
    };
    assert_eq!(default["summary"]["fail"], count("fail"));
    assert_eq!(default["summary"]["warn"], count("warn"));
    let serving = reports
        .iter()
        .find(|report| report["metadata"]["namespace"] == "serving")
        .expect("serving's report");
    assert!(serving["results"].as_array().is_some_and(|results| results
        .iter()
        .any(|result| result["rule"] == "hf-home-shm-for-large-models")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_reports_replace_the_earlier_ones() {
    let mut objects = cluster_objects();
    // A report of an earlier run in a namespace with nothing left to audit,
    // and another tool's report that must stay.
    objects.push(
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "infergate", "namespace": "gone",
            "labels": {"app.kubernetes.io/managed-by": "infergate"}}, "results": []}),
    );
    objects.push(
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "kyverno", "namespace": "gone",
            "labels": {"app.kubernetes.io/managed-by": "kyverno"}}, "results": []}),
    );
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["--format=json", "--write-reports"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("deleted 1 earlier"),
        "{}",
        stderr(&output)
    );
    let held = store.lock().expect("store");
    let reports: Vec<&Value> = held
        .objects
        .iter()
        .filter(|object| object["apiVersion"] == "wgpolicyk8s.io/v1alpha2")
        .collect();
    let names: Vec<String> = reports
        .iter()
        .map(|report| {
            format!(
                "{}/{}/{}",
                report["kind"].as_str().unwrap_or_default(),
                report["metadata"]["namespace"].as_str().unwrap_or("-"),
                report["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        names.contains(&"PolicyReport/default/infergate".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"PolicyReport/serving/infergate".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"ClusterPolicyReport/-/infergate".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"PolicyReport/gone/kyverno".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"PolicyReport/gone/infergate".to_string()),
        "{names:?}"
    );
    assert!(held
        .field_managers
        .iter()
        .all(|manager| manager == "infergate"));
    assert_eq!(held.field_managers.len(), 3);
}

/// A report whose results are those of the last run is left as it is (no
/// write, so no new resourceVersion for Policy Reporter and other watchers
/// to process); a change in the cluster rewrites only the reports it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_reports_are_not_rewritten() {
    // (written, unchanged) as the audit prints them.
    let counts = |output: &Output| -> (usize, usize) {
        let text = stderr(output);
        let number_before = |marker: &str| {
            text.split(marker)
                .next()
                .and_then(|head| head.split_whitespace().last())
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| panic!("`{marker}` in: {text}"))
        };
        let written = text
            .split("wrote ")
            .nth(1)
            .and_then(|tail| tail.split_whitespace().next())
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("wrote N in: {text}"));
        (written, number_before(" unchanged"))
    };
    let store = apiserver::store(cluster_objects(), &[]);
    let first = audit(&store, &["-A", "--format=json", "--write-reports"]).await;
    let (reports, unchanged) = counts(&first);
    assert!(reports >= 3 && unchanged == 0, "{}", stderr(&first));
    let applied = store.lock().expect("store").field_managers.len();
    assert_eq!(applied, reports);
    let second = audit(&store, &["-A", "--format=json", "--write-reports"]).await;
    assert_eq!(counts(&second), (0, reports), "{}", stderr(&second));
    assert_eq!(store.lock().expect("store").field_managers.len(), applied);
    // One namespace's findings change (its Deployment is suppressed:
    // results `skip` instead of `fail`): only its report is written.
    {
        let mut held = store.lock().expect("store");
        let deployment = held
            .objects
            .iter_mut()
            .find(|object| {
                object["kind"] == "Deployment" && object["metadata"]["namespace"] == "serving"
            })
            .expect("a Deployment in serving");
        deployment["metadata"]["annotations"] =
            json!({"infergate.dev/ignore": "*=benchmark replica, removed next week"});
    }
    let third = audit(&store, &["-A", "--format=json", "--write-reports"]).await;
    assert_eq!(counts(&third), (1, reports - 1), "{}", stderr(&third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_reports_without_the_crd_says_so() {
    let store = apiserver::store(cluster_objects(), &["wgpolicyk8s.io/v1alpha2"]);
    let output = audit(&store, &["--format=json", "--write-reports"]).await;
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.contains("PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed"),
        "{errors}"
    );
    assert!(errors.contains("help:"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_clear_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let kubeconfig = apiserver::kubeconfig_for(addr);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args([
            "audit",
            &format!("--kubeconfig={}", kubeconfig.path().display()),
        ])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.contains("cannot reach the cluster") && errors.contains("help:"),
        "{errors}"
    );
    // The cause in words, not only "client error (Connect)".
    assert!(
        errors.to_lowercase().contains("connection refused"),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_carries_the_objects_identity() {
    let store = apiserver::store(cluster_objects(), &[]);
    let human = stdout(&audit(&store, &["-A"]).await);
    assert!(
        human.contains(
            "--> default/HorizontalPodAutoscaler/gemma-hpa at spec.metrics[0].external.metric.name"
        ),
        "{human}"
    );
    assert!(human.contains("from the cluster"), "{human}");
    let github = stdout(&audit(&store, &["-A", "--format=github"]).await);
    assert!(
        github.lines().all(|line| !line.contains("file=")),
        "{github}"
    );
    assert!(
        github.contains(
            "default/HorizontalPodAutoscaler/gemma-hpa at spec.metrics[0].external.metric.name"
        ),
        "{github}"
    );
    let sarif: Value =
        serde_json::from_slice(&audit(&store, &["-A", "--format=sarif"]).await.stdout)
            .expect("SARIF");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for result in results {
        let logical = &result["locations"][0]["logicalLocations"][0];
        assert!(
            logical["fullyQualifiedName"]
                .as_str()
                .is_some_and(|name| name.contains('/')),
            "{result}"
        );
        assert!(
            result["locations"][0].get("physicalLocation").is_none(),
            "{result}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_never_ends_is_an_error_not_a_hang() {
    let store = apiserver::store(cluster_objects(), &[]);
    store.lock().expect("store").endless = true;
    let output = audit(&store, &["-A", "--format=json"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains("a continue token it had returned before") && errors.contains("incomplete"),
        "{errors}"
    );
    // Each kind stopped at its second page.
    let pages = store
        .lock()
        .expect("store")
        .requests
        .iter()
        .filter(|request| request.starts_with("GET /apis/apps/v1/deployments?"))
        .count();
    assert_eq!(pages, 2);
}

/// What an object suppresses on itself is listed as skipped, with who
/// suppressed it and why: the annotation needs no right to write, so the
/// audit must show what it hides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_findings_are_reported_as_skipped() {
    let mut objects = cluster_objects();
    for object in &mut objects {
        if object["metadata"]["name"] == "gemma-hpa" {
            object["metadata"]["annotations"] =
                json!({"infergate.dev/ignore": "*=relabelled upstream"});
        }
    }
    let store = apiserver::store(objects, &[]);
    let output = audit(&store, &["--format=policyreport"]).await;
    let reports = documents(&stdout(&output));
    let results: Vec<&Value> = reports
        .iter()
        .flat_map(|report| report["results"].as_array().into_iter().flatten())
        .filter(|result| result["resources"][0]["name"] == "gemma-hpa")
        .collect();
    assert!(!results.is_empty(), "{}", stdout(&output));
    for result in &results {
        assert_eq!(result["result"], "skip", "{result}");
        assert_eq!(
            result["properties"]["suppressedBy"],
            "infergate.dev/ignore annotation"
        );
        assert_eq!(
            result["properties"]["suppressionReason"],
            "relabelled upstream"
        );
    }
    let skipped: u64 = reports
        .iter()
        .filter_map(|report| report["summary"]["skip"].as_u64())
        .sum();
    assert_eq!(skipped as usize, results.len());
}

/// Continue tokens that cycle A, B, A… were caught only when the same
/// token came twice in a row (1.6 million objects and 7.7 GB before the
/// page bound): any token seen before ends the list now, at its third page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_tokens_that_cycle_end_the_list() {
    let store = apiserver::store(cluster_objects(), &[]);
    store.lock().expect("store").cycling = true;
    let output = audit(&store, &["-A", "--format=json"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("a continue token it had returned before (A)"),
        "{}",
        stderr(&output)
    );
    let pages = store
        .lock()
        .expect("store")
        .requests
        .iter()
        .filter(|request| request.starts_with("GET /apis/apps/v1/deployments?"))
        .count();
    assert_eq!(pages, 3);
}

/// `--adapter-config-namespaces` reads prometheus-adapter's ConfigMaps in
/// the named namespaces only (so a RoleBinding there is all the audit's
/// account needs), and none when empty; the default reads them everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_configs_are_read_only_where_named() {
    let adapter = |namespace: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "adapter-config", "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "prometheus-adapter"}},
            "data": {"config.yaml": "rules:\n- seriesQuery: 'queue_size'\n  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})\n"}})
    };
    let mut objects = cluster_objects();
    objects.push(adapter("monitoring"));
    objects.push(adapter("tenant"));
    let configmap_requests = |store: &Shared| -> Vec<String> {
        let mut store = store.lock().expect("store");
        let found = store
            .requests
            .iter()
            .filter(|request| request.contains("/configmaps"))
            .cloned()
            .collect();
        store.requests.clear();
        found
    };
    let objects_read = |output: &Output| -> u64 {
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        report["summary"]["objects"].as_u64().expect("a count")
    };
    let store = apiserver::store(objects, &[]);

    let everywhere = audit(&store, &["-A", "--format=json"]).await;
    let requests = configmap_requests(&store);
    assert!(
        requests
            .iter()
            .all(|request| request.starts_with("GET /api/v1/configmaps?")),
        "{requests:?}"
    );

    let named = audit(
        &store,
        &[
            "-A",
            "--format=json",
            "--adapter-config-namespaces=monitoring",
        ],
    )
    .await;
    let requests = configmap_requests(&store);
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|request| request
            .starts_with("GET /api/v1/namespaces/monitoring/configmaps?")
            && request.contains("labelSelector=")),
        "{requests:?}"
    );
    assert_eq!(objects_read(&named) + 1, objects_read(&everywhere));

    let none = audit(
        &store,
        &["-A", "--format=json", "--adapter-config-namespaces="],
    )
    .await;
    assert!(configmap_requests(&store).is_empty());
    assert_eq!(objects_read(&none) + 2, objects_read(&everywhere));
    assert!(stderr(&none).contains("not read"), "{}", stderr(&none));
    assert_eq!(none.status.code(), everywhere.status.code());
}
