//! `infergate simulate`: replay an HPA on a recorded metric trace.

use super::*;

/// What a replay needs, shared by `simulate` and `tune`: the autoscaler,
/// the trace and the load model's settings.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A manifest holding the HPA or ScaledObject (a whole bundle: its
    /// workload gives the start-up estimate).
    #[arg(value_name = "HPA_FILE")]
    pub hpa_file: PathBuf,
    /// The recorded trace: CSV `timestamp,metric,value[,replicas]` (a
    /// header in any column order, or `time,SERIES…` wide; seconds or
    /// RFC 3339), or the JSON of a Prometheus query_range.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "prometheus",
        conflicts_with = "prometheus"
    )]
    pub trace: Option<PathBuf>,
    /// Read the trace from this Prometheus (`http(s)://host:port[/prefix]`)
    /// with query_range instead of a file.
    #[arg(long, value_name = "URL", help_heading = "Prometheus")]
    pub prometheus: Option<String>,
    /// The PromQL of an HPA metric, `NAME=QUERY` (one series; `replicas=QUERY`
    /// for the pods it was recorded at). A Pods metric without one is read
    /// as `avg(NAME{namespace="NS"})`, the replicas as `count(…)` of it.
    #[arg(
        long,
        value_name = "NAME=QUERY",
        requires = "prometheus",
        help_heading = "Prometheus"
    )]
    pub query: Vec<String>,
    /// The range's start: RFC 3339, Unix seconds, or a duration before
    /// --end (`7d`) [default: 1d].
    #[arg(
        long,
        value_name = "TIME",
        requires = "prometheus",
        help_heading = "Prometheus"
    )]
    pub start: Option<String>,
    /// The range's end: RFC 3339 or Unix seconds [default: now].
    #[arg(
        long,
        value_name = "TIME",
        requires = "prometheus",
        help_heading = "Prometheus"
    )]
    pub end: Option<String>,
    /// The query resolution.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15s",
        help_heading = "Prometheus"
    )]
    pub step: String,
    /// A bearer token for Prometheus.
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "prometheus",
        conflicts_with = "token_file",
        help_heading = "Prometheus"
    )]
    pub token: Option<String>,
    /// A file holding the bearer token (a service account's, for example).
    #[arg(
        long,
        value_name = "FILE",
        requires = "prometheus",
        help_heading = "Prometheus"
    )]
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust for Prometheus instead of the system's.
    #[arg(
        long,
        value_name = "FILE",
        requires = "prometheus",
        help_heading = "Prometheus"
    )]
    pub certificate_authority: Option<PathBuf>,
    /// The autoscaler to replay, when the file holds several.
    #[arg(long, value_name = "NAME")]
    pub hpa: Option<String>,
    /// A manifest with the workload, when HPA_FILE does not hold it.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    /// Time from a pod's creation to Ready (default: the workload's
    /// model-load estimate, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub startup: Option<String>,
    /// Pods at the start, all Ready (default: the trace's first replicas,
    /// else minReplicas); 0 to 2147483647, as Kubernetes' int32 replicas.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..=i64::from(i32::MAX)))]
    pub initial_replicas: Option<i64>,
    /// The pods the trace was recorded at, when it has no replicas column
    /// (a number from 0 to 2147483647).
    #[arg(long, value_name = "N", value_parser = replica_count)]
    pub recorded_replicas: Option<f64>,
    /// The trace's series for an HPA metric (`NAME=SERIES`; SERIES is a
    /// name, or `#N` for a Prometheus result without one); `replicas=SERIES`
    /// names the recorded replicas.
    #[arg(long, value_name = "NAME=SERIES")]
    pub map: Vec<String>,
    /// The longest gap allowed between two samples of a series.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub max_gap: String,
    /// A policy file merged over the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("comparison").args(["compare", "compare_fix"])))]
pub struct SimulateArgs {
    #[command(flatten)]
    pub replay: ReplayArgs,
    /// Replay this HPA too, on the same trace, and show both.
    #[arg(long, value_name = "OTHER_HPA_FILE")]
    pub compare: Option<PathBuf>,
    /// Replay the HPA as `lint --fix` would leave it too, and show both.
    #[arg(long)]
    pub compare_fix: bool,
    /// With --compare-fix: apply the unsafe fixes too, as `lint --fix
    /// --unsafe-fixes` would (a raised scale-down window, for example).
    #[arg(long, requires = "compare_fix")]
    pub unsafe_fixes: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SimulateFormat::Human)]
    pub format: SimulateFormat,
    /// Write the output to FILE (required for png).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimulateFormat {
    Human,
    Json,
    Csv,
    Svg,
    Png,
}

/// A manifest read and parsed, or a usage error naming it.
fn load_manifest(path: &std::path::Path) -> Result<loader::Loaded, ExitCode> {
    let loaded = loader::load(&[Input::File(path.to_path_buf())]).map_err(|error| {
        usage_error(
            error,
            "give the YAML file that holds the HPA (or ScaledObject)",
        )
    })?;
    use loader::ProblemKind;
    for problem in &loaded.problems {
        let what = match &problem.kind {
            ProblemKind::InvalidYaml(message) => format!("invalid YAML: {message}"),
            ProblemKind::TooDeep => "the YAML nests too deep".to_string(),
            ProblemKind::TooManyAliases => crate::input::nesting::alias_budget_message(),
            ProblemKind::Unread(reason) => reason.clone(),
            ProblemKind::HelmTemplate => {
                "a Helm template: render it first (helm template)".to_string()
            }
            // The object is still read as the apiserver would read it.
            ProblemKind::DuplicateKey { .. } | ProblemKind::IncompleteObject { .. } => continue,
        };
        return Err(usage_error(
            format!(
                "{}:{}:{}: {what}",
                problem.source.name, problem.location.line, problem.location.column
            ),
            "fix the manifest (`infergate lint` shows every problem)",
        ));
    }
    Ok(loaded)
}

/// A replay set up from the command line: the policy's engine, the
/// manifest, the autoscaler read as the controller sees it, the trace and
/// the load model.
pub(super) struct Prepared {
    pub engine: Engine,
    pub loaded: loader::Loaded,
    /// The autoscaler's index in `loaded.objects`.
    pub index: usize,
    pub hpa: crate::simulate::hpa::SimulatedHpa,
    pub trace: crate::simulate::trace::Trace,
    pub map: Vec<(String, String)>,
    pub setup: crate::simulate::run::Setup,
    startup_source: String,
    recorded_given: Option<f64>,
}

pub(super) const HPA_HELP: &str =
    "name an HPA (autoscaling/v2) or a ScaledObject with numeric targets";
pub(super) const TRACE_HELP: &str = "fix the trace; `infergate simulate --help` gives its formats";

impl Prepared {
    /// The trace's recorded replicas: the series `--map replicas=SERIES`
    /// names, else the replicas column.
    pub fn recorded(&self) -> Option<&crate::simulate::trace::Series> {
        crate::simulate::run::recorded_series(&self.trace, &self.map)
    }

    /// The load model in one sentence, for the output.
    pub fn load_model(&self) -> String {
        let recorded_text = match (self.recorded(), self.recorded_given) {
            (Some(_), _) => "the trace's replicas column".to_string(),
            (None, Some(count)) => format!("{count} pods (--recorded-replicas)"),
            (None, None) => format!(
                "{} pods (assumed: no replicas column)",
                self.setup.initial_replicas
            ),
        };
        format!(
            "per-pod metrics carry the load recorded at {recorded_text} and divide it over the Ready pods; Value targets replay as recorded; a new pod is Ready {:.0} s after it is created ({}) and reports nothing before",
            self.setup.startup, self.startup_source
        )
    }

    /// The trace's series for `candidate`'s metrics, in its order.
    pub fn series_for(
        &self,
        candidate: &crate::simulate::hpa::SimulatedHpa,
    ) -> Result<Vec<&crate::simulate::trace::Series>, ExitCode> {
        crate::simulate::run::match_series(candidate, &self.trace, &self.map)
            .map_err(|error| usage_error(error, TRACE_HELP))
    }
}

/// A time of --start or --end: RFC 3339, Unix seconds, or (with `before`)
/// a duration before it.
fn time_argument(flag: &str, text: &str, before: Option<f64>) -> Result<f64, ExitCode> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            return Ok(seconds);
        }
    }
    if let Some(seconds) = crate::simulate::trace::parse_rfc3339(text) {
        return Ok(seconds);
    }
    if let (Some(end), Some(ago)) = (before, crate::input::duration::parse(text)) {
        return Ok(end - ago);
    }
    Err(usage_error(
        format!("{flag} `{text}` is not a time"),
        "write RFC 3339 (2026-12-01T00:00:00Z), Unix seconds, or for --start a duration before --end (7d)",
    ))
}

/// The trace from Prometheus: a query per HPA metric (given, or derived
/// for Pods metrics) and the recorded replicas.
fn from_prometheus(
    args: &ReplayArgs,
    url: &str,
    hpa: &crate::simulate::hpa::SimulatedHpa,
    max_gap: f64,
) -> Result<crate::simulate::trace::Trace, ExitCode> {
    use crate::simulate::prometheus::{self, Query, Range, Server};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64().floor());
    let end = match &args.end {
        Some(text) => time_argument("--end", text, None)?,
        None => now,
    };
    let start = time_argument("--start", args.start.as_deref().unwrap_or("1d"), Some(end))?;
    let Some(step) = crate::input::duration::parse(&args.step).filter(|step| *step > 0.0) else {
        return Err(usage_error(
            format!("--step `{}` is not a duration above zero", args.step),
            "write it like 15s or 1m",
        ));
    };
    let mut given: Vec<(String, String)> = Vec::new();
    for entry in &args.query {
        match entry.split_once('=') {
            Some((name, promql)) if !name.trim().is_empty() && !promql.trim().is_empty() => {
                given.push((name.trim().to_string(), promql.trim().to_string()))
            }
            _ => return Err(usage_error(
                format!("--query `{entry}` is not NAME=QUERY"),
                "for example --query 'vllm:num_requests_waiting=avg(vllm:num_requests_waiting)'",
            )),
        }
    }
    let namespace = hpa.namespace.as_deref().unwrap_or("default");
    let mut queries = Vec::new();
    let mut default_replicas = None;
    for metric in &hpa.metrics {
        let base = crate::policy::base_name(&metric.name);
        let explicit = given
            .iter()
            .find(|(name, _)| *name == metric.name || *name == base)
            .map(|(_, promql)| promql.clone());
        let promql = match explicit {
            Some(promql) => promql,
            None if metric.source == "Pods" => {
                let selector = format!("{base}{{namespace=\"{namespace}\"}}");
                default_replicas.get_or_insert(format!("count({selector})"));
                format!("avg({selector})")
            }
            None => {
                return Err(usage_error(
                    format!(
                        "the HPA's {} metric `{}` needs a query",
                        metric.source, metric.name
                    ),
                    &format!("give --query '{}=PROMQL' (one series)", metric.name),
                ))
            }
        };
        queries.push(Query {
            name: metric.name.clone(),
            promql,
        });
    }
    let replicas = given
        .iter()
        .find(|(name, _)| name == "replicas")
        .map(|(_, promql)| promql.clone())
        .or(default_replicas);
    if let Some(promql) = replicas {
        queries.push(Query {
            name: "replicas".to_string(),
            promql,
        });
    }
    for (name, _) in &given {
        if name != "replicas"
            && !hpa.metrics.iter().any(|metric| {
                *name == metric.name || name == crate::policy::base_name(&metric.name)
            })
        {
            return Err(usage_error(
                format!("--query `{name}` names none of the HPA's metrics"),
                "name an HPA metric, or replicas",
            ));
        }
    }
    let bearer_token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|error| {
                    usage_error(
                        format!("cannot read --token-file {}: {error}", path.display()),
                        "check that the file exists and is readable",
                    )
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let certificate_authority = match &args.certificate_authority {
        Some(path) => Some(std::fs::read(path).map_err(|error| {
            usage_error(
                format!(
                    "cannot read --certificate-authority {}: {error}",
                    path.display()
                ),
                "check that the file exists and is readable",
            )
        })?),
        None => None,
    };
    let server = Server {
        url: url.to_string(),
        bearer_token,
        certificate_authority,
    };
    prometheus::fetch(&server, &queries, Range { start, end, step }, max_gap).map_err(|error| {
        usage_error(
            error,
            "check --prometheus, the queries and the range (`infergate simulate --help`)",
        )
    })
}

/// Read the policy, the manifest, the autoscaler and the trace a replay
/// needs, or a usage error naming what is wrong.
pub(super) fn prepare(args: &ReplayArgs) -> Result<Prepared, ExitCode> {
    use crate::simulate::{self, hpa::SimulatedHpa, run};
    let policy = load_policy(args.policy.as_deref())?;
    let engine = Engine::new(policy);
    let mut loaded = load_manifest(&args.hpa_file)?;
    if let Some(workload) = &args.workload {
        let extra = load_manifest(workload)?;
        loaded.files.extend(extra.files);
        loaded.objects.extend(extra.objects);
    }
    let index = simulate::find_autoscaler(&loaded, args.hpa.as_deref())
        .map_err(|error| usage_error(format!("{}: {error}", args.hpa_file.display()), HPA_HELP))?;
    let hpa = SimulatedHpa::from_object(&loaded.objects[index], engine.policy())
        .map_err(|error| usage_error(format!("{}: {error}", args.hpa_file.display()), HPA_HELP))?;
    let Some(max_gap) = crate::input::duration::parse(&args.max_gap) else {
        return Err(usage_error(
            format!("--max-gap `{}` is not a duration", args.max_gap),
            "write it like 5m or 90s",
        ));
    };
    let trace = match (&args.trace, &args.prometheus) {
        (Some(path), _) => {
            let trace_name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| {
                usage_error(
                    format!("cannot read {trace_name}: {error}"),
                    "check that the trace exists and is readable",
                )
            })?;
            simulate::trace::parse(&trace_name, &text, max_gap)
                .map_err(|error| usage_error(error, TRACE_HELP))?
        }
        (None, Some(url)) => from_prometheus(args, url, &hpa, max_gap)?,
        (None, None) => {
            return Err(usage_error(
                "no trace: give --trace FILE or --prometheus URL",
                TRACE_HELP,
            ))
        }
    };
    run::check_span(&trace, &engine.policy().hpa_controller)
        .map_err(|error| usage_error(error, "split the trace, or export a coarser step"))?;
    let mut map = Vec::new();
    for entry in &args.map {
        match entry.split_once('=') {
            Some((name, series)) if !name.is_empty() && !series.is_empty() => {
                map.push((name.to_string(), series.to_string()))
            }
            _ => {
                return Err(usage_error(
                    format!("--map `{entry}` is not NAME=SERIES"),
                    "for example --map vllm:num_requests_waiting=#0",
                ))
            }
        }
    }
    let (startup, startup_source) = match args.startup.as_deref() {
        Some(text) => match crate::input::duration::parse(text) {
            Some(seconds) => (seconds, "--startup".to_string()),
            None => {
                return Err(usage_error(
                    format!("--startup `{text}` is not a duration"),
                    "write it like 90s or 5m",
                ))
            }
        },
        None => simulate::startup_estimate(&engine, &loaded, index).unwrap_or((
            60.0,
            "the default (no model-load estimate for the workload)".to_string(),
        )),
    };
    let mut prepared = Prepared {
        engine,
        loaded,
        index,
        hpa,
        trace,
        map,
        setup: run::Setup {
            startup,
            initial_replicas: 0,
            recorded_replicas: args.recorded_replicas,
            reference: None,
        },
        startup_source,
        recorded_given: args.recorded_replicas,
    };
    prepared.setup.initial_replicas = args
        .initial_replicas
        .or_else(|| {
            prepared
                .recorded()
                .and_then(|series| series.samples.first())
                .map(|(_, count)| count.round() as i64)
        })
        .unwrap_or(prepared.hpa.min_replicas);
    Ok(prepared)
}

pub(super) fn simulate(args: &SimulateArgs) -> ExitCode {
    use crate::simulate::{self, hpa::SimulatedHpa, render::Shown, run};
    let prepared = match prepare(&args.replay) {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let Prepared {
        engine,
        loaded,
        index,
        hpa,
        trace,
        setup,
        ..
    } = &prepared;
    let hpa_help = HPA_HELP;
    let mut others: Vec<(String, SimulatedHpa)> = Vec::new();
    if let Some(path) = &args.compare {
        let other = load_manifest(path).and_then(|other| {
            // --hpa names the autoscaler of HPA_FILE; the other file's
            // is its only one.
            let index = simulate::find_autoscaler(&other, None)
                .map_err(|error| usage_error(format!("{}: {error}", path.display()), hpa_help))?;
            SimulatedHpa::from_object(&other.objects[index], engine.policy())
                .map_err(|error| usage_error(format!("{}: {error}", path.display()), hpa_help))
        });
        match other {
            // Labelled by its file name, as the user named it.
            Ok(other) => others.push((
                path.file_stem().map_or("compared".to_string(), |stem| {
                    stem.to_string_lossy().into_owned()
                }),
                other,
            )),
            Err(exit) => return exit,
        }
    }
    if args.compare_fix {
        match simulate::fixed_autoscaler(engine, loaded, *index, args.unsafe_fixes) {
            Some(fixed) => match SimulatedHpa::from_object(&fixed, engine.policy()) {
                Ok(fixed) => others.push(("fixed".to_string(), fixed)),
                Err(error) => return usage_error(error, hpa_help),
            },
            None => eprintln!(
                "note: `lint --fix` changes nothing in this autoscaler; replaying it alone"
            ),
        }
    }
    let mut replays = Vec::new();
    for (position, candidate) in std::iter::once(hpa)
        .chain(others.iter().map(|(_, other)| other))
        .enumerate()
    {
        let series = match prepared.series_for(candidate) {
            Ok(series) => series,
            Err(exit) => return exit,
        };
        // A compared HPA is measured against the original's targets, so
        // that "minutes above target" means the same for both.
        let mut setup = setup.clone();
        if position > 0 {
            setup.reference = Some(run::Reference::of(hpa));
        }
        replays.push(run::replay(
            candidate,
            &engine.policy().hpa_controller,
            trace,
            &series,
            prepared.recorded(),
            &setup,
        ));
    }
    let labels: Vec<&str> = std::iter::once("original")
        .chain(others.iter().map(|(label, _)| label.as_str()))
        .collect();
    let hpas: Vec<&SimulatedHpa> = std::iter::once(hpa)
        .chain(others.iter().map(|(_, other)| other))
        .collect();
    let shown: Vec<Shown<'_>> = labels
        .iter()
        .zip(&hpas)
        .zip(&replays)
        .map(|((label, hpa), replay)| Shown { label, hpa, replay })
        .collect();
    let load_model = prepared.load_model();
    let rendered = match args.format {
        SimulateFormat::Human => Ok(simulate::render::human(
            &shown,
            &load_model,
            terminal_style(ColorChoice::Never).width,
        )),
        SimulateFormat::Json => Ok(simulate::render::json(&shown, &load_model)),
        SimulateFormat::Csv => Ok(simulate::render::csv(&shown)),
        SimulateFormat::Svg => simulate::plot::svg(&shown),
        SimulateFormat::Png => return write_png(&shown, args.output.as_deref(), "replay.png"),
    };
    match rendered {
        Ok(text) => write_output(&text, args.output.as_deref()),
        Err(error) => usage_error(error, "report a bug"),
    }
}

/// Draw `shown` into the PNG file `output` (required).
pub(super) fn write_png(
    shown: &[crate::simulate::render::Shown<'_>],
    output: Option<&std::path::Path>,
    example: &str,
) -> ExitCode {
    let Some(path) = output else {
        return usage_error(
            "--format png needs -o FILE",
            &format!("for example -o {example}"),
        );
    };
    match crate::simulate::plot::png(shown, path) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(
            error,
            "check that the output directory exists and is writable",
        ),
    }
}

/// Print `text`, or write it to `output`.
pub(super) fn write_output(text: &str, output: Option<&std::path::Path>) -> ExitCode {
    match output {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => usage_error(
                format!("cannot write {}: {error}", path.display()),
                "check that the output directory exists and is writable",
            ),
        },
        None => print(text),
    }
}

/// A replica count given as a number: finite, from 0 to int32's maximum
/// (NaN, infinities and negative counts are refused with the reason).
fn replica_count(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !value.is_finite() || !(0.0..=f64::from(i32::MAX)).contains(&value) {
        return Err(format!(
            "`{text}` is not a replica count: give a number from 0 to {}",
            i32::MAX
        ));
    }
    Ok(value)
}
