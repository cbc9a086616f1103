//! `trigger-kafka topics apply`: creates the topics of `kafka/topics.toml`
//! on any Kafka-compatible broker, idempotently.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    topic: Vec<Topic>,
}

pub fn load(path: &Path) -> Result<Vec<Topic>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: File =
        toml::from_str(&text).with_context(|| format!("{} is not a topic file", path.display()))?;
    for topic in &file.topic {
        if topic.partitions < 1 {
            bail!("topic `{}` needs at least one partition", topic.name);
        }
    }
    Ok(file.topic)
}

/// Creates missing topics; existing ones are left alone. Waits up to
/// `wait` for the broker to answer first.
pub async fn apply(
    topics: &[Topic],
    brokers: &str,
    config: ClientConfig,
    wait: Duration,
) -> Result<()> {
    let mut config = config;
    config.set("bootstrap.servers", brokers);
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let started = Instant::now();
    loop {
        match admin.inner().fetch_metadata(None, Duration::from_secs(2)) {
            Ok(_) => break,
            Err(e) if started.elapsed() < wait => {
                tracing::info!(error = %e, "waiting for the broker");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => bail!("broker {brokers} did not answer within {wait:?}: {e}"),
        }
    }
    let retention: Vec<String> = topics.iter().map(|t| t.retention_ms.to_string()).collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retention)
        .map(|(t, r)| {
            NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)).set("retention.ms", r)
        })
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for result in results {
        match result {
            Ok(name) => println!("created topic {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => println!("topic {name} exists"),
            Err((name, code)) => bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_topic_file_has_every_topic_and_its_dead_letter_twin() {
        let topics = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../topics.toml")).unwrap();
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        for topic in ["task-events", "reminders", "task-updates"] {
            assert!(names.contains(&topic), "{topic}");
            assert!(
                names.contains(&format!("{topic}.dlq").as_str()),
                "{topic}.dlq"
            );
        }
    }
}
