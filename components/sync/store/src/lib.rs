//! The real-time change feed (the `sync` database): every `task-updates`
//! event becomes one row per user in its audience, with a cursor (`seq`)
//! that only grows. Clients ask for everything after their cursor.

use serde_json::{json, Value as Json};

use todo_domain::error::Result;
use todo_domain::events::incoming::IncomingEvent;
use todo_domain::store::migrations::{Migration, Schema};
use todo_domain::store::sql::{Row, Sql, Value};
use todo_domain::time::{self, Timestamp};

/// Changes older than this are pruned; a client further behind re-lists.
pub const RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

const V1: &str = "
CREATE TABLE IF NOT EXISTS changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    update_data TEXT    NOT NULL,
    occurred_ms INTEGER NOT NULL,
    UNIQUE (event_id, user_id)
);
CREATE INDEX IF NOT EXISTS changes_user ON changes (user_id, seq);
";

/// Pruning deletes by age: an index, so it never scans the feed.
const V2: &str = "CREATE INDEX IF NOT EXISTS changes_occurred ON changes (occurred_ms);";

/// The `sync` database.
pub const DB: Schema = Schema {
    name: "sync",
    sqlite: &[Migration::new(1, &[V1]), Migration::new(2, &[V2])],
    postgres: &[],
};

pub fn open(db: &dyn Sql) -> Result<()> {
    todo_domain::store::migrations::apply(db, &DB)?;
    Ok(())
}

/// Adds the event to the feed of everyone who sees the task; a redelivered
/// event adds nothing. Returns how many rows were added.
pub fn append(db: &dyn Sql, event: &IncomingEvent, now: Timestamp) -> Result<usize> {
    let update = event.field("update_data").cloned().unwrap_or(Json::Null);
    let mut audience: Vec<String> = update
        .get("audience")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !audience.contains(&event.envelope.user_id) {
        audience.push(event.envelope.user_id.clone());
    }
    let mut added = 0;
    todo_domain::store::sql::transaction(db, || {
        for user in &audience {
            let rows = db.execute(
                "INSERT OR IGNORE INTO changes (user_id, event_id, task_id, event_type, update_data, occurred_ms)
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
                &[
                    Value::from(user.as_str()),
                    Value::from(event.envelope.event_id.as_str()),
                    Value::from(event.envelope.task_id.as_str()),
                    Value::from(event.envelope.event_type.as_str()),
                    Value::Text(update.to_string()),
                    Value::Integer(time::to_millis(&event.envelope.timestamp)),
                ],
            )?;
            added += rows.len();
        }
        db.execute(
            "DELETE FROM changes WHERE occurred_ms < ?",
            &[Value::Integer(time::to_millis(&now) - RETENTION_MS)],
        )?;
        Ok::<_, todo_domain::DomainError>(())
    })?;
    Ok(added)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub cursor: i64,
    pub event_id: String,
    pub task_id: String,
    pub event_type: String,
    pub update_data: Json,
    pub occurred_at: Timestamp,
}

impl Change {
    pub fn to_json(&self) -> Json {
        json!({
            "cursor": self.cursor.to_string(),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "task_id": self.task_id,
            "occurred_at": time::format(&self.occurred_at),
            "update_data": self.update_data,
        })
    }
}

fn change(row: Row<'_>) -> Result<Change> {
    Ok(Change {
        cursor: row.i64("seq")?,
        event_id: row.str("event_id")?.to_owned(),
        task_id: row.str("task_id")?.to_owned(),
        event_type: row.str("event_type")?.to_owned(),
        update_data: serde_json::from_str(row.str("update_data")?).unwrap_or(Json::Null),
        occurred_at: time::from_millis(row.i64("occurred_ms")?),
    })
}

/// A user's changes after `cursor`, oldest first.
pub fn since(db: &dyn Sql, user_id: &str, cursor: i64, limit: i64) -> Result<Vec<Change>> {
    let rows = db.execute(
        "SELECT seq, event_id, task_id, event_type, update_data, occurred_ms FROM changes
         WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        &[
            Value::from(user_id),
            Value::Integer(cursor),
            Value::Integer(limit),
        ],
    )?;
    rows.iter().map(change).collect()
}

/// The newest cursor of a user's feed (0 when empty): where a client that
/// wants only new changes starts.
pub fn head(db: &dyn Sql, user_id: &str) -> Result<i64> {
    let rows = db.execute(
        "SELECT COALESCE(MAX(seq), 0) AS head FROM changes WHERE user_id = ?",
        &[Value::from(user_id)],
    )?;
    Ok(rows
        .first()
        .map(|r| r.i64("head"))
        .transpose()?
        .unwrap_or(0))
}

/// What other services (the API) may do with this store: read a user's
/// feed. Only the sync service writes it.
pub mod read {
    pub use super::{head, open, since, Change};
}
