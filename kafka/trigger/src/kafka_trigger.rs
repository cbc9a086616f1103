//! The Kafka trigger: one consumer group per `[[trigger.kafka]]`, one
//! worker per assigned partition (strict order within a partition,
//! partitions in parallel), offsets stored only after the handler succeeded
//! or the message was dead-lettered, committed every second, on rebalance
//! and at shutdown.
//!
//! The poll loop never blocks on a worker: a partition whose worker is
//! behind is paused (its messages wait, in order, until it catches up) and
//! the others keep flowing, so the consumer keeps its place in the group.
//! A handler's own answer (`retryable`, `permanent`, a trap) is retried
//! within its budget and then dead-lettered; a failure of the host instead
//! (storage busy or full, no instance to run it in) is nobody's verdict on
//! the message: that partition waits and retries without limit, visible in
//! metrics and `/healthz`, and no good message is dead-lettered for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
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
/// Longest a rebalance waits for an in-flight message to finish (a message
/// still running after it is not committed: the next owner handles it
/// again, and handlers are idempotent).
const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// Group timeouts. The session must outlast a coordinator slowed by load
/// (tansu under a write burst answers heartbeats in more than 10 s), so it
/// stays at Kafka's 45 s; a member killed without leaving does not hold its
/// partitions that long, because with static membership (below) its
/// restart takes its place at once. A rebalance waits up to
/// `max.poll.interval.ms` for members to rejoin, and some coordinators
/// (tansu) wait for dead members that long: the poll loop never blocks
/// (slow partitions are paused), so it can be short.
const SESSION_TIMEOUT_MS: &str = "45000";
const HEARTBEAT_INTERVAL_MS: &str = "3000";
const MAX_POLL_INTERVAL_MS: &str = "60000";
/// How often lag and assignment are read from the broker.
const LAG_EVERY: Duration = Duration::from_secs(5);

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
    /// The host failed, not the handler: retried without limit.
    Infrastructure(String),
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

/// Messages polled for partitions whose worker is full, in order, and the
/// partitions paused for it.
#[derive(Default)]
struct Backlog {
    waiting: HashMap<(String, i32), VecDeque<Record>>,
    paused: HashSet<(String, i32)>,
}

pub struct TriggerContext {
    workers: Workers,
    backlog: Arc<Mutex<Backlog>>,
    metrics: Arc<Metrics>,
    group: String,
}

impl ClientContext for TriggerContext {}

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
            {
                // Whoever gets these partitions reads them from the
                // committed offset; what waited here is not ours any more.
                let mut backlog = self.backlog.lock().expect("backlog");
                for key in &revoked {
                    backlog.waiting.remove(key);
                    if backlog.paused.remove(key) {
                        set_paused(&self.metrics, &self.group, key, false);
                    }
                }
            }
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

/// This process's stable identity in a group: the group, the host name (a
/// pod's name on Kubernetes) and the app's directory, so a restart replaces
/// its earlier self and two hosts never fence each other.
/// `TRIGGER_KAFKA_INSTANCE_ID` sets it, for several members of one app on
/// one host.
fn instance_id(group: &str, app_dir: &std::path::Path) -> String {
    if let Ok(id) = std::env::var("TRIGGER_KAFKA_INSTANCE_ID") {
        if !id.trim().is_empty() {
            return format!("{group}@{}", id.trim());
        }
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{group}@{host}:{}", app_dir.display())
}

fn set_paused(metrics: &Metrics, group: &str, (topic, partition): &(String, i32), paused: bool) {
    let partition = partition.to_string();
    metrics.set(
        "trigger_kafka_partition_paused",
        &[
            ("group", group),
            ("topic", topic),
            ("partition", &partition),
        ],
        if paused { 1.0 } else { 0.0 },
    );
}

fn partition_list(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
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
        let backlog: Arc<Mutex<Backlog>> = Arc::default();
        let context = TriggerContext {
            workers: workers.clone(),
            backlog: backlog.clone(),
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
            .set("enable.partition.eof", "false")
            // Static membership: a process that comes back (restarted,
            // killed, or rejoining after its session lapsed) takes its old
            // place instead of leaving a dead member that holds partitions.
            .set(
                "group.instance.id",
                instance_id(&self.group, &self.runtime.app.dir),
            )
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
            .set("max.poll.interval.ms", MAX_POLL_INTERVAL_MS)
            // What librdkafka prefetches per partition; a paused partition's
            // prefetched messages wait in memory, so keep it modest.
            .set("queued.max.messages.kbytes", "16384")
            .set(
                "fetch.wait.max.ms",
                self.trigger.fetch_wait_max_ms.to_string(),
            );
        let consumer: BaseConsumer<TriggerContext> = config.create_with_context(context)?;
        self.check_topics(&consumer)?;
        let topics: Vec<&str> = self.trigger.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let consumer = Arc::new(consumer);
        let handle = tokio::runtime::Handle::current();
        tracing::info!(component = %self.trigger.component, group = %self.group, topics = ?self.trigger.topics, "kafka trigger started");
        // Lag and assignment are read over a client of their own: a query
        // stuck behind the consumer's fetches would time out and make
        // librdkafka reset the consumer's connection.
        let mut probe_config = settings.client_config();
        probe_config.set("group.id", &self.group);
        let probe: BaseConsumer = probe_config.create()?;
        std::thread::Builder::new()
            .name(format!("lag-{}", self.trigger.component))
            .spawn({
                let (this, consumer, shutdown) = (self.clone(), consumer.clone(), shutdown.clone());
                move || this.watch_group(consumer, probe, shutdown)
            })?;
        Ok(std::thread::Builder::new()
            .name(format!("kafka-{}", self.trigger.component))
            .spawn(move || self.poll_loop(consumer, workers, backlog, handle, shutdown))?)
    }

    /// Every topic and its dead-letter topic must exist: consuming a topic
    /// that is not there waits forever, and a message that cannot be
    /// dead-lettered can never be committed. Checked once at start; with
    /// the broker unreachable the check is skipped (and said so).
    fn check_topics(&self, consumer: &BaseConsumer<TriggerContext>) -> Result<()> {
        let metadata = match consumer.fetch_metadata(None, Duration::from_secs(10)) {
            Ok(metadata) => metadata,
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "broker unreachable at start; topics not checked");
                return Ok(());
            }
        };
        let existing: HashSet<&str> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name())
            .collect();
        let mut missing: Vec<String> = self
            .trigger
            .topics
            .iter()
            .flat_map(|t| [t.clone(), self.trigger.dead_letter_topic(t)])
            .filter(|t| !existing.contains(t.as_str()))
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            anyhow::bail!(
                "the Kafka trigger for `{}` needs topics that do not exist: {} (create them, e.g. `trigger-kafka topics apply -t kafka/topics.toml`)",
                self.trigger.component,
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// Every few seconds: lag per partition from the broker (high-water
    /// mark minus the group's committed offset, so messages fetched but not
    /// yet handled count), and partitions assigned and unassigned.
    fn watch_group(
        self: Arc<Self>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        probe: BaseConsumer,
        shutdown: watch::Receiver<bool>,
    ) {
        let timeout = Duration::from_secs(10);
        while !*shutdown.borrow() {
            std::thread::sleep(LAG_EVERY);
            if *shutdown.borrow() {
                break;
            }
            let Ok(assignment) = consumer.assignment() else {
                continue;
            };
            let committed = probe.committed_offsets(assignment.clone(), timeout).ok();
            let mut assigned: HashMap<String, usize> = HashMap::new();
            for element in assignment.elements() {
                let (topic, partition) = (element.topic(), element.partition());
                *assigned.entry(topic.to_owned()).or_default() += 1;
                let Ok((low, high)) = probe.fetch_watermarks(topic, partition, timeout) else {
                    continue;
                };
                let done = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(topic, partition))
                    .and_then(|p| p.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .unwrap_or(low);
                let partition = partition.to_string();
                self.metrics.set(
                    "trigger_kafka_consumer_lag",
                    &[
                        ("group", &self.group),
                        ("topic", topic),
                        ("partition", &partition),
                    ],
                    (high - done).max(0) as f64,
                );
            }
            if let Ok(metadata) = probe.fetch_metadata(None, timeout) {
                for topic in &self.trigger.topics {
                    let total = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map_or(0, |t| t.partitions().len());
                    let mine = assigned.get(topic).copied().unwrap_or(0);
                    let labels = [("group", self.group.as_str()), ("topic", topic.as_str())];
                    self.metrics
                        .set("trigger_kafka_partitions_assigned", &labels, mine as f64);
                    self.metrics.set(
                        "trigger_kafka_partitions_unassigned",
                        &labels,
                        total.saturating_sub(mine) as f64,
                    );
                }
            }
        }
    }

    fn poll_loop(
        self: Arc<Self>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        workers: Workers,
        backlog: Arc<Mutex<Backlog>>,
        handle: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut tasks = Vec::new();
        while !*shutdown.borrow() {
            self.drain_backlog(&consumer, &workers, &backlog);
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
                let worker = map.entry(key.clone()).or_insert_with(|| {
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
            let mut backlog = backlog.lock().expect("backlog");
            // Behind earlier waiting messages of its partition, in order.
            if let Some(waiting) = backlog.waiting.get_mut(&key) {
                if !waiting.is_empty() {
                    waiting.push_back(message);
                    continue;
                }
            }
            match sender.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(message)) => {
                    backlog
                        .waiting
                        .entry(key.clone())
                        .or_default()
                        .push_back(message);
                    if backlog.paused.insert(key.clone()) {
                        if let Err(e) = consumer.pause(&partition_list(&key.0, key.1)) {
                            tracing::debug!(error = %e, "pausing a partition");
                        }
                        set_paused(&self.metrics, &self.group, &key, true);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::debug!("partition worker gone; the message will be redelivered");
                }
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

    /// Hands waiting messages to workers that have room again, and resumes
    /// fetching for partitions whose backlog is gone.
    fn drain_backlog(
        &self,
        consumer: &BaseConsumer<TriggerContext>,
        workers: &Workers,
        backlog: &Mutex<Backlog>,
    ) {
        let mut backlog = backlog.lock().expect("backlog");
        if backlog.waiting.is_empty() {
            return;
        }
        let workers = workers.lock().expect("workers");
        let Backlog { waiting, paused } = &mut *backlog;
        waiting.retain(|key, queue| {
            let Some(worker) = workers.get(key) else {
                return false;
            };
            while let Some(message) = queue.pop_front() {
                match worker.sender.try_send(message) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        queue.push_front(message);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            if paused.remove(key) {
                if let Err(e) = consumer.resume(&partition_list(&key.0, key.1)) {
                    tracing::debug!(error = %e, "resuming a partition");
                }
                set_paused(&self.metrics, &self.group, key, false);
            }
            false
        });
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
        let candidate = crate::filters::Candidate {
            key: record.key.as_deref(),
            headers: &record.headers,
            value: record.value.as_deref(),
        };
        if !crate::filters::passes(&self.trigger.filters, &candidate) {
            // Committed like a success; no instance is created.
            self.metrics.inc(
                "trigger_kafka_messages_total",
                &[
                    ("component", component),
                    ("topic", &record.topic),
                    ("outcome", "filtered"),
                ],
                1,
            );
            return Outcome::Handled;
        }
        let mut attempt: u32 = 1;
        loop {
            let started = Instant::now();
            let result = self.invoke(record, attempt).await;
            self.metrics.observe(
                "trigger_kafka_handler_duration_seconds",
                &[("component", component)],
                started.elapsed(),
            );
            if !matches!(result, Invocation::Infrastructure(_)) {
                self.metrics
                    .set_stalled(&self.group, &record.topic, record.partition, None);
            }
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
                Invocation::Infrastructure(reason) => {
                    // Not the message's fault: wait it out, however long,
                    // without spending the handler's retry budget.
                    self.metrics.inc(
                        "trigger_kafka_infrastructure_retries_total",
                        &[("component", component), ("topic", &record.topic)],
                        1,
                    );
                    self.metrics.set_stalled(
                        &self.group,
                        &record.topic,
                        record.partition,
                        Some(&reason),
                    );
                    let delay = Duration::from_millis(self.trigger.retry_backoff_max_ms.min(5_000));
                    tracing::warn!(component, topic = %record.topic, partition = record.partition, offset = record.offset, ?delay, %reason, "host failure; the partition waits and retries");
                    let deadline = Instant::now() + delay;
                    while Instant::now() < deadline {
                        if Self::stopping(state, shutdown) {
                            self.metrics.set_stalled(
                                &self.group,
                                &record.topic,
                                record.partition,
                                None,
                            );
                            return Outcome::Abandoned;
                        }
                        tokio::time::sleep(
                            (deadline - Instant::now()).min(Duration::from_millis(50)),
                        )
                        .await;
                    }
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
            Err(e) => return Invocation::Infrastructure(format!("host: {e:#}")),
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
        // The epoch deadline stops a guest that computes too long; this one
        // also counts time spent waiting in host calls (storage, HTTP).
        let call = async {
            let handler = match self.pre.instantiate_async(&mut store).await {
                Ok(handler) => handler,
                Err(e) => {
                    return Invocation::Infrastructure(format!("instantiation failed: {e:#}"))
                }
            };
            let result = handler.call_handle_message(&mut store, &message).await;
            // A guest that failed because storage failed is not at fault.
            let host_failure = store.data_mut().take_infrastructure_error();
            match (result, host_failure) {
                (Ok(Ok(())), _) => Invocation::Ok,
                (Ok(Err(HandlerError::Permanent(reason))), _) => Invocation::Permanent(reason),
                (Ok(Err(HandlerError::Retryable(_))) | Err(_), Some(host)) => {
                    Invocation::Infrastructure(host)
                }
                (Ok(Err(HandlerError::Retryable(reason))), None) => Invocation::Retryable(reason),
                (Err(trap), None) => Invocation::Trap(format!("{:#}", anyhow::Error::from(trap))),
            }
        };
        match tokio::time::timeout(timeout + crate::engine::EPOCH_TICK * 10, call).await {
            Ok(invocation) => invocation,
            Err(_) => Invocation::Trap(format!(
                "the handler did not finish within handler_timeout_ms ({} ms)",
                self.trigger.handler_timeout_ms
            )),
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
