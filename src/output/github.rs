//! GitHub Actions workflow commands: one annotation per finding.

use super::{ReportWriter, Visibility};
use crate::engine::finding::{Finding, Severity};
use crate::engine::{Outcome, Summary};

/// Escape the message part of a workflow command. `##[` is broken up
/// wherever it stands: the runner's legacy parser reads `##[error]…` as a
/// command anywhere in a line, and a value from the input may hold it.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace("##[", "# #[")
}

/// Escape a property value of a workflow command.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The annotations in one text (tests).
pub fn render(outcome: &Outcome, visibility: Visibility) -> String {
    super::to_text(|out| write(outcome, visibility, out))
}

/// The annotations, written to `out` one at a time.
pub fn write(
    outcome: &Outcome,
    visibility: Visibility,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    super::write_outcome(&mut Report { visibility }, outcome, out)
}

/// The annotations as a [`ReportWriter`]: one line a finding, no summary.
pub struct Report {
    pub visibility: Visibility,
}

impl ReportWriter for Report {
    fn start(&mut self, _out: &mut dyn std::io::Write) -> std::io::Result<()> {
        Ok(())
    }

    fn finding(&mut self, finding: &Finding, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if !self.visibility.shows(finding) {
            return Ok(());
        }
        // A suppressed finding (shown with -v) never fails a check: a notice.
        let level = match (finding.severity, &finding.suppressed) {
            (_, Some(_)) => "notice",
            (Severity::Error, None) => "error",
            (Severity::Warning, None) => "warning",
            (Severity::Info, None) => "notice",
        };
        let mut message = super::printable(&finding.message).into_owned();
        if let Some(reason) = &finding.suppressed {
            message = if reason.is_empty() {
                format!("suppressed: {message}")
            } else {
                format!("suppressed ({reason}): {message}")
            };
        }
        if let Some(help) = &finding.help {
            message.push_str("\nhelp: ");
            message.push_str(&super::printable(help));
        }
        if finding.source.live {
            // No file to annotate: the object and field lead the message.
            writeln!(
                out,
                "::{level} title={}::{}",
                escape_property(&format!("infergate {}", finding.rule)),
                escape_data(&format!(
                    "{} at {}: {message}",
                    finding.file(),
                    crate::input::pointer::display(&finding.pointer)
                )),
            )?;
            return Ok(());
        }
        writeln!(
            out,
            "::{level} file={},line={},col={},title={}::{}",
            escape_property(finding.file()),
            finding.location.line,
            finding.location.column,
            escape_property(&format!("infergate {}", finding.rule)),
            escape_data(&message),
        )
    }

    fn finish(&mut self, _summary: &Summary, _out: &mut dyn std::io::Write) -> std::io::Result<()> {
        Ok(())
    }
}
