//! The engines the store tests run on: SQLite in memory, and a private
//! PostgreSQL server per test (one fresh database, the store's schema).
//! The services' store crates include this file too (`#[path]`): one set
//! of engines for every store.

#![allow(dead_code)]

use std::sync::Arc;

use test_servers::postgres::Postgres;
use todo_domain::store::native::NativeDb;
use todo_domain::store::native_pg::NativePg;
use todo_domain::store::sql::{DbError, Dialect, Rows, Sql, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A fresh database of `engine`, its server (if any) kept alive with it.
pub struct TestDb {
    db: Box<dyn Sql>,
    server: Option<Arc<Postgres>>,
}

impl TestDb {
    /// The Postgres server's address (None on SQLite).
    pub fn postgres_url(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.url("postgres"))
    }

    /// Another database beside this one: on Postgres the schema of
    /// `label` on the same server (as the services share one), on SQLite
    /// a fresh file in memory.
    pub fn sibling(&self, label: &str) -> TestDb {
        match &self.server {
            None => db(Engine::Sqlite),
            Some(server) => TestDb {
                db: Box::new(NativePg::connect(&server.url("postgres"), label).unwrap()),
                server: Some(server.clone()),
            },
        }
    }
}

impl Sql for TestDb {
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
        self.db.begin()
    }

    fn commit(&self) -> Result<(), DbError> {
        self.db.commit()
    }

    fn rollback(&self) {
        self.db.rollback()
    }
}

pub fn db(engine: Engine) -> TestDb {
    match engine {
        Engine::Sqlite => TestDb {
            db: Box::new(NativeDb::open_in_memory().unwrap()),
            server: None,
        },
        Engine::Postgres => {
            let server = Arc::new(Postgres::start());
            let db = NativePg::connect(&server.url("postgres"), "default").unwrap();
            // What the store's first migration does, for tests that make
            // their own tables.
            db.execute("CREATE SCHEMA IF NOT EXISTS todo_default", &[])
                .unwrap();
            TestDb {
                db: Box::new(db),
                server: Some(server),
            }
        }
    }
}

/// Each named test, once per engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Engine::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Engine::Postgres) } )*
        }
    };
}
