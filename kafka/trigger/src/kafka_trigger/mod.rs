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
//!
//! # Layout
//!
//! - `group`: the rebalance callbacks, topic checks, lag and assignment;
//! - `poll`: the poll loop, filters and routing to partition workers;
//! - `partition`: the state a partition's worker and the poll loop share;
//! - `worker`: a partition's records in order through the handler;
//! - `invoke`: one handler call and its verdict;
//! - `dead_letter`: records that failed for good, to `<topic>.dlq`;
//! - `start`: the Kafka side of a process (producer, relays, consumers,
//!   console) as a [`crate::triggers::Trigger`].

mod dead_letter;
mod group;
mod invoke;
mod partition;
mod poll;
mod start;
mod worker;

pub use start::Kafka;

use group::*;
use invoke::*;
use partition::*;
use worker::*;

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
use crate::host::{HostFault, HostState};
use crate::kafka_client::KafkaSettings;
use crate::metrics::{
    ComponentLabels, ComponentTopicLabels, Counter, GroupTopicLabels, Label, MessageLabels,
    Metrics, Outcome, PartitionLabels,
};
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

/// What the poll loop hands a partition's worker, in offset order; the
/// worker hands it on to the handler, and to the dead-letter topic if it
/// fails for good.
pub(super) enum Item {
    /// A record for the handler, detached from the consumer and already in
    /// the guest's shape: the call borrows it, nothing is copied back.
    Deliver(WitMessage),
    /// A record the filters dropped while an earlier one of its partition
    /// was pending: only its place, stored in its turn (decided once, in
    /// the poll loop, and its bytes never copied).
    Skip { offset: i64 },
}

impl Item {
    fn offset(&self) -> i64 {
        match self {
            Item::Deliver(message) => message.offset,
            Item::Skip { offset } => *offset,
        }
    }

    /// Roughly what it holds in memory.
    fn size(&self) -> usize {
        match self {
            Item::Deliver(m) => {
                m.topic.len()
                    + m.key.as_ref().map_or(0, Vec::len)
                    + m.value.as_ref().map_or(0, Vec::len)
                    + m.headers
                        .iter()
                        .map(|h| h.key.len() + h.value.len())
                        .sum::<usize>()
                    + 64
            }
            Item::Skip { .. } => 16,
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
    group: Label,
    /// This trigger's component as a metric label.
    component: ComponentLabels,
}

impl KafkaRunner {
    pub(super) fn new(
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
        // The trigger's series exist from the start, at 0, so a dashboard
        // rates them before the first message.
        let component = ComponentLabels {
            component: trigger.component.as_str().into(),
        };
        for topic in &trigger.topics {
            for outcome in Outcome::ALL {
                let _ = metrics.messages.get_or_create(&MessageLabels {
                    component: component.component.clone(),
                    topic: topic.as_str().into(),
                    outcome,
                });
            }
        }
        let _ = metrics.instantiations.get_or_create(&component);
        let _ = metrics.instantiation_seconds.get_or_create(&component);
        let _ = metrics.handler_seconds.get_or_create(&component);
        Ok(KafkaRunner {
            component,
            permits: Arc::new(Semaphore::new(trigger.concurrency.max(1))),
            runtime,
            trigger,
            handler,
            batch_size,
            producer,
            metrics,
            group: group.into(),
        })
    }

    /// Starts the poll loop on its own thread; returns when it has stopped
    /// and committed.
    pub(super) fn spawn(
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
            .set("group.id", &*self.group)
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
        probe_config.set("group.id", &*self.group);
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
}
