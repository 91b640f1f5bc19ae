//! Reading only `request.uid` of an AdmissionReview, so that a review
//! which cannot be finished in time can still be answered.
//!
//! The apiserver writes `uid` as the first field of `request`, so this
//! reads a few dozen bytes of a body of megabytes. Other fields before it
//! are skipped without being built; reading stops at the uid.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize as _;

/// The `request.uid` of an AdmissionReview body, when it has one.
pub fn peek(body: &[u8]) -> Option<String> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // Finding the uid ends the read with an error on purpose.
    let _ = Find {
        path: &["request", "uid"],
        found: &mut found,
    }
    .deserialize(&mut deserializer);
    found
}

/// Descends the keys of `path` and stores the string at its end.
struct Find<'a> {
    path: &'a [&'a str],
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            let uid = String::deserialize(deserializer)?;
            *self.found = Some(uid);
            return Err(de::Error::custom("found"));
        }
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((wanted, rest)) = self.path.split_first() else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == *wanted {
                return map.next_value_seed(Find {
                    path: rest,
                    found: self.found,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_is_found_wherever_it_is() {
        assert_eq!(
            peek(br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"a-1","object":{}}}"#),
            Some("a-1".to_string())
        );
        assert_eq!(
            peek(br#"{"request":{"kind":{"uid":"not this"},"uid":"b-2"}}"#),
            Some("b-2".to_string())
        );
        assert_eq!(peek(br#"{"request":{"uid":5}}"#), None);
        assert_eq!(peek(b"not json"), None);
        assert_eq!(peek(br#"{"request":{"name":"x"}}"#), None);
    }

    #[test]
    fn reading_stops_at_the_uid() {
        // Whatever follows the uid is never read, even when it is broken.
        assert_eq!(
            peek(br#"{"request":{"uid":"c-3","object":[[[[ broken"#),
            Some("c-3".to_string())
        );
    }
}
