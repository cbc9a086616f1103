//! Prometheus metrics on `prometheus-client`: one typed family per metric,
//! its labels a derived label set, exposed in the OpenMetrics text format.
//! Label values that repeat (components, topics, groups, databases) are
//! `Arc<str>`, so a label set costs no allocation to build.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// Seconds; from a fast handler to a slow retry.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value that repeats: cloned by reference count.
pub type Label = Arc<str>;

/// Histograms are made with the shared buckets.
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: Label,
}

/// What happened to Kafka messages (`trigger_kafka_messages_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Retried,
    DeadLettered,
    Filtered,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Retried,
        Outcome::DeadLettered,
        Outcome::Filtered,
    ];
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            Outcome::Ok => "ok",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Filtered => "filtered",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub component: Label,
    pub topic: Label,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentTopicLabels {
    pub component: Label,
    pub topic: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub group: Label,
    pub topic: Label,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupTopicLabels {
    pub group: Label,
    pub topic: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseLabels {
    pub database: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseTopicLabels {
    pub database: Label,
    pub topic: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub component: Label,
    pub status: u16,
}

/// Why the HTTP trigger turned work away (`connections`, `instances`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CronLabels {
    pub component: Label,
    pub outcome: &'static str,
}

/// Every metric of the host. Each field is one family, registered under
/// its name with its help in [`Metrics::default`].
pub struct Metrics {
    registry: Registry,
    pub messages: Family<MessageLabels, Counter>,
    pub instantiations: Family<ComponentLabels, Counter>,
    pub instantiation_seconds: HistogramFamily<ComponentLabels>,
    pub handler_seconds: HistogramFamily<ComponentLabels>,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub outbox_backlog: Family<DatabaseLabels, Gauge>,
    pub outbox_dead: Family<DatabaseLabels, Gauge>,
    pub outbox_marked_dead: Family<DatabaseLabels, Counter>,
    pub outbox_unauthorized: Family<DatabaseLabels, Counter>,
    pub outbox_oldest_unsent_seconds: Family<DatabaseLabels, Gauge<f64, AtomicU64>>,
    pub partition_stalled: Family<PartitionLabels, Gauge>,
    pub partition_paused: Family<PartitionLabels, Gauge>,
    pub infrastructure_retries: Family<ComponentTopicLabels, Counter>,
    pub partitions_assigned: Family<GroupTopicLabels, Gauge>,
    pub partitions_unassigned: Family<GroupTopicLabels, Gauge>,
    pub outbox_published: Family<DatabaseTopicLabels, Counter>,
    pub relay_latency_seconds: HistogramFamily<DatabaseLabels>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_seconds: HistogramFamily<ComponentLabels>,
    pub http_rejected: Family<RejectedLabels, Counter>,
    pub cron_runs: Family<CronLabels, Counter>,
    broker_up: AtomicBool,
    /// `trigger_kafka_broker_up`, the one metric without labels.
    broker_up_gauge: Gauge,
    health: Mutex<Health>,
}

/// What `/healthz` reports beyond the broker: outbox rows that wait or can
/// never be published, and partitions stalled on an infrastructure failure.
#[derive(Default)]
struct Health {
    /// database -> (backlog, dead)
    outbox: BTreeMap<String, (i64, i64)>,
    /// (group, topic, partition) -> why
    stalled: BTreeMap<(String, String, i32), String>,
}

/// Registers `metric` under `name` (a counter's without the `_total`
/// prometheus-client appends; help without the period it adds).
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    let name = name.strip_suffix("_total").unwrap_or(name);
    registry.register(name, help.trim_end_matches('.'), metric.clone());
    metric
}

fn histograms<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(histogram)
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut r = Registry::default();
        let metrics = Metrics {
            messages: register(&mut r, "trigger_kafka_messages_total", "Kafka messages handled, by outcome (ok, retried, dead_lettered, filtered).", Family::default()),
            instantiations: register(&mut r, "trigger_kafka_instantiations_total", "Component instances created for Kafka messages: one per invocation, shared by a batch; none for a filtered record.", Family::default()),
            instantiation_seconds: register(&mut r, "trigger_kafka_instantiation_seconds", "Time to create a component instance for a Kafka invocation.", histograms()),
            handler_seconds: register(&mut r, "trigger_kafka_handler_duration_seconds", "Time a Kafka handler invocation took.", histograms()),
            consumer_lag: register(&mut r, "trigger_kafka_consumer_lag", "Messages between the group's committed offset and the partition's high-water mark, read from the broker.", Family::default()),
            outbox_backlog: register(&mut r, "trigger_kafka_outbox_backlog", "Outbox rows not yet published.", Family::default()),
            outbox_dead: register(&mut r, "trigger_kafka_outbox_dead", "Outbox rows the broker refused for good (too large, not allowed); they wait for an operator.", Family::default()),
            outbox_marked_dead: register(&mut r, "trigger_kafka_outbox_dead_total", "Outbox rows marked dead.", Family::default()),
            outbox_unauthorized: register(&mut r, "trigger_kafka_outbox_authorization_failures_total", "Outbox rows the broker refused as not authorized (topic or cluster ACLs, credentials). They stay unsent and are retried with backoff: alert on this.", Family::default()),
            outbox_oldest_unsent_seconds: register(&mut r, "trigger_kafka_outbox_oldest_unsent_seconds", "Age of the oldest outbox row not yet published.", Family::default()),
            partition_stalled: register(&mut r, "trigger_kafka_partition_stalled", "1 while a partition waits out an infrastructure failure (its messages are retried without limit).", Family::default()),
            partition_paused: register(&mut r, "trigger_kafka_partition_paused", "1 while a partition's fetching is paused because its worker is behind.", Family::default()),
            infrastructure_retries: register(&mut r, "trigger_kafka_infrastructure_retries_total", "Invocations retried because the host, not the handler, failed (storage busy or full, no instance).", Family::default()),
            partitions_assigned: register(&mut r, "trigger_kafka_partitions_assigned", "Partitions assigned to this member, by group and topic.", Family::default()),
            partitions_unassigned: register(&mut r, "trigger_kafka_partitions_unassigned", "Partitions of a subscribed topic assigned to no member of this process, by group and topic.", Family::default()),
            outbox_published: register(&mut r, "trigger_kafka_outbox_published_total", "Outbox rows published and acknowledged.", Family::default()),
            relay_latency_seconds: register(&mut r, "trigger_kafka_relay_latency_seconds", "From an outbox row being written to the broker acknowledging it.", histograms()),
            http_requests: register(&mut r, "trigger_kafka_http_requests_total", "HTTP requests served, by component and status.", Family::default()),
            http_request_seconds: register(&mut r, "trigger_kafka_http_request_duration_seconds", "HTTP request handling time.", histograms()),
            http_rejected: register(&mut r, "trigger_kafka_http_rejected_total", "HTTP connections or requests turned away with a 503, by reason (connections, instances).", Family::default()),
            cron_runs: register(&mut r, "trigger_kafka_cron_runs_total", "Timer trigger invocations, by outcome.", Family::default()),
            broker_up_gauge: register(&mut r, "trigger_kafka_broker_up", "1 when the broker answered the last health probe.", Gauge::default()),
            broker_up: AtomicBool::new(false),
            health: Mutex::default(),
            registry: r,
        };
        metrics.set_broker_up(false);
        metrics
    }
}

impl Metrics {
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::Relaxed);
        self.broker_up_gauge.set(i64::from(up));
    }

    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    /// The outbox state of one database, for `/healthz`.
    pub fn outbox_health(&self, database: &str, backlog: i64, dead: i64) {
        self.health
            .lock()
            .expect("health")
            .outbox
            .insert(database.to_owned(), (backlog, dead));
    }

    /// Marks a partition stalled (with why) or clear.
    pub fn set_stalled(&self, group: &str, topic: &str, partition: i32, why: Option<&str>) {
        let key = (group.to_owned(), topic.to_owned(), partition);
        let labels = PartitionLabels {
            group: group.into(),
            topic: topic.into(),
            partition,
        };
        let mut health = self.health.lock().expect("health");
        match why {
            Some(why) => {
                health.stalled.insert(key, why.to_owned());
                self.partition_stalled.get_or_create(&labels).set(1);
            }
            None => {
                if health.stalled.remove(&key).is_some() {
                    self.partition_stalled.get_or_create(&labels).set(0);
                }
            }
        }
    }

    /// `/healthz`: the status code and the JSON detail. Unavailable (503)
    /// only while the broker is down; dead outbox rows or stalled
    /// partitions make it `degraded` (200), so an orchestrator does not
    /// restart a process that is waiting out someone else's failure.
    pub fn health(&self, kafka: bool) -> (u16, serde_json::Value) {
        let health = self.health.lock().expect("health");
        let broker_up = !kafka || self.broker_up();
        let dead: i64 = health.outbox.values().map(|(_, d)| d).sum();
        let status = if !broker_up {
            "unavailable"
        } else if dead > 0 || !health.stalled.is_empty() {
            "degraded"
        } else {
            "ok"
        };
        let body = serde_json::json!({
            "status": status,
            "broker": if !kafka { "not used" } else if broker_up { "up" } else { "down" },
            "outbox": health.outbox.iter().map(|(db, (backlog, dead))| {
                (db.clone(), serde_json::json!({"backlog": backlog, "dead": dead}))
            }).collect::<serde_json::Map<_, _>>(),
            "stalled_partitions": health.stalled.iter().map(|((group, topic, partition), why)| {
                serde_json::json!({"group": group, "topic": topic, "partition": partition, "reason": why})
            }).collect::<Vec<_>>(),
        });
        (if broker_up { 200 } else { 503 }, body)
    }

    pub fn http_request(&self, component: &str, status: u16, took: std::time::Duration) {
        let component: Label = component.into();
        self.http_requests
            .get_or_create(&HttpLabels {
                component: component.clone(),
                status,
            })
            .inc();
        self.http_request_seconds
            .get_or_create(&ComponentLabels {
                component: component.clone(),
            })
            .observe(took.as_secs_f64());
    }

    /// The whole registry in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        let component: Label = "audit".into();
        m.messages
            .get_or_create(&MessageLabels {
                component: component.clone(),
                topic: "t".into(),
                outcome: Outcome::DeadLettered,
            })
            .inc_by(2);
        m.consumer_lag
            .get_or_create(&PartitionLabels {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            })
            .set(3);
        m.handler_seconds
            .get_or_create(&ComponentLabels { component })
            .observe(0.003);
        let text = m.render();
        assert!(text.contains(
            "trigger_kafka_messages_total{component=\"audit\",topic=\"t\",outcome=\"dead_lettered\"} 2"
        ));
        assert!(
            text.contains("trigger_kafka_consumer_lag{group=\"g\",topic=\"t\",partition=\"0\"} 3")
        );
        assert!(text.contains(
            "trigger_kafka_handler_duration_seconds_bucket{le=\"0.005\",component=\"audit\"} 1"
        ));
        assert!(
            text.contains("trigger_kafka_handler_duration_seconds_count{component=\"audit\"} 1")
        );
        assert!(text.contains("trigger_kafka_broker_up 0"));
        assert!(text.contains("# TYPE trigger_kafka_messages counter"));
        assert!(text.ends_with("# EOF\n"));
    }
}
