//! What the webhook's lookups and `infergate audit` share about talking to
//! an apiserver: reading its errors.

/// Whether an error means "no such object": a 404 Status, or the
/// plain-text 404 the apiserver sends for a resource type it does not
/// serve (a CRD that is not installed).
pub fn is_not_found(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 404,
        other => {
            let text = other.to_string();
            text.contains("404") && text.to_lowercase().contains("not found")
        }
    }
}

/// An error in a few words: the Status message and code when the
/// apiserver sent one; otherwise the error with its causes, so that a
/// TLS failure says what failed ("invalid peer certificate: UnknownIssuer")
/// rather than only "client error (Connect)".
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => with_causes(other),
    }
}

/// An error followed by each of its causes that its text does not already
/// say, on one line (also the Prometheus client's connection errors).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
