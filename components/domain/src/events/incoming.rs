//! Reading events back off Kafka: the envelope every event shares, and the
//! task inside `task-events` and `task-updates` payloads.

use serde_json::Value as Json;

use crate::model::Task;
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
        if bytes.len() > crate::events::outbox::MAX_EVENT_BYTES {
            return Err(format!(
                "oversize event: {} bytes, over the {}-byte limit",
                bytes.len(),
                crate::events::outbox::MAX_EVENT_BYTES
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

/// Rebuilds a task from its JSON form (`task_data`, or the task in
/// `update_data`), as [`Task::to_json`] writes it.
pub fn task_from_json(value: &Json) -> Result<Task, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("bad task: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events;
    use crate::model::input::TaskPatch;
    use serde_json::json;

    #[test]
    fn an_event_round_trips_through_its_json() {
        let now = time::parse("now", "2026-11-29T10:00:00Z").unwrap();
        let patch = TaskPatch::from_json(json!({"title": "x", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "daily", "tags": ["a"]}).as_object().unwrap()).unwrap();
        let task = crate::model::change::new_task("alice", "t1".into(), &patch, now).unwrap();
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
