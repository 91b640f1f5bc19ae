//! RFC 6901 JSON pointers: building them from path segments.

use std::fmt::Write as _;

/// Escape one reference token (`~` becomes `~0`, `/` becomes `~1`).
pub fn escape(token: &str) -> String {
    let mut escaped = String::with_capacity(token.len());
    push_escaped(&mut escaped, token);
    escaped
}

fn push_escaped(out: &mut String, token: &str) {
    if !token.contains(['~', '/']) {
        out.push_str(token);
        return;
    }
    for ch in token.chars() {
        match ch {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
}

/// Writes what it is given escaped as a reference token.
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        push_escaped(self.0, text);
        Ok(())
    }
}

/// Append a token to a pointer. Called for every node of every input
/// (the loader keys positions by pointer): one allocation, no
/// intermediate strings.
pub fn join(pointer: &str, token: impl std::fmt::Display) -> String {
    let mut joined = String::with_capacity(pointer.len() + 16);
    joined.push_str(pointer);
    push(&mut joined, token);
    joined
}

/// Append a token to a pointer in place.
pub fn push(pointer: &mut String, token: impl std::fmt::Display) {
    pointer.push('/');
    // Writing into a String cannot fail.
    let _ = write!(Escaping(pointer), "{token}");
}

/// The node a JSON pointer names, as `serde_json::Value::pointer` finds
/// it, without its cost: serde_json unescapes every token into two new
/// Strings on every call, and the rules look pointers up on every object
/// (a tenth of a lint's time). Tokens are borrowed unless they hold `~`.
pub trait Lookup {
    fn at(&self, pointer: &str) -> Option<&serde_json::Value>;
}

impl Lookup for serde_json::Value {
    fn at(&self, pointer: &str) -> Option<&serde_json::Value> {
        use serde_json::Value;
        if pointer.is_empty() {
            return Some(self);
        }
        let mut target = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token: std::borrow::Cow<'_, str> = if token.contains('~') {
                token.replace("~1", "/").replace("~0", "~").into()
            } else {
                token.into()
            };
            target = match target {
                Value::Object(map) => map.get(token.as_ref())?,
                Value::Array(items) => items.get(array_index(&token)?)?,
                _ => return None,
            };
        }
        Some(target)
    }
}

/// An array index as RFC 6901 writes it (and serde_json reads it): digits
/// without a sign or a leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

/// The pointer of the parent node; `None` for the root.
pub fn parent(pointer: &str) -> Option<&str> {
    pointer.rfind('/').map(|slash| &pointer[..slash])
}

/// A JSON pointer as a dotted field path, as kubectl writes fields
/// (`spec.metrics[0].external`); `object` for the root.
pub fn display(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.bytes().all(|byte| byte.is_ascii_digit()) && !token.is_empty() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    if out.is_empty() {
        "object".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_serde_json() {
        let value = serde_json::json!({"a": {"b/c": [1, {"d~e": 2}], "": 3}, "0": 4});
        for pointer in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/",
            "/0",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/9",
            "/x",
            "a",
            "/a/b~1c/1/d~0e/z",
            "/a/b~1c/-1",
        ] {
            assert_eq!(value.at(pointer), value.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(
            join("/metadata/annotations", "a/b~c"),
            "/metadata/annotations/a~1b~0c"
        );
        assert_eq!(join("/spec/metrics", 3), "/spec/metrics/3");
        assert_eq!(join("", "~/~"), "/~0~1~0");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(parent("/spec/metrics/0"), Some("/spec/metrics"));
        assert_eq!(parent("/spec"), Some(""));
        assert_eq!(parent(""), None);
    }
}

fn operation(value: serde_json::Value) -> Option<json_patch::PatchOperation> {
    serde_json::from_value(value).ok()
}

/// RFC 6902 operations built from pointers the rules construct. A pointer
/// that does not parse (never produced by [`join`]) yields no
/// operation rather than a panic; `ops!` callers then get a shorter patch,
/// which tests catch.
pub mod op {
    use super::operation;
    use json_patch::PatchOperation;
    use serde_json::{json, Value};

    pub fn add(path: &str, value: Value) -> Option<PatchOperation> {
        operation(json!({"op": "add", "path": path, "value": value}))
    }

    pub fn replace(path: &str, value: Value) -> Option<PatchOperation> {
        operation(json!({"op": "replace", "path": path, "value": value}))
    }

    pub fn remove(path: &str) -> Option<PatchOperation> {
        operation(json!({"op": "remove", "path": path}))
    }

    pub fn move_(from: &str, path: &str) -> Option<PatchOperation> {
        operation(json!({"op": "move", "from": from, "path": path}))
    }
}
