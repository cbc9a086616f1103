//! Prometheus metrics in the text exposition format. A small registry of
//! counters, gauges and histograms keyed by label sets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Seconds; from a fast handler to a slow retry.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    gauges: Mutex<BTreeMap<(&'static str, Labels), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
    broker_up: AtomicBool,
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

const HELP: &[(&str, &str, &str)] = &[
    (
        "trigger_kafka_messages_total",
        "counter",
        "Kafka messages handled, by outcome (ok, retried, dead_lettered, filtered).",
    ),
    (
        "trigger_kafka_instantiations_total",
        "counter",
        "Component instances created for Kafka messages: one per invocation, shared by a batch; none for a filtered record.",
    ),
    (
        "trigger_kafka_handler_duration_seconds",
        "histogram",
        "Time a Kafka handler invocation took.",
    ),
    (
        "trigger_kafka_consumer_lag",
        "gauge",
        "Messages between the group's committed offset and the partition's high-water mark, read from the broker.",
    ),
    (
        "trigger_kafka_outbox_backlog",
        "gauge",
        "Outbox rows not yet published.",
    ),
    (
        "trigger_kafka_outbox_dead",
        "gauge",
        "Outbox rows the broker refused for good (too large, not allowed); they wait for an operator.",
    ),
    (
        "trigger_kafka_outbox_dead_total",
        "counter",
        "Outbox rows marked dead.",
    ),
    (
        "trigger_kafka_outbox_oldest_unsent_seconds",
        "gauge",
        "Age of the oldest outbox row not yet published.",
    ),
    (
        "trigger_kafka_partition_stalled",
        "gauge",
        "1 while a partition waits out an infrastructure failure (its messages are retried without limit).",
    ),
    (
        "trigger_kafka_partition_paused",
        "gauge",
        "1 while a partition's fetching is paused because its worker is behind.",
    ),
    (
        "trigger_kafka_infrastructure_retries_total",
        "counter",
        "Invocations retried because the host, not the handler, failed (storage busy or full, no instance).",
    ),
    (
        "trigger_kafka_partitions_assigned",
        "gauge",
        "Partitions assigned to this member, by group and topic.",
    ),
    (
        "trigger_kafka_partitions_unassigned",
        "gauge",
        "Partitions of a subscribed topic assigned to no member of this process, by group and topic.",
    ),
    (
        "trigger_kafka_group_rejoins_total",
        "counter",
        "Times a consumer left and rejoined its group after holding no partitions too long.",
    ),
    (
        "trigger_kafka_outbox_published_total",
        "counter",
        "Outbox rows published and acknowledged.",
    ),
    (
        "trigger_kafka_relay_latency_seconds",
        "histogram",
        "From an outbox row being written to the broker acknowledging it.",
    ),
    (
        "trigger_kafka_http_requests_total",
        "counter",
        "HTTP requests served, by component and status.",
    ),
    (
        "trigger_kafka_http_request_duration_seconds",
        "histogram",
        "HTTP request handling time.",
    ),
    (
        "trigger_kafka_http_rejected_total",
        "counter",
        "HTTP connections or requests turned away with a 503, by reason (connections, instances).",
    ),
    (
        "trigger_kafka_cron_runs_total",
        "counter",
        "Timer trigger invocations, by outcome.",
    ),
    (
        "trigger_kafka_broker_up",
        "gauge",
        "1 when the broker answered the last health probe.",
    ),
];

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn render_labels(labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)], by: u64) {
        *self
            .counters
            .lock()
            .expect("metrics")
            .entry((name, labels(pairs)))
            .or_default() += by;
    }

    pub fn set(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        self.gauges
            .lock()
            .expect("metrics")
            .insert((name, labels(pairs)), value);
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        let seconds = value.as_secs_f64();
        let mut histograms = self.histograms.lock().expect("metrics");
        let h = histograms.entry((name, labels(pairs))).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::Relaxed);
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

    /// The whole registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().expect("metrics");
        let gauges = self.gauges.lock().expect("metrics");
        let histograms = self.histograms.lock().expect("metrics");
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if *name == "trigger_kafka_broker_up" {
                let _ = writeln!(out, "{name} {}", u8::from(self.broker_up()));
                continue;
            }
            for ((n, l), v) in counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(l, None));
            }
            for ((n, l), v) in gauges.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(l, None));
            }
            for ((n, l), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                for (bound, count) in BUCKETS.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {count}",
                        render_labels(l, Some(("le", bound.to_string())))
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    render_labels(l, Some(("le", "+Inf".into()))),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", render_labels(l, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", render_labels(l, None), h.count);
            }
        }
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
            "trigger_kafka_handler_duration_seconds_bucket{component=\"audit\",le=\"0.005\"} 1"
        ));
        assert!(
            text.contains("trigger_kafka_handler_duration_seconds_count{component=\"audit\"} 1")
        );
        assert!(text.contains("trigger_kafka_broker_up 0"));
    }
}
