//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` over local
//! SQLite files, shared with Spin: the same paths, the same semantics (one
//! connection per `open`), plus a busy timeout and WAL so this host and
//! Spin can both write the file. Version 3 is version 2 plus the rowid of
//! the last insert and the count of rows the last write changed; one
//! resource type serves both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use tokio::sync::Notify;
use wasmtime::component::Resource;

use super::bindings::spin::fermyon::spin::sqlite::{self, Error, QueryResult, RowResult, Value};
use super::HostState;
use crate::runtime_config::Location;

/// How long a statement waits for another writer before failing as busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One SQLite database: where it lives, idle connections, and a signal
/// raised when a component may have written to it (the outbox relay waits
/// on it).
pub struct Database {
    pub label: String,
    location: Location,
    idle: Mutex<Vec<rusqlite::Connection>>,
    pub changed: Arc<Notify>,
}

impl Database {
    pub fn new(label: &str, location: Location) -> anyhow::Result<Database> {
        if let Location::File(path) = &location {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        Ok(Database {
            label: label.to_owned(),
            location,
            idle: Mutex::new(Vec::new()),
            changed: Arc::new(Notify::new()),
        })
    }

    /// Opens a new connection configured for sharing the file.
    pub fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = match &self.location {
            Location::File(path) => {
                let conn = rusqlite::Connection::open(path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn
            }
            // Shared cache, so every connection of the process sees one database.
            Location::InMemory => rusqlite::Connection::open_with_flags(
                format!("file:spin-{}?mode=memory&cache=shared", self.label),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )?,
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn checkout(&self) -> rusqlite::Result<rusqlite::Connection> {
        if let Some(conn) = self.idle.lock().expect("pool lock").pop() {
            return Ok(conn);
        }
        self.connect()
    }

    fn checkin(&self, conn: rusqlite::Connection) {
        // A guest that trapped mid-transaction must not leave it open for
        // the next one.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 16 {
            idle.push(conn);
        }
    }
}

/// The `connection` resource: a connection checked out for one instance.
pub struct Connection {
    db: Arc<Database>,
    conn: Option<rusqlite::Connection>,
    wrote: bool,
    /// What `last-insert-rowid` and `changes` answer. Kept here, not read
    /// off the pooled SQLite connection, which may carry another
    /// instance's last write: under Spin every `open` is a new connection.
    last_insert_rowid: i64,
    changes: u64,
}

/// What a statement did to the connection's `last-insert-rowid` and
/// `changes` (`None`: left as they were).
#[derive(Default)]
struct Effects {
    last_insert_rowid: Option<i64>,
    changes: Option<u64>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.checkin(conn);
        }
        if self.wrote {
            self.db.changed.notify_one();
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

/// Failures of the storage itself rather than of the statement: busy or
/// locked past the timeout, full, unreadable, unopenable, out of memory.
pub fn is_infrastructure(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::DiskFull
                | C::SystemIoFailure
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
                | C::DatabaseCorrupt
                | C::NotADatabase
        )
    )
}

fn to_sql(value: Value) -> SqlValue {
    match value {
        Value::Integer(n) => SqlValue::Integer(n),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
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

/// Spin's limit on what one query may return (`MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 128 << 20;

/// The first statement of `sql`. Spin's SQLite compiles only the first
/// statement and ignores the rest (`SELECT 1; SELECT 2` answers 1, and a
/// second write never runs); the rusqlite here refuses several statements,
/// so they are cut the same way. `sqlite3_complete` says where a statement
/// ends, quotes, comments and triggers included.
fn first_statement(sql: &str) -> &str {
    let body = sql.trim_end().trim_end_matches(';');
    if !body.contains(';') {
        return sql;
    }
    for (at, _) in sql.match_indices(';') {
        let prefix = &sql[..=at];
        let Ok(c) = std::ffi::CString::new(prefix) else {
            return sql;
        };
        // SAFETY: a NUL-terminated string that outlives the call.
        if unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) } == 1 {
            return prefix;
        }
    }
    sql
}

fn value_size(value: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match value {
            Value::Text(s) => s.len(),
            Value::Blob(b) => b.len(),
            _ => 0,
        }
}

/// A statement's failure: Spin's error, and whether the storage itself failed.
struct Failed(Error, bool);

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        let infrastructure = is_infrastructure(&e);
        Failed(io_error(e), infrastructure)
    }
}

/// Runs the statement, and says what it did to `last-insert-rowid` and
/// `changes` as SQLite counts them for a connection of its own.
fn run_counted(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> (Result<QueryResult, Failed>, Effects) {
    let (rowid, total) = (conn.last_insert_rowid(), conn.total_changes());
    let result = run(conn, statement, parameters);
    let statement = first_statement(statement).trim_start();
    let keyword = |k: &str| {
        statement
            .get(..k.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(k))
    };
    let inserts = keyword("INSERT") || keyword("REPLACE");
    let writes = inserts || keyword("UPDATE") || keyword("DELETE");
    let changed = conn.total_changes() > total;
    let effects = Effects {
        last_insert_rowid: (conn.last_insert_rowid() != rowid || (inserts && changed))
            .then(|| conn.last_insert_rowid()),
        changes: match (changed, writes && result.is_ok()) {
            (true, _) => Some(conn.changes()),
            (false, true) => Some(0),
            (false, false) => None,
        },
    };
    (result, effects)
}

fn run(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, Failed> {
    let mut stmt = conn.prepare_cached(first_statement(statement))?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let params: Vec<SqlValue> = parameters.into_iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    let mut bytes = std::mem::size_of::<QueryResult>();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| row.get_ref(i).map(from_sql))
            .collect::<Result<Vec<_>, _>>()?;
        bytes += values.iter().map(value_size).sum::<usize>();
        if bytes > MAX_RESULT_BYTES {
            return Err(Failed(
                Error::Io(format!(
                    "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
                )),
                false,
            ));
        }
        out.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows: out })
}

impl sqlite::Host for HostState {}

impl sqlite::HostConnection for HostState {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, Error> {
        self.open_sqlite(database).await
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        self.execute_sqlite(connection, statement, parameters).await
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl HostState {
    async fn open_sqlite(&mut self, database: String) -> Result<Resource<Connection>, Error> {
        // Like Spin: a label the component was not granted is denied,
        // whether or not it exists.
        let Some(db) = self.component.sqlite.get(&database).cloned() else {
            return Err(Error::AccessDenied);
        };
        let checkout = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.checkout())
        };
        let conn = match checkout.await.map_err(io_error)? {
            Ok(conn) => conn,
            Err(e) => {
                self.fault(format!("opening SQLite database `{database}`: {e}"));
                return Err(io_error(e));
            }
        };
        let resource = Connection {
            db,
            conn: Some(conn),
            wrote: false,
            last_insert_rowid: 0,
            changes: 0,
        };
        self.table.push(resource).map_err(io_error)
    }

    async fn execute_sqlite(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let entry = self
            .table
            .get_mut(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let conn = entry.conn.take().ok_or(Error::InvalidConnection)?;
        let writes = !statement
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("select"));
        let (conn, result, effects) = tokio::task::spawn_blocking(move || {
            let (result, effects) = run_counted(&conn, &statement, parameters);
            (conn, result, effects)
        })
        .await
        .map_err(io_error)?;
        let entry = self
            .table
            .get_mut(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        entry.conn = Some(conn);
        entry.wrote |= writes;
        if let Some(rowid) = effects.last_insert_rowid {
            entry.last_insert_rowid = rowid;
        }
        if let Some(changes) = effects.changes {
            entry.changes = changes;
        }
        result.map_err(|Failed(error, infrastructure)| {
            if infrastructure {
                self.fault(format!("SQLite: {error:?}"));
            }
            error
        })
    }
}

/// `spin:sqlite/sqlite@3.0.0`: the same connections, in version 3's types.
mod v3 {
    use wasmtime::component::Resource;

    use super::super::bindings::spin::spin::sqlite::sqlite as v3;
    use super::{sqlite as v2, Connection, HostState};

    fn value_in(value: v3::Value) -> v2::Value {
        match value {
            v3::Value::Integer(n) => v2::Value::Integer(n),
            v3::Value::Real(f) => v2::Value::Real(f),
            v3::Value::Text(s) => v2::Value::Text(s),
            v3::Value::Blob(b) => v2::Value::Blob(b),
            v3::Value::Null => v2::Value::Null,
        }
    }

    fn value_out(value: v2::Value) -> v3::Value {
        match value {
            v2::Value::Integer(n) => v3::Value::Integer(n),
            v2::Value::Real(f) => v3::Value::Real(f),
            v2::Value::Text(s) => v3::Value::Text(s),
            v2::Value::Blob(b) => v3::Value::Blob(b),
            v2::Value::Null => v3::Value::Null,
        }
    }

    fn error_out(error: v2::Error) -> v3::Error {
        match error {
            v2::Error::NoSuchDatabase => v3::Error::NoSuchDatabase,
            v2::Error::AccessDenied => v3::Error::AccessDenied,
            v2::Error::InvalidConnection => v3::Error::InvalidConnection,
            v2::Error::DatabaseFull => v3::Error::DatabaseFull,
            v2::Error::Io(e) => v3::Error::Io(e),
        }
    }

    impl v3::Host for HostState {}

    impl v3::HostConnection for HostState {
        async fn open(
            &mut self,
            database: String,
        ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
            Ok(self.open_sqlite(database).await.map_err(error_out))
        }

        async fn execute(
            &mut self,
            connection: Resource<Connection>,
            statement: String,
            parameters: Vec<v3::Value>,
        ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
            let parameters = parameters.into_iter().map(value_in).collect();
            let result = match self.execute_sqlite(connection, statement, parameters).await {
                Ok(result) => result,
                Err(error) => return Ok(Err(error_out(error))),
            };
            Ok(Ok(v3::QueryResult {
                columns: result.columns,
                rows: result
                    .rows
                    .into_iter()
                    .map(|row| v3::RowResult {
                        values: row.values.into_iter().map(value_out).collect(),
                    })
                    .collect(),
            }))
        }

        // A handle that is no connection traps, as in Spin (these return
        // no error of their own).
        async fn last_insert_rowid(
            &mut self,
            connection: Resource<Connection>,
        ) -> wasmtime::Result<i64> {
            Ok(self.table.get(&connection)?.last_insert_rowid)
        }

        async fn changes(&mut self, connection: Resource<Connection>) -> wasmtime::Result<u64> {
            Ok(self.table.get(&connection)?.changes)
        }

        async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
            self.table.delete(connection)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_statement;

    #[test]
    fn only_the_first_statement_runs_as_in_spin() {
        assert_eq!(first_statement("SELECT 1"), "SELECT 1");
        assert_eq!(first_statement("SELECT 1;"), "SELECT 1;");
        assert_eq!(first_statement("SELECT 1; SELECT 2"), "SELECT 1;");
        assert_eq!(
            first_statement("INSERT INTO t VALUES ('a;b'); DROP TABLE t"),
            "INSERT INTO t VALUES ('a;b');"
        );
        let trigger = "CREATE TRIGGER x AFTER INSERT ON t BEGIN DELETE FROM u; END; SELECT 1";
        assert_eq!(
            first_statement(trigger),
            "CREATE TRIGGER x AFTER INSERT ON t BEGIN DELETE FROM u; END;"
        );
    }
}
