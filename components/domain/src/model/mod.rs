//! The task and its small enumerations.

pub mod change;
pub mod decode;
pub mod input;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use crate::error::{DomainError, Result};
use crate::time::{self, Timestamp};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<Self> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(DomainError::invalid(
                        $field,
                        format!("`{}` is not one of {}", text, Self::names().join(", ")),
                    )),
                }
            }

            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// Where a task stands. `completed` is reached only through completion,
    /// which also stamps `completed_at` and emits `task_completed`.
    Status, "status" {
        Pending = "pending",
        InProgress = "in_progress",
        Completed = "completed",
    }
);

string_enum!(
    Priority, "priority" {
        Low = "low",
        Medium = "medium",
        High = "high",
        Urgent = "urgent",
    }
);

string_enum!(
    /// How a reminder reaches the user (the seed's `notification_type`).
    NotificationType, "notification_type" {
        InApp = "in_app",
        Email = "email",
        Sms = "sms",
        Push = "push",
    }
);

impl Priority {
    /// Sort rank: higher is more important.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }
}

/// The keys of [`Task::to_json`], in order.
pub const TASK_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "created_at",
    "updated_at",
    "completed_at",
    "tags",
    "user_id",
    "recurrence_pattern",
    "remind_at",
    "remind_before_minutes",
    "notification_type",
    "series_id",
    "series_start",
    "occurrence",
    "version",
    "shared_with",
    "time_zone",
    "assignee",
];

/// A user's task, as stored and as carried in `task_data`. Its JSON form
/// (the REST body, MCP results, `task_data`) is serde's, both ways; fields
/// added later have defaults, so older events still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub user_id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub status: Status,
    pub priority: Priority,
    #[serde(with = "time::rfc3339::option", default)]
    pub due_date: Option<Timestamp>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub recurrence_pattern: Option<String>,
    /// When the reminder fires. Derived from `due_date` when
    /// `remind_before_minutes` is set, otherwise set directly.
    #[serde(with = "time::rfc3339::option", default)]
    pub remind_at: Option<Timestamp>,
    #[serde(default)]
    pub remind_before_minutes: Option<i64>,
    #[serde(default = "in_app")]
    pub notification_type: NotificationType,
    /// The first task of a recurring series (its own id for the first one).
    #[serde(default)]
    pub series_id: Option<String>,
    /// The due date of the series' first occurrence: the anchor from which
    /// every later occurrence is computed (so month ends do not drift).
    #[serde(with = "time::rfc3339::option", default)]
    pub series_start: Option<Timestamp>,
    /// 1-based position in the series; counts toward an RRULE `COUNT`.
    #[serde(default = "one")]
    pub occurrence: i64,
    #[serde(with = "time::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::rfc3339")]
    pub updated_at: Timestamp,
    #[serde(with = "time::rfc3339::option", default)]
    pub completed_at: Option<Timestamp>,
    /// Bumped on every change; lets consumers drop out-of-date events.
    #[serde(default = "one")]
    pub version: i64,
    /// Other users who may see and change the task (not delete or share it).
    #[serde(default)]
    pub shared_with: Vec<String>,
    /// Who should do it: the owner or one of `shared_with`.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The IANA zone the task lives in: a recurring task keeps its local
    /// time of day across DST changes. Times are still stored and shown in
    /// UTC.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn in_app() -> NotificationType {
    NotificationType::InApp
}

fn one() -> i64 {
    1
}

fn default_time_zone() -> String {
    DEFAULT_TIME_ZONE.to_owned()
}

/// The zone of tasks and users that never chose one.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

impl Task {
    /// A reminder is live while the task is open and has a reminder time.
    pub fn reminder_armed(&self) -> bool {
        self.status != Status::Completed && self.remind_at.is_some()
    }

    /// Whether `user` may see and change the task.
    pub fn visible_to(&self, user: &str) -> bool {
        self.user_id == user || self.shared_with.iter().any(|u| u == user)
    }

    /// Everyone who sees the task.
    pub fn audience(&self) -> Vec<String> {
        let mut users = vec![self.user_id.clone()];
        users.extend(self.shared_with.iter().cloned());
        users
    }

    pub fn is_overdue(&self, now: &Timestamp) -> bool {
        self.status != Status::Completed && self.due_date.is_some_and(|d| d < *now)
    }

    /// The JSON form used by the REST API, MCP results and `task_data`.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).expect("a task serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_case_insensitively_and_name_the_choices() {
        assert_eq!(Priority::parse("HIGH").unwrap(), Priority::High);
        assert_eq!(Status::parse("in_progress").unwrap(), Status::InProgress);
        let err = NotificationType::parse("pigeon").unwrap_err();
        assert_eq!(err.field(), Some("notification_type"));
        assert!(err.to_string().contains("in_app, email, sms, push"));
    }
}
