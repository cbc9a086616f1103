//! Dead-lettering: a record that failed for good goes to `<topic>.dlq`
//! with why, where from and how many attempts, before its offset is
//! stored.

use super::*;

impl KafkaRunner {
    /// Dead-letters a record: publishes it to the dead-letter topic with
    /// why, where from and how many attempts, and waits until the broker
    /// has it (counted). False if shutdown came first (the record is then
    /// not committed).
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
        let dlq_topic = self.trigger.dead_letter_topic(&record.topic);
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = record.attempt.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let truncated: String = reason.chars().take(4000).collect();
        loop {
            let why = [
                ("dlq-reason", truncated.as_str()),
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
                &dlq_topic,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            );
            tokio::select! {
                result = self.producer.send(dlq, Duration::from_secs(10)) => match result {
                    Ok(_) => break,
                    Err((e, _)) => tracing::warn!(topic = %dlq_topic, error = %e, "dead-letter publish failed; retrying"),
                },
                _ = wait_for_stop(state, shutdown.clone()) => return false,
            }
            if Self::stopping(state, shutdown) {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.count(topic, Outcome::DeadLettered, 1);
        crate::console::note(|| {
            serde_json::json!({"kind": "dead_lettered", "component": self.trigger.component,
                "group": &*self.group, "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "reason": reason})
        });
        true
    }
}
