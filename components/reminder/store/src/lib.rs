//! The reminder service's store (the `reminders` database): schedules kept
//! from `reminders` events, firing due ones exactly once, and the
//! notifications users see.
//!
//! Ordering: an event applies only if it is newer than what the schedule
//! last saw. Newer means a higher outbox sequence (`ce_sequence`, set by
//! the relay from the row's `seq`, which SQLite assigns in commit order):
//! two concurrent edits of one task are applied in the order they
//! committed, whatever their timestamps say (a timestamp is taken when a
//! request starts, before it waits for the write lock). Events without a
//! sequence fall back to (timestamp, event_id). A redelivered or
//! out-of-date event changes nothing.

use serde_json::json;

use todo_domain::error::{DomainError, Result};
use todo_domain::events::incoming::IncomingEvent;
use todo_domain::events::{Event, REMINDERS};
use todo_domain::model::NotificationType;
use todo_domain::store::migrations::{Migration, Schema};
use todo_domain::store::sql::{transaction, Row, Sql, Value};
use todo_domain::time::{self, Timestamp};

pub const SOURCE: &str = "/todo-chatbot/reminders";
pub const ACTOR: &str = "system:reminders";
/// Delivery attempts for email, sms and push before giving up.
pub const MAX_DELIVERY_ATTEMPTS: i64 = 5;

const V1: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    task_id           TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    due_ms            INTEGER,
    remind_ms         INTEGER,
    notification_type TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    event_ms          INTEGER NOT NULL,
    event_id          TEXT    NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (remind_ms) WHERE state = 'scheduled';
CREATE TABLE IF NOT EXISTS notifications (
    id                TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    task_id           TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    channel           TEXT    NOT NULL,
    remind_ms         INTEGER NOT NULL,
    due_ms            INTEGER,
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms   INTEGER,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,
    read_ms           INTEGER,
    delivered_ms      INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_once ON notifications (task_id, remind_ms);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, created_ms);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (next_attempt_ms) WHERE status = 'pending';
";

/// The outbox sequence of the last applied event.
const V2: &str = "ALTER TABLE schedules ADD COLUMN event_seq INTEGER;";

/// The trace context of the event that scheduled a reminder, carried to
/// its notification and webhook delivery (see `todo_domain::events::trace`).
const V3: &str = "ALTER TABLE schedules ADD COLUMN traceparent TEXT;
ALTER TABLE notifications ADD COLUMN traceparent TEXT;";

/// The `reminders` database on Postgres, at the layout of SQLite version 3.
const PG_V1: &str = "
CREATE TABLE schedules (
    task_id           TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    due_ms            BIGINT,
    remind_ms         BIGINT,
    notification_type TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    event_ms          BIGINT  NOT NULL,
    event_id          TEXT    NOT NULL,
    updated_ms        BIGINT  NOT NULL,
    event_seq         BIGINT,
    traceparent       TEXT
);
CREATE INDEX schedules_due ON schedules (remind_ms) WHERE state = 'scheduled';
CREATE TABLE notifications (
    id                TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    task_id           TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    channel           TEXT    NOT NULL,
    remind_ms         BIGINT  NOT NULL,
    due_ms            BIGINT,
    status            TEXT    NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_ms   BIGINT,
    last_error        TEXT,
    created_ms        BIGINT  NOT NULL,
    read_ms           BIGINT,
    delivered_ms      BIGINT,
    traceparent       TEXT
);
CREATE UNIQUE INDEX notifications_once ON notifications (task_id, remind_ms);
CREATE INDEX notifications_user ON notifications (user_id, created_ms);
CREATE INDEX notifications_pending ON notifications (next_attempt_ms) WHERE status = 'pending';
";

/// The `reminders` database.
pub const DB: Schema = Schema {
    name: "reminders",
    sqlite: &[
        Migration::new(1, &[V1, todo_domain::events::outbox::SCHEMA]),
        Migration::new(2, &[V2]),
        Migration::new(3, &[V3]),
    ],
    postgres: &[Migration::new(
        1,
        &[PG_V1, todo_domain::events::outbox::POSTGRES_SCHEMA],
    )],
};

/// Schedule states.
pub mod state {
    pub const SCHEDULED: &str = "scheduled";
    pub const CANCELLED: &str = "cancelled";
    pub const FIRED: &str = "fired";
    pub const MISSED: &str = "missed";
}

/// Notification statuses: in-app ones are `unread`/`read`; the others
/// `pending` → `delivered` or `failed`; reminders found too late `missed`.
pub mod status {
    pub const UNREAD: &str = "unread";
    pub const READ: &str = "read";
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
    pub const MISSED: &str = "missed";
}

pub fn open(db: &dyn Sql) -> Result<()> {
    todo_domain::store::migrations::apply(db, &DB)?;
    Ok(())
}

/// Applies a `reminders` event to the schedules; `sequence` is its
/// `ce_sequence` (commit order at the source). Returns whether it changed
/// anything.
pub fn apply_event(
    db: &dyn Sql,
    event: &IncomingEvent,
    sequence: Option<i64>,
    now: Timestamp,
) -> Result<bool> {
    let target = match event.envelope.event_type.as_str() {
        "reminder_scheduled" => state::SCHEDULED,
        "reminder_cancelled" => state::CANCELLED,
        // Our own output, or types from a newer producer: nothing to do.
        _ => return Ok(false),
    };
    let invalid = |m: String| DomainError::invalid("event", m);
    let title = event
        .field("title")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let remind_at = event.time_field("remind_at").map_err(invalid)?;
    let due_at = event.time_field("due_at").map_err(invalid)?;
    let channel = event
        .field("notification_type")
        .and_then(|v| v.as_str())
        .unwrap_or("in_app");
    NotificationType::parse(channel)?;
    if target == state::SCHEDULED && remind_at.is_none() {
        return Err(invalid("reminder_scheduled without remind_at".into()));
    }
    let event_ms = time::to_millis(&event.envelope.timestamp);
    transaction(db, || {
        let stored = db.execute(
            "SELECT event_ms, event_id, event_seq FROM schedules WHERE task_id = ?",
            &[Value::from(event.envelope.task_id.as_str())],
        )?;
        if let Some(row) = stored.first() {
            let newer = match (sequence, row.opt_i64("event_seq")?) {
                (Some(seq), Some(seen)) => seq > seen,
                _ => {
                    (event_ms, event.envelope.event_id.clone())
                        > (row.i64("event_ms")?, row.str("event_id")?.to_owned())
                }
            };
            if !newer {
                return Ok(false);
            }
        }
        db.execute(
            "INSERT INTO schedules (task_id, user_id, title, due_ms, remind_ms, notification_type, state, event_ms, event_id, updated_ms, event_seq, traceparent)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(task_id) DO UPDATE SET user_id = excluded.user_id, title = excluded.title,
                due_ms = excluded.due_ms, remind_ms = excluded.remind_ms,
                notification_type = excluded.notification_type, state = excluded.state,
                event_ms = excluded.event_ms, event_id = excluded.event_id, updated_ms = excluded.updated_ms,
                event_seq = excluded.event_seq, traceparent = excluded.traceparent",
            &[
                Value::from(event.envelope.task_id.as_str()),
                Value::from(event.envelope.user_id.as_str()),
                Value::Text(title.clone()),
                ms(due_at),
                ms(remind_at),
                Value::from(channel),
                Value::from(target),
                Value::Integer(event_ms),
                Value::from(event.envelope.event_id.as_str()),
                Value::Integer(time::to_millis(&now)),
                sequence.map_or(Value::Null, Value::Integer),
                todo_domain::events::trace::current().map_or(Value::Null, Value::Text),
            ],
        )?;
        Ok(true)
    })
}

/// The `ce_sequence` header of a message: the outbox `seq` the relay
/// published it from.
pub fn sequence_header<'a>(mut headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<i64> {
    headers
        .find(|(k, _)| *k == "ce_sequence")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
}

fn ms(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::Integer(time::to_millis(&t)))
}

/// What one timer run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fired {
    pub fired: usize,
    pub missed: usize,
}

/// Fires every due schedule exactly once: in one transaction, marks it
/// fired, stores the notification and writes `reminder_triggered` to the
/// outbox. Schedules due longer ago than `grace_ms` (the service was down)
/// are recorded as missed instead of sent late.
pub fn fire_due(db: &dyn Sql, now: Timestamp, grace_ms: i64) -> Result<Fired> {
    let now_ms = time::to_millis(&now);
    transaction(db, || {
        let due = db.execute(
            "SELECT task_id, user_id, title, due_ms, remind_ms, notification_type, traceparent FROM schedules
             WHERE state = 'scheduled' AND remind_ms <= ? ORDER BY remind_ms LIMIT 500",
            &[Value::Integer(now_ms)],
        )?;
        let mut result = Fired::default();
        for row in due.iter() {
            let remind_ms = row.i64("remind_ms")?;
            let missed = remind_ms < now_ms - grace_ms;
            let task_id = row.str("task_id")?;
            db.execute(
                "UPDATE schedules SET state = ?, updated_ms = ? WHERE task_id = ?",
                &[
                    Value::from(if missed { state::MISSED } else { state::FIRED }),
                    Value::Integer(now_ms),
                    Value::from(task_id),
                ],
            )?;
            let channel = row.str("notification_type")?;
            let status = match (missed, channel) {
                (true, _) => status::MISSED,
                (false, "in_app") => status::UNREAD,
                (false, _) => status::PENDING,
            };
            let traceparent = row.opt_str("traceparent")?.map(str::to_owned);
            db.execute(
                "INSERT INTO notifications (id, user_id, task_id, title, channel, remind_ms, due_ms, status, next_attempt_ms, created_ms, traceparent)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                &[
                    Value::Text(todo_domain::store::new_id()),
                    Value::from(row.str("user_id")?),
                    Value::from(task_id),
                    Value::from(row.str("title")?),
                    Value::from(channel),
                    Value::Integer(remind_ms),
                    row.value("due_ms")?.clone(),
                    Value::from(status),
                    Value::Integer(now_ms),
                    Value::Integer(now_ms),
                    traceparent.clone().map_or(Value::Null, Value::Text),
                ],
            )?;
            if missed {
                result.missed += 1;
            } else {
                let event = triggered_event(&row, now)?;
                todo_domain::events::trace::with(traceparent.as_deref(), || {
                    todo_domain::events::outbox::enqueue(db, &event)
                })?;
                result.fired += 1;
            }
        }
        Ok(result)
    })
}

/// The earliest scheduled reminder in `(after_ms, until_ms]`, so the timer
/// can fire it at its time instead of at the next tick.
pub fn next_due_ms(db: &dyn Sql, after_ms: i64, until_ms: i64) -> Result<Option<i64>> {
    let rows = db.execute(
        "SELECT MIN(remind_ms) AS next FROM schedules WHERE state = 'scheduled' AND remind_ms > ? AND remind_ms <= ?",
        &[Value::Integer(after_ms), Value::Integer(until_ms)],
    )?;
    Ok(rows
        .first()
        .map(|r| r.opt_i64("next"))
        .transpose()?
        .flatten())
}

fn triggered_event(row: &Row<'_>, now: Timestamp) -> Result<Event> {
    let at = |c: &str| -> Result<Option<String>> {
        Ok(row.opt_i64(c)?.map(|m| time::format(&time::from_millis(m))))
    };
    let fields = json!({
        "title": row.str("title")?,
        "due_at": at("due_ms")?,
        "remind_at": at("remind_ms")?,
        "notification_type": row.str("notification_type")?,
    });
    let fields = match fields {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    Ok(Event::new(
        REMINDERS,
        "reminder_triggered",
        SOURCE,
        row.str("user_id")?,
        row.str("task_id")?,
        now,
        fields,
    )
    .by(ACTOR))
}

/// A notification as users and delivery see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub channel: String,
    pub remind_at: Timestamp,
    pub due_at: Option<Timestamp>,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    /// The trace context its reminder was scheduled under: the webhook
    /// delivery continues it.
    pub traceparent: Option<String>,
}

const NOTIFICATION_COLUMNS: &str =
    "id, user_id, task_id, title, channel, remind_ms, due_ms, status, attempts, last_error, created_ms, read_ms, delivered_ms, traceparent";

fn notification(row: Row<'_>) -> Result<Notification> {
    let opt = |c: &str| -> Result<Option<Timestamp>> { Ok(row.opt_i64(c)?.map(time::from_millis)) };
    Ok(Notification {
        id: row.str("id")?.to_owned(),
        user_id: row.str("user_id")?.to_owned(),
        task_id: row.str("task_id")?.to_owned(),
        title: row.str("title")?.to_owned(),
        channel: row.str("channel")?.to_owned(),
        remind_at: time::from_millis(row.i64("remind_ms")?),
        due_at: opt("due_ms")?,
        status: row.str("status")?.to_owned(),
        attempts: row.i64("attempts")?,
        last_error: row.opt_str("last_error")?.map(str::to_owned),
        created_at: time::from_millis(row.i64("created_ms")?),
        read_at: opt("read_ms")?,
        delivered_at: opt("delivered_ms")?,
        traceparent: row.opt_str("traceparent")?.map(str::to_owned),
    })
}

impl Notification {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "task_id": self.task_id,
            "title": self.title,
            "notification_type": self.channel,
            "remind_at": time::format(&self.remind_at),
            "due_at": self.due_at.as_ref().map(time::format),
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": time::format(&self.created_at),
            "read_at": self.read_at.as_ref().map(time::format),
            "delivered_at": self.delivered_at.as_ref().map(time::format),
        })
    }
}

/// Notifications waiting for (another) delivery attempt, fairly across
/// users: every user's oldest first, then every user's second, and so on,
/// so one user's thousand reminders never hold back another's one.
pub fn pending_deliveries(db: &dyn Sql, now: Timestamp, limit: i64) -> Result<Vec<Notification>> {
    let rows = db.execute(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM (
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY next_attempt_ms, id) AS nth
                 FROM notifications WHERE status = 'pending' AND next_attempt_ms <= ?) AS fair
             ORDER BY nth, next_attempt_ms, id LIMIT ?"
        ),
        &[Value::Integer(time::to_millis(&now)), Value::Integer(limit)],
    )?;
    rows.iter().map(notification).collect()
}

/// Claims one delivery attempt before the webhook is called: counts it and
/// moves the next attempt out by the backoff (1 s, 2 s, 4 s, …), so a run
/// that dies mid-call (or whose reply never comes) neither sends it again
/// at once nor forgets the attempt. False if another run claimed it first
/// or it is not due.
pub fn claim_delivery(db: &dyn Sql, id: &str, now: Timestamp) -> Result<bool> {
    let now_ms = time::to_millis(&now);
    let rows = db.execute(
        "UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = CAST(? AS BIGINT)
            + (1000 << CAST(CASE WHEN attempts < 10 THEN attempts ELSE 10 END AS INTEGER))
         WHERE id = ? AND status = 'pending' AND next_attempt_ms <= ? AND attempts < ? RETURNING id",
        &[
            Value::Integer(now_ms),
            Value::from(id),
            Value::Integer(now_ms),
            Value::Integer(MAX_DELIVERY_ATTEMPTS),
        ],
    )?;
    Ok(!rows.is_empty())
}

/// Deliveries whose last allowed attempt was claimed but never recorded
/// (the run died, or the webhook never answered): failed, with why.
pub fn fail_abandoned(db: &dyn Sql, now: Timestamp) -> Result<usize> {
    let rows = db.execute(
        "UPDATE notifications SET status = 'failed',
            last_error = COALESCE(last_error || '; ', '') || 'the last attempt did not report back'
         WHERE status = 'pending' AND attempts >= ? AND next_attempt_ms <= ? RETURNING id",
        &[
            Value::Integer(MAX_DELIVERY_ATTEMPTS),
            Value::Integer(time::to_millis(&now)),
        ],
    )?;
    Ok(rows.len())
}

/// Records how a claimed attempt went: delivered, or failed (for good once
/// the attempts are spent; otherwise it waits for the next attempt the
/// claim scheduled).
pub fn record_delivery(
    db: &dyn Sql,
    id: &str,
    outcome: std::result::Result<(), String>,
    now: Timestamp,
) -> Result<()> {
    let now_ms = time::to_millis(&now);
    match outcome {
        Ok(()) => db.execute(
            "UPDATE notifications SET status = 'delivered', delivered_ms = ?, last_error = NULL WHERE id = ? AND status = 'pending'",
            &[Value::Integer(now_ms), Value::from(id)],
        )?,
        Err(error) => db.execute(
            "UPDATE notifications SET last_error = ?,
                status = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END
             WHERE id = ? AND status = 'pending'",
            &[Value::Text(error), Value::Integer(MAX_DELIVERY_ATTEMPTS), Value::from(id)],
        )?,
    };
    Ok(())
}

/// A user's notifications, newest first, keyset-paged by (created, id).
pub fn list(
    db: &dyn Sql,
    user_id: &str,
    unread_only: bool,
    limit: i64,
    before: Option<(i64, String)>,
) -> Result<Vec<Notification>> {
    let mut sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE user_id = ?");
    let mut params = vec![Value::from(user_id)];
    if unread_only {
        sql.push_str(" AND status = 'unread'");
    }
    if let Some((created, id)) = before {
        sql.push_str(" AND (created_ms < ? OR (created_ms = ? AND id < ?))");
        params.extend([
            Value::Integer(created),
            Value::Integer(created),
            Value::Text(id),
        ]);
    }
    sql.push_str(" ORDER BY created_ms DESC, id DESC LIMIT ?");
    params.push(Value::Integer(limit));
    let rows = db.execute(&sql, &params)?;
    rows.iter().map(notification).collect()
}

/// Marks an in-app notification read; the user's own only.
pub fn mark_read(db: &dyn Sql, user_id: &str, id: &str, now: Timestamp) -> Result<Notification> {
    db.execute(
        "UPDATE notifications SET status = 'read', read_ms = COALESCE(read_ms, ?) WHERE id = ? AND user_id = ? AND status IN ('unread', 'read')",
        &[Value::Integer(time::to_millis(&now)), Value::from(id), Value::from(user_id)],
    )?;
    let rows = db.execute(
        &format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ? AND user_id = ?"),
        &[Value::from(id), Value::from(user_id)],
    )?;
    rows.first()
        .map(notification)
        .transpose()?
        .ok_or_else(|| DomainError::NotFound(format!("no notification with id `{id}`")))
}

/// The JSON body sent to the notification webhook.
pub fn webhook_body(n: &Notification) -> serde_json::Value {
    json!({
        "notification_id": n.id,
        "user_id": n.user_id,
        "task_id": n.task_id,
        "title": n.title,
        "notification_type": n.channel,
        "remind_at": time::format(&n.remind_at),
        "due_at": n.due_at.as_ref().map(time::format),
    })
}

/// What other services (the API) may do with this store: list a user's
/// notifications and mark one read. Schedules and deliveries are the
/// reminder and notifier services' own.
pub mod read {
    pub use super::{list, mark_read, open, Notification};
}
