//! One handler call: an instance, `handle-message` or `handle-batch`, and
//! what the call said of each message (with a span per message when
//! tracing is on).

use super::*;

/// What one invocation said about the messages it was given.
pub(super) enum Verdict {
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
pub(super) struct Delivery {
    pub(super) record: Record,
    /// Times it was given to the handler (the message's `attempt`).
    pub(super) deliveries: u32,
    /// Times the handler failed it as retryable (spends `max_retries`).
    pub(super) failures: u32,
}

/// The component's export.
pub(super) enum Handler {
    Single(KafkaHandlerPre<HostState>),
    Batch(KafkaBatchHandlerPre<HostState>),
}

impl KafkaRunner {
    /// The record as the guest sees it, its bytes moved, not copied (the
    /// copy showed in the profile); [`Self::give_back`] restores them.
    pub(super) fn lend(delivery: &mut Delivery) -> WitMessage {
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

    pub(super) fn give_back(delivery: &mut Delivery, message: WitMessage) {
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
    pub(super) fn handler_spans(&self, messages: &mut [WitMessage]) -> Vec<telemetry::Span> {
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
    pub(super) async fn invoke(&self, messages: &[WitMessage]) -> Verdict {
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
}

/// The first failure a `handle-batch` reported; an index outside the batch
/// is the guest's bug, handled like a trap.
/// Ends the handler spans with what the call said of each message.
pub(super) fn end_handler_spans(spans: Vec<telemetry::Span>, verdict: &Verdict) {
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

pub(super) fn first_failure(
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
