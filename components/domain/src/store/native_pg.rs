//! The SQL interface over a native Postgres connection (the `postgres`
//! crate): the store tests run against it, so the store is proved on a
//! real Postgres exactly as on SQLite.

use std::cell::RefCell;

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use crate::store::postgres::{
    begin_for_owners, begin_locked, lock_key, numbered, passes, schema_for,
};
use crate::store::sql::{DbError, Dialect, Rows, Sql, Value};

pub struct NativePg {
    client: RefCell<Client>,
    schema: String,
    lock: i64,
}

impl NativePg {
    /// Connects to `url` and works in the schema of database `label`.
    pub fn connect(url: &str, label: &str) -> Result<Self, DbError> {
        let schema = schema_for(label)?;
        let client = Client::connect(url, NoTls).map_err(pg_error)?;
        let db = NativePg {
            client: RefCell::new(client),
            lock: lock_key(&schema),
            schema,
        };
        db.execute(&format!("SET search_path TO {}", db.schema), &[])?;
        Ok(db)
    }
}

pub fn pg_error(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) if passes(db.code().code()) => {
            DbError::busy(format!("{} ({})", db.message(), db.code().code()))
        }
        Some(db) => DbError::new(format!("{} ({})", db.message(), db.code().code())),
        None if e.is_closed() => DbError::unavailable(e.to_string()),
        None => DbError::new(e.to_string()),
    }
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn parameter(value: &Value) -> Box<dyn ToSql + Sync> {
    match value {
        Value::Null => Box::new(AnyNull),
        Value::Integer(n) => Box::new(*n),
        Value::Real(f) => Box::new(*f),
        Value::Text(s) => Box::new(s.clone()),
        Value::Blob(b) => Box::new(b.clone()),
    }
}

/// Column `i` in SQLite's five types, as the Spin adapter maps them.
fn value(row: &postgres::Row, i: usize) -> Result<Value, postgres::Error> {
    fn read<'a, T: postgres::types::FromSql<'a>>(
        row: &'a postgres::Row,
        i: usize,
        wrap: impl FnOnce(T) -> Value,
    ) -> Result<Value, postgres::Error> {
        Ok(row.try_get::<_, Option<T>>(i)?.map_or(Value::Null, wrap))
    }
    match *row.columns()[i].type_() {
        Type::BOOL => read(row, i, |b: bool| Value::Integer(i64::from(b))),
        Type::INT2 => read(row, i, |n: i16| Value::Integer(n.into())),
        Type::INT4 => read(row, i, |n: i32| Value::Integer(n.into())),
        Type::INT8 => read(row, i, Value::Integer),
        Type::FLOAT4 => read(row, i, |f: f32| Value::Real(f.into())),
        Type::FLOAT8 => read(row, i, Value::Real),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => read(row, i, Value::Text),
        Type::BYTEA => read(row, i, Value::Blob),
        Type::JSON | Type::JSONB => read(row, i, |j: serde_json::Value| Value::Text(j.to_string())),
        _ => Ok(Value::Null),
    }
}

impl Sql for NativePg {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<Box<dyn ToSql + Sync>> = params.iter().map(parameter).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(AsRef::as_ref).collect();
        let mut client = self.client.borrow_mut();
        let statement = client.prepare(&numbered(sql)).map_err(pg_error)?;
        let rows = client.query(&statement, &refs).map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| value(row, i)).collect())
            .collect::<Result<Vec<Vec<Value>>, _>>()
            .map_err(pg_error)?;
        Ok(Rows {
            columns: statement
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
            rows,
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
