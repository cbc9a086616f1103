//! Reading events back off Kafka: the envelope every event shares, and the
//! task inside `task-events` and `task-updates` payloads.

use serde_json::Value as Json;

use crate::model::{NotificationType, Priority, Status, Task};
use crate::time::{self, Timestamp};

/// An event as a consumer sees it. `payload` is the whole JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub event_id: String,
    pub event_type: String,
    pub task_id: String,
    pub user_id: String,
    pub timestamp: Timestamp,
    pub payload: Json,
}

fn text<'a>(value: &'a Json, field: &str) -> Result<&'a str, String> {
    value
        .get(field)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("missing string field `{field}`"))
}

fn opt_time(value: &Json, field: &str) -> Result<Option<Timestamp>, String> {
    match value.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => time::parse(field, s).map(Some).map_err(|e| e.to_string()),
        Some(_) => Err(format!("`{field}` must be an RFC 3339 string or null")),
    }
}

impl IncomingEvent {
    /// Decodes a message value. An error here is permanent: the message can
    /// never be understood and belongs in the dead-letter topic.
    pub fn decode(bytes: Option<&[u8]>) -> Result<IncomingEvent, String> {
        let bytes = bytes.ok_or("empty message")?;
        if bytes.len() > crate::outbox::MAX_EVENT_BYTES {
            return Err(format!(
                "oversize event: {} bytes, over the {}-byte limit",
                bytes.len(),
                crate::outbox::MAX_EVENT_BYTES
            ));
        }
        let payload: Json =
            serde_json::from_slice(bytes).map_err(|e| format!("undecodable payload: {e}"))?;
        if !payload.is_object() {
            return Err("undecodable payload: not a JSON object".into());
        }
        let timestamp = opt_time(&payload, "timestamp")?.ok_or("missing `timestamp`")?;
        Ok(IncomingEvent {
            event_id: text(&payload, "event_id")?.to_owned(),
            event_type: text(&payload, "event_type")?.to_owned(),
            task_id: text(&payload, "task_id")?.to_owned(),
            user_id: text(&payload, "user_id")?.to_owned(),
            timestamp,
            payload,
        })
    }

    pub fn field(&self, name: &str) -> Option<&Json> {
        self.payload.get(name)
    }

    pub fn time_field(&self, name: &str) -> Result<Option<Timestamp>, String> {
        opt_time(&self.payload, name)
    }
}

/// The strings of an array field (empty when absent).
fn strings(value: &Json, field: &str) -> Vec<String> {
    value
        .get(field)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Rebuilds a task from its JSON form (`task_data`, or the task in
/// `update_data`), as written by [`Task::to_json`].
pub fn task_from_json(value: &Json) -> Result<Task, String> {
    let status = Status::parse(text(value, "status")?).map_err(|e| e.to_string())?;
    let priority = Priority::parse(text(value, "priority")?).map_err(|e| e.to_string())?;
    let notification_type = NotificationType::parse(
        value
            .get("notification_type")
            .and_then(Json::as_str)
            .unwrap_or("in_app"),
    )
    .map_err(|e| e.to_string())?;
    let created_at = opt_time(value, "created_at")?.ok_or("missing `created_at`")?;
    Ok(Task {
        id: text(value, "id")?.to_owned(),
        user_id: text(value, "user_id")?.to_owned(),
        title: text(value, "title")?.to_owned(),
        description: value
            .get("description")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
        status,
        priority,
        due_date: opt_time(value, "due_date")?,
        tags: strings(value, "tags"),
        recurrence_pattern: value
            .get("recurrence_pattern")
            .and_then(Json::as_str)
            .map(str::to_owned),
        remind_at: opt_time(value, "remind_at")?,
        remind_before_minutes: value.get("remind_before_minutes").and_then(Json::as_i64),
        notification_type,
        series_id: value
            .get("series_id")
            .and_then(Json::as_str)
            .map(str::to_owned),
        series_start: opt_time(value, "series_start")?,
        occurrence: value.get("occurrence").and_then(Json::as_i64).unwrap_or(1),
        created_at,
        updated_at: opt_time(value, "updated_at")?.unwrap_or(created_at),
        completed_at: opt_time(value, "completed_at")?,
        version: value.get("version").and_then(Json::as_i64).unwrap_or(1),
        shared_with: strings(value, "shared_with"),
        assignee: value
            .get("assignee")
            .and_then(Json::as_str)
            .map(str::to_owned),
        // Events written before zones existed carry none: UTC.
        time_zone: value
            .get("time_zone")
            .and_then(Json::as_str)
            .unwrap_or(crate::model::DEFAULT_TIME_ZONE)
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events;
    use crate::input::TaskPatch;
    use serde_json::json;

    #[test]
    fn an_event_round_trips_through_its_json() {
        let now = time::parse("now", "2026-11-29T10:00:00Z").unwrap();
        let patch = TaskPatch::from_json(json!({"title": "x", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "daily", "tags": ["a"]}).as_object().unwrap()).unwrap();
        let task = crate::change::new_task("alice", "t1".into(), &patch, now).unwrap();
        let event = events::task_event("task_created", &task, now);
        let bytes = event.payload.to_string();
        let decoded = IncomingEvent::decode(Some(bytes.as_bytes())).unwrap();
        assert_eq!(
            (decoded.event_id.as_str(), decoded.event_type.as_str()),
            (event.event_id.as_str(), "task_created")
        );
        assert_eq!(task_from_json(&decoded.payload["task_data"]).unwrap(), task);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(IncomingEvent::decode(None).is_err());
        assert!(IncomingEvent::decode(Some(b"not json"))
            .unwrap_err()
            .contains("undecodable"));
        assert!(IncomingEvent::decode(Some(b"{\"event_id\": \"x\"}")).is_err());
    }
}
