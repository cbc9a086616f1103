//! Prometheus metrics on `prometheus-client`: one family per metric name,
//! labels given at each update, exposed in the OpenMetrics text format.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds; from a fast handler to a slow retry.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label pairs in the order given (the order they are rendered in).
type Labels = Vec<(String, String)>;

/// Histograms are made with the shared buckets.
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    /// Whole numbers (lag, rows, 0/1 states).
    Gauge,
    /// Fractional values (ages in seconds).
    FloatGauge,
    Histogram,
}

pub struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge>>,
    float_gauges: HashMap<&'static str, Family<Labels, Gauge<f64, AtomicU64>>>,
    histograms: HashMap<&'static str, HistogramFamily>,
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

/// Every metric: name, kind, help.
const HELP: &[(&str, Kind, &str)] = &[
    (
        "trigger_kafka_messages_total",
        Kind::Counter,
        "Kafka messages handled, by outcome (ok, retried, dead_lettered, filtered).",
    ),
    (
        "trigger_kafka_instantiations_total",
        Kind::Counter,
        "Component instances created for Kafka messages: one per invocation, shared by a batch; none for a filtered record.",
    ),
    (
        "trigger_kafka_instantiation_seconds",
        Kind::Histogram,
        "Time to create a component instance for a Kafka invocation.",
    ),
    (
        "trigger_kafka_handler_duration_seconds",
        Kind::Histogram,
        "Time a Kafka handler invocation took.",
    ),
    (
        "trigger_kafka_consumer_lag",
        Kind::Gauge,
        "Messages between the group's committed offset and the partition's high-water mark, read from the broker.",
    ),
    (
        "trigger_kafka_outbox_backlog",
        Kind::Gauge,
        "Outbox rows not yet published.",
    ),
    (
        "trigger_kafka_outbox_dead",
        Kind::Gauge,
        "Outbox rows the broker refused for good (too large, not allowed); they wait for an operator.",
    ),
    (
        "trigger_kafka_outbox_dead_total",
        Kind::Counter,
        "Outbox rows marked dead.",
    ),
    (
        "trigger_kafka_outbox_authorization_failures_total",
        Kind::Counter,
        "Outbox rows the broker refused as not authorized (topic or cluster ACLs, credentials). They stay unsent and are retried with backoff: alert on this.",
    ),
    (
        "trigger_kafka_outbox_oldest_unsent_seconds",
        Kind::FloatGauge,
        "Age of the oldest outbox row not yet published.",
    ),
    (
        "trigger_kafka_partition_stalled",
        Kind::Gauge,
        "1 while a partition waits out an infrastructure failure (its messages are retried without limit).",
    ),
    (
        "trigger_kafka_partition_paused",
        Kind::Gauge,
        "1 while a partition's fetching is paused because its worker is behind.",
    ),
    (
        "trigger_kafka_infrastructure_retries_total",
        Kind::Counter,
        "Invocations retried because the host, not the handler, failed (storage busy or full, no instance).",
    ),
    (
        "trigger_kafka_partitions_assigned",
        Kind::Gauge,
        "Partitions assigned to this member, by group and topic.",
    ),
    (
        "trigger_kafka_partitions_unassigned",
        Kind::Gauge,
        "Partitions of a subscribed topic assigned to no member of this process, by group and topic.",
    ),
    (
        "trigger_kafka_outbox_published_total",
        Kind::Counter,
        "Outbox rows published and acknowledged.",
    ),
    (
        "trigger_kafka_relay_latency_seconds",
        Kind::Histogram,
        "From an outbox row being written to the broker acknowledging it.",
    ),
    (
        "trigger_kafka_http_requests_total",
        Kind::Counter,
        "HTTP requests served, by component and status.",
    ),
    (
        "trigger_kafka_http_request_duration_seconds",
        Kind::Histogram,
        "HTTP request handling time.",
    ),
    (
        "trigger_kafka_http_rejected_total",
        Kind::Counter,
        "HTTP connections or requests turned away with a 503, by reason (connections, instances).",
    ),
    (
        "trigger_kafka_cron_runs_total",
        Kind::Counter,
        "Timer trigger invocations, by outcome.",
    ),
    (
        "trigger_kafka_broker_up",
        Kind::Gauge,
        "1 when the broker answered the last health probe.",
    ),
];

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
            float_gauges: HashMap::new(),
            histograms: HashMap::new(),
            broker_up: AtomicBool::new(false),
            broker_up_gauge: Gauge::default(),
            health: Mutex::default(),
        };
        for (name, kind, help) in HELP {
            // prometheus-client ends help with a period and counters with `_total`.
            let help = help.trim_end_matches('.');
            match kind {
                Kind::Counter => {
                    let family = Family::default();
                    let short = name.strip_suffix("_total").unwrap_or(name);
                    metrics.registry.register(short, help, family.clone());
                    metrics.counters.insert(name, family);
                }
                Kind::Gauge if *name == "trigger_kafka_broker_up" => {
                    let gauge = metrics.broker_up_gauge.clone();
                    metrics.registry.register(*name, help, gauge);
                }
                Kind::Gauge => {
                    let family = Family::default();
                    metrics.registry.register(*name, help, family.clone());
                    metrics.gauges.insert(name, family);
                }
                Kind::FloatGauge => {
                    let family = Family::default();
                    metrics.registry.register(*name, help, family.clone());
                    metrics.float_gauges.insert(name, family);
                }
                Kind::Histogram => {
                    let family: HistogramFamily = Family::new_with_constructor(histogram);
                    metrics.registry.register(*name, help, family.clone());
                    metrics.histograms.insert(name, family);
                }
            }
        }
        metrics.set_broker_up(false);
        metrics
    }
}

impl Metrics {
    /// Adds to a counter. Names come from `HELP`; a name not there is a bug.
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)], by: u64) {
        match self.counters.get(name) {
            Some(family) => {
                family.get_or_create(&labels(pairs)).inc_by(by);
            }
            None => debug_assert!(false, "unregistered counter {name}"),
        }
    }

    pub fn set(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        if let Some(family) = self.gauges.get(name) {
            family
                .get_or_create(&labels(pairs))
                .set(value.round() as i64);
        } else if let Some(family) = self.float_gauges.get(name) {
            family.get_or_create(&labels(pairs)).set(value);
        } else {
            debug_assert!(false, "unregistered gauge {name}");
        }
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        match self.histograms.get(name) {
            Some(family) => family
                .get_or_create(&labels(pairs))
                .observe(value.as_secs_f64()),
            None => debug_assert!(false, "unregistered histogram {name}"),
        }
    }

    /// A counter's handle, for hot paths that update it without building
    /// labels each time.
    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Counter {
        self.counters
            .get(name)
            .map(|family| family.get_or_create(&labels(pairs)).clone())
            .unwrap_or_default()
    }

    /// A histogram's handle (see [`Metrics::counter`]).
    pub fn histogram(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Histogram {
        self.histograms
            .get(name)
            .map(|family| family.get_or_create(&labels(pairs)).clone())
            .unwrap_or_else(histogram)
    }

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
        let part = partition.to_string();
        let labels = [
            ("group", group),
            ("topic", topic),
            ("partition", part.as_str()),
        ];
        let mut health = self.health.lock().expect("health");
        match why {
            Some(why) => {
                health.stalled.insert(key, why.to_owned());
                self.set("trigger_kafka_partition_stalled", &labels, 1.0);
            }
            None => {
                if health.stalled.remove(&key).is_some() {
                    self.set("trigger_kafka_partition_stalled", &labels, 0.0);
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

    pub fn http_request(&self, component: &str, status: u16, took: Duration) {
        let status = status.to_string();
        self.inc(
            "trigger_kafka_http_requests_total",
            &[("component", component), ("status", &status)],
            1,
        );
        self.observe(
            "trigger_kafka_http_request_duration_seconds",
            &[("component", component)],
            took,
        );
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
        m.inc(
            "trigger_kafka_messages_total",
            &[("component", "audit"), ("outcome", "ok")],
            2,
        );
        m.set(
            "trigger_kafka_consumer_lag",
            &[("topic", "t"), ("partition", "0")],
            3.0,
        );
        m.observe(
            "trigger_kafka_handler_duration_seconds",
            &[("component", "audit")],
            Duration::from_millis(3),
        );
        let text = m.render();
        assert!(text.contains("trigger_kafka_messages_total{component=\"audit\",outcome=\"ok\"} 2"));
        assert!(text.contains("trigger_kafka_consumer_lag{topic=\"t\",partition=\"0\"} 3"));
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
