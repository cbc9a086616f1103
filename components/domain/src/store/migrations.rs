//! Schema migrations, applied on first use by whichever component opens the
//! database; one set per database (each service owns its store), written
//! for each dialect. On SQLite the version lives in `user_version`; on
//! Postgres each store has a schema of its own with a `schema_version`
//! table, and its migrations start from the current layout (there is no
//! SQLite history to replay).

use crate::store::sql::{DbError, Dialect, Sql};

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

/// A store's migrations in each dialect.
pub struct Schema {
    /// The store, for errors (`tasks`, `audit`, …).
    pub name: &'static str,
    pub sqlite: &'static [Migration],
    /// Empty while the store has no Postgres form.
    pub postgres: &'static [Migration],
}

/// Brings `db` up to the last migration of its dialect. Cheap when already
/// current: one read. Safe when several instances race: the re-check
/// happens under the write lock. Called on a fresh connection, outside
/// any transaction (on Postgres the first read may fail, which would spoil
/// one).
pub fn apply(db: &dyn Sql, schema: &Schema) -> Result<(), DbError> {
    let migrations = match db.dialect() {
        Dialect::Sqlite => schema.sqlite,
        Dialect::Postgres if schema.postgres.is_empty() => {
            return Err(DbError::new(format!(
                "the {} store has no Postgres schema yet; keep its database on SQLite",
                schema.name
            )))
        }
        Dialect::Postgres => schema.postgres,
    };
    let target = migrations.last().map_or(0, |m| m.version);
    if quick_version(db)? >= target {
        return Ok(());
    }
    crate::store::sql::transaction(db, || {
        if let Some(name) = db.schema() {
            db.execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"), &[])?;
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
                &[],
            )?;
        }
        let current = current_version(db)?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            for script in migration.scripts {
                db.execute_batch(script)?;
            }
        }
        if current < target {
            set_version(db, target)?;
        }
        Ok(())
    })
}

fn set_version(db: &dyn Sql, version: i64) -> Result<(), DbError> {
    match db.dialect() {
        Dialect::Sqlite => db
            .execute(&format!("PRAGMA user_version = {version}"), &[])
            .map(drop),
        Dialect::Postgres => {
            db.execute("DELETE FROM schema_version", &[])?;
            db.execute(
                "INSERT INTO schema_version (version) VALUES (?)",
                &[version.into()],
            )
            .map(drop)
        }
    }
}

/// The version as every open asks it: on Postgres one read of the table,
/// where a schema not made yet fails the read (that is version 0: the
/// migration path then looks again, through the catalogue, under the lock).
/// Outside a transaction a failed read costs nothing; the catalogue check
/// first would be a second round trip on every open.
fn quick_version(db: &dyn Sql) -> Result<i64, DbError> {
    match db.dialect() {
        Dialect::Sqlite => current_version(db),
        Dialect::Postgres => {
            match db.execute("SELECT version AS user_version FROM schema_version", &[]) {
                Ok(rows) => rows
                    .first()
                    .map(|row| row.i64("user_version"))
                    .transpose()
                    .map(|v| v.unwrap_or(0)),
                Err(e) if e.busy => Err(e),
                Err(_) => Ok(0),
            }
        }
    }
}

pub fn current_version(db: &dyn Sql) -> Result<i64, DbError> {
    let rows = match db.dialect() {
        Dialect::Sqlite => db.execute("PRAGMA user_version", &[])?,
        Dialect::Postgres => {
            // No table yet (a new schema) is version 0; asked through the
            // catalogue, so no failed statement spoils a transaction. Every
            // open asks, so by name (`to_regclass`, a cache lookup), not
            // through the pg_tables view.
            let table = format!("{}.schema_version", db.schema().unwrap_or("public"));
            let exists = db.execute(
                "SELECT CAST(CASE WHEN to_regclass(CAST(? AS TEXT)) IS NULL THEN 0 ELSE 1 END AS BIGINT) AS n",
                &[table.into()],
            )?;
            if exists.first().map(|r| r.i64("n")).transpose()? != Some(1) {
                return Ok(0);
            }
            db.execute("SELECT version AS user_version FROM schema_version", &[])?
        }
    };
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

/// The `default` database on Postgres, at the layout of SQLite version 4
/// plus the API's event-stream leases (made on first use on SQLite):
/// integers are BIGINT (the store binds 64-bit integers), the outbox's
/// order is an identity column, and the sort indexes use the same
/// expressions as the list query.
const TASKS_PG_V1: &str = "
CREATE TABLE tasks (
    id                    TEXT    PRIMARY KEY,
    user_id               TEXT    NOT NULL,
    title                 TEXT    NOT NULL,
    description           TEXT    NOT NULL DEFAULT '',
    status                TEXT    NOT NULL,
    priority              TEXT    NOT NULL,
    priority_rank         BIGINT  NOT NULL,
    due_ms                BIGINT,
    tags                  TEXT    NOT NULL DEFAULT '[]',
    recurrence_pattern    TEXT,
    remind_ms             BIGINT,
    remind_before_minutes BIGINT,
    notification_type     TEXT    NOT NULL,
    series_id             TEXT,
    series_start_ms       BIGINT,
    occurrence            BIGINT  NOT NULL DEFAULT 1,
    created_ms            BIGINT  NOT NULL,
    updated_ms            BIGINT  NOT NULL,
    completed_ms          BIGINT,
    version               BIGINT  NOT NULL,
    assignee              TEXT,
    time_zone             TEXT
);
CREATE UNIQUE INDEX tasks_series_occurrence ON tasks (series_id, occurrence) WHERE series_id IS NOT NULL;
CREATE INDEX tasks_user_due_asc ON tasks (user_id, COALESCE(due_ms, 9223372036854775807), id);
CREATE INDEX tasks_user_due_desc ON tasks (user_id, COALESCE(due_ms, (-9223372036854775807 - 1)), id);
CREATE INDEX tasks_user_priority_id ON tasks (user_id, priority_rank, id);
CREATE INDEX tasks_user_created_id ON tasks (user_id, created_ms, id);
CREATE INDEX tasks_user_updated_id ON tasks (user_id, updated_ms, id);
CREATE TABLE task_shares (
    task_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (task_id, user_id)
);
CREATE INDEX task_shares_user ON task_shares (user_id);
CREATE TABLE idempotency_keys (
    user_id      TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       BIGINT  NOT NULL,
    body         TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);
CREATE TABLE user_settings (
    user_id    TEXT   PRIMARY KEY,
    time_zone  TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE stream_leases (
    id         TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    expires_ms BIGINT NOT NULL
);
";

/// The `default` database: tasks, shares, idempotency keys and the outbox.
pub const TASKS_DB: Schema = Schema {
    name: "tasks",
    sqlite: &[
        Migration::new(1, &[TASKS_V1, crate::events::outbox::SCHEMA]),
        Migration::new(2, &[TASKS_V2]),
        Migration::new(3, &[TASKS_V3]),
        Migration::new(4, &[TASKS_V4]),
    ],
    postgres: &[Migration::new(
        1,
        &[TASKS_PG_V1, crate::events::outbox::POSTGRES_SCHEMA],
    )],
};
