//! The command line: `lint`, `rules`, `explain`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{ClusterFacts, Engine, Outcome};
use crate::finding::Severity;
use crate::fix::{self, FixOptions};
use crate::loader::{self, Input};
use crate::output::{self, human, Visibility};
use crate::policy::Policy;
use crate::rules;
use crate::source::SourceFile;

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
    /// Apply safe fixes to the files in place (comments and layout kept),
    /// then report what remains.
    #[arg(long)]
    pub fix: bool,
    /// With --fix or --diff, also apply fixes marked unsafe.
    #[arg(long)]
    pub unsafe_fixes: bool,
    /// Print the fixes as a unified diff and write nothing. Exits 1 when
    /// there is something to fix.
    #[arg(long, conflicts_with = "fix")]
    pub diff: bool,
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
    if args.fix && stdin_count > 0 {
        return usage_error(
            "--fix cannot write to standard input",
            "use --diff to see the fixes for standard input",
        );
    }
    let sources = match loader::read_sources(&inputs) {
        Ok(sources) => sources,
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
                        sources.push(SourceFile::new(file.name, file.text));
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

fn unified_diff(result: &fix::FixResult) -> String {
    let mut out = String::new();
    for file in result.files.iter().filter(|file| file.changed()) {
        let diff = similar::TextDiff::from_lines(file.original.text.as_str(), file.text.as_str());
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{}", file.name), &format!("b/{}", file.name))
                .to_string(),
        );
    }
    out
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
