//! `infergate simulate` against the real HPA controller: every trace of
//! testdata/simulate/ and a few hundred generated ones are replayed by
//! `simulate --format json` and by tests/hpa-oracle (Kubernetes'
//! HorizontalController in a synctest bubble, the same load model), and the
//! desired replicas and Ready pods must agree at every sync.
//!
//! Needs Go: run it as CI does,
//! `bash scripts/hpa-oracle.sh run -- cargo test --test oracle -- --ignored --nocapture`.
//! `INFERGATE_ORACLE_CASES` sets how many traces are generated (default 400)
//! and `INFERGATE_ORACLE_SEED` the first seed.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// splitmix64: a small, seedable generator, so a failing case is named by
/// its seed and replays the same everywhere.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64 - 1) as usize]
    }
}

/// One replay, as both sides take it.
struct Case {
    name: String,
    hpa: PathBuf,
    trace: PathBuf,
    startup: f64,
    initial_replicas: i64,
    recorded_replicas: Option<f64>,
}

impl Case {
    fn simulate_args(&self) -> Vec<String> {
        let mut args = vec![
            "simulate".to_string(),
            self.hpa.display().to_string(),
            "--trace".to_string(),
            self.trace.display().to_string(),
            // Whole milliseconds: durations are written as Prometheus
            // writes them (37.5 s is 37500ms).
            format!("--startup={}ms", (self.startup * 1000.0).round() as u64),
            format!("--initial-replicas={}", self.initial_replicas),
            "--max-gap=1h".to_string(),
            "--format=json".to_string(),
        ];
        if let Some(recorded) = self.recorded_replicas {
            args.push(format!("--recorded-replicas={recorded}"));
        }
        args
    }

    fn oracle_json(&self) -> Value {
        let mut case = json!({
            "name": self.name,
            "hpa": self.hpa,
            "trace": self.trace,
            "startup": self.startup,
            "initialReplicas": self.initial_replicas,
        });
        if let Some(recorded) = self.recorded_replicas {
            case["recordedReplicas"] = json!(recorded);
        }
        case
    }
}

/// A metric of a generated HPA: its YAML and its trace series.
struct Metric {
    yaml: String,
    series: String,
    /// The value around which the trace moves (the target, per pod or in
    /// total as the trace records it).
    scale: f64,
}

fn quantity(random: &mut Random, value: f64) -> String {
    // Plain numbers, decimals and milli-quantities, as HPAs write them.
    match random.range(0, 2) {
        0 => format!("{}", value.round().max(1.0)),
        1 => format!("\"{}\"", (value * 100.0).round().max(1.0) / 100.0),
        _ => format!("\"{}m\"", (value * 1000.0).round().max(1.0)),
    }
}

/// The target of an External or Object metric (Value or AverageValue) and
/// the scale its trace moves around: a Value target's trace is the total.
fn total_target(random: &mut Random, target: f64) -> (String, f64) {
    let text = quantity(random, target);
    if random.chance(0.5) {
        (format!("{{type: Value, value: {text}}}"), target * 3.0)
    } else {
        (
            format!("{{type: AverageValue, averageValue: {text}}}"),
            target,
        )
    }
}

fn metric(random: &mut Random, index: usize, used: &mut Vec<String>) -> Metric {
    let target = *random.pick(&[0.5, 1.0, 2.5, 3.0, 10.0, 40.0, 100.0, 1500.0]);
    loop {
        let kind = random.range(0, 7);
        let (series, yaml, scale) = match kind {
            0 | 1 => {
                let name = format!("queue_{index}");
                let target_text = quantity(random, target);
                (
                    name.clone(),
                    format!("  - type: Pods\n    pods:\n      metric: {{name: {name}}}\n      target: {{type: AverageValue, averageValue: {target_text}}}\n"),
                    target,
                )
            }
            2 => {
                let percent = random.range(30, 95);
                (
                    "cpu".to_string(),
                    format!("  - type: Resource\n    resource:\n      name: cpu\n      target: {{type: Utilization, averageUtilization: {percent}}}\n"),
                    percent as f64,
                )
            }
            3 => {
                let percent = random.range(30, 95);
                (
                    "cpu".to_string(),
                    format!("  - type: ContainerResource\n    containerResource:\n      name: cpu\n      container: server\n      target: {{type: Utilization, averageUtilization: {percent}}}\n"),
                    percent as f64,
                )
            }
            4 => {
                let target_text = quantity(random, target);
                (
                    "memory".to_string(),
                    format!("  - type: Resource\n    resource:\n      name: memory\n      target: {{type: AverageValue, averageValue: {target_text}}}\n"),
                    target,
                )
            }
            5 => {
                let name = format!("backlog_{index}");
                let (target, scale) = total_target(random, target);
                (
                    name.clone(),
                    format!("  - type: External\n    external:\n      metric:\n        name: {name}\n        selector: {{matchLabels: {{queue: q{index}}}}}\n      target: {target}\n"),
                    scale,
                )
            }
            _ => {
                let name = format!("requests_{index}");
                let (target, scale) = total_target(random, target);
                (
                    name.clone(),
                    format!("  - type: Object\n    object:\n      describedObject: {{apiVersion: v1, kind: Service, name: server}}\n      metric: {{name: {name}}}\n      target: {target}\n"),
                    scale,
                )
            }
        };
        if used.contains(&series) {
            continue;
        }
        used.push(series.clone());
        return Metric {
            yaml,
            series,
            scale,
        };
    }
}

fn rules(random: &mut Random) -> String {
    let mut text = String::new();
    if random.chance(0.7) {
        let window = *random.pick(&[0, 15, 30, 60, 120, 180, 300, 600, 37]);
        writeln!(text, "      stabilizationWindowSeconds: {window}").unwrap();
    }
    if random.chance(0.4) {
        let select = *random.pick(&["Max", "Min", "Max", "Min", "Disabled"]);
        writeln!(text, "      selectPolicy: {select}").unwrap();
    }
    if random.chance(0.3) {
        let tolerance = *random.pick(&["\"0\"", "\"0.05\"", "\"0.2\"", "\"0.01\""]);
        writeln!(text, "      tolerance: {tolerance}").unwrap();
    }
    if random.chance(0.8) {
        text.push_str("      policies:\n");
        for _ in 0..random.range(1, 3) {
            let period = *random.pick(&[15, 30, 60, 120, 300, 600, 45]);
            if random.chance(0.5) {
                let pods = random.range(1, 8);
                writeln!(
                    text,
                    "      - {{type: Pods, value: {pods}, periodSeconds: {period}}}"
                )
                .unwrap();
            } else {
                let percent = *random.pick(&[10, 25, 50, 100, 200, 900]);
                writeln!(
                    text,
                    "      - {{type: Percent, value: {percent}, periodSeconds: {period}}}"
                )
                .unwrap();
            }
        }
    }
    text
}

/// The shape of a series over time, as a factor of its scale.
fn shape(random: &mut Random, samples: usize) -> Vec<f64> {
    let kind = random.range(0, 4);
    let mut values = Vec::with_capacity(samples);
    let base = 0.3 + random.unit() * 1.5;
    let mut walk = base;
    let (start, length) = (
        random.range(0, samples as i64 / 2) as usize,
        random.range(1, samples as i64 / 2) as usize,
    );
    let peak = 1.5 + random.unit() * 6.0;
    for index in 0..samples {
        let value = match kind {
            // A random walk.
            0 => {
                walk = (walk + (random.unit() - 0.5) * 0.4).clamp(0.0, 8.0);
                walk
            }
            // A step up and back.
            1 => {
                if (start..start + length).contains(&index) {
                    peak
                } else {
                    base
                }
            }
            // Spikes on a noisy base.
            2 => {
                if random.chance(0.05) {
                    peak * (0.5 + random.unit())
                } else {
                    base * (0.8 + random.unit() * 0.4)
                }
            }
            // Flapping around the target's tolerance band.
            3 => 1.0 + (random.unit() - 0.5) * 0.3,
            // A slow rise and fall.
            _ => base + peak * (std::f64::consts::PI * index as f64 / samples as f64).sin(),
        };
        values.push(value);
    }
    values
}

/// How many decimals a trace writes: a few, or the float's shortest form
/// (which exercises the milli-value rounding).
fn written(random: &mut Random, value: f64) -> String {
    match random.range(0, 3) {
        0 => format!("{:.0}", value),
        1 => format!("{:.2}", value),
        2 => format!("{:.4}", value),
        _ => format!("{value}"),
    }
}

fn generated(random: &mut Random, seed: u64, dir: &Path) -> Case {
    let name = format!("seed-{seed}");
    let mut used = Vec::new();
    let metrics: Vec<Metric> = (0..random.range(1, 3))
        .map(|index| metric(random, index as usize, &mut used))
        .collect();
    let min = random.range(1, 4);
    let max = min + random.range(0, 16);
    let mut hpa = format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {name}\n  namespace: oracle\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: server}}\n"
    );
    if min != 1 || random.chance(0.5) {
        writeln!(hpa, "  minReplicas: {min}").unwrap();
    }
    writeln!(hpa, "  maxReplicas: {max}").unwrap();
    if random.chance(0.6) {
        hpa.push_str("  behavior:\n");
        for direction in ["scaleUp", "scaleDown"] {
            if random.chance(0.75) {
                let body = rules(random);
                if body.is_empty() {
                    writeln!(hpa, "    {direction}: {{}}").unwrap();
                } else {
                    writeln!(hpa, "    {direction}:\n{body}").unwrap();
                }
            }
        }
    }
    hpa.push_str("  metrics:\n");
    for metric in &metrics {
        hpa.push_str(&metric.yaml);
    }

    let step = *random.pick(&[15.0, 15.0, 15.0, 10.0, 30.0, 60.0, 7.0]);
    let minutes = random.range(20, 90) as f64;
    let samples = (minutes * 60.0 / step) as usize;
    let shapes: Vec<Vec<f64>> = metrics.iter().map(|_| shape(random, samples)).collect();
    let with_replicas = random.chance(0.4);
    let mut recorded = random.range(1, 8);
    let start = if random.chance(0.5) {
        0.0
    } else {
        1_764_000_000.0 + random.range(0, 86_400) as f64
    };
    let mut trace = String::from("timestamp,metric,value,replicas\n");
    for index in 0..samples {
        let at = start + index as f64 * step;
        if with_replicas && random.chance(0.05) {
            recorded = (recorded + random.range(-2, 2)).clamp(0, 12);
        }
        for (metric, values) in metrics.iter().zip(&shapes) {
            let value = written(random, values[index] * metric.scale);
            let replicas = if with_replicas {
                recorded.to_string()
            } else {
                String::new()
            };
            writeln!(trace, "{at},{},{value},{replicas}", metric.series).unwrap();
        }
    }
    let hpa_path = dir.join(format!("{name}.yaml"));
    let trace_path = dir.join(format!("{name}.csv"));
    std::fs::write(&hpa_path, hpa).unwrap();
    std::fs::write(&trace_path, trace).unwrap();
    Case {
        name,
        hpa: hpa_path,
        trace: trace_path,
        startup: *random.pick(&[0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 37.5]),
        initial_replicas: random.range(0, max + 2),
        recorded_replicas: (!with_replicas && random.chance(0.5))
            .then(|| random.range(1, 10) as f64),
    }
}

/// The bundled traces, with the start-up and replicas their tests use.
fn bundled() -> Vec<Case> {
    let root = common::root().join("testdata/simulate");
    let mut cases = Vec::new();
    for (hpa, trace) in [
        ("queue-spike.yaml", "queue-spike.csv"),
        ("queue-spike-tuned.yaml", "queue-spike.csv"),
        ("queue-spike-jittery.yaml", "queue-spike.csv"),
        ("seed-002-gpu-cache.yaml", "seed-002-gpu-cache.csv"),
    ] {
        for startup in [0.0, 60.0, 120.0, 300.0] {
            for initial in [1, 2, 5] {
                cases.push(Case {
                    name: format!("{hpa}-startup-{startup}-initial-{initial}"),
                    hpa: root.join(hpa),
                    trace: root.join(trace),
                    startup,
                    initial_replicas: initial,
                    recorded_replicas: None,
                });
            }
        }
    }
    cases
}

fn desired_and_ready(series: &Value) -> Vec<(f64, i64, i64)> {
    common::replay_series(series)
}

#[test]
#[ignore = "needs the HPA oracle: bash scripts/hpa-oracle.sh run -- cargo test --test oracle -- --ignored"]
fn simulate_agrees_with_the_hpa_controller_at_every_sync() {
    let oracle = std::env::var("INFERGATE_HPA_ORACLE")
        .expect("INFERGATE_HPA_ORACLE: run through scripts/hpa-oracle.sh");
    let count: u64 = std::env::var("INFERGATE_ORACLE_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(400);
    let first_seed: u64 = std::env::var("INFERGATE_ORACLE_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let mut cases = bundled();
    for seed in first_seed..first_seed + count {
        let mut random = Random(seed);
        cases.push(generated(&mut random, seed, dir.path()));
    }

    let cases_file = dir.path().join("cases.json");
    let results_file = dir.path().join("results.json");
    let listing: Vec<Value> = cases.iter().map(Case::oracle_json).collect();
    std::fs::write(&cases_file, serde_json::to_vec(&listing).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let output = Command::new(&oracle)
        .args(["-test.run", "TestReplay", "-cases"])
        .arg(&cases_file)
        .arg("-out")
        .arg(&results_file)
        .output()
        .expect("run the oracle");
    assert!(
        output.status.success(),
        "the oracle failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let oracle_seconds = started.elapsed().as_secs_f64();
    let results: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&results_file).unwrap()).unwrap();
    assert_eq!(results.len(), cases.len());

    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut syncs = 0;
    let mut scaled = 0;
    for (case, result) in cases.iter().zip(&results) {
        if let Some(error) = result["error"].as_str() {
            failures.push(format!("{}: the oracle: {error}", case.name));
            continue;
        }
        let output = Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(case.simulate_args())
            .output()
            .expect("run infergate");
        if !output.status.success() {
            failures.push(format!(
                "{}: simulate: {}",
                case.name,
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let replay: Value = serde_json::from_slice(&output.stdout).expect("simulate's JSON");
        let ours = desired_and_ready(&replay["series"]);
        let theirs = desired_and_ready(&result["series"]);
        syncs += theirs.len();
        if theirs.windows(2).any(|pair| pair[0].1 != pair[1].1) {
            scaled += 1;
        }
        if ours.len() != theirs.len() {
            failures.push(format!(
                "{}: simulate replayed {} syncs, the controller {}",
                case.name,
                ours.len(),
                theirs.len()
            ));
            continue;
        }
        if let Some((index, (mine, real))) = ours
            .iter()
            .zip(&theirs)
            .enumerate()
            .find(|(_, (mine, real))| mine != real)
        {
            let context: Vec<String> = ours[index.saturating_sub(3)..(index + 2).min(ours.len())]
                .iter()
                .zip(&theirs[index.saturating_sub(3)..(index + 2).min(theirs.len())])
                .map(|(a, b)| {
                    format!(
                        "t={}: simulate {}/{} ready, controller {}/{}",
                        a.0, a.1, a.2, b.1, b.2
                    )
                })
                .collect();
            failures.push(format!(
                "{}: first difference at sync {index} (simulate (t, desired, ready) {mine:?}, controller {real:?}); {}\n  {}\n  files: {} {}",
                case.name,
                replay["series"][index]["reason"],
                context.join("\n  "),
                case.hpa.display(),
                case.trace.display()
            ));
        }
    }
    println!(
        "hpa oracle: {} traces ({} generated, {scaled} of all with a change of replicas), {syncs} syncs; controller {:.1} s, simulate {:.1} s; {} differ",
        cases.len(),
        count,
        oracle_seconds,
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        // Keep the files of the failing cases for a rerun.
        let kept = dir.keep();
        panic!(
            "{} of {} traces differ (files in {}):\n{}",
            failures.len(),
            cases.len(),
            kept.display(),
            failures
                .iter()
                .take(15)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Replica-hours and minutes above target of a replay the oracle ran, for
/// an HPA with one Pods metric: each sync's desired pods, and the per-pod
/// value (the load over the Ready pods) against target × (1 + tolerance).
fn cost_and_service(
    series: &Value,
    trace: &Path,
    target: f64,
    recorded: Option<f64>,
) -> (f64, f64) {
    let text = std::fs::read_to_string(trace).unwrap();
    let parsed = infergate::simulate::trace::parse("trace", &text, 3600.0).unwrap();
    let start = parsed.start().unwrap();
    let metric = parsed.series.values().next().unwrap();
    let (mut hours, mut minutes) = (0.0, 0.0);
    for (t, desired, ready) in desired_and_ready(series) {
        hours += desired as f64 * 15.0 / 3600.0;
        let load = metric.at(start + t).unwrap_or(0.0)
            * parsed
                .replicas
                .as_ref()
                .and_then(|replicas| replicas.at(start + t))
                .or(recorded)
                .unwrap_or(1.0);
        if ready > 0 && load / ready as f64 > target * 1.1 {
            minutes += 0.25;
        }
    }
    (hours, minutes)
}

/// A bundled HPA and trace for tune, with its one Pods metric's target, the
/// tune flags, the recorded replicas when the trace has no column, and
/// the saving the controller's replay must show.
struct TuneCase {
    hpa: &'static str,
    trace: &'static str,
    target: f64,
    extra: Vec<String>,
    recorded: Option<f64>,
    saving: f64,
}

/// `infergate tune`'s recommendations, written into the HPA and replayed
/// by the real controller: cheaper at no more minutes above target, by
/// the amounts tune reported.
#[test]
#[ignore = "needs the HPA oracle: bash scripts/hpa-oracle.sh run -- cargo test --test oracle -- --ignored"]
fn tuned_hpas_save_what_tune_says_on_the_real_controller() {
    let oracle = std::env::var("INFERGATE_HPA_ORACLE")
        .expect("INFERGATE_HPA_ORACLE: run through scripts/hpa-oracle.sh");
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "--policy={}",
        root.join("testdata/simulate/short-scale-down-policy.yaml")
            .display()
    );
    let cases = [
        TuneCase {
            hpa: "queue-spike.yaml",
            trace: "queue-spike.csv",
            target: 3.0,
            extra: vec![policy, "--recorded-replicas=2".to_string()],
            recorded: Some(2.0),
            saving: 0.15,
        },
        TuneCase {
            hpa: "diurnal-queue.yaml",
            trace: "diurnal-queue.csv",
            target: 5.0,
            extra: Vec::new(),
            recorded: None,
            saving: 0.10,
        },
    ];
    for TuneCase {
        hpa,
        trace,
        target,
        extra,
        recorded,
        saving,
    } in cases
    {
        let original = root.join("testdata/simulate").join(hpa);
        let trace = root.join("testdata/simulate").join(trace);
        let tuned_file = dir.path().join(hpa);
        std::fs::copy(&original, &tuned_file).unwrap();
        let mut args: Vec<String> = vec![
            "tune".to_string(),
            tuned_file.display().to_string(),
            format!("--trace={}", trace.display()),
            "--startup=225s".to_string(),
            "--initial-replicas=2".to_string(),
            "--write".to_string(),
            "--format=json".to_string(),
        ];
        args.extend(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_infergate"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let case = |name: &str, file: &Path| Case {
            name: name.to_string(),
            hpa: file.to_path_buf(),
            trace: trace.clone(),
            startup: 225.0,
            initial_replicas: 2,
            recorded_replicas: recorded,
        };
        let cases = [case("original", &original), case("tuned", &tuned_file)];
        let listing: Vec<Value> = cases.iter().map(Case::oracle_json).collect();
        let cases_file = dir.path().join("tune-cases.json");
        let results_file = dir.path().join("tune-results.json");
        std::fs::write(&cases_file, serde_json::to_vec(&listing).unwrap()).unwrap();
        let run = Command::new(&oracle)
            .args(["-test.run", "TestReplay", "-cases"])
            .arg(&cases_file)
            .arg("-out")
            .arg(&results_file)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let results: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&results_file).unwrap()).unwrap();
        let (before, after) = (
            cost_and_service(&results[0]["series"], &trace, target, recorded),
            cost_and_service(&results[1]["series"], &trace, target, recorded),
        );
        println!(
            "{hpa}: the controller replays {:.2} -> {:.2} replica-hours ({:+.1} %), {:.2} -> {:.2} minutes above target",
            before.0,
            after.0,
            (after.0 - before.0) / before.0 * 100.0,
            before.1,
            after.1
        );
        assert!(
            after.0 <= before.0 * (1.0 - saving),
            "{before:?} -> {after:?}"
        );
        assert!(after.1 <= before.1, "{before:?} -> {after:?}");
        // What tune reported is what the controller does.
        let reported = |which: &str, field: &str| report[which]["score"][field].as_f64().unwrap();
        assert!((reported("current", "replicaHours") - before.0).abs() < 1e-3);
        assert!((reported("recommended", "replicaHours") - after.0).abs() < 1e-3);
        assert!((reported("current", "minutesAboveTarget") - before.1).abs() < 1e-6);
        assert!((reported("recommended", "minutesAboveTarget") - after.1).abs() < 1e-6);
    }
}
