//! The command line: `lint`, `rules`, `explain`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::finding::Severity;
use crate::loader::{self, Input};
use crate::output::{self, human, Visibility};
use crate::policy::Policy;
use crate::rules;

const EXIT_HELP: &str = "\
Exit codes:
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error, unreadable path or invalid policy";

#[derive(Debug, Parser)]
#[command(
    name = "infergate",
    version,
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
    /// List every rule with its default severity and summary.
    Rules,
    /// Print a rule's documentation.
    Explain {
        /// The rule id, as `infergate rules` lists it.
        rule: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Files and directories (searched for *.yaml and *.yml); `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// A policy file merged over the built-in policy (see rules/ and
    /// rules/policy.schema.json).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Show infos and suppressed findings.
    #[arg(long, short)]
    pub verbose: bool,
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
    match cli.command {
        Command::Lint(args) => lint(&args),
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
                eprintln!(
                    "error: no rule named `{rule}`\n  help: `infergate rules` lists the rule ids"
                );
                ExitCode::from(2)
            }
        },
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

fn lint(args: &LintArgs) -> ExitCode {
    let policy: Arc<Policy> = match &args.policy {
        Some(path) => match Policy::with_file(path) {
            Ok(policy) => policy,
            Err(error) => {
                return usage_error(
                    error,
                    "fix the policy file; its format is rules/policy.schema.json",
                )
            }
        },
        None => match Policy::built_in() {
            Ok(policy) => policy,
            Err(error) => return usage_error(error, "the embedded policy is broken; report a bug"),
        },
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
    let loaded = match loader::load(&inputs) {
        Ok(loaded) => loaded,
        Err(error) => return usage_error(error, "check that the path exists and is readable"),
    };
    let engine = Engine::new(policy);
    let outcome = engine.run(&loaded, &ClusterFacts::default());
    let visibility = Visibility {
        verbose: args.verbose,
    };
    let text = match args.format {
        Format::Human => human::render(&outcome, visibility, terminal_style()),
        Format::Json => output::json::render(&outcome, visibility),
        Format::Sarif => output::sarif::render(&outcome),
        Format::Github => output::github::render(&outcome, visibility),
    };
    let printed = print(&text);
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    exit_code(&outcome, args.fail_on)
}

fn terminal_style() -> human::Style {
    let stdout = std::io::stdout();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.parse().ok())
        .unwrap_or(100);
    human::Style {
        color: stdout.is_terminal() && !no_color,
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
