//! `trigger-kafka outbox list-dead | requeue`: the operator's way out when
//! the relay marked rows dead (a refusal it took for final, e.g. a message
//! too large before the broker's limit was raised). Requeueing clears the
//! mark; the running relay publishes the rows on its next poll. A requeued
//! row goes out after newer rows of its key that were already sent:
//! consumers deduplicate by `event_id` and order by the task's `version`.
//!
//! Where the outbox is comes from the app as `up` sees it: with
//! `outbox_store = "postgres"` (the `store` variable) the label's schema
//! in the Postgres at `outbox_postgres_url`, else its SQLite file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::runtime_config::{Location, RuntimeConfig, StateDir};

/// Which outbox: the app's manifest, runtime config and state directory
/// locate its SQLite database exactly as `up` does.
#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub app: crate::manifest::AppFile,
    /// Spin runtime configuration file (where the SQLite databases live).
    #[arg(long = "runtime-config-file", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Application state directory (default: .spin beside spin.toml).
    #[arg(long = "state-dir")]
    pub state_dir: Option<String>,
    /// The database label whose outbox to read.
    #[arg(long, default_value = "default")]
    pub database: String,
}

#[derive(Debug, clap::Args)]
pub struct OutboxRequeueArgs {
    #[command(flatten)]
    pub outbox: OutboxArgs,
    /// The rows to requeue, by seq (as `list-dead` shows).
    #[arg(long = "seq", required_unless_present = "all", conflicts_with = "all")]
    pub seqs: Vec<i64>,
    /// Requeue every dead row.
    #[arg(long)]
    pub all: bool,
}

/// A dead outbox row, as `list-dead` shows it.
#[derive(Debug, PartialEq)]
pub struct DeadRow {
    pub seq: i64,
    pub topic: String,
    pub key: String,
    pub attempts: i64,
    pub dead_ms: i64,
    pub last_error: String,
}

/// An outbox the commands work on.
enum Outbox {
    Sqlite(rusqlite::Connection),
    /// The label's schema in a Postgres the replicas share.
    Postgres {
        url: String,
        schema: String,
    },
}

/// Finds the outbox `args` names as `up` would: in Postgres when the app's
/// Kafka settings (with its variables) put the outboxes there.
fn locate(args: &OutboxArgs) -> Result<Outbox> {
    let app = crate::manifest::load(&args.app.path())?;
    if !app.kafka_settings.is_empty() {
        let resolver = crate::variables::Resolver::from_env(&app)?;
        let settings =
            crate::kafka_client::KafkaSettings::from_app(&app.kafka_settings, &resolver)?;
        if let Some(postgres) = settings.outbox_postgres {
            return Ok(Outbox::Postgres {
                url: postgres.url,
                schema: format!("todo_{}", args.database),
            });
        }
    }
    open(args).map(Outbox::Sqlite)
}

/// Runs `f` on a connection to the Postgres outbox (the relay's kind).
fn on_postgres<T>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T>,
) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let client = crate::host::postgres::connect(url)
                .await
                .context("cannot reach the Postgres store")?;
            f(&client).await
        })
}

/// Dead rows of a Postgres outbox, oldest first (none before a component
/// has made the store).
pub fn dead_rows_postgres(url: &str, schema: &str) -> Result<Vec<DeadRow>> {
    on_postgres(url, async |client| {
        let made: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.outbox")],
            )
            .await?
            .get(0);
        if !made {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT seq, topic, msg_key, attempts, dead_ms, COALESCE(last_error, '')
                     FROM {schema}.outbox WHERE dead_ms IS NOT NULL AND sent_ms IS NULL ORDER BY seq"
                ),
                &[],
            )
            .await
            .with_context(|| format!("reading {schema}.outbox"))?;
        Ok(rows
            .iter()
            .map(|r| DeadRow {
                seq: r.get(0),
                topic: r.get(1),
                key: r.get(2),
                attempts: r.get(3),
                dead_ms: r.get(4),
                last_error: r.get(5),
            })
            .collect())
    })
}

/// [`requeue`] on a Postgres outbox, in one transaction.
fn requeue_postgres(url: &str, schema: &str, seqs: Option<&[i64]>) -> Result<usize> {
    on_postgres(url, async |client| {
        let sql = format!(
            "UPDATE {schema}.outbox SET dead_ms = NULL, last_error = 'requeued after: ' || COALESCE(last_error, '')
             WHERE dead_ms IS NOT NULL AND sent_ms IS NULL"
        );
        client.batch_execute("BEGIN").await?;
        let done = async {
            match seqs {
                None => Ok(client.execute(&sql, &[]).await? as usize),
                Some(seqs) => {
                    let mut count = 0;
                    for seq in seqs {
                        let n = client.execute(&format!("{sql} AND seq = $1"), &[seq]).await?;
                        if n == 0 {
                            bail!("outbox row {seq} is not dead (or does not exist); nothing was requeued");
                        }
                        count += n as usize;
                    }
                    Ok(count)
                }
            }
        }
        .await;
        match done {
            Ok(count) => {
                client.batch_execute("COMMIT").await?;
                Ok(count)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    })
}

/// Opens the SQLite outbox database `args` names, as `up` would find it.
fn open(args: &OutboxArgs) -> Result<rusqlite::Connection> {
    // The app directory exactly as `up` finds it (the default state dir).
    let app = crate::manifest::load(&args.app.path())?;
    let cwd = std::env::current_dir()?;
    let config = RuntimeConfig::load(
        args.runtime_config_file.as_deref(),
        Some(&app.dir),
        StateDir::from_flag(args.state_dir.as_deref()),
        StateDir::Unset,
        &cwd,
    )?;
    let path = match config.sqlite.get(&args.database) {
        Some(Location::File(path)) => path.clone(),
        Some(Location::InMemory) => bail!(
            "database `{}` is in memory in this runtime config: it has no outbox to inspect",
            args.database
        ),
        None => bail!(
            "no SQLite database `{}` in the runtime config; known: {}",
            args.database,
            config.sqlite.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    if !path.exists() {
        bail!("{} does not exist (has the app run?)", path.display());
    }
    let conn = rusqlite::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Dead rows, oldest first (none when the relay never ran on this outbox).
pub fn dead_rows(conn: &rusqlite::Connection) -> Result<Vec<DeadRow>> {
    let relayed: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'dead_ms'",
        [],
        |r| r.get(0),
    )?;
    if relayed == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT seq, topic, msg_key, attempts, dead_ms, COALESCE(last_error, '')
         FROM outbox WHERE dead_ms IS NOT NULL AND sent_ms IS NULL ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DeadRow {
                seq: r.get(0)?,
                topic: r.get(1)?,
                key: r.get(2)?,
                attempts: r.get(3)?,
                dead_ms: r.get(4)?,
                last_error: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Clears the dead mark of `seqs` (every dead row when `None`); returns
/// how many rows went back in line.
pub fn requeue(conn: &rusqlite::Connection, seqs: Option<&[i64]>) -> Result<usize> {
    let tx = conn.unchecked_transaction()?;
    let mut count = 0;
    let sql = "UPDATE outbox SET dead_ms = NULL, last_error = 'requeued after: ' || COALESCE(last_error, '')
               WHERE dead_ms IS NOT NULL AND sent_ms IS NULL";
    match seqs {
        None => count += tx.execute(sql, [])?,
        Some(seqs) => {
            for seq in seqs {
                let n = tx.execute(&format!("{sql} AND seq = ?1"), [seq])?;
                if n == 0 {
                    bail!("outbox row {seq} is not dead (or does not exist); nothing was requeued");
                }
                count += n;
            }
        }
    }
    tx.commit()?;
    Ok(count)
}

pub fn list_dead(args: &OutboxArgs) -> Result<()> {
    let rows = match locate(args)? {
        Outbox::Sqlite(conn) => dead_rows(&conn)?,
        Outbox::Postgres { url, schema } => dead_rows_postgres(&url, &schema)?,
    };
    if rows.is_empty() {
        println!("no dead outbox rows in `{}`", args.database);
        return Ok(());
    }
    println!("SEQ\tTOPIC\tKEY\tATTEMPTS\tDEAD SINCE\tLAST ERROR");
    for row in &rows {
        let since = chrono::DateTime::from_timestamp_millis(row.dead_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        println!(
            "{}\t{}\t{}\t{}\t{since}\t{}",
            row.seq, row.topic, row.key, row.attempts, row.last_error
        );
    }
    println!(
        "{} dead row(s); `trigger-kafka outbox requeue --seq N` (or --all) puts them back in line",
        rows.len()
    );
    Ok(())
}

pub fn requeue_command(args: &OutboxRequeueArgs) -> Result<()> {
    let seqs = (!args.all).then_some(args.seqs.as_slice());
    let count = match locate(&args.outbox)? {
        Outbox::Sqlite(conn) => requeue(&conn, seqs)?,
        Outbox::Postgres { url, schema } => requeue_postgres(&url, &schema, seqs)?,
    };
    println!(
        "requeued {count} row(s) of `{}`; the running relay publishes them on its next poll",
        args.outbox.database
    );
    Ok(())
}
