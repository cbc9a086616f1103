//! `fermyon:spin/key-value@2.0.0` over the two stores Spin's runtime config
//! offers: Spin's local SQLite layout (table `spin_key_value(store, key,
//! value)`, shared with Spin's files) and Redis (`type = "redis"`, the
//! store for several replicas). As in Spin, a Redis store is the whole
//! Redis database: every label pointing at one URL sees the same keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::OnceCell;
use wasmtime::component::Resource;

use super::bindings::spin::fermyon::spin::key_value::{self, Error};
use super::HostState;
use crate::runtime_config::{KeyValueLocation, Location};

/// Spin's limit on what one call may return (`MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 128 << 20;
/// How long connecting to Redis, or one command, may take: a server that
/// is down fails the call in seconds instead of hanging it.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// One key-value store (several labels may share one SQLite file).
pub struct StoreDb {
    label: String,
    backend: Backend,
}

enum Backend {
    Sqlite(Mutex<rusqlite::Connection>),
    /// Connected on first use, as Spin does, so a Redis that starts after
    /// the app is no error.
    Redis {
        client: redis::Client,
        connection: OnceCell<ConnectionManager>,
    },
}

fn other(error: impl std::fmt::Display) -> Error {
    Error::Other(error.to_string())
}

/// One Redis call, connecting included, given up after [`REDIS_TIMEOUT`]
/// (the client's own timeouts apply per attempt, and it retries).
async fn bounded<T>(call: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Other(format!(
                "Redis did not answer within {} s",
                REDIS_TIMEOUT.as_secs()
            )))
        })
}

fn within_limit(bytes: usize) -> Result<(), Error> {
    if bytes > MAX_RESULT_BYTES {
        return Err(Error::Other(format!(
            "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
        )));
    }
    Ok(())
}

impl StoreDb {
    pub fn open(label: &str, location: &KeyValueLocation) -> anyhow::Result<StoreDb> {
        let backend = match location {
            KeyValueLocation::Local(location) => {
                Backend::Sqlite(Mutex::new(open_sqlite(location)?))
            }
            KeyValueLocation::Redis { url } => {
                let url = redis::parse_redis_url(url).ok_or_else(|| {
                    anyhow::anyhow!("Invalid Redis URL in [key_value_store.{label}]")
                })?;
                Backend::Redis {
                    client: redis::Client::open(url)?,
                    connection: OnceCell::new(),
                }
            }
        };
        Ok(StoreDb {
            label: label.to_owned(),
            backend,
        })
    }

    /// Runs `f` on the SQLite connection, off the async threads.
    fn with_sqlite<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, Error>> {
        let db = self.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let Backend::Sqlite(conn) = &db.backend else {
                    unreachable!("with_sqlite is called for SQLite stores only")
                };
                let conn = conn.lock().expect("kv lock");
                f(&conn, &db.label)
            })
            .await
            .map_err(other)?
            .map_err(other)
        }
    }

    async fn redis(
        client: &redis::Client,
        connection: &OnceCell<ConnectionManager>,
    ) -> Result<ConnectionManager, Error> {
        // The config is made only when connecting, not on every call.
        connection
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT)
                    .set_number_of_retries(1);
                client.get_connection_manager_with_config(config)
            })
            .await
            .cloned()
            .map_err(other)
    }

    pub async fn get(self: &Arc<Self>, key: String) -> Result<Option<Vec<u8>>, Error> {
        match &self.backend {
            Backend::Sqlite(_) => {
                self.with_sqlite(move |conn, label| {
                    use rusqlite::OptionalExtension;
                    conn.query_row(
                        "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                        rusqlite::params![label, key],
                        |row| row.get::<_, Vec<u8>>(0),
                    )
                    .optional()
                })
                .await
            }
            Backend::Redis { client, connection } => {
                bounded(async {
                    let mut redis = Self::redis(client, connection).await?;
                    let value: Option<Vec<u8>> = redis.get(key).await.map_err(other)?;
                    within_limit(value.as_ref().map_or(0, Vec::len))?;
                    Ok(value)
                })
                .await
            }
        }
    }

    /// Sets a value (also outside any component: `spin up --key-value`).
    pub async fn set_now(self: &Arc<Self>, key: String, value: Vec<u8>) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(_) => {
                self.with_sqlite(move |conn, label| {
                    conn.execute(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(store, key) DO UPDATE SET value = ?3",
                        rusqlite::params![label, key, value],
                    )
                    .map(drop)
                })
                .await
            }
            Backend::Redis { client, connection } => {
                bounded(async {
                    let mut redis = Self::redis(client, connection).await?;
                    redis.set(key, value).await.map_err(other)
                })
                .await
            }
        }
    }

    pub async fn delete(self: &Arc<Self>, key: String) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(_) => {
                self.with_sqlite(move |conn, label| {
                    conn.execute(
                        "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                        rusqlite::params![label, key],
                    )
                    .map(drop)
                })
                .await
            }
            Backend::Redis { client, connection } => {
                bounded(async {
                    let mut redis = Self::redis(client, connection).await?;
                    redis.del(key).await.map_err(other)
                })
                .await
            }
        }
    }

    pub async fn exists(self: &Arc<Self>, key: String) -> Result<bool, Error> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(self.get(key).await?.is_some()),
            Backend::Redis { client, connection } => {
                bounded(async {
                    let mut redis = Self::redis(client, connection).await?;
                    redis.exists(key).await.map_err(other)
                })
                .await
            }
        }
    }

    pub async fn keys(self: &Arc<Self>) -> Result<Vec<String>, Error> {
        match &self.backend {
            Backend::Sqlite(_) => {
                self.with_sqlite(move |conn, label| {
                    let mut stmt =
                        conn.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                    let keys = stmt.query_map([label], |row| row.get::<_, String>(0))?;
                    keys.collect()
                })
                .await
            }
            Backend::Redis { client, connection } => {
                bounded(async {
                    let mut redis = Self::redis(client, connection).await?;
                    let keys: Vec<String> = redis.keys("*").await.map_err(other)?;
                    within_limit(
                        keys.iter()
                            .map(|k| std::mem::size_of::<String>() + k.len())
                            .sum(),
                    )?;
                    Ok(keys)
                })
                .await
            }
        }
    }
}

fn open_sqlite(location: &Location) -> anyhow::Result<rusqlite::Connection> {
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
    Ok(conn)
}

impl HostState {
    /// A key-value failure is the store's, never the guest's: record it.
    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(Error::Other(e)) = &result {
            self.fault(format!("key-value store: {e}"));
        }
        result
    }

    fn db(&self, store: &Resource<Store>) -> Result<Arc<StoreDb>, Error> {
        self.table.get(store).map(|s| s.db.clone()).map_err(other)
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
        self.table.push(Store { db }).map_err(other)
    }

    async fn get(&mut self, store: Resource<Store>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let result = self.db(&store)?.get(key).await;
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
        let result = self.db(&store)?.delete(key).await;
        self.note(result)
    }

    async fn exists(&mut self, store: Resource<Store>, key: String) -> Result<bool, Error> {
        let result = self.db(&store)?.exists(key).await;
        self.note(result)
    }

    async fn get_keys(&mut self, store: Resource<Store>) -> Result<Vec<String>, Error> {
        let result = self.db(&store)?.keys().await;
        self.note(result)
    }

    async fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_at(port: u16) -> Arc<StoreDb> {
        let url = format!("redis://127.0.0.1:{port}");
        Arc::new(StoreDb::open("shared", &KeyValueLocation::Redis { url }).unwrap())
    }

    #[test]
    fn a_redis_that_is_down_or_hung_fails_the_call_in_bounded_time() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = rt.block_on(redis_at(port).get("k".into())).unwrap_err();
        assert!(matches!(error, Error::Other(_)), "{error:?}");
        // Accepts and never answers.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = hung.local_addr().unwrap().port();
        let _held = std::thread::spawn(move || hung.incoming().collect::<Vec<_>>());
        let started = std::time::Instant::now();
        let error = rt.block_on(redis_at(port).set_now("k".into(), b"v".to_vec()));
        let waited = started.elapsed();
        assert!(
            matches!(error, Err(Error::Other(_)))
                && waited < REDIS_TIMEOUT + Duration::from_secs(2),
            "waited {waited:?}: {error:?}"
        );
    }

    #[test]
    fn a_redis_url_that_is_not_one_stops_the_start() {
        let bad = KeyValueLocation::Redis {
            url: "http://cache:6379".into(),
        };
        let error = StoreDb::open("shared", &bad).err().unwrap();
        assert!(error.to_string().contains("Invalid Redis URL"), "{error}");
    }
}
