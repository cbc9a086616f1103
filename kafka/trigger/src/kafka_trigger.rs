//! The Kafka trigger: one consumer group per `[[trigger.kafka]]`, one
//! worker per assigned partition (strict order within a partition,
//! partitions in parallel), offsets stored only after the handler succeeded
//! or the message was dead-lettered, committed every second, on rebalance
//! and at shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::app::KafkaTrigger;
use crate::bindings::kafka::todo_chatbot::kafka_trigger::types::Error as HandlerError;
use crate::bindings::kafka::todo_chatbot::kafka_trigger::types::{
    Header as WitHeader, Message as WitMessage,
};
use crate::bindings::kafka::KafkaHandlerPre;
use crate::engine::Runtime;
use crate::host::HostState;
use crate::kafka_client::KafkaSettings;
use crate::metrics::Metrics;

/// Messages buffered per partition before the poll loop waits.
const PARTITION_BUFFER: usize = 256;
/// Longest a rebalance waits for an in-flight message to finish.
const REVOKE_WAIT: Duration = Duration::from_secs(30);

/// A message detached from the consumer.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: Option<i64>,
}

/// How one message ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Handled,
    DeadLettered,
    /// Shutdown or revocation interrupted it; it will be delivered again.
    Abandoned,
}

/// What happened in one invocation.
enum Invocation {
    Ok,
    Retryable(String),
    Permanent(String),
    Trap(String),
}

struct PartitionState {
    in_flight: Mutex<bool>,
    idle: Condvar,
    revoked: AtomicBool,
}

struct Worker {
    sender: mpsc::Sender<Record>,
    state: Arc<PartitionState>,
}

type Workers = Arc<Mutex<HashMap<(String, i32), Worker>>>;

pub struct TriggerContext {
    workers: Workers,
    metrics: Arc<Metrics>,
    group: String,
}

impl ClientContext for TriggerContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    let partition = partition.to_string();
                    self.metrics.set(
                        "trigger_kafka_consumer_lag",
                        &[
                            ("group", &self.group),
                            ("topic", topic),
                            ("partition", &partition),
                        ],
                        p.consumer_lag as f64,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for TriggerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            let removed: Vec<Worker> = {
                let mut workers = self.workers.lock().expect("workers");
                revoked.iter().filter_map(|k| workers.remove(k)).collect()
            };
            // Let the message each worker is on finish, then commit what
            // finished, before another member takes the partitions.
            for worker in &removed {
                worker.state.revoked.store(true, Ordering::SeqCst);
                let guard = worker.state.in_flight.lock().expect("partition state");
                let _ = worker
                    .state
                    .idle
                    .wait_timeout_while(guard, REVOKE_WAIT, |busy| *busy);
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing to commit?)");
            }
            tracing::info!(group = %self.group, partitions = revoked.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            tracing::info!(group = %self.group, partitions = list.count(), "partitions assigned");
        }
    }
}

pub struct KafkaRunner {
    runtime: Arc<Runtime>,
    trigger: KafkaTrigger,
    pre: KafkaHandlerPre<HostState>,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    group: String,
}

fn record_of(message: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: message.timestamp().to_millis(),
    }
}

impl KafkaRunner {
    pub fn new(
        runtime: Arc<Runtime>,
        trigger: KafkaTrigger,
        producer: FutureProducer,
        metrics: Arc<Metrics>,
    ) -> Result<KafkaRunner> {
        let pre = KafkaHandlerPre::new(runtime.instance_pre(&trigger.component)?.clone())
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{}` does not export handle-message",
                    trigger.component
                )
            })?;
        let group = trigger
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", runtime.app.name, trigger.component));
        Ok(KafkaRunner {
            permits: Arc::new(Semaphore::new(trigger.concurrency.max(1))),
            runtime,
            trigger,
            pre,
            producer,
            metrics,
            group,
        })
    }

    /// Starts the poll loop on its own thread; returns when it has stopped
    /// and committed.
    pub fn spawn(
        self: Arc<Self>,
        settings: &KafkaSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<std::thread::JoinHandle<()>> {
        let workers: Workers = Arc::default();
        let context = TriggerContext {
            workers: workers.clone(),
            metrics: self.metrics.clone(),
            group: self.group.clone(),
        };
        let mut config = settings.client_config();
        config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                self.trigger.start_from.as_deref().unwrap_or("earliest"),
            )
            .set("statistics.interval.ms", "5000")
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                self.trigger.fetch_wait_max_ms.to_string(),
            );
        let consumer: BaseConsumer<TriggerContext> = config.create_with_context(context)?;
        let topics: Vec<&str> = self.trigger.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let consumer = Arc::new(consumer);
        let handle = tokio::runtime::Handle::current();
        tracing::info!(component = %self.trigger.component, group = %self.group, topics = ?self.trigger.topics, "kafka trigger started");
        Ok(std::thread::Builder::new()
            .name(format!("kafka-{}", self.trigger.component))
            .spawn(move || self.poll_loop(consumer, workers, handle, shutdown))?)
    }

    fn poll_loop(
        self: Arc<Self>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        workers: Workers,
        handle: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut tasks = Vec::new();
        while !*shutdown.borrow() {
            let message = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(e)) => {
                    tracing::warn!(group = %self.group, error = %e, "consumer error");
                    continue;
                }
                Some(Ok(message)) => record_of(&message),
            };
            let key = (message.topic.clone(), message.partition);
            let sender = {
                let mut map = workers.lock().expect("workers");
                let worker = map.entry(key).or_insert_with(|| {
                    let (sender, receiver) = mpsc::channel(PARTITION_BUFFER);
                    let state = Arc::new(PartitionState {
                        in_flight: Mutex::new(false),
                        idle: Condvar::new(),
                        revoked: AtomicBool::new(false),
                    });
                    let task = handle.spawn(self.clone().partition_worker(
                        receiver,
                        state.clone(),
                        consumer.clone(),
                        shutdown.clone(),
                    ));
                    tasks.push(task);
                    Worker { sender, state }
                });
                worker.sender.clone()
            };
            if sender.blocking_send(message).is_err() {
                tracing::debug!("partition worker gone; the message will be redelivered");
            }
        }
        // Shutdown: close every queue, let each worker finish the message it
        // is on, then commit what finished.
        workers.lock().expect("workers").clear();
        for task in tasks {
            let _ = handle.block_on(task);
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit (nothing to commit?)");
        }
        consumer.unsubscribe();
        tracing::info!(component = %self.trigger.component, "kafka trigger stopped");
    }

    async fn partition_worker(
        self: Arc<Self>,
        mut receiver: mpsc::Receiver<Record>,
        state: Arc<PartitionState>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        shutdown: watch::Receiver<bool>,
    ) {
        while let Some(record) = receiver.recv().await {
            if state.revoked.load(Ordering::SeqCst) || *shutdown.borrow() {
                break;
            }
            *state.in_flight.lock().expect("partition state") = true;
            let outcome = self.process(&record, &state, &shutdown).await;
            if outcome != Outcome::Abandoned {
                if let Err(e) =
                    consumer.store_offset(&record.topic, record.partition, record.offset)
                {
                    tracing::debug!(error = %e, "offset not stored (partition revoked?)");
                }
            }
            *state.in_flight.lock().expect("partition state") = false;
            state.idle.notify_all();
            if outcome == Outcome::Abandoned {
                break;
            }
        }
    }

    fn stopping(state: &PartitionState, shutdown: &watch::Receiver<bool>) -> bool {
        *shutdown.borrow() || state.revoked.load(Ordering::SeqCst)
    }

    /// Handles one message: retries with backoff, dead-letters when it must.
    async fn process(
        &self,
        record: &Record,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
    ) -> Outcome {
        let component = self.trigger.component.as_str();
        let mut attempt: u32 = 1;
        loop {
            let started = Instant::now();
            let result = self.invoke(record, attempt).await;
            self.metrics.observe(
                "trigger_kafka_handler_duration_seconds",
                &[("component", component)],
                started.elapsed(),
            );
            let (kind, reason) = match result {
                Invocation::Ok => {
                    self.metrics.inc(
                        "trigger_kafka_messages_total",
                        &[
                            ("component", component),
                            ("topic", &record.topic),
                            ("outcome", "ok"),
                        ],
                        1,
                    );
                    return Outcome::Handled;
                }
                Invocation::Retryable(reason) if attempt <= self.trigger.max_retries => {
                    self.metrics.inc(
                        "trigger_kafka_messages_total",
                        &[
                            ("component", component),
                            ("topic", &record.topic),
                            ("outcome", "retried"),
                        ],
                        1,
                    );
                    let delay = self.backoff(attempt);
                    tracing::info!(component, topic = %record.topic, partition = record.partition, offset = record.offset, attempt, ?delay, %reason, "retryable failure; retrying");
                    let deadline = Instant::now() + delay;
                    while Instant::now() < deadline {
                        if Self::stopping(state, shutdown) {
                            return Outcome::Abandoned;
                        }
                        tokio::time::sleep(
                            (deadline - Instant::now()).min(Duration::from_millis(50)),
                        )
                        .await;
                    }
                    attempt += 1;
                    continue;
                }
                Invocation::Retryable(reason) => ("retries_exhausted", reason),
                Invocation::Permanent(reason) => ("permanent", reason),
                Invocation::Trap(reason) => ("trap", reason),
            };
            tracing::warn!(component, topic = %record.topic, partition = record.partition, offset = record.offset, attempt, kind, %reason, "dead-lettering message");
            return if self
                .dead_letter(record, kind, &reason, attempt, state, shutdown)
                .await
            {
                self.metrics.inc(
                    "trigger_kafka_messages_total",
                    &[
                        ("component", component),
                        ("topic", &record.topic),
                        ("outcome", "dead_lettered"),
                    ],
                    1,
                );
                Outcome::DeadLettered
            } else {
                Outcome::Abandoned
            };
        }
    }

    /// Exponential backoff with jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .trigger
            .retry_backoff_ms
            .saturating_mul(1u64 << (attempt - 1).min(20));
        let capped = base.min(self.trigger.retry_backoff_max_ms);
        let jitter = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as u64)
            % (capped / 5 + 1);
        Duration::from_millis(capped - capped / 10 + jitter)
    }

    async fn invoke(&self, record: &Record, attempt: u32) -> Invocation {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let timeout = Duration::from_millis(self.trigger.handler_timeout_ms);
        let mut store = match self.runtime.store(&self.trigger.component, timeout) {
            Ok(store) => store,
            Err(e) => return Invocation::Retryable(format!("host: {e:#}")),
        };
        let handler = match self.pre.instantiate_async(&mut store).await {
            Ok(handler) => handler,
            Err(e) => return Invocation::Retryable(format!("instantiation failed: {e:#}")),
        };
        let message = WitMessage {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| WitHeader {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            timestamp: record.timestamp,
            attempt,
        };
        match handler.call_handle_message(&mut store, &message).await {
            Ok(Ok(())) => Invocation::Ok,
            Ok(Err(HandlerError::Retryable(reason))) => Invocation::Retryable(reason),
            Ok(Err(HandlerError::Permanent(reason))) => Invocation::Permanent(reason),
            Err(trap) => Invocation::Trap(format!("{:#}", anyhow::Error::from(trap))),
        }
    }

    /// Publishes the message to the dead-letter topic with why, where from
    /// and how many attempts; waits until the broker has it. Returns false
    /// if shutdown came first (the message is then not committed).
    async fn dead_letter(
        &self,
        record: &Record,
        kind: &str,
        reason: &str,
        attempts: u32,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        let topic = self.trigger.dead_letter_topic(&record.topic);
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = attempts.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let reason: String = reason.chars().take(4000).collect();
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 8);
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                });
            }
            for (key, value) in [
                ("dlq-reason", reason.as_str()),
                ("dlq-error-kind", kind),
                ("dlq-attempts", &attempts),
                ("dlq-original-topic", &record.topic),
                ("dlq-original-partition", &partition),
                ("dlq-original-offset", &offset),
                ("dlq-component", &self.trigger.component),
                ("dlq-consumer-group", &self.group),
                ("dlq-failed-at", &failed_at),
            ] {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut dlq = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic).headers(headers);
            if let Some(key) = &record.key {
                dlq = dlq.key(key);
            }
            if let Some(value) = &record.value {
                dlq = dlq.payload(value);
            }
            tokio::select! {
                result = self.producer.send(dlq, Duration::from_secs(10)) => match result {
                    Ok(_) => return true,
                    Err((e, _)) => tracing::warn!(%topic, error = %e, "dead-letter publish failed; retrying"),
                },
                _ = wait_for_stop(state, shutdown.clone()) => return false,
            }
            if Self::stopping(state, shutdown) {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn wait_for_stop(state: &PartitionState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() || state.revoked.load(Ordering::SeqCst) {
            return;
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
