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
    out.push_str(&summary_line(outcome));
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
        .with_code(finding.rule)
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

pub fn summary_line(outcome: &Outcome) -> String {
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
    let fixable = outcome
        .findings
        .iter()
        .filter(|finding| finding.suppressed.is_none() && finding.fix.is_some())
        .count();
    if fixable > 0 {
        let _ = write!(line, "; {fixable} with a fix (see --format json)");
    }
    line
}
