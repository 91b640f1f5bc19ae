//! Prometheus metrics of the webhook, in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::engine::finding::Severity;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// (endpoint, operation, kind, allowed, mutated).
type RequestKey = (&'static str, String, String, bool, bool);

/// Counters shared by the request handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    findings: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    latency: Mutex<Histogram>,
    bad_requests: Mutex<u64>,
    /// Requests answered without a review, by reason.
    unreviewed: Mutex<BTreeMap<&'static str, u64>>,
    /// Connections closed before any request was read, by reason.
    refused_connections: Mutex<BTreeMap<&'static str, u64>>,
}

/// Why a connection was closed before a request was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedConnection {
    /// MAX_CONNECTIONS were open.
    Capacity,
    /// The client's address had MAX_CONNECTIONS_PER_CLIENT open.
    PerClient,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
}

impl RefusedConnection {
    fn label(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::PerClient => "per_client",
            Self::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// What a review did with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Denied,
    Warned,
    Mutated,
    /// Reported nowhere the user sees (an info).
    Noted,
    /// Suppressed by the object's own `infergate.dev/ignore`: a denial
    /// became a warning, a warning was not shown.
    Suppressed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Warned => "warned",
            Self::Mutated => "mutated",
            Self::Noted => "noted",
            Self::Suppressed => "suppressed",
        }
    }
}

/// Why a request was answered without a finished review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreviewed {
    /// The review did not finish within --request-timeout-ms.
    Timeout,
    /// --max-concurrent-reviews stayed busy until the review's deadline, or
    /// the body budget was spent: HTTP 429.
    Busy,
    /// The review failed inside infergate (a bug); allowed with a warning.
    Failed,
}

impl Unreviewed {
    fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Busy => "busy",
            Self::Failed => "failed",
        }
    }
}

/// A counter with one `reason` label, in the text format.
fn render_by_reason(
    out: &mut String,
    name: &str,
    help: &str,
    counts: &Mutex<BTreeMap<&'static str, u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    if let Ok(counts) = counts.lock() {
        for (reason, count) in counts.iter() {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
        }
    }
}

impl Metrics {
    pub fn record(
        &self,
        endpoint: &'static str,
        operation: &str,
        kind: &str,
        allowed: bool,
        mutated: bool,
        seconds: f64,
    ) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((
                    endpoint,
                    operation.to_string(),
                    kind.to_string(),
                    allowed,
                    mutated,
                ))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            if latency.counts.is_empty() {
                latency.counts = vec![0; BUCKETS.len()];
            }
            for (index, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    latency.counts[index] += 1;
                }
            }
            latency.sum += seconds;
            latency.count += 1;
        }
    }

    /// A finding of a review, with what became of it: `denied`, `warned`
    /// or `mutated` (an error fixed by /mutate is admitted, not denied).
    pub fn record_finding(&self, rule: &str, severity: Severity, outcome: Outcome) {
        if let Ok(mut findings) = self.findings.lock() {
            *findings
                .entry((rule.to_string(), severity.as_str(), outcome.label()))
                .or_default() += 1;
        }
    }

    pub fn record_bad_request(&self) {
        if let Ok(mut count) = self.bad_requests.lock() {
            *count += 1;
        }
    }

    pub fn record_refused_connection(&self, reason: RefusedConnection) {
        if let Ok(mut counts) = self.refused_connections.lock() {
            *counts.entry(reason.label()).or_default() += 1;
        }
    }

    pub fn record_unreviewed(&self, reason: Unreviewed) {
        if let Ok(mut counts) = self.unreviewed.lock() {
            *counts.entry(reason.label()).or_default() += 1;
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP infergate_admission_requests_total Admission reviews answered.\n");
        out.push_str("# TYPE infergate_admission_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((endpoint, operation, kind, allowed, mutated), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "infergate_admission_requests_total{{endpoint=\"{endpoint}\",operation=\"{}\",kind=\"{}\",allowed=\"{allowed}\",mutated=\"{mutated}\"}} {count}",
                    escape(operation),
                    escape(kind)
                );
            }
        }
        out.push_str(
            "# HELP infergate_admission_bad_requests_total Requests answered with HTTP 400.\n",
        );
        out.push_str("# TYPE infergate_admission_bad_requests_total counter\n");
        let bad = self.bad_requests.lock().map(|count| *count).unwrap_or(0);
        let _ = writeln!(out, "infergate_admission_bad_requests_total {bad}");
        render_by_reason(
            &mut out,
            "infergate_admission_unreviewed_total",
            "Requests answered without a finished review, by reason (timeout, busy, failed).",
            &self.unreviewed,
        );
        render_by_reason(
            &mut out,
            "infergate_connections_refused_total",
            "Connections closed before a request was read, by reason (capacity, per_client, handshake_timeout).",
            &self.refused_connections,
        );
        out.push_str("# HELP infergate_admission_duration_seconds Time to review one request.\n");
        out.push_str("# TYPE infergate_admission_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (index, bound) in BUCKETS.iter().enumerate() {
                let count = latency.counts.get(index).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "infergate_admission_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "infergate_admission_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "infergate_admission_duration_seconds_sum {}",
                latency.sum
            );
            let _ = writeln!(
                out,
                "infergate_admission_duration_seconds_count {}",
                latency.count
            );
        }
        out.push_str("# HELP infergate_suppressed_total Findings of admission reviews that the object's own infergate.dev/ignore annotation suppressed, by rule (a denial so suppressed is a warning).\n");
        out.push_str("# TYPE infergate_suppressed_total counter\n");
        if let Ok(findings) = self.findings.lock() {
            let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
            for ((rule, _, outcome), count) in findings.iter() {
                if *outcome == Outcome::Suppressed.label() {
                    *by_rule.entry(rule.as_str()).or_default() += count;
                }
            }
            for (rule, count) in by_rule {
                let _ = writeln!(
                    out,
                    "infergate_suppressed_total{{rule=\"{}\"}} {count}",
                    escape(rule)
                );
            }
        }
        out.push_str("# HELP infergate_findings_total Findings of admission reviews, by rule, severity and outcome (denied, warned, mutated, noted, suppressed).\n");
        out.push_str("# TYPE infergate_findings_total counter\n");
        if let Ok(findings) = self.findings.lock() {
            for ((rule, severity, outcome), count) in findings.iter() {
                let _ = writeln!(
                    out,
                    "infergate_findings_total{{rule=\"{}\",severity=\"{severity}\",outcome=\"{outcome}\"}} {count}",
                    escape(rule)
                );
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_render() {
        let metrics = Metrics::default();
        metrics.record("mutate", "CREATE", "Deployment", true, true, 0.003);
        metrics.record("mutate", "CREATE", "Deployment", true, true, 0.2);
        metrics.record_finding("hpa-target-sanity", Severity::Error, Outcome::Mutated);
        let text = metrics.render();
        assert!(text.contains(
            "infergate_admission_requests_total{endpoint=\"mutate\",operation=\"CREATE\",kind=\"Deployment\",allowed=\"true\",mutated=\"true\"} 2"
        ));
        assert!(text.contains("infergate_admission_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("infergate_admission_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text
            .contains("infergate_findings_total{rule=\"hpa-target-sanity\",severity=\"error\",outcome=\"mutated\"} 1"));
    }
}
