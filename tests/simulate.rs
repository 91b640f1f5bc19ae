//! `infergate simulate` as users run it: golden replays of the traces in
//! testdata/simulate/, comparisons, charts, and bad traces.

mod common;

use std::process::Output;

use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .arg("simulate")
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run infergate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--format=json");
    let output = simulate(&full);
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// (t, desired) at each change of the desired replicas.
fn changes(series: &Value) -> Vec<(f64, i64)> {
    let mut found = Vec::new();
    let mut previous = None;
    for point in series.as_array().expect("series") {
        let desired = point["desired"].as_i64().expect("desired");
        if previous != Some(desired) {
            found.push((point["t"].as_f64().expect("t"), desired));
        }
        previous = Some(desired);
    }
    found
}

const SEED_002: [&str; 4] = [
    "testdata/simulate/seed-002-gpu-cache.yaml",
    "--trace",
    "testdata/simulate/seed-002-gpu-cache.csv",
    "--startup=30s",
];

/// Seed 002's `kubectl get hpa -w`: 208m against 100m on one pod at 6m46s
/// made 3 replicas by 7m1s; 293m at 7m16s, with the two new pods not yet
/// Ready, changed nothing (the missing pods count as using nothing, and
/// the ratio they give reverses the direction); the guide's scale-down to
/// one pod followed the 5-minute downscale window. The replay's syncs run
/// on a 15 s grid from the first sample (3m37s), so 1 -> 3 lands at 6m52s
/// and 3 -> 1 at 12m52s: 300 s after the last recommendation of 3 (at
/// 7m52s, when the new pods' readings brought the average within the
/// tolerance).
#[test]
fn seed_002_replays_as_its_table_shows() {
    let replay = json(&SEED_002);
    assert_eq!(
        changes(&replay["series"]),
        vec![(0.0, 1), (195.0, 3), (555.0, 1)]
    );
    let series = replay["series"].as_array().expect("series");
    // At 7m16s (t = 219..234) only one pod reports: no overshoot.
    let at = |t: f64| series.iter().find(|point| point["t"] == t).expect("point");
    assert_eq!(at(225.0)["desired"], 3);
    assert_eq!(at(210.0)["ready"], 1);
    assert_eq!(at(225.0)["ready"], 3);
    assert_eq!(replay["summary"]["maxReplicas"], 3);
    assert_eq!(replay["summary"]["scaleUps"], 1);
    assert_eq!(replay["summary"]["scaleDowns"], 1);
    assert_eq!(replay["hpa"]["name"], "gpu-hpa-cache");
    assert_eq!(replay["version"], 1);
    assert!(at(195.0)["reason"]
        .as_str()
        .is_some_and(|reason| reason.contains("gpu_cache_usage_perc")));
}

#[test]
fn the_csv_series_is_pinned() {
    let output = simulate(&[
        SEED_002[0],
        SEED_002[1],
        SEED_002[2],
        SEED_002[3],
        "--format=csv",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    insta::assert_snapshot!("seed-002-csv", text(&output.stdout));
}

const QUEUE: [&str; 3] = [
    "testdata/simulate/queue-spike.yaml",
    "--trace",
    "testdata/simulate/queue-spike.csv",
];

/// Seed 004's queue target below 10: the defaults chase the spike (12
/// replicas on the burst) while tuned scale-up policies (2 pods a minute)
/// cost fewer replica-hours and leave the queue above target longer.
#[test]
fn queue_targets_with_and_without_scale_up_policies() {
    let mut args = QUEUE.to_vec();
    args.extend(["--compare", "testdata/simulate/queue-spike-tuned.yaml"]);
    let replay = json(&args);
    let (original, tuned) = (&replay["summary"], &replay["compare"]["summary"]);
    assert_eq!(original["maxReplicas"], 12);
    assert!(tuned["maxReplicas"].as_i64() < original["maxReplicas"].as_i64());
    assert!(tuned["replicaHours"].as_f64() < original["replicaHours"].as_f64());
    assert!(tuned["minutesAboveTarget"].as_f64() > original["minutesAboveTarget"].as_f64());
    // The tuned policy adds at most 2 pods a minute.
    let steps = changes(&replay["compare"]["series"]);
    for pair in steps.windows(2) {
        let ((_, before), (_, after)) = (pair[0], pair[1]);
        assert!(after - before <= 2, "{steps:?}");
    }
    // The start-up is the model-load estimate of the bundle's workload.
    assert!(replay["loadModel"]
        .as_str()
        .is_some_and(|model| model.contains("model-load estimate")));
}

/// queue-spike.yaml with a 30 s scale-down window.
const JITTERY: [&str; 3] = [
    "testdata/simulate/queue-spike-jittery.yaml",
    "--trace",
    "testdata/simulate/queue-spike.csv",
];

#[test]
fn compare_fix_replays_the_fixed_hpa_beside_the_original() {
    // queue-spike.yaml's HPA has no fix (its low queue target needs tuned
    // policies, which depend on the load): it is replayed alone.
    let mut alone = QUEUE.to_vec();
    alone.push("--compare-fix");
    let output = simulate(&alone);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("`lint --fix` changes nothing in this autoscaler"),
        "{}",
        text(&output.stderr)
    );
    // The unsafe fix raises the jittery HPA's 30 s scale-down window.
    let mut args = JITTERY.to_vec();
    args.extend(["--compare-fix", "--unsafe-fixes"]);
    let output = simulate(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let human = text(&output.stdout);
    for wanted in [
        "original",
        "fixed",
        "replica-hours",
        "minutes above target",
        "█",
    ] {
        assert!(human.contains(wanted), "{wanted}: {human}");
    }
    // The fixed HPA has the window hpa-stabilization-defaults writes.
    assert!(human.contains("scale-down window 300 s"), "{human}");
    assert!(human.contains("scale-down window 30 s"), "{human}");
    args.push("--format=json");
    let replay: Value = serde_json::from_slice(&simulate(&args).stdout).expect("JSON");
    assert_eq!(replay["compare"]["label"], "fixed");
    assert!(replay["compare"]["summary"]["replicaHours"].is_number());
}

fn png_size(path: &std::path::Path) -> (u32, u32, Vec<[u8; 3]>) {
    let image = image::open(path).expect("a PNG").to_rgb8();
    let pixels = image.pixels().map(|pixel| pixel.0).collect();
    (image.width(), image.height(), pixels)
}

#[test]
fn charts_are_drawn_with_every_series() {
    let directory = tempfile::tempdir().expect("tempdir");
    let png = directory.path().join("replay.png");
    let mut args = JITTERY.to_vec();
    let png_arg = png.display().to_string();
    args.extend([
        "--compare-fix",
        "--unsafe-fixes",
        "--format=png",
        "-o",
        &png_arg,
    ]);
    let output = simulate(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (width, height, pixels) = png_size(&png);
    assert_eq!((width, height), (1000, 640));
    // Both replays' colours are drawn (plotters' first two palette entries).
    let count = |rgb: [u8; 3]| pixels.iter().filter(|pixel| **pixel == rgb).count();
    assert!(count([31, 119, 180]) > 500, "the original's line");
    assert!(count([214, 39, 40]) > 500, "the fixed one's line");
    // Text is drawn: dark pixels beyond the axes.
    assert!(count([0, 0, 0]) > 2000);
    let svg = simulate(&[
        JITTERY[0],
        JITTERY[1],
        JITTERY[2],
        "--compare-fix",
        "--unsafe-fixes",
        "--format=svg",
    ]);
    let svg = text(&svg.stdout);
    assert!(
        svg.starts_with("<svg") && svg.contains("width=\"1000\"") && svg.contains("height=\"640\"")
    );
    for label in [
        "original: desired",
        "fixed: desired",
        "original: Ready",
        "target 3",
        "vllm:num_requests_waiting",
    ] {
        assert!(svg.contains(label), "{label}");
    }
    assert!(svg.matches("<polyline").count() >= 6, "series lines");
}

#[test]
fn prometheus_ranges_replay_like_csv() {
    // The queue trace as a query_range response, with the replicas as a
    // second series.
    let csv = std::fs::read_to_string(common::root().join(QUEUE[2])).expect("trace");
    let mut values = Vec::new();
    let mut replicas = Vec::new();
    for line in csv.lines().filter(|line| line.starts_with("2026")) {
        let fields: Vec<&str> = line.split(',').collect();
        let time = infergate::simulate::trace::parse_rfc3339(fields[0]).expect("time");
        values.push(serde_json::json!([time, fields[2]]));
        replicas.push(serde_json::json!([time, fields[3]]));
    }
    let response = serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "vllm:num_requests_waiting", "namespace": "serving"}, "values": values},
        {"metric": {}, "values": replicas}]}});
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("range.json");
    std::fs::write(&path, response.to_string()).expect("write");
    let from_json = json(&[
        QUEUE[0],
        "--trace",
        &path.display().to_string(),
        "--map",
        "replicas=#1",
    ]);
    let from_csv = json(&QUEUE);
    assert_eq!(from_json["series"], from_csv["series"]);
}

#[test]
fn bad_traces_name_the_line_or_series() {
    let directory = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        let path = directory.path().join(name);
        std::fs::write(&path, body).expect("write");
        path.display().to_string()
    };
    let unknown = write(
        "unknown.csv",
        "0,vllm:num_requests_waiting,1,2\n0,tgi_queue_size,3,2\n",
    );
    let output = simulate(&[QUEUE[0], "--trace", &unknown]);
    assert_eq!(output.status.code(), Some(2));
    let errors = text(&output.stderr);
    assert!(
        errors.contains("unknown.csv:2") && errors.contains("tgi_queue_size"),
        "{errors}"
    );
    let missing = write(
        "missing.csv",
        "0,tgi_queue_size,3,2\n15,tgi_queue_size,3,2\n",
    );
    let errors = text(&simulate(&[QUEUE[0], "--trace", &missing]).stderr);
    assert!(
        errors.contains("no series for the HPA's metric `vllm:num_requests_waiting`")
            && errors.contains("--map"),
        "{errors}"
    );
    let nan = write(
        "nan.csv",
        "0,vllm:num_requests_waiting,1,2\n15,vllm:num_requests_waiting,NaN,2\n",
    );
    let errors = text(&simulate(&[QUEUE[0], "--trace", &nan]).stderr);
    assert!(
        errors.contains("nan.csv:2") && errors.contains("finite"),
        "{errors}"
    );
    let unsorted = write(
        "unsorted.csv",
        "30,vllm:num_requests_waiting,1,2\n15,vllm:num_requests_waiting,1,2\n",
    );
    let errors = text(&simulate(&[QUEUE[0], "--trace", &unsorted]).stderr);
    assert!(
        errors.contains("unsorted.csv:2") && errors.contains("sort"),
        "{errors}"
    );
    // A mapped series that is not there, and the HPA that is not in the file.
    let errors = text(&simulate(&[QUEUE[0], "--trace", QUEUE[2], "--hpa", "nope"]).stderr);
    assert!(
        errors.contains("no HPA or ScaledObject named `nope`") && errors.contains("vllm-llama-8b"),
        "{errors}"
    );
}

/// A ScaledObject replays as the HPA KEDA makes of it: an External
/// AverageValue metric per trigger, its bounds, and a note that scaling
/// from zero is not simulated.
#[test]
fn a_scaled_object_replays_as_its_hpa() {
    let replay = json(&[
        "testdata/simulate/queue-scaledobject.yaml",
        "--trace",
        QUEUE[2],
        "--startup=2m",
    ]);
    assert_eq!(replay["hpa"]["name"], "vllm-so");
    assert_eq!(replay["targets"][0]["type"], "External");
    assert_eq!(replay["targets"][0]["name"], "vllm:num_requests_waiting");
    assert_eq!(replay["summary"]["maxReplicas"], 6);
    let series = replay["series"].as_array().expect("series");
    assert!(series
        .iter()
        .all(|point| point["desired"].as_i64() >= Some(1)));
    assert!(replay["notes"]
        .to_string()
        .contains("between 0 and 1 is not simulated"));
}

#[test]
fn a_trace_longer_than_a_year_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("long.csv");
    // Two samples two years apart (allowed by --max-gap, refused by span).
    std::fs::write(
        &path,
        "0,vllm:num_requests_waiting,1,2\n63072000,vllm:num_requests_waiting,1,2\n",
    )
    .expect("write");
    let output = simulate(&[
        QUEUE[0],
        "--trace",
        &path.display().to_string(),
        "--max-gap=1000d",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let errors = text(&output.stderr);
    assert!(
        errors.contains("spans 730 days") && errors.contains("at most a year"),
        "{errors}"
    );
}

/// Pods are counted by cohort, not kept one struct each: an HPA that may
/// reach int32's maximum under a huge load replays in memory that follows
/// the trace (it aborted on a 4 GB allocation), and so does a start at two
/// billion replicas. Counts past int32, a NaN, and negative per-pod values
/// are refused with the reason; a UTF-8 byte-order mark is read.
#[test]
fn replica_counts_are_bounded_by_int32_and_cost_nothing_per_replica() {
    let directory = tempfile::tempdir().expect("tempdir");
    let hpa = directory.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: huge, namespace: default}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: app}\n  minReplicas: 1\n  maxReplicas: 2147483647\n  behavior:\n    scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 1000, periodSeconds: 15}]}\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: queue}\n      target: {type: AverageValue, averageValue: \"1\"}\n",
    )
    .expect("write");
    let trace = directory.path().join("trace.csv");
    let mut rows = String::from("\u{feff}timestamp,metric,value,replicas\n");
    for step in 0..40 {
        rows.push_str(&format!("{},queue,1000000000,1\n", step * 15));
    }
    std::fs::write(&trace, &rows).expect("write");
    let (hpa, trace) = (hpa.display().to_string(), trace.display().to_string());
    let replay = json(&[&hpa, "--trace", &trace, "--startup", "30s"]);
    let most = replay["summary"]["maxReplicas"]
        .as_i64()
        .expect("max replicas");
    assert!(most >= 500_000_000, "{most}");
    let replay = json(&[&hpa, "--trace", &trace, "--initial-replicas", "2000000000"]);
    assert!(replay["summary"]["maxReplicas"].as_i64() >= Some(2_000_000_000));

    for (flag, value) in [
        ("--initial-replicas", "99999999999999"),
        ("--recorded-replicas", "NaN"),
        ("--recorded-replicas", "-3"),
    ] {
        let output = simulate(&[&hpa, "--trace", &trace, flag, value]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
    }
    let negative = directory.path().join("negative.csv");
    std::fs::write(
        &negative,
        "timestamp,metric,value\n0,queue,3\n15,queue,-2\n",
    )
    .expect("write");
    let output = simulate(&[&hpa, "--trace", &negative.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("per-pod amount, never negative"),
        "{}",
        text(&output.stderr)
    );
}

/// A number attribute of an SVG element (`x="85"`).
fn svg_number(element: &str, name: &str) -> Option<f64> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &element[start..];
    rest[..rest.find('"')?].parse().ok()
}

/// Charts people can read: no curve runs under a legend, the minute axis
/// has whole-minute labels only, and the last one fits in the picture.
#[test]
fn legends_cover_no_curve_and_minute_ticks_are_whole() {
    for args in [
        &QUEUE[..],
        &JITTERY[..],
        &SEED_002[..],
        &[
            "testdata/simulate/diurnal-queue.yaml",
            "--trace",
            "testdata/simulate/diurnal-queue.csv",
        ][..],
    ] {
        let mut full = args.to_vec();
        full.extend(["--compare-fix", "--unsafe-fixes", "--format=svg"]);
        let output = simulate(&full);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let svg = text(&output.stdout);
        let legends: Vec<(f64, f64, f64, f64)> = svg
            .split('<')
            .filter(|element| element.starts_with("rect") && element.contains("opacity=\"0.8\""))
            .filter_map(|rect| {
                Some((
                    svg_number(rect, "x")?,
                    svg_number(rect, "y")?,
                    svg_number(rect, "width")?,
                    svg_number(rect, "height")?,
                ))
            })
            .collect();
        assert_eq!(legends.len(), 2, "{args:?}: a legend per chart");
        // The curves: every polyline drawn thicker than the axes, and the
        // grey `needed` line.
        for line in svg.split('<').filter(|element| {
            element.starts_with("polyline")
                && (!element.contains("stroke-width=\"1\"") || element.contains("#969696"))
        }) {
            let Some(points) = line.split(" points=\"").nth(1) else {
                continue;
            };
            let points: Vec<(f64, f64)> = points
                .split('"')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|point| {
                    let (x, y) = point.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect();
            // A legend's own sample of a line: 20 px, level.
            if let [(x0, y0), (x1, y1)] = points[..] {
                if y0 == y1 && (x1 - x0 - 20.0).abs() < 0.5 {
                    continue;
                }
            }
            for (x, y) in points {
                for (left, top, width, height) in &legends {
                    assert!(
                        !(x > *left && x < left + width && y > *top && y < top + height),
                        "{args:?}: a curve point ({x}, {y}) under the legend at ({left}, {top}, {width}x{height})"
                    );
                }
            }
        }
        // x labels are centred under their tick; y labels end at theirs.
        let x_labels: Vec<(f64, String)> = svg
            .split("<text")
            .filter(|element| element.contains("text-anchor=\"middle\""))
            .filter_map(|element| {
                let label = element
                    .split('>')
                    .nth(1)?
                    .split('<')
                    .next()?
                    .trim()
                    .to_string();
                label.parse::<f64>().ok()?;
                Some((svg_number(element, "x")?, label))
            })
            .collect();
        assert!(x_labels.len() >= 4, "{args:?}: {x_labels:?}");
        for (x, label) in &x_labels {
            assert!(!label.contains('.'), "{args:?}: minute label {label}");
            let half = label.len() as f64 * 4.0;
            assert!(
                x + half <= 1000.0,
                "{args:?}: label {label} at {x} is cut off"
            );
        }
    }
}
