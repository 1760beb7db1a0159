//! Strict JSON parsing for the auth endpoints: the body must be one JSON object, with no
//! duplicate key at any depth (two parsers could otherwise disagree on which one counts)
//! and no deeper nesting than serde_json's recursion limit.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::AuthError;

/// A JSON value whose objects were checked for duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.insert(key, v).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses a request body into a JSON object, or `Missing JSON in request`.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, AuthError> {
    match serde_json::from_slice::<StrictValue>(body) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        _ => Err(AuthError::MissingJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_only_and_no_duplicates() {
        assert!(parse_object(br#"{"a": 1, "b": {"c": [1, 2]}}"#).is_ok());
        assert_eq!(parse_object(br#"[1]"#), Err(AuthError::MissingJson));
        assert_eq!(
            parse_object(br#"{"a": 1, "a": 2}"#),
            Err(AuthError::MissingJson)
        );
        assert_eq!(
            parse_object(br#"{"a": {"b": 1, "b": 1}}"#),
            Err(AuthError::MissingJson)
        );
        assert_eq!(
            parse_object(b"{\"a\": \"\xff\"}"),
            Err(AuthError::MissingJson)
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_object(format!("{{\"a\": {deep}}}").as_bytes()),
            Err(AuthError::MissingJson)
        );
    }
}
