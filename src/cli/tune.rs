//! `infergate tune`: search an HPA's knobs on a recorded trace and
//! recommend the cheapest configuration that keeps the service objective,
//! as the patch `lint --fix` would write.

use super::simulate::{prepare, write_output, write_png, Prepared, ReplayArgs};
use super::*;
use crate::simulate::hpa::{PolicyKind, Rules, Select, SimulatedHpa};
use crate::simulate::render::Shown;
use crate::simulate::tune::{self, Objective, Problem, Score, Space, Tuned};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub replay: ReplayArgs,
    /// An objective the recommendation must meet on the trace:
    /// `minutes-above-target<=N`, `time-to-ready-p95<=DURATION`,
    /// `flaps<=N` or `no-flaps` (repeat for several). Default: no more
    /// minutes above target and no more flaps than the current HPA.
    #[arg(long = "slo", value_name = "OBJECTIVE")]
    pub slo: Vec<String>,
    /// Tune on the first part of the trace and report on its last
    /// FRACTION (for example 0.3), to see whether the recommendation
    /// holds on load it was not chosen for.
    #[arg(long, value_name = "FRACTION", value_parser = holdout_fraction)]
    pub holdout: Option<f64>,
    /// Replay about N configurations before the final descent (default:
    /// every one when the trace is short, else as many as 30 million
    /// syncs allow).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub budget: Option<u32>,
    /// Print the recommendation as a unified diff of HPA_FILE and write
    /// nothing.
    #[arg(long, conflicts_with = "write")]
    pub diff: bool,
    /// Write the recommendation into HPA_FILE (comments and layout kept,
    /// as `lint --fix` writes), then report as without it.
    #[arg(long)]
    pub write: bool,
    /// Output format; svg and png chart both replays.
    #[arg(long, value_enum, default_value_t = TuneFormat::Human)]
    pub format: TuneFormat,
    /// Write the output to FILE (required for png).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TuneFormat {
    Human,
    Json,
    Svg,
    Png,
}

fn holdout_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(0.05..=0.9).contains(&value) {
        return Err(format!(
            "`{text}` is not a holdout fraction: give a number from 0.05 to 0.9"
        ));
    }
    Ok(value)
}

/// Shorter traces, and traces with fewer rises in need, say little about
/// other days: the output warns.
const SHORT_TRACE_SECONDS: f64 = 86_400.0;
const FEW_RISES: usize = 3;

pub(super) fn tune(args: &TuneArgs) -> ExitCode {
    let prepared = match prepare(&args.replay) {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let object = &prepared.loaded.objects[prepared.index];
    if object.value.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1") {
        return usage_error(
            format!(
                "{}: `{}` is autoscaling/v1, which has no behavior to tune",
                args.replay.hpa_file.display(),
                prepared.hpa.name
            ),
            "convert it to autoscaling/v2 first (`infergate lint --fix` does)",
        );
    }
    let mut objectives = Vec::new();
    for text in &args.slo {
        match Objective::parse(text) {
            Ok(objective) => objectives.push(objective),
            Err(error) => {
                return usage_error(
                    format!("--slo: {error}"),
                    "for example --slo minutes-above-target<=5 --slo time-to-ready-p95<=4m",
                )
            }
        }
    }
    let config = &prepared.engine.policy().hpa_controller;
    let (Some(start), Some(end)) = (prepared.trace.start(), prepared.trace.end()) else {
        return usage_error("the trace has no samples", super::simulate::TRACE_HELP);
    };
    let duration = end - start;
    let cut = duration * (1.0 - args.holdout.unwrap_or(0.0));
    let tuning_trace = prepared.trace.until(start + cut);
    let tuning_series =
        match crate::simulate::run::match_series(&prepared.hpa, &tuning_trace, &prepared.map) {
            Ok(series) => series,
            Err(error) => return usage_error(error, super::simulate::TRACE_HELP),
        };
    let problem = Problem {
        original: &prepared.hpa,
        config,
        trace: &tuning_trace,
        series: tuning_series,
        recorded: crate::simulate::run::recorded_series(&tuning_trace, &prepared.map),
        setup: prepared.setup.clone(),
        window: (0.0, cut + config.sync_period_seconds / 2.0),
    };
    let space = Space::for_hpa(
        &prepared.hpa,
        config,
        prepared
            .engine
            .policy()
            .hpa_behavior
            .min_scale_down_stabilization_seconds as f64,
    );
    // A recommendation never trips infergate's own rules: the patched
    // autoscaler is linted with its bundle, and one with a finding the
    // original has not is passed over.
    let findings_of = |loaded: &loader::Loaded| -> std::collections::BTreeSet<(String, String)> {
        prepared
            .engine
            .run(loaded, &ClusterFacts::default())
            .findings
            .into_iter()
            .filter(|finding| finding.object_index == Some(prepared.index))
            .map(|finding| (finding.rule.to_string(), finding.pointer.to_string()))
            .collect()
    };
    let before = findings_of(&prepared.loaded);
    let mut accept = |knobs: tune::Knobs| -> bool {
        let candidate = space.candidate(&prepared.hpa, knobs);
        let operations = tune::patch(object, &prepared.hpa, &candidate, config);
        let mut value = object.value.clone();
        if json_patch::patch(&mut value, &operations).is_err() {
            return false;
        }
        crate::simulate::with_object_value(&prepared.loaded, prepared.index, value)
            .is_some_and(|loaded| findings_of(&loaded).is_subset(&before))
    };
    let tuned = tune::search(
        &problem,
        &space,
        &objectives,
        args.budget.map(|budget| budget as usize),
        &mut accept,
    );

    // Both replays on the whole trace, for the report and the chart.
    let full_series = match prepared.series_for(&prepared.hpa) {
        Ok(series) => series,
        Err(exit) => return exit,
    };
    let full = Problem {
        original: &prepared.hpa,
        config,
        trace: &prepared.trace,
        series: full_series,
        recorded: prepared.recorded(),
        setup: prepared.setup.clone(),
        window: (0.0, f64::INFINITY),
    };
    let pick = tuned.chosen.or(tuned.closest);
    let recommended = pick
        .and_then(|index| tuned.evaluated[index].0)
        .map(|knobs| space.candidate(&prepared.hpa, knobs));
    let current_replay = full.replay(&prepared.hpa);
    let recommended_replay = recommended.as_ref().map(|hpa| full.replay(hpa));

    let mut warnings = Vec::new();
    if duration < SHORT_TRACE_SECONDS {
        warnings.push(format!(
            "the trace covers {}; a recommendation from less than a day of load may not hold on other days",
            human_duration(duration)
        ));
    }
    let rises = current_replay.summary.time_to_needed.len();
    if rises < FEW_RISES {
        warnings.push(format!(
            "the load rose above the Ready pods {rises} time(s); with fewer than {FEW_RISES} rises the scale-up settings are barely tested"
        ));
    }
    let holdout = args.holdout.map(|_| {
        let window = (cut + config.sync_period_seconds / 2.0, f64::INFINITY);
        (
            full.score_points(&current_replay.points, window),
            recommended_replay
                .as_ref()
                .map(|replay| full.score_points(&replay.points, window)),
        )
    });
    let operations = match (&recommended, tuned.chosen) {
        (Some(hpa), Some(_)) => tune::patch(object, &prepared.hpa, hpa, config),
        _ => Vec::new(),
    };
    let accelerators = crate::simulate::accelerators_per_replica(
        &prepared.engine,
        &prepared.loaded,
        prepared.index,
    );
    let report = Report {
        prepared: &prepared,
        space: &space,
        tuned: &tuned,
        recommended: recommended.as_ref(),
        objectives: &objectives,
        holdout,
        warnings: &warnings,
        operations: &operations,
        accelerators,
        trace_name: match (&args.replay.trace, &args.replay.prometheus) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        },
    };

    if args.diff {
        return write_or_diff(args, &prepared, &operations, &tuned);
    }
    if args.write {
        let exit = write_or_diff(args, &prepared, &operations, &tuned);
        if exit != ExitCode::SUCCESS {
            return exit;
        }
    }
    let rendered = match args.format {
        TuneFormat::Human => Ok(report.human()),
        TuneFormat::Json => Ok(report.json()),
        TuneFormat::Svg | TuneFormat::Png => {
            let mut shown = vec![Shown {
                label: "current",
                hpa: &prepared.hpa,
                replay: &current_replay,
            }];
            if let (Some(hpa), Some(replay)) = (&recommended, &recommended_replay) {
                shown.push(Shown {
                    label: "recommended",
                    hpa,
                    replay,
                });
            }
            if args.format == TuneFormat::Png {
                return write_png(&shown, args.output.as_deref(), "tune.png");
            }
            crate::simulate::plot::svg(&shown).map_err(|error| error.to_string())
        }
    };
    let exit = match rendered {
        Ok(text) => write_output(&text, args.output.as_deref()),
        Err(error) => return usage_error(error, "report a bug"),
    };
    // No configuration meets the objectives: a failure a CI job sees.
    if exit == ExitCode::SUCCESS && tuned.chosen.is_none() {
        return ExitCode::from(1);
    }
    exit
}

/// `--diff` prints the recommendation as a unified diff; `--write` writes
/// it with the text edits `lint --fix` uses (atomically, comments kept).
fn write_or_diff(
    args: &TuneArgs,
    prepared: &Prepared,
    operations: &[json_patch::PatchOperation],
    tuned: &Tuned,
) -> ExitCode {
    if tuned.chosen.is_none() {
        eprintln!("no configuration meets the objectives; nothing to write (run without --diff/--write for the closest)");
        return ExitCode::from(1);
    }
    if operations.is_empty() {
        eprintln!("the current configuration is already the cheapest that meets the objectives; nothing to change");
        return ExitCode::SUCCESS;
    }
    let placed = match fix::patch_file(&prepared.loaded, prepared.index, operations) {
        Ok(Some(placed)) => placed,
        Ok(None) => return ExitCode::SUCCESS,
        Err(reason) => {
            return usage_error(
                format!(
                    "{}: the recommendation cannot be written into the file: {reason}",
                    args.replay.hpa_file.display()
                ),
                "apply the patch `infergate tune --format json` prints by hand",
            )
        }
    };
    let (name, text) = placed;
    let original = prepared
        .loaded
        .files
        .iter()
        .find(|file| file.name == name)
        .map(|file| file.text.clone())
        .unwrap_or_default();
    if args.diff {
        let diff = similar::TextDiff::from_lines(original.as_str(), text.as_str());
        let label = |side: &str| {
            if name.starts_with('/') {
                name.clone()
            } else {
                format!("{side}/{}", name.trim_start_matches("./"))
            }
        };
        return print(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&label("a"), &label("b"))
                .to_string(),
        );
    }
    match fix::write_atomically(std::path::Path::new(&name), &original, &text) {
        Ok(()) => {
            eprintln!(
                "wrote the recommendation into {name} ({} change(s))",
                operations.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(
            format!("cannot write {name}: {error}"),
            "check that the file is writable and did not change meanwhile",
        ),
    }
}

fn human_duration(seconds: f64) -> String {
    if seconds >= 86_400.0 {
        format!("{:.1} days", seconds / 86_400.0)
    } else if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.0} min", seconds / 60.0)
    }
}

/// Everything the output shows.
struct Report<'a> {
    prepared: &'a Prepared,
    space: &'a Space,
    tuned: &'a Tuned,
    recommended: Option<&'a SimulatedHpa>,
    objectives: &'a [Objective],
    /// (current, recommended) scored on the held-out part.
    holdout: Option<(Score, Option<Score>)>,
    warnings: &'a [String],
    operations: &'a [json_patch::PatchOperation],
    accelerators: Option<f64>,
    trace_name: String,
}

fn policies(list: &[(PolicyKind, i64, f64)]) -> String {
    list.iter()
        .map(|(kind, value, period)| match kind {
            PolicyKind::Pods => format!("{value} pods/{period:.0}s"),
            PolicyKind::Percent => format!("{value}%/{period:.0}s"),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn rules_text(rules: &Rules) -> String {
    let select = match rules.select {
        Select::Max => "",
        Select::Min => " (Min)",
        Select::Disabled => " (Disabled)",
    };
    format!(
        "{:.0}s window, {}{select}",
        rules.stabilization_seconds,
        policies(&rules.policies)
    )
}

/// The knobs of an HPA, one line each, as the report compares them.
fn knobs(hpa: &SimulatedHpa, config: &crate::policy::HpaController) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = hpa
        .metrics
        .iter()
        .map(|metric| {
            (
                format!("target {}", metric.name),
                format!("{}", metric.target),
            )
        })
        .collect();
    rows.push(("minReplicas".to_string(), hpa.min_replicas.to_string()));
    match &hpa.behavior {
        Some(behavior) => {
            rows.push(("scale-up".to_string(), rules_text(&behavior.scale_up)));
            rows.push(("scale-down".to_string(), rules_text(&behavior.scale_down)));
        }
        None => {
            rows.push((
                "scale-up".to_string(),
                format!(
                    "no behavior: x{} or +{} per sync",
                    config.scale_up_limit_factor, config.scale_up_limit_minimum
                ),
            ));
            rows.push((
                "scale-down".to_string(),
                format!(
                    "no behavior: {:.0}s window",
                    config.downscale_stabilization_seconds
                ),
            ));
        }
    }
    rows
}

fn knobs_json(hpa: &SimulatedHpa, config: &crate::policy::HpaController) -> Value {
    Value::Object(
        knobs(hpa, config)
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
    )
}

impl Report<'_> {
    fn config(&self) -> &crate::policy::HpaController {
        &self.prepared.engine.policy().hpa_controller
    }

    fn recommended_score(&self) -> Option<Score> {
        self.tuned
            .chosen
            .or(self.tuned.closest)
            .map(|index| self.tuned.evaluated[index].1)
    }

    fn objectives_text(&self) -> String {
        if self.objectives.is_empty() {
            format!(
                "no worse than the current HPA: {}",
                tune::default_objectives(&self.tuned.current)
                    .iter()
                    .map(Objective::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            self.objectives
                .iter()
                .map(Objective::describe)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn candidates_per_second(&self) -> f64 {
        self.tuned.evaluated.len() as f64 / self.tuned.seconds.max(1e-9)
    }

    fn human(&self) -> String {
        let hpa = &self.prepared.hpa;
        let mut out = format!(
            "infergate tune: {}/{} on {}\n",
            hpa.namespace.as_deref().unwrap_or("default"),
            hpa.name,
            self.trace_name
        );
        out.push_str(&format!(
            "searched {} of {} configurations ({}) in {:.1} s, {:.0}/s\nobjective: {}\n",
            self.tuned.evaluated.len(),
            self.space.len() + 1,
            self.tuned.strategy,
            self.tuned.seconds,
            self.candidates_per_second(),
            self.objectives_text()
        ));
        for warning in self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        let current_rows = knobs(hpa, self.config());
        let recommended_rows = self
            .recommended
            .map(|recommended| knobs(recommended, self.config()));
        let mut rows: Vec<(String, String, String)> = current_rows
            .iter()
            .enumerate()
            .map(|(index, (name, value))| {
                let other = recommended_rows
                    .as_ref()
                    .and_then(|rows| rows.get(index))
                    .map_or("-".to_string(), |(_, value)| value.clone());
                (name.clone(), value.clone(), other)
            })
            .collect();
        let score_rows = |current: &Score, other: Option<&Score>| {
            let change = |a: f64, b: f64| {
                if a > 0.0 {
                    format!(" ({:+.0} %)", (b - a) / a * 100.0)
                } else {
                    String::new()
                }
            };
            let mut rows = vec![(
                "replica-hours".to_string(),
                format!("{:.2}", current.replica_hours),
                other.map_or("-".to_string(), |other| {
                    format!(
                        "{:.2}{}",
                        other.replica_hours,
                        change(current.replica_hours, other.replica_hours)
                    )
                }),
            )];
            if let Some(chips) = self.accelerators {
                rows.push((
                    "accelerator-hours".to_string(),
                    format!("{:.2}", current.replica_hours * chips),
                    other.map_or("-".to_string(), |other| {
                        format!("{:.2}", other.replica_hours * chips)
                    }),
                ));
            }
            rows.push((
                "minutes above target".to_string(),
                format!("{:.2}", current.minutes_above_target),
                other.map_or("-".to_string(), |other| {
                    format!("{:.2}", other.minutes_above_target)
                }),
            ));
            rows.push((
                "time to ready p95".to_string(),
                format!("{:.0} s", current.time_to_ready_p95),
                other.map_or("-".to_string(), |other| {
                    format!("{:.0} s", other.time_to_ready_p95)
                }),
            ));
            rows.push((
                "flaps".to_string(),
                current.flaps.to_string(),
                other.map_or("-".to_string(), |other| other.flaps.to_string()),
            ));
            rows.push((
                "max replicas".to_string(),
                current.max_replicas.to_string(),
                other.map_or("-".to_string(), |other| other.max_replicas.to_string()),
            ));
            rows
        };
        let recommended_score = self.recommended_score();
        rows.extend(score_rows(&self.tuned.current, recommended_score.as_ref()));
        let heading = match (self.tuned.chosen, self.tuned.closest) {
            (Some(_), _) => "recommended",
            (None, Some(_)) => "closest (misses)",
            (None, None) => "-",
        };
        out.push('\n');
        out.push_str(&table(
            &("".to_string(), "current".to_string(), heading.to_string()),
            &rows,
        ));
        if let Some((current, other)) = &self.holdout {
            out.push_str("\nheld-out part of the trace (not tuned on):\n");
            out.push_str(&table(
                &("".to_string(), "current".to_string(), heading.to_string()),
                &score_rows(current, other.as_ref()),
            ));
        }
        out.push_str(
            "\nPareto front (cost against service), cheapest first; * dominates the current HPA:\n",
        );
        for &index in self.tuned.front.iter().take(12) {
            let (knobs_at, score) = &self.tuned.evaluated[index];
            let mark = if score.dominates(&self.tuned.current) {
                "*"
            } else {
                " "
            };
            let what = match knobs_at {
                None => "the current HPA".to_string(),
                Some(knobs_at) => self.describe(*knobs_at),
            };
            out.push_str(&format!(
                "  {mark} {:>8.2} replica-h  {:>6.2} min above  p95 {:>4.0} s  {} flaps  {what}\n",
                score.replica_hours,
                score.minutes_above_target,
                score.time_to_ready_p95,
                score.flaps
            ));
        }
        if self.tuned.front.len() > 12 {
            out.push_str(&format!(
                "  … {} more (--format json lists them)\n",
                self.tuned.front.len() - 12
            ));
        }
        match (self.tuned.chosen, self.operations.is_empty()) {
            (Some(_), false) => {
                out.push_str("\nthe patch (RFC 6902), as `--write` applies it (`--diff` shows it on the file):\n");
                for operation in self.operations {
                    out.push_str(&format!(
                        "  {}\n",
                        serde_json::to_string(operation).unwrap_or_default()
                    ));
                }
            }
            (Some(_), true) => out.push_str(
                "\nthe current configuration is already the cheapest that meets the objective\n",
            ),
            (None, _) => out.push_str(
                "\nno configuration of the search meets the objective; the closest is shown (exit 1)\n",
            ),
        }
        out
    }

    /// A configuration of the space in a few words.
    fn describe(&self, knobs_at: tune::Knobs) -> String {
        let space = self.space;
        format!(
            "targets x{}, min {}, up {:.0}s {}, down {:.0}s {}",
            space.target_factors[knobs_at[0]],
            space.min_replicas[knobs_at[1]],
            space.scale_up_windows[knobs_at[2]],
            policies(&space.scale_up_policies[knobs_at[3]]),
            space.scale_down_windows[knobs_at[4]],
            policies(&space.scale_down_policies[knobs_at[5]]),
        )
    }

    fn json(&self) -> String {
        let hpa = &self.prepared.hpa;
        let configuration = |knobs_at: Option<tune::Knobs>| match knobs_at {
            None => serde_json::json!("current"),
            Some(knobs_at) => serde_json::json!(self.describe(knobs_at)),
        };
        let front: Vec<Value> = self
            .tuned
            .front
            .iter()
            .map(|&index| {
                let (knobs_at, score) = &self.tuned.evaluated[index];
                serde_json::json!({
                    "configuration": configuration(*knobs_at),
                    "score": score.to_json(),
                    "dominatesCurrent": score.dominates(&self.tuned.current),
                })
            })
            .collect();
        let value = serde_json::json!({
            "version": crate::simulate::render::FORMAT_VERSION,
            "hpa": {"namespace": hpa.namespace, "name": hpa.name},
            "search": {
                "strategy": self.tuned.strategy,
                "evaluated": self.tuned.evaluated.len(),
                "space": self.space.len() + 1,
                "seconds": self.tuned.seconds,
                "candidatesPerSecond": self.candidates_per_second().round(),
            },
            "objectives": self.objectives_text(),
            "met": self.tuned.chosen.is_some(),
            "current": {
                "knobs": knobs_json(hpa, self.config()),
                "score": self.tuned.current.to_json(),
            },
            "recommended": self.recommended.map(|recommended| serde_json::json!({
                "knobs": knobs_json(recommended, self.config()),
                "score": self.recommended_score().map(Score::to_json),
                "patch": self.operations,
            })),
            "holdout": self.holdout.map(|(current, other)| serde_json::json!({
                "current": current.to_json(),
                "recommended": other.map(Score::to_json),
            })),
            "acceleratorsPerReplica": self.accelerators,
            "front": front,
            "warnings": self.warnings,
        });
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn table(heading: &(String, String, String), rows: &[(String, String, String)]) -> String {
    let width = |pick: fn(&(String, String, String)) -> &String| {
        std::iter::once(heading)
            .chain(rows)
            .map(|row| pick(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (first, second) = (width(|row| &row.0), width(|row| &row.1));
    let mut out = String::new();
    for row in std::iter::once(heading).chain(rows) {
        out.push_str(
            format!(
                "  {:<first$}  {:<second$}  {}\n",
                row.0,
                row.1,
                row.2,
                first = first,
                second = second
            )
            .trim_end(),
        );
        out.push('\n');
    }
    out
}
