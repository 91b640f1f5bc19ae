//! rustc-style diagnostics rendered by miette.

use super::printable;
use std::fmt::Write as _;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};

use super::Visibility;
use crate::engine::finding::{Applicability, Finding, Severity};
use crate::engine::Outcome;

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
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_context_lines(1);
    let mut text = String::new();
    for finding in outcome
        .findings
        .iter()
        .filter(|finding| visibility.shows(finding))
    {
        text.clear();
        if finding.source.live {
            text.push_str(&live_report(finding, style));
        } else {
            let report = to_report(finding);
            if handler.render_report(&mut text, report.as_ref()).is_err() {
                // Rendering into a String cannot fail for I/O reasons; fall
                // back to a plain line should miette refuse a span.
                text.clear();
                let _ = writeln!(text, "{}", plain_line(finding));
            }
        }
        text.push('\n');
        out.write_all(text.as_bytes())?;
    }
    out.write_all(summary_line(outcome, visibility).as_bytes())?;
    out.write_all(b"\n")
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

pub fn summary_line(outcome: &Outcome, visibility: Visibility) -> String {
    let summary = &outcome.summary;
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
    let hidden = outcome
        .findings
        .iter()
        .filter(|finding| !visibility.shows(finding))
        .count();
    if hidden > 0 {
        let _ = write!(
            line,
            "; {hidden} infos or suppressed not shown (-v shows them)"
        );
    }
    let open_fixes = |applicability: Applicability| {
        outcome
            .findings
            .iter()
            .filter(|finding| finding.suppressed.is_none())
            .filter_map(|finding| finding.fix.as_ref())
            .filter(|fix| fix.applicability == applicability)
            .count()
    };
    let (safe, unsafe_only) = (
        open_fixes(Applicability::Safe),
        open_fixes(Applicability::Unsafe),
    );
    let live = outcome.findings.iter().any(|finding| finding.source.live);
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
