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
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "trigger_kafka_messages_total",
        "counter",
        "Kafka messages handled, by outcome (ok, retried, dead_lettered).",
    ),
    (
        "trigger_kafka_handler_duration_seconds",
        "histogram",
        "Time a Kafka handler invocation took.",
    ),
    (
        "trigger_kafka_consumer_lag",
        "gauge",
        "Messages between the committed offset and the end of the partition.",
    ),
    (
        "trigger_kafka_outbox_backlog",
        "gauge",
        "Outbox rows not yet published.",
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
