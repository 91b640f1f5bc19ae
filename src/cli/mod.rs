//! The command line: `lint`, `serve`, `audit`, `simulate`, `tune`, `rules`, `explain`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::fix::{self, FixOptions};
use crate::input::loader::{self, Input};
use crate::output::{self, human, Visibility};
use crate::policy::config::Config;
use crate::policy::Policy;
use crate::rules;

mod audit;
mod lint;
mod progress;
mod serve;
mod simulate;
mod tune;

pub use audit::{AuditArgs, AuditFormat};
pub use lint::{Format, LintArgs};
pub use serve::ServeArgs;
pub use simulate::{ReplayArgs, SimulateArgs, SimulateFormat};
pub use tune::{TuneArgs, TuneFormat};

const EXIT_HELP: &str = "\
Exit codes:
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error, unreadable path or invalid policy";

const AUDIT_EXIT_HELP: &str = "\
Exit codes:
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error, the cluster unreachable, a kind that could not be listed
     (the audit is incomplete) or reports that could not be written";

/// The version, the commit it was built from (found by build.rs) and the
/// Kubernetes versions of the schemas src/engine/schema.rs embeds.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\ncommit: {}\nKubernetes schemas: {}",
        env!("CARGO_PKG_VERSION"),
        env!("INFERGATE_COMMIT"),
        crate::engine::schema::versions()
            .collect::<Vec<_>>()
            .join(", ")
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
    /// Search an HPA's targets, minReplicas, windows and policies on a
    /// recorded trace (the simulator as the model) and recommend the
    /// cheapest configuration that keeps the service objective, as a patch.
    Tune(Box<TuneArgs>),
    /// List every rule with its default severity and summary.
    Rules,
    /// Print a rule's documentation.
    Explain {
        /// The rule id, as `infergate rules` lists it.
        #[arg(value_parser = RuleId)]
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

/// Any string is accepted (an unknown id gets infergate's own "did you
/// mean"), but the rule ids are offered as possible values so that shell
/// completions complete them.
#[derive(Debug, Clone, Copy)]
struct RuleId;

impl clap::builder::TypedValueParser for RuleId {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(command, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(rules::all_meta().into_iter().map(|meta| {
            clap::builder::PossibleValue::new(meta.id).help(meta.summary)
        })))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
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
        Command::Lint(args) => lint::lint(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Audit(args) => audit::audit(&args),
        Command::Simulate(args) => simulate::simulate(&args),
        Command::Tune(args) => tune::tune(&args),
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
            Some(meta) => print(&meta.explanation()),
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
            let mut text = String::from_utf8_lossy(&script).into_owned();
            // clap_complete's fish script completes options' values but not
            // positional ones: offer `explain` the rule ids there too.
            if shell == clap_complete::Shell::Fish {
                for meta in rules::all_meta() {
                    text.push_str(&format!(
                        "complete -c infergate -n \"__fish_infergate_using_subcommand explain\" -f -a \"{}\" -d '{}'\n",
                        meta.id,
                        meta.summary.replace('\\', "\\\\").replace('\'', "\\'")
                    ));
                }
            }
            print(&text)
        }
    }
}

fn print(text: &str) -> ExitCode {
    print_with(|out| out.write_all(text.as_bytes()))
}

/// Writes a report to stdout as it is produced, through one buffer: a
/// report larger than the input is never held whole in memory.
fn print_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> ExitCode {
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match write(&mut stdout).and_then(|()| stdout.flush()) {
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

/// The policy with `--kube-version` applied, or a usage error.
fn with_kube_version(policy: Arc<Policy>, version: Option<&str>) -> Result<Arc<Policy>, ExitCode> {
    let Some(version) = version else {
        return Ok(policy);
    };
    let version = version.trim_start_matches('v');
    let version = version.split('.').take(2).collect::<Vec<_>>().join(".");
    if !crate::engine::schema::versions().any(|known| known == version) {
        let known: Vec<&str> = crate::engine::schema::versions().collect();
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
/// a document [`crate::input::nesting::MAX_DEPTH`] levels deep took between 384
/// and 512 KiB in a debug build (measured by shrinking this constant until
/// tests/robustness.rs failed), so 8 MiB leaves a sixteenfold margin.
const REVIEW_STACK: usize = 8 * 1024 * 1024;

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

/// 1 when a finding that is not suppressed reaches `fail_on`, read from the
/// summary's counts (which leave the suppressed findings out): a lint
/// written a batch at a time keeps only the summary.
pub fn exit_code(summary: &crate::engine::Summary, fail_on: FailOn) -> ExitCode {
    let failing = match fail_on {
        FailOn::Error => summary.errors,
        FailOn::Warning => summary.errors + summary.warnings,
        FailOn::Never => 0,
    };
    if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
