//! Typed arguments: an operation's input is one serde struct with
//! `deny_unknown_fields`, filled from MCP tool arguments (JSON values) or
//! from a REST request (path segments and body as JSON, query values as
//! text). [`decode`] turns serde's errors into ones that name the field;
//! the deserializers below accept a value in either form, so neither
//! adapter re-encodes what the other sent.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value as Json};

use crate::error::{DomainError, Result};

/// Deserializes `T` from an object, naming the field at fault: an unknown
/// field is a bad request (400), a missing or wrong value is invalid (422).
pub fn decode<T: DeserializeOwned>(object: Map<String, Json>) -> Result<T> {
    serde_path_to_error::deserialize(Json::Object(object)).map_err(|error| {
        // The top-level field: `tags[0]` is about `tags`.
        let path = match error.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
            _ => ".".to_owned(),
        };
        let message = error.inner().to_string();
        // serde words these two itself (`Error::unknown_field`,
        // `Error::missing_field`): the name is between the first backticks.
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').nth(1))
                .map(str::to_owned)
        };
        if message.starts_with("unknown field") {
            return unknown_field(&named("unknown field").unwrap_or(path));
        }
        if let Some(field) = named("missing field") {
            return DomainError::invalid(&field, "is required");
        }
        // A domain parser's message already starts with the field's name.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .unwrap_or(&message)
            .to_owned();
        DomainError::invalid(&path, message)
    })
}

fn unknown_field(field: &str) -> DomainError {
    let message = if crate::model::TASK_FIELDS.contains(&field) {
        format!("`{field}` is set by the server and cannot be written")
    } else {
        format!("unknown field `{field}`; the operation's schema lists the fields it takes")
    };
    DomainError::bad_request(Some(field), message)
}

/// An optional field that may not be `null` (`#[serde(default, with)]`):
/// absent is `None`, `null` is an error, as the schema says.
pub fn present<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A nullable field of a change: absent is `None` (leave it), `null` is
/// `Some(None)` (clear it). Without `default` the field is required.
pub fn nullable<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON number that is a whole number (`5` or `5.0`: JSON Schema's
/// `integer` admits both).
pub fn whole_number(value: &Json) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// A whole number, nullable (`remind_before_minutes`).
pub fn nullable_whole<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<i64>>, D::Error> {
    match Json::deserialize(d)? {
        Json::Null => Ok(Some(None)),
        value => whole_number(&value)
            .map(|n| Some(Some(n)))
            .ok_or_else(|| D::Error::custom("must be a whole number")),
    }
}

/// The field names a derived `Deserialize` struct takes, as serde lists
/// them: tests hold each operation's input to its documented schema.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::value::Error;
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A REST query string's pairs as the object a typed input decodes from:
/// each value stays text, a repeated name becomes an array.
pub fn query_object(pairs: &[(String, String)]) -> Map<String, Json> {
    let mut object = Map::new();
    for (name, value) in pairs {
        let value = Json::String(value.clone());
        match object.get_mut(name) {
            None => {
                object.insert(name.clone(), value);
            }
            Some(Json::Array(items)) => items.push(value),
            Some(first) => *first = Json::Array(vec![first.take(), value]),
        }
    }
    object
}

/// Query parameters: a REST query string carries text (`limit=5`,
/// `status=a,b`, `overdue=true`), an MCP tool call JSON (`5`, `["a","b"]`,
/// `true`). Each accepts both; an empty text or `null` is the parameter
/// left out (`?cursor=`). A repeated REST parameter arrives as an array.
pub mod query {
    use super::*;

    fn once<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Json, D::Error> {
        match Json::deserialize(d)? {
            Json::Array(_) => Err(D::Error::custom("give this parameter once")),
            Json::String(s) if s.is_empty() => Ok(Json::Null),
            value => Ok(value),
        }
    }

    /// Text (`q`, `cursor`, `sort`, …).
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
        match once(d)? {
            Json::Null => Ok(None),
            Json::String(s) => Ok(Some(s)),
            _ => Err(D::Error::custom("must be a string")),
        }
    }

    /// A whole number (`limit`, `wait`): `5`, `5.0` or `"5"`.
    pub fn whole<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
        match once(d)? {
            Json::Null => Ok(None),
            Json::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("`{s}` is not a whole number"))),
            value => whole_number(&value)
                .map(Some)
                .ok_or_else(|| D::Error::custom("must be a whole number")),
        }
    }

    /// A flag (`overdue`, `unread`): `true`/`false`, or `1`/`0` as text.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
        match once(d)? {
            Json::Null => Ok(None),
            Json::Bool(b) => Ok(Some(b)),
            Json::String(s) if s == "true" || s == "1" => Ok(Some(true)),
            Json::String(s) if s == "false" || s == "0" => Ok(Some(false)),
            _ => Err(D::Error::custom("must be true or false")),
        }
    }

    /// A list (`status`, `tag`, …): an array, or values separated by
    /// commas, or both; blank items are dropped.
    pub fn list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
        let items = match Json::deserialize(d)? {
            Json::Null => Vec::new(),
            Json::Array(items) => items,
            one => vec![one],
        };
        let mut out = Vec::new();
        for item in items {
            let Json::String(text) = item else {
                return Err(D::Error::custom("must be a string or an array of strings"));
            };
            out.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        id: String,
        #[serde(default, deserialize_with = "query::whole")]
        limit: Option<i64>,
        #[serde(default, deserialize_with = "query::list")]
        tag: Vec<String>,
        #[serde(default, deserialize_with = "present")]
        title: Option<String>,
        #[serde(default, deserialize_with = "nullable")]
        due: Option<Option<String>>,
    }

    fn sample(value: Json) -> Result<Sample> {
        decode(value.as_object().unwrap().clone())
    }

    #[test]
    fn query_text_and_json_values_decode_alike() {
        let from_rest = sample(json!({"id": "a", "limit": "5", "tag": ["x,y", "z"]})).unwrap();
        let from_mcp = sample(json!({"id": "a", "limit": 5.0, "tag": ["x", "y", "z"]})).unwrap();
        assert_eq!(from_rest, from_mcp);
        assert_eq!(sample(json!({"id": "a", "limit": ""})).unwrap().limit, None);
    }

    #[test]
    fn errors_name_the_field_and_tell_unknown_from_invalid() {
        let cases = [
            (json!({"id": "a", "colour": 1}), "colour", true),
            (json!({"id": "a", "created_at": "x"}), "created_at", true),
            (json!({}), "id", false),
            (json!({"id": 5}), "id", false),
            (json!({"id": "a", "limit": "five"}), "limit", false),
            (json!({"id": "a", "limit": ["1", "2"]}), "limit", false),
            (json!({"id": "a", "title": null}), "title", false),
            (json!({"id": "a", "tag": [1]}), "tag", false),
            (json!({"id": "a", "due": [1]}), "due", false),
        ];
        for (input, field, unknown) in cases {
            let error = sample(input.clone()).expect_err(&input.to_string());
            assert_eq!(error.field(), Some(field), "{input}");
            assert_eq!(
                matches!(error, DomainError::BadRequest { .. }),
                unknown,
                "{input}: {error}"
            );
        }
    }

    #[test]
    fn field_names_are_the_structs() {
        assert_eq!(
            field_names::<Sample>(),
            &["id", "limit", "tag", "title", "due"]
        );
    }

    #[test]
    fn null_clears_and_absence_leaves() {
        assert_eq!(
            sample(json!({"id": "a", "due": null})).unwrap().due,
            Some(None)
        );
        assert_eq!(sample(json!({"id": "a"})).unwrap().due, None);
    }
}
