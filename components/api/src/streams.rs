//! Leases on event streams, so no one user — and not all users together —
//! can hold every component instance with open `/api/events` streams. A
//! stream takes a lease row in the `default` database before its first
//! byte and gives it back when it ends; a lease also expires on its own
//! shortly after the stream's window, so a stream whose instance was killed
//! (its client stopped reading, the host restarted) frees its place.

use todo_domain::store::sql::{transaction, Dialect, Sql, Value};

use crate::http::ApiError;

/// Open streams one user may have (browser tabs, devices).
pub const PER_USER: i64 = 4;
/// Open streams in all, across users: the rest of the HTTP share of
/// instances stays free for ordinary requests.
pub const TOTAL: i64 = 200;
/// How long past its window a lease outlives a stream that never gave it
/// back.
pub const GRACE_MS: i64 = 30_000;

/// On SQLite the table is made here, on first use; on Postgres it is part
/// of the tasks store's schema (`TASKS_PG_V1`), so replicas never race to
/// create it.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stream_leases (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
)";

/// Takes a lease for a stream of `user` lasting `window_ms` from `now_ms`;
/// its id is given back to [`release`]. Past a cap: 429 for the user's own
/// streams, 503 for everyone's, each with `Retry-After`.
pub fn acquire(db: &dyn Sql, user: &str, now_ms: i64, window_ms: i64) -> Result<String, ApiError> {
    if db.dialect() == Dialect::Sqlite {
        db.execute(SCHEMA, &[])?;
    }
    let id = todo_domain::store::new_id();
    transaction(db, || {
        db.execute(
            "DELETE FROM stream_leases WHERE expires_ms <= ?",
            &[Value::Integer(now_ms)],
        )?;
        let counts = db.execute(
            "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN user_id = ? THEN 1 ELSE 0 END), 0) AS mine FROM stream_leases",
            &[Value::from(user)],
        )?;
        let row = counts.first().expect("an aggregate row");
        let (total, mine) = (row.i64("total")?, row.i64("mine")?);
        if mine >= PER_USER {
            return Err(ApiError::new(
                429,
                "too_many_streams",
                format!("this user already has {PER_USER} open event streams; close one, or use /api/sync"),
            )
            .with_header("retry-after", "5"));
        }
        if total >= TOTAL {
            return Err(ApiError::new(
                503,
                "overloaded",
                "the server has as many open event streams as it serves; retry shortly, or use /api/sync",
            )
            .with_header("retry-after", "5"));
        }
        db.execute(
            "INSERT INTO stream_leases (id, user_id, expires_ms) VALUES (?, ?, ?)",
            &[
                Value::from(id.as_str()),
                Value::from(user),
                Value::Integer(now_ms + window_ms + GRACE_MS),
            ],
        )?;
        Ok(())
    })?;
    Ok(id)
}

/// Gives a lease back (a lease already expired and swept is no error).
pub fn release(db: &dyn Sql, id: &str) {
    let _ = db.execute("DELETE FROM stream_leases WHERE id = ?", &[Value::from(id)]);
}
