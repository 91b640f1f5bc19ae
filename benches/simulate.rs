//! `infergate simulate` on one week of 15 s samples: 40,320 points for each
//! of 3 metrics (a Pods queue, an External AverageValue, an External Value),
//! through the library. Prints the time to parse the CSV trace, to replay
//! it, and to render the JSON series, best of five.
//!
//! cargo bench --bench simulate

use std::fmt::Write as _;
use std::time::Instant;

use infergate::simulate::{hpa::SimulatedHpa, render, run, trace};

const HPA: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: week, namespace: serving}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 1
  maxReplicas: 40
  behavior:
    scaleDown: {stabilizationWindowSeconds: 300}
  metrics:
  - type: Pods
    pods: {metric: {name: queue}, target: {type: AverageValue, averageValue: 5}}
  - type: External
    external: {metric: {name: backlog}, target: {type: AverageValue, averageValue: 20}}
  - type: External
    external: {metric: {name: tokens}, target: {type: Value, value: 50000}}
";

const POINTS: usize = 40_320;

/// A daily cycle with noise, per metric.
fn week() -> String {
    let mut text = String::from("timestamp,metric,value,replicas\n");
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5
    };
    for index in 0..POINTS {
        let t = index * 15;
        let day = (t as f64 / 86_400.0 * std::f64::consts::TAU).sin().max(0.0);
        let _ = writeln!(text, "{t},queue,{:.3},4", 1.0 + 12.0 * day + noise());
        let _ = writeln!(
            text,
            "{t},backlog,{:.3},4",
            5.0 + 60.0 * day + 4.0 * noise()
        );
        let _ = writeln!(
            text,
            "{t},tokens,{:.1},4",
            20_000.0 + 90_000.0 * day + 3_000.0 * noise()
        );
    }
    text
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = infergate::policy::Policy::built_in()?;
    let loaded = infergate::input::loader::parse_source(infergate::input::source::SourceFile::new(
        "hpa.yaml",
        HPA.to_string(),
    ));
    let hpa = SimulatedHpa::from_object(&loaded.objects[0], &policy)?;
    let text = week();
    let setup = run::Setup {
        startup: 180.0,
        initial_replicas: 4,
        recorded_replicas: None,
        reference: None,
    };
    let (mut parse_best, mut replay_best, mut render_best) = (f64::MAX, f64::MAX, f64::MAX);
    let mut points = 0;
    let mut summary = String::new();
    for _ in 0..5 {
        let started = Instant::now();
        let parsed = trace::parse("week.csv", &text, 300.0)?;
        parse_best = parse_best.min(started.elapsed().as_secs_f64());
        let series = run::match_series(&hpa, &parsed, &[])?;
        let started = Instant::now();
        let replay = run::replay(
            &hpa,
            &policy.hpa_controller,
            &parsed,
            &series,
            parsed.replicas.as_ref(),
            &setup,
        );
        replay_best = replay_best.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let shown = [render::Shown {
            label: "original",
            hpa: &hpa,
            replay: &replay,
        }];
        let json = render::json(&shown, "bench");
        render_best = render_best.min(started.elapsed().as_secs_f64());
        points = replay.points.len();
        summary = format!(
            "{} scale-ups, {} scale-downs, max {} replicas, {:.0} replica-hours; JSON {} MB",
            replay.summary.scale_ups,
            replay.summary.scale_downs,
            replay.summary.max_replicas,
            replay.summary.replica_hours,
            json.len() / 1_000_000
        );
    }
    println!(
        "trace: {POINTS} samples x 3 metrics ({} MB of CSV)",
        text.len() / 1_000_000
    );
    println!("parse   {parse_best:.3} s");
    println!(
        "replay  {replay_best:.3} s  ({points} syncs, {:.0} syncs/s)",
        points as f64 / replay_best
    );
    println!("render  {render_best:.3} s  (JSON)");
    println!("{summary}");
    Ok(())
}
