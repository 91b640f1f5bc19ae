//! rustc-style diagnostics rendered by miette.

use std::fmt::Write as _;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};

use super::Visibility;
use crate::engine::Outcome;
use crate::finding::{Applicability, Finding, Severity};

/// How the human format is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

pub fn render(outcome: &Outcome, visibility: Visibility, style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_context_lines(1);
    let mut out = String::new();
    for finding in outcome
        .findings
        .iter()
        .filter(|finding| visibility.shows(finding))
    {
        let report = to_report(finding);
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            // Rendering into a String cannot fail for I/O reasons; fall back
            // to a plain line should miette refuse a span.
            let _ = writeln!(out, "{}", plain_line(finding));
        }
        out.push('\n');
    }
    out.push_str(&summary_line(outcome, visibility));
    out.push('\n');
    out
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
            format!("{kind}: {}", fix.description)
        }
        (None, Some(object)) => object.to_string(),
        (None, None) => String::new(),
    };
    let mut message = finding.message.clone();
    if let Some(reason) = &finding.suppressed {
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
        diagnostic = diagnostic.with_help(help.clone());
    }
    Report::new(diagnostic)
        .with_source_code(NamedSource::new(finding.file(), finding.source.clone()))
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
        finding.message
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
        plural(summary.files, "file"),
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
    // One line, so the summary stays the last line of the report.
    match (safe, unsafe_only) {
        (0, 0) => {}
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
