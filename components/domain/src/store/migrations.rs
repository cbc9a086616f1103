//! Schema migrations, applied on first use by whichever component opens the
//! database. The version lives in SQLite's `user_version`, one set of
//! migrations per database (each service owns its store).

use crate::store::sql::{DbError, Sql};

/// One schema version: the scripts that take the database to it.
pub struct Migration {
    pub version: i64,
    pub scripts: &'static [&'static str],
}

impl Migration {
    pub const fn new(version: i64, scripts: &'static [&'static str]) -> Migration {
        Migration { version, scripts }
    }
}

/// Brings `db` up to the last migration. Cheap when already current: one
/// `PRAGMA` read. Safe when several instances race: the re-check happens
/// under the write lock.
pub fn apply(db: &dyn Sql, migrations: &[Migration]) -> Result<(), DbError> {
    let target = migrations.last().map_or(0, |m| m.version);
    if current_version(db)? >= target {
        return Ok(());
    }
    crate::store::sql::transaction(db, || {
        let current = current_version(db)?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            for script in migration.scripts {
                db.execute_batch(script)?;
            }
        }
        if current < target {
            db.execute(&format!("PRAGMA user_version = {target}"), &[])?;
        }
        Ok(())
    })
}

pub fn current_version(db: &dyn Sql) -> Result<i64, DbError> {
    let rows = db.execute("PRAGMA user_version", &[])?;
    rows.first()
        .map(|row| row.i64("user_version"))
        .transpose()
        .map(|v| v.unwrap_or(0))
}

const TASKS_V1: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id                    TEXT    PRIMARY KEY,
    user_id               TEXT    NOT NULL,
    title                 TEXT    NOT NULL,
    description           TEXT    NOT NULL DEFAULT '',
    status                TEXT    NOT NULL,
    priority              TEXT    NOT NULL,
    priority_rank         INTEGER NOT NULL,
    due_ms                INTEGER,
    tags                  TEXT    NOT NULL DEFAULT '[]',
    recurrence_pattern    TEXT,
    remind_ms             INTEGER,
    remind_before_minutes INTEGER,
    notification_type     TEXT    NOT NULL,
    series_id             TEXT,
    series_start_ms       INTEGER,
    occurrence            INTEGER NOT NULL DEFAULT 1,
    created_ms            INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL,
    completed_ms          INTEGER,
    version               INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_user_due ON tasks (user_id, due_ms);
CREATE INDEX IF NOT EXISTS tasks_user_created ON tasks (user_id, created_ms);
CREATE INDEX IF NOT EXISTS tasks_user_updated ON tasks (user_id, updated_ms);
CREATE INDEX IF NOT EXISTS tasks_user_priority ON tasks (user_id, priority_rank);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_series_occurrence
    ON tasks (series_id, occurrence) WHERE series_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id      TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_ms);
";

const TASKS_V2: &str = "
ALTER TABLE tasks ADD COLUMN assignee TEXT;
CREATE TABLE IF NOT EXISTS task_shares (
    task_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (task_id, user_id)
);
CREATE INDEX IF NOT EXISTS task_shares_user ON task_shares (user_id);
";

/// One index per list sort, each ending in `id` (the tiebreak), with the
/// sort expression exactly as the list query writes it: a page is read in
/// order from the owner's slice of the index, whatever others hold.
const TASKS_V3: &str = "
DROP INDEX IF EXISTS tasks_user_due;
DROP INDEX IF EXISTS tasks_user_created;
DROP INDEX IF EXISTS tasks_user_updated;
DROP INDEX IF EXISTS tasks_user_priority;
CREATE INDEX IF NOT EXISTS tasks_user_due_asc ON tasks (user_id, COALESCE(due_ms, 9223372036854775807), id);
CREATE INDEX IF NOT EXISTS tasks_user_due_desc ON tasks (user_id, COALESCE(due_ms, -9223372036854775808), id);
CREATE INDEX IF NOT EXISTS tasks_user_priority_id ON tasks (user_id, priority_rank, id);
CREATE INDEX IF NOT EXISTS tasks_user_created_id ON tasks (user_id, created_ms, id);
CREATE INDEX IF NOT EXISTS tasks_user_updated_id ON tasks (user_id, updated_ms, id);
";

/// Time zones: each task's (null in older rows means UTC) and each user's
/// default for new tasks.
const TASKS_V4: &str = "
ALTER TABLE tasks ADD COLUMN time_zone TEXT;
CREATE TABLE IF NOT EXISTS user_settings (
    user_id    TEXT PRIMARY KEY,
    time_zone  TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// The `default` database: tasks, shares, idempotency keys and the outbox.
pub const TASKS_DB: &[Migration] = &[
    Migration::new(1, &[TASKS_V1, crate::events::outbox::SCHEMA]),
    Migration::new(2, &[TASKS_V2]),
    Migration::new(3, &[TASKS_V3]),
    Migration::new(4, &[TASKS_V4]),
];
