//! Events on the seed's three topics. Every payload has exactly the seed's
//! fields plus `event_id` and `schema_version`; the CloudEvents attributes
//! travel as Kafka headers (binary content mode).

pub mod incoming;
#[cfg(feature = "kafka-handler")]
pub mod kafka_handler;
pub mod outbox;
pub mod trace;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::model::Task;
use crate::time::{self, Timestamp};

pub const TASK_EVENTS: &str = "task-events";
pub const REMINDERS: &str = "reminders";
pub const TASK_UPDATES: &str = "task-updates";
/// Every topic, with its dead-letter twin named `<topic>.dlq`.
pub const TOPICS: &[&str] = &[TASK_EVENTS, REMINDERS, TASK_UPDATES];
pub const SCHEMA_VERSION: i64 = 1;
/// CloudEvents `source` of events about tasks.
pub const TASKS_SOURCE: &str = "/todo-chatbot/tasks";

/// The fields every event carries, on every topic: what producers write
/// first and consumers read before anything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique; consumers deduplicate by it.
    pub event_id: String,
    /// Absent in no event this app wrote; 1 if a hand-made one leaves it out.
    #[serde(default = "schema_version")]
    pub schema_version: i64,
    pub event_type: String,
    pub task_id: String,
    pub user_id: String,
    #[serde(with = "time::rfc3339")]
    pub timestamp: Timestamp,
}

fn schema_version() -> i64 {
    SCHEMA_VERSION
}

/// An event's JSON: the envelope, then the fields of its kind.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    envelope: &'a Envelope,
    #[serde(flatten)]
    fields: &'a Map<String, Json>,
}

/// One event ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub envelope: Envelope,
    /// The fields of its kind (`task_data`, `update_data`, …).
    pub fields: Map<String, Json>,
    pub topic: &'static str,
    pub source: &'static str,
    /// Who caused it: a user id, or `system:<service>` (CloudEvents
    /// extension attribute `actor`, header `ce_actor`).
    pub actor: String,
}

impl Event {
    /// Builds an event of `topic` about the task.
    pub fn new(
        topic: &'static str,
        event_type: &'static str,
        source: &'static str,
        user_id: &str,
        task_id: &str,
        time: Timestamp,
        fields: Map<String, Json>,
    ) -> Event {
        Event {
            envelope: Envelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                schema_version: SCHEMA_VERSION,
                event_type: event_type.to_owned(),
                task_id: task_id.to_owned(),
                user_id: user_id.to_owned(),
                timestamp: time,
            },
            fields,
            topic,
            source,
            actor: user_id.to_owned(),
        }
    }

    /// The same event, attributed to `actor`.
    pub fn by(mut self, actor: &str) -> Event {
        self.actor = actor.to_owned();
        self
    }

    /// The message key: the user id, so one user's events stay in order.
    pub fn key(&self) -> &str {
        &self.envelope.user_id
    }

    /// The message value: envelope and fields in one JSON object.
    pub fn payload(&self) -> Json {
        serde_json::to_value(Body {
            envelope: &self.envelope,
            fields: &self.fields,
        })
        .expect("an event is plain JSON")
    }

    /// CloudEvents attributes in Kafka binary mode, in a stable order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let envelope = &self.envelope;
        vec![
            ("ce_specversion".into(), "1.0".into()),
            ("ce_id".into(), envelope.event_id.clone()),
            ("ce_source".into(), self.source.into()),
            (
                "ce_type".into(),
                cloudevents_type(self.topic, &envelope.event_type),
            ),
            ("ce_time".into(), time::format(&envelope.timestamp)),
            ("ce_subject".into(), envelope.task_id.clone()),
            ("ce_actor".into(), self.actor.clone()),
            ("content-type".into(), "application/json".into()),
        ]
    }
}

/// `todo.<topic>.<event_type>`: the topic is part of the type because
/// `task_updated` exists on two topics with different payloads.
pub fn cloudevents_type(topic: &str, event_type: &str) -> String {
    format!("todo.{topic}.{event_type}")
}

fn object(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// A `task-events` event carrying the full task.
pub fn task_event(event_type: &'static str, task: &Task, now: Timestamp) -> Event {
    Event::new(
        TASK_EVENTS,
        event_type,
        TASKS_SOURCE,
        &task.user_id,
        &task.id,
        now,
        object(json!({ "task_data": task.to_json() })),
    )
}

/// A `reminders` event (`reminder_scheduled`, `reminder_cancelled`,
/// `reminder_triggered`) describing the task's reminder.
pub fn reminder_event(
    event_type: &'static str,
    source: &'static str,
    task: &Task,
    now: Timestamp,
) -> Event {
    Event::new(
        REMINDERS,
        event_type,
        source,
        &task.user_id,
        &task.id,
        now,
        object(json!({
            "title": task.title,
            "due_at": task.due_date.as_ref().map(time::format),
            "remind_at": task.remind_at.as_ref().map(time::format),
            "notification_type": task.notification_type.as_str(),
        })),
    )
}

/// What happened to a task, for the real-time feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Completed,
    Reopened,
    Deleted,
    /// A recurring series could not go on (the reason is in `reason`).
    SeriesEnded,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Completed => "completed",
            Change::Reopened => "reopened",
            Change::Deleted => "deleted",
            Change::SeriesEnded => "series_ended",
        }
    }
}

/// A `task-updates` `task_updated` event: what changed, and the task as it
/// is now (`null` once deleted), so a client can apply it without a fetch.
pub fn task_update_event(
    event_type: &'static str,
    change: Change,
    task: &Task,
    changed_fields: &[&str],
    audience: &[String],
    deleted: bool,
    now: Timestamp,
) -> Event {
    Event::new(
        TASK_UPDATES,
        event_type,
        TASKS_SOURCE,
        &task.user_id,
        &task.id,
        now,
        object(json!({
            "update_data": {
                "change": change.as_str(),
                "version": task.version,
                "changed_fields": changed_fields,
                // Everyone who saw the task before or sees it now: the
                // real-time feed tells each of them.
                "audience": audience,
                "task": if deleted { Json::Null } else { task.to_json() },
            }
        })),
    )
}

/// A `task-updates` `task_updated` event saying a recurring series cannot
/// continue, and why: it reaches every client of the task's audience
/// through the change feed, so a series never ends silently.
pub fn series_ended_event(task: &Task, reason: &str, now: Timestamp) -> Event {
    let mut event = task_update_event(
        "task_updated",
        Change::SeriesEnded,
        task,
        &[],
        &task.audience(),
        false,
        now,
    );
    event.fields["update_data"]["reason"] = json!(reason);
    event
}

/// Fields whose change a user would notice (bookkeeping fields left out).
fn changed_fields(old: &Task, new: &Task) -> Vec<&'static str> {
    const IGNORED: &[&str] = &["updated_at", "version"];
    let (a, b) = (old.to_json(), new.to_json());
    let (Json::Object(a), Json::Object(b)) = (a, b) else {
        return Vec::new();
    };
    crate::model::TASK_FIELDS
        .iter()
        .copied()
        .filter(|f| !IGNORED.contains(f) && a.get(*f) != b.get(*f))
        .collect()
}

/// The reminder as the reminder service sees it: a change to any of these
/// reschedules it.
fn reminder_view(task: &Task) -> impl PartialEq + '_ {
    (
        task.remind_at,
        task.due_date,
        task.title.as_str(),
        task.notification_type,
    )
}

/// Every event one change to a task produces, in the order consumers should
/// see them. `old` is `None` for a new task; `new` is `None` for a deleted
/// one. `actor` is who made the change.
pub fn for_change(
    old: Option<&Task>,
    new: Option<&Task>,
    now: Timestamp,
    actor: &str,
) -> Vec<Event> {
    let mut events = Vec::new();
    match (old, new) {
        (None, Some(task)) => {
            events.push(task_event("task_created", task, now));
            if reminder_due(task, now) {
                events.push(reminder_event(
                    "reminder_scheduled",
                    TASKS_SOURCE,
                    task,
                    now,
                ));
            }
            let fields = changed_fields_all();
            events.push(task_update_event(
                "task_updated",
                Change::Created,
                task,
                &fields,
                &task.audience(),
                false,
                now,
            ));
        }
        (Some(task), None) => {
            events.push(task_event("task_deleted", task, now));
            if task.reminder_armed() {
                events.push(reminder_event(
                    "reminder_cancelled",
                    TASKS_SOURCE,
                    task,
                    now,
                ));
            }
            events.push(task_update_event(
                "task_updated",
                Change::Deleted,
                task,
                &[],
                &task.audience(),
                true,
                now,
            ));
        }
        (Some(before), Some(after)) => {
            use crate::model::Status::Completed;
            let change = match (before.status == Completed, after.status == Completed) {
                (false, true) => Change::Completed,
                (true, false) => Change::Reopened,
                _ => Change::Updated,
            };
            let event_type = if change == Change::Completed {
                "task_completed"
            } else {
                "task_updated"
            };
            events.push(task_event(event_type, after, now));
            let reminder_changed = reminder_view(before) != reminder_view(after);
            let was_armed = before.reminder_armed();
            let is_armed = after.reminder_armed();
            if was_armed && (!is_armed || reminder_changed) {
                events.push(reminder_event(
                    "reminder_cancelled",
                    TASKS_SOURCE,
                    before,
                    now,
                ));
            }
            if is_armed && (!was_armed || reminder_changed) && reminder_due(after, now) {
                events.push(reminder_event(
                    "reminder_scheduled",
                    TASKS_SOURCE,
                    after,
                    now,
                ));
            }
            let fields = changed_fields(before, after);
            let newly_shared = after
                .shared_with
                .iter()
                .any(|u| !before.shared_with.contains(u));
            let update_type = if newly_shared {
                "task_shared"
            } else if after.assignee.is_some() && after.assignee != before.assignee {
                "task_assigned"
            } else {
                "task_updated"
            };
            let mut audience = before.audience();
            audience.extend(
                after
                    .audience()
                    .into_iter()
                    .filter(|u| !before.visible_to(u)),
            );
            events.push(task_update_event(
                update_type,
                change,
                after,
                &fields,
                &audience,
                false,
                now,
            ));
        }
        (None, None) => {}
    }
    events.into_iter().map(|e| e.by(actor)).collect()
}

fn changed_fields_all() -> Vec<&'static str> {
    crate::model::TASK_FIELDS.to_vec()
}

/// A reminder is worth scheduling only if it is armed and still ahead.
fn reminder_due(task: &Task, now: Timestamp) -> bool {
    task.reminder_armed() && task.remind_at.is_some_and(|at| at > now)
}
