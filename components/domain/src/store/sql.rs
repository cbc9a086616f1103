//! The small SQL interface the store runs on. Spin's SQLite interface and
//! rusqlite both fit it, so the same store code runs in Wasm and in native tests.

use std::fmt;

/// One SQL value, the same shape as Spin's `sqlite` `value` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Integer(n)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A database failure. `busy` marks lock contention or a database that
/// cannot be reached: either passes, so callers may retry.
#[derive(Debug, Clone, PartialEq)]
pub struct DbError {
    pub message: String,
    pub busy: bool,
    /// The database could not be reached at all (Postgres down).
    pub unavailable: bool,
}

impl DbError {
    pub fn new(message: impl Into<String>) -> Self {
        DbError {
            message: message.into(),
            busy: false,
            unavailable: false,
        }
    }

    /// Contention that passes: a retry may succeed.
    pub fn busy(message: impl Into<String>) -> Self {
        DbError {
            busy: true,
            ..DbError::new(message)
        }
    }

    /// No database to talk to.
    pub fn unavailable(message: impl Into<String>) -> Self {
        DbError {
            busy: true,
            unavailable: true,
            ..DbError::new(message)
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

/// The result of one statement: column names and rows of values.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(move |values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// A borrowed row with access by column name.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    pub fn value(&self, column: &str) -> Result<&'a Value, DbError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
            .ok_or_else(|| DbError::new(format!("no column `{column}` in result")))
    }

    pub fn i64(&self, column: &str) -> Result<i64, DbError> {
        match self.value(column)? {
            Value::Integer(n) => Ok(*n),
            other => Err(DbError::new(format!(
                "column `{column}`: expected integer, got {other:?}"
            ))),
        }
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>, DbError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            other => Err(DbError::new(format!(
                "column `{column}`: expected integer or null, got {other:?}"
            ))),
        }
    }

    pub fn str(&self, column: &str) -> Result<&'a str, DbError> {
        match self.value(column)? {
            Value::Text(s) => Ok(s),
            other => Err(DbError::new(format!(
                "column `{column}`: expected text, got {other:?}"
            ))),
        }
    }

    pub fn opt_str(&self, column: &str) -> Result<Option<&'a str>, DbError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            other => Err(DbError::new(format!(
                "column `{column}`: expected text or null, got {other:?}"
            ))),
        }
    }
}

/// Which SQL the connection speaks. The store's statements are written once
/// with `?` placeholders; the few that differ (JSON functions, the schema
/// and its version) are chosen by dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection that runs one statement at a time.
pub trait Sql {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// On Postgres, the schema the store lives in (one per database label).
    fn schema(&self) -> Option<&str> {
        None
    }

    /// Runs a batch of statements without parameters (migrations).
    fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        for statement in split_statements(sql) {
            self.execute(statement, &[])?;
        }
        Ok(())
    }

    /// Opens what [`transaction`] runs in: a transaction that takes the
    /// write lock up front, or, inside a [`batch`], a savepoint.
    fn begin(&self) -> Result<(), DbError> {
        self.execute("BEGIN IMMEDIATE", &[]).map(drop)
    }

    /// [`Sql::begin`] for a write that touches only what belongs to
    /// `owners` (users). Where the engine has finer locks than one writer
    /// per store (Postgres), the transaction takes only those owners' write
    /// locks, so writes for other users go on beside it; a plain `begin`
    /// still excludes every one of them. On SQLite it is `begin`.
    fn begin_for(&self, owners: &[&str]) -> Result<(), DbError> {
        let _ = owners;
        self.begin()
    }

    fn commit(&self) -> Result<(), DbError> {
        self.execute("COMMIT", &[]).map(drop)
    }

    fn rollback(&self) {
        let _ = self.execute("ROLLBACK", &[]);
    }
}

/// A connection chosen at run time (`store::spin::open`) is one too.
impl<T: Sql + ?Sized> Sql for Box<T> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        (**self).execute(sql, params)
    }

    fn dialect(&self) -> Dialect {
        (**self).dialect()
    }

    fn schema(&self) -> Option<&str> {
        (**self).schema()
    }

    fn begin(&self) -> Result<(), DbError> {
        (**self).begin()
    }

    fn begin_for(&self, owners: &[&str]) -> Result<(), DbError> {
        (**self).begin_for(owners)
    }

    fn commit(&self) -> Result<(), DbError> {
        (**self).commit()
    }

    fn rollback(&self) {
        (**self).rollback()
    }
}

impl<T: Sql + ?Sized> Sql for &T {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        (**self).execute(sql, params)
    }

    fn dialect(&self) -> Dialect {
        (**self).dialect()
    }

    fn schema(&self) -> Option<&str> {
        (**self).schema()
    }

    fn begin(&self) -> Result<(), DbError> {
        (**self).begin()
    }

    fn begin_for(&self, owners: &[&str]) -> Result<(), DbError> {
        (**self).begin_for(owners)
    }

    fn commit(&self) -> Result<(), DbError> {
        (**self).commit()
    }

    fn rollback(&self) {
        (**self).rollback()
    }
}

/// The connection as the items of a [`batch`] see it. Each item already
/// runs in a savepoint of the batch's transaction, so a transaction the
/// item opens itself (every store's write does) is that savepoint and
/// costs no statement: two round trips less per item on Postgres. A
/// rollback inside the item is remembered, so an item that swallows its
/// own failed transaction and answers success anyway is caught.
struct Item<'a> {
    db: &'a dyn Sql,
    rolled_back: std::cell::Cell<bool>,
}

impl Sql for Item<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.db.execute(sql, params)
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn schema(&self) -> Option<&str> {
        self.db.schema()
    }

    fn begin(&self) -> Result<(), DbError> {
        Ok(())
    }

    fn commit(&self) -> Result<(), DbError> {
        Ok(())
    }

    fn rollback(&self) {
        self.rolled_back.set(true);
    }
}

/// Applies `items` in order in one transaction (one write lock, one
/// commit), each in a savepoint of its own. The first item that fails is
/// rolled back alone, what came before it is committed, and its index and
/// error are returned: a Kafka batch handler reports exactly that, and the
/// host commits the messages before it and delivers the rest again. When
/// the transaction itself cannot begin or commit, nothing is applied and
/// the failure is the first item's.
pub fn batch<T, E>(
    db: &dyn Sql,
    items: impl IntoIterator<Item = T>,
    mut apply: impl FnMut(&dyn Sql, T) -> Result<(), E>,
) -> Result<(), (usize, E)>
where
    E: From<DbError>,
{
    db.begin().map_err(|e| (0, e.into()))?;
    let undo = || {
        let _ = db.execute("ROLLBACK TO nested", &[]);
        let _ = db.execute("RELEASE nested", &[]);
    };
    let mut failed = None;
    for (index, item) in items.into_iter().enumerate() {
        if let Err(e) = db.execute("SAVEPOINT nested", &[]) {
            failed = Some((index, e.into()));
            break;
        }
        let inner = Item {
            db,
            rolled_back: std::cell::Cell::new(false),
        };
        let outcome = match apply(&inner, item) {
            // Its own transaction failed, yet it answers success: on
            // Postgres the transaction is aborted and a commit would
            // quietly drop the whole batch, so the item is undone instead.
            Ok(()) if inner.rolled_back.get() => Err(DbError::busy(
                "a write inside this message's handling was rolled back; it is retried",
            )
            .into()),
            Ok(()) => db.execute("RELEASE nested", &[]).map(drop).map_err(E::from),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            undo();
            failed = Some((index, e));
            break;
        }
    }
    if let Err(e) = db.commit() {
        db.rollback();
        return Err((0, e.into()));
    }
    failed.map_or(Ok(()), Err)
}

/// Splits a migration script on `;` at line ends. Migrations are ours and
/// never put a `;` at the end of a line inside a string or trigger body.
fn split_statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(";\n")
        .map(str::trim)
        .map(|s| s.trim_end_matches(';').trim())
        .filter(|s| !s.is_empty())
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT` (a savepoint inside a
/// [`batch`]); any error rolls everything back.
///
/// IMMEDIATE takes the write lock up front, so two writers serialise instead
/// of failing half way with SQLITE_BUSY on lock upgrade.
pub fn transaction<T, E>(db: &dyn Sql, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    db.begin()?;
    finish(db, f)
}

/// [`transaction`] for a write that touches only what belongs to `owners`
/// (see [`Sql::begin_for`]): on Postgres, writes for other users go on
/// beside it.
pub fn transaction_for<T, E>(
    db: &dyn Sql,
    owners: &[&str],
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    db.begin_for(owners)?;
    finish(db, f)
}

/// Runs `f` in the transaction just begun: commits what it did, or rolls
/// everything back.
fn finish<T, E>(db: &dyn Sql, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    match f() {
        Ok(value) => match db.commit() {
            Ok(()) => Ok(value),
            Err(e) => {
                db.rollback();
                Err(e.into())
            }
        },
        Err(e) => {
            db.rollback();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_migration_scripts_on_line_ending_semicolons() {
        let parts: Vec<_> =
            split_statements("CREATE TABLE a (x TEXT);\nCREATE INDEX i ON a(x);\n\n").collect();
        assert_eq!(
            parts,
            vec!["CREATE TABLE a (x TEXT)", "CREATE INDEX i ON a(x)"]
        );
    }
}
