//! RFC 6901 JSON pointers: building them from path segments and walking them.

use serde_json::Value;

/// Escape one reference token (`~` becomes `~0`, `/` becomes `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Append a token to a pointer.
pub fn join(pointer: &str, token: impl std::fmt::Display) -> String {
    format!("{pointer}/{}", escape(&token.to_string()))
}

/// The pointer of the parent node; `None` for the root.
pub fn parent(pointer: &str) -> Option<&str> {
    pointer.rfind('/').map(|slash| &pointer[..slash])
}

/// Build a pointer from tokens.
pub fn from_tokens<I, T>(tokens: I) -> String
where
    I: IntoIterator<Item = T>,
    T: std::fmt::Display,
{
    tokens
        .into_iter()
        .fold(String::new(), |pointer, token| join(&pointer, token))
}

/// A string value at a pointer, if there is one.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(
            from_tokens(["metadata", "annotations", "a/b~c"]),
            "/metadata/annotations/a~1b~0c"
        );
        assert_eq!(parent("/spec/metrics/0"), Some("/spec/metrics"));
        assert_eq!(parent("/spec"), Some(""));
        assert_eq!(parent(""), None);
    }
}
