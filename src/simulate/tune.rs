//! `infergate tune`: the HPA a trace asks for. The replay of [`super::run`]
//! is the model; the search varies an HPA's knobs (its targets, minReplicas,
//! the scale-up and scale-down windows and policies), scores every
//! configuration on cost (replica-hours) and service (minutes above the
//! original targets, time from a rise in need to enough Ready pods, flaps),
//! and picks the cheapest that meets the service objective.
//!
//! Service is always measured against the original HPA's targets
//! ([`super::run::Reference`]): a configuration that raises its target is
//! not "above target" less often by definition.

use crate::input::pointer::Lookup;
use std::collections::HashMap;

use rayon::prelude::*;
use serde_json::{json, Value};

use super::hpa::{Behavior, PolicyKind, Rules, Select, SimulatedHpa, TargetKind};
use super::run::{self, Point, Reference, Setup};
use super::trace::{Series, Trace};
use crate::policy::HpaController;

/// What a team asks of its autoscaler on the trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// At most this many minutes with a metric above its target × (1 +
    /// tolerance).
    MinutesAboveTarget(f64),
    /// The 95th percentile of the time from a rise in need to enough Ready
    /// pods, in seconds.
    TimeToReadyP95(f64),
    /// At most this many direction reversals within the scale-down window.
    Flaps(usize),
}

impl Objective {
    /// `minutes-above-target<=5`, `time-to-ready-p95<=4m`, `no-flaps`,
    /// `flaps<=2`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "no-flaps" {
            return Ok(Self::Flaps(0));
        }
        let Some((name, bound)) = text.split_once("<=") else {
            return Err(format!(
                "`{text}` is not an objective: write NAME<=BOUND (minutes-above-target<=5, time-to-ready-p95<=4m, flaps<=2) or no-flaps"
            ));
        };
        let bound = bound.trim();
        match name.trim() {
            "minutes-above-target" => bound
                .parse::<f64>()
                .ok()
                .filter(|minutes| minutes.is_finite() && *minutes >= 0.0)
                .map(Self::MinutesAboveTarget)
                .ok_or_else(|| format!("`{bound}` is not a number of minutes")),
            "time-to-ready-p95" => crate::input::duration::parse(bound)
                .filter(|seconds| *seconds >= 0.0)
                .map(Self::TimeToReadyP95)
                .ok_or_else(|| format!("`{bound}` is not a duration (90s, 4m)")),
            "flaps" => bound
                .parse::<usize>()
                .map(Self::Flaps)
                .map_err(|_| format!("`{bound}` is not a count of flaps")),
            other => Err(format!(
                "unknown objective `{other}`: minutes-above-target, time-to-ready-p95, flaps (or no-flaps)"
            )),
        }
    }

    /// How far `score` misses this objective, in the objective's units
    /// relative to its bound (0 when met).
    fn shortfall(&self, score: &Score) -> f64 {
        let relative = |value: f64, bound: f64| {
            if value <= bound + 1e-9 {
                0.0
            } else {
                (value - bound) / bound.max(1.0)
            }
        };
        match self {
            Self::MinutesAboveTarget(bound) => relative(score.minutes_above_target, *bound),
            Self::TimeToReadyP95(bound) => relative(score.time_to_ready_p95, *bound),
            Self::Flaps(bound) => relative(score.flaps as f64, *bound as f64),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::MinutesAboveTarget(bound) => format!("minutes-above-target<={bound}"),
            Self::TimeToReadyP95(bound) => format!("time-to-ready-p95<={bound}s"),
            Self::Flaps(0) => "no-flaps".to_string(),
            Self::Flaps(bound) => format!("flaps<={bound}"),
        }
    }
}

/// A replay's cost and service over a window of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Pod-hours of the pods that existed (Ready or loading).
    pub replica_hours: f64,
    pub minutes_above_target: f64,
    /// Seconds; 0 when the need never rose above the Ready pods.
    pub time_to_ready_p95: f64,
    pub flaps: usize,
    pub max_replicas: i64,
}

impl Score {
    /// The score of the points whose time is in `window` (seconds from the
    /// trace's start); "above target" is what the replay measured, against
    /// its setup's reference.
    pub fn of(points: &[Point], window: (f64, f64), period: f64, flap_window: f64) -> Self {
        let from = points.partition_point(|point| point.t < window.0);
        let to = points.partition_point(|point| point.t < window.1);
        let points = &points[from..to.max(from)];
        let mut score = Self::default();
        for point in points {
            score.replica_hours += point.desired.max(0) as f64 * period / 3600.0;
            score.max_replicas = score.max_replicas.max(point.desired);
            if point.above_target {
                score.minutes_above_target += period / 60.0;
            }
        }
        score.time_to_ready_p95 = percentile(&run::time_to_needed(points, period), 0.95);
        score.flaps = run::flaps(points, flap_window);
        score
    }

    /// Whether `self` is at least as good as `other` everywhere and better
    /// somewhere.
    pub fn dominates(&self, other: &Self) -> bool {
        const EPSILON: f64 = 1e-9;
        let no_worse = self.replica_hours <= other.replica_hours + EPSILON
            && self.minutes_above_target <= other.minutes_above_target + EPSILON
            && self.time_to_ready_p95 <= other.time_to_ready_p95 + EPSILON
            && self.flaps <= other.flaps;
        let better = self.replica_hours < other.replica_hours - EPSILON
            || self.minutes_above_target < other.minutes_above_target - EPSILON
            || self.time_to_ready_p95 < other.time_to_ready_p95 - EPSILON
            || self.flaps < other.flaps;
        no_worse && better
    }

    pub fn to_json(self) -> Value {
        json!({
            "replicaHours": round(self.replica_hours, 3),
            "minutesAboveTarget": round(self.minutes_above_target, 2),
            "timeToReadyP95Seconds": round(self.time_to_ready_p95, 1),
            "flaps": self.flaps,
            "maxReplicas": self.max_replicas,
        })
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// The nearest-rank percentile; 0 for no values.
fn percentile(values: &[f64], fraction: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The values each knob takes in the search. Targets move by one factor
/// for every metric; the policies are those the GKE and Kubernetes
/// documentation show for serving workloads (a few pods or a percentage a
/// minute, and the controller's defaults).
#[derive(Debug, Clone)]
pub struct Space {
    pub target_factors: Vec<f64>,
    pub min_replicas: Vec<i64>,
    pub scale_up_windows: Vec<f64>,
    pub scale_up_policies: Vec<Vec<(PolicyKind, i64, f64)>>,
    pub scale_down_windows: Vec<f64>,
    pub scale_down_policies: Vec<Vec<(PolicyKind, i64, f64)>>,
}

/// One point of the space, as indices into its dimensions.
pub type Knobs = [usize; 6];

impl Space {
    /// The space around `hpa`. Scale-down windows start at
    /// `min_scale_down_window` (the policy's
    /// `hpaBehavior.minScaleDownStabilizationSeconds`: shorter ones are what
    /// hpa-stabilization-defaults warns about).
    pub fn for_hpa(hpa: &SimulatedHpa, config: &HpaController, min_scale_down_window: f64) -> Self {
        use PolicyKind::{Percent, Pods};
        let mut min_replicas = vec![1, hpa.min_replicas, hpa.min_replicas + 1];
        min_replicas.retain(|min| *min <= hpa.max_replicas);
        min_replicas.sort_unstable();
        min_replicas.dedup();
        // The controller's default policies (the policy schema admits only
        // Pods and Percent, so they always read).
        let defaults = |rules: &crate::policy::ScalingRules| {
            super::hpa::scaling_policies(rules).unwrap_or_default()
        };
        Self {
            target_factors: vec![0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0],
            min_replicas,
            scale_up_windows: vec![0.0, 30.0, 60.0, 120.0],
            scale_up_policies: vec![
                defaults(&config.default_scale_up),
                vec![(Pods, 1, 60.0)],
                vec![(Pods, 2, 60.0)],
                vec![(Pods, 4, 60.0)],
                vec![(Pods, 8, 60.0)],
                vec![(Pods, 2, 15.0)],
                vec![(Percent, 50, 15.0)],
                vec![(Percent, 100, 60.0)],
                vec![(Percent, 200, 60.0)],
            ],
            scale_down_windows: {
                let mut windows: Vec<f64> = [60.0, 120.0, 300.0, 600.0, 900.0, 1800.0]
                    .into_iter()
                    .filter(|window| *window >= min_scale_down_window)
                    .collect();
                if windows.first() != Some(&min_scale_down_window) {
                    windows.insert(0, min_scale_down_window.max(0.0));
                }
                windows
            },
            scale_down_policies: vec![
                defaults(&config.default_scale_down),
                vec![(Pods, 1, 60.0)],
                vec![(Pods, 2, 60.0)],
                vec![(Percent, 10, 60.0)],
                vec![(Percent, 25, 60.0)],
                vec![(Percent, 50, 60.0)],
            ],
        }
    }

    fn sizes(&self) -> Knobs {
        [
            self.target_factors.len(),
            self.min_replicas.len(),
            self.scale_up_windows.len(),
            self.scale_up_policies.len(),
            self.scale_down_windows.len(),
            self.scale_down_policies.len(),
        ]
    }

    pub fn len(&self) -> usize {
        self.sizes().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn all(&self) -> Vec<Knobs> {
        let sizes = self.sizes();
        let mut all = Vec::with_capacity(self.len());
        for index in 0..self.len() {
            let mut rest = index;
            let mut knobs = [0; 6];
            for (dimension, size) in sizes.iter().enumerate() {
                knobs[dimension] = rest % size;
                rest /= size;
            }
            all.push(knobs);
        }
        all
    }

    /// The point nearest the original HPA: its targets and minimum, and
    /// the windows and policies nearest its own (the defaults when it has
    /// no behavior).
    fn nearest(&self, hpa: &SimulatedHpa, config: &HpaController) -> Knobs {
        let nearest = |values: &[f64], value: f64| {
            values
                .iter()
                .enumerate()
                .min_by(|a, b| (a.1 - value).abs().total_cmp(&(b.1 - value).abs()))
                .map_or(0, |(index, _)| index)
        };
        let factor = nearest(&self.target_factors, 1.0);
        let min = self
            .min_replicas
            .iter()
            .position(|min| *min == hpa.min_replicas)
            .unwrap_or(0);
        let (up_window, down_window, up_policy, down_policy) = match &hpa.behavior {
            Some(behavior) => (
                behavior.scale_up.stabilization_seconds,
                behavior.scale_down.stabilization_seconds,
                self.scale_up_policies
                    .iter()
                    .position(|policies| *policies == behavior.scale_up.policies)
                    .unwrap_or(0),
                self.scale_down_policies
                    .iter()
                    .position(|policies| *policies == behavior.scale_down.policies)
                    .unwrap_or(0),
            ),
            None => (0.0, config.downscale_stabilization_seconds, 0, 0),
        };
        [
            factor,
            min,
            nearest(&self.scale_up_windows, up_window),
            up_policy,
            nearest(&self.scale_down_windows, down_window),
            down_policy,
        ]
    }

    /// The HPA at `knobs`: the original with its targets scaled, its
    /// minimum and an explicit behavior (selectPolicy Max, the original's
    /// tolerances).
    pub fn candidate(&self, original: &SimulatedHpa, knobs: Knobs) -> SimulatedHpa {
        let mut hpa = original.clone();
        let factor = self.target_factors[knobs[0]];
        for metric in &mut hpa.metrics {
            metric.target = scaled_target(metric.kind, metric.target, factor);
        }
        hpa.min_replicas = self.min_replicas[knobs[1]];
        let (down_tolerance, up_tolerance) = original.tolerances();
        hpa.behavior = Some(Behavior {
            scale_up: Rules {
                stabilization_seconds: self.scale_up_windows[knobs[2]],
                select: Select::Max,
                policies: self.scale_up_policies[knobs[3]].clone(),
                tolerance: up_tolerance,
            },
            scale_down: Rules {
                stabilization_seconds: self.scale_down_windows[knobs[4]],
                select: Select::Max,
                policies: self.scale_down_policies[knobs[5]].clone(),
                tolerance: down_tolerance,
            },
        });
        hpa
    }
}

/// A target times `factor`, as a manifest can write it: a whole percent
/// for a utilization, else milli-units (a Quantity's precision).
pub fn scaled_target(kind: TargetKind, target: f64, factor: f64) -> f64 {
    let scaled = target * factor;
    match kind {
        TargetKind::Utilization => scaled.round().max(1.0),
        _ => ((scaled * 1000.0).round() / 1000.0).max(0.001),
    }
}

/// The replay inputs shared by every candidate.
pub struct Problem<'a> {
    pub original: &'a SimulatedHpa,
    pub config: &'a HpaController,
    pub trace: &'a Trace,
    pub series: Vec<&'a Series>,
    pub recorded: Option<&'a Series>,
    pub setup: Setup,
    /// The part of the trace tuned on, in seconds from its start.
    pub window: (f64, f64),
}

impl Problem<'_> {
    /// Replay `hpa` and score it over the tuning window.
    pub fn score(&self, hpa: &SimulatedHpa) -> Score {
        let replay = self.replay(hpa);
        self.score_points(&replay.points, self.window)
    }

    pub fn replay(&self, hpa: &SimulatedHpa) -> run::Replay {
        let mut setup = self.setup.clone();
        setup.reference = Some(Reference::of(self.original));
        run::replay(
            hpa,
            self.config,
            self.trace,
            &self.series,
            self.recorded,
            &setup,
        )
    }

    /// Score replayed points over `window`, flaps counted within the
    /// original's scale-down window (one yardstick for every candidate).
    pub fn score_points(&self, points: &[Point], window: (f64, f64)) -> Score {
        Score::of(
            points,
            window,
            self.config.sync_period_seconds,
            run::scale_down_window(self.original, self.config),
        )
    }
}

/// How a search went: everything evaluated, the front, the choice.
pub struct Tuned {
    pub current: Score,
    /// Every configuration scored, the original first (`None` knobs).
    pub evaluated: Vec<(Option<Knobs>, Score)>,
    /// Indices into `evaluated` of the Pareto front, cheapest first.
    pub front: Vec<usize>,
    /// The cheapest configuration that meets every objective, if any.
    pub chosen: Option<usize>,
    /// When none meets them: the one that misses them least.
    pub closest: Option<usize>,
    /// `grid` (every point of the space) or `sample and coordinate
    /// descent`.
    pub strategy: &'static str,
    pub seconds: f64,
}

/// The coordinate descent starts from the original's neighbourhood and
/// from this many of the best configurations of a random sample of at
/// least `MIN_SAMPLE`.
const DESCENT_STARTS: usize = 12;
/// The configurations, cheapest first, offered to `accept` before the
/// search gives up on one it takes.
const ACCEPT_TRIES: usize = 64;
const MIN_SAMPLE: usize = 200;

fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Most sync evaluations the exhaustive grid may cost (candidates × syncs);
/// past it the search samples as many and descends one knob at a time from
/// the best of them.
pub const GRID_BUDGET: f64 = 3.0e7;

/// What a configuration must keep when the team names no objective: no
/// more minutes above target and no more flaps than the current HPA. The
/// time to ready is reported, not held: it follows the start-up, and a
/// slower scale-up that never lets a metric cross its target costs no
/// service.
pub fn default_objectives(current: &Score) -> Vec<Objective> {
    vec![
        Objective::MinutesAboveTarget(current.minutes_above_target),
        Objective::Flaps(current.flaps),
    ]
}

/// Search `space` for the cheapest configuration that meets
/// `objectives` (none: [`default_objectives`]) and that `accept` takes,
/// replaying about `budget` configurations (default: what
/// [`GRID_BUDGET`] syncs allow) before the descent.
pub fn search(
    problem: &Problem<'_>,
    space: &Space,
    objectives: &[Objective],
    budget: Option<usize>,
    accept: &mut dyn FnMut(Knobs) -> bool,
) -> Tuned {
    let started = std::time::Instant::now();
    let current = problem.score(problem.original);
    let objectives: Vec<Objective> = if objectives.is_empty() {
        default_objectives(&current)
    } else {
        objectives.to_vec()
    };
    let rank = |score: &Score| -> (f64, f64) {
        let shortfall: f64 = objectives
            .iter()
            .map(|objective| objective.shortfall(score))
            .sum();
        (shortfall, score.replica_hours)
    };
    let syncs =
        ((problem.window.1 - problem.window.0) / problem.config.sync_period_seconds).max(1.0) + 1.0;
    let mut scores: HashMap<Knobs, Score> = HashMap::new();
    let evaluate = |batch: Vec<Knobs>, scores: &mut HashMap<Knobs, Score>| {
        let fresh: Vec<Knobs> = batch
            .into_iter()
            .filter(|knobs| !scores.contains_key(knobs))
            .collect();
        let results: Vec<(Knobs, Score)> = fresh
            .par_iter()
            .map(|knobs| {
                (
                    *knobs,
                    problem.score(&space.candidate(problem.original, *knobs)),
                )
            })
            .collect();
        scores.extend(results);
    };
    // How many configurations the search may replay: the caller's budget,
    // else as many as GRID_BUDGET syncs allow.
    let affordable = budget
        .unwrap_or((GRID_BUDGET / syncs) as usize)
        .max(MIN_SAMPLE);
    let strategy = if space.len() <= affordable {
        evaluate(space.all(), &mut scores);
        "grid"
    } else {
        let sizes = space.sizes();
        let nearest = space.nearest(problem.original, problem.config);
        // Starts: the original's neighbourhood, a lean one (higher target,
        // short scale-down window) and a quick one (lower target, fast
        // scale-up).
        // A random sample of the space as large as the budget allows (the
        // same on every run), then a descent from the original's
        // neighbourhood and from the sample's best.
        let sample_size = affordable.min(space.len());
        let mut state = 0x5eed_u64;
        let mut sample = Vec::with_capacity(sample_size);
        let mut seen = std::collections::HashSet::new();
        while sample.len() < sample_size {
            let mut knobs = [0; 6];
            for (dimension, size) in sizes.iter().enumerate() {
                state = splitmix(state);
                knobs[dimension] = (state % *size as u64) as usize;
            }
            if seen.insert(knobs) {
                sample.push(knobs);
            }
        }
        evaluate(sample.clone(), &mut scores);
        sample.sort_by(|a, b| {
            rank(&scores[a])
                .partial_cmp(&rank(&scores[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut starts = vec![nearest];
        starts.extend(sample.iter().take(DESCENT_STARTS));
        // Move to the best of `batch` (evaluated first).
        let step = |at: &mut Knobs, batch: Vec<Knobs>, scores: &mut HashMap<Knobs, Score>| {
            evaluate(batch.clone(), scores);
            if let Some(best) = batch.iter().min_by(|a, b| {
                let (a, b) = (rank(&scores[*a]), rank(&scores[*b]));
                a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
            }) {
                *at = *best;
            }
        };
        let mut best_end: Option<Knobs> = None;
        for start in starts {
            let mut at = start;
            for _round in 0..8 {
                let before = at;
                for dimension in 0..6 {
                    let batch: Vec<Knobs> = (0..sizes[dimension])
                        .map(|value| {
                            let mut knobs = at;
                            knobs[dimension] = value;
                            knobs
                        })
                        .collect();
                    step(&mut at, batch, &mut scores);
                }
                if at == before {
                    break;
                }
            }
            if best_end.is_none_or(|best| rank(&scores[&at]) < rank(&scores[&best])) {
                best_end = Some(at);
            }
        }
        // One knob at a time stops where two must move together (a
        // shorter scale-down window pays only with a faster scale-up):
        // from the best end, every pair of knobs at once, until no pair
        // improves.
        if let Some(mut at) = best_end {
            for _round in 0..3 {
                let before = at;
                for first in 0..6 {
                    for second in first + 1..6 {
                        let mut batch = Vec::new();
                        for a in 0..sizes[first] {
                            for b in 0..sizes[second] {
                                let mut knobs = at;
                                knobs[first] = a;
                                knobs[second] = b;
                                batch.push(knobs);
                            }
                        }
                        step(&mut at, batch, &mut scores);
                    }
                }
                if at == before {
                    break;
                }
            }
        }
        "sample and coordinate descent"
    };
    let mut evaluated: Vec<(Option<Knobs>, Score)> = vec![(None, current)];
    let mut sorted: Vec<(Knobs, Score)> = scores.into_iter().collect();
    sorted.sort_by_key(|(knobs, _)| *knobs);
    evaluated.extend(
        sorted
            .into_iter()
            .map(|(knobs, score)| (Some(knobs), score)),
    );
    let mut front: Vec<usize> = (0..evaluated.len())
        .filter(|&index| {
            !evaluated
                .iter()
                .any(|(_, other)| other.dominates(&evaluated[index].1))
        })
        .collect();
    front.sort_by(|a, b| {
        evaluated[*a]
            .1
            .replica_hours
            .total_cmp(&evaluated[*b].1.replica_hours)
    });
    front.dedup_by(|a, b| evaluated[*a].1 == evaluated[*b].1);
    // The cheapest that meets the objectives and that `accept` takes (the
    // CLI's check that the patch trips no rule); else the closest.
    let mut order: Vec<usize> = (0..evaluated.len()).collect();
    order.sort_by(|a, b| {
        rank(&evaluated[*a].1)
            .partial_cmp(&rank(&evaluated[*b].1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut tries = 0;
    let mut acceptable = |index: &usize| match evaluated[*index].0 {
        None => true,
        Some(knobs) => {
            tries += 1;
            tries <= ACCEPT_TRIES && accept(knobs)
        }
    };
    let met = order
        .iter()
        .copied()
        .filter(|index| rank(&evaluated[*index].1).0 == 0.0)
        .find(|index| acceptable(index));
    let best = if met.is_none() {
        order.iter().copied().find(|index| acceptable(index))
    } else {
        None
    };
    Tuned {
        current,
        chosen: met,
        closest: best,
        evaluated,
        front,
        strategy,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The RFC 6902 operations that turn the autoscaler `object` (read as
/// `original`) into `chosen`: the targets that moved, the minimum, and the
/// behavior written out in full (selectPolicy Max, each policy, the
/// tolerances the original wrote). A ScaledObject gets its trigger
/// thresholds as strings (KEDA's metadata), its `minReplicaCount` and
/// `advanced.horizontalPodAutoscalerConfig.behavior`.
pub fn patch(
    object: &crate::input::object::Object,
    original: &SimulatedHpa,
    chosen: &SimulatedHpa,
    config: &HpaController,
) -> Vec<json_patch::PatchOperation> {
    use crate::input::pointer::op;
    use crate::k8s::autoscaler;
    let keda = autoscaler::is_scaled_object(object);
    let mut operations = Vec::new();
    for (before, after) in original.metrics.iter().zip(&chosen.metrics) {
        if before.target == after.target {
            continue;
        }
        let Some(pointer) = &after.target_pointer else {
            continue;
        };
        let value = quantity(after.kind, after.target, keda);
        operations.extend(op::replace(pointer, value));
    }
    if chosen.min_replicas != original.min_replicas {
        let pointer = if keda {
            "/spec/minReplicaCount"
        } else {
            "/spec/minReplicas"
        };
        let value = json!(chosen.min_replicas);
        operations.extend(if object.value.at(pointer).is_some() {
            op::replace(pointer, value)
        } else {
            op::add(pointer, value)
        });
    }
    if let Some(behavior) = chosen
        .behavior
        .as_ref()
        .filter(|behavior| original.behavior.as_ref() != Some(*behavior))
    {
        let written = behavior_json(behavior, config);
        let pointer = autoscaler::behavior_pointer(object);
        // A behavior written as a block is removed and written anew (text
        // edits replace scalars and flow collections in place, not blocks).
        if object.value.at(pointer).is_some() {
            operations.extend(op::remove(pointer));
            operations.extend(op::add(pointer, written));
        } else {
            operations.extend(autoscaler::add_behavior(object, written));
        }
    }
    operations
}

/// A target as a manifest writes it: a whole number as a number (a
/// utilization is always one), a fraction as a decimal Quantity string;
/// KEDA's trigger metadata always as a string.
fn quantity(kind: TargetKind, target: f64, as_string: bool) -> Value {
    let whole = target.fract() == 0.0 && target.abs() < 1e15;
    let text = if whole {
        format!("{}", target as i64)
    } else {
        format!("{}", round(target, 3))
    };
    if as_string {
        return Value::String(text);
    }
    match (kind, whole) {
        (TargetKind::Utilization, _) => json!(target.round() as i64),
        (_, true) => json!(target as i64),
        (_, false) => Value::String(text),
    }
}

/// A behavior as autoscaling/v2 writes it, every field explicit.
fn behavior_json(behavior: &Behavior, config: &HpaController) -> Value {
    let rules = |rules: &Rules| {
        let mut written = json!({
            "stabilizationWindowSeconds": rules.stabilization_seconds as i64,
            "selectPolicy": match rules.select {
                Select::Max => "Max",
                Select::Min => "Min",
                Select::Disabled => "Disabled",
            },
            "policies": rules.policies.iter().map(|(kind, value, period)| json!({
                "type": match kind { PolicyKind::Pods => "Pods", PolicyKind::Percent => "Percent" },
                "value": value,
                "periodSeconds": *period as i64,
            })).collect::<Vec<_>>(),
        });
        if (rules.tolerance - config.tolerance).abs() > 1e-12 {
            written["tolerance"] = Value::String(format!("{}", round(rules.tolerance, 3)));
        }
        written
    };
    json!({
        "scaleUp": rules(&behavior.scale_up),
        "scaleDown": rules(&behavior.scale_down),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_and_say_what_is_wrong() {
        assert_eq!(
            Objective::parse("minutes-above-target<=5"),
            Ok(Objective::MinutesAboveTarget(5.0))
        );
        assert_eq!(
            Objective::parse("time-to-ready-p95 <= 4m"),
            Ok(Objective::TimeToReadyP95(240.0))
        );
        assert_eq!(Objective::parse("no-flaps"), Ok(Objective::Flaps(0)));
        assert!(Objective::parse("latency<=3")
            .unwrap_err()
            .contains("unknown objective `latency`"));
        assert!(Objective::parse("flaps=2")
            .unwrap_err()
            .contains("NAME<=BOUND"));
    }

    #[test]
    fn domination_needs_no_worse_everywhere_and_better_somewhere() {
        let base = Score {
            replica_hours: 10.0,
            minutes_above_target: 3.0,
            time_to_ready_p95: 120.0,
            flaps: 1,
            max_replicas: 5,
        };
        let cheaper = Score {
            replica_hours: 8.0,
            ..base
        };
        let cheaper_but_slower = Score {
            time_to_ready_p95: 180.0,
            ..cheaper
        };
        assert!(cheaper.dominates(&base));
        assert!(!base.dominates(&cheaper));
        assert!(!cheaper_but_slower.dominates(&base));
        assert!(!base.dominates(&base));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 0.95), 0.0);
        assert_eq!(percentile(&[30.0], 0.95), 30.0);
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 0.95), 19.0);
    }

    #[test]
    fn targets_scale_to_what_a_manifest_can_write() {
        assert_eq!(scaled_target(TargetKind::Utilization, 70.0, 0.67), 47.0);
        assert_eq!(scaled_target(TargetKind::PodsAverage, 3.0, 0.67), 2.01);
        assert_eq!(scaled_target(TargetKind::Value, 0.001, 0.5), 0.001);
    }
}
