//! A partition's worker: takes its records in order, in batches, through
//! the handler with retries and backoff, and stores each offset once its
//! record is handled or dead-lettered.

use super::*;

impl KafkaRunner {
    pub(super) async fn partition_worker(
        self: Arc<Self>,
        (topic, partition): (Label, i32),
        mut receiver: mpsc::Receiver<Item>,
        state: Arc<PartitionState>,
        consumer: Arc<BaseConsumer<TriggerContext>>,
        shutdown: watch::Receiver<bool>,
    ) {
        while let Some(first) = receiver.recv().await {
            if state.is_revoked() || *shutdown.borrow() {
                break;
            }
            let batch = self.fill_batch(first, &mut receiver).await;
            let taken = batch.len() as u64;
            *state.in_flight.lock().expect("partition state") = true;
            let store = |offset: i64| {
                if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                    tracing::debug!(error = %e, "offset not stored (partition revoked?)");
                }
            };
            let finished = self.process(&topic, batch, &state, &shutdown, &store).await;
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
    pub(super) async fn fill_batch(
        &self,
        first: Item,
        receiver: &mut mpsc::Receiver<Item>,
    ) -> Vec<Item> {
        let mut batch = vec![first];
        let deadline = Instant::now() + Duration::from_millis(self.trigger.batch_window_ms);
        while batch.len() < self.batch_size {
            match receiver.try_recv() {
                Ok(item) => batch.push(item),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match tokio::time::timeout(left, receiver.recv()).await {
                        Ok(Some(item)) => batch.push(item),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        batch
    }

    pub(super) fn stopping(state: &PartitionState, shutdown: &watch::Receiver<bool>) -> bool {
        *shutdown.borrow() || state.is_revoked()
    }

    pub(super) fn count(&self, topic: &Label, outcome: Outcome, by: usize) {
        if by == 0 {
            return;
        }
        self.metrics
            .messages
            .get_or_create(&MessageLabels {
                component: self.component.component.clone(),
                topic: topic.clone(),
                outcome,
            })
            .inc_by(by as u64);
    }

    /// How much older than `max_record_age_s` a record is, if it is.
    pub(super) fn expired(&self, record: &WitMessage) -> Option<Duration> {
        let max_age_ms = self.trigger.max_record_age_s? as i64 * 1000;
        let age_ms = chrono::Utc::now().timestamp_millis() - record.timestamp?;
        (age_ms > max_age_ms).then(|| Duration::from_millis(age_ms as u64))
    }

    /// Sleeps `delay` unless the partition stops first (then false).
    pub(super) async fn pause(
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
        delay: Duration,
    ) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => !Self::stopping(state, shutdown),
            _ = wait_for_stop(state, shutdown.clone()) => false,
        }
    }

    /// Takes a batch of one partition (one record for a `handle-message`
    /// component) through filters, the handler, retries and the dead-letter
    /// topic, storing offsets as the records before each point are done.
    /// Returns false when shutdown or revocation interrupted it (what was
    /// not stored is delivered again).
    pub(super) async fn process(
        &self,
        topic: &Label,
        items: Vec<Item>,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
        store: &(dyn Fn(i64) + Sync),
    ) -> bool {
        let component = self.trigger.component.as_str();
        // Where the batch ends, for storing its offset.
        let Some(last) = items.last().map(Item::offset) else {
            return true;
        };
        let total = items.len();
        // Filtered records are committed like successes; no instance is made.
        let mut pending: VecDeque<WitMessage> = items
            .into_iter()
            .filter_map(|item| match item {
                Item::Deliver(message) => Some(message),
                Item::Skip { .. } => None,
            })
            .collect();
        self.count(topic, Outcome::Filtered, total - pending.len());
        // Whether the batch ends in filtered records, whose offset no
        // delivery below stores.
        let ends_filtered = pending.back().map(|m| m.offset) != Some(last);
        // Retryable failures of the record at the front (only the front
        // record is ever retried: what came before it is done).
        let mut failures = Failures::default();
        // How many to deliver at once: halved after a trap until the record
        // at fault is found alone.
        let mut limit = self.batch_size;
        // Whether this partition is marked stalled (a host failure).
        let mut stalled = false;
        while !pending.is_empty() {
            if Self::stopping(state, shutdown) {
                return false;
            }
            if let Some(age) = self.expired(&pending[0]) {
                let reason = format!(
                    "the record is {} s old, older than max_record_age_s ({} s)",
                    age.as_secs(),
                    self.trigger.max_record_age_s.unwrap_or_default()
                );
                let front = pending.pop_front().expect("not empty");
                if !self
                    .give_up(topic, &front, "expired", &reason, state, shutdown)
                    .await
                {
                    return false;
                }
                store(front.offset);
                continue;
            }
            let take = pending
                .iter()
                .take(limit)
                .take_while(|m| self.expired(m).is_none())
                .count();
            let delivered = &mut pending.make_contiguous()[..take];
            for message in delivered.iter_mut() {
                message.attempt += 1;
            }
            let started = Instant::now();
            let spans = self.handler_spans(delivered);
            let verdict = self.invoke(delivered).await;
            end_handler_spans(spans, &verdict);
            self.metrics
                .handler_seconds
                .get_or_create(&self.component)
                .observe(started.elapsed().as_secs_f64());
            let partition = pending[0].partition;
            if stalled && verdict.is_ok() {
                stalled = false;
                self.metrics
                    .set_stalled(&self.group, topic, partition, None);
            }
            match verdict {
                Ok(Verdict::Done) => {
                    self.count(topic, Outcome::Ok, take);
                    crate::console::note(|| {
                        let offsets = (pending[0].offset, pending[take - 1].offset);
                        serde_json::json!({"kind": "handled", "component": component, "group": &*self.group,
                            "topic": &**topic, "partition": partition, "offsets": [offsets.0, offsets.1], "count": take})
                    });
                    if let Some(last_done) = pending.drain(..take).next_back() {
                        store(last_done.offset);
                    }
                }
                Ok(Verdict::Failed { index, error }) => {
                    self.count(topic, Outcome::Ok, index);
                    if let Some(last_done) = pending.drain(..index).next_back() {
                        store(last_done.offset);
                    }
                    let record = &pending[0];
                    let failed = failures.of(record.offset);
                    let (kind, reason) = match error {
                        HandlerError::Retryable(reason) if failed < self.trigger.max_retries => {
                            failures.count += 1;
                            self.count(topic, Outcome::Retried, 1);
                            let delay = self.backoff(failures.count);
                            tracing::info!(component, topic = %record.topic, partition = record.partition, offset = record.offset, attempt = record.attempt, ?delay, %reason, "retryable failure; retrying");
                            if !Self::pause(state, shutdown, delay).await {
                                return false;
                            }
                            continue;
                        }
                        HandlerError::Retryable(reason) => ("retries_exhausted", reason),
                        HandlerError::Permanent(reason) => ("permanent", reason),
                    };
                    let front = pending.pop_front().expect("not empty");
                    if !self
                        .give_up(topic, &front, kind, &reason, state, shutdown)
                        .await
                    {
                        return false;
                    }
                    store(front.offset);
                }
                Ok(Verdict::Trap(reason)) if take > 1 => {
                    // Which record made it trap is unknown: deliver the
                    // first half alone, then the rest, down to one record.
                    limit = take / 2;
                    tracing::warn!(component, topic = %topic, partition, batch = take, %reason, "the handler trapped on a batch; bisecting it");
                }
                Ok(Verdict::Trap(reason)) => {
                    let front = pending.pop_front().expect("not empty");
                    if !self
                        .give_up(topic, &front, "trap", &reason, state, shutdown)
                        .await
                    {
                        return false;
                    }
                    store(front.offset);
                    // Found it: full batches again.
                    limit = self.batch_size;
                }
                Err(HostFault(reason)) => {
                    // Not the records' fault: wait it out, however long,
                    // without spending their retry budget.
                    for message in pending.iter_mut().take(take) {
                        message.attempt -= 1;
                    }
                    self.metrics
                        .infrastructure_retries
                        .get_or_create(&ComponentTopicLabels {
                            component: self.component.component.clone(),
                            topic: topic.clone(),
                        })
                        .inc();
                    stalled = true;
                    self.metrics
                        .set_stalled(&self.group, topic, partition, Some(&reason));
                    let delay = Duration::from_millis(self.trigger.retry_backoff_max_ms.min(5_000));
                    tracing::warn!(component, topic = %topic, partition, offset = pending[0].offset, ?delay, %reason, "host failure; the partition waits and retries");
                    if !Self::pause(state, shutdown, delay).await {
                        self.metrics
                            .set_stalled(&self.group, topic, partition, None);
                        return false;
                    }
                }
            }
        }
        // Filtered records after the last delivered one are done too.
        if ends_filtered {
            store(last);
        }
        true
    }

    /// Exponential backoff, capped, with ±10 % jitter so partitions that
    /// failed together do not retry in step.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .trigger
            .retry_backoff_ms
            .saturating_mul(1u64 << (attempt - 1).min(20));
        let capped = base.min(self.trigger.retry_backoff_max_ms);
        let jitter = fastrand::u64(0..=capped / 5);
        Duration::from_millis(capped - capped / 10 + jitter)
    }
}

/// Retryable failures of one record (the front of a worker's queue).
#[derive(Default)]
struct Failures {
    offset: i64,
    count: u32,
}

impl Failures {
    /// The record's failures so far (none when a new record is at the front).
    fn of(&mut self, offset: i64) -> u32 {
        if self.offset != offset {
            *self = Failures { offset, count: 0 };
        }
        self.count
    }
}

/// Returns once the process shuts down or the partition is revoked.
pub(super) async fn wait_for_stop(state: &PartitionState, mut shutdown: watch::Receiver<bool>) {
    let mut revoked = state.revoked.subscribe();
    tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => {}
        _ = revoked.wait_for(|revoked| *revoked) => {}
    }
}
