//! webhook-deploy/ as an admin installs it: rendered with `kubectl
//! kustomize` (the base and an overlay in another namespace), and the
//! workloads webhooks' matchConditions evaluated with a CEL interpreter on
//! the corpus, against the engine's own inference test.

mod common;

use std::path::Path;
use std::process::Command;

use infergate::policy::Policy;
use serde_json::{json, Value};

/// The objects `kubectl kustomize DIR` renders.
/// Whether kubectl can render here (a fresh clone without it skips the
/// rendering tests, saying so; CI installs it).
fn can_render(test: &str) -> bool {
    common::kubectl(test)
}

fn render(directory: &str) -> Vec<Value> {
    let rendered = Command::new("kubectl")
        .args(["kustomize", directory])
        .current_dir(common::root())
        .output();
    let text = match rendered {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Ok(output) => panic!(
            "kubectl kustomize {directory} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!("kubectl is needed to render {directory}: {error}"),
    };
    common::objects_of(text)
}

fn webhooks(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|object| {
            object["kind"]
                .as_str()
                .is_some_and(|kind| kind.ends_with("WebhookConfiguration"))
        })
        .flat_map(|configuration| configuration["webhooks"].as_array().expect("webhooks"))
        .collect()
}

#[test]
fn webhook_configurations_name_exactly_the_kinds_served() {
    if !can_render("webhook_configurations_name_exactly_the_kinds_served") {
        return;
    }
    let objects = render("webhook-deploy/");
    let mut served: Vec<(String, String)> = Vec::new();
    let all = webhooks(&objects);
    assert_eq!(all.len(), 5);
    for webhook in all {
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(webhook["timeoutSeconds"], 3);
        assert_eq!(webhook["admissionReviewVersions"], json!(["v1"]));
        let excluded = webhook["namespaceSelector"].to_string();
        // The guard of the opt-out label reviews namespaces by that label:
        // it excludes infergate's own namespace only.
        let guard = webhook["name"] == "namespace-opt-out.validate.infergate.dev";
        let expected: &[&str] = if guard {
            &["infergate"]
        } else {
            &["kube-system", "kube-node-lease", "infergate", "exclude"]
        };
        for namespace in expected {
            assert!(excluded.contains(namespace), "{namespace} not excluded");
        }
        if guard {
            assert!(
                !excluded.contains("exclude"),
                "the guard must see the label"
            );
            assert_eq!(
                webhook["objectSelector"]["matchLabels"]["infergate.dev/webhook"],
                "exclude"
            );
        }
        for rule in webhook["rules"].as_array().expect("rules") {
            for group in rule["apiGroups"].as_array().expect("groups") {
                for resource in rule["resources"].as_array().expect("resources") {
                    served.push((
                        group.as_str().unwrap_or_default().to_string(),
                        resource.as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    served.sort();
    served.dedup();
    let resource_of = |kind: &str| match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "LeaderWorkerSet" => "leaderworkersets",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "ScaledObject" => "scaledobjects",
        "PodMonitoring" => "podmonitorings",
        "ClusterPodMonitoring" => "clusterpodmonitorings",
        "ServiceMonitor" => "servicemonitors",
        "PodMonitor" => "podmonitors",
        "ConfigMap" => "configmaps",
        "Namespace" => "namespaces",
        "RayService" => "rayservices",
        "RayCluster" => "rayclusters",
        "InferenceService" => "inferenceservices",
        "ServingRuntime" => "servingruntimes",
        "ClusterServingRuntime" => "clusterservingruntimes",
        "LLMInferenceService" => "llminferenceservices",
        "InferencePool" => "inferencepools",
        "HTTPRoute" => "httproutes",
        "InferenceObjective" => "inferenceobjectives",
        "InferenceModel" => "inferencemodels",
        other => panic!("unmapped kind {other}"),
    };
    let mut handled: Vec<(String, String)> = infergate::webhook::review::HANDLED_KINDS
        .iter()
        .filter(|(_, kind)| *kind != "Scale")
        .map(|(group, kind)| (group.to_string(), resource_of(kind).to_string()))
        .chain(
            infergate::webhook::review::SCALED_RESOURCES
                .iter()
                .map(|(group, resource)| (group.to_string(), format!("{resource}/scale"))),
        )
        .collect();
    handled.sort();
    assert_eq!(served, handled);
}

/// No install owns a namespace: `kubectl delete -k` of the webhook, the
/// audit or an overlay into a team's namespace leaves every namespace in
/// place; only webhook-deploy/namespace/ creates one, `infergate`, labelled
/// so that the webhook never reviews it.
#[test]
fn only_the_namespace_kustomization_renders_a_namespace() {
    if !can_render("only_the_namespace_kustomization_renders_a_namespace") {
        return;
    }
    for install in [
        "webhook-deploy/",
        "webhook-deploy/audit/",
        "webhook-deploy/audit-reports/",
        "testdata/kustomize/ml-platform",
    ] {
        let objects = render(install);
        assert!(
            !objects.iter().any(|object| object["kind"] == "Namespace"),
            "{install} renders a Namespace"
        );
    }
    let objects = render("webhook-deploy/namespace/");
    assert_eq!(objects.len(), 1);
    let namespace = &objects[0];
    assert_eq!(namespace["kind"], "Namespace");
    assert_eq!(namespace["metadata"]["name"], "infergate");
    assert_eq!(
        namespace["metadata"]["labels"]["infergate.dev/webhook"],
        "exclude"
    );
}

/// The managed-certificates component, in another namespace: nothing of
/// cert-manager's left, the server told to manage its certificates on a
/// writable in-memory volume, and RBAC for exactly its Secret and its two
/// webhook configurations.
#[test]
fn managed_certificates_replace_cert_manager() {
    if !can_render("managed_certificates_replace_cert_manager") {
        return;
    }
    let objects = render("testdata/kustomize/managed-certificates");
    for object in &objects {
        let group = object["apiVersion"].as_str().unwrap_or_default();
        assert!(!group.starts_with("cert-manager.io/"), "{object}");
        assert!(
            object["metadata"]["annotations"]
                .get("cert-manager.io/inject-ca-from")
                .is_none(),
            "{}",
            object["kind"]
        );
    }
    let deployment = objects
        .iter()
        .find(|object| object["kind"] == "Deployment")
        .expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--managed-certificates"), "{args:?}");
    assert!(
        !args.iter().any(|arg| arg.starts_with("--tls-")),
        "{args:?}"
    );
    assert_eq!(container["volumeMounts"][0]["readOnly"], false);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["medium"],
        "Memory"
    );
    // The namespace of the Secret's Role follows the overlay; the
    // configurations are granted by name only.
    let role = objects
        .iter()
        .find(|object| {
            object["kind"] == "Role" && object["metadata"]["name"] == "infergate-certificates"
        })
        .expect("Role");
    assert_eq!(role["metadata"]["namespace"], "ml-platform");
    for rule in role["rules"].as_array().expect("rules") {
        let verbs = rule["verbs"].to_string();
        if rule.get("resourceNames").is_none() {
            assert_eq!(verbs, r#"["create"]"#, "only create is unnamed");
        } else {
            assert_eq!(rule["resourceNames"], json!(["infergate-tls"]));
        }
    }
    let cluster_role = objects
        .iter()
        .find(|object| {
            object["kind"] == "ClusterRole"
                && object["metadata"]["name"] == "infergate-certificates"
        })
        .expect("ClusterRole");
    for rule in cluster_role["rules"].as_array().expect("rules") {
        assert_eq!(rule["resourceNames"], json!(["infergate"]));
        assert_eq!(rule["verbs"], json!(["get", "update"]));
    }
    for webhook in webhooks(&objects) {
        assert_eq!(
            webhook["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["ml-platform"])
        );
    }
}

/// Every string of a rendered object, with the path it sits at.
fn strings<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) => found.push((path, text)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                strings(item, format!("{path}/{index}"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                strings(item, format!("{path}/{key}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn an_overlay_in_another_namespace_renders_a_consistent_install() {
    if !can_render("an_overlay_in_another_namespace_renders_a_consistent_install") {
        return;
    }
    let objects = render("testdata/kustomize/ml-platform");
    let kinds: Vec<&str> = objects
        .iter()
        .filter_map(|object| object["kind"].as_str())
        .collect();
    for kind in ["Service", "Certificate", "Issuer", "Deployment"] {
        assert!(kinds.contains(&kind), "{kind} rendered");
    }
    // The team's namespace exists already: the overlay must not own it
    // (applied, it would relabel it; deleted, it would delete it).
    assert!(
        !kinds.contains(&"Namespace"),
        "the overlay owns a Namespace"
    );
    // No string names the base's namespace any more, wherever a string
    // holds one: a metadata namespace, a service reference, a selector
    // value, the middle of a DNS name, the front of an inject-ca-from.
    for object in &objects {
        let mut found = Vec::new();
        strings(object, String::new(), &mut found);
        for (path, text) in found {
            let namespace = if path.ends_with("/namespace") || path.contains("/namespaceSelector/")
            {
                Some(text)
            } else if path.contains("/dnsNames/") {
                text.split('.').nth(1)
            } else if path.ends_with("inject-ca-from") {
                text.split('/').next()
            } else {
                None
            };
            assert_ne!(
                namespace,
                Some("infergate"),
                "{} {path} = {text}",
                object["kind"]
            );
        }
    }
    let serving = objects
        .iter()
        .find(|object| {
            object["kind"] == "Certificate" && object["metadata"]["name"] == "infergate-tls"
        })
        .expect("serving Certificate");
    assert_eq!(
        serving["spec"]["dnsNames"],
        json!([
            "infergate.ml-platform.svc",
            "infergate.ml-platform.svc.cluster.local"
        ])
    );
    for configuration in objects.iter().filter(|object| {
        object["kind"]
            .as_str()
            .is_some_and(|kind| kind.ends_with("WebhookConfiguration"))
    }) {
        assert_eq!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "ml-platform/infergate-tls"
        );
    }
    for webhook in webhooks(&objects) {
        assert_eq!(
            webhook["clientConfig"]["service"]["namespace"],
            "ml-platform"
        );
        let first = &webhook["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(first["key"], "kubernetes.io/metadata.name");
        assert_eq!(first["operator"], "NotIn");
        assert_eq!(first["values"], json!(["ml-platform"]));
    }
    let binding = objects
        .iter()
        .find(|object| object["kind"] == "ClusterRoleBinding")
        .expect("ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["namespace"], "ml-platform");
    for object in &objects {
        let cluster_scoped = matches!(
            object["kind"].as_str(),
            Some(
                "Namespace"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfiguration"
            )
        );
        if !cluster_scoped {
            assert_eq!(
                object["metadata"]["namespace"], "ml-platform",
                "{}",
                object["kind"]
            );
        }
    }
}

#[test]
fn the_serving_certificate_is_signed_by_a_ca_issuer() {
    if !can_render("the_serving_certificate_is_signed_by_a_ca_issuer") {
        return;
    }
    let objects = render("webhook-deploy/");
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    let serving = find("Certificate", "infergate-tls");
    let ca_issuer_name = serving["spec"]["issuerRef"]["name"]
        .as_str()
        .expect("issuer");
    let ca_issuer = find("Issuer", ca_issuer_name);
    let ca_secret = ca_issuer["spec"]["ca"]["secretName"]
        .as_str()
        .expect("a CA Issuer");
    let ca = objects
        .iter()
        .find(|object| object["kind"] == "Certificate" && object["spec"]["secretName"] == ca_secret)
        .expect("the CA Certificate");
    assert_eq!(ca["spec"]["isCA"], true);
    let root = find(
        "Issuer",
        ca["spec"]["issuerRef"]["name"].as_str().expect("root"),
    );
    assert!(root["spec"]["selfSigned"].is_object());
}

#[test]
fn the_cluster_role_grants_only_reads() {
    if !can_render("the_cluster_role_grants_only_reads") {
        return;
    }
    let objects = render("webhook-deploy/");
    let role = objects
        .iter()
        .find(|object| object["kind"] == "ClusterRole")
        .expect("ClusterRole");
    for rule in role["rules"].as_array().expect("rules") {
        for verb in rule["verbs"].as_array().expect("verbs") {
            // watch only where the server keeps a watch-backed copy.
            let watched =
                infergate::webhook::review::FETCHED_AUTOSCALERS
                    .iter()
                    .any(|(_, _, plural)| {
                        rule["resources"]
                            .as_array()
                            .expect("resources")
                            .iter()
                            .any(|r| r == plural)
                    });
            assert!(
                verb == "get" || verb == "list" || (verb == "watch" && watched),
                "{verb} on {}",
                rule["resources"]
            );
        }
    }
}

/// The workloads webhooks carry the matchConditions the binary generates
/// for the built-in policy (`infergate match-conditions`).
#[test]
fn match_conditions_are_the_generated_ones() {
    if !can_render("match_conditions_are_the_generated_ones") {
        return;
    }
    let policy = Policy::built_in().expect("policy");
    let expected = infergate::webhook::match_conditions::expression(&policy);
    let objects = render("webhook-deploy/");
    let mut filtered = 0;
    for webhook in webhooks(&objects) {
        let name = webhook["name"].as_str().unwrap_or_default();
        if name.starts_with("workloads.") {
            let conditions = webhook["matchConditions"]
                .as_array()
                .expect("matchConditions");
            assert_eq!(conditions.len(), 1);
            assert_eq!(
                conditions[0]["expression"].as_str(),
                Some(expected.as_str()),
                "{name}: regenerate with `infergate match-conditions`"
            );
            filtered += 1;
        } else {
            assert!(webhook.get("matchConditions").is_none(), "{name}");
        }
    }
    assert_eq!(filtered, 2);
}

/// The request of an admission review for `object`, shaped as the
/// apiserver gives it to a matchCondition: AdmissionRequest's JSON, whose
/// `omitempty` fields (`subResource`, `name`, `dryRun`...) are left out when
/// empty rather than sent as "" (k8s.io/api/admission/v1 types.go).
fn request_for(object: &Value) -> Value {
    let (group, resource) = match object["kind"].as_str() {
        Some("Deployment") => ("apps", "deployments"),
        Some("StatefulSet") => ("apps", "statefulsets"),
        Some("LeaderWorkerSet") => ("leaderworkerset.x-k8s.io", "leaderworkersets"),
        Some("HorizontalPodAutoscaler") => ("autoscaling", "horizontalpodautoscalers"),
        _ => ("", "configmaps"),
    };
    let version = if group == "autoscaling" { "v2" } else { "v1" };
    let kind = json!({"group": group, "version": version, "kind": object["kind"]});
    let resource = json!({"group": group, "version": version, "resource": resource});
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "namespace": "team-a",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    if let Some(name) = object["metadata"]["name"].as_str() {
        request["name"] = json!(name);
    }
    request
}

fn evaluate(program: &cel::Program, object: &Value, request: &Value) -> bool {
    let mut context = cel::Context::default();
    context
        .add_variable("object", object.clone())
        .expect("object");
    context
        .add_variable("request", request.clone())
        .expect("request");
    match program.execute(&context) {
        Ok(cel::Value::Bool(verdict)) => verdict,
        other => panic!("the condition did not evaluate to a bool: {other:?}"),
    }
}

/// The apiserver-side filter agrees with the engine's inference test on
/// every workload of the corpus and the examples: what the engine reviews as
/// inference reaches the webhook, and what it does not is filtered out.
#[test]
fn match_conditions_agree_with_the_inference_test() {
    let policy = Policy::built_in().expect("policy");
    let program = cel::Program::compile(&infergate::webhook::match_conditions::expression(&policy))
        .expect("the expression compiles");
    let Some(corpus) = common::shared_corpus("match_conditions_agree_with_the_inference_test")
    else {
        return;
    };
    let mut files = Vec::new();
    common::yaml_files(&corpus, &mut files);
    common::yaml_files(&common::root().join("testdata"), &mut files);
    let (mut inference, mut other) = (0, 0);
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let loaded = infergate::input::loader::parse_source(
            infergate::input::source::SourceFile::new(file.display().to_string(), text),
        );
        for object in &loaded.objects {
            if !matches!(
                object.kind(),
                "Deployment" | "StatefulSet" | "LeaderWorkerSet"
            ) {
                continue;
            }
            let expected = infergate::k8s::workload::inference_reason(object, &policy).is_some();
            let verdict = evaluate(&program, &object.value, &request_for(&object.value));
            assert_eq!(
                verdict,
                expected,
                "{} {}/{}",
                file.display(),
                object.kind(),
                object.name().unwrap_or_default()
            );
            if expected {
                inference += 1;
            } else {
                other += 1;
            }
        }
    }
    assert!(inference >= 50, "{inference} inference workloads");
    assert!(other >= 10, "{other} other workloads");
}

#[test]
fn match_conditions_pass_autoscalers_scale_writes_and_partial_objects() {
    let policy = Policy::built_in().expect("policy");
    let program = cel::Program::compile(&infergate::webhook::match_conditions::expression(&policy))
        .expect("the expression compiles");
    let hpa = json!({"kind": "HorizontalPodAutoscaler", "spec": {}});
    assert!(evaluate(&program, &hpa, &request_for(&hpa)));
    let scale = json!({"kind": "Scale", "spec": {"replicas": 3}});
    let mut scale_request = request_for(&json!({"kind": "Deployment"}));
    scale_request["subResource"] = json!("scale");
    scale_request["operation"] = json!("UPDATE");
    assert!(evaluate(&program, &scale, &scale_request));
    // A Deployment as a mutating webhook may see it: no template yet, no
    // containers, a template without spec. No error, and not inference.
    for partial in [
        json!({"kind": "Deployment", "metadata": {"name": "web"}}),
        json!({"kind": "Deployment", "spec": {"template": {}}}),
        json!({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}}),
        json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}),
    ] {
        assert!(
            !evaluate(&program, &partial, &request_for(&partial)),
            "{partial}"
        );
    }
    let marked = json!({"kind": "StatefulSet", "metadata": {"annotations": {"infergate.dev/inference": "True"}}});
    assert!(evaluate(&program, &marked, &request_for(&marked)));
    let lws = json!({"kind": "LeaderWorkerSet", "spec": {"leaderWorkerTemplate": {"workerTemplate": {"spec": {"containers": [{"name": "w", "image": "busybox", "resources": {"limits": {"google.com/tpu": "4"}}}]}}}}});
    assert!(evaluate(&program, &lws, &request_for(&lws)));
    let animation = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "studio/animation-renderer:1", "args": ["--nimble"]}]}}}});
    assert!(!evaluate(&program, &animation, &request_for(&animation)));
}

/// The audit's ClusterRole reads exactly the kinds `infergate audit`
/// lists (and Namespaces, for the opt-out label), with get and list only.
#[test]
fn the_audit_role_reads_exactly_the_audited_kinds() {
    if !can_render("the_audit_role_reads_exactly_the_audited_kinds") {
        return;
    }
    let objects = render("webhook-deploy/audit/");
    let role = objects
        .iter()
        .find(|object| object["kind"] == "ClusterRole")
        .expect("ClusterRole");
    let mut granted = std::collections::BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(verbs, ["get", "list"], "{rule}");
        for group in rule["apiGroups"].as_array().expect("groups") {
            for resource in rule["resources"].as_array().expect("resources") {
                granted.insert(format!(
                    "{}/{}",
                    group.as_str().unwrap_or_default(),
                    resource.as_str().unwrap_or_default()
                ));
            }
        }
    }
    let mut needed: std::collections::BTreeSet<String> = infergate::audit::AUDITED_KINDS
        .iter()
        .map(|kind| {
            let group = kind
                .api_version
                .split_once('/')
                .map_or("", |(group, _)| group);
            format!("{group}/{}", kind.plural)
        })
        .collect();
    needed.insert("/namespaces".to_string());
    // ConfigMaps only through adapter-config-access.yaml's RoleBinding in
    // the adapter's namespace: the CronJob reads them nowhere else.
    needed.remove("/configmaps");
    assert_eq!(granted, needed);
    let access_text = std::fs::read_to_string(
        common::root().join("webhook-deploy/audit/adapter-config-access.yaml"),
    )
    .expect("adapter-config-access.yaml");
    let access: Vec<Value> = infergate::input::loader::parse_source(
        infergate::input::source::SourceFile::new("adapter-config-access.yaml", access_text),
    )
    .objects
    .into_iter()
    .map(|object| object.value)
    .collect();
    let kinds: Vec<&str> = access
        .iter()
        .filter_map(|object| object["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["ClusterRole", "RoleBinding"]);
    assert_eq!(
        access[0]["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    );
    assert_eq!(access[1]["subjects"][0]["name"], "infergate-audit");
    // The CronJob runs as that account and only reads.
    let cronjob = objects
        .iter()
        .find(|object| object["kind"] == "CronJob")
        .expect("CronJob");
    let spec = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], "infergate-audit");
    let args = spec["containers"][0]["args"].to_string();
    assert!(
        args.contains("audit") && !args.contains("--write-reports"),
        "{args}"
    );
    assert!(args.contains("\"--adapter-config-namespaces=\""), "{args}");
}

/// The reports overlay adds writes of PolicyReports only, and the flag.
#[test]
fn the_reports_overlay_writes_only_policy_reports() {
    if !can_render("the_reports_overlay_writes_only_policy_reports") {
        return;
    }
    let objects = render("webhook-deploy/audit-reports/");
    let reports_role = objects
        .iter()
        .find(|object| {
            object["kind"] == "ClusterRole"
                && object["metadata"]["name"] == "infergate-audit-reports"
        })
        .expect("the reports role");
    for rule in reports_role["rules"].as_array().expect("rules") {
        assert_eq!(rule["apiGroups"], serde_json::json!(["wgpolicyk8s.io"]));
        assert_eq!(
            rule["resources"],
            serde_json::json!(["policyreports", "clusterpolicyreports"])
        );
    }
    let cronjob = objects
        .iter()
        .find(|object| object["kind"] == "CronJob")
        .expect("CronJob");
    let args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(args.contains("--write-reports"), "{args}");
}

/// The image builds: the build stage of webhook-deploy/Dockerfile copies
/// every file `cargo build` needs (it lacked build.rs, so `docker build`
/// failed at the first compile). No Docker engine runs here, so the test
/// copies exactly what the COPY lines name into an empty directory and
/// checks the crate there, offline, as the build stage would.
#[test]
fn the_dockerfile_copies_everything_the_build_needs() {
    let dockerfile = std::fs::read_to_string(common::root().join("webhook-deploy/Dockerfile"))
        .expect("Dockerfile");
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut copied = 0;
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // The build stage's own COPY lines (not --from=... of the final stage).
        if words.first() != Some(&"COPY") || words.iter().any(|word| word.starts_with("--")) {
            continue;
        }
        let (sources, destination) = words[1..].split_at(words.len() - 2);
        for source in sources {
            let from = common::root().join(source);
            let to = if destination[0].ends_with('/') && sources.len() > 1 || destination[0] == "./"
            {
                scratch.path().join(source)
            } else {
                scratch.path().join(destination[0].trim_start_matches("./"))
            };
            copy_tree(&from, &to);
            copied += 1;
        }
    }
    assert!(copied >= 4, "only {copied} COPY sources");
    let output = std::process::Command::new(env!("CARGO"))
        .args(["check", "--offline", "--locked", "--bin", "infergate"])
        .current_dir(scratch.path())
        .env(
            "CARGO_TARGET_DIR",
            common::root().join("target").join("dockerfile-check"),
        )
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the build stage's files do not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir").flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).expect("copy");
    }
}

/// Every pre-commit hook runs in one process: parallel batches would each
/// see part of an application and pair objects differently from `lint .`.
#[test]
fn pre_commit_hooks_run_serially() {
    let text = std::fs::read_to_string(common::root().join(".pre-commit-hooks.yaml"))
        .expect(".pre-commit-hooks.yaml");
    let hooks: Vec<&str> = text.split("\n- id: ").skip(1).collect();
    assert!(hooks.len() >= 4, "{text}");
    for hook in hooks {
        assert!(
            hook.lines()
                .any(|line| line.trim() == "require_serial: true"),
            "{hook}"
        );
    }
}
