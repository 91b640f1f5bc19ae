//! The replay: the load a trace carries, pods that take `startup` seconds
//! to become Ready, and the controller every sync period.
//!
//! The load model: a trace recorded at `recorded` pods carries a total
//! load. A per-pod metric (Pods, Resource, External or Object with an
//! AverageValue target) read `value` per pod then, so the total is
//! `value x recorded`; at `n` Ready pods each reports `total / n`. A
//! Value target (External or Object) is the metric's own total and is
//! replayed as recorded. A new pod reports nothing until it is Ready; the
//! controller then treats it as the HPA controller treats a pod with no
//! metric.

use serde_json::{json, Value};

use super::controller::{Controller, Reading, Reason};
use super::hpa::{SimulatedHpa, TargetKind};
use super::trace::{Series, Trace};
use crate::policy::HpaController;

/// How a replay is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Seconds from a pod's creation to Ready.
    pub startup: f64,
    /// Pods at the start (all Ready).
    pub initial_replicas: i64,
    /// The pods the trace was recorded at when the trace does not say.
    pub recorded_replicas: Option<f64>,
    /// The yardstick of the service measures (minutes above target, the
    /// replicas the load needs): another HPA's targets, so that replays of
    /// HPAs with other targets are measured alike (`tune`). `None`: the
    /// replayed HPA's own.
    pub reference: Option<Reference>,
}

/// Targets, tolerance and maximum that the service of a replay is
/// measured against.
#[derive(Debug, Clone)]
pub struct Reference {
    /// One per metric, in the HPA's order.
    pub targets: Vec<f64>,
    pub tolerance: f64,
    pub max_replicas: i64,
}

impl Reference {
    pub fn of(hpa: &SimulatedHpa) -> Self {
        Self {
            targets: hpa.metrics.iter().map(|metric| metric.target).collect(),
            tolerance: hpa.tolerances().1,
            max_replicas: hpa.max_replicas,
        }
    }
}

/// One sync period of the replay.
#[derive(Debug, Clone)]
pub struct Point {
    /// Seconds from the trace's start.
    pub t: f64,
    pub desired: i64,
    pub ready: i64,
    /// What the controller read for each metric: the per-pod value (the
    /// total for a Value target); `None` while no pod reports.
    pub metrics: Vec<Option<f64>>,
    /// The replicas the load needs with every pod Ready (the largest over
    /// the metrics, within minReplicas and maxReplicas).
    pub needed: i64,
    /// Whether a metric read above its target x (1 + tolerance) (the
    /// reference's, when the setup has one).
    pub above_target: bool,
    pub reason: Reason,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub scale_ups: usize,
    pub scale_downs: usize,
    pub max_replicas: i64,
    /// Pod-hours of the pods that existed (Ready or starting).
    pub replica_hours: f64,
    /// Minutes a metric read above its target x (1 + tolerance).
    pub minutes_above_target: f64,
    /// Seconds from each rise of the needed replicas until that many were
    /// Ready, or the need fell back to the Ready pods (a rise never met
    /// counts to the end).
    pub time_to_needed: Vec<f64>,
    /// Direction changes within the scale-down stabilization window.
    pub flaps: usize,
    pub duration: f64,
}

pub struct Replay {
    pub points: Vec<Point>,
    pub summary: Summary,
    pub notes: Vec<String>,
}

/// The series of the HPA's metrics, in its order, found in the trace by
/// name, by the name without an adapter's prefix and suffix
/// (`prometheus.googleapis.com|vllm:num_requests_waiting|gauge`), or by
/// `map` (HPA metric name -> trace series name).
pub fn match_series<'t>(
    hpa: &SimulatedHpa,
    trace: &'t Trace,
    map: &[(String, String)],
) -> Result<Vec<&'t Series>, super::SimulateError> {
    let mut found = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for metric in &hpa.metrics {
        let mapped = map
            .iter()
            .find(|(name, _)| {
                *name == metric.name || *name == crate::k8s::metrics::base_name(&metric.name)
            })
            .map(|(_, series)| series.as_str());
        let base = crate::k8s::metrics::base_name(&metric.name);
        let candidates = [mapped, Some(metric.name.as_str()), Some(base)];
        let Some((name, series)) = candidates
            .into_iter()
            .flatten()
            .find_map(|name| trace.series.get_key_value(name))
        else {
            let known: Vec<&str> = trace.series.keys().map(String::as_str).collect();
            return Err(super::SimulateError::Trace {
                origin: "the trace".to_string(),
                message: format!(
                    "no series for the HPA's metric `{}`; the trace has {}; name it with --map {}=SERIES",
                    metric.name,
                    known.join(", "),
                    base
                ),
            });
        };
        // A per-pod value (a queue length, a utilization, a rate per pod)
        // is never below zero: a negative one is a broken export.
        if metric.kind.is_per_pod() {
            if let Some((at, value)) = series.samples.iter().find(|(_, value)| *value < 0.0) {
                return Err(super::SimulateError::Trace {
                    origin: trace
                        .origin
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| "the trace".to_string()),
                    message: format!(
                        "`{name}` is {value} at t={at}: the HPA's {} metric `{}` is a per-pod amount, never negative",
                        metric.source, metric.name
                    ),
                });
            }
        }
        used.insert(name.clone());
        found.push(series);
    }
    let replicas_series = map
        .iter()
        .find(|(name, _)| name == "replicas")
        .map(|(_, series)| series.clone());
    for (name, origin) in &trace.origin {
        if !used.contains(name) && replicas_series.as_deref() != Some(name.as_str()) {
            let wanted: Vec<&str> = hpa
                .metrics
                .iter()
                .map(|metric| metric.name.as_str())
                .collect();
            return Err(super::SimulateError::Trace {
                origin: origin.clone(),
                message: format!(
                    "`{name}` is none of the HPA's metrics ({}); drop it, or --map it to one",
                    wanted.join(", ")
                ),
            });
        }
    }
    Ok(found)
}

/// The trace's recorded replicas: the series `map` names `replicas`, else
/// the replicas column.
pub fn recorded_series<'t>(trace: &'t Trace, map: &[(String, String)]) -> Option<&'t Series> {
    map.iter()
        .find(|(name, _)| name == "replicas")
        .and_then(|(_, series)| trace.series.get(series))
        .or(trace.replicas.as_ref())
}

/// The most sync periods one replay runs: a year of 15 s syncs (the
/// series is held in memory).
pub const MAX_SYNCS: f64 = 2_200_000.0;

/// Refuse a trace that spans more sync periods than [`MAX_SYNCS`].
pub fn check_span(trace: &Trace, config: &HpaController) -> Result<(), super::SimulateError> {
    let (Some(start), Some(end)) = (trace.start(), trace.end()) else {
        return Ok(());
    };
    let syncs = (end - start) / config.sync_period_seconds;
    if syncs > MAX_SYNCS {
        return Err(super::SimulateError::Trace {
            origin: "the trace".to_string(),
            message: format!(
                "it spans {:.0} days, {syncs:.0} syncs of {} s; replay at most a year at a time",
                (end - start) / 86_400.0,
                config.sync_period_seconds
            ),
        });
    }
    Ok(())
}

/// Pods of the replay created at one sync: when, when they are Ready,
/// and how many. Pods are kept as such cohorts, so memory follows the
/// number of scale-ups in the trace, not the replica count (an HPA may
/// allow 2^31 - 1 replicas).
#[derive(Debug, Clone, Copy)]
struct Cohort {
    created: f64,
    ready_at: f64,
    count: i64,
}

/// The pods of the replay, as cohorts in order of creation.
#[derive(Debug, Default)]
struct Pods {
    cohorts: Vec<Cohort>,
}

impl Pods {
    fn total(&self) -> i64 {
        self.cohorts.iter().map(|cohort| cohort.count).sum()
    }

    fn ready(&self, now: f64) -> i64 {
        self.cohorts
            .iter()
            .filter(|cohort| cohort.ready_at <= now)
            .map(|cohort| cohort.count)
            .sum()
    }

    fn add(&mut self, created: f64, ready_at: f64, count: i64) {
        if count > 0 {
            self.cohorts.push(Cohort {
                created,
                ready_at,
                count,
            });
        }
    }

    /// Remove `count` pods as the ReplicaSet controller picks them: pods
    /// that are not Ready first, then the newest.
    fn remove(&mut self, now: f64, mut count: i64) {
        let mut order: Vec<usize> = (0..self.cohorts.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.cohorts[a], &self.cohorts[b]);
            let ready = |cohort: &Cohort| cohort.ready_at <= now;
            ready(a)
                .cmp(&ready(b))
                .then(b.created.total_cmp(&a.created))
        });
        for index in order {
            if count <= 0 {
                break;
            }
            let taken = self.cohorts[index].count.min(count);
            self.cohorts[index].count -= taken;
            count -= taken;
        }
        self.cohorts.retain(|cohort| cohort.count > 0);
    }
}

pub fn replay(
    hpa: &SimulatedHpa,
    config: &HpaController,
    trace: &Trace,
    series: &[&Series],
    recorded: Option<&Series>,
    setup: &Setup,
) -> Replay {
    let mut notes = hpa.notes.clone();
    let start = trace.start().unwrap_or(0.0);
    let end = trace.end().unwrap_or(start);
    let period = config.sync_period_seconds;
    let initial = setup
        .initial_replicas
        .clamp(hpa.min_replicas, hpa.max_replicas.max(hpa.min_replicas));
    let default_recorded = setup.recorded_replicas.unwrap_or(initial as f64);
    if recorded.is_none()
        && setup.recorded_replicas.is_none()
        && hpa.metrics.iter().any(|metric| metric.kind.is_per_pod())
    {
        notes.push(format!(
            "the trace gives no replicas column: assumed recorded at {initial} pods (--recorded-replicas sets it)"
        ));
    }
    let mut pods = Pods::default();
    pods.add(start - setup.startup, start, initial);
    let mut controller = Controller::new(hpa, config);
    let mut points = Vec::new();
    let (_, own_tolerance) = hpa.tolerances();
    let scale_up_tolerance = setup
        .reference
        .as_ref()
        .map_or(own_tolerance, |reference| reference.tolerance);
    // The replicas the load needs: within the HPA's bounds, or with a
    // reference from one to its maximum (the load's need, not a floor).
    let (need_floor, need_ceiling) = setup
        .reference
        .as_ref()
        .map_or((hpa.min_replicas, hpa.max_replicas), |reference| {
            (1, reference.max_replicas)
        });
    let mut summary = Summary::default();
    let mut step = 0u64;
    loop {
        let now = start + step as f64 * period;
        if now > end {
            break;
        }
        let ready = pods.ready(now);
        let current = pods.total();
        let recorded_now = recorded
            .and_then(|series| series.at(now))
            .unwrap_or(default_recorded)
            .max(0.0);
        let mut readings = Vec::new();
        let mut shown = Vec::new();
        let mut needed = need_floor;
        let mut above = false;
        for (index, (metric, samples)) in hpa.metrics.iter().zip(series).enumerate() {
            let yardstick = setup
                .reference
                .as_ref()
                .and_then(|reference| reference.targets.get(index).copied())
                .unwrap_or(metric.target);
            let value = samples.at(now).unwrap_or(0.0);
            let (reading, seen, need) = if metric.kind.is_per_pod() {
                let total = value * recorded_now;
                let need = (total / yardstick).ceil() as i64;
                match metric.kind {
                    TargetKind::AverageValue => (
                        Reading::Total {
                            value: total,
                            ready,
                        },
                        Some(total / current.max(1) as f64),
                        need,
                    ),
                    _ => {
                        let per_pod = if ready > 0 { total / ready as f64 } else { 0.0 };
                        (
                            Reading::PerPod {
                                value: per_pod,
                                reporting: ready,
                                missing: current - ready,
                            },
                            (ready > 0).then_some(per_pod),
                            need,
                        )
                    }
                }
            } else {
                // A total that does not follow the pods: the replicas that
                // bring it to target are unknown, so the current ones
                // scaled by its ratio.
                let need = ((value / yardstick) * ready.max(1) as f64).ceil() as i64;
                (Reading::Total { value, ready }, Some(value), need)
            };
            if seen.is_some_and(|seen| seen > yardstick * (1.0 + scale_up_tolerance)) {
                above = true;
            }
            needed = needed.max(need);
            readings.push(reading);
            shown.push(seen);
        }
        let needed = needed.clamp(need_floor, need_ceiling.max(need_floor));
        let (desired, reason) = controller.sync(now, current, &readings);
        if desired > current {
            summary.scale_ups += 1;
            pods.add(now, now + setup.startup, desired - current);
        } else if desired < current {
            summary.scale_downs += 1;
            pods.remove(now, current - desired.max(0));
        }
        if above {
            summary.minutes_above_target += period / 60.0;
        }
        let total = pods.total();
        summary.replica_hours += total as f64 * period / 3600.0;
        summary.max_replicas = summary.max_replicas.max(total);
        points.push(Point {
            t: now - start,
            desired,
            ready,
            metrics: shown,
            needed,
            above_target: above,
            reason,
        });
        step += 1;
    }
    summary.duration = end - start;
    summary.time_to_needed = time_to_needed(&points, period);
    summary.flaps = flaps(&points, scale_down_window(hpa, config));
    Replay {
        points,
        summary,
        notes,
    }
}

/// From each rise of `needed` above the Ready pods, the seconds until
/// that many pods are Ready (or until the end).
pub fn time_to_needed(points: &[Point], period: f64) -> Vec<f64> {
    let mut waits = Vec::new();
    let mut previous_needed = points.first().map_or(0, |point| point.needed);
    for (index, point) in points.iter().enumerate() {
        if point.needed > previous_needed && point.needed > point.ready {
            let met = points[index..]
                .iter()
                // Met, or the need fell back to what is Ready.
                .find(|later| later.ready >= point.needed.min(later.needed))
                .map_or_else(
                    || points.last().map_or(0.0, |last| last.t + period),
                    |later| later.t,
                );
            waits.push(met - point.t);
        }
        previous_needed = point.needed;
    }
    waits
}

/// The scale-down stabilization window in force for `hpa`.
pub fn scale_down_window(hpa: &SimulatedHpa, config: &HpaController) -> f64 {
    hpa.behavior
        .as_ref()
        .map_or(config.downscale_stabilization_seconds, |behavior| {
            behavior.scale_down.stabilization_seconds
        })
}

/// Changes of direction (an increase then a decrease, or the reverse)
/// closer together than `window` seconds.
pub fn flaps(points: &[Point], window: f64) -> usize {
    let mut last: Option<(f64, i64)> = None;
    let mut count = 0;
    let mut previous = points.first().map_or(0, |point| point.desired);
    for point in points {
        let direction = (point.desired - previous).signum();
        if direction != 0 {
            if let Some((at, last_direction)) = last {
                if last_direction != direction && point.t - at < window {
                    count += 1;
                }
            }
            last = Some((point.t, direction));
        }
        previous = point.desired;
    }
    count
}

impl Summary {
    pub fn to_json(&self) -> Value {
        let mean = if self.time_to_needed.is_empty() {
            Value::Null
        } else {
            json!(self.time_to_needed.iter().sum::<f64>() / self.time_to_needed.len() as f64)
        };
        json!({
            "scaleUps": self.scale_ups,
            "scaleDowns": self.scale_downs,
            "maxReplicas": self.max_replicas,
            "replicaHours": (self.replica_hours * 1000.0).round() / 1000.0,
            "minutesAboveTarget": (self.minutes_above_target * 100.0).round() / 100.0,
            "secondsToNeededReplicas": {
                "each": self.time_to_needed,
                "mean": mean,
                "max": self.time_to_needed.iter().copied().reduce(f64::max),
            },
            "flaps": self.flaps,
            "durationSeconds": self.duration,
        })
    }
}
