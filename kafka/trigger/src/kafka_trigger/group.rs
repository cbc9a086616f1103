//! The consumer group: the rebalance callbacks (partitions placed at a
//! time, workers started and stopped with them), the topics checked at
//! start, and the lag and assignment read from the broker.

use super::*;

pub struct TriggerContext {
    pub(super) workers: Workers,
    pub(super) metrics: Arc<Metrics>,
    pub(super) group: Label,
    /// `starting_position` as a time (Unix ms).
    pub(super) start_at: Option<i64>,
    /// Counts rebalances: the poll loop's routes are dropped when it moves.
    pub(super) generation: AtomicU64,
}

impl ClientContext for TriggerContext {}

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
                worker.state.revoke();
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

/// This process's stable identity in a group: the group, the host name (a
/// pod's name on Kubernetes) and the app's directory, so a restart replaces
/// its earlier self and two hosts never fence each other.
/// `TRIGGER_KAFKA_INSTANCE_ID` sets it, for several members of one app on
/// one host.
pub(super) fn instance_id(group: &str, app_dir: &std::path::Path) -> String {
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

pub(super) fn partition_list(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}

impl KafkaRunner {
    /// Every topic and its dead-letter topic must exist: consuming a topic
    /// that is not there waits forever, and a message that cannot be
    /// dead-lettered can never be committed. Checked once at start; with
    /// the broker unreachable the check is skipped (and said so).
    pub(super) fn check_topics(&self, consumer: &BaseConsumer<TriggerContext>) -> Result<()> {
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
    pub(super) fn watch_group(
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
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabels {
                        group: self.group.clone(),
                        topic: topic.into(),
                        partition,
                    })
                    .set((high - done).max(0));
            }
            if let Ok(metadata) = probe.fetch_metadata(None, timeout) {
                for topic in &self.trigger.topics {
                    let total = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map_or(0, |t| t.partitions().len());
                    let mine = assigned.get(topic).copied().unwrap_or(0);
                    let labels = GroupTopicLabels {
                        group: self.group.clone(),
                        topic: topic.as_str().into(),
                    };
                    self.metrics
                        .partitions_assigned
                        .get_or_create(&labels)
                        .set(mine as i64);
                    self.metrics
                        .partitions_unassigned
                        .get_or_create(&labels)
                        .set(total.saturating_sub(mine) as i64);
                }
            }
        }
    }
}
