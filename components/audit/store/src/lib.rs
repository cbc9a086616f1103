//! The audit trail (the `audit` database): one append-only row per event,
//! keyed by `event_id`, so redeliveries add nothing.

use serde_json::{json, Value as Json};

use todo_domain::error::Result;
use todo_domain::events::incoming::IncomingEvent;
use todo_domain::store::migrations::{Migration, Schema};
use todo_domain::store::sql::{Row, Sql, Value};
use todo_domain::time::{self, Timestamp};

const V1: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    user_id     TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    occurred_ms INTEGER NOT NULL,
    snapshot    TEXT    NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_task ON audit_log (task_id, occurred_ms);
CREATE INDEX IF NOT EXISTS audit_user ON audit_log (user_id, seq);
CREATE INDEX IF NOT EXISTS audit_actor ON audit_log (actor, seq);
";

/// Who may read each row: the task's owner and everyone it was shared with
/// when the event happened (from the event's own task snapshot). The trail
/// is read through this, never by actor, so acting on something (as the
/// services do on every task) grants no reading of it.
const V2: &str = "
CREATE TABLE IF NOT EXISTS audit_audience (
    user_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO audit_audience (user_id, seq) SELECT user_id, seq FROM audit_log;
INSERT OR IGNORE INTO audit_audience (user_id, seq)
    SELECT j.value, a.seq FROM audit_log a, json_each(a.snapshot, '$.shared_with') j
    WHERE json_valid(a.snapshot) AND j.type = 'text';
DROP INDEX IF EXISTS audit_actor;
";

/// The `audit` database.
pub const DB: Schema = Schema {
    name: "audit",
    sqlite: &[Migration::new(1, &[V1]), Migration::new(2, &[V2])],
    postgres: &[],
};

pub fn open(db: &dyn Sql) -> Result<()> {
    todo_domain::store::migrations::apply(db, &DB)?;
    Ok(())
}

/// What the row keeps of an event: the task snapshot for task events, the
/// reminder fields for reminder events.
fn snapshot(event: &IncomingEvent) -> Json {
    if let Some(task) = event.field("task_data") {
        return task.clone();
    }
    let mut fields = event.payload.clone();
    if let Json::Object(map) = &mut fields {
        for key in [
            "event_id",
            "event_type",
            "task_id",
            "user_id",
            "timestamp",
            "schema_version",
        ] {
            map.remove(key);
        }
    }
    fields
}

/// Appends the event and who may read it, in one transaction; returns false
/// if it was already recorded.
pub fn record(
    db: &dyn Sql,
    topic: &str,
    event: &IncomingEvent,
    actor: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    todo_domain::store::sql::transaction(db, || {
        let rows = db.execute(
            "INSERT OR IGNORE INTO audit_log (event_id, user_id, actor, task_id, topic, action, occurred_ms, snapshot, recorded_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            &[
                Value::from(event.envelope.event_id.as_str()),
                Value::from(event.envelope.user_id.as_str()),
                Value::from(actor.unwrap_or(event.envelope.user_id.as_str())),
                Value::from(event.envelope.task_id.as_str()),
                Value::from(topic),
                Value::from(event.envelope.event_type.as_str()),
                Value::Integer(time::to_millis(&event.envelope.timestamp)),
                Value::Text(snapshot(event).to_string()),
                Value::Integer(time::to_millis(&now)),
            ],
        )?;
        let Some(seq) = rows.first().map(|r| r.i64("seq")).transpose()? else {
            return Ok(false);
        };
        for user in audience(event) {
            db.execute(
                "INSERT OR IGNORE INTO audit_audience (user_id, seq) VALUES (?, ?)",
                &[Value::from(user.as_str()), Value::Integer(seq)],
            )?;
        }
        Ok(true)
    })
}

/// The owner, and the users the task was shared with at the event.
fn audience(event: &IncomingEvent) -> Vec<String> {
    let mut users = vec![event.envelope.user_id.clone()];
    if let Some(shared) = event
        .field("task_data")
        .and_then(|t| t.get("shared_with"))
        .and_then(Json::as_array)
    {
        users.extend(shared.iter().filter_map(|u| u.as_str().map(str::to_owned)));
    }
    users.sort();
    users.dedup();
    users
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub event_id: String,
    pub user_id: String,
    pub actor: String,
    pub task_id: String,
    pub topic: String,
    pub action: String,
    pub occurred_at: Timestamp,
    pub snapshot: Json,
}

impl Entry {
    pub fn to_json(&self) -> Json {
        json!({
            "event_id": self.event_id,
            "task_id": self.task_id,
            "action": self.action,
            "topic": self.topic,
            "actor": self.actor,
            "owner": self.user_id,
            "occurred_at": time::format(&self.occurred_at),
            "snapshot": self.snapshot,
        })
    }
}

const COLUMNS: &str =
    "seq, event_id, user_id, actor, task_id, topic, action, occurred_ms, snapshot";

fn entry(row: Row<'_>) -> Result<Entry> {
    Ok(Entry {
        seq: row.i64("seq")?,
        event_id: row.str("event_id")?.to_owned(),
        user_id: row.str("user_id")?.to_owned(),
        actor: row.str("actor")?.to_owned(),
        task_id: row.str("task_id")?.to_owned(),
        topic: row.str("topic")?.to_owned(),
        action: row.str("action")?.to_owned(),
        occurred_at: time::from_millis(row.i64("occurred_ms")?),
        snapshot: serde_json::from_str(row.str("snapshot")?).unwrap_or(Json::Null),
    })
}

/// A page of a task's history in the order it happened: up to `limit`
/// entries after the position `after` (`occurred_ms`, `seq`) of the last
/// entry of the previous page.
pub fn history(
    db: &dyn Sql,
    task_id: &str,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<Entry>> {
    let (at, seq) = after.unwrap_or((i64::MIN, i64::MIN));
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM audit_log WHERE task_id = ? \
             AND (occurred_ms > ? OR (occurred_ms = ? AND seq > ?)) \
             ORDER BY occurred_ms, seq LIMIT ?"
        ),
        &[
            Value::from(task_id),
            Value::Integer(at),
            Value::Integer(at),
            Value::Integer(seq),
            Value::Integer(limit),
        ],
    )?;
    rows.iter().map(entry).collect()
}

/// A user's trail — every event of the tasks they owned or that were shared
/// with them at the time — newest first, paged by `seq`.
pub fn trail(
    db: &dyn Sql,
    user_id: &str,
    task_id: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>> {
    if let Some(task_id) = task_id {
        // One task's entries, deleted tasks included: the record outlives
        // the task, whose own /history goes with it.
        let rows = db.execute(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq IN \
                 (SELECT a.seq FROM audit_audience a JOIN audit_log l ON l.seq = a.seq \
                  WHERE a.user_id = ? AND l.task_id = ? AND a.seq < ? ORDER BY a.seq DESC LIMIT ?) \
                 ORDER BY seq DESC"
            ),
            &[
                Value::from(user_id),
                Value::from(task_id),
                Value::Integer(before_seq.unwrap_or(i64::MAX)),
                Value::Integer(limit),
            ],
        )?;
        return rows.iter().map(entry).collect();
    }
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq IN \
             (SELECT seq FROM audit_audience WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?) \
             ORDER BY seq DESC"
        ),
        &[
            Value::from(user_id),
            Value::Integer(before_seq.unwrap_or(i64::MAX)),
            Value::Integer(limit),
        ],
    )?;
    rows.iter().map(entry).collect()
}

/// What other services (the API) may do with this store: read a task's
/// history and a user's trail. Only the audit service writes it.
pub mod read {
    pub use super::{history, open, trail, Entry};
}
