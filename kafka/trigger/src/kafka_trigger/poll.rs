//! The poll loop: one thread per trigger polls librdkafka, runs the
//! filters on its copy of each record, and hands records to their
//! partition's worker, pausing a partition whose worker is behind.

use super::*;

/// The poll thread's own handle on a partition's worker, so the path each
/// record takes builds no key and hashes nothing. Valid for one
/// [`TriggerContext::generation`].
pub(super) struct Route {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) sender: mpsc::Sender<Item>,
    pub(super) state: Arc<PartitionState>,
    pub(super) filtered: Counter,
}

/// The record as the worker takes it: detached, in the guest's shape, or
/// only its place when the filters drop it.
pub(super) fn item_of(message: &rdkafka::message::BorrowedMessage<'_>, dropped: bool) -> Item {
    if dropped {
        return Item::Skip {
            offset: message.offset(),
        };
    }
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| WitHeader {
                    key: header.key.to_owned(),
                    value: header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Item::Deliver(WitMessage {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: message.timestamp().to_millis(),
        attempt: 0,
    })
}

impl KafkaRunner {
    pub(super) fn poll_loop(
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
            let item = item_of(&message, dropped);
            route.state.accepted.fetch_add(1, Ordering::Relaxed);
            // Behind earlier waiting messages of its partition, in order.
            let item = if route.state.waiting.load(Ordering::Relaxed) > 0 {
                item
            } else {
                match route.sender.try_send(item) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Full(item)) => item,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        tracing::debug!("partition worker gone; the message will be redelivered");
                        continue;
                    }
                }
            };
            let mut waiting = route.state.backlog.lock().expect("backlog");
            waiting.push(item);
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
    pub(super) fn route(
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
                (topic.into(), partition),
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
    pub(super) fn routes(&self, workers: &Workers) -> Vec<Route> {
        let map = workers.lock().expect("workers");
        map.iter()
            .map(|((topic, partition), worker)| self.route_to(topic, *partition, worker))
            .collect()
    }

    pub(super) fn route_to(&self, topic: &str, partition: i32, worker: &Worker) -> Route {
        // The one metric counted per record here: its handle, once a route.
        let filtered = self.metrics.messages.get_or_create_owned(&MessageLabels {
            component: self.component.component.clone(),
            topic: topic.into(),
            outcome: Outcome::Filtered,
        });
        Route {
            topic: topic.to_owned(),
            partition,
            sender: worker.sender.clone(),
            state: worker.state.clone(),
            filtered,
        }
    }

    /// The filters, on the record as librdkafka holds it.
    pub(super) fn passes_filters(
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
    pub(super) fn drain_backlog(
        &self,
        consumer: &BaseConsumer<TriggerContext>,
        routes: &[Route],
    ) -> bool {
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
}
