//! `infergate tune` as users run it: recommendations on the bundled traces,
//! objectives, the written patch, and bad input.

mod common;

use std::process::Output;

use serde_json::Value;

const QUEUE: [&str; 3] = [
    "testdata/simulate/queue-spike.yaml",
    "--trace",
    "testdata/simulate/queue-spike.csv",
];
const DIURNAL: [&str; 3] = [
    "testdata/simulate/diurnal-queue.yaml",
    "--trace",
    "testdata/simulate/diurnal-queue.csv",
];
const SHORT_WINDOWS: &str = "--policy=testdata/simulate/short-scale-down-policy.yaml";

fn infergate(command: &str, args: &[&str]) -> Output {
    let mut full = vec![command];
    full.extend_from_slice(args);
    common::infergate(&full, None)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tune_json(args: &[&str]) -> (Value, Output) {
    let mut full = args.to_vec();
    full.push("--format=json");
    let output = infergate("tune", &full);
    let value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON: {}{}", text(&output.stdout), text(&output.stderr)));
    (value, output)
}

fn score(value: &Value, which: &str, field: &str) -> f64 {
    value[which]["score"][field]
        .as_f64()
        .unwrap_or_else(|| panic!("{which}.score.{field} in {value:#}"))
}

/// Cheaper by at least `saving` (a fraction of replica-hours), with no
/// more minutes above target.
fn assert_cheaper(tuned: &Value, saving: f64) {
    let (before, after) = (
        score(tuned, "current", "replicaHours"),
        score(tuned, "recommended", "replicaHours"),
    );
    assert!(after <= before * (1.0 - saving), "{before} -> {after}");
    assert!(
        score(tuned, "recommended", "minutesAboveTarget")
            <= score(tuned, "current", "minutesAboveTarget")
    );
}

/// With scale-down windows from 60 s allowed, the queue spike's HPA (no
/// behavior: the legacy 300 s window) costs a fifth less with no more
/// minutes above its target.
#[test]
fn the_queue_spike_hpa_is_tuned_cheaper_at_no_more_minutes_above_target() {
    let (tuned, output) = tune_json(&[QUEUE[0], QUEUE[1], QUEUE[2], SHORT_WINDOWS]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(tuned["met"], true);
    assert_eq!(tuned["search"]["strategy"], "grid");
    assert_cheaper(&tuned, 0.15);
    assert!(score(&tuned, "recommended", "flaps") <= score(&tuned, "current", "flaps"));
    let front = tuned["front"].as_array().expect("front");
    assert!(front.iter().any(|entry| entry["dominatesCurrent"] == true));
}

fn lint_findings(path: &str) -> std::collections::BTreeSet<(String, String)> {
    let output = infergate("lint", &["--format=json", path]);
    let value: Value = serde_json::from_slice(&output.stdout).expect("lint JSON");
    value["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap_or_default().to_string(),
                finding["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Tune `hpa` on `trace` with `--write` into a copy: the JSON report, the
/// copy's path, and the findings of the copy before the write.
fn tune_and_write(
    hpa: &str,
    trace: &str,
    dir: &std::path::Path,
) -> (Value, String, std::collections::BTreeSet<(String, String)>) {
    let root = common::root();
    let copy = dir.join(std::path::Path::new(hpa).file_name().expect("name"));
    std::fs::copy(root.join(hpa), &copy).expect("copy");
    let copy = copy.display().to_string();
    let before = lint_findings(&copy);
    let trace = root.join(trace).display().to_string();
    // A budget keeps the day-long trace quick in a debug build.
    let (tuned, output) = tune_json(&[&copy, "--trace", &trace, "--write", "--budget=800"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("wrote the recommendation"));
    (tuned, copy, before)
}

/// What `--write` leaves replays as tune scored it and lints with no
/// finding the original had not: a recommendation never trips
/// infergate's own rules (under the built-in policy no scale-down window
/// below its 300 s minimum is searched).
fn check_written(
    tuned: &Value,
    copy: &str,
    trace: &str,
    before: &std::collections::BTreeSet<(String, String)>,
) {
    let trace = common::root().join(trace).display().to_string();
    let replay = infergate("simulate", &[copy, "--trace", &trace, "--format=json"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let replay: Value = serde_json::from_slice(&replay.stdout).expect("JSON");
    let replayed = replay["summary"]["replicaHours"].as_f64().expect("hours");
    assert!(
        (replayed - score(tuned, "recommended", "replicaHours")).abs() < 1e-6,
        "simulate {replayed} vs tune {tuned:#}"
    );
    let new: Vec<_> = lint_findings(copy).difference(before).cloned().collect();
    assert!(new.is_empty(), "the recommendation caused {new:?}");
}

#[test]
fn a_written_recommendation_replays_as_tuned_and_adds_no_finding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tuned, copy, before) = tune_and_write(QUEUE[0], QUEUE[2], dir.path());
    assert_eq!(tuned["met"], true, "{tuned:#}");
    check_written(&tuned, &copy, QUEUE[2], &before);
    let written = std::fs::read_to_string(&copy).expect("read");
    // Comments and the untouched objects stay as they were.
    assert!(written.starts_with("# vLLM serving Llama 3.1 8B"));
    assert!(written.contains("args: [\"--model=meta-llama/Llama-3.1-8B-Instruct\"]"));
    // Tuned again, the written HPA is its own recommendation: --diff
    // changes nothing and says so.
    let trace = common::root().join(QUEUE[2]).display().to_string();
    let again = infergate("tune", &[&copy, "--trace", &trace, "--diff"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).is_empty(), "{}", text(&again.stdout));
    assert!(text(&again.stderr).contains("already the cheapest"));
}

/// The diurnal trace (a day, hourly bursts): its cautious HPA (a 15-minute
/// scale-down window, one pod a minute) is tuned cheaper at no more
/// minutes above target, and the behavior it had is rewritten in place.
#[test]
fn the_diurnal_hpa_is_tuned_cheaper_and_written_over_its_behavior() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tuned, copy, before) = tune_and_write(DIURNAL[0], DIURNAL[2], dir.path());
    assert_eq!(tuned["search"]["strategy"], "sample and coordinate descent");
    assert_cheaper(&tuned, 0.10);
    check_written(&tuned, &copy, DIURNAL[2], &before);
    let written = std::fs::read_to_string(&copy).expect("read");
    assert_eq!(written.matches("\n  behavior:").count(), 1, "{written}");
    // Written anew, every field explicit.
    assert!(written.contains("selectPolicy: Max"), "{written}");
}

#[test]
fn the_built_in_minimum_scale_down_window_bounds_the_search() {
    let (tuned, _) = tune_json(&QUEUE);
    let window = tuned["recommended"]["knobs"]["scale-down"]
        .as_str()
        .expect("scale-down");
    let seconds: f64 = window
        .split('s')
        .next()
        .and_then(|number| number.parse().ok())
        .expect("a window");
    assert!(seconds >= 300.0, "{window}");
}

fn tune_queue(extra: &[&str]) -> Output {
    let mut args = QUEUE.to_vec();
    args.extend_from_slice(extra);
    infergate("tune", &args)
}

#[test]
fn an_objective_nothing_meets_gives_the_closest_and_exit_1() {
    let unmet = "--slo=minutes-above-target<=0";
    let output = tune_queue(&[unmet, "--slo", "no-flaps"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("closest (misses)"), "{stdout}");
    assert!(stdout.contains("no configuration of the search meets the objective"));
    let diff = tune_queue(&[unmet, "--diff"]);
    assert_eq!(diff.status.code(), Some(1));
    assert!(text(&diff.stdout).is_empty());
}

#[test]
fn a_stated_objective_is_met_and_holdout_is_reported() {
    let (tuned, output) = tune_json(&[
        QUEUE[0],
        QUEUE[1],
        QUEUE[2],
        "--slo",
        "time-to-ready-p95<=4m",
        "--slo=minutes-above-target<=10",
        "--holdout=0.25",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(score(&tuned, "recommended", "timeToReadyP95Seconds") <= 240.0);
    assert!(score(&tuned, "recommended", "minutesAboveTarget") <= 10.0);
    assert!(tuned["holdout"]["current"]["replicaHours"]
        .as_f64()
        .is_some());
    let warnings = tuned["warnings"].as_array().expect("warnings");
    assert!(warnings.iter().any(|warning| warning
        .as_str()
        .unwrap_or_default()
        .contains("less than a day")));
}

#[test]
fn bad_objectives_holdouts_and_v1_hpas_are_usage_errors() {
    for (flag, expected) in [
        ("--slo=latency<=3", "unknown objective `latency`"),
        (
            "--slo=minutes-above-target<=soon",
            "not a number of minutes",
        ),
        ("--holdout=1.5", "not a holdout fraction"),
    ] {
        let output = infergate("tune", &[QUEUE[0], QUEUE[1], QUEUE[2], flag]);
        assert_eq!(output.status.code(), Some(2), "{flag}");
        assert!(
            text(&output.stderr).contains(expected),
            "{flag}: {}",
            text(&output.stderr)
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = dir.path().join("v1.yaml");
    std::fs::write(
        &v1,
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 5\n  targetCPUUtilizationPercentage: 60\n",
    )
    .expect("write");
    let trace = dir.path().join("cpu.csv");
    std::fs::write(&trace, "0,cpu,50\n15,cpu,70\n").expect("write");
    let output = infergate(
        "tune",
        &[
            &v1.display().to_string(),
            "--trace",
            &trace.display().to_string(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("convert it to autoscaling/v2"));
}

#[test]
fn charts_show_both_replays() {
    let output = infergate(
        "tune",
        &[QUEUE[0], QUEUE[1], QUEUE[2], SHORT_WINDOWS, "--format=svg"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let svg = text(&output.stdout);
    assert!(svg.starts_with("<svg") && svg.contains("recommended") && svg.contains("current"));
}
