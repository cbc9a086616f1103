//! The outbox relay: publishes the rows components write to an `outbox`
//! table (layout in `components/domain/src/outbox.rs`) in `seq` order with
//! an idempotent producer, and marks each row sent once the broker has
//! acknowledged it. While the broker is down, rows wait in SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::host::sqlite::Database;
use crate::metrics::Metrics;

struct Row {
    seq: i64,
    topic: String,
    key: String,
    payload: String,
    headers: Vec<(String, String)>,
    created_ms: i64,
}

pub struct Relay {
    pub db: Arc<Database>,
    pub producer: FutureProducer,
    pub metrics: Arc<Metrics>,
    pub batch_size: usize,
    pub poll_interval: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Relay {
    /// Runs until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let conn = match self.connect().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(database = %self.db.label, error = %format!("{e:#}"), "outbox relay cannot open its database");
                return;
            }
        };
        let conn = Arc::new(std::sync::Mutex::new(conn));
        tracing::info!(database = %self.db.label, "outbox relay started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            // While the broker is down a batch waits for it; shutdown must
            // not. Rows of an interrupted batch stay unsent and go out on
            // the next start.
            let published = tokio::select! {
                published = self.publish_batch(&conn) => published,
                _ = shutdown.changed() => break,
            };
            match published {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(database = %self.db.label, error = %format!("{e:#}"), "outbox relay batch failed; retrying")
                }
            }
            tokio::select! {
                _ = self.db.changed.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(database = %self.db.label, "outbox relay stopped");
    }

    async fn connect(&self) -> Result<rusqlite::Connection> {
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || db.connect()).await??)
    }

    async fn blocking<T: Send + 'static>(
        conn: &Arc<std::sync::Mutex<rusqlite::Connection>>,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = conn.clone();
        Ok(
            tokio::task::spawn_blocking(move || f(&conn.lock().expect("relay connection")))
                .await??,
        )
    }

    /// Publishes up to one batch; returns how many rows were acknowledged.
    async fn publish_batch(
        &self,
        conn: &Arc<std::sync::Mutex<rusqlite::Connection>>,
    ) -> Result<usize> {
        let limit = self.batch_size as i64;
        let (rows, backlog) = Self::blocking(conn, move |c| {
            let exists: i64 = c.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
                [],
                |r| r.get(0),
            )?;
            if exists == 0 {
                return Ok((Vec::new(), 0));
            }
            let backlog: i64 = c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE sent_ms IS NULL",
                [],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare_cached(
                "SELECT seq, topic, msg_key, payload, headers, created_ms FROM outbox
                 WHERE sent_ms IS NULL ORDER BY seq LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit], |r| {
                    let headers: String = r.get(4)?;
                    Ok(Row {
                        seq: r.get(0)?,
                        topic: r.get(1)?,
                        key: r.get(2)?,
                        payload: r.get(3)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        created_ms: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((rows, backlog))
        })
        .await
        .context("reading the outbox")?;
        self.metrics.set(
            "trigger_kafka_outbox_backlog",
            &[("database", &self.db.label)],
            backlog as f64,
        );
        if rows.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        // Sent in seq order; the idempotent producer keeps that order per
        // partition and never duplicates its own retries.
        let deliveries = rows.iter().map(|row| {
            let mut headers = OwnedHeaders::new_with_capacity(row.headers.len());
            for (key, value) in &row.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let record = FutureRecord::to(&row.topic)
                .key(row.key.as_bytes())
                .payload(row.payload.as_bytes())
                .headers(headers);
            self.producer.send(record, rdkafka::util::Timeout::Never)
        });
        let results = join_all(deliveries).await;
        let acked_ms = now_ms();
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(_) => {
                    sent.push(row.seq);
                    self.metrics.inc(
                        "trigger_kafka_outbox_published_total",
                        &[("database", &self.db.label), ("topic", &row.topic)],
                        1,
                    );
                    let latency = Duration::from_millis((acked_ms - row.created_ms).max(0) as u64);
                    self.metrics.observe(
                        "trigger_kafka_relay_latency_seconds",
                        &[("database", &self.db.label)],
                        latency,
                    );
                }
                Err((e, _)) => failed.push((row.seq, e.to_string())),
            }
        }
        let count = sent.len();
        Self::blocking(conn, move |c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut mark =
                    tx.prepare_cached("UPDATE outbox SET sent_ms = ?1 WHERE seq = ?2")?;
                for seq in &sent {
                    mark.execute(rusqlite::params![acked_ms, seq])?;
                }
                let mut fail = tx.prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?1 WHERE seq = ?2",
                )?;
                for (seq, error) in &failed {
                    fail.execute(rusqlite::params![error, seq])?;
                }
            }
            tx.commit()
        })
        .await
        .context("marking outbox rows sent")?;
        tracing::debug!(database = %self.db.label, rows = count, took_ms = started.elapsed().as_millis() as u64, "outbox batch published");
        Ok(count)
    }
}
