//! Turning JSON from a client (REST body or MCP tool arguments) into a
//! validated change to a task, with errors that name the field at fault.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::error::{DomainError, Result};
use crate::model::decode::{decode, nullable, nullable_whole, present};
use crate::model::{NotificationType, Priority, Status};
use crate::recurrence::rules;
use crate::time::{self, Timestamp};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 40;
/// A reminder at most a year before the due date.
pub const MAX_REMIND_BEFORE_MINUTES: i64 = 525_600;

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
        decode::<TaskFields>(object.clone())?.into_patch()
    }
}

/// Declares a struct of the fields of a task a client writes, after
/// `extra` leading fields: serde checks their shapes (and refuses any other
/// field), [`TaskFields::into_patch`] their values.
macro_rules! writable_task_fields {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($extra)*
            #[serde(default, deserialize_with = "present")]
            pub title: Option<String>,
            #[serde(default, deserialize_with = "nullable")]
            pub description: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            pub status: Option<Status>,
            #[serde(default, deserialize_with = "present")]
            pub priority: Option<Priority>,
            #[serde(default, deserialize_with = "nullable")]
            pub due_date: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            pub tags: Option<Vec<String>>,
            #[serde(default, deserialize_with = "nullable")]
            pub recurrence_pattern: Option<Option<String>>,
            #[serde(default, deserialize_with = "nullable")]
            pub remind_at: Option<Option<String>>,
            #[serde(default, deserialize_with = "nullable_whole")]
            pub remind_before_minutes: Option<Option<i64>>,
            #[serde(default, deserialize_with = "present")]
            pub notification_type: Option<NotificationType>,
            #[serde(default, deserialize_with = "present")]
            pub time_zone: Option<String>,
        }
    };
}

writable_task_fields!(
    /// A new task's fields (`createTask`, `add_task`).
    TaskFields {}
);

writable_task_fields!(
    /// A change to a task (`updateTask`, `update_task`): which task, and
    /// the fields to change.
    TaskChange {
        pub id: String,
    }
);

impl TaskChange {
    pub fn split(self) -> (String, TaskFields) {
        let fields = TaskFields {
            title: self.title,
            description: self.description,
            status: self.status,
            priority: self.priority,
            due_date: self.due_date,
            tags: self.tags,
            recurrence_pattern: self.recurrence_pattern,
            remind_at: self.remind_at,
            remind_before_minutes: self.remind_before_minutes,
            notification_type: self.notification_type,
            time_zone: self.time_zone,
        };
        (self.id, fields)
    }
}

impl TaskFields {
    /// The checked change.
    pub fn into_patch(self) -> Result<TaskPatch> {
        let timestamp = |field: &str, text: Option<Option<String>>| {
            text.map(|t| t.map(|t| time::parse(field, &t)).transpose())
                .transpose()
        };
        Ok(TaskPatch {
            title: self.title.as_deref().map(title).transpose()?,
            description: self
                .description
                .map(|d| description(d.as_deref().unwrap_or("")))
                .transpose()?,
            status: self.status,
            priority: self.priority,
            due_date: timestamp("due_date", self.due_date)?,
            tags: self.tags.as_deref().map(tags).transpose()?,
            // An empty pattern is no pattern, like null.
            recurrence_pattern: self
                .recurrence_pattern
                .map(|p| {
                    p.filter(|p| !p.trim().is_empty())
                        .map(|p| recurrence_pattern(&p))
                        .transpose()
                })
                .transpose()?,
            time_zone: self
                .time_zone
                .map(|name| crate::quick_add::zone("time_zone", &name).map(|_| name))
                .transpose()?,
            remind_at: timestamp("remind_at", self.remind_at)?,
            remind_before_minutes: self
                .remind_before_minutes
                .map(|m| m.map(remind_before_minutes).transpose())
                .transpose()?,
            notification_type: self.notification_type,
        })
    }
}

fn has_control_chars(text: &str, allow_newlines: bool) -> bool {
    text.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

// Lengths are counted before trimming, as the OpenAPI `maxLength` counts.
fn title(raw: &str) -> Result<String> {
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

fn description(raw: &str) -> Result<String> {
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

/// Tags are trimmed, lower-cased and de-duplicated, keeping first-seen order.
pub fn tags(items: &[String]) -> Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let tag = normalize_tag(item)?;
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

fn recurrence_pattern(text: &str) -> Result<String> {
    let text = text.trim();
    rules::parse(text)?;
    Ok(text.to_owned())
}

fn remind_before_minutes(minutes: i64) -> Result<i64> {
    if (0..=MAX_REMIND_BEFORE_MINUTES).contains(&minutes) {
        return Ok(minutes);
    }
    Err(DomainError::invalid(
        "remind_before_minutes",
        format!("must be a whole number of minutes from 0 to {MAX_REMIND_BEFORE_MINUTES}"),
    ))
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
