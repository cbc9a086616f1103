//! The SQL interface over a native rusqlite connection: used by tests and by
//! the trigger host. Connections use WAL and a busy timeout so the host's
//! relay and the components can share one database file.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;

use crate::store::sql::{DbError, Rows, Sql, Value};

pub struct NativeDb {
    conn: rusqlite::Connection,
}

impl NativeDb {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open(path).map_err(db_error)?;
        Self::configure(conn, true)
    }

    pub fn open_in_memory() -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open_in_memory().map_err(db_error)?;
        Self::configure(conn, false)
    }

    fn configure(conn: rusqlite::Connection, wal: bool) -> Result<Self, DbError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(db_error)?;
        if wal {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_error)?;
        }
        Ok(NativeDb { conn })
    }

    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

pub fn db_error(e: rusqlite::Error) -> DbError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy {
        DbError::busy(e.to_string())
    } else {
        DbError::new(e.to_string())
    }
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Null => V::Null,
        Value::Integer(n) => V::Integer(*n),
        Value::Real(f) => V::Real(*f),
        Value::Text(s) => V::Text(s.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Runs one statement on a rusqlite connection and collects its rows.
pub fn execute(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let values = (0..columns.len())
            .map(|i| row.get_ref(i).map(from_sql))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

impl Sql for NativeDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        execute(&self.conn, sql, params)
    }
}

/// Shared by the services' store tests: a time, a create request, the
/// events a store change wrote to the outbox, and a COUNT(*).
pub mod testing {
    use crate::events::incoming::IncomingEvent;
    use crate::store::sql::Sql;
    use crate::time::{self, Timestamp};
    use crate::TaskPatch;

    pub fn at(s: &str) -> Timestamp {
        time::parse("t", s).unwrap()
    }

    pub fn patch(v: serde_json::Value) -> TaskPatch {
        TaskPatch::from_json(v.as_object().unwrap()).unwrap()
    }

    /// The events a store change wrote to the outbox, decoded.
    pub fn outbox_events(db: &dyn Sql, topic: &str) -> Vec<IncomingEvent> {
        db.execute(
            "SELECT payload FROM outbox WHERE topic = ? ORDER BY seq",
            &[topic.into()],
        )
        .unwrap()
        .iter()
        .map(|r| IncomingEvent::decode(Some(r.str("payload").unwrap().as_bytes())).unwrap())
        .collect()
    }

    pub fn count(db: &dyn Sql, sql: &str) -> i64 {
        match &db.execute(sql, &[]).unwrap().rows[0][0] {
            crate::store::sql::Value::Integer(n) => *n,
            other => panic!("not a count: {other:?}"),
        }
    }
}
