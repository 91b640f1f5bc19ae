//! The replay as text: a summary with a terminal chart, JSON (version 1)
//! and CSV.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::hpa::SimulatedHpa;
use super::run::{Point, Replay};

/// One replayed autoscaler, with how it is labelled.
pub struct Shown<'a> {
    pub label: &'a str,
    pub hpa: &'a SimulatedHpa,
    pub replay: &'a Replay,
}

pub const FORMAT_VERSION: u32 = 1;

fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match (seconds / 3600, (seconds % 3600) / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn identity(hpa: &SimulatedHpa) -> String {
    match &hpa.namespace {
        Some(namespace) => format!("{namespace}/{}", hpa.name),
        None => hpa.name.clone(),
    }
}

fn describe_metrics(hpa: &SimulatedHpa) -> String {
    hpa.metrics
        .iter()
        .map(|metric| {
            let kind = match metric.kind {
                super::hpa::TargetKind::PodsAverage => "average per pod",
                super::hpa::TargetKind::Utilization => "% utilization",
                super::hpa::TargetKind::Value => "value (total)",
                super::hpa::TargetKind::AverageValue => "average value (total / pods)",
            };
            format!(
                "{} ({} {kind}, target {})",
                metric.name, metric.source, metric.target
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn rules_text(rules: &super::hpa::Rules) -> String {
    let policies: Vec<String> = rules
        .policies
        .iter()
        .map(|(kind, value, period)| format!("{value} {kind:?} per {period} s"))
        .collect();
    format!(
        "window {} s, selectPolicy {:?}, policies [{}]",
        rules.stabilization_seconds,
        rules.select,
        policies.join(", ")
    )
}

fn behavior_line(hpa: &SimulatedHpa) -> String {
    match &hpa.behavior {
        None => "no behavior: the controller's 300 s downscale window and its legacy scale-up limit (2x or 4 pods)".to_string(),
        Some(behavior) => format!(
            "behavior: scale-up {}; scale-down {}",
            rules_text(&behavior.scale_up),
            rules_text(&behavior.scale_down)
        ),
    }
}

/// A row of the summary table: its name and how a replay fills it.
type Row = (&'static str, fn(&Replay) -> String);

fn mean_wait(replay: &Replay) -> String {
    let waits = &replay.summary.time_to_needed;
    if waits.is_empty() {
        "-".to_string()
    } else {
        duration(waits.iter().sum::<f64>() / waits.len() as f64)
    }
}

fn max_wait(replay: &Replay) -> String {
    replay
        .summary
        .time_to_needed
        .iter()
        .copied()
        .reduce(f64::max)
        .map_or("-".to_string(), duration)
}

const ROWS: [Row; 8] = [
    ("scale-ups", |replay| replay.summary.scale_ups.to_string()),
    ("scale-downs", |replay| {
        replay.summary.scale_downs.to_string()
    }),
    ("max replicas", |replay| {
        replay.summary.max_replicas.to_string()
    }),
    ("replica-hours", |replay| {
        format!("{:.2}", replay.summary.replica_hours)
    }),
    ("minutes above target x (1 + tol)", |replay| {
        format!("{:.1}", replay.summary.minutes_above_target)
    }),
    ("mean time to needed replicas", mean_wait),
    ("max time to needed replicas", max_wait),
    ("flaps (reversals in the window)", |replay| {
        replay.summary.flaps.to_string()
    }),
];

/// The summary, a chart per replay and the first scale events.
pub fn human(shown: &[Shown<'_>], load_model: &str, width: usize) -> String {
    let mut out = String::new();
    let Some(first) = shown.first() else {
        return out;
    };
    let summary = &first.replay.summary;
    let _ = writeln!(
        out,
        "infergate simulate: {} over {} ({} syncs)",
        identity(first.hpa),
        duration(summary.duration),
        first.replay.points.len()
    );
    let _ = writeln!(out, "load model: {load_model}");
    for item in shown {
        let _ = writeln!(out, "{}: {}", item.label, describe_metrics(item.hpa));
        let _ = writeln!(out, "  {}", behavior_line(item.hpa));
        for note in &item.replay.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    out.push('\n');
    let column = shown
        .iter()
        .map(|item| item.label.chars().count() + 2)
        .fold(14, usize::max);
    let _ = write!(out, "{:<34}", "");
    for item in shown {
        let _ = write!(out, "{:>column$}", item.label);
    }
    out.push('\n');
    for (name, value) in &ROWS {
        let _ = write!(out, "{name:<34}");
        for item in shown {
            let _ = write!(out, "{:>column$}", value(item.replay));
        }
        out.push('\n');
    }
    for item in shown {
        out.push('\n');
        let _ = writeln!(out, "{} ({}):", item.label, identity(item.hpa));
        out.push_str(&chart(item.hpa, &item.replay.points, width.clamp(40, 160)));
        out.push_str(&events(&item.replay.points, 12));
    }
    out
}

/// Replicas over time as blocks (`█` Ready, `▒` created but not Ready),
/// and below, each metric against its target as a strip.
fn chart(hpa: &SimulatedHpa, points: &[Point], width: usize) -> String {
    let mut out = String::new();
    if points.is_empty() {
        return out;
    }
    let columns = (width - 8).min(points.len()).max(1);
    let per_column = points.len().div_ceil(columns);
    let buckets: Vec<&[Point]> = points.chunks(per_column).collect();
    let top = points
        .iter()
        .map(|point| point.desired.max(point.ready))
        .max()
        .unwrap_or(1)
        .max(
            hpa.max_replicas
                .min(points.iter().map(|point| point.needed).max().unwrap_or(1)),
        )
        .max(1);
    let height = top.min(12);
    let scale = top as f64 / height as f64;
    for row in (1..=height).rev() {
        let level = (row as f64 * scale).ceil() as i64;
        let _ = write!(out, "{level:>5} │");
        for bucket in &buckets {
            let desired = bucket.iter().map(|point| point.desired).max().unwrap_or(0);
            let ready = bucket.iter().map(|point| point.ready).min().unwrap_or(0);
            out.push(if ready >= level {
                '█'
            } else if desired >= level {
                '▒'
            } else {
                ' '
            });
        }
        out.push('\n');
    }
    let _ = writeln!(out, "      └{}", "─".repeat(buckets.len()));
    let span = points.last().map_or(0.0, |point| point.t);
    let _ = writeln!(
        out,
        "       0{:>width$}",
        duration(span),
        width = buckets.len().saturating_sub(1)
    );
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    for (index, metric) in hpa.metrics.iter().enumerate() {
        let ratios: Vec<Option<f64>> = buckets
            .iter()
            .map(|bucket| {
                bucket
                    .iter()
                    .filter_map(|point| point.metrics.get(index).copied().flatten())
                    .reduce(f64::max)
                    .map(|value| value / metric.target)
            })
            .collect();
        let peak = ratios.iter().flatten().copied().fold(1.0, f64::max);
        let strip: String = ratios
            .iter()
            .map(|ratio| match ratio {
                None => ' ',
                Some(ratio) => LEVELS[((ratio / peak) * 7.0).round().clamp(0.0, 7.0) as usize],
            })
            .collect();
        let _ = writeln!(
            out,
            "      {strip}  {} / target (peak {peak:.2}x)",
            metric.name
        );
    }
    out.push_str("      █ Ready  ▒ starting\n");
    out
}

fn events(points: &[Point], limit: usize) -> String {
    let mut out = String::new();
    let mut previous = points.first().map_or(0, |point| point.desired);
    let mut shown = 0;
    let mut more = 0;
    for point in points {
        if point.desired != previous {
            if shown < limit {
                let _ = writeln!(
                    out,
                    "  {:>7}  {previous:>3} -> {:<3}  {}",
                    duration(point.t),
                    point.desired,
                    point.reason
                );
                shown += 1;
            } else {
                more += 1;
            }
        }
        previous = point.desired;
    }
    if more > 0 {
        let _ = writeln!(
            out,
            "  … {more} more changes (--format csv lists every sync)"
        );
    }
    out
}

fn series_json(hpa: &SimulatedHpa, replay: &Replay) -> Value {
    let series: Vec<Value> = replay
        .points
        .iter()
        .map(|point| {
            let metrics: serde_json::Map<String, Value> = hpa
                .metrics
                .iter()
                .zip(&point.metrics)
                .map(|(metric, value)| (metric.name.clone(), json!(value)))
                .collect();
            json!({
                "t": point.t,
                "desired": point.desired,
                "ready": point.ready,
                "needed": point.needed,
                "metrics": metrics,
                "reason": point.reason.to_string(),
            })
        })
        .collect();
    json!({
        "hpa": {"namespace": hpa.namespace, "name": hpa.name},
        "targets": hpa.metrics.iter().map(|metric| json!({"name": metric.name, "type": metric.source, "target": metric.target})).collect::<Vec<_>>(),
        "series": series,
        "summary": replay.summary.to_json(),
        "notes": replay.notes,
    })
}

/// `{"version": 1, "hpa", "series", "summary", ...}`; with a comparison,
/// the other replay under `compare` in the same shape.
pub fn json(shown: &[Shown<'_>], load_model: &str) -> String {
    let Some(first) = shown.first() else {
        return "{}\n".to_string();
    };
    let mut document = series_json(first.hpa, first.replay);
    document["version"] = json!(FORMAT_VERSION);
    document["loadModel"] = json!(load_model);
    if let Some(second) = shown.get(1) {
        let mut compare = series_json(second.hpa, second.replay);
        compare["label"] = json!(second.label);
        document["compare"] = compare;
    }
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One line per sync period (and per replay when comparing):
/// `run,t,desired,ready,needed,METRIC...,reason`.
pub fn csv(shown: &[Shown<'_>]) -> String {
    let mut out = String::new();
    let Some(first) = shown.first() else {
        return out;
    };
    out.push_str("run,t,desired,ready,needed");
    for metric in &first.hpa.metrics {
        out.push(',');
        out.push_str(&csv_field(&metric.name));
    }
    out.push_str(",reason\n");
    for item in shown {
        for point in &item.replay.points {
            let _ = write!(
                out,
                "{},{},{},{},{}",
                csv_field(item.label),
                point.t,
                point.desired,
                point.ready,
                point.needed
            );
            for index in 0..first.hpa.metrics.len() {
                out.push(',');
                if let Some(Some(value)) = point.metrics.get(index) {
                    let _ = write!(out, "{value}");
                }
            }
            out.push(',');
            out.push_str(&csv_field(&point.reason.to_string()));
            out.push('\n');
        }
    }
    out
}
