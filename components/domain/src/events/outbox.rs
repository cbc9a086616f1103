//! The transactional outbox. Components write events here in the same SQLite
//! transaction as the state change; the trigger host's relay publishes them.
//!
//! Table layout (the contract with the relay):
//!
//! | column       | meaning                                                  |
//! |--------------|----------------------------------------------------------|
//! | `seq`        | INTEGER PRIMARY KEY AUTOINCREMENT: publish order          |
//! | `event_id`   | TEXT UNIQUE: the event's id (also `ce_id`)               |
//! | `topic`      | TEXT: Kafka topic                                         |
//! | `msg_key`    | TEXT: Kafka key (the user id)                             |
//! | `payload`    | TEXT: the JSON message value                              |
//! | `headers`    | TEXT: JSON array of `[name, value]` Kafka headers         |
//! | `created_ms` | INTEGER: when the row was written (Unix ms)               |
//! | `sent_ms`    | INTEGER NULL: when the broker acknowledged it; NULL = due |
//! | `attempts`   | INTEGER: failed publish attempts so far                   |
//! | `last_error` | TEXT NULL: the last publish error                         |
//!
//! The relay reads `WHERE sent_ms IS NULL ORDER BY seq`, publishes in that
//! order with an idempotent producer, and sets `sent_ms` once acknowledged.

use serde_json::json;

use crate::error::{DomainError, Result};
use crate::events::Event;
use crate::store::sql::{Sql, Value};
use crate::time;

/// The largest event written, payload and headers together. Kafka brokers
/// refuse messages over 1 MB by default; a change that would make a larger
/// event is refused with the request (422), so nothing unpublishable ever
/// enters the outbox. Consumers refuse larger events too.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// Creates the outbox in whichever database a service owns.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE,
    topic      TEXT    NOT NULL,
    msg_key    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    headers    TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_ms IS NULL;
";

/// Writes one event. Call inside the transaction that made the change.
pub fn enqueue(db: &dyn Sql, event: &Event) -> Result<()> {
    let mut headers = event.headers();
    if let Some(traceparent) = crate::events::trace::current() {
        headers.push(("traceparent".into(), traceparent.clone()));
        headers.push(("ce_traceparent".into(), traceparent));
    }
    let headers: Vec<_> = headers.into_iter().map(|(k, v)| json!([k, v])).collect();
    let payload = event.payload().to_string();
    let headers = json!(headers).to_string();
    let size = payload.len() + headers.len();
    if size > MAX_EVENT_BYTES {
        return Err(DomainError::Invalid {
            field: None,
            message: format!(
                "this change would make a {} event of {size} bytes, over the {MAX_EVENT_BYTES}-byte limit; make the task smaller",
                event.topic
            ),
        });
    }
    db.execute(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers, created_ms)
         VALUES (?, ?, ?, ?, ?, ?)",
        &[
            Value::from(event.envelope.event_id.as_str()),
            Value::from(event.topic),
            Value::from(event.key()),
            Value::Text(payload),
            Value::Text(headers),
            Value::Integer(time::to_millis(&event.envelope.timestamp)),
        ],
    )?;
    Ok(())
}
