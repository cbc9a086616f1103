//! Reading events back off Kafka: the envelope every event shares, and the
//! task inside `task-events` and `task-updates` payloads.

use serde::Deserialize;
use serde_json::Value as Json;

use crate::events::Envelope;

use crate::model::Task;
use crate::time::{self, Timestamp};

/// An event as a consumer sees it: the envelope every event carries, and
/// the whole JSON value for the fields of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub envelope: Envelope,
    pub payload: Json,
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
        let envelope = Envelope::deserialize(&payload).map_err(|e| format!("not an event: {e}"))?;
        Ok(IncomingEvent { envelope, payload })
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
        let bytes = event.payload().to_string();
        let decoded = IncomingEvent::decode(Some(bytes.as_bytes())).unwrap();
        assert_eq!(
            (
                decoded.envelope.event_id.as_str(),
                decoded.envelope.event_type.as_str()
            ),
            (event.envelope.event_id.as_str(), "task_created")
        );
        assert_eq!(task_from_json(&decoded.payload["task_data"]).unwrap(), task);
    }

    #[test]
    fn one_envelope_is_written_and_read_back() {
        let now = time::parse("now", "2026-11-29T10:00:00.250Z").unwrap();
        let patch = TaskPatch::from_json(json!({"title": "x"}).as_object().unwrap()).unwrap();
        let task = crate::model::change::new_task("alice", "t1".into(), &patch, now).unwrap();
        let event = events::task_event("task_updated", &task, now).by("system:test");
        let payload = event.payload();
        let keys: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "event_id",
                "event_type",
                "schema_version",
                "task_data",
                "task_id",
                "timestamp",
                "user_id"
            ]
        );
        assert_eq!(payload["timestamp"], "2026-11-29T10:00:00.250Z");
        let decoded = IncomingEvent::decode(Some(payload.to_string().as_bytes())).unwrap();
        assert_eq!(decoded.envelope, event.envelope);
        // A consumer names what is missing.
        let mut partial = payload.clone();
        partial.as_object_mut().unwrap().remove("task_id");
        let error = IncomingEvent::decode(Some(partial.to_string().as_bytes())).unwrap_err();
        assert!(error.contains("task_id"), "{error}");
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
