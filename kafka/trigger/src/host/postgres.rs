//! `spin:postgres/postgres@4.0.0` as Spin 3.6 gives it to a component: the
//! address must be allowed by `allowed_outbound_hosts` (scheme `postgres`,
//! default port 5432), connections come from a pool per address (64
//! connections, 16 addresses), TLS unless `sslmode=disable`, and values map
//! as in Spin ([`values`]). Two things are deliberately stricter than Spin:
//! every wait is bounded (connect, a free pool slot), so a database that
//! is down fails a call in seconds instead of hanging it, and a connection
//! goes back to the pool rolled back, so a guest that trapped inside a
//! transaction never hands it to the next one.

mod values;

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::TryStreamExt;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use wasmtime::component::Resource;

use super::bindings::spin::spin::postgres::postgres::{
    self as pg, Column, DbError, Error, ParameterValue, QueryError, RowSet,
};
use super::HostState;

/// Connections kept per address (Spin's pool size).
const POOL_SIZE: usize = 64;
/// Addresses with a pool at once (Spin's cache size); the least recently
/// used pool goes first.
const POOLS_KEPT: usize = 16;
/// How long opening a connection, or waiting for a free one, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spin's limit on what one query may return (`MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 128 << 20;
/// Connections one instance may hold open at once (Spin's table size).
const MAX_OPEN_PER_INSTANCE: usize = 1024;
/// Run on a connection before it is reused: what deadpool's `Clean` runs
/// (Spin's recycling), after ending any transaction the last user left
/// open. `BEGIN; ROLLBACK` ends one without a word when there is none; a
/// bare `ROLLBACK` would make the server log a warning on every request.
/// (Left in a failed transaction, `BEGIN` fails, and the pool opens a new
/// connection instead.)
const RESET: &str = "BEGIN; ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
                     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// A connection a component opened: one pooled client for its lifetime.
pub struct Connection {
    client: Object,
}

/// The process's pools, one per address, shared by every component.
#[derive(Default)]
pub struct Pools {
    /// Most recently used last.
    pools: Mutex<Vec<(String, Pool)>>,
}

impl Pools {
    /// A pooled client for `address`.
    async fn client(&self, address: &str) -> anyhow::Result<Object> {
        let pool = self.pool(address)?;
        Ok(pool.get().await?)
    }

    fn pool(&self, address: &str) -> anyhow::Result<Pool> {
        let mut pools = self.pools.lock().expect("pools lock");
        if let Some(at) = pools.iter().position(|(a, _)| a == address) {
            let entry = pools.remove(at);
            let pool = entry.1.clone();
            pools.push(entry);
            return Ok(pool);
        }
        let pool = new_pool(address).context("establishing PostgreSQL connection pool")?;
        if pools.len() == POOLS_KEPT {
            pools.remove(0);
        }
        pools.push((address.to_owned(), pool.clone()));
        Ok(pool)
    }
}

fn new_pool(address: &str) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = address
        .parse()
        .context("parsing Postgres connection string")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Custom(RESET.to_owned()),
    };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        deadpool_postgres::Manager::from_config(config, tls()?, manager_config)
    };
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()?)
}

/// TLS with the system's trusted roots (as Spin's native-tls uses them).
pub fn tls() -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the store cannot use is skipped, as OpenSSL skips it.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A driver error worded as the driver Spin 3.6.3 links (tokio-postgres
/// 0.7.12) words it: its own message, then its cause after a colon. Later
/// versions leave the cause out of the message.
#[derive(Debug)]
pub struct DriverError(pub tokio_postgres::Error);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::error::Error::source(&self.0) {
            Some(cause) => write!(f, "{}: {cause}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// An error as Spin hands it to the guest (`{:?}` of an anyhow error),
/// without the host's stack backtrace, which is no business of the guest's.
fn guest_text(error: &anyhow::Error) -> String {
    let text = format!("{error:?}");
    match text.find("\n\nStack backtrace:") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn connection_failed(message: impl Into<String>) -> Error {
    Error::ConnectionFailed(message.into())
}

/// A failed statement: the server's structured error when it sent one.
fn query_failed(error: tokio_postgres::Error) -> Error {
    let as_text = format!("{error:?}");
    Error::QueryFailed(match error.as_db_error() {
        None => QueryError::Text(as_text),
        Some(db) => {
            let extras = [
                ("column", db.column()),
                ("constraint", db.constraint()),
                ("routine", db.routine()),
                ("hint", db.hint()),
                ("table", db.table()),
                ("datatype", db.datatype()),
                ("schema", db.schema()),
                ("file", db.file()),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned())))
            .chain(db.line().map(|line| ("line".to_owned(), line.to_string())))
            .chain(db.where_().map(|w| ("where_".to_owned(), w.to_owned())))
            .collect();
            QueryError::DbError(DbError {
                as_text,
                severity: db.severity().to_owned(),
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                extras,
            })
        }
    })
}

/// Whether a failed statement failed because of the database, not the
/// statement: the connection went away, the server is short of resources
/// or shutting down (SQLSTATE classes 08, 53, 57, 58).
fn server_trouble(error: &tokio_postgres::Error) -> bool {
    match error.as_db_error() {
        None => {
            error.is_closed()
                || std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(db) => ["08", "53", "57", "58"]
            .iter()
            .any(|class| db.code().code().starts_with(class)),
    }
}

type Params = Vec<Box<dyn ToSql + Send + Sync>>;

fn parameters(params: &[ParameterValue]) -> anyhow::Result<Params> {
    params.iter().map(values::parameter).collect()
}

impl HostState {
    /// Spin's check: every TCP host of the address must be allowed.
    // The error is the interface's own type, large as it is.
    #[allow(clippy::result_large_err)]
    fn postgres_allowed(&self, config: &tokio_postgres::Config) -> Result<(), Error> {
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let Host::Tcp(name) = host else {
                return Err(connection_failed(
                    "Unix sockets are not supported on WebAssembly",
                ));
            };
            // Spin pairs each host with the port at its index and checks a
            // host without one against the scheme's default port.
            let port = ports.get(i).copied();
            if !self.component.allowed_hosts.allows("postgres", name, port) {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                return Err(connection_failed(format!(
                    "address postgres://{name}{port} is not permitted"
                )));
            }
        }
        Ok(())
    }

    #[allow(clippy::result_large_err)]
    fn postgres_client(&self, connection: &Resource<Connection>) -> Result<&Object, Error> {
        self.table
            .get(connection)
            .map(|c| &c.client)
            .map_err(|_| connection_failed("no connection found"))
    }

    fn postgres_fault(&mut self, error: &tokio_postgres::Error) {
        if server_trouble(error) {
            self.fault(format!("Postgres: {error}"));
        }
    }
}

impl pg::Host for HostState {}

/// Distinct statements a pooled connection keeps prepared, at most; past
/// that its cache starts again (a guest sending ever-new SQL must not grow
/// the host's memory).
const PREPARED_PER_CONNECTION: usize = 256;

/// `statement` prepared on `client`, from the connection's cache when it
/// was prepared there before. Spin prepares each statement anew (two round
/// trips per statement); the cache makes a repeated one a single round
/// trip. What the guest sees is the same: preparing fails as executing an
/// unprepared statement would, and Postgres re-parses a cached statement
/// when `search_path` has changed since.
async fn prepared(
    client: &Object,
    statement: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if client.statement_cache.size() >= PREPARED_PER_CONNECTION {
        client.statement_cache.clear();
    }
    client.prepare_cached(statement).await
}

/// A cached statement whose result types changed under it (Postgres
/// re-parsed it for a new search_path): "cached plan must not change
/// result type".
fn stale(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
        && error.as_db_error().is_some_and(|db| {
            db.message()
                .contains("cached plan must not change result type")
        })
}

impl pg::HostConnection for HostState {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| connection_failed(DriverError(e).to_string()))?;
        self.postgres_allowed(&config)?;
        if self.postgres_open >= MAX_OPEN_PER_INSTANCE {
            return Err(connection_failed("too many connections"));
        }
        let client = match self.component.postgres.client(&address).await {
            Ok(client) => client,
            Err(e) => {
                self.fault(format!("connecting to Postgres: {e:#}"));
                return Err(connection_failed(guest_text(&e)));
            }
        };
        let resource = self
            .table
            .push(Connection { client })
            .map_err(|_| connection_failed("too many connections"))?;
        self.postgres_open += 1;
        Ok(resource)
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let values = params;
        let params = parameters(&values).map_err(|e| Error::BadParameter(guest_text(&e)))?;
        let client = self.postgres_client(&connection)?;
        let rows = match prepared(client, &statement).await {
            Ok(prepared) => client.query_raw(&prepared, params).await,
            Err(e) => Err(e),
        };
        let rows = match rows {
            Err(e) if stale(&e) => {
                // Prepared under another search_path, with other result
                // types: prepared anew, as Spin would have.
                client.statement_cache.remove(&statement, &[]);
                let params =
                    parameters(&values).map_err(|e| Error::BadParameter(guest_text(&e)))?;
                client.query_raw(statement.as_str(), params).await
            }
            other => other,
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                self.postgres_fault(&e);
                return Err(query_failed(e));
            }
        };
        let mut rows = pin!(rows);
        let mut columns = None;
        let mut out = Vec::new();
        let mut bytes = std::mem::size_of::<RowSet>();
        let read: anyhow::Result<()> = async {
            while let Some(row) = rows.try_next().await.map_err(DriverError)? {
                columns.get_or_insert_with(|| {
                    row.columns()
                        .iter()
                        .map(|c| Column {
                            name: c.name().to_owned(),
                            data_type: values::data_type(c.type_()),
                        })
                        .collect::<Vec<_>>()
                });
                let row = (0..row.len())
                    .map(|i| values::value(&row, i))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                bytes += row.iter().map(values::size_of).sum::<usize>();
                if bytes > MAX_RESULT_BYTES {
                    anyhow::bail!("query result exceeds limit of {MAX_RESULT_BYTES} bytes");
                }
                out.push(row);
            }
            Ok(())
        }
        .await;
        if let Err(e) = read {
            if let Some(DriverError(pg)) = e.downcast_ref::<DriverError>() {
                if server_trouble(pg) {
                    self.fault(format!("Postgres: {pg}"));
                }
            }
            return Err(Error::QueryFailed(QueryError::Text(guest_text(&e))));
        }
        Ok(RowSet {
            columns: columns.unwrap_or_default(),
            rows: out,
        })
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let params =
            parameters(&params).map_err(|e| Error::ValueConversionFailed(guest_text(&e)))?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.postgres_client(&connection)?;
        let done = match prepared(client, &statement).await {
            Ok(prepared) => client.execute(&prepared, &refs).await,
            Err(e) => Err(e),
        };
        let done = match done {
            Err(e) if stale(&e) => {
                client.statement_cache.remove(&statement, &[]);
                client.execute(statement.as_str(), &refs).await
            }
            other => other,
        };
        match done {
            Ok(n) => Ok(n),
            Err(e) => {
                self.postgres_fault(&e);
                Err(query_failed(e))
            }
        }
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.postgres_open = self.postgres_open.saturating_sub(1);
        Ok(())
    }
}

/// A connection of the host's own, outside the pools (the relay's, whose
/// lock lives as long as it does; the outbox commands'), with the same
/// connect bound and TLS as `spin:postgres`.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse().context("parsing the Postgres address")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let connecting = async {
        if config.get_ssl_mode() == SslMode::Disable {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, anyhow::Error>(client)
        } else {
            let (client, connection) = config.connect(tls()?).await?;
            tokio::spawn(connection);
            Ok(client)
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .context("connecting to Postgres timed out")?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement prepared under one search_path, run under another whose
    /// table has other column types: Postgres refuses the cached plan, and
    /// that refusal is recognised (and so prepared anew, as Spin would).
    #[test]
    fn a_statement_cached_under_another_search_path_is_recognised_as_stale() {
        let server = test_servers::postgres::Postgres::start();
        server.psql(
            "postgres",
            "CREATE SCHEMA a; CREATE TABLE a.t (x INT); CREATE SCHEMA b; CREATE TABLE b.t (x TEXT)",
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pools = Pools::default();
            let client = pools.client(&server.url("postgres")).await.unwrap();
            client.batch_execute("SET search_path TO a").await.unwrap();
            let statement = prepared(&client, "SELECT x FROM t").await.unwrap();
            client.query(&statement, &[]).await.unwrap();
            client.batch_execute("SET search_path TO b").await.unwrap();
            let statement = prepared(&client, "SELECT x FROM t").await.unwrap();
            let error = client.query(&statement, &[]).await.unwrap_err();
            assert!(stale(&error), "{error}");
            client.statement_cache.remove("SELECT x FROM t", &[]);
            let fresh = prepared(&client, "SELECT x FROM t").await.unwrap();
            client.query(&fresh, &[]).await.unwrap();
        });
    }

    /// What the next user of a pooled connection finds after one that
    /// left it idle, inside a transaction, or inside a failed one; and
    /// what the server logged meanwhile.
    #[test]
    fn a_reused_connection_is_rolled_back_and_the_server_logs_no_warning() {
        let server = test_servers::postgres::Postgres::start();
        server.psql("postgres", "CREATE TABLE t (x INT)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pools = Pools::default();
        let address = server.url("postgres");
        async fn backend(client: &Object) -> i32 {
            let row = client.query_one("SELECT pg_backend_pid()", &[]).await;
            row.unwrap().get(0)
        }
        rt.block_on(async {
            // Idle: reused as it is, the same backend, and nothing logged.
            let first = pools.client(&address).await.unwrap();
            let pid = backend(&first).await;
            drop(first);
            let again = pools.client(&address).await.unwrap();
            assert_eq!(
                backend(&again).await,
                pid,
                "the pool reuses its one connection"
            );
            drop(again);
            // Inside a transaction: what it wrote is rolled back.
            let writer = pools.client(&address).await.unwrap();
            writer
                .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
                .await
                .unwrap();
            drop(writer);
            let reader = pools.client(&address).await.unwrap();
            assert_eq!(backend(&reader).await, pid, "the writer's own connection");
            let n: i64 = reader
                .query_one("SELECT COUNT(*) FROM t", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "the abandoned insert was rolled back");
            reader.batch_execute("BEGIN; COMMIT").await.unwrap();
            drop(reader);
            // Inside a failed transaction: the next user still gets a
            // working connection.
            let failing = pools.client(&address).await.unwrap();
            failing.batch_execute("BEGIN").await.unwrap();
            failing.batch_execute("SELECT 1/0").await.unwrap_err();
            drop(failing);
            let next = pools.client(&address).await.unwrap();
            next.batch_execute("INSERT INTO t VALUES (2)")
                .await
                .unwrap();
        });
        let log = std::fs::read_to_string(server.data_dir().join("server.log")).unwrap();
        assert!(
            !log.contains("there is no transaction in progress"),
            "the server logged a warning for a reused connection:\n{log}"
        );
        assert_eq!(
            server
                .psql("postgres", "SELECT string_agg(x::text, ',') FROM t")
                .trim(),
            "2"
        );
    }

    #[test]
    fn a_server_that_never_answers_fails_the_open_in_bounded_time() {
        // Accepts connections and never says a word, like a hung server.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _held = std::thread::spawn(move || listener.incoming().collect::<Vec<_>>());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let pools = Pools::default();
        let started = std::time::Instant::now();
        let address = format!("host=127.0.0.1 port={port} user=x sslmode=disable");
        let error = rt.block_on(pools.client(&address)).map(drop).unwrap_err();
        let waited = started.elapsed();
        assert!(
            waited >= CONNECT_TIMEOUT - Duration::from_millis(500) && waited < CONNECT_TIMEOUT * 2,
            "waited {waited:?}: {error:#}"
        );
    }

    #[test]
    fn a_pool_is_kept_per_address_and_the_least_recent_goes_first() {
        let pools = Pools::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..=POOLS_KEPT {
                pools
                    .pool(&format!("host=127.0.0.1 port={} user=x", 40000 + i))
                    .unwrap();
            }
            pools.pool("host=127.0.0.1 port=40001 user=x").unwrap();
        });
        let kept: Vec<String> = pools
            .pools
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _)| a.clone())
            .collect();
        assert_eq!(kept.len(), POOLS_KEPT);
        assert!(!kept.contains(&"host=127.0.0.1 port=40000 user=x".to_owned()));
        assert_eq!(kept.last().unwrap(), "host=127.0.0.1 port=40001 user=x");
        let error = pools.pool("postgres://[bad").unwrap_err();
        assert!(format!("{error:#}").contains("parsing Postgres connection string"));
    }
}
