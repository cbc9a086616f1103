//! The outbox relay: publishes the rows components write to an `outbox`
//! table (layout in `components/domain/src/events/outbox.rs`) with an idempotent
//! producer, and marks each row sent once the broker has acknowledged it.
//! While the broker is down, rows wait in the database: a SQLite file
//! ([`sqlite`]), or a schema in a Postgres that replicas share
//! ([`postgres`], where one relay at a time publishes).
//!
//! Order is per key, not per database: a batch takes the oldest unsent rows
//! of every key in turn (first rows of all keys, then second rows, …), so
//! one user's burst never holds back another user's events, while the rows
//! of one key always go out in `seq` order. A row the broker refuses for
//! good (too large, malformed) is marked dead with the reason and never
//! blocks anything (`trigger-kafka outbox requeue` puts it back); a row that
//! fails for a passing reason stays unsent — an authorization refusal counts
//! as passing, since ACLs and credentials are rotated, and is counted in
//! `trigger_kafka_outbox_authorization_failures_total` — and
//! no later row of its key is recorded as sent in that batch, so progress
//! is never recorded past an unsent row. Sent rows are pruned after the
//! retention period. Each published event carries `ce_sequence`, its
//! zero-padded outbox `seq`: consumers can order one source's events by it.
//!
//! Two batches are in flight at once: the next is read and handed to the
//! producer while the broker acknowledges the one before, so neither the
//! broker nor SQLite waits on the other. Batches settle in the order they
//! were sent; a key held back in one batch stays held in the batches
//! behind it, and no new batch is sent until the pipeline has drained.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use tokio::sync::watch;

mod postgres;
mod sqlite;
mod store;

pub use postgres::PgOutbox;
pub use sqlite::SqliteOutbox;
use store::Marks;
pub use store::OutboxStore;

use crate::metrics::{DatabaseLabels, DatabaseTopicLabels, Metrics};
use crate::telemetry;

/// Rows of one key in one batch, at most.
const PER_KEY: i64 = 100;
/// Batches sent and not yet acknowledged, at most: while the broker
/// acknowledges one, the next is read and sent, so neither side waits on
/// the other.
const IN_FLIGHT_BATCHES: usize = 2;
/// How often sent rows past the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the backlog is counted for metrics and /healthz (counting
/// scans the backlog, so not once per batch).
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between batches that published nothing and had rows to
/// retry (the wait doubles from the poll interval up to this).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) struct Row {
    seq: i64,
    topic: String,
    key: String,
    payload: String,
    headers: Vec<(String, String)>,
    created_ms: i64,
}

pub struct Relay {
    /// The database label (`default`, `reminders`), for logs and metrics.
    pub label: String,
    /// Woken when a component of this process writes the database (SQLite);
    /// without it (Postgres, written by every replica) the relay polls.
    pub changed: Option<Arc<tokio::sync::Notify>>,
    pub producer: FutureProducer,
    pub metrics: Arc<Metrics>,
    pub batch_size: usize,
    pub poll_interval: Duration,
    /// How long sent rows are kept (for inspection and replay) before pruning.
    pub retention: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether the broker will never take this message, however often it is
/// sent: the row is dead, not delayed. Authorization failures are not
/// among them: an ACL or a credential being rotated refuses every row for
/// a while, and marking them dead would lose every event written meanwhile.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::MessageBatchTooLarge
                | C::InvalidTopic
                | C::InvalidRecord
                | C::UnsupportedForMessageFormat
        )
    )
}

/// Whether the broker refused the message as not authorized.
pub fn is_authorization(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
        )
    )
}

/// What became of a batch's rows.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub sent: Vec<i64>,
    pub dead: Vec<(i64, String)>,
    /// Not published (or published behind an unsent row of the same key):
    /// they go again.
    pub retry: Vec<(i64, String)>,
    /// How many of `retry` the broker refused as not authorized.
    pub unauthorized: usize,
}

/// Sorts acknowledgements into sent, dead and retry, in batch order: once
/// a key has a row to retry (in this batch or in an earlier one still in
/// the pipeline: `held`), its later rows are retried too, even if the
/// broker took them, so the outbox never records a key's progress past an
/// unsent row (a duplicate is harmless; consumers deduplicate by event id).
pub fn classify(
    results: Vec<(i64, &str, Result<(), KafkaError>)>,
    held: &mut HashSet<String>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (seq, key, result) in results {
        if held.contains(key) {
            outcome
                .retry
                .push((seq, "held behind an earlier unsent row of its key".into()));
            continue;
        }
        match result {
            Ok(()) => outcome.sent.push(seq),
            Err(e) if is_permanent(&e) => outcome.dead.push((seq, e.to_string())),
            Err(e) => {
                held.insert(key.to_owned());
                outcome.unauthorized += usize::from(is_authorization(&e));
                outcome.retry.push((seq, e.to_string()));
            }
        }
    }
    outcome
}

/// A batch handed to the producer: its rows, and the acknowledgement of
/// each (or the reason it could not even be queued).
struct Sending {
    rows: Vec<Row>,
    acks: Vec<Result<DeliveryFuture, KafkaError>>,
    /// A publish span per row (none with tracing off).
    spans: Vec<telemetry::Span>,
    read_ms: u64,
    started: Instant,
}

impl Sending {
    /// Waits for every acknowledgement, in row order.
    async fn acknowledged(&mut self) -> Vec<Result<(), KafkaError>> {
        let mut results = Vec::with_capacity(self.acks.len());
        for ack in self.acks.iter_mut() {
            results.push(match ack {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                },
                Err(e) => Err(e.clone()),
            });
        }
        results
    }
}

/// Batches sent and not yet settled, oldest first, with what their
/// settling learnt so far.
#[derive(Default)]
struct Pipeline {
    sending: VecDeque<Sending>,
    /// Keys with a row to retry: later rows of theirs already sent are not
    /// recorded as sent until the pipeline has drained.
    held: HashSet<String>,
    /// A batch had rows to retry (or could not be recorded): send no more
    /// until the pipeline has drained, then back off.
    stalled: bool,
    /// Rows settled since the pipeline was last empty.
    settled: usize,
}

impl Pipeline {
    /// The rows in flight, for the next read to leave out.
    fn in_flight(&self) -> Vec<i64> {
        self.sending
            .iter()
            .flat_map(|batch| batch.rows.iter().map(|row| row.seq))
            .collect()
    }
}

impl Relay {
    /// Publishes `store`'s outbox until `shutdown`.
    pub async fn run(self, mut store: OutboxStore, mut shutdown: watch::Receiver<bool>) {
        let conn = &mut store;
        tracing::info!(database = %self.label, "outbox relay started");
        let mut ready = false;
        let mut pruned = Instant::now() - PRUNE_EVERY;
        let mut counted = Instant::now() - COUNT_EVERY;
        let mut backoff = self.poll_interval;
        let mut pipeline = Pipeline::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Asked every turn: on Postgres a relay that loses its
            // connection loses the relay lock, and a standby may win it.
            ready = match conn.ready().await {
                Ok(ready) => ready,
                Err(e) => {
                    if ready {
                        // What is in flight is settled by whoever holds
                        // the lock now; its rows are still unsent here.
                        pipeline = Pipeline::default();
                    }
                    tracing::warn!(database = %self.label, error = %format!("{e:#}"), "outbox not ready; retrying");
                    false
                }
            };
            if ready && pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                let before = now_ms() - self.retention.as_millis() as i64;
                match conn.prune(before).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(database = %self.label, rows = n, "pruned sent outbox rows")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(database = %self.label, error = %format!("{e:#}"), "pruning the outbox failed")
                    }
                }
            }
            if ready && counted.elapsed() >= COUNT_EVERY {
                counted = Instant::now();
                if let Err(e) = self.count_backlog(conn).await {
                    tracing::warn!(database = %self.label, error = %format!("{e:#}"), "counting the outbox failed");
                }
            }
            // Keep the producer busy: the next batch is read and sent while
            // the broker acknowledges the one before.
            let mut failed = false;
            while ready && !pipeline.stalled && pipeline.sending.len() < IN_FLIGHT_BATCHES {
                match self.read_batch(conn, pipeline.in_flight()).await {
                    Ok((rows, _)) if rows.is_empty() => break,
                    Ok((rows, read_ms)) => {
                        pipeline.sending.push_back(self.send(rows, read_ms).await)
                    }
                    Err(e) => {
                        tracing::warn!(database = %self.label, error = %format!("{e:#}"), "reading the outbox failed; retrying");
                        failed = true;
                        break;
                    }
                }
            }
            if let Some(oldest) = pipeline.sending.front_mut() {
                // While the broker is down a batch waits for it; shutdown
                // must not. Rows of an interrupted batch stay unsent and go
                // out on the next start.
                let results = tokio::select! {
                    results = oldest.acknowledged() => results,
                    _ = shutdown.changed() => break,
                };
                let batch = pipeline.sending.pop_front().expect("the oldest batch");
                self.settle(conn, batch, results, &mut pipeline).await;
                if !pipeline.sending.is_empty() {
                    continue;
                }
                let (stalled, settled) = (pipeline.stalled, pipeline.settled);
                pipeline = Pipeline::default();
                if !stalled || settled > 0 {
                    backoff = self.poll_interval;
                    continue;
                }
                // Rows wait and none went out: back off (doubling) rather
                // than hammer a broker that refuses them; new writes do not
                // cut the wait short.
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if !failed {
                backoff = self.poll_interval;
            }
            let changed = async {
                match &self.changed {
                    Some(changed) => changed.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(database = %self.label, "outbox relay stopped");
    }

    /// Counts what waits and what is dead, for metrics and /healthz.
    async fn count_backlog(&self, conn: &mut OutboxStore) -> Result<()> {
        let store::Counts {
            backlog,
            dead,
            oldest_ms,
        } = conn.counts().await?;
        let label = self.label.as_str();
        let labels = DatabaseLabels {
            database: label.into(),
        };
        self.metrics
            .outbox_backlog
            .get_or_create(&labels)
            .set(backlog);
        self.metrics.outbox_dead.get_or_create(&labels).set(dead);
        self.metrics
            .outbox_oldest_unsent_seconds
            .get_or_create(&labels)
            .set(oldest_ms.map_or(0.0, |ms| ((now_ms() - ms).max(0) as f64) / 1000.0));
        self.metrics.outbox_health(label, backlog, dead);
        Ok(())
    }

    /// Reads the next batch ([`due_rows`]), leaving out the rows in flight.
    async fn read_batch(
        &self,
        conn: &mut OutboxStore,
        in_flight: Vec<i64>,
    ) -> Result<(Vec<Row>, u64)> {
        let limit = self.batch_size as i64;
        let reading = Instant::now();
        let rows = conn.due_rows(limit, in_flight).await?;
        Ok((rows, reading.elapsed().as_millis() as u64))
    }

    /// Hands a batch to the producer in batch order, which is `seq` order
    /// within each key; the idempotent producer keeps that order per
    /// partition and never duplicates its own retries.
    async fn send(&self, mut rows: Vec<Row>, read_ms: u64) -> Sending {
        let started = Instant::now();
        let mut acks = Vec::with_capacity(rows.len());
        let mut spans = Vec::new();
        for row in &mut rows {
            if telemetry::enabled() {
                spans.push(publish_span(row));
            }
            acks.push(self.enqueue(row).await);
        }
        Sending {
            rows,
            acks,
            spans,
            read_ms,
            started,
        }
    }

    /// Queues one row with the producer, waiting while its queue is full.
    async fn enqueue(&self, row: &Row) -> Result<DeliveryFuture, KafkaError> {
        let sequence = format!("{:020}", row.seq);
        loop {
            let headers: Vec<(&str, &[u8])> = row
                .headers
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_bytes()))
                .chain([("ce_sequence", sequence.as_bytes())])
                .collect();
            let record = crate::kafka_client::record(
                &row.topic,
                Some(row.key.as_bytes()),
                Some(row.payload.as_bytes()),
                &headers,
            );
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Records what became of an acknowledged batch (sent, dead, or to
    /// retry) and what the rest of the pipeline must respect.
    async fn settle(
        &self,
        conn: &mut OutboxStore,
        batch: Sending,
        results: Vec<Result<(), KafkaError>>,
        pipeline: &mut Pipeline,
    ) {
        let label = self.label.as_str();
        let send_ms = batch.started.elapsed().as_millis() as u64;
        let acked_ms = now_ms();
        let rows = batch.rows;
        let outcome = classify(
            rows.iter()
                .zip(results)
                .map(|(row, result)| (row.seq, row.key.as_str(), result))
                .collect(),
            &mut pipeline.held,
        );
        let sent: HashSet<i64> = outcome.sent.iter().copied().collect();
        let failed: HashMap<i64, &str> = outcome
            .dead
            .iter()
            .chain(&outcome.retry)
            .map(|(seq, reason)| (*seq, reason.as_str()))
            .collect();
        for (row, mut span) in rows.iter().zip(batch.spans) {
            if let Some(reason) = failed.get(&row.seq) {
                span.fail(*reason);
            }
        }
        let database = DatabaseLabels {
            database: label.into(),
        };
        let latency = self
            .metrics
            .relay_latency_seconds
            .get_or_create_owned(&database);
        for row in rows.iter().filter(|r| sent.contains(&r.seq)) {
            crate::console::note(|| {
                let header = |name: &str| {
                    row.headers
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                serde_json::json!({"kind": "published", "database": label, "topic": row.topic,
                    "key": row.key, "seq": row.seq, "type": header("ce_type"), "subject": header("ce_subject")})
            });
            self.metrics
                .outbox_published
                .get_or_create(&DatabaseTopicLabels {
                    database: database.database.clone(),
                    topic: row.topic.as_str().into(),
                })
                .inc();
            latency.observe(((acked_ms - row.created_ms).max(0) as f64) / 1000.0);
        }
        for (seq, reason) in &outcome.dead {
            tracing::error!(database = label, seq, %reason, "outbox row can never be published; marked dead");
            self.metrics
                .outbox_marked_dead
                .get_or_create(&database)
                .inc();
        }
        if outcome.unauthorized > 0 {
            tracing::error!(
                database = label,
                rows = outcome.unauthorized,
                "the broker refused outbox rows as not authorized (ACLs or credentials); they stay unsent and are retried with backoff"
            );
            self.metrics
                .outbox_unauthorized
                .get_or_create(&database)
                .inc_by(outcome.unauthorized as u64);
        }
        let settled = outcome.sent.len() + outcome.dead.len();
        let retried = outcome.retry.len();
        let Outcome {
            sent, dead, retry, ..
        } = outcome;
        let marked = conn
            .mark(Marks {
                acked_ms,
                sent,
                dead,
                retry,
            })
            .await;
        if let Err(e) = marked {
            // Its rows stay unsent and go again: nothing later of their
            // keys may be recorded as sent before them.
            tracing::warn!(database = label, error = %format!("{e:#}"), "outbox relay batch failed; retrying");
            pipeline.held.extend(rows.into_iter().map(|row| row.key));
            pipeline.stalled = true;
            return;
        }
        pipeline.stalled |= retried > 0;
        pipeline.settled += settled;
        tracing::debug!(
            database = label,
            rows = settled,
            read_ms = batch.read_ms,
            send_ms,
            in_flight = pipeline.sending.len(),
            "outbox batch published"
        );
    }
}

/// Starts the span of a row's publication, continuing the trace the row
/// was written under, and hands it on in the row's trace headers.
fn publish_span(row: &mut Row) -> telemetry::Span {
    let parent = row
        .headers
        .iter()
        .find(|(k, _)| k == telemetry::TRACEPARENT)
        .map(|(_, v)| v.as_str());
    let span = telemetry::Span::start(
        "spin_trigger_kafka.publish",
        opentelemetry::trace::SpanKind::Producer,
        parent,
        vec![
            opentelemetry::KeyValue::new("messaging.system", "kafka"),
            opentelemetry::KeyValue::new("messaging.operation.type", "send"),
            opentelemetry::KeyValue::new("messaging.destination.name", row.topic.clone()),
            opentelemetry::KeyValue::new("messaging.kafka.message.key", row.key.clone()),
            opentelemetry::KeyValue::new("outbox.seq", row.seq),
        ],
    );
    if let Some(traceparent) = span.traceparent() {
        telemetry::put_traceparent(
            &mut row.headers,
            &[telemetry::TRACEPARENT, telemetry::CE_TRACEPARENT],
            &traceparent,
        );
    }
    span
}

#[cfg(test)]
mod tests {
    use super::sqlite::{due_rows, ensure_schema, prune};
    use super::*;

    fn err(code: RDKafkaErrorCode) -> Result<(), KafkaError> {
        Err(KafkaError::MessageProduction(code))
    }

    #[test]
    fn a_permanent_refusal_is_dead_and_holds_nothing_back() {
        let outcome = classify(
            vec![
                (1, "a", err(RDKafkaErrorCode::MessageSizeTooLarge)),
                (2, "a", Ok(())),
                (3, "b", Ok(())),
            ],
            &mut HashSet::new(),
        );
        assert_eq!(outcome.sent, [2, 3]);
        assert_eq!(outcome.dead.iter().map(|d| d.0).collect::<Vec<_>>(), [1]);
        assert!(outcome.retry.is_empty());
    }

    #[test]
    fn a_passing_failure_holds_back_its_key_only() {
        let outcome = classify(
            vec![
                (1, "a", Ok(())),
                (2, "a", err(RDKafkaErrorCode::RequestTimedOut)),
                (3, "b", Ok(())),
                (4, "a", Ok(())),
                (5, "b", Ok(())),
            ],
            &mut HashSet::new(),
        );
        assert_eq!(outcome.sent, [1, 3, 5]);
        assert_eq!(
            outcome.retry.iter().map(|r| r.0).collect::<Vec<_>>(),
            [2, 4],
            "row 4 was taken by the broker, but is not recorded past unsent row 2"
        );
    }

    /// Issue 21 item 4: an authorization refusal marked rows dead for good,
    /// so an ACL or credential rotation lost every event written meanwhile.
    #[test]
    fn an_authorization_refusal_is_retried_not_dead() {
        let outcome = classify(
            vec![
                (1, "a", err(RDKafkaErrorCode::TopicAuthorizationFailed)),
                (2, "a", Ok(())),
                (3, "b", err(RDKafkaErrorCode::ClusterAuthorizationFailed)),
                (4, "c", Ok(())),
            ],
            &mut HashSet::new(),
        );
        assert!(outcome.dead.is_empty(), "{outcome:?}");
        assert_eq!(
            outcome.retry.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(outcome.sent, [4]);
        assert_eq!(outcome.unauthorized, 2);
    }

    #[test]
    fn a_hold_reaches_the_batches_already_in_flight() {
        let mut held = HashSet::new();
        let first = classify(
            vec![
                (1, "a", err(RDKafkaErrorCode::RequestTimedOut)),
                (2, "b", Ok(())),
            ],
            &mut held,
        );
        assert_eq!(first.sent, [2]);
        // The next batch was sent before the first was acknowledged.
        let second = classify(vec![(3, "a", Ok(())), (4, "b", Ok(()))], &mut held);
        assert_eq!(second.sent, [4]);
        assert_eq!(second.retry.iter().map(|r| r.0).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn the_next_batch_takes_keys_in_turn_and_leaves_out_what_is_in_flight() {
        let c = outbox();
        // Key a wrote 5 rows before b and c wrote one each.
        for key in ["a", "a", "a", "a", "a", "b", "c"] {
            c.execute(
                "INSERT INTO outbox (event_id, topic, msg_key, payload, headers, created_ms)
                 VALUES (lower(hex(randomblob(8))), 't', ?1, '{}', '[]', 0)",
                [key],
            )
            .unwrap();
        }
        let seqs = |rows: Vec<Row>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(due_rows(&c, 4, "[]").unwrap()), [1, 6, 7, 2]);
        // Rows 1, 6, 7 and 2 are in flight: the next batch goes on with a.
        assert_eq!(seqs(due_rows(&c, 4, "[1,6,7,2]").unwrap()), [3, 4, 5]);
        c.execute("UPDATE outbox SET dead_ms = 1 WHERE seq = 3", [])
            .unwrap();
        assert_eq!(seqs(due_rows(&c, 10, "[1,2]").unwrap()), [4, 6, 7, 5]);
    }

    /// An outbox as a component creates it, with the relay's bookkeeping.
    fn outbox() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, topic TEXT, msg_key TEXT,
             payload TEXT, headers TEXT, created_ms INTEGER, sent_ms INTEGER, attempts INTEGER DEFAULT 0, last_error TEXT);",
        )
        .unwrap();
        assert!(ensure_schema(&c).unwrap());
        c
    }

    #[test]
    fn pruning_keeps_unsent_and_dead_rows() {
        let c = outbox();
        for (sent, dead) in [
            (Some(10), None),
            (Some(5000), None),
            (None, None),
            (None, Some(1)),
        ] {
            c.execute(
                "INSERT INTO outbox (event_id, topic, msg_key, payload, headers, created_ms, sent_ms, dead_ms)
                 VALUES ('e', 't', 'k', '{}', '[]', 1, ?1, ?2)",
                rusqlite::params![sent, dead],
            )
            .unwrap();
        }
        assert_eq!(prune(&c, 1000).unwrap(), 1);
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 3);
    }
}
