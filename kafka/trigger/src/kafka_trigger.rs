//! The Kafka trigger: one consumer group per `[[trigger.kafka]]`, one
//! worker per assigned partition (strict order within a partition,
//! partitions in parallel), offsets stored only after the handler succeeded
//! or the message was dead-lettered, committed every second, on rebalance
//! and at shutdown.
//!
//! The poll loop never blocks on a worker: a partition whose worker is
//! behind is paused (its messages wait, in order, until it catches up) and
//! the others keep flowing, so the consumer keeps its place in the group.
//! Filters run in the poll loop on librdkafka's copy of a record; one they
//! drop is committed there when nothing earlier of its partition is still
//! with the worker, and otherwise goes through the worker in its turn.
//! A handler's own answer (`retryable`, `permanent`, a trap) is retried
//! within its budget and then dead-lettered; a failure of the host instead
//! (storage busy or full, no instance to run it in) is nobody's verdict on
//! the message: that partition waits and retries without limit, visible in
//! metrics and `/healthz`, and no good message is dead-lettered for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::ClientContext;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::app::{KafkaTrigger, StartingPosition, DEFAULT_BATCH_SIZE};
use crate::bindings::kafka::todo_chatbot::kafka_trigger::types::Error as HandlerError;
use crate::bindings::kafka::todo_chatbot::kafka_trigger::types::{
    Header as WitHeader, Message as WitMessage,
};
use crate::bindings::kafka::KafkaHandlerPre;
use crate::bindings::kafka_batch::KafkaBatchHandlerPre;
use crate::engine::Runtime;
use crate::host::HostState;
use crate::kafka_client::KafkaSettings;
use crate::metrics::{Counter, Histogram, Metrics};
use crate::telemetry;

/// Messages queued for a partition's worker; more wait in the backlog.
const PARTITION_BUFFER: usize = 256;
/// Bytes waiting for one partition's worker before its fetching is
/// paused, whatever `max_buffered_messages` says (large records).
const MAX_BUFFERED_BYTES: usize = 32 << 20;
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
    /// The trigger's filters drop it (decided once, in the poll loop): it
    /// is only committed in its turn, and its bytes were not copied.
    pub dropped: bool,
}

/// What one invocation said about the messages it was given.
enum Verdict {
    /// All handled.
    Done,
    /// The messages before `index` were handled; the one at `index` failed
    /// (those after it are delivered again).
    Failed { index: usize, error: HandlerError },
    /// The guest trapped or ran out of time: no message is known handled.
    Trap(String),
    /// The host failed, not the handler: retried without limit.
    Infrastructure(String),
}

/// A record on its way through the handler, with what happened to it so far.
struct Delivery {
    record: Record,
    /// Times it was given to the handler (the message's `attempt`).
    deliveries: u32,
    /// Times the handler failed it as retryable (spends `max_retries`).
    failures: u32,
}

/// The component's export.
enum Handler {
    Single(KafkaHandlerPre<HostState>),
    Batch(KafkaBatchHandlerPre<HostState>),
}

#[derive(Default)]
struct PartitionState {
    in_flight: Mutex<bool>,
    idle: Condvar,
    revoked: AtomicBool,
    /// Records the poll loop handed to this worker or its backlog, and
    /// records the worker has finished (offset stored): when they are
    /// equal nothing of the partition is pending, and the poll loop may
    /// store a filtered record's offset itself.
    accepted: AtomicU64,
    finished: AtomicU64,
    /// Records of the partition waiting in `backlog` (read without its lock).
    waiting: AtomicUsize,
    /// Records polled while the worker's queue was full, in order. Only the
    /// poll thread (and the rebalance callback, which runs on it) touches
    /// it, so its lock is never contended.
    backlog: Mutex<Waiting>,
    /// Whether fetching is paused for the backlog.
    paused: AtomicBool,
}

impl PartitionState {
    /// Nothing the poll loop handed over is still pending.
    fn caught_up(&self) -> bool {
        self.finished.load(Ordering::Acquire) == self.accepted.load(Ordering::Relaxed)
    }
}

struct Worker {
    sender: mpsc::Sender<Record>,
    state: Arc<PartitionState>,
}

/// The poll thread's own handle on a partition's worker, so the path each
/// record takes builds no key and hashes nothing. Valid for one
/// [`TriggerContext::generation`].
struct Route {
    topic: String,
    partition: i32,
    sender: mpsc::Sender<Record>,
    state: Arc<PartitionState>,
    filtered: Counter,
}

type Workers = Arc<Mutex<HashMap<(String, i32), Worker>>>;

/// Messages polled for a partition whose worker is full, in order. A
/// partition is paused only once its waiting messages pass
/// `max_buffered_messages` (or [`MAX_BUFFERED_BYTES`]), and resumed when
/// half of that is free. Pausing is kept for a handler that is really
/// behind: it drops what librdkafka prefetched for the partition, and with
/// tansu every pause stalled the whole consumer for about 600 ms, so
/// pausing at every full worker queue (as this host first did) cut
/// throughput tenfold.
#[derive(Default)]
struct Waiting {
    queue: VecDeque<Record>,
    bytes: usize,
}

impl Waiting {
    fn push(&mut self, record: Record) {
        self.bytes += record.size();
        self.queue.push_back(record);
    }

    fn pop(&mut self) -> Option<Record> {
        let record = self.queue.pop_front()?;
        self.bytes -= record.size();
        Some(record)
    }

    fn unpop(&mut self, record: Record) {
        self.bytes += record.size();
        self.queue.push_front(record);
    }
}

pub struct TriggerContext {
    workers: Workers,
    metrics: Arc<Metrics>,
    group: String,
    /// `starting_position` as a time (Unix ms).
    start_at: Option<i64>,
    /// Counts rebalances: the poll loop's routes are dropped when it moves.
    generation: AtomicU64,
}

impl ClientContext for TriggerContext {}

impl Record {
    /// Roughly what it holds in memory.
    fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 64
    }
}

impl TriggerContext {
    /// Partitions the group has no committed offset for start at the first
    /// record at or after `start_at` (the end when there is none); the
    /// others resume where the group left off.
    fn position_new_partitions(
        &self,
        consumer: &BaseConsumer<Self>,
        start_at: i64,
        assigned: &mut TopicPartitionList,
    ) {
        let timeout = Duration::from_secs(10);
        let committed = match consumer.committed_offsets(assigned.clone(), timeout) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "committed offsets unknown; starting_position not applied");
                return;
            }
        };
        let mut query = TopicPartitionList::new();
        for element in committed.elements() {
            if element.offset().to_raw().is_none_or(|o| o < 0) {
                let _ = query.add_partition_offset(
                    element.topic(),
                    element.partition(),
                    rdkafka::Offset::Offset(start_at),
                );
            }
        }
        if query.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(query, timeout) {
            Ok(found) => {
                for element in found.elements() {
                    let offset = match element.offset() {
                        rdkafka::Offset::Offset(n) if n >= 0 => rdkafka::Offset::Offset(n),
                        _ => rdkafka::Offset::End,
                    };
                    let _ =
                        assigned.set_partition_offset(element.topic(), element.partition(), offset);
                    tracing::info!(group = %self.group, topic = element.topic(), partition = element.partition(), ?offset, "new partition starts at starting_position");
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "offsets for starting_position unknown; starting at the earliest")
            }
        }
    }
}

impl ConsumerContext for TriggerContext {
    /// rdkafka's own rebalance, with the offsets of new partitions set when
    /// `starting_position` is a time.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        use rdkafka::consumer::RebalanceProtocol;
        use rdkafka::types::RDKafkaRespErr as Code;
        self.generation.fetch_add(1, Ordering::SeqCst);
        let assign = err == Code::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            if let Some(start_at) = self.start_at {
                self.position_new_partitions(consumer, start_at, list);
            }
        }
        let rebalance = match err {
            Code::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(list),
            Code::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(list),
            other => {
                let code: rdkafka::error::RDKafkaErrorCode = other.into();
                tracing::warn!(group = %self.group, error = %code, "rebalance error");
                Rebalance::Error(rdkafka::error::KafkaError::Rebalance(code))
            }
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(list),
            (true, false) => consumer.assign(list),
            (false, true) => consumer.incremental_unassign(list),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!(group = %self.group, error = %e, "applying a rebalance");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            let removed: Vec<(&(String, i32), Worker)> = {
                let mut workers = self.workers.lock().expect("workers");
                revoked
                    .iter()
                    .filter_map(|k| workers.remove(k).map(|w| (k, w)))
                    .collect()
            };
            // Whoever gets these partitions reads them from the committed
            // offset; what waited here is not ours any more.
            for (key, worker) in &removed {
                *worker.state.backlog.lock().expect("backlog") = Waiting::default();
                worker.state.waiting.store(0, Ordering::Relaxed);
                if worker.state.paused.swap(false, Ordering::Relaxed) {
                    set_paused(&self.metrics, &self.group, &key.0, key.1, false);
                }
            }
            // Let the message each worker is on finish, then commit what
            // finished, before another member takes the partitions.
            for (_, worker) in &removed {
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
    handler: Handler,
    /// Messages per invocation (1 for a `handle-message` component).
    batch_size: usize,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    group: String,
    /// Handles of the per-message metrics (no label building per message).
    hot: HotMetrics,
}

/// `trigger_kafka_messages_total` by topic and outcome, and the
/// per-invocation histograms and counter of this trigger's component.
struct HotMetrics {
    messages: HashMap<String, [Counter; OUTCOMES.len()]>,
    instantiations: Counter,
    instantiation_seconds: Histogram,
    handler_seconds: Histogram,
}

const OUTCOMES: [&str; 4] = ["ok", "retried", "dead_lettered", "filtered"];
/// Where `filtered` is in [`OUTCOMES`].
const FILTERED: usize = 3;

impl HotMetrics {
    fn new(metrics: &Metrics, component: &str, topics: &[String]) -> HotMetrics {
        let labels = [("component", component)];
        HotMetrics {
            messages: topics
                .iter()
                .map(|topic| {
                    let counters = OUTCOMES.map(|outcome| {
                        metrics.counter(
                            "trigger_kafka_messages_total",
                            &[
                                ("component", component),
                                ("topic", topic),
                                ("outcome", outcome),
                            ],
                        )
                    });
                    (topic.clone(), counters)
                })
                .collect(),
            instantiations: metrics.counter("trigger_kafka_instantiations_total", &labels),
            instantiation_seconds: metrics
                .histogram("trigger_kafka_instantiation_seconds", &labels),
            handler_seconds: metrics.histogram("trigger_kafka_handler_duration_seconds", &labels),
        }
    }
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

fn set_paused(metrics: &Metrics, group: &str, topic: &str, partition: i32, paused: bool) {
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

/// The record, detached; one the filters drop keeps only its place.
fn record_of(message: &rdkafka::message::BorrowedMessage<'_>, dropped: bool) -> Record {
    if dropped {
        return Record {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
            dropped,
        };
    }
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
        dropped,
    }
}

impl KafkaRunner {
    pub fn new(
        runtime: Arc<Runtime>,
        trigger: KafkaTrigger,
        producer: FutureProducer,
        metrics: Arc<Metrics>,
    ) -> Result<KafkaRunner> {
        let instance_pre = runtime.instance_pre(&trigger.component)?.clone();
        let where_ = || {
            format!(
                "`[[trigger.kafka]]` for `{}` in {}",
                trigger.component,
                runtime.app.dir.display()
            )
        };
        // A component exporting `handle-batch` is given batches.
        let (handler, batch_size) = match KafkaBatchHandlerPre::new(instance_pre.clone()) {
            Ok(pre) => (
                Handler::Batch(pre),
                trigger.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            ),
            Err(batch_error) => match KafkaHandlerPre::new(instance_pre) {
                Ok(pre) => {
                    if trigger.batch_size.is_some_and(|size| size > 1) {
                        anyhow::bail!(
                            "{}: batch_size is {} but component `{}` exports handle-message, not handle-batch (build it with #[kafka_batch_component], or leave batch_size out)",
                            where_(),
                            trigger.batch_size.unwrap_or(1),
                            trigger.component
                        );
                    }
                    (Handler::Single(pre), 1)
                }
                Err(single_error) => anyhow::bail!(
                    "{}: component `{}` exports neither handle-message ({single_error:#}) nor handle-batch ({batch_error:#})",
                    where_(),
                    trigger.component
                ),
            },
        };
        let group = trigger
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", runtime.app.name, trigger.component));
        Ok(KafkaRunner {
            hot: HotMetrics::new(&metrics, &trigger.component, &trigger.topics),
            permits: Arc::new(Semaphore::new(trigger.concurrency.max(1))),
            runtime,
            trigger,
            handler,
            batch_size,
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
            start_at: match self.trigger.starting_position {
                StartingPosition::At(ms) => Some(ms),
                _ => None,
            },
            generation: AtomicU64::new(0),
        };
        let mut config = settings.client_config();
        config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            // A time is applied on assignment (`TriggerContext::rebalance`);
            // partitions it cannot place start at the earliest.
            .set(
                "auto.offset.reset",
                match self.trigger.starting_position {
                    StartingPosition::Latest => "latest",
                    _ => "earliest",
                },
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
            .spawn(move || self.poll_loop(consumer, workers, handle, shutdown))?)
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
        handle: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut tasks = Vec::new();
        let mut routes: Vec<Route> = Vec::new();
        let mut generation = 0;
        while !*shutdown.borrow() {
            // While messages wait for a worker, poll briefly so they are
            // handed over as soon as it has room: a worker handles a full
            // queue in well under the idle poll's 100 ms, and waiting that
            // long capped each partition at one queue per 100 ms.
            let wait = if self.drain_backlog(&consumer, &routes) {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(100)
            };
            let message = match consumer.poll(wait) {
                None => continue,
                Some(Err(e)) => {
                    tracing::warn!(group = %self.group, error = %e, "consumer error");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            // A rebalance (run inside `poll`) may have replaced workers:
            // route to those there are now (some may have a backlog).
            let now = consumer.context().generation.load(Ordering::SeqCst);
            if now != generation {
                routes = self.routes(&workers);
                generation = now;
            }
            let (topic, partition) = (message.topic(), message.partition());
            let at = match routes
                .iter()
                .position(|r| r.partition == partition && r.topic == topic)
            {
                Some(at) => at,
                None => {
                    let route = self.route(
                        &workers, &consumer, &message, &handle, &shutdown, &mut tasks,
                    );
                    routes.push(route);
                    routes.len() - 1
                }
            };
            let route = &routes[at];
            // A record the filters drop, with nothing of its partition
            // pending, is done here: no copy, no worker, no instance.
            let dropped = !self.trigger.filters.is_empty()
                && !Self::passes_filters(&self.trigger.filters, &message);
            if dropped && route.state.caught_up() {
                if let Err(e) = consumer.store_offset_from_message(&message) {
                    tracing::debug!(error = %e, "offset not stored (partition revoked?)");
                }
                route.filtered.inc();
                continue;
            }
            let record = record_of(&message, dropped);
            route.state.accepted.fetch_add(1, Ordering::Relaxed);
            // Behind earlier waiting messages of its partition, in order.
            let record = if route.state.waiting.load(Ordering::Relaxed) > 0 {
                record
            } else {
                match route.sender.try_send(record) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Full(record)) => record,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        tracing::debug!("partition worker gone; the message will be redelivered");
                        continue;
                    }
                }
            };
            let mut waiting = route.state.backlog.lock().expect("backlog");
            waiting.push(record);
            route.state.waiting.fetch_add(1, Ordering::Relaxed);
            let full = waiting.queue.len() >= self.trigger.max_buffered_messages
                || waiting.bytes >= MAX_BUFFERED_BYTES;
            if full && !route.state.paused.swap(true, Ordering::Relaxed) {
                if let Err(e) = consumer.pause(&partition_list(&route.topic, route.partition)) {
                    tracing::debug!(error = %e, "pausing a partition");
                }
                set_paused(
                    &self.metrics,
                    &self.group,
                    &route.topic,
                    route.partition,
                    true,
                );
            }
        }
        // Shutdown: close every queue, let each worker finish the message it
        // is on, then commit what finished.
        routes.clear();
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

    /// The route to the worker of `message`'s partition, starting the
    /// worker if the partition has none yet.
    fn route(
        self: &Arc<Self>,
        workers: &Workers,
        consumer: &Arc<BaseConsumer<TriggerContext>>,
        message: &rdkafka::message::BorrowedMessage<'_>,
        handle: &tokio::runtime::Handle,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Route {
        let (topic, partition) = (message.topic(), message.partition());
        let mut map = workers.lock().expect("workers");
        let worker = map.entry((topic.to_owned(), partition)).or_insert_with(|| {
            tracing::info!(component = %self.trigger.component, topic, partition, offset = message.offset(), "consuming the partition from this offset");
            let (sender, receiver) = mpsc::channel(PARTITION_BUFFER.max(2 * self.batch_size));
            let state = Arc::new(PartitionState::default());
            tasks.push(handle.spawn(self.clone().partition_worker(
                receiver,
                state.clone(),
                consumer.clone(),
                shutdown.clone(),
            )));
            Worker { sender, state }
        });
        self.route_to(topic, partition, worker)
    }

    /// Routes to every worker there is.
    fn routes(&self, workers: &Workers) -> Vec<Route> {
        let map = workers.lock().expect("workers");
        map.iter()
            .map(|((topic, partition), worker)| self.route_to(topic, *partition, worker))
            .collect()
    }

    fn route_to(&self, topic: &str, partition: i32, worker: &Worker) -> Route {
        let filtered = match self.hot.messages.get(topic) {
            Some(counters) => counters[FILTERED].clone(),
            None => self.metrics.counter(
                "trigger_kafka_messages_total",
                &[
                    ("component", &self.trigger.component),
                    ("topic", topic),
                    ("outcome", "filtered"),
                ],
            ),
        };
        Route {
            topic: topic.to_owned(),
            partition,
            sender: worker.sender.clone(),
            state: worker.state.clone(),
            filtered,
        }
    }

    /// The filters, on the record as librdkafka holds it.
    fn passes_filters(
        filters: &[crate::filters::Filter],
        message: &rdkafka::message::BorrowedMessage<'_>,
    ) -> bool {
        let header = |name: &str| {
            let headers = message.headers()?;
            crate::filters::find_header(
                headers.iter().map(|h| (h.key, h.value.unwrap_or_default())),
                name,
            )
        };
        crate::filters::passes(
            filters,
            &crate::filters::Candidate {
                key: message.key(),
                header: &header,
                value: message.payload(),
            },
        )
    }

    /// Hands waiting messages to workers that have room again, and resumes
    /// fetching for partitions whose backlog is gone. Returns whether
    /// messages still wait.
    fn drain_backlog(&self, consumer: &BaseConsumer<TriggerContext>, routes: &[Route]) -> bool {
        let mut still_waiting = false;
        for route in routes {
            let state = &route.state;
            if state.waiting.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut queue = state.backlog.lock().expect("backlog");
            while let Some(message) = queue.pop() {
                match route.sender.try_send(message) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        queue.unpop(message);
                        break;
                    }
                    // The worker is gone (revoked): these are not ours.
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        *queue = Waiting::default();
                        break;
                    }
                }
            }
            state.waiting.store(queue.queue.len(), Ordering::Relaxed);
            // Fetching resumes once half the allowance is free, so what
            // still waits covers the broker's answer to the first fetch.
            let low = queue.queue.len() <= self.trigger.max_buffered_messages / 2
                && queue.bytes <= MAX_BUFFERED_BYTES / 2;
            if low && state.paused.swap(false, Ordering::Relaxed) {
                if let Err(e) = consumer.resume(&partition_list(&route.topic, route.partition)) {
                    tracing::debug!(error = %e, "resuming a partition");
                }
                set_paused(
                    &self.metrics,
                    &self.group,
                    &route.topic,
                    route.partition,
                    false,
                );
            }
            still_waiting |= !queue.queue.is_empty();
        }
        still_waiting
    }

    async fn partition_worker(
        self: Arc<Self>,
        mut receiver: mpsc::Receiver<Record>,
        state: Arc<PartitionState>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        shutdown: watch::Receiver<bool>,
    ) {
        while let Some(first) = receiver.recv().await {
            if state.revoked.load(Ordering::SeqCst) || *shutdown.borrow() {
                break;
            }
            let batch = self.fill_batch(first, &mut receiver).await;
            let taken = batch.len() as u64;
            *state.in_flight.lock().expect("partition state") = true;
            let store = |record: &Record| {
                if let Err(e) =
                    consumer.store_offset(&record.topic, record.partition, record.offset)
                {
                    tracing::debug!(error = %e, "offset not stored (partition revoked?)");
                }
            };
            let finished = self.process(batch, &state, &shutdown, &store).await;
            *state.in_flight.lock().expect("partition state") = false;
            state.idle.notify_all();
            if !finished {
                break;
            }
            state.finished.fetch_add(taken, Ordering::Release);
        }
    }

    /// The batch that starts with `first`: what is already queued for the
    /// partition, waiting up to `batch_window_ms` for more, up to `batch_size`.
    async fn fill_batch(
        &self,
        first: Record,
        receiver: &mut mpsc::Receiver<Record>,
    ) -> Vec<Record> {
        let mut batch = vec![first];
        let deadline = Instant::now() + Duration::from_millis(self.trigger.batch_window_ms);
        while batch.len() < self.batch_size {
            match receiver.try_recv() {
                Ok(record) => batch.push(record),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match tokio::time::timeout(left, receiver.recv()).await {
                        Ok(Some(record)) => batch.push(record),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        batch
    }

    fn stopping(state: &PartitionState, shutdown: &watch::Receiver<bool>) -> bool {
        *shutdown.borrow() || state.revoked.load(Ordering::SeqCst)
    }

    fn count(&self, topic: &str, outcome: &str, by: usize) {
        if by == 0 {
            return;
        }
        match (
            self.hot.messages.get(topic),
            OUTCOMES.iter().position(|o| *o == outcome),
        ) {
            (Some(counters), Some(i)) => {
                counters[i].inc_by(by as u64);
            }
            _ => self.metrics.inc(
                "trigger_kafka_messages_total",
                &[
                    ("component", &self.trigger.component),
                    ("topic", topic),
                    ("outcome", outcome),
                ],
                by as u64,
            ),
        }
    }

    /// How much older than `max_record_age_s` a record is, if it is.
    fn expired(&self, record: &Record) -> Option<Duration> {
        let max_age_ms = self.trigger.max_record_age_s? as i64 * 1000;
        let age_ms = chrono::Utc::now().timestamp_millis() - record.timestamp?;
        (age_ms > max_age_ms).then(|| Duration::from_millis(age_ms as u64))
    }

    /// Sleeps `delay` unless the partition stops first (then false).
    async fn pause(
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
        delay: Duration,
    ) -> bool {
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if Self::stopping(state, shutdown) {
                return false;
            }
            tokio::time::sleep((deadline - Instant::now()).min(Duration::from_millis(50))).await;
        }
        true
    }

    /// Takes a batch of one partition (one record for a `handle-message`
    /// component) through filters, the handler, retries and the dead-letter
    /// topic, storing offsets as the records before each point are done.
    /// Returns false when shutdown or revocation interrupted it (what was
    /// not stored is delivered again).
    async fn process(
        &self,
        records: Vec<Record>,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
        store: &(dyn Fn(&Record) + Sync),
    ) -> bool {
        let component = self.trigger.component.as_str();
        // Where the batch ends (for storing its offset), without its bytes.
        let Some(last) = records.last().map(|r| Record {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
            dropped: r.dropped,
        }) else {
            return true;
        };
        let topic = last.topic.clone();
        let total = records.len();
        // Filtered records are committed like successes; no instance is made.
        let mut pending: VecDeque<Delivery> = records
            .into_iter()
            .filter(|record| !record.dropped)
            .map(|record| Delivery {
                record,
                deliveries: 0,
                failures: 0,
            })
            .collect();
        self.count(&topic, "filtered", total - pending.len());
        // Whether the batch ends in filtered records, whose offset no
        // delivery below stores.
        let ends_filtered = pending.back().map(|d| d.record.offset) != Some(last.offset);
        // How many to deliver at once: halved after a trap until the record
        // at fault is found alone.
        let mut limit = self.batch_size;
        // Whether this partition is marked stalled (a host failure).
        let mut stalled = false;
        while !pending.is_empty() {
            if Self::stopping(state, shutdown) {
                return false;
            }
            if let Some(age) = self.expired(&pending[0].record) {
                let reason = format!(
                    "the record is {} s old, older than max_record_age_s ({} s)",
                    age.as_secs(),
                    self.trigger.max_record_age_s.unwrap_or_default()
                );
                let front = pending.pop_front().expect("not empty");
                if !self
                    .give_up(&front, "expired", &reason, state, shutdown)
                    .await
                {
                    return false;
                }
                store(&front.record);
                continue;
            }
            let take = pending
                .iter()
                .take(limit)
                .take_while(|d| self.expired(&d.record).is_none())
                .count();
            for delivery in pending.iter_mut().take(take) {
                delivery.deliveries += 1;
            }
            let mut lent: Vec<WitMessage> = pending.iter_mut().take(take).map(Self::lend).collect();
            let started = Instant::now();
            let spans = self.handler_spans(&mut lent);
            let verdict = self.invoke(&lent).await;
            end_handler_spans(spans, &verdict);
            for (delivery, message) in pending.iter_mut().zip(lent.drain(..)) {
                Self::give_back(delivery, message);
            }
            self.hot
                .handler_seconds
                .observe(started.elapsed().as_secs_f64());
            let partition = pending[0].record.partition;
            if stalled && !matches!(verdict, Verdict::Infrastructure(_)) {
                stalled = false;
                self.metrics
                    .set_stalled(&self.group, &topic, partition, None);
            }
            match verdict {
                Verdict::Done => {
                    self.count(&topic, "ok", take);
                    crate::console::note(|| {
                        let offsets = (pending[0].record.offset, pending[take - 1].record.offset);
                        serde_json::json!({"kind": "handled", "component": component, "group": self.group,
                            "topic": topic, "partition": partition, "offsets": [offsets.0, offsets.1], "count": take})
                    });
                    if let Some(last_done) = pending.drain(..take).next_back() {
                        store(&last_done.record);
                    }
                }
                Verdict::Failed { index, error } => {
                    self.count(&topic, "ok", index);
                    if let Some(last_done) = pending.drain(..index).next_back() {
                        store(&last_done.record);
                    }
                    let failed = &mut pending[0];
                    let record = &failed.record;
                    let (kind, reason) = match error {
                        HandlerError::Retryable(reason)
                            if failed.failures < self.trigger.max_retries =>
                        {
                            failed.failures += 1;
                            self.count(&topic, "retried", 1);
                            let delay = self.backoff(failed.failures);
                            tracing::info!(component, topic = %record.topic, partition = record.partition, offset = record.offset, attempt = failed.deliveries, ?delay, %reason, "retryable failure; retrying");
                            if !Self::pause(state, shutdown, delay).await {
                                return false;
                            }
                            continue;
                        }
                        HandlerError::Retryable(reason) => ("retries_exhausted", reason),
                        HandlerError::Permanent(reason) => ("permanent", reason),
                    };
                    let front = pending.pop_front().expect("not empty");
                    if !self.give_up(&front, kind, &reason, state, shutdown).await {
                        return false;
                    }
                    store(&front.record);
                }
                Verdict::Trap(reason) if take > 1 => {
                    // Which record made it trap is unknown: deliver the
                    // first half alone, then the rest, down to one record.
                    limit = take / 2;
                    tracing::warn!(component, topic = %topic, partition, batch = take, %reason, "the handler trapped on a batch; bisecting it");
                }
                Verdict::Trap(reason) => {
                    let front = pending.pop_front().expect("not empty");
                    if !self.give_up(&front, "trap", &reason, state, shutdown).await {
                        return false;
                    }
                    store(&front.record);
                    // Found it: full batches again.
                    limit = self.batch_size;
                }
                Verdict::Infrastructure(reason) => {
                    // Not the records' fault: wait it out, however long,
                    // without spending their retry budget.
                    for delivery in pending.iter_mut().take(take) {
                        delivery.deliveries -= 1;
                    }
                    self.metrics.inc(
                        "trigger_kafka_infrastructure_retries_total",
                        &[("component", component), ("topic", &topic)],
                        1,
                    );
                    stalled = true;
                    self.metrics
                        .set_stalled(&self.group, &topic, partition, Some(&reason));
                    let delay = Duration::from_millis(self.trigger.retry_backoff_max_ms.min(5_000));
                    tracing::warn!(component, topic = %topic, partition, offset = pending[0].record.offset, ?delay, %reason, "host failure; the partition waits and retries");
                    if !Self::pause(state, shutdown, delay).await {
                        self.metrics
                            .set_stalled(&self.group, &topic, partition, None);
                        return false;
                    }
                }
            }
        }
        // Filtered records after the last delivered one are done too.
        if ends_filtered {
            store(&last);
        }
        true
    }

    /// Dead-letters a record (counted); false if shutdown came first.
    async fn give_up(
        &self,
        delivery: &Delivery,
        kind: &str,
        reason: &str,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        let record = &delivery.record;
        tracing::warn!(component = %self.trigger.component, topic = %record.topic, partition = record.partition, offset = record.offset, attempts = delivery.deliveries, kind, %reason, "dead-lettering message");
        if !self
            .dead_letter(record, kind, reason, delivery.deliveries, state, shutdown)
            .await
        {
            return false;
        }
        self.count(&record.topic, "dead_lettered", 1);
        crate::console::note(|| {
            serde_json::json!({"kind": "dead_lettered", "component": self.trigger.component,
                "group": self.group, "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "reason": reason})
        });
        true
    }

    /// Exponential backoff, capped, with ±10 % jitter so partitions that
    /// failed together do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .trigger
            .retry_backoff_ms
            .saturating_mul(1u64 << (attempt - 1).min(20));
        let capped = base.min(self.trigger.retry_backoff_max_ms);
        let jitter = fastrand::u64(0..=capped / 5);
        Duration::from_millis(capped - capped / 10 + jitter)
    }

    /// The record as the guest sees it, its bytes moved, not copied (the
    /// copy showed in the profile); [`Self::give_back`] restores them.
    fn lend(delivery: &mut Delivery) -> WitMessage {
        let record = &mut delivery.record;
        WitMessage {
            topic: std::mem::take(&mut record.topic),
            partition: record.partition,
            offset: record.offset,
            key: record.key.take(),
            value: record.value.take(),
            headers: std::mem::take(&mut record.headers)
                .into_iter()
                .map(|(key, value)| WitHeader { key, value })
                .collect(),
            timestamp: record.timestamp,
            attempt: delivery.deliveries,
        }
    }

    fn give_back(delivery: &mut Delivery, message: WitMessage) {
        let record = &mut delivery.record;
        record.topic = message.topic;
        record.key = message.key;
        record.value = message.value;
        record.headers = message
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect();
    }

    /// A span per message (none with tracing off), each continuing its
    /// message's trace; the message's `traceparent` header becomes the
    /// span's, so what the handler writes continues it.
    fn handler_spans(&self, messages: &mut [WitMessage]) -> Vec<telemetry::Span> {
        if !telemetry::enabled() {
            return Vec::new();
        }
        let batch = messages.len() as i64;
        messages
            .iter_mut()
            .map(|message| {
                let parent = message
                    .headers
                    .iter()
                    .find(|h| h.key == telemetry::TRACEPARENT)
                    .and_then(|h| std::str::from_utf8(&h.value).ok());
                let span = telemetry::Span::start(
                    "spin_trigger_kafka.handle_message",
                    SpanKind::Consumer,
                    parent,
                    vec![
                        KeyValue::new("messaging.system", "kafka"),
                        KeyValue::new("messaging.operation.type", "process"),
                        KeyValue::new("messaging.destination.name", message.topic.clone()),
                        KeyValue::new(
                            "messaging.destination.partition.id",
                            message.partition.to_string(),
                        ),
                        KeyValue::new("messaging.kafka.offset", message.offset),
                        KeyValue::new("messaging.consumer.group.name", self.group.clone()),
                        KeyValue::new("messaging.batch.message_count", batch),
                        KeyValue::new("spin.component", self.trigger.component.clone()),
                    ],
                );
                if let Some(traceparent) = span.traceparent() {
                    match message
                        .headers
                        .iter_mut()
                        .find(|h| h.key == telemetry::TRACEPARENT)
                    {
                        Some(header) => header.value = traceparent.into_bytes(),
                        None => message.headers.push(WitHeader {
                            key: telemetry::TRACEPARENT.to_owned(),
                            value: traceparent.into_bytes(),
                        }),
                    }
                }
                span
            })
            .collect()
    }

    /// One instance, one call: `handle-message` with the first record, or
    /// `handle-batch` with them all.
    async fn invoke(&self, messages: &[WitMessage]) -> Verdict {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let timeout = Duration::from_millis(self.trigger.handler_timeout_ms);
        // Instantiation time counts the store (WASI context, limits) too.
        let started = Instant::now();
        let mut store = match self.runtime.store(&self.trigger.component, timeout) {
            Ok(store) => store,
            Err(e) => return Verdict::Infrastructure(format!("host: {e:#}")),
        };
        let instantiated = |took: Duration| {
            self.hot.instantiations.inc();
            self.hot.instantiation_seconds.observe(took.as_secs_f64());
        };
        // The epoch deadline stops a guest that computes too long; this one
        // also counts time spent waiting in host calls (storage, HTTP).
        let call = async {
            let result: wasmtime::Result<Option<(usize, HandlerError)>> = match &self.handler {
                Handler::Single(pre) => match pre.instantiate_async(&mut store).await {
                    Ok(handler) => {
                        instantiated(started.elapsed());
                        handler
                            .call_handle_message(&mut store, &messages[0])
                            .await
                            .map(|r| r.err().map(|e| (0, e)))
                    }
                    Err(e) => {
                        return Verdict::Infrastructure(format!("instantiation failed: {e:#}"))
                    }
                },
                Handler::Batch(pre) => match pre.instantiate_async(&mut store).await {
                    Ok(handler) => {
                        instantiated(started.elapsed());
                        handler
                            .call_handle_batch(&mut store, messages)
                            .await
                            .and_then(|failures| first_failure(failures, messages.len()))
                    }
                    Err(e) => {
                        return Verdict::Infrastructure(format!("instantiation failed: {e:#}"))
                    }
                },
            };
            // A guest that failed because storage failed is not at fault.
            let host_failure = store.data_mut().take_infrastructure_error();
            match (result, host_failure) {
                (Ok(None), _) => Verdict::Done,
                (Ok(Some((index, HandlerError::Permanent(reason)))), _) => Verdict::Failed {
                    index,
                    error: HandlerError::Permanent(reason),
                },
                (Ok(Some((_, HandlerError::Retryable(_)))) | Err(_), Some(host)) => {
                    Verdict::Infrastructure(host)
                }
                (Ok(Some((index, error))), None) => Verdict::Failed { index, error },
                (Err(trap), None) => Verdict::Trap(format!("{trap:#}")),
            }
        };
        match tokio::time::timeout(timeout + crate::engine::EPOCH_TICK * 10, call).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::Trap(format!(
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
            let why = [
                ("dlq-reason", reason.as_str()),
                ("dlq-error-kind", kind),
                ("dlq-attempts", &attempts),
                ("dlq-original-topic", &record.topic),
                ("dlq-original-partition", &partition),
                ("dlq-original-offset", &offset),
                ("dlq-component", &self.trigger.component),
                ("dlq-consumer-group", &self.group),
                ("dlq-failed-at", &failed_at),
            ];
            let headers: Vec<(&str, &[u8])> = record
                .headers
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice()))
                .chain(why.iter().map(|(key, value)| (*key, value.as_bytes())))
                .collect();
            let dlq = crate::kafka_client::record(
                &topic,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            );
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

/// The first failure a `handle-batch` reported; an index outside the batch
/// is the guest's bug, handled like a trap.
/// Ends the handler spans with what the call said of each message.
fn end_handler_spans(spans: Vec<telemetry::Span>, verdict: &Verdict) {
    for (i, mut span) in spans.into_iter().enumerate() {
        match verdict {
            Verdict::Done => {}
            Verdict::Failed { index, error } if i == *index => span.fail(match error {
                HandlerError::Retryable(reason) => format!("retryable: {reason}"),
                HandlerError::Permanent(reason) => format!("permanent: {reason}"),
            }),
            Verdict::Failed { index, .. } if i > *index => {
                span.fail("not handled: an earlier message of the batch failed")
            }
            Verdict::Failed { .. } => {}
            Verdict::Trap(reason) => span.fail(format!("trap: {reason}")),
            Verdict::Infrastructure(reason) => span.fail(format!("host: {reason}")),
        }
    }
}

fn first_failure(
    failures: Vec<crate::bindings::kafka::todo_chatbot::kafka_trigger::types::BatchItemFailure>,
    size: usize,
) -> wasmtime::Result<Option<(usize, HandlerError)>> {
    let Some(first) = failures.into_iter().min_by_key(|f| f.index) else {
        return Ok(None);
    };
    let index = first.index as usize;
    if index >= size {
        wasmtime::bail!("handle-batch reported a failure at index {index} of a batch of {size}");
    }
    Ok(Some((index, first.error)))
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
