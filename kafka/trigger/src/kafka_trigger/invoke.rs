//! One handler call: an instance, `handle-message` or `handle-batch`, and
//! what the call said of each message (with a span per message when
//! tracing is on).

use super::*;

/// What the handler said about the messages it was given. A failure of
/// the host instead comes back as the call's [`HostFault`].
pub(super) enum Verdict {
    /// All handled.
    Done,
    /// The messages before `index` were handled; the one at `index` failed
    /// (those after it are delivered again).
    Failed { index: usize, error: HandlerError },
    /// The guest trapped or ran out of time: no message is known handled.
    Trap(String),
}

/// The component's export.
pub(super) enum Handler {
    Single(KafkaHandlerPre<HostState>),
    Batch(KafkaBatchHandlerPre<HostState>),
}

impl KafkaRunner {
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
    /// `handle-batch` with them all. `Err` is the host's failure (no
    /// instance to run it in, storage busy or full), whatever the guest
    /// made of it: nobody's verdict on the messages.
    pub(super) async fn invoke(&self, messages: &[WitMessage]) -> Result<Verdict, HostFault> {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let timeout = Duration::from_millis(self.trigger.handler_timeout_ms);
        // Instantiation time counts the store (WASI context, limits) too.
        let started = Instant::now();
        let mut store = match self.runtime.store(&self.trigger.component, timeout) {
            Ok(store) => store,
            Err(e) => return Err(HostFault(format!("host: {e:#}"))),
        };
        let instantiated = |took: Duration| {
            self.metrics
                .instantiations
                .get_or_create(&self.component)
                .inc();
            self.metrics
                .instantiation_seconds
                .get_or_create(&self.component)
                .observe(took.as_secs_f64());
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
                    Err(e) => return Err(HostFault(format!("instantiation failed: {e:#}"))),
                },
                Handler::Batch(pre) => match pre.instantiate_async(&mut store).await {
                    Ok(handler) => {
                        instantiated(started.elapsed());
                        handler
                            .call_handle_batch(&mut store, messages)
                            .await
                            .and_then(|failures| first_failure(failures, messages.len()))
                    }
                    Err(e) => return Err(HostFault(format!("instantiation failed: {e:#}"))),
                },
            };
            // A guest that failed because storage failed is not at fault.
            match (result, store.data_mut().take_fault()) {
                (Ok(None), _) => Ok(Verdict::Done),
                (Ok(Some((index, HandlerError::Permanent(reason)))), _) => Ok(Verdict::Failed {
                    index,
                    error: HandlerError::Permanent(reason),
                }),
                (Ok(Some((_, HandlerError::Retryable(_)))) | Err(_), Some(fault)) => Err(fault),
                (Ok(Some((index, error))), None) => Ok(Verdict::Failed { index, error }),
                (Err(trap), None) => Ok(Verdict::Trap(format!("{trap:#}"))),
            }
        };
        match tokio::time::timeout(timeout + crate::engine::EPOCH_TICK * 10, call).await {
            Ok(verdict) => verdict,
            Err(_) => Ok(Verdict::Trap(format!(
                "the handler did not finish within handler_timeout_ms ({} ms)",
                self.trigger.handler_timeout_ms
            ))),
        }
    }
}

/// Ends the handler spans with what the call said of each message.
pub(super) fn end_handler_spans(spans: Vec<telemetry::Span>, verdict: &Result<Verdict, HostFault>) {
    for (i, mut span) in spans.into_iter().enumerate() {
        match verdict {
            Ok(Verdict::Done) => {}
            Ok(Verdict::Failed { index, error }) if i == *index => span.fail(match error {
                HandlerError::Retryable(reason) => format!("retryable: {reason}"),
                HandlerError::Permanent(reason) => format!("permanent: {reason}"),
            }),
            Ok(Verdict::Failed { index, .. }) if i > *index => {
                span.fail("not handled: an earlier message of the batch failed")
            }
            Ok(Verdict::Failed { .. }) => {}
            Ok(Verdict::Trap(reason)) => span.fail(format!("trap: {reason}")),
            Err(fault) => span.fail(format!("host: {fault}")),
        }
    }
}

/// The first failure a `handle-batch` reported; an index outside the batch
/// is the guest's bug, handled like a trap.
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
