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

/// What a record offers a filter.
pub struct Candidate<'a> {
    pub key: Option<&'a [u8]>,
    pub headers: &'a [(String, Vec<u8>)],
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

    fn selected(&self, record: &Candidate<'_>, value: &mut Option<Option<Json>>) -> Option<String> {
        if self.on == "key" {
            return record.key.map(|k| String::from_utf8_lossy(k).into_owned());
        }
        if let Some(name) = self.on.strip_prefix("header:") {
            return record
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        }
        // The value is parsed once per record, whatever the filters.
        let parsed =
            value.get_or_insert_with(|| record.value.and_then(|v| serde_json::from_slice(v).ok()));
        match parsed.as_ref()?.pointer(&self.on)? {
            Json::String(s) => Some(s.clone()),
            Json::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        match &self.prefix {
            Some(prefix) => text.starts_with(prefix.as_str()),
            None => self.equals.iter().any(|e| e == text),
        }
    }
}

/// Whether the record passes every filter.
pub fn passes(filters: &[Filter], record: &Candidate<'_>) -> bool {
    let mut value = None;
    filters.iter().all(|f| {
        f.selected(record, &mut value)
            .is_some_and(|text| f.matches(&text))
    })
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
        let headers = vec![("ce_type".to_owned(), b"task_completed".to_vec())];
        let record = Candidate {
            key: Some(b"alice"),
            headers: &headers,
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
            headers: &[],
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
