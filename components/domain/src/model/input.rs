//! Turning JSON from a client (REST body or MCP tool arguments) into a
//! validated change to a task, with errors that name the field at fault.

use serde_json::{Map, Value as Json};

use crate::error::{DomainError, Result};
use crate::model::{NotificationType, Priority, Status};
use crate::recurrence::rules;
use crate::time::{self, Timestamp};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 40;
/// A reminder at most a year before the due date.
pub const MAX_REMIND_BEFORE_MINUTES: i64 = 525_600;

/// Fields a client may write, in the order the docs list them.
pub const WRITABLE_FIELDS: &[&str] = &[
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "tags",
    "recurrence_pattern",
    "remind_at",
    "remind_before_minutes",
    "notification_type",
    "time_zone",
];

pub const MAX_USER_ID_CHARS: usize = 128;

/// The identities the services act as (`system:reminders`,
/// `system:recurring`): no user may have one, so no token or header can
/// borrow what the system does.
pub const RESERVED_USER_PREFIX: &str = "system:";

/// Whether `user` is in the namespace reserved for the services.
pub fn is_reserved_user_id(user: &str) -> bool {
    user.get(..RESERVED_USER_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_USER_PREFIX))
}

/// User ids: 1 to 128 characters, no control characters, not reserved.
pub fn validate_user_id(field: &str, user: &str) -> Result<()> {
    if user.is_empty()
        || user.chars().count() > MAX_USER_ID_CHARS
        || user.chars().any(char::is_control)
    {
        return Err(DomainError::invalid(
            field,
            format!("a user id is 1 to {MAX_USER_ID_CHARS} characters without control characters"),
        ));
    }
    if is_reserved_user_id(user) {
        return Err(DomainError::invalid(
            field,
            format!(
                "user ids starting with `{RESERVED_USER_PREFIX}` are reserved for the services"
            ),
        ));
    }
    Ok(())
}

/// A change to a task. `None` leaves a field alone; for nullable fields
/// `Some(None)` clears it (JSON `null`), as in a JSON merge patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub due_date: Option<Option<Timestamp>>,
    pub tags: Option<Vec<String>>,
    pub recurrence_pattern: Option<Option<String>>,
    /// An IANA time zone name, checked.
    pub time_zone: Option<String>,
    pub remind_at: Option<Option<Timestamp>>,
    pub remind_before_minutes: Option<Option<i64>>,
    pub notification_type: Option<NotificationType>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }

    /// Reads the writable fields of `object`; any other key is rejected.
    pub fn from_json(object: &Map<String, Json>) -> Result<TaskPatch> {
        Self::from_json_allowing(object, &[])
    }

    /// Like [`TaskPatch::from_json`], but `extra` keys (e.g. an MCP tool's
    /// `id` argument) are skipped rather than rejected.
    pub fn from_json_allowing(object: &Map<String, Json>, extra: &[&str]) -> Result<TaskPatch> {
        let mut patch = TaskPatch::default();
        for (key, value) in object {
            match key.as_str() {
                "title" => patch.title = Some(title(value)?),
                "description" => patch.description = Some(description(value)?),
                "status" => patch.status = Some(Status::parse(string("status", value)?)?),
                "priority" => patch.priority = Some(Priority::parse(string("priority", value)?)?),
                "due_date" => patch.due_date = Some(nullable(value, |v| timestamp("due_date", v))?),
                "tags" => patch.tags = Some(tags(value)?),
                "recurrence_pattern" => {
                    // An empty pattern is no pattern, like null.
                    let empty = value.as_str().is_some_and(|t| t.trim().is_empty());
                    patch.recurrence_pattern = Some(if empty {
                        None
                    } else {
                        nullable(value, recurrence_pattern)?
                    })
                }
                "remind_at" => {
                    patch.remind_at = Some(nullable(value, |v| timestamp("remind_at", v))?)
                }
                "remind_before_minutes" => {
                    patch.remind_before_minutes = Some(nullable(value, remind_before_minutes)?)
                }
                "time_zone" => {
                    let name = string("time_zone", value)?;
                    crate::quick_add::zone("time_zone", name)?;
                    patch.time_zone = Some(name.to_owned());
                }
                "notification_type" => {
                    patch.notification_type = Some(NotificationType::parse(string(
                        "notification_type",
                        value,
                    )?)?)
                }
                other if extra.contains(&other) => {}
                // Fields the server owns: writing them is an error that says so.
                other if crate::model::TASK_FIELDS.contains(&other) => {
                    return Err(DomainError::bad_request(
                        Some(other),
                        format!("`{other}` is set by the server and cannot be written"),
                    ))
                }
                other => {
                    return Err(DomainError::bad_request(
                        Some(other),
                        format!(
                            "unknown field `{other}`; writable fields are {}",
                            WRITABLE_FIELDS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(patch)
    }
}

fn nullable<T>(value: &Json, parse: impl FnOnce(&Json) -> Result<T>) -> Result<Option<T>> {
    if value.is_null() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

pub fn string<'a>(field: &str, value: &'a Json) -> Result<&'a str> {
    value.as_str().ok_or_else(|| {
        DomainError::invalid(field, format!("must be a string, got {}", kind(value)))
    })
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn has_control_chars(text: &str, allow_newlines: bool) -> bool {
    text.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

// Lengths are counted before trimming, as the OpenAPI `maxLength` counts.
fn title(value: &Json) -> Result<String> {
    let raw = string("title", value)?;
    let text = raw.trim();
    if text.is_empty() {
        return Err(DomainError::invalid("title", "must not be empty"));
    }
    if raw.chars().count() > MAX_TITLE_CHARS {
        return Err(DomainError::invalid(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if has_control_chars(text, false) {
        return Err(DomainError::invalid(
            "title",
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

fn description(value: &Json) -> Result<String> {
    if value.is_null() {
        return Ok(String::new());
    }
    let raw = string("description", value)?;
    let text = raw.trim();
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if has_control_chars(text, true) {
        return Err(DomainError::invalid(
            "description",
            "must not contain control characters other than newlines and tabs",
        ));
    }
    Ok(text.to_owned())
}

fn timestamp(field: &str, value: &Json) -> Result<Timestamp> {
    time::parse(field, string(field, value)?)
}

/// Tags are trimmed, lower-cased and de-duplicated, keeping first-seen order.
pub fn tags(value: &Json) -> Result<Vec<String>> {
    let items = value.as_array().ok_or_else(|| {
        DomainError::invalid(
            "tags",
            format!("must be an array of strings, got {}", kind(value)),
        )
    })?;
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let tag = normalize_tag(string("tags", item)?)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(DomainError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

pub fn normalize_tag(raw: &str) -> Result<String> {
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    // Length is checked before lower-casing, as the OpenAPI `maxLength`
    // counts what was sent: `İ` lower-cases to two characters.
    let too_long = collapsed.chars().count() > MAX_TAG_CHARS;
    let tag = collapsed.to_lowercase();
    if tag.is_empty() || too_long {
        return Err(DomainError::invalid(
            "tags",
            format!("each tag must be 1 to {MAX_TAG_CHARS} characters"),
        ));
    }
    if tag.contains(',') || has_control_chars(&tag, false) {
        return Err(DomainError::invalid(
            "tags",
            format!("tag `{tag}` must not contain commas or control characters"),
        ));
    }
    Ok(tag)
}

fn recurrence_pattern(value: &Json) -> Result<String> {
    let text = string("recurrence_pattern", value)?.trim();
    rules::parse(text)?;
    Ok(text.to_owned())
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

fn remind_before_minutes(value: &Json) -> Result<i64> {
    whole_number(value)
        .filter(|m| (0..=MAX_REMIND_BEFORE_MINUTES).contains(m))
        .ok_or_else(|| {
            DomainError::invalid(
                "remind_before_minutes",
                format!("must be a whole number of minutes from 0 to {MAX_REMIND_BEFORE_MINUTES}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_length_counts_what_was_sent_not_its_lower_case() {
        // 40 characters sent; lower-cased, `İ` becomes `i̇` (two).
        let tag = format!("{}{}", "İ", "a".repeat(39));
        assert_eq!(tag.chars().count(), 40);
        assert!(normalize_tag(&tag).is_ok());
        assert!(normalize_tag(&"a".repeat(41)).is_err());
    }
    use serde_json::json;

    fn patch(value: Json) -> Result<TaskPatch> {
        TaskPatch::from_json(value.as_object().unwrap())
    }

    #[test]
    fn reads_every_writable_field() {
        let p = patch(json!({
            "title": "  Pay rent ",
            "description": "landlord",
            "status": "in_progress",
            "priority": "high",
            "due_date": "2026-12-01T09:00:00Z",
            "tags": ["Home", "home", " Money  Matters "],
            "recurrence_pattern": "monthly",
            "remind_before_minutes": 60,
            "notification_type": "email"
        }))
        .unwrap();
        assert_eq!(p.title.as_deref(), Some("Pay rent"));
        assert_eq!(p.status, Some(Status::InProgress));
        assert_eq!(
            p.tags,
            Some(vec!["home".to_owned(), "money matters".to_owned()])
        );
        assert_eq!(p.remind_before_minutes, Some(Some(60)));
        assert_eq!(p.notification_type, Some(NotificationType::Email));
    }

    #[test]
    fn null_clears_nullable_fields() {
        let p = patch(json!({"due_date": null, "remind_at": null, "recurrence_pattern": null}))
            .unwrap();
        assert_eq!(p.due_date, Some(None));
        assert_eq!(p.remind_at, Some(None));
        assert_eq!(p.recurrence_pattern, Some(None));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"title": ""}), "title"),
            (json!({"title": 5}), "title"),
            (json!({"title": "x".repeat(201)}), "title"),
            (json!({"priority": "asap"}), "priority"),
            (json!({"due_date": "next friday"}), "due_date"),
            (json!({"tags": "a,b"}), "tags"),
            (json!({"tags": ["a,b"]}), "tags"),
            (
                json!({"recurrence_pattern": "now and then"}),
                "recurrence_pattern",
            ),
            (
                json!({"remind_before_minutes": -5}),
                "remind_before_minutes",
            ),
            (
                json!({"remind_before_minutes": 1.5}),
                "remind_before_minutes",
            ),
            (json!({"colour": "red"}), "colour"),
            (json!({"id": "abc"}), "id"),
        ];
        for (input, field) in cases {
            let err = patch(input.clone()).expect_err(&input.to_string());
            assert_eq!(err.field(), Some(field), "{input}");
        }
    }

    #[test]
    fn unknown_fields_are_bad_requests_and_bad_values_are_invalid() {
        assert!(matches!(
            patch(json!({"colour": 1})),
            Err(DomainError::BadRequest { .. })
        ));
        assert!(matches!(
            patch(json!({"priority": "x"})),
            Err(DomainError::Invalid { .. })
        ));
    }
}
