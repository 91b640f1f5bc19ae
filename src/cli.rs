//! The command line: `lint`, `serve`, `audit`, `simulate`, `rules`, `explain`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::finding::Severity;
use crate::fix::{self, FixOptions};
use crate::loader::{self, Input};
use crate::output::{self, human, Visibility};
use crate::policy::Policy;
use crate::rules;

const EXIT_HELP: &str = "\
Exit codes:
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error, unreadable path or invalid policy";

/// The version, the commit it was built from (found by build.rs) and the
/// Kubernetes versions of the schemas src/schema.rs embeds.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\ncommit: {}\nKubernetes schemas: {}",
        env!("CARGO_PKG_VERSION"),
        env!("INFERGATE_COMMIT"),
        crate::schema::versions().collect::<Vec<_>>().join(", ")
    )
});

#[derive(Debug, Parser)]
#[command(
    name = "infergate",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Lint and repair Kubernetes manifests of LLM inference workloads and their autoscalers",
    after_help = EXIT_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lint YAML files or directories (`-` reads standard input).
    #[command(after_help = EXIT_HELP)]
    Lint(LintArgs),
    /// Serve the rules as a Kubernetes admission webhook (validate and
    /// mutate) over TLS.
    Serve(Box<ServeArgs>),
    /// Check what a live cluster runs: its workloads, autoscalers, monitors
    /// and adapter configuration, with its Nodes' accelerator pools and
    /// its HPAs' own status.
    #[command(after_help = AUDIT_EXIT_HELP)]
    Audit(Box<AuditArgs>),
    /// Replay the HPA controller on a recorded metric trace: the replicas
    /// it would have set, with a summary and a chart.
    Simulate(Box<SimulateArgs>),
    /// List every rule with its default severity and summary.
    Rules,
    /// Print a rule's documentation.
    Explain {
        /// The rule id, as `infergate rules` lists it.
        rule: String,
    },
    /// Print the JSON Schema of policy files.
    PolicySchema,
    /// Print the `matchConditions` of the workloads webhooks for a policy:
    /// the CEL filter that sends only plausible inference workloads to the
    /// webhook (paste it into webhooks.yaml after changing the policy's
    /// `inference` detection).
    MatchConditions {
        /// A policy file merged over the built-in policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Print the version, the git commit it was built from and the
    /// Kubernetes versions whose schemas it carries.
    Version,
    /// Print a shell completion script (for example
    /// `infergate completions bash > /etc/bash_completion.d/infergate`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("fixing").args(["fix", "diff"])))]
pub struct LintArgs {
    /// Files and directories (searched for *.yaml and *.yml); `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// A policy file merged over the built-in policy (its format:
    /// `infergate policy-schema`), and over the config file's policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The config file (a policy plus `include`/`exclude` path globs);
    /// default: `.infergate.yaml` or `.infergate.yml` in the current
    /// directory or a parent, up to the repository root.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Ignore any `.infergate.yaml`.
    #[arg(long)]
    pub no_config: bool,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Kubernetes version the schemas are checked against (1.33 to 1.37;
    /// default: the policy's kubernetes.version, the newest).
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
    /// Show infos and suppressed findings.
    #[arg(long, short)]
    pub verbose: bool,
    /// Apply safe fixes to the files in place (comments and layout kept),
    /// then report what remains.
    #[arg(long)]
    pub fix: bool,
    /// With --fix or --diff, also apply fixes marked unsafe.
    #[arg(long, requires = "fixing")]
    pub unsafe_fixes: bool,
    /// Print the fixes as a unified diff and write nothing. Exits 1 when
    /// there is something to fix.
    #[arg(long, conflicts_with = "fix")]
    pub diff: bool,
    /// The directory SARIF paths are relative to (`%SRCROOT%`); default:
    /// the git work tree of the current directory, else the current
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub sarif_root: Option<PathBuf>,
    /// When to colour the human format: auto (a terminal, and NO_COLOR
    /// unset), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

const AUDIT_EXIT_HELP: &str = "\
Exit codes:
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error, the cluster unreachable, a kind that could not be listed
     (the audit is incomplete) or reports that could not be written";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("namespaces").args(["namespace", "all_namespaces"])))]
pub struct AuditArgs {
    /// Kubeconfig file (default: the pod's service account in a cluster,
    /// else $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Audit one namespace (Nodes and cluster-scoped monitors are still
    /// read).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Audit every namespace, also those the webhook leaves out
    /// (kube-system, kube-node-lease, its own, and those labelled
    /// infergate.dev/webhook=exclude). The policy's `namespaces` still
    /// apply. Default: every namespace but those.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Output format; `policyreport` prints wgpolicyk8s.io/v1alpha2
    /// PolicyReports (one per namespace) and a ClusterPolicyReport.
    #[arg(long, value_enum, default_value_t = AuditFormat::Human)]
    pub format: AuditFormat,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// A policy file merged over the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Kubernetes version the schemas are checked against (default: the
    /// policy's kubernetes.version).
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
    /// Apply the PolicyReports to the cluster with server-side apply (field
    /// manager `infergate`), replacing infergate's earlier reports.
    #[arg(long)]
    pub write_reports: bool,
    /// The webhook's namespace, left out by default (default:
    /// $POD_NAMESPACE, else infergate).
    #[arg(long, value_name = "NS")]
    pub webhook_namespace: Option<String>,
    /// Show infos and suppressed findings.
    #[arg(long, short)]
    pub verbose: bool,
    /// When to colour the human format.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("comparison").args(["compare", "compare_fix"])))]
pub struct SimulateArgs {
    /// A manifest holding the HPA or ScaledObject (a whole bundle: its
    /// workload gives the start-up estimate).
    #[arg(value_name = "HPA_FILE")]
    pub hpa_file: PathBuf,
    /// The recorded trace: CSV `timestamp,metric,value[,replicas]`
    /// (seconds or RFC 3339), or the JSON of a Prometheus query_range.
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
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
    /// else minReplicas).
    #[arg(long, value_name = "N")]
    pub initial_replicas: Option<i64>,
    /// The pods the trace was recorded at, when it has no replicas column.
    #[arg(long, value_name = "N")]
    pub recorded_replicas: Option<f64>,
    /// Replay this HPA too, on the same trace, and show both.
    #[arg(long, value_name = "OTHER_HPA_FILE")]
    pub compare: Option<PathBuf>,
    /// Replay the HPA as `lint --fix` would leave it too, and show both.
    #[arg(long)]
    pub compare_fix: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    Sarif,
    Github,
    Policyreport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the admission endpoints (HTTPS only).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub addr: std::net::SocketAddr,
    /// Serving certificate (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "self_signed")]
    pub tls_key: Option<PathBuf>,
    /// Verify the apiserver's client certificate against this CA (PEM).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// A policy file merged over the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Kubernetes version the schemas are checked against.
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kube_version: Option<String>,
    /// Plain HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: std::net::SocketAddr,
    /// Kubeconfig for cluster lookups (default: in-cluster configuration
    /// when running in a pod, else none).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Write a CA, a serving certificate for localhost and 127.0.0.1 and the
    /// base64 caBundle to DIR (kept if present) and serve with them.
    #[arg(long, value_name = "DIR")]
    pub self_signed: Option<PathBuf>,
    /// The webhook's own namespace, never reviewed (default: $POD_NAMESPACE,
    /// else infergate).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Budget for one review, under the webhook's timeoutSeconds (3 s).
    #[arg(long, default_value_t = 2500)]
    pub request_timeout_ms: u64,
    /// Reviews that may run at once; a request beyond them is answered
    /// HTTP 429 at once, and the webhook's failurePolicy applies.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_reviews: usize,
    /// How often the certificate files are checked for rotation.
    #[arg(long, default_value_t = 5000)]
    pub reload_interval_ms: u64,
    /// After SIGTERM, keep accepting and serving this long before draining
    /// (the pod's endpoint is removed meanwhile).
    #[arg(long, default_value_t = 2000)]
    pub shutdown_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Never,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // rayon's workers parse and check files; give them the main thread's
    // stack rather than rayon's 2 MiB default.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(REVIEW_STACK)
        .build_global();
    match cli.command {
        Command::Lint(args) => lint(&args),
        Command::Serve(args) => serve(&args),
        Command::Audit(args) => audit(&args),
        Command::Simulate(args) => simulate(&args),
        Command::Rules => {
            let mut out = String::new();
            for meta in rules::all_meta() {
                out.push_str(&format!(
                    "{:<34} {:<8} {}\n",
                    meta.id,
                    meta.default_severity.as_str(),
                    meta.summary
                ));
            }
            print(&out)
        }
        Command::Explain { rule } => match rules::meta(&rule) {
            Some(meta) => print(&format!(
                "# {}\n\nDefault severity: {}. {}\n\n{}\n",
                meta.id,
                meta.default_severity,
                if meta.fixable {
                    "Has a fix."
                } else {
                    "No fix."
                },
                meta.documentation().trim_end()
            )),
            None => {
                match rules::closest_id(&rule) {
                    Some(close) => eprintln!(
                        "error: no rule named `{rule}`\n  help: did you mean `{close}`? (`infergate rules` lists the rule ids)"
                    ),
                    None => eprintln!(
                        "error: no rule named `{rule}`\n  help: `infergate rules` lists the rule ids"
                    ),
                }
                ExitCode::from(2)
            }
        },
        Command::PolicySchema => print(crate::policy::SCHEMA),
        Command::MatchConditions { policy } => match load_policy(policy.as_deref()) {
            Ok(policy) => print(&crate::webhook::match_conditions::yaml(&policy)),
            Err(exit) => exit,
        },
        Command::Version => print(&format!("infergate {}\n", *LONG_VERSION)),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "infergate", &mut script);
            print(&String::from_utf8_lossy(&script))
        }
    }
}

fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`infergate rules | head`) is not an error worth a panic.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write the output: {error}");
            ExitCode::from(2)
        }
    }
}

fn usage_error(message: impl std::fmt::Display, help: &str) -> ExitCode {
    eprintln!("error: {message}\n  help: {help}");
    ExitCode::from(2)
}

/// The built-in policy, or the built-in one with a policy file merged over
/// it; a broken file is a usage error.
fn load_policy(path: Option<&std::path::Path>) -> Result<Arc<Policy>, ExitCode> {
    match path {
        Some(path) => Policy::with_file(path).map_err(|error| {
            usage_error(
                error,
                "fix the policy file; `infergate policy-schema` prints its format",
            )
        }),
        None => Policy::built_in()
            .map_err(|error| usage_error(error, "the embedded policy is broken; report a bug")),
    }
}

/// The config file of a lint run: `--config`, else the one discovered from
/// the current directory, none with `--no-config`.
fn lint_config(args: &LintArgs) -> Result<Option<Config>, ExitCode> {
    let path = match (&args.config, args.no_config) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => std::env::current_dir()
            .ok()
            .and_then(|directory| crate::config::discover(&directory)),
    };
    let Some(path) = path else {
        if args.verbose {
            eprintln!("config: none (built-in policy)");
        }
        return Ok(None);
    };
    match Config::read(&path) {
        Ok(config) => {
            if args.verbose {
                eprintln!("config: {}", path.display());
            }
            Ok(Some(config))
        }
        Err(error) => Err(usage_error(
            error,
            "fix the config file, or pass --no-config to lint without it",
        )),
    }
}

/// The policy of a lint run: built-in, then the config file's, then
/// `--policy`.
fn lint_policy(args: &LintArgs, config: Option<&Config>) -> Result<Arc<Policy>, ExitCode> {
    let config_name = config.map(|config| config.path.display().to_string());
    let policy_text = match &args.policy {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some((path.display().to_string(), text)),
            Err(error) => {
                return Err(usage_error(
                    format!("cannot read policy file {}: {error}", path.display()),
                    "check that the path exists and is readable",
                ))
            }
        },
        None => None,
    };
    let mut layers = Vec::new();
    if let (Some(config), Some(name)) = (config, &config_name) {
        layers.push(config.layer(name));
    }
    if let Some((name, text)) = &policy_text {
        layers.push(crate::policy::Layer::policy(name, text));
    }
    if layers.is_empty() {
        return load_policy(None);
    }
    Policy::with_layers(&layers).map_err(|error| {
        usage_error(
            error,
            "fix the file; `infergate policy-schema` prints the format of policy and config files",
        )
    })
}

fn lint(args: &LintArgs) -> ExitCode {
    let config = match lint_config(args) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let policy = match lint_policy(args, config.as_ref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let policy = match with_kube_version(policy, args.kube_version.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let stdin_count = args.paths.iter().filter(|path| *path == "-").count();
    if stdin_count > 1 {
        return usage_error("`-` is given more than once", "read standard input once");
    }
    let inputs: Vec<Input> = args
        .paths
        .iter()
        .map(|path| {
            if path == "-" {
                Input::Stdin
            } else {
                Input::File(PathBuf::from(path))
            }
        })
        .collect();
    if args.fix && stdin_count > 0 {
        return usage_error(
            "--fix cannot write to standard input",
            "use --diff to see the fixes for standard input",
        );
    }
    let keep = |path: &std::path::Path| config.as_ref().is_none_or(|config| config.keeps(path));
    let sources = match loader::read_sources_where(&inputs, &keep) {
        Ok((sources, left_out)) => {
            if let Some(config) = &config {
                report_left_out(config, &left_out, sources.is_empty(), args.verbose);
            }
            sources
        }
        Err(error @ loader::LoadError::NoYaml { .. }) => {
            return usage_error(error, "name the directory or files that hold the manifests")
        }
        Err(error) => return usage_error(error, "check that the path exists and is readable"),
    };
    let engine = Engine::new(policy);
    let facts = ClusterFacts::default();
    let sources = if args.fix || args.diff {
        let options = FixOptions {
            unsafe_fixes: args.unsafe_fixes,
        };
        let result = fix::fix_sources(&engine, sources, &facts, options);
        for skipped in &result.skipped {
            eprintln!("warning: {skipped}");
        }
        if args.diff {
            let diff = unified_diff(&result);
            let printed = print(&diff);
            if printed != ExitCode::SUCCESS {
                return printed;
            }
            let changes = result.files.iter().any(fix::FixedFile::changed);
            eprintln!(
                "{} fix(es) would change {} file(s)",
                result.applied,
                result.files.iter().filter(|file| file.changed()).count()
            );
            return if changes {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
        let mut written = 0;
        let mut sources = Vec::new();
        for file in result.files {
            if file.changed() {
                let path = std::path::Path::new(&file.name);
                match fix::write_atomically(path, &file.original.text, &file.text) {
                    Ok(()) => {
                        written += 1;
                        sources.push(file.original.with_text(file.text));
                    }
                    Err(error) => {
                        eprintln!("error: {}: not fixed: {error}", file.name);
                        sources.push(file.original);
                    }
                }
            } else {
                sources.push(file.original);
            }
        }
        eprintln!("fixed {} finding(s) in {written} file(s)", result.applied);
        sources
    } else {
        sources
    };
    let loaded = loader::parse_all(sources);
    let outcome = engine.run(&loaded, &facts);
    let visibility = Visibility {
        verbose: args.verbose,
    };
    let text = match args.format {
        Format::Human => human::render(&outcome, visibility, terminal_style(args.color)),
        Format::Json => output::json::render(&outcome, visibility),
        Format::Sarif => output::sarif::render(
            &outcome,
            &output::sarif::SourceRoot::find(args.sarif_root.as_deref()),
        ),
        Format::Github => output::github::render(&outcome, visibility),
    };
    let printed = print(&text);
    let code = if printed == ExitCode::SUCCESS {
        exit_code(&outcome, args.fail_on)
    } else {
        printed
    };
    // The process ends right after this: freeing every object tree, position
    // map and finding one by one took 0.1-0.2 s on large inputs, work the
    // operating system does at once when it reclaims the process.
    std::mem::forget((loaded, outcome, text));
    code
}

/// Say which files the config's path filters left out: each with
/// `--verbose`, and always when nothing is left to lint (a run that checks
/// nothing must not look like a clean one).
fn report_left_out(config: &Config, left_out: &[PathBuf], nothing_left: bool, verbose: bool) {
    if left_out.is_empty() {
        return;
    }
    if verbose {
        for path in left_out {
            eprintln!("excluded by {}: {}", config.path.display(), path.display());
        }
    }
    if nothing_left {
        eprintln!(
            "note: every file given is excluded by {} ({} file(s)); nothing was linted",
            config.path.display(),
            left_out.len()
        );
    } else if verbose {
        eprintln!(
            "{} file(s) excluded by {}",
            left_out.len(),
            config.path.display()
        );
    }
}

/// The policy with `--kube-version` applied, or a usage error.
fn with_kube_version(policy: Arc<Policy>, version: Option<&str>) -> Result<Arc<Policy>, ExitCode> {
    let Some(version) = version else {
        return Ok(policy);
    };
    let version = version.trim_start_matches('v');
    let version = version.split('.').take(2).collect::<Vec<_>>().join(".");
    if !crate::schema::versions().any(|known| known == version) {
        let known: Vec<&str> = crate::schema::versions().collect();
        return Err(usage_error(
            format!("no schemas for Kubernetes {version}"),
            &format!("use one of {}", known.join(", ")),
        ));
    }
    let mut changed = (*policy).clone();
    changed.kubernetes.version = version;
    Ok(Arc::new(changed))
}

/// Stack of every thread that reads input (rayon's and tokio's). Checking
/// a document [`crate::nesting::MAX_DEPTH`] levels deep took between 384
/// and 512 KiB in a debug build (measured by shrinking this constant until
/// tests/robustness.rs failed), so 8 MiB leaves a sixteenfold margin.
const REVIEW_STACK: usize = 8 * 1024 * 1024;

fn serve(args: &ServeArgs) -> ExitCode {
    let policy = match &args.policy {
        Some(path) => Policy::with_file(path),
        None => Policy::built_in(),
    };
    let policy = match policy {
        Ok(policy) => policy,
        Err(error) => {
            return usage_error(
                error,
                "fix the policy file; `infergate policy-schema` prints its format",
            )
        }
    };
    let policy = match with_kube_version(policy, args.kube_version.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let (tls_cert, tls_key) = match (&args.self_signed, &args.tls_cert, &args.tls_key) {
        (_, Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (Some(directory), _, _) => match crate::webhook::selfsigned::ensure(directory) {
            Ok(files) => {
                eprintln!(
                    "infergate: self-signed CA {} and serving certificate {}; caBundle in {}",
                    files.ca_cert.display(),
                    files.cert.display(),
                    files.ca_bundle.display()
                );
                (files.cert, files.key)
            }
            Err(error) => return usage_error(error, "give a writable directory"),
        },
        _ => {
            return usage_error(
                "--tls-cert and --tls-key are required",
                "or use --self-signed DIR for a local trial",
            )
        }
    };
    let own_namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "infergate".to_string());
    let options = crate::webhook::server::ServeOptions {
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        tls_cert,
        tls_key,
        client_ca: args.client_ca.clone(),
        kubeconfig: args.kubeconfig.clone(),
        excluded_namespaces: vec![
            "kube-system".to_string(),
            "kube-node-lease".to_string(),
            own_namespace,
        ],
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
        max_concurrent_reviews: args.max_concurrent_reviews,
        reload_interval: std::time::Duration::from_millis(args.reload_interval_ms.max(100)),
        drain_timeout: std::time::Duration::from_secs(25),
        shutdown_delay: std::time::Duration::from_millis(args.shutdown_delay_ms),
    };
    // Only ring is compiled in; installing it makes the choice explicit
    // for every rustls user in the process (kube's client included).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Reviews run on the blocking pool (bounded by --max-concurrent-reviews);
    // its threads get the same generous stack as the main thread.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(REVIEW_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error, "the async runtime could not start"),
    };
    let engine = std::sync::Arc::new(Engine::new(policy));
    match runtime.block_on(crate::webhook::server::run(options, engine)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => usage_error(error, "check the addresses, certificates and kubeconfig"),
    }
}

fn audit(args: &AuditArgs) -> ExitCode {
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let policy = match with_kube_version(policy, args.kube_version.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_stack_size(REVIEW_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error, "the async runtime could not start"),
    };
    let namespaces = match (&args.namespace, args.all_namespaces) {
        (Some(namespace), _) => crate::audit::Namespaces::One(namespace.clone()),
        (None, true) => crate::audit::Namespaces::All,
        (None, false) => crate::audit::Namespaces::AllBut(vec![
            "kube-system".to_string(),
            "kube-node-lease".to_string(),
            args.webhook_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "infergate".to_string()),
        ]),
    };
    let engine = Engine::new(policy);
    runtime.block_on(audit_cluster(args, &engine, &namespaces))
}

async fn audit_cluster(
    args: &AuditArgs,
    engine: &Engine,
    namespaces: &crate::audit::Namespaces,
) -> ExitCode {
    let connect_help = "check --kubeconfig and --context, and that the apiserver is reachable (`kubectl get --raw /version`)";
    let client =
        match crate::audit::client(args.kubeconfig.as_deref(), args.context.as_deref()).await {
            Ok(client) => client,
            Err(error) => return usage_error(error, connect_help),
        };
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |step: crate::audit::Progress<'_>| {
        if terminal {
            eprintln!("listed {} {}", step.listed, step.kind.plural);
        }
    };
    let listing = match crate::audit::list(&client, namespaces, &mut progress).await {
        Ok(listing) => listing,
        Err(error) => return usage_error(error, connect_help),
    };
    if !listing.absent.is_empty() {
        let absent: Vec<String> = listing
            .absent
            .iter()
            .map(|kind| format!("{} ({})", kind.kind, kind.api_version))
            .collect();
        eprintln!(
            "note: not served by this cluster, skipped: {}",
            absent.join(", ")
        );
    }
    if !listing.left_out.is_empty() && args.verbose {
        let left_out: Vec<&str> = listing.left_out.iter().map(String::as_str).collect();
        eprintln!(
            "note: namespaces left out (-A audits them): {}",
            left_out.join(", ")
        );
    }
    for (kind, error) in &listing.failed {
        eprintln!(
            "error: cannot list {} ({}): {error}",
            kind.plural, kind.api_version
        );
    }
    let incomplete = !listing.failed.is_empty();
    let scope = match namespaces {
        crate::audit::Namespaces::One(namespace) => Some(namespace.clone()),
        _ => None,
    };
    let audited = crate::audit::check(engine, listing);
    let visibility = Visibility {
        verbose: args.verbose,
    };
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let reports = crate::audit::report::reports(&audited, seconds);
    let text = match args.format {
        AuditFormat::Human => {
            human::render(&audited.outcome, visibility, terminal_style(args.color))
        }
        AuditFormat::Json => output::json::render(&audited.outcome, visibility),
        AuditFormat::Sarif => {
            output::sarif::render(&audited.outcome, &output::sarif::SourceRoot::find(None))
        }
        AuditFormat::Github => output::github::render(&audited.outcome, visibility),
        AuditFormat::Policyreport => crate::audit::report::yaml(&reports),
    };
    let printed = print(&text);
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    if args.write_reports {
        match crate::audit::report::write(&client, &reports, scope.as_deref()).await {
            Ok((written, deleted)) => eprintln!(
                "wrote {written} report(s) with server-side apply (field manager {}); deleted {deleted} earlier one(s)",
                crate::audit::report::FIELD_MANAGER
            ),
            Err(error @ crate::audit::report::WriteError::NotInstalled) => {
                return usage_error(
                    error,
                    "install the PolicyReport CRDs (kubernetes-sigs/wg-policy-prototypes, or Kyverno, which ships them), or audit without --write-reports",
                )
            }
            Err(error) => {
                return usage_error(
                    error,
                    "the audit's ClusterRole needs create, get, list, patch and delete of policyreports and clusterpolicyreports (webhook-deploy/audit/)",
                )
            }
        }
    }
    if incomplete {
        eprintln!("error: the audit is incomplete: some kinds could not be listed (see above)");
        return ExitCode::from(2);
    }
    exit_code(&audited.outcome, args.fail_on)
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

fn simulate(args: &SimulateArgs) -> ExitCode {
    use crate::simulate::{self, hpa::SimulatedHpa, render::Shown, run};
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(policy) => policy,
        Err(exit) => return exit,
    };
    let engine = Engine::new(policy);
    let hpa_help = "name an HPA (autoscaling/v2) or a ScaledObject with numeric targets";
    let mut loaded = match load_manifest(&args.hpa_file) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    if let Some(workload) = &args.workload {
        match load_manifest(workload) {
            Ok(extra) => {
                loaded.files.extend(extra.files);
                loaded.objects.extend(extra.objects);
            }
            Err(exit) => return exit,
        }
    }
    let index = match simulate::find_autoscaler(&loaded, args.hpa.as_deref()) {
        Ok(index) => index,
        Err(error) => {
            return usage_error(format!("{}: {error}", args.hpa_file.display()), hpa_help)
        }
    };
    let hpa = match SimulatedHpa::from_object(&loaded.objects[index], engine.policy()) {
        Ok(hpa) => hpa,
        Err(error) => {
            return usage_error(format!("{}: {error}", args.hpa_file.display()), hpa_help)
        }
    };
    let Some(max_gap) = crate::duration::parse(&args.max_gap) else {
        return usage_error(
            format!("--max-gap `{}` is not a duration", args.max_gap),
            "write it like 5m or 90s",
        );
    };
    let trace_name = args.trace.display().to_string();
    let text = match std::fs::read_to_string(&args.trace) {
        Ok(text) => text,
        Err(error) => {
            return usage_error(
                format!("cannot read {trace_name}: {error}"),
                "check that the trace exists and is readable",
            )
        }
    };
    let trace_help = "fix the trace; `infergate simulate --help` gives its formats";
    let trace = match simulate::trace::parse(&trace_name, &text, max_gap) {
        Ok(trace) => trace,
        Err(error) => return usage_error(error, trace_help),
    };
    if let Err(error) = run::check_span(&trace, &engine.policy().hpa_controller) {
        return usage_error(error, "split the trace, or export a coarser step");
    }
    let mut map = Vec::new();
    for entry in &args.map {
        match entry.split_once('=') {
            Some((name, series)) if !name.is_empty() && !series.is_empty() => {
                map.push((name.to_string(), series.to_string()))
            }
            _ => {
                return usage_error(
                    format!("--map `{entry}` is not NAME=SERIES"),
                    "for example --map vllm:num_requests_waiting=#0",
                )
            }
        }
    }
    let recorded = map
        .iter()
        .find(|(name, _)| name == "replicas")
        .and_then(|(_, series)| trace.series.get(series))
        .or(trace.replicas.as_ref());
    let (startup, startup_source) = match args.startup.as_deref() {
        Some(text) => match crate::duration::parse(text) {
            Some(seconds) => (seconds, "--startup".to_string()),
            None => {
                return usage_error(
                    format!("--startup `{text}` is not a duration"),
                    "write it like 90s or 5m",
                )
            }
        },
        None => simulate::startup_estimate(&engine, &loaded, index).unwrap_or((
            60.0,
            "the default (no model-load estimate for the workload)".to_string(),
        )),
    };
    let initial = args
        .initial_replicas
        .or_else(|| {
            recorded
                .and_then(|series| series.samples.first())
                .map(|(_, count)| count.round() as i64)
        })
        .unwrap_or(hpa.min_replicas);
    let setup = run::Setup {
        startup,
        initial_replicas: initial,
        recorded_replicas: args.recorded_replicas,
    };
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
        match simulate::fixed_autoscaler(&engine, &loaded, index) {
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
    for candidate in std::iter::once(&hpa).chain(others.iter().map(|(_, other)| other)) {
        let series = match run::match_series(candidate, &trace, &map) {
            Ok(series) => series,
            Err(error) => return usage_error(error, trace_help),
        };
        replays.push(run::replay(
            candidate,
            &engine.policy().hpa_controller,
            &trace,
            &series,
            recorded,
            &setup,
        ));
    }
    let labels: Vec<&str> = std::iter::once("original")
        .chain(others.iter().map(|(label, _)| label.as_str()))
        .collect();
    let hpas: Vec<&SimulatedHpa> = std::iter::once(&hpa)
        .chain(others.iter().map(|(_, other)| other))
        .collect();
    let shown: Vec<Shown<'_>> = labels
        .iter()
        .zip(&hpas)
        .zip(&replays)
        .map(|((label, hpa), replay)| Shown { label, hpa, replay })
        .collect();
    let recorded_text = match (recorded, args.recorded_replicas) {
        (Some(_), _) => "the trace's replicas column".to_string(),
        (None, Some(count)) => format!("{count} pods (--recorded-replicas)"),
        (None, None) => format!("{initial} pods (assumed: no replicas column)"),
    };
    let load_model = format!(
        "per-pod metrics carry the load recorded at {recorded_text} and divide it over the Ready pods; Value targets replay as recorded; a new pod is Ready {startup:.0} s after it is created ({startup_source}) and reports nothing before"
    );
    let rendered = match args.format {
        SimulateFormat::Human => Ok(simulate::render::human(
            &shown,
            &load_model,
            terminal_style(ColorChoice::Never).width,
        )),
        SimulateFormat::Json => Ok(simulate::render::json(&shown, &load_model)),
        SimulateFormat::Csv => Ok(simulate::render::csv(&shown)),
        SimulateFormat::Svg => simulate::plot::svg(&shown),
        SimulateFormat::Png => {
            let Some(path) = &args.output else {
                return usage_error("--format png needs -o FILE", "for example -o replay.png");
            };
            return match simulate::plot::png(&shown, path) {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(error) => usage_error(
                    error,
                    "check that the output directory exists and is writable",
                ),
            };
        }
    };
    let text = match rendered {
        Ok(text) => text,
        Err(error) => return usage_error(error, "report a bug"),
    };
    match &args.output {
        Some(path) => match std::fs::write(path, &text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => usage_error(
                format!("cannot write {}: {error}", path.display()),
                "check that the output directory exists and is writable",
            ),
        },
        None => print(&text),
    }
}

/// `a/path` for relative paths (as git writes them), the path itself when
/// absolute.
fn diff_label(side: &str, name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("{side}/{}", name.trim_start_matches("./"))
    }
}

fn unified_diff(result: &fix::FixResult) -> String {
    let mut out = String::new();
    for file in result.files.iter().filter(|file| file.changed()) {
        let diff = similar::TextDiff::from_lines(file.original.text.as_str(), file.text.as_str());
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&diff_label("a", &file.name), &diff_label("b", &file.name))
                .to_string(),
        );
    }
    out
}

fn terminal_style(choice: ColorChoice) -> human::Style {
    let stdout = std::io::stdout();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    // $COLUMNS first (a user's or CI's choice), then the terminal's own
    // width, else 100 (a pipe or a CI log).
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.parse().ok())
        .or_else(|| {
            terminal_size::terminal_size_of(&stdout)
                .map(|(terminal_size::Width(width), _)| usize::from(width))
        })
        .unwrap_or(100);
    human::Style {
        color: match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout.is_terminal() && !no_color,
        },
        width,
    }
}

/// 1 when a finding that is not suppressed reaches `fail_on`.
pub fn exit_code(outcome: &Outcome, fail_on: FailOn) -> ExitCode {
    let threshold = match fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
        FailOn::Never => return ExitCode::SUCCESS,
    };
    let failing = outcome
        .findings
        .iter()
        .any(|finding| finding.suppressed.is_none() && finding.severity >= threshold);
    if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
