//! The SQL interface over Spin's SQLite (`fermyon:spin/sqlite@2.0.0`), for
//! components running under Spin or the trigger-kafka host, and [`open`],
//! which picks SQLite or Postgres by the `store` variable.

use spin_sdk::sqlite::{Connection, Error, Value as SpinValue};

use crate::store::spin_pg::SpinPgDb;
use crate::store::sql::{DbError, Rows, Sql, Value};

/// Which engine holds the app's stores: the `store` variable, `sqlite`
/// (the default: one file per database label, one replica) or `postgres`
/// (one schema per label in the database at `postgres_url`, shared by any
/// number of replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres { url: String },
}

impl Engine {
    /// Reads the engine from variables (`lookup` gives a variable's value,
    /// None when the component does not declare it).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Engine, DbError> {
        match lookup("store").as_deref().map(str::trim) {
            None | Some("") | Some("sqlite") => Ok(Engine::Sqlite),
            Some("postgres") => match lookup("postgres_url") {
                Some(url) if !url.trim().is_empty() => Ok(Engine::Postgres {
                    url: url.trim().to_owned(),
                }),
                _ => Err(DbError::new(
                    "variable `store` is `postgres` but variable `postgres_url` is empty",
                )),
            },
            Some(other) => Err(DbError::new(format!(
                "variable `store` is `{other}`; it must be `sqlite` or `postgres`"
            ))),
        }
    }
}

/// Opens database `label` in the engine the component's variables choose.
pub fn open(label: &str) -> Result<Box<dyn Sql>, DbError> {
    match Engine::from_lookup(|name| spin_sdk::variables::get(name).ok())? {
        Engine::Sqlite => Ok(Box::new(SpinDb::open(label)?)),
        Engine::Postgres { url } => Ok(Box::new(SpinPgDb::open(&url, label)?)),
    }
}

pub struct SpinDb {
    conn: Connection,
}

impl SpinDb {
    /// Opens a database the component was granted in `sqlite_databases`.
    pub fn open(label: &str) -> Result<Self, DbError> {
        let conn = Connection::open(label).map_err(|e| spin_error(label, e))?;
        let db = SpinDb { conn };
        // Spin opens SQLite without a busy timeout; the trigger host's relay
        // writes the same file, so wait for its lock instead of failing.
        db.execute("PRAGMA busy_timeout = 5000", &[])?;
        Ok(db)
    }
}

fn spin_error(label: &str, e: Error) -> DbError {
    let message = match &e {
        Error::NoSuchDatabase => format!("no SQLite database `{label}` is configured"),
        Error::AccessDenied => format!("this component may not open SQLite database `{label}`"),
        Error::InvalidConnection => "invalid SQLite connection".to_owned(),
        Error::DatabaseFull => "the SQLite database is full".to_owned(),
        Error::Io(m) => m.clone(),
    };
    let busy = message.contains("database is locked") || message.contains("busy");
    if busy {
        DbError::busy(message)
    } else {
        DbError::new(message)
    }
}

impl Sql for SpinDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<SpinValue> = params
            .iter()
            .map(|v| match v {
                Value::Null => SpinValue::Null,
                Value::Integer(n) => SpinValue::Integer(*n),
                Value::Real(f) => SpinValue::Real(*f),
                Value::Text(s) => SpinValue::Text(s.clone()),
                Value::Blob(b) => SpinValue::Blob(b.clone()),
            })
            .collect();
        let result = self
            .conn
            .execute(sql, &params)
            .map_err(|e| spin_error("", e))?;
        let rows = result
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        SpinValue::Null => Value::Null,
                        SpinValue::Integer(n) => Value::Integer(n),
                        SpinValue::Real(f) => Value::Real(f),
                        SpinValue::Text(s) => Value::Text(s),
                        SpinValue::Blob(b) => Value::Blob(b),
                    })
                    .collect()
            })
            .collect();
        Ok(Rows {
            columns: result.columns,
            rows,
        })
    }
}
