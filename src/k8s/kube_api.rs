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
/// apiserver sent one.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}
