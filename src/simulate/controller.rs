//! The Kubernetes HPA controller's decision, one sync period at a time:
//! pkg/controller/podautoscaler/replica_calculator.go (replicas per
//! metric) and horizontal.go (the max over metrics, stabilization, scaling
//! policies, bounds), releases 1.33-1.37 (checked against
//! v1.37.2 by tests/oracle.rs). Each function names the Go
//! function it follows.

use super::hpa::{Behavior, PolicyKind, Rules, Select, SimulatedHpa, TargetKind};
use crate::policy::HpaController;

/// What the controller reads for one metric at one sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// Per-pod values (Pods, Resource): `value` from each of `reporting`
    /// pods; `missing` pods of the scale target report nothing (running,
    /// not Ready yet).
    PerPod {
        value: f64,
        reporting: i64,
        missing: i64,
    },
    /// An External or Object metric's total, with the Ready pods.
    Total { value: f64, ready: i64 },
}

/// The (scale-down, scale-up) tolerance band around a usage ratio of 1
/// (`Tolerances.isWithin`).
fn within(ratio: f64, (down, up): (f64, f64)) -> bool {
    (1.0 - down) <= ratio && ratio <= (1.0 + up)
}

/// Quantities are compared as milli-values (`MilliValue()` rounds up). A
/// Quantity is decimal: 2.035 is exactly 2035m. The value is read as the
/// shortest decimal that names the f64 (what Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` and Rust's `Display` print), then
/// rounded up exactly, so binary floating point never adds a milli
/// (`2.035 * 1000.0` is 2035.0000000000002, whose ceiling is 2036).
pub fn milli(value: f64) -> i64 {
    if !value.is_finite() {
        return if value > 0.0 { i64::MAX } else { 0 };
    }
    let text = format!("{}", value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let whole: i64 = whole.parse().unwrap_or(i64::MAX / 1000);
    let digits: Vec<i64> = fraction
        .bytes()
        .map(|digit| i64::from(digit.saturating_sub(b'0')))
        .collect();
    let thousandths = digits
        .iter()
        .take(3)
        .enumerate()
        .fold(0, |sum, (place, digit)| sum + digit * [100, 10, 1][place]);
    let remainder = digits.iter().skip(3).any(|digit| *digit != 0);
    let magnitude = whole.saturating_mul(1000).saturating_add(thousandths);
    if value < 0.0 {
        // The ceiling of a negative value drops the remainder.
        -magnitude
    } else {
        magnitude.saturating_add(i64::from(remainder))
    }
}

/// Pods that report alike: `count` pods each at `each` (milli-units).
/// The pods of a replay are counted, never listed one by one, so a sum
/// over two billion pods costs what one costs.
#[derive(Debug, Clone, Copy)]
struct Alike {
    each: i64,
    count: i64,
}

/// The sum and the number of pods of some groups of alike pods.
fn total(groups: &[Alike]) -> (i128, i128) {
    groups.iter().fold((0, 0), |(sum, count), group| {
        (
            sum + i128::from(group.each) * i128::from(group.count),
            count + i128::from(group.count),
        )
    })
}

/// `GetMetricUsageRatio`: the integer average of the milli-values over
/// their count, against the target.
fn usage_ratio(groups: &[Alike], target_milli: i64) -> f64 {
    let (sum, count) = total(groups);
    if count == 0 {
        return 0.0;
    }
    (sum / count) as f64 / target_milli as f64
}

/// `calcPlainMetricReplicas`, for pods that all see the same value: the
/// ready pods' average against the target; on a scale-up the pods
/// without a metric count as using nothing, on a scale-down as using
/// exactly the target, and a change the missing pods would reverse is
/// none. `None`: no pod reports (the controller's error "did not receive
/// metrics for targeted pods").
pub fn plain_metric_replicas(
    current: i64,
    value: f64,
    reporting: i64,
    missing: i64,
    target: f64,
    tolerances: (f64, f64),
) -> Option<i64> {
    if reporting <= 0 {
        return None;
    }
    let target_milli = milli(target).max(1);
    let mut values = vec![Alike {
        each: milli(value),
        count: reporting,
    }];
    let ratio = usage_ratio(&values, target_milli);
    if missing == 0 {
        if within(ratio, tolerances) {
            return Some(current);
        }
        return Some((ratio * reporting as f64).ceil() as i64);
    }
    if ratio < 1.0 {
        values.push(Alike {
            each: target_milli,
            count: missing,
        });
    } else if ratio > 1.0 {
        values.push(Alike {
            each: 0,
            count: missing,
        });
    }
    let new_ratio = usage_ratio(&values, target_milli);
    if within(new_ratio, tolerances)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let proposed = (new_ratio * total(&values).1 as f64).ceil() as i64;
    if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
        return Some(current);
    }
    Some(proposed)
}

/// The request of every pod in the replay, in milli-units: Resource
/// utilization is a percent of it, so only its rounding matters (the
/// oracle in tests/hpa-oracle gives its pods the same request).
pub const POD_REQUEST_MILLI: i64 = 1000;

/// `GetResourceUtilizationRatio` (metrics/utilization.go): the pods'
/// usage over their requests as a whole percent, truncated, against the
/// target percent.
fn utilization_ratio(usage_milli: &[Alike], target_percent: f64) -> f64 {
    let (sum, count) = total(usage_milli);
    let requests = i128::from(POD_REQUEST_MILLI) * count;
    if requests == 0 {
        return 0.0;
    }
    let utilization = sum * 100 / requests;
    utilization as f64 / target_percent
}

/// `GetResourceReplicas` (replica_calculator.go) for a Utilization
/// target, pods alike: `value` is the Ready pods' average percent of
/// their request. On a scale-down the pods without a metric count at
/// max(100 %, target) of their request, on a scale-up at 0 %; a change
/// they would reverse is none. `None`: no pod reports.
pub fn utilization_replicas(
    current: i64,
    value: f64,
    reporting: i64,
    missing: i64,
    target: f64,
    tolerances: (f64, f64),
) -> Option<i64> {
    if reporting <= 0 {
        return None;
    }
    let per_pod = milli(value / 100.0 * POD_REQUEST_MILLI as f64 / 1000.0);
    let mut usage = vec![Alike {
        each: per_pod,
        count: reporting,
    }];
    let ratio = utilization_ratio(&usage, target);
    if missing == 0 {
        if within(ratio, tolerances) {
            return Some(current);
        }
        return Some((ratio * reporting as f64).ceil() as i64);
    }
    if ratio < 1.0 {
        let fallback = (target as i64).max(100);
        usage.push(Alike {
            each: POD_REQUEST_MILLI * fallback / 100,
            count: missing,
        });
    } else if ratio > 1.0 {
        usage.push(Alike {
            each: 0,
            count: missing,
        });
    }
    let new_ratio = utilization_ratio(&usage, target);
    if within(new_ratio, tolerances)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let proposed = (new_ratio * total(&usage).1 as f64).ceil() as i64;
    if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
        return Some(current);
    }
    Some(proposed)
}

/// `getUsageRatioReplicaCount` (External and Object with a Value target):
/// the ratio of the total to the target, times the Ready pods.
pub fn value_replicas(
    current: i64,
    total: f64,
    ready: i64,
    target: f64,
    tolerances: (f64, f64),
) -> i64 {
    let ratio = milli(total) as f64 / milli(target).max(1) as f64;
    if current == 0 {
        return ratio.ceil() as i64;
    }
    if within(ratio, tolerances) {
        return current;
    }
    (ratio * ready as f64).ceil() as i64
}

/// `GetExternalPerPodMetricReplicas` and `GetObjectPerPodMetricReplicas`
/// (AverageValue): the total over the target, against the pods that
/// exist; their readiness does not enter.
pub fn average_value_replicas(
    status_replicas: i64,
    total: f64,
    target: f64,
    tolerances: (f64, f64),
) -> i64 {
    let (total, target) = (milli(total) as f64, milli(target).max(1) as f64);
    let ratio = total / (target * status_replicas.max(1) as f64);
    if within(ratio, tolerances) {
        status_replicas
    } else {
        (total / target).ceil() as i64
    }
}

/// Why the desired count is what it is, for the series.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The metric that asked for the most replicas.
    Metric(String),
    /// Every metric within its tolerance.
    Tolerance,
    /// No metric could be read: no change.
    NoMetrics,
    /// A stabilization window held the recommendation.
    Stabilized {
        direction: &'static str,
        from: i64,
    },
    /// A scaling policy (or the legacy scale-up limit) held the change.
    Policy {
        direction: &'static str,
        from: i64,
    },
    MaxReplicas {
        from: i64,
    },
    MinReplicas {
        from: i64,
    },
    Disabled {
        direction: &'static str,
        from: i64,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Metric(name) => write!(f, "{name} decided"),
            Self::Tolerance => f.write_str("within tolerance"),
            Self::NoMetrics => f.write_str("no metric from a Ready pod: no change"),
            Self::Stabilized { direction, from } => {
                let kept = if *direction == "scale-up" {
                    "lowest"
                } else {
                    "highest"
                };
                write!(f, "{direction} window kept the {kept} recent recommendation (metrics asked {from})")
            }
            Self::Policy { direction, from } => {
                write!(
                    f,
                    "{direction} policy limited the change (metrics asked {from})"
                )
            }
            Self::MaxReplicas { from } => write!(f, "maxReplicas (metrics asked {from})"),
            Self::MinReplicas { from } => write!(f, "minReplicas (metrics asked {from})"),
            Self::Disabled { direction, from } => {
                write!(
                    f,
                    "{direction} disabled by selectPolicy (metrics asked {from})"
                )
            }
        }
    }
}

/// A scale event as horizontal.go keeps it (`timestampedScaleEvent`): when,
/// how many replicas it added or removed, and whether it is outdated
/// (older than its direction's longest policy period when the last event
/// was stored; an outdated event is reused for the next one, and counted
/// until then).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleEvent {
    pub at: f64,
    pub change: i64,
    pub outdated: bool,
}

/// The controller's memory of one HPA: its recommendations and scale
/// events, as horizontal.go keeps them per HPA key.
pub struct Controller<'a> {
    hpa: &'a SimulatedHpa,
    config: &'a HpaController,
    /// Set once the first sync recorded the replicas it found
    /// (`recordInitialRecommendation`).
    initialized: bool,
    recommendations: Vec<(f64, i64)>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

impl<'a> Controller<'a> {
    pub fn new(hpa: &'a SimulatedHpa, config: &'a HpaController) -> Self {
        Self {
            hpa,
            config,
            initialized: false,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
        }
    }

    /// `computeReplicasForMetrics`: the largest proposal over the metrics;
    /// none when every metric failed, or when some failed and the others
    /// would scale down.
    fn metrics_proposal(&self, current: i64, readings: &[Reading]) -> Option<(i64, Reason)> {
        let tolerances = self.hpa.tolerances();
        let mut best: Option<(i64, Reason)> = None;
        let mut invalid = 0;
        for (metric, reading) in self.hpa.metrics.iter().zip(readings) {
            let proposal = match (metric.kind, *reading) {
                (
                    TargetKind::Utilization,
                    Reading::PerPod {
                        value,
                        reporting,
                        missing,
                    },
                ) => utilization_replicas(
                    current,
                    value,
                    reporting,
                    missing,
                    metric.target,
                    tolerances,
                ),
                (
                    TargetKind::PodsAverage,
                    Reading::PerPod {
                        value,
                        reporting,
                        missing,
                    },
                ) => plain_metric_replicas(
                    current,
                    value,
                    reporting,
                    missing,
                    metric.target,
                    tolerances,
                ),
                (TargetKind::Value, Reading::Total { value, ready }) => Some(value_replicas(
                    current,
                    value,
                    ready,
                    metric.target,
                    tolerances,
                )),
                (TargetKind::AverageValue, Reading::Total { value, .. }) => Some(
                    average_value_replicas(current, value, metric.target, tolerances),
                ),
                _ => None,
            };
            let Some(proposal) = proposal else {
                invalid += 1;
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|(replicas, _)| proposal > *replicas)
            {
                let reason = if proposal == current {
                    Reason::Tolerance
                } else {
                    Reason::Metric(metric.name.clone())
                };
                best = Some((proposal, reason));
            }
        }
        let (replicas, reason) = best?;
        if invalid > 0 && replicas < current {
            return None;
        }
        Some((replicas, reason))
    }

    /// One sync (`reconcileAutoscaler`): the replicas to set, from the
    /// current ones and what the metrics read.
    pub fn sync(&mut self, now: f64, current: i64, readings: &[Reading]) -> (i64, Reason) {
        // `recordInitialRecommendation`: the first sync of an HPA stores the
        // replicas it finds as a recommendation, before anything else, so a
        // scale-down window holds them from the start.
        if !self.initialized {
            self.initialized = true;
            self.recommendations.push((now, current));
        }
        let (min, max) = (self.hpa.min_replicas, self.hpa.max_replicas);
        if current > max {
            return self.record(now, current, max, Reason::MaxReplicas { from: current });
        }
        if current < min {
            return self.record(now, current, min, Reason::MinReplicas { from: current });
        }
        let Some((proposal, reason)) = self.metrics_proposal(current, readings) else {
            return (current, Reason::NoMetrics);
        };
        let (desired, reason) = match self.hpa.behavior.clone() {
            None => self.normalize_legacy(now, current, proposal, reason),
            Some(behavior) => {
                self.normalize_with_behavior(now, current, proposal, reason, &behavior)
            }
        };
        self.record(now, current, desired, reason)
    }

    fn record(&mut self, now: f64, current: i64, desired: i64, reason: Reason) -> (i64, Reason) {
        if desired != current {
            self.store_scale_event(now, current, desired);
        }
        (desired, reason)
    }

    /// `normalizeDesiredReplicas` (no behavior): the highest recommendation
    /// of the downscale window, then `convertDesiredReplicasWithRules`.
    fn normalize_legacy(
        &mut self,
        now: f64,
        current: i64,
        proposal: i64,
        reason: Reason,
    ) -> (i64, Reason) {
        let window = self.config.downscale_stabilization_seconds;
        let cutoff = now - window;
        // `stabilizeRecommendation`: samples not before the cutoff count.
        let stabilized = self
            .recommendations
            .iter()
            .filter(|(at, _)| *at >= cutoff)
            .map(|(_, replicas)| *replicas)
            .fold(proposal, i64::max);
        self.recommendations.retain(|(at, _)| *at >= cutoff);
        self.recommendations.push((now, proposal));
        let mut reason = reason;
        if stabilized != proposal {
            reason = Reason::Stabilized {
                direction: "scale-down",
                from: proposal,
            };
        }
        let scale_up_limit = (self.config.scale_up_limit_factor * current as f64)
            .max(self.config.scale_up_limit_minimum) as i64;
        let (maximum, limiting) = if self.hpa.max_replicas > scale_up_limit {
            (
                scale_up_limit,
                Reason::Policy {
                    direction: "scale-up",
                    from: stabilized,
                },
            )
        } else {
            (
                self.hpa.max_replicas,
                Reason::MaxReplicas { from: stabilized },
            )
        };
        if stabilized < self.hpa.min_replicas {
            return (
                self.hpa.min_replicas,
                Reason::MinReplicas { from: stabilized },
            );
        }
        if stabilized > maximum {
            return (maximum, limiting);
        }
        (stabilized, reason)
    }

    /// `normalizeDesiredReplicasWithBehaviors`:
    /// `stabilizeRecommendationWithBehaviors`, then
    /// `convertDesiredReplicasWithBehaviorRate`.
    fn normalize_with_behavior(
        &mut self,
        now: f64,
        current: i64,
        proposal: i64,
        reason: Reason,
        behavior: &Behavior,
    ) -> (i64, Reason) {
        let up_cutoff = now - behavior.scale_up.stabilization_seconds;
        let down_cutoff = now - behavior.scale_down.stabilization_seconds;
        let mut up = proposal;
        let mut down = proposal;
        for (at, replicas) in &self.recommendations {
            if *at > up_cutoff {
                up = up.min(*replicas);
            }
            if *at > down_cutoff {
                down = down.max(*replicas);
            }
        }
        let oldest = up_cutoff.min(down_cutoff);
        self.recommendations.retain(|(at, _)| *at > oldest);
        self.recommendations.push((now, proposal));
        let stabilized = current.max(up).min(down);
        let mut reason = reason;
        if stabilized != proposal {
            reason = Reason::Stabilized {
                direction: if proposal >= current {
                    "scale-up"
                } else {
                    "scale-down"
                },
                from: proposal,
            };
        }
        if stabilized > current {
            let rules = &behavior.scale_up;
            let limit = scale_up_limit(
                current,
                &self.scale_up_events,
                &self.scale_down_events,
                rules,
                now,
            )
            .max(current);
            let (maximum, limiting) = if self.hpa.max_replicas > limit {
                let limiting = if rules.select == Select::Disabled {
                    Reason::Disabled {
                        direction: "scale-up",
                        from: stabilized,
                    }
                } else {
                    Reason::Policy {
                        direction: "scale-up",
                        from: stabilized,
                    }
                };
                (limit, limiting)
            } else {
                (
                    self.hpa.max_replicas,
                    Reason::MaxReplicas { from: stabilized },
                )
            };
            if stabilized > maximum {
                return (maximum, limiting);
            }
        } else if stabilized < current {
            let rules = &behavior.scale_down;
            let limit = scale_down_limit(
                current,
                &self.scale_up_events,
                &self.scale_down_events,
                rules,
                now,
            )
            .min(current);
            let (minimum, limiting) = if self.hpa.min_replicas < limit {
                let limiting = if rules.select == Select::Disabled {
                    Reason::Disabled {
                        direction: "scale-down",
                        from: stabilized,
                    }
                } else {
                    Reason::Policy {
                        direction: "scale-down",
                        from: stabilized,
                    }
                };
                (limit, limiting)
            } else {
                (
                    self.hpa.min_replicas,
                    Reason::MinReplicas { from: stabilized },
                )
            };
            if stabilized < minimum {
                return (minimum, limiting);
            }
        }
        (stabilized, reason)
    }

    /// `storeScaleEvent`: only with a behavior. The events of the change's
    /// direction older than its longest policy period are marked outdated
    /// (`markScaleEventsOutdated`); the last outdated one is replaced by
    /// the new event, or the new event is appended. Nothing is deleted: an
    /// outdated event still counts wherever a period reaches it (the
    /// other direction's, when longer).
    fn store_scale_event(&mut self, now: f64, previous: i64, new: i64) {
        let Some(behavior) = &self.hpa.behavior else {
            return;
        };
        let longest = |rules: &Rules| {
            rules
                .policies
                .iter()
                .map(|(_, _, period)| *period)
                .fold(0.0, f64::max)
        };
        let (events, period, change) = if new > previous {
            (
                &mut self.scale_up_events,
                longest(&behavior.scale_up),
                new - previous,
            )
        } else {
            (
                &mut self.scale_down_events,
                longest(&behavior.scale_down),
                previous - new,
            )
        };
        let cutoff = now - period;
        for event in events.iter_mut() {
            if event.at < cutoff {
                event.outdated = true;
            }
        }
        let event = ScaleEvent {
            at: now,
            change,
            outdated: false,
        };
        match events.iter().rposition(|event| event.outdated) {
            Some(index) => events[index] = event,
            None => events.push(event),
        }
    }
}

/// `getReplicasChangePerPeriod`: the replicas added (or removed) by the
/// events within the last `period` seconds, outdated or not.
fn change_in_period(events: &[ScaleEvent], period: f64, now: f64) -> i64 {
    let cutoff = now - period;
    events
        .iter()
        .filter(|event| event.at > cutoff)
        .map(|event| event.change)
        .sum()
}

/// The replicas at the start of a policy's period: the current ones less
/// what scale-ups added and plus what scale-downs removed within it (both
/// directions count, as in `calculateScaleUpLimitWithScalingRules` and
/// `calculateScaleDownLimitWithBehaviors`).
fn period_start(
    current: i64,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    period: f64,
    now: f64,
) -> i64 {
    current - change_in_period(up, period, now) + change_in_period(down, period, now)
}

/// `calculateScaleUpLimitWithScalingRules`.
pub fn scale_up_limit(
    current: i64,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    now: f64,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select {
        Select::Disabled => return current,
        Select::Min => i64::min,
        Select::Max => i64::max,
    };
    let mut result = if rules.select == Select::Min {
        i64::from(i32::MAX)
    } else {
        i64::from(i32::MIN)
    };
    for (kind, value, period) in &rules.policies {
        let start = period_start(current, up, down, *period, now);
        let proposed = match kind {
            PolicyKind::Pods => start + value,
            // Rounded up, or a small count would never grow.
            PolicyKind::Percent => (start as f64 * (1.0 + *value as f64 / 100.0)).ceil() as i64,
        };
        result = pick(result, proposed);
    }
    result
}

/// `calculateScaleDownLimitWithBehaviors`: the least change (`Min`)
/// leaves the most replicas.
pub fn scale_down_limit(
    current: i64,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    now: f64,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select {
        Select::Disabled => return current,
        Select::Min => i64::max,
        Select::Max => i64::min,
    };
    let mut result = if rules.select == Select::Min {
        i64::from(i32::MIN)
    } else {
        i64::from(i32::MAX)
    };
    for (kind, value, period) in &rules.policies {
        let start = period_start(current, up, down, *period, now);
        let proposed = match kind {
            PolicyKind::Pods => start - value,
            PolicyKind::Percent => (start as f64 * (1.0 - *value as f64 / 100.0)) as i64,
        };
        result = pick(result, proposed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::hpa::{MetricTarget, SimulatedHpa};

    const TOLERANCE: (f64, f64) = (0.1, 0.1);

    fn rules(select: Select, policies: Vec<(PolicyKind, i64, f64)>, window: f64) -> Rules {
        Rules {
            stabilization_seconds: window,
            select,
            policies,
            tolerance: 0.1,
        }
    }

    fn hpa(behavior: Option<Behavior>, min: i64, max: i64) -> SimulatedHpa {
        SimulatedHpa {
            namespace: None,
            name: "test".to_string(),
            min_replicas: min,
            max_replicas: max,
            metrics: vec![MetricTarget {
                name: "queue".to_string(),
                source: "Pods".to_string(),
                kind: TargetKind::PodsAverage,
                target: 0.1,
                target_pointer: None,
            }],
            behavior,
            tolerance: 0.1,
            notes: Vec::new(),
        }
    }

    fn config() -> HpaController {
        crate::policy::Policy::built_in()
            .expect("policy")
            .hpa_controller
            .clone()
    }

    fn per_pod(value: f64, reporting: i64, missing: i64) -> Reading {
        Reading::PerPod {
            value,
            reporting,
            missing,
        }
    }

    /// kubernetes.io, "Horizontal Pod Autoscaling", algorithm details: a
    /// metric at 200m against 100m doubles the replicas, 50m halves them;
    /// a ratio within the 0.1 tolerance changes nothing.
    #[test]
    fn the_documented_ratio_examples() {
        assert_eq!(plain_metric_replicas(1, 0.2, 1, 0, 0.1, TOLERANCE), Some(2));
        assert_eq!(
            plain_metric_replicas(4, 0.05, 4, 0, 0.1, TOLERANCE),
            Some(2)
        );
        assert_eq!(
            plain_metric_replicas(4, 0.105, 4, 0, 0.1, TOLERANCE),
            Some(4)
        );
        assert_eq!(
            plain_metric_replicas(4, 0.111, 4, 0, 0.1, TOLERANCE),
            Some(5)
        );
        assert_eq!(plain_metric_replicas(4, 0.2, 0, 4, 0.1, TOLERANCE), None);
    }

    /// calcPlainMetricReplicas: pods without a metric count as using
    /// nothing on a scale-up and the target on a scale-down, and a change
    /// they would reverse is none.
    #[test]
    fn missing_pods_damp_both_directions() {
        // 2 of 4 pods report 400m against 100m: (400+400+0+0)/4 = 200m.
        assert_eq!(plain_metric_replicas(4, 0.4, 2, 2, 0.1, TOLERANCE), Some(8));
        // Without the missing pods it would be ceil(4 x 2) = 8 as well,
        // but at 200m on 2 pods the missing ones reverse it: 1.0 -> keep.
        assert_eq!(plain_metric_replicas(4, 0.2, 2, 2, 0.1, TOLERANCE), Some(4));
        // Scale-down: (20+20+100+100)/4 = 60m -> ceil(0.6 x 4) = 3, not 1.
        assert_eq!(
            plain_metric_replicas(4, 0.02, 2, 2, 0.1, TOLERANCE),
            Some(3)
        );
        assert_eq!(
            plain_metric_replicas(2, 0.02, 2, 0, 0.1, TOLERANCE),
            Some(1)
        );
    }

    #[test]
    fn external_targets_follow_their_type() {
        // Value: the total against the target, times the Ready pods.
        assert_eq!(value_replicas(2, 30.0, 2, 10.0, TOLERANCE), 6);
        assert_eq!(value_replicas(2, 10.5, 2, 10.0, TOLERANCE), 2);
        // AverageValue: the total over the target, whatever is Ready.
        assert_eq!(average_value_replicas(2, 30.0, 10.0, TOLERANCE), 3);
        assert_eq!(average_value_replicas(3, 31.0, 10.0, TOLERANCE), 3);
    }

    /// The default scale-up (4 pods or 100 % every 15 s, the larger).
    #[test]
    fn default_scale_up_policies_take_the_larger() {
        let config = config();
        let hpa = hpa(
            Some(Behavior {
                scale_up: rules(
                    Select::Max,
                    vec![
                        (PolicyKind::Pods, 4, 15.0),
                        (PolicyKind::Percent, 100, 15.0),
                    ],
                    0.0,
                ),
                scale_down: rules(Select::Max, vec![(PolicyKind::Percent, 100, 15.0)], 300.0),
            }),
            1,
            100,
        );
        let up = &hpa.behavior.as_ref().expect("behavior").scale_up;
        assert_eq!(scale_up_limit(1, &[], &[], up, 0.0), 5);
        assert_eq!(scale_up_limit(10, &[], &[], up, 0.0), 20);
        // 6 added 10 s ago count against this period: from 4 -> 8.
        let added = ScaleEvent {
            at: -10.0,
            change: 6,
            outdated: false,
        };
        assert_eq!(scale_up_limit(10, &[added], &[], up, 0.0), 8);
        let mut controller = Controller::new(&hpa, &config);
        // 1 pod at 30x the target: 5, then 10, then 20 (15 s apart).
        assert_eq!(controller.sync(0.0, 1, &[per_pod(3.0, 1, 0)]).0, 5);
        assert_eq!(controller.sync(15.0, 5, &[per_pod(0.6, 5, 0)]).0, 10);
        assert_eq!(controller.sync(30.0, 10, &[per_pod(0.3, 10, 0)]).0, 20);
    }

    /// kubernetes.io, "Horizontal Pod Autoscaling", scaling policies:
    /// Pods 4 and Percent 10 a minute, the larger: 80 replicas go to 72,
    /// then 64 (10 % of 72 rounds the pods removed up to 8).
    #[test]
    fn the_documented_scale_down_policy_example() {
        let config = config();
        let hpa = hpa(
            Some(Behavior {
                scale_up: rules(Select::Max, vec![(PolicyKind::Pods, 4, 15.0)], 0.0),
                scale_down: rules(
                    Select::Max,
                    vec![(PolicyKind::Pods, 4, 60.0), (PolicyKind::Percent, 10, 60.0)],
                    0.0,
                ),
            }),
            1,
            100,
        );
        let mut controller = Controller::new(&hpa, &config);
        let low = |pods| per_pod(0.0125, pods, 0);
        assert_eq!(controller.sync(0.0, 80, &[low(80)]).0, 72);
        // Within the same minute the 8 removed count: no more.
        assert_eq!(controller.sync(15.0, 72, &[low(72)]).0, 72);
        assert_eq!(controller.sync(60.0, 72, &[low(72)]).0, 64);
        // With 40 or fewer the Pods policy (4) is the larger change.
        assert_eq!(controller.sync(120.0, 40, &[low(40)]).0, 36);
    }

    #[test]
    fn stabilization_windows_hold_recommendations() {
        let config = config();
        // Legacy: the highest recommendation of the last 300 s.
        let legacy = hpa(None, 1, 10);
        let mut controller = Controller::new(&legacy, &config);
        assert_eq!(controller.sync(0.0, 5, &[per_pod(0.1, 5, 0)]).0, 5);
        let (held, reason) = controller.sync(15.0, 5, &[per_pod(0.02, 5, 0)]);
        assert_eq!(held, 5);
        assert!(matches!(reason, Reason::Stabilized { .. }), "{reason}");
        // 300 s after the last recommendation of 5, it counts no more.
        assert_eq!(controller.sync(300.0, 5, &[per_pod(0.02, 5, 0)]).0, 5);
        assert_eq!(controller.sync(316.0, 5, &[per_pod(0.02, 5, 0)]).0, 1);
        // Legacy scale-up: at most twice the replicas, or 4.
        let mut controller = Controller::new(&legacy, &config);
        assert_eq!(controller.sync(0.0, 1, &[per_pod(1.0, 1, 0)]).0, 4);
        assert_eq!(controller.sync(15.0, 4, &[per_pod(1.0, 4, 0)]).0, 8);
        assert_eq!(controller.sync(30.0, 8, &[per_pod(1.0, 8, 0)]).0, 10);
        // A scale-up window: the lowest recommendation of its span.
        let windowed = hpa(
            Some(Behavior {
                scale_up: rules(Select::Max, vec![(PolicyKind::Pods, 100, 15.0)], 60.0),
                scale_down: rules(Select::Max, vec![(PolicyKind::Percent, 100, 15.0)], 0.0),
            }),
            1,
            10,
        );
        let mut controller = Controller::new(&windowed, &config);
        assert_eq!(controller.sync(0.0, 2, &[per_pod(0.1, 2, 0)]).0, 2);
        assert_eq!(controller.sync(15.0, 2, &[per_pod(0.3, 2, 0)]).0, 2);
        assert_eq!(controller.sync(75.0, 2, &[per_pod(0.3, 2, 0)]).0, 6);
    }

    #[test]
    fn a_disabled_direction_never_moves() {
        let config = config();
        let hpa = hpa(
            Some(Behavior {
                scale_up: rules(Select::Disabled, vec![(PolicyKind::Pods, 4, 15.0)], 0.0),
                scale_down: rules(Select::Max, vec![(PolicyKind::Percent, 100, 15.0)], 0.0),
            }),
            1,
            10,
        );
        let mut controller = Controller::new(&hpa, &config);
        let (replicas, reason) = controller.sync(0.0, 2, &[per_pod(1.0, 2, 0)]);
        assert_eq!(replicas, 2);
        assert!(matches!(reason, Reason::Disabled { .. }), "{reason}");
        // Min selects the smaller change: Pods 1 against Percent 100 -> +1.
        let hpa_min = super::tests::hpa(
            Some(Behavior {
                scale_up: rules(
                    Select::Min,
                    vec![
                        (PolicyKind::Pods, 1, 15.0),
                        (PolicyKind::Percent, 100, 15.0),
                    ],
                    0.0,
                ),
                scale_down: rules(Select::Max, vec![(PolicyKind::Percent, 100, 15.0)], 0.0),
            }),
            1,
            10,
        );
        let mut controller = Controller::new(&hpa_min, &config);
        assert_eq!(controller.sync(0.0, 2, &[per_pod(1.0, 2, 0)]).0, 3);
    }

    #[test]
    fn bounds_and_unreadable_metrics() {
        let config = config();
        let bounded = hpa(None, 2, 5);
        let mut controller = Controller::new(&bounded, &config);
        assert_eq!(controller.sync(0.0, 7, &[per_pod(0.0, 7, 0)]).0, 5);
        assert_eq!(controller.sync(15.0, 1, &[per_pod(0.0, 1, 0)]).0, 2);
        let (kept, reason) = controller.sync(30.0, 3, &[per_pod(0.5, 0, 3)]);
        assert_eq!((kept, reason), (3, Reason::NoMetrics));
    }

    fn utilization_hpa(target: f64, behavior: Option<Behavior>) -> SimulatedHpa {
        SimulatedHpa {
            metrics: vec![MetricTarget {
                name: "cpu".to_string(),
                source: "Resource".to_string(),
                kind: TargetKind::Utilization,
                target,
                target_pointer: None,
            }],
            ..hpa(behavior, 1, 20)
        }
    }

    /// horizontal.go, `recordInitialRecommendation`: the first sync stores
    /// the replicas it finds, so the scale-down window holds them at t=0.
    /// Simulate started with no history and scaled 5 -> 1 at once.
    #[test]
    fn the_first_sync_records_the_current_replicas() {
        let config = config();
        let legacy = hpa(None, 1, 10);
        let mut controller = Controller::new(&legacy, &config);
        let (replicas, reason) = controller.sync(0.0, 5, &[per_pod(0.02, 5, 0)]);
        assert_eq!(replicas, 5);
        assert!(matches!(reason, Reason::Stabilized { .. }), "{reason}");
        let defaults = hpa(
            Some(Behavior {
                scale_up: rules(Select::Max, vec![(PolicyKind::Pods, 4, 15.0)], 0.0),
                scale_down: rules(Select::Max, vec![(PolicyKind::Percent, 100, 15.0)], 300.0),
            }),
            1,
            10,
        );
        let mut controller = Controller::new(&defaults, &config);
        assert_eq!(controller.sync(0.0, 5, &[per_pod(0.02, 5, 0)]).0, 5);
        // The window is 300 s from the first sync, its edge excluded.
        assert_eq!(controller.sync(285.0, 5, &[per_pod(0.02, 5, 0)]).0, 5);
        assert_eq!(controller.sync(300.0, 5, &[per_pod(0.02, 5, 0)]).0, 1);
    }

    /// `calculateScaleUpLimitWithScalingRules` starts the period from
    /// `current - added + deleted`: replicas removed within the period
    /// count too (and likewise for `calculateScaleDownLimitWithBehaviors`).
    #[test]
    fn policy_limits_count_both_directions_events() {
        let up = rules(Select::Max, vec![(PolicyKind::Pods, 4, 60.0)], 0.0);
        let down = rules(Select::Max, vec![(PolicyKind::Pods, 2, 60.0)], 0.0);
        let event = |at, change| ScaleEvent {
            at,
            change,
            outdated: false,
        };
        // 8 -> 5 thirty seconds ago: the period started at 8, so 12.
        assert_eq!(scale_up_limit(5, &[], &[event(-30.0, 3)], &up, 0.0), 12);
        // 4 -> 6 thirty seconds ago: the period started at 4, so 2.
        assert_eq!(scale_down_limit(6, &[event(-30.0, 2)], &[], &down, 0.0), 2);
    }

    /// `storeScaleEvent` / `markScaleEventsOutdated`: events older than
    /// their direction's longest period are only marked, and the last
    /// marked one is reused; the others stay and count wherever a longer
    /// period (the other direction's) reaches them.
    #[test]
    fn outdated_events_stay_until_reused() {
        let config = config();
        let hpa = hpa(
            Some(Behavior {
                scale_up: rules(Select::Max, vec![(PolicyKind::Pods, 1, 120.0)], 0.0),
                scale_down: rules(Select::Max, vec![(PolicyKind::Pods, 10, 15.0)], 0.0),
            }),
            1,
            100,
        );
        let mut controller = Controller::new(&hpa, &config);
        controller.store_scale_event(0.0, 20, 16);
        controller.store_scale_event(5.0, 16, 14);
        controller.store_scale_event(30.0, 14, 13);
        let kept: Vec<(f64, i64)> = controller
            .scale_down_events
            .iter()
            .map(|event| (event.at, event.change))
            .collect();
        // The event at 5 s was reused for the one at 30 s; the one at 0 s stays.
        assert_eq!(kept, [(0.0, 4), (30.0, 1)]);
        let up = &hpa.behavior.as_ref().expect("behavior").scale_up;
        // At 40 s the scale-up period (120 s) starts from 13 + 4 + 1 = 18.
        assert_eq!(
            scale_up_limit(
                13,
                &controller.scale_up_events,
                &controller.scale_down_events,
                up,
                40.0
            ),
            19
        );
    }

    /// `GetResourceUtilizationRatio` truncates the utilization to a whole
    /// percent: 66.006 % against 60 % is a ratio of 1.1, within the
    /// tolerance (the fraction made it 1.1001 and scaled 4 -> 5).
    #[test]
    fn cpu_utilization_is_a_whole_percent() {
        let config = config();
        let hpa = utilization_hpa(60.0, None);
        let mut controller = Controller::new(&hpa, &config);
        assert_eq!(controller.sync(0.0, 4, &[per_pod(66.006, 4, 0)]).0, 4);
        assert_eq!(
            utilization_replicas(4, 66.006, 4, 0, 60.0, TOLERANCE),
            Some(4)
        );
        assert_eq!(
            utilization_replicas(4, 67.0, 4, 0, 60.0, TOLERANCE),
            Some(5)
        );
    }

    /// `GetResourceReplicas`: on a scale-down, pods without a metric count
    /// at max(100 %, target) of their request, not at the target (the
    /// Pods-metric rule): one pod at 0 % and one missing against 50 %
    /// holds 2 replicas (the target rule gave 25 % and scaled to 1).
    #[test]
    fn missing_pods_on_a_cpu_scale_down_count_at_full_request() {
        assert_eq!(utilization_replicas(2, 0.0, 1, 1, 50.0, TOLERANCE), Some(2));
        assert_eq!(
            plain_metric_replicas(2, 0.0, 1, 1, 50.0, TOLERANCE),
            Some(1)
        );
        // A target above 100 % is the fallback itself: 150 % of the request.
        assert_eq!(
            utilization_replicas(3, 30.0, 1, 2, 150.0, TOLERANCE),
            Some(3)
        );
        // On a scale-up they count as 0 %, as for every metric.
        assert_eq!(
            utilization_replicas(2, 150.0, 1, 1, 50.0, TOLERANCE),
            Some(3)
        );
    }

    /// Quantities are decimal: 2.035 is 2035m, not the 2036m that
    /// `ceil(2.035 * 1000.0)` gives in binary floating point; against
    /// 1.85 that is a ratio of exactly 1.1, within the tolerance.
    #[test]
    fn quantities_are_decimal() {
        assert_eq!(milli(2.035), 2035);
        assert_eq!(milli(0.1), 100);
        assert_eq!(milli(0.0001), 1);
        assert_eq!(milli(7.0), 7000);
        assert_eq!(milli(-1.5), -1500);
        assert_eq!(milli(1e-9), 1);
        assert_eq!(
            plain_metric_replicas(10, 2.035, 10, 0, 1.85, TOLERANCE),
            Some(10)
        );
    }
}
