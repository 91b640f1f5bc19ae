//! `infergate lint`: files in, findings (and fixes) out.

use super::*;
use std::ops::ControlFlow;

use crate::engine::Summary;
use crate::input::loader::Pending;
use crate::input::source::SourceFile;
use crate::output::ReportWriter;

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
    /// Kubernetes version the schemas are checked against (1.30 to 1.37;
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
    /// The path standard input (`-`) stands for, as editors and hooks that
    /// pipe a buffer give it: findings name it, the config's globs filter
    /// it, and it joins that file's application.
    #[arg(long, value_name = "PATH")]
    pub stdin_filename: Option<PathBuf>,
    /// Lint the files given as part of their applications, as `lint .`
    /// run here groups them: the other files of each application are read
    /// for context (they are read before the files given, so a conflict
    /// between two objects is reported at the one given), and only the
    /// files given are reported and fixed. For pre-commit, which passes
    /// the staged files.
    #[arg(long)]
    pub application_context: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

/// The config file of a lint run: `--config`, else the one discovered from
/// the current directory, none with `--no-config`.
fn lint_config(args: &LintArgs) -> Result<Option<Config>, ExitCode> {
    let path = match (&args.config, args.no_config) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => std::env::current_dir()
            .ok()
            .and_then(|directory| crate::policy::config::discover(&directory)),
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
        Some(path) => match crate::policy::config::read_capped(path) {
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

pub(super) fn lint(args: &LintArgs) -> ExitCode {
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
                match &args.stdin_filename {
                    Some(name) => Input::StdinAs(name.clone()),
                    None => Input::Stdin,
                }
            } else {
                Input::File(PathBuf::from(path))
            }
        })
        .collect();
    if args.stdin_filename.is_some() && stdin_count == 0 {
        return usage_error(
            "--stdin-filename names standard input, which is not read",
            "add `-` to the paths",
        );
    }
    if args.fix && stdin_count > 0 {
        return usage_error(
            "--fix cannot write to standard input",
            "use --diff to see the fixes for standard input",
        );
    }
    let keep = |path: &std::path::Path| config.as_ref().is_none_or(|config| config.keeps(path));
    // With --application-context, the names of the files given: the rest
    // of what is read is context only.
    let given: Option<std::collections::HashSet<String>> = if args.application_context {
        if stdin_count > 0
            || args
                .paths
                .iter()
                .any(|path| !std::path::Path::new(path).is_file())
        {
            return usage_error(
                "--application-context takes files, as pre-commit passes them",
                "name files (not directories or `-`), or leave the option out",
            );
        }
        Some(
            args.paths
                .iter()
                .map(|path| loader::display_name(std::path::Path::new(path)))
                .collect(),
        )
    } else {
        None
    };
    let mut progress = super::progress::Progress::start("reading files");
    let all_read = |read: Result<(Vec<Arc<SourceFile>>, Vec<PathBuf>), loader::LoadError>| {
        read.map(|(sources, left_out)| (sources.into_iter().map(Pending::Read).collect(), left_out))
    };
    let read: Result<(Vec<Pending>, _), _> = match &given {
        Some(_) => {
            let files: Vec<PathBuf> = args.paths.iter().map(PathBuf::from).collect();
            all_read(loader::read_with_applications(&files, &keep))
        }
        None if args.fix || args.diff => all_read(loader::read_sources_where(&inputs, &keep)),
        // A lint reads each batch of applications when its turn comes.
        None => loader::list_sources_where(&inputs, &keep),
    };
    let sources = match read {
        Ok((sources, left_out)) => {
            if let Some(config) = &config {
                report_left_out(config, &left_out, sources.is_empty(), args.verbose);
            }
            sources
        }
        Err(error @ loader::LoadError::NoYaml { .. }) => {
            progress.finish();
            return usage_error(error, "name the directory or files that hold the manifests");
        }
        Err(error) => {
            progress.finish();
            return usage_error(error, "check that the path exists and is readable");
        }
    };
    let engine = Engine::new(policy);
    let facts = ClusterFacts::default();
    progress.step(format!("checking {} file(s)", sources.len()));
    // The config's per-path ignores: suppressed in the report, and left
    // alone by --fix.
    let ignored = |finding: &crate::engine::finding::Finding| {
        config
            .as_ref()
            .and_then(|config| config.ignores(std::path::Path::new(finding.file()), finding.rule))
    };
    // Findings in files read only for context are neither fixed nor shown.
    let is_context = |name: &str| given.as_ref().is_some_and(|given| !given.contains(name));
    let not_fixed = |finding: &crate::engine::finding::Finding| {
        if is_context(finding.file()) {
            return Some("read for context only".to_string());
        }
        ignored(finding)
    };
    let reported = if args.fix || args.diff {
        let options = FixOptions {
            unsafe_fixes: args.unsafe_fixes,
        };
        progress.step(format!("fixing {} file(s)", sources.len()));
        let sources = loader::read_pending(sources);
        let result = fix::fix_sources_except(&engine, sources, &facts, options, &not_fixed);
        // What follows prints: the diff, the warnings, the writes' outcomes.
        progress.finish();
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
                "fixes for {} would change {} file(s)",
                fixed_count(&result),
                result.files.iter().filter(|file| file.changed()).count()
            );
            return if changes {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
        let fixed = fixed_count(&result);
        let outcomes = write_fixed_files(result.files, &is_context);
        let mut written = 0;
        let mut unwritten = false;
        let mut sources = Vec::new();
        for (source, outcome) in outcomes {
            match outcome {
                Some(Ok(())) => written += 1,
                Some(Err(message)) => {
                    eprintln!("{message}");
                    unwritten = true;
                }
                None => {}
            }
            sources.push(source);
        }
        eprintln!("fixed {fixed} in {written} file(s)");
        // The fixing's last pass checked exactly what is now on disk,
        // unless a write failed.
        match result.settled {
            Some(settled) if !unwritten => Reported::Checked(settled),
            _ => Reported::Unchecked(sources.into_iter().map(Pending::Read).collect()),
        }
    } else {
        Reported::Unchecked(sources)
    };
    if let Some(config) = &config {
        // Only a walk sees every file a pattern could name; the
        // pre-commit hook's staged files would make every other pattern
        // look unused.
        if args
            .paths
            .iter()
            .all(|path| std::path::Path::new(path).is_dir())
        {
            for (place, pattern) in config.unmatched() {
                eprintln!(
                    "warning: {}: {place} `{pattern}` matches no file here; check the path (it is relative to the config's directory)",
                    config.path.display()
                );
            }
        }
    }
    let visibility = Visibility {
        verbose: args.verbose,
    };
    let sarif_root = output::sarif::SourceRoot::find(args.sarif_root.as_deref());
    let mut report: Box<dyn ReportWriter> = match args.format {
        Format::Human => Box::new(human::Diagnostics::new(
            visibility,
            terminal_style(args.color),
        )),
        Format::Json => Box::new(output::json::Report::new(visibility)),
        Format::Sarif => Box::new(output::sarif::Report::new(&sarif_root)),
        Format::Github => Box::new(output::github::Report { visibility }),
    };
    // What --verbose says was skipped, noted while each batch's objects
    // are at hand and printed after the report.
    let mut skipped = Vec::new();
    let settle = |loaded: &loader::Loaded, outcome: &mut Outcome| {
        if let Some(given) = &given {
            outcome.narrow_to(loaded, |name| given.contains(name));
        }
    };
    let mut summary = Summary::default();
    let printed = match reported {
        Reported::Checked((loaded, mut outcome)) => {
            settle(&loaded, &mut outcome);
            if args.verbose {
                skipped = skipped_in(&loaded, engine.policy());
            }
            progress.finish();
            summary = outcome.summary.clone();
            let printed = print_with(|out| output::write_outcome(report.as_mut(), &outcome, out));
            // The process ends soon after: freeing every object tree,
            // position map and finding one by one took 0.1-0.2 s on large
            // inputs, work the operating system does at once when it
            // reclaims the process.
            std::mem::forget((loaded, outcome));
            printed
        }
        // A batch of applications at a time: each batch's findings are
        // reported and its objects and findings dropped before the next
        // batch is read, so the memory follows the largest batch.
        Reported::Unchecked(sources) => print_with(|out| {
            let mut written = Ok(());
            let mut started = false;
            let mut files_left = sources.len();
            engine.run_by_application(
                sources,
                &facts,
                crate::engine::batches::BATCH_BYTES,
                |loaded, mut outcome| {
                    outcome.suppress_where(ignored);
                    settle(&loaded, &mut outcome);
                    if args.verbose {
                        skipped.extend(skipped_in(&loaded, engine.policy()));
                    }
                    summary.add(&outcome.summary);
                    if !started {
                        progress.finish();
                        started = true;
                        written = report.start(out);
                    }
                    for finding in &outcome.findings {
                        if written.is_err() {
                            break;
                        }
                        written = report.finding(finding, out);
                    }
                    files_left = files_left.saturating_sub(loaded.files.len());
                    if files_left == 0 {
                        // The last batch: the process ends soon after, and
                        // freeing its object trees and findings one by one
                        // (0.1-0.2 s for 30,000 objects) is work the
                        // operating system does at once.
                        std::mem::forget((loaded, outcome));
                    }
                    match &written {
                        // A closed pipe (`| head`) ends the report, not the
                        // run: the exit code still counts every finding.
                        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                            ControlFlow::Break(())
                        }
                        _ => ControlFlow::Continue(()),
                    }
                },
            );
            progress.finish();
            if !started {
                report.start(out)?;
            }
            written?;
            report.finish(&summary, out)
        }),
    };
    skipped.sort();
    for (_, _, _, said) in &skipped {
        eprintln!("{said}");
    }
    if printed == ExitCode::SUCCESS {
        exit_code(&summary, args.fail_on)
    } else {
        printed
    }
}

/// Files `--fix` writes at once.
const FILE_WRITERS: usize = 8;

/// Writes the files `--fix` changed, each on its own (a temporary file,
/// synced, then renamed), so the writes run in parallel; what they report
/// comes back in file order. A file read only for context is not written.
fn write_fixed_files(
    files: Vec<fix::FixedFile>,
    is_context: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<Written> {
    use rayon::prelude::*;
    let write_all = || -> Vec<Written> {
        files
            .into_par_iter()
            .map(|file| {
                if !file.changed() {
                    return (file.original, None);
                }
                if is_context(&file.name) {
                    // A fix of a file given that also patches another
                    // object, in a file read for context only.
                    let message = format!(
                        "warning: {}: not written: a fix reaches it, but it is not among the files given",
                        file.name
                    );
                    return (file.original, Some(Err(message)));
                }
                let path = std::path::Path::new(&file.name);
                match fix::write_atomically(path, &file.original.text, &file.text) {
                    Ok(()) => (file.original.with_text(file.text), Some(Ok(()))),
                    Err(error) => (
                        file.original,
                        Some(Err(format!("error: {}: not fixed: {error}", file.name))),
                    ),
                }
            })
            .collect()
    };
    // A write waits mostly on the disk (each file is synced before its
    // rename), so more writers than cores overlap those waits and let the
    // file system commit several syncs at once.
    match rayon::ThreadPoolBuilder::new()
        .num_threads(FILE_WRITERS)
        .build()
    {
        Ok(writers) => writers.install(write_all),
        Err(_) => write_all(),
    }
}

/// What the fixes did, in the terms of a lint's summary: its "N fixable"
/// are the findings resolved (one fix may resolve two findings), and what
/// the fixes uncovered and fixed too is counted apart.
fn fixed_count(result: &fix::FixResult) -> String {
    match result.uncovered {
        0 => format!("{} finding(s)", result.resolved),
        uncovered => format!(
            "{} finding(s) and {uncovered} more that those fixes uncovered",
            result.resolved
        ),
    }
}

/// A file after `--fix` wrote it: its source as now on disk, and the
/// outcome of the write (`None` when it needed none; an error message).
type Written = (
    Arc<crate::input::source::SourceFile>,
    Option<Result<(), String>>,
);

/// What the report shows: sources still to load and check, or what the
/// fixing's last pass already checked.
enum Reported {
    Unchecked(Vec<Pending>),
    Checked((loader::Loaded, crate::engine::Outcome)),
}

/// What `--verbose` says was skipped: documents that are no Kubernetes
/// objects, then tools' configurations, each by file and line.
type Skipped = (bool, String, usize, String);

fn skipped_in(loaded: &loader::Loaded, policy: &crate::policy::Policy) -> Vec<Skipped> {
    let documents = loaded.documents.iter().map(|document| {
        let line = document.positions.locate("").map_or(1, |at| at.line);
        let name = &document.source.name;
        let said = format!(
            "skipped: {name}:{line}: document {} is not a Kubernetes object (no apiVersion and kind)",
            document.document + 1
        );
        (false, name.clone(), line, said)
    });
    let configurations = loaded
        .objects
        .iter()
        .filter(|object| policy.is_tool_configuration(object))
        .map(|object| {
            let line = object.locate("").map_or(1, |at| at.line);
            let name = &object.source.name;
            let said = format!(
                "skipped: {name}:{line}: {} {} is a tool's configuration, never applied to a cluster",
                object.id.api_version,
                object.kind()
            );
            (true, name.clone(), line, said)
        });
    documents.chain(configurations).collect()
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
