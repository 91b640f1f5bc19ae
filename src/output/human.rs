//! rustc-style diagnostics rendered by miette.

use super::printable;
use std::fmt::Write as _;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};

use super::Visibility;
use crate::engine::finding::{Applicability, Finding, Severity};
use crate::engine::{Outcome, Summary};

/// How the human format is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

/// The report in one text (tests).
pub fn render(outcome: &Outcome, visibility: Visibility, style: Style) -> String {
    super::to_text(|out| write(outcome, visibility, style, out))
}

/// The report, written to `out` one diagnostic at a time.
pub fn write(
    outcome: &Outcome,
    visibility: Visibility,
    style: Style,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    super::write_outcome(&mut Diagnostics::new(visibility, style), outcome, out)
}

/// The human report as a [`ReportWriter`]: a diagnostic a finding, then
/// the summary line, which counts what was not shown and what a fix
/// resolves.
pub struct Diagnostics {
    visibility: Visibility,
    style: Style,
    handler: GraphicalReportHandler,
    text: String,
    tallies: Tallies,
}

/// What the summary line counts beside the engine's summary.
#[derive(Debug, Default)]
struct Tallies {
    hidden: usize,
    safe_fixes: usize,
    unsafe_fixes: usize,
    live: bool,
}

impl Tallies {
    fn count(&mut self, finding: &Finding, visibility: Visibility) {
        if !visibility.shows(finding) {
            self.hidden += 1;
        }
        if finding.suppressed.is_none() {
            match finding.fix.as_ref().map(|fix| fix.applicability) {
                Some(Applicability::Safe) => self.safe_fixes += 1,
                Some(Applicability::Unsafe) => self.unsafe_fixes += 1,
                None => {}
            }
        }
        self.live |= finding.source.live;
    }
}

impl Diagnostics {
    pub fn new(visibility: Visibility, style: Style) -> Self {
        let theme = if style.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(style.width)
            .with_context_lines(1);
        Self {
            visibility,
            style,
            handler,
            text: String::new(),
            tallies: Tallies::default(),
        }
    }
}

impl super::ReportWriter for Diagnostics {
    fn start(&mut self, _out: &mut dyn std::io::Write) -> std::io::Result<()> {
        Ok(())
    }

    fn finding(&mut self, finding: &Finding, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.tallies.count(finding, self.visibility);
        if !self.visibility.shows(finding) {
            return Ok(());
        }
        let text = &mut self.text;
        text.clear();
        if finding.source.live {
            text.push_str(&live_report(finding, self.style));
        } else {
            let report = to_report(finding);
            if self.handler.render_report(text, report.as_ref()).is_err() {
                // Rendering into a String cannot fail for I/O reasons; fall
                // back to a plain line should miette refuse a span.
                text.clear();
                let _ = writeln!(text, "{}", plain_line(finding));
            }
        }
        text.push('\n');
        out.write_all(text.as_bytes())
    }

    fn finish(&mut self, summary: &Summary, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(summary_text(summary, &self.tallies).as_bytes())?;
        out.write_all(b"\n")
    }
}

fn to_report(finding: &Finding) -> Report {
    let severity = match finding.severity {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
        Severity::Info => miette::Severity::Advice,
    };
    let label = match (&finding.fix, &finding.object) {
        (Some(fix), _) => {
            let kind = match fix.applicability {
                Applicability::Safe => "fix",
                Applicability::Unsafe => "unsafe fix",
            };
            format!("{kind}: {}", printable(&fix.description))
        }
        (None, Some(object)) => object.to_string(),
        (None, None) => String::new(),
    };
    let mut message = printable(&finding.message).into_owned();
    if let Some(reason) = &finding.suppressed {
        let reason = printable(reason);
        message.push_str(
            if reason.is_empty() {
                " (suppressed)".to_string()
            } else {
                format!(" (suppressed: {reason})")
            }
            .as_str(),
        );
    }
    let mut diagnostic = MietteDiagnostic::new(message)
        // The severity in words, not only in colour: `warning[rule-id]`.
        .with_code(format!("{}[{}]", finding.severity, finding.rule))
        .with_severity(severity)
        .with_label(LabeledSpan::new(
            Some(label).filter(|label| !label.is_empty()),
            finding.location.offset,
            finding.location.len,
        ));
    if let Some(help) = &finding.help {
        diagnostic = diagnostic.with_help(printable(help).into_owned());
    }
    Report::new(diagnostic)
        .with_source_code(NamedSource::new(finding.file(), finding.source.clone()))
}

/// A finding on an object read from a cluster: there is no text to show,
/// so it is placed by the object's identity and a kubectl field path.
fn live_report(finding: &Finding, style: Style) -> String {
    let (start, end) = match (style.color, finding.severity) {
        (false, _) => ("", ""),
        (true, Severity::Error) => ("\x1b[1;31m", "\x1b[0m"),
        (true, Severity::Warning) => ("\x1b[1;33m", "\x1b[0m"),
        (true, Severity::Info) => ("\x1b[1;36m", "\x1b[0m"),
    };
    let mut out = format!(
        "{start}{}[{}]{end}: {}",
        finding.severity,
        finding.rule,
        printable(&finding.message)
    );
    if let Some(reason) = &finding.suppressed {
        let reason = printable(reason);
        let _ = write!(
            out,
            " (suppressed{})",
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        );
    }
    let _ = write!(
        out,
        "\n  --> {} at {}",
        finding.file(),
        crate::input::pointer::display(&finding.pointer)
    );
    if let Some(fix) = &finding.fix {
        let kind = match fix.applicability {
            Applicability::Safe => "fix",
            Applicability::Unsafe => "unsafe fix",
        };
        let _ = write!(out, "\n  {kind}: {}", printable(&fix.description));
    }
    if let Some(help) = &finding.help {
        let _ = write!(out, "\n  help: {}", printable(help));
    }
    out.push('\n');
    out
}

/// `file:line:column: severity[rule]: message`, the one-line form.
pub fn plain_line(finding: &Finding) -> String {
    format!(
        "{}:{}:{}: {}[{}]: {}",
        finding.file(),
        finding.location.line,
        finding.location.column,
        finding.severity,
        finding.rule,
        printable(&finding.message)
    )
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// The summary line of an outcome (the last line of the report).
pub fn summary_line(outcome: &Outcome, visibility: Visibility) -> String {
    let mut tallies = Tallies::default();
    for finding in &outcome.findings {
        tallies.count(finding, visibility);
    }
    summary_text(&outcome.summary, &tallies)
}

fn summary_text(summary: &Summary, tallies: &Tallies) -> String {
    let mut line = format!(
        "{}, {}, {} in {} from {}",
        plural(summary.errors, "error"),
        plural(summary.warnings, "warning"),
        plural(summary.infos, "info"),
        plural(summary.objects, "object"),
        if summary.files == 0 && summary.objects > 0 {
            "the cluster".to_string()
        } else {
            plural(summary.files, "file")
        },
    );
    if summary.suppressed > 0 {
        let _ = write!(line, "; {} suppressed", summary.suppressed);
    }
    if summary.skipped > 0 {
        let _ = write!(
            line,
            "; {} skipped (not Kubernetes objects)",
            plural(summary.skipped, "document")
        );
    }
    let hidden = tallies.hidden;
    if hidden > 0 {
        let _ = write!(
            line,
            "; {hidden} infos or suppressed not shown (-v shows them)"
        );
    }
    let (safe, unsafe_only, live) = (tallies.safe_fixes, tallies.unsafe_fixes, tallies.live);
    // One line, so the summary stays the last line of the report.
    match (safe, unsafe_only) {
        (0, 0) => {}
        // Fixes of a cluster's objects are patches, not file edits.
        (safe, unsafe_only) if live => {
            let _ = write!(
                line,
                "; {} with a fix (its JSON patch is in --format json)",
                safe + unsafe_only
            );
        }
        (safe, 0) => {
            let _ = write!(line, "; {safe} fixable with --fix (--diff to preview)");
        }
        (safe, unsafe_only) => {
            let _ = write!(
                line,
                "; {safe} fixable with --fix, {unsafe_only} more with --unsafe-fixes after review (--diff to preview)"
            );
        }
    }
    line
}
