//! The relay's outbox in Postgres (`store = "postgres"`): database label
//! `x` is schema `todo_x`, the convention of the components' SQL seam
//! (`todo_domain::store::postgres::schema_for`). Every replica runs a
//! relay for it, and one at a time publishes: the one holding the
//! schema's session advisory lock. The others stand by and try again each
//! second; Postgres drops the lock with its holder's connection (a killed
//! or partitioned replica), so another takes over within about a second
//! of the server noticing. A takeover can publish again what the last
//! holder sent but had not yet recorded: at least once, as after any
//! crash, and the consumers are idempotent.
//!
//! Rows keep their order: components write the outbox under the store's
//! write lock, so `seq` (an identity) is commit order, and only the lock
//! holder reads it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::store::{Counts, Marks};
use super::{Row, PER_KEY};

/// How often a standby relay tries for the lock.
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);

pub struct PgOutbox {
    url: String,
    schema: String,
    client: Option<Client>,
    /// This relay holds the schema's relay lock on `client`.
    leader: bool,
    /// The outbox table exists (a component has made the store).
    table: bool,
    last_try: Option<Instant>,
}

impl PgOutbox {
    pub fn new(url: &str, label: &str) -> PgOutbox {
        PgOutbox {
            url: url.to_owned(),
            schema: format!("todo_{label}"),
            client: None,
            leader: false,
            table: false,
            last_try: None,
        }
    }

    /// Whether this relay publishes now: connected, holding the lock, and
    /// the table made. A standby asks at most once a second.
    pub async fn ready(&mut self) -> Result<bool> {
        if self.leader && self.table {
            return Ok(true);
        }
        if self
            .last_try
            .is_some_and(|at| at.elapsed() < TAKEOVER_EVERY)
        {
            return Ok(false);
        }
        self.last_try = Some(Instant::now());
        let result = self.take_over().await;
        self.keep(result)
    }

    async fn take_over(&mut self) -> Result<bool> {
        if self.client.is_none() {
            self.client = Some(crate::host::postgres::connect(&self.url).await?);
        }
        let client = self.client.as_ref().expect("connected");
        if !self.leader {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext('trigger-kafka relay'), hashtext($1))",
                    &[&self.schema],
                )
                .await?;
            self.leader = row.get(0);
            if !self.leader {
                return Ok(false);
            }
            tracing::info!(schema = %self.schema, "this relay publishes the outbox (it holds the relay lock)");
        }
        let row = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{}.outbox", self.schema)],
            )
            .await?;
        self.table = row.get(0);
        Ok(self.table)
    }

    /// A failed call drops the connection, and with it the lock: the next
    /// call reconnects and competes for the lock again.
    fn keep<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            if self.leader {
                tracing::warn!(schema = %self.schema, "this relay lost its Postgres connection and the relay lock");
            }
            self.client = None;
            self.leader = false;
            self.table = false;
        }
        result
    }

    fn client(&self) -> Result<&Client> {
        match (&self.client, self.leader) {
            (Some(client), true) => Ok(client),
            _ => anyhow::bail!("this relay does not hold the relay lock"),
        }
    }

    pub async fn prune(&mut self, before_ms: i64) -> Result<usize> {
        let result = async {
            let statement = format!(
                "DELETE FROM {}.outbox WHERE seq IN
                 (SELECT seq FROM {0}.outbox WHERE sent_ms IS NOT NULL AND sent_ms < $1 LIMIT 2000)",
                self.schema
            );
            let mut total = 0;
            loop {
                let n = self.client()?.execute(&statement, &[&before_ms]).await? as usize;
                total += n;
                if n < 2000 {
                    return Ok::<_, anyhow::Error>(total);
                }
            }
        }
        .await;
        self.keep(result)
    }

    pub async fn counts(&mut self) -> Result<Counts> {
        let statement = format!(
            "SELECT COUNT(*) FILTER (WHERE dead_ms IS NULL),
                    COUNT(*) FILTER (WHERE dead_ms IS NOT NULL),
                    MIN(created_ms) FILTER (WHERE dead_ms IS NULL)
             FROM {}.outbox WHERE sent_ms IS NULL",
            self.schema
        );
        let result = async {
            let row = self.client()?.query_one(&statement, &[]).await?;
            Ok::<_, anyhow::Error>(Counts {
                backlog: row.get(0),
                dead: row.get(1),
                oldest_ms: row.get(2),
            })
        }
        .await
        .context("counting the outbox");
        self.keep(result)
    }

    /// The same choice as on SQLite: every key's oldest rows in turn.
    pub async fn due_rows(&mut self, limit: i64, in_flight: Vec<i64>) -> Result<Vec<Row>> {
        let statement = format!(
            "WITH due AS (
                 SELECT seq, ROW_NUMBER() OVER (PARTITION BY msg_key ORDER BY seq) AS nth
                 FROM {0}.outbox
                 WHERE sent_ms IS NULL AND dead_ms IS NULL AND seq <> ALL($3))
             SELECT o.seq, o.topic, o.msg_key, o.payload, o.headers, o.created_ms
             FROM due JOIN {0}.outbox o ON o.seq = due.seq
             WHERE due.nth <= $1 ORDER BY due.nth, due.seq LIMIT $2",
            self.schema
        );
        let result = async {
            let rows = self
                .client()?
                .query(&statement, &[&PER_KEY, &limit, &in_flight])
                .await?;
            Ok::<_, anyhow::Error>(
                rows.iter()
                    .map(|r| Row {
                        seq: r.get(0),
                        topic: r.get(1),
                        key: r.get(2),
                        payload: r.get(3),
                        headers: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or_default(),
                        created_ms: r.get(5),
                    })
                    .collect(),
            )
        }
        .await
        .context("reading the outbox");
        self.keep(result)
    }

    pub async fn mark(&mut self, marks: Marks) -> Result<()> {
        let schema = self.schema.clone();
        let result = async {
            let client = self.client()?;
            // One statement per kind of mark, whatever the batch size, and
            // only the kinds there are: usually just `sent`, one round trip
            // on its own (a statement is atomic), no transaction around it.
            let (dead, dead_errors): (Vec<i64>, Vec<String>) = marks.dead.into_iter().unzip();
            let (retry, retry_errors): (Vec<i64>, Vec<String>) = marks.retry.into_iter().unzip();
            let kinds = [&marks.sent, &dead, &retry]
                .iter()
                .filter(|seqs| !seqs.is_empty())
                .count();
            if kinds > 1 {
                client.batch_execute("BEGIN").await?;
            }
            let marked = async {
                if !marks.sent.is_empty() {
                    client
                        .execute(
                            &format!("UPDATE {schema}.outbox SET sent_ms = $1 WHERE seq = ANY($2)"),
                            &[&marks.acked_ms, &marks.sent],
                        )
                        .await?;
                }
                if !dead.is_empty() {
                    client
                        .execute(
                            &format!(
                                "UPDATE {schema}.outbox o SET dead_ms = $1, attempts = o.attempts + 1, last_error = m.error
                                 FROM unnest($2::bigint[], $3::text[]) AS m(seq, error) WHERE o.seq = m.seq"
                            ),
                            &[&marks.acked_ms, &dead, &dead_errors],
                        )
                        .await?;
                }
                if !retry.is_empty() {
                    client
                        .execute(
                            &format!(
                                "UPDATE {schema}.outbox o SET attempts = o.attempts + 1, last_error = m.error
                                 FROM unnest($1::bigint[], $2::text[]) AS m(seq, error) WHERE o.seq = m.seq"
                            ),
                            &[&retry, &retry_errors],
                        )
                        .await?;
                }
                Ok::<_, tokio_postgres::Error>(())
            }
            .await;
            match marked {
                Ok(()) if kinds > 1 => client.batch_execute("COMMIT").await?,
                Ok(()) => {}
                Err(e) => {
                    if kinds > 1 {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    return Err(e.into());
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await
        .context("marking outbox rows");
        self.keep(result)
    }
}
