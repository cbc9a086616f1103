//! The SQL interface over Spin's Postgres (`spin:postgres/postgres@4.0.0`),
//! for components whose store is Postgres (several replicas sharing it).

use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError as Error, QueryError};

use crate::store::postgres::{
    begin_for_owners, begin_locked, lock_key, numbered, passes, schema_for,
};
use crate::store::sql::{DbError, Dialect, Rows, Sql, Value};

pub struct SpinPgDb {
    conn: Connection,
    schema: String,
    lock: i64,
}

impl SpinPgDb {
    /// Connects to `address` (the `postgres_url` variable) and works in
    /// the schema of database `label`.
    pub fn open(address: &str, label: &str) -> Result<Self, DbError> {
        let schema = schema_for(label)?;
        let conn = Connection::open(address).map_err(pg_error)?;
        let db = SpinPgDb {
            conn,
            lock: lock_key(&schema),
            schema,
        };
        db.execute(&format!("SET search_path TO {}", db.schema), &[])?;
        Ok(db)
    }
}

fn pg_error(e: Error) -> DbError {
    match e {
        Error::ConnectionFailed(m) => DbError::unavailable(format!("cannot reach Postgres: {m}")),
        Error::QueryFailed(QueryError::DbError(db)) if passes(&db.code) => {
            DbError::busy(format!("{} ({})", db.message, db.code))
        }
        Error::QueryFailed(QueryError::DbError(db)) => {
            DbError::new(format!("{} ({})", db.message, db.code))
        }
        // No structured error: the connection broke under the statement.
        Error::QueryFailed(QueryError::Text(m)) => DbError::unavailable(m),
        Error::BadParameter(m) | Error::ValueConversionFailed(m) | Error::Other(m) => {
            DbError::new(m)
        }
    }
}

fn parameter(value: &Value) -> ParameterValue {
    match value {
        Value::Null => ParameterValue::DbNull,
        Value::Integer(n) => ParameterValue::Int64(*n),
        Value::Real(f) => ParameterValue::Floating64(*f),
        Value::Text(s) => ParameterValue::Str(s.clone()),
        Value::Blob(b) => ParameterValue::Binary(b.clone()),
    }
}

/// A column value in SQLite's five types: integers of any width (and
/// booleans) as integers, decimals as text, `void` and the like as NULL.
fn value(value: DbValue) -> Value {
    match value {
        DbValue::Boolean(b) => Value::Integer(i64::from(b)),
        DbValue::Int8(n) => Value::Integer(n.into()),
        DbValue::Int16(n) => Value::Integer(n.into()),
        DbValue::Int32(n) => Value::Integer(n.into()),
        DbValue::Int64(n) => Value::Integer(n),
        DbValue::Floating32(f) => Value::Real(f.into()),
        DbValue::Floating64(f) => Value::Real(f),
        DbValue::Str(s) | DbValue::Decimal(s) | DbValue::Uuid(s) => Value::Text(s),
        DbValue::Binary(b) => Value::Blob(b),
        DbValue::Jsonb(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        _ => Value::Null,
    }
}

impl Sql for SpinPgDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<ParameterValue> = params.iter().map(parameter).collect();
        let set = self.conn.query(&numbered(sql), &params).map_err(pg_error)?;
        Ok(Rows {
            columns: set.columns.into_iter().map(|c| c.name).collect(),
            rows: set
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(value).collect())
                .collect(),
        })
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn schema(&self) -> Option<&str> {
        Some(&self.schema)
    }

    fn begin(&self) -> Result<(), DbError> {
        begin_locked(self, self.lock)
    }

    fn begin_for(&self, owners: &[&str]) -> Result<(), DbError> {
        begin_for_owners(self, self.lock, owners)
    }
}
