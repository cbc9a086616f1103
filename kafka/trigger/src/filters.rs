//! Record filters of `[[trigger.kafka]]`, evaluated by the host before any
//! Wasm runs: a record that does not pass is committed without an instance
//! and counted as `outcome="filtered"`.
//!
//! ```toml
//! filters = [
//!   { on = "header:ce_type", equals = ["com.example.task_completed"] },
//!   { on = "/task_data/status", equals = ["completed"] },   # a JSON pointer into the value
//!   { on = "key", prefix = "tenant-a:" },
//! ]
//! ```
//!
//! A record passes when every filter matches (and); a filter matches when
//! the selected text is one of `equals`, or starts with `prefix`. A missing
//! header, key or pointer never matches. JSON strings compare by their
//! text, other JSON values by their JSON form (`true`, `3`).

use std::borrow::Cow;
use std::cell::OnceCell;

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `key`, `header:<name>`, or a JSON pointer into the value (`/event_type`).
    pub on: String,
    #[serde(default)]
    pub equals: Vec<String>,
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What a record offers a filter: borrowed, so the poll loop can filter a
/// record before copying it out of librdkafka.
pub struct Candidate<'a> {
    pub key: Option<&'a [u8]>,
    /// The value of the first header with this name (any case), if any.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl Filter {
    /// Checked when the manifest is loaded, so a typo fails at start.
    pub fn validate(&self) -> Result<()> {
        let on_ok = self.on == "key"
            || self
                .on
                .strip_prefix("header:")
                .is_some_and(|name| !name.is_empty())
            || self.on.starts_with('/');
        if !on_ok {
            bail!(
                "filter on `{}`: `on` must be `key`, `header:<name>` or a JSON pointer such as `/event_type`",
                self.on
            );
        }
        match (self.equals.is_empty(), &self.prefix) {
            (false, None) | (true, Some(_)) => Ok(()),
            _ => bail!(
                "filter on `{}`: give exactly one of `equals` (a list) or `prefix`",
                self.on
            ),
        }
    }

    /// Whether the record's selected text matches; the value is parsed
    /// at most once per record, whatever the filters.
    fn accepts(&self, record: &Candidate<'_>, value: &OnceCell<Option<Json>>) -> bool {
        let text: Cow<'_, str> = if self.on == "key" {
            match record.key {
                Some(key) => String::from_utf8_lossy(key),
                None => return false,
            }
        } else if let Some(name) = self.on.strip_prefix("header:") {
            match (record.header)(name) {
                Some(header) => String::from_utf8_lossy(header),
                None => return false,
            }
        } else {
            let parsed =
                value.get_or_init(|| record.value.and_then(|v| serde_json::from_slice(v).ok()));
            match parsed.as_ref().and_then(|json| json.pointer(&self.on)) {
                Some(Json::String(s)) => Cow::Borrowed(s.as_str()),
                None | Some(Json::Null) => return false,
                Some(other) => Cow::Owned(other.to_string()),
            }
        };
        self.matches(&text)
    }

    fn matches(&self, text: &str) -> bool {
        match &self.prefix {
            Some(prefix) => text.starts_with(prefix.as_str()),
            None => self.equals.iter().any(|e| e == text),
        }
    }
}

/// The value of the first header named `name`, in any case (header names
/// are not case-sensitive in CloudEvents' Kafka binding).
pub fn find_header<'a>(
    mut headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    name: &str,
) -> Option<&'a [u8]> {
    headers
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Whether the record passes every filter.
pub fn passes(filters: &[Filter], record: &Candidate<'_>) -> bool {
    let value = OnceCell::new();
    filters.iter().all(|f| f.accepts(record, &value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(on: &str, equals: &[&str], prefix: Option<&str>) -> Filter {
        Filter {
            on: on.into(),
            equals: equals.iter().map(|s| s.to_string()).collect(),
            prefix: prefix.map(str::to_owned),
        }
    }

    #[test]
    fn all_filters_must_match_and_missing_never_does() {
        let headers = [("ce_type", &b"task_completed"[..])];
        let header = |name: &str| find_header(headers.iter().copied(), name);
        let record = Candidate {
            key: Some(b"alice"),
            header: &header,
            value: Some(br#"{"task_data": {"status": "completed", "n": 3}}"#),
        };
        let on_type = filter("header:CE_TYPE", &["task_completed", "task_deleted"], None);
        let on_status = filter("/task_data/status", &["completed"], None);
        let on_number = filter("/task_data/n", &["3"], None);
        let on_key = filter("key", &[], Some("ali"));
        assert!(passes(
            &[on_type.clone(), on_status.clone(), on_number, on_key],
            &record
        ));
        assert!(!passes(
            &[
                on_type.clone(),
                filter("/task_data/status", &["pending"], None)
            ],
            &record
        ));
        assert!(!passes(&[filter("header:missing", &["x"], None)], &record));
        assert!(!passes(&[filter("/nope", &["x"], None)], &record));
        let not_json = Candidate {
            key: None,
            header: &|_| None,
            value: Some(b"not json"),
        };
        assert!(!passes(&[on_status], &not_json));
        assert!(!passes(&[filter("key", &["alice"], None)], &not_json));
        assert!(passes(&[], &not_json), "no filters: everything passes");
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for bad in [
            filter("body", &["x"], None),
            filter("header:", &["x"], None),
            filter("key", &[], None),
            filter("key", &["a"], Some("b")),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(filter("/a/b", &["x"], None).validate().is_ok());
    }
}
