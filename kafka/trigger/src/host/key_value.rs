//! `fermyon:spin/key-value@2.0.0` over Spin's SQLite key-value layout
//! (table `spin_key_value(store, key, value)`), so Spin and this host share
//! the same stores.

use std::sync::{Arc, Mutex};

use wasmtime::component::Resource;

use super::bindings::spin::fermyon::spin::key_value::{self, Error};
use super::HostState;
use crate::runtime_config::Location;

/// One key-value database file (several labels may share one file).
pub struct StoreDb {
    label: String,
    conn: Mutex<rusqlite::Connection>,
}

impl StoreDb {
    pub fn open(label: &str, location: &Location) -> anyhow::Result<StoreDb> {
        let conn = match location {
            Location::File(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                rusqlite::Connection::open(path)?
            }
            Location::InMemory => rusqlite::Connection::open_in_memory()?,
        };
        conn.busy_timeout(super::sqlite::BUSY_TIMEOUT)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
            [],
        )?;
        Ok(StoreDb {
            label: label.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, Error>> {
        let db = self.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = db.conn.lock().expect("kv lock");
                f(&conn, &db.label)
            })
            .await
            .map_err(|e| Error::Other(e.to_string()))?
            .map_err(|e| Error::Other(e.to_string()))
        }
    }
}

impl HostState {
    /// A key-value failure is the store's, never the guest's: record it.
    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(Error::Other(e)) = &result {
            self.fault(format!("key-value store: {e}"));
        }
        result
    }
}

impl StoreDb {
    /// Sets a value outside any component (`spin up --key-value`).
    pub async fn set_now(self: &Arc<Self>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.with(move |conn, label| {
            conn.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = ?3",
                rusqlite::params![label, key, value],
            )
            .map(drop)
        })
        .await
    }
}

/// The `store` resource.
pub struct Store {
    db: Arc<StoreDb>,
}

impl key_value::Host for HostState {}

impl key_value::HostStore for HostState {
    async fn open(&mut self, label: String) -> Result<Resource<Store>, Error> {
        let Some(db) = self.component.key_value.get(&label).cloned() else {
            return Err(Error::AccessDenied);
        };
        self.table
            .push(Store { db })
            .map_err(|e| Error::Other(e.to_string()))
    }

    async fn get(&mut self, store: Resource<Store>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let db = self.db(&store)?;
        let result = db
            .with(move |conn, label| {
                use rusqlite::OptionalExtension;
                conn.query_row(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    rusqlite::params![label, key],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .optional()
            })
            .await;
        self.note(result)
    }

    async fn set(
        &mut self,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let result = self.db(&store)?.set_now(key, value).await;
        self.note(result)
    }

    async fn delete(&mut self, store: Resource<Store>, key: String) -> Result<(), Error> {
        let db = self.db(&store)?;
        let result = db
            .with(move |conn, label| {
                conn.execute(
                    "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    rusqlite::params![label, key],
                )
                .map(drop)
            })
            .await;
        self.note(result)
    }

    async fn exists(&mut self, store: Resource<Store>, key: String) -> Result<bool, Error> {
        Ok(self.get(store, key).await?.is_some())
    }

    async fn get_keys(&mut self, store: Resource<Store>) -> Result<Vec<String>, Error> {
        let db = self.db(&store)?;
        let result = db
            .with(move |conn, label| {
                let mut stmt =
                    conn.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                let keys = stmt.query_map([label], |row| row.get::<_, String>(0))?;
                keys.collect()
            })
            .await;
        self.note(result)
    }

    async fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl HostState {
    fn db(&self, store: &Resource<Store>) -> Result<Arc<StoreDb>, Error> {
        self.table
            .get(store)
            .map(|s| s.db.clone())
            .map_err(|e| Error::Other(e.to_string()))
    }
}
