//! Dead-lettering: a record that failed for good goes to `<topic>.dlq`
//! with why, where from and how many attempts, before its offset is
//! stored.

use super::*;

impl KafkaRunner {
    /// Dead-letters a record (counted); false if shutdown came first.
    pub(super) async fn give_up(
        &self,
        topic: &Label,
        record: &WitMessage,
        kind: &str,
        reason: &str,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        tracing::warn!(component = %self.trigger.component, topic = %record.topic, partition = record.partition, offset = record.offset, attempts = record.attempt, kind, %reason, "dead-lettering message");
        if !self
            .dead_letter(record, kind, reason, state, shutdown)
            .await
        {
            return false;
        }
        self.count(topic, Outcome::DeadLettered, 1);
        crate::console::note(|| {
            serde_json::json!({"kind": "dead_lettered", "component": self.trigger.component,
                "group": &*self.group, "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "reason": reason})
        });
        true
    }

    /// Publishes the message to the dead-letter topic with why, where from
    /// and how many attempts; waits until the broker has it. Returns false
    /// if shutdown came first (the message is then not committed).
    pub(super) async fn dead_letter(
        &self,
        record: &WitMessage,
        kind: &str,
        reason: &str,
        state: &PartitionState,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        let topic = self.trigger.dead_letter_topic(&record.topic);
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = record.attempt.to_string();
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
                .map(|header| (header.key.as_str(), header.value.as_slice()))
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
