//! `infergate tune` on one week of 15 s samples (40,321 syncs) of a vLLM
//! queue with a daily cycle and bursts, through the library: the search as
//! the CLI runs it (a sample as large as the sync budget allows, then the
//! descent), printing the configurations replayed, candidates per second,
//! wall time and what it found.
//!
//! cargo bench --bench tune

use std::fmt::Write as _;
use std::time::Instant;

use infergate::simulate::{hpa::SimulatedHpa, run, trace, tune};

const HPA: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: week, namespace: serving}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 2
  maxReplicas: 40
  metrics:
  - type: Pods
    pods: {metric: {name: 'vllm:num_requests_waiting'}, target: {type: AverageValue, averageValue: 4}}
";

const SYNCS: u64 = 7 * 86_400 / 15;

/// Per-pod queue at 6 recorded pods: a day's sine, a burst every 3 hours.
fn week() -> String {
    let mut text = String::from("timestamp,metric,value,replicas\n");
    for index in 0..=SYNCS {
        let t = index * 15;
        let hour = (t % 86_400) as f64 / 3600.0;
        let day = (std::f64::consts::PI * (hour - 6.0) / 14.0).sin().max(0.0);
        let burst = if t % 10_800 < 300 { 3.0 } else { 0.0 };
        let wobble = ((t as f64) * 0.37).sin() * 0.2;
        let _ = writeln!(
            text,
            "{t},vllm:num_requests_waiting,{:.3},6",
            0.5 + 5.0 * day + burst + wobble
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
    let parsed = trace::parse("week.csv", &week(), 300.0)?;
    let series = run::match_series(&hpa, &parsed, &[])?;
    let config = &policy.hpa_controller;
    let problem = tune::Problem {
        original: &hpa,
        config,
        trace: &parsed,
        series,
        recorded: parsed.replicas.as_ref(),
        setup: run::Setup {
            startup: 180.0,
            initial_replicas: 6,
            recorded_replicas: None,
            reference: None,
        },
        window: (0.0, f64::INFINITY),
    };
    let space = tune::Space::for_hpa(
        &hpa,
        config,
        policy.hpa_behavior.min_scale_down_stabilization_seconds as f64,
    );
    let started = Instant::now();
    let tuned = tune::search(&problem, &space, &[], None, &mut |_| true);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "trace: a week of 15 s samples ({} syncs); space {} configurations",
        SYNCS + 1,
        space.len()
    );
    println!(
        "tune    {wall:.1} s wall, {} configurations replayed ({}), {:.0} candidates/s on {} threads",
        tuned.evaluated.len(),
        tuned.strategy,
        tuned.evaluated.len() as f64 / wall,
        rayon::current_num_threads()
    );
    let chosen = tuned.chosen.map(|index| tuned.evaluated[index].1);
    println!(
        "current {:.0} replica-hours, {:.1} min above target; recommended {}",
        tuned.current.replica_hours,
        tuned.current.minutes_above_target,
        chosen.map_or("none".to_string(), |score| format!(
            "{:.0} replica-hours, {:.1} min above target",
            score.replica_hours, score.minutes_above_target
        ))
    );
    Ok(())
}
