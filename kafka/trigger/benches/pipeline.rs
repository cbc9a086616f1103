//! Benchmarks of the whole pipeline on a real tansu broker, each against a
//! baseline measured in the same run (these machines are noisy, so the
//! ratio is the figure to read):
//!
//! 1. throughput on the same broker and messages: a native rdkafka consumer
//!    (measured before each round of the others and once after; their mean
//!    is the baseline),
//!    a no-op `handle-message` component (the probe, which imports SQLite,
//!    key-value, HTTP and variables), an empty one (`kafka-noop`: the SDK
//!    alone), a no-op `handle-batch` component (the batch probe) and an
//!    empty one (`kafka-batch-noop`), both with batch_size 100, and a
//!    stream the trigger's filters drop (no instance at all); plus the
//!    mean instantiation cost per invocation and the CPU the consumer
//!    process and the broker used per record.
//!    Every consumer is timed from the moment it has its partitions to its
//!    last record (the host from its "partitions assigned" log line to the
//!    first sample with all done; samples are 10 ms apart near the end).
//!    tansu answers fetches in bursts of ~40 000 records about a second
//!    apart: a clock started at the first record would leave out the wait
//!    for the first burst but count its records, so the figure swung with
//!    that burst's size;
//! 2. latency: from an API write (POST /api/tasks) to a Kafka handler seeing
//!    its `task_created` event, Wasm handler vs native consumer.
//!
//! Run: `cargo bench -p trigger-kafka --bench pipeline` after building the
//! components (`./scripts/test.sh` or `./scripts/bench.sh`). Knobs:
//! `BENCH_MESSAGES`, `BENCH_ROUNDS`, `BENCH_ONLY` (variants whose name
//! contains it), `BENCH_SKIP_LATENCY`, `BENCH_TRACE` (progress and the
//! host's warnings).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};
use support::*;

/// Messages per throughput run (`BENCH_MESSAGES`). Runs of 20 000 took
/// under half a second each and swung by ±20 % with the 50 ms sampling
/// and warm-up; 150 000 give steady ratios.
fn messages() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150_000)
}

/// Notes when the native consumer gets its partitions, with the CPU the
/// bench and the broker had used by then: the run starts there, as the
/// host's starts at its "partitions assigned" line.
struct AssignClock {
    broker_pid: u32,
    at: std::sync::Mutex<Option<(Instant, Duration, Duration)>>,
}

impl ClientContext for AssignClock {}

impl ConsumerContext for AssignClock {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            if list.count() > 0 {
                let reading = (
                    Instant::now(),
                    cpu_of(std::process::id()),
                    cpu_of(self.broker_pid),
                );
                *self.at.lock().unwrap() = Some(reading);
            }
        }
    }
}

fn native_consumer(broker: &Broker, group: &str, topic: &str) -> BaseConsumer<AssignClock> {
    let consumer: BaseConsumer<AssignClock> = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        // The same fetch wait trigger-kafka uses, so latencies compare.
        .set("fetch.wait.max.ms", "100")
        .create_with_context(AssignClock {
            broker_pid: broker.pid(),
            at: Default::default(),
        })
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Rounds of every variant (`BENCH_ROUNDS`). One round's ratios moved by
/// about ±5 % from run to run (the native runs of one bench differed by up
/// to 10 %); two rounds halve the spread's effect on the mean.
fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// What one throughput run measured.
struct Run {
    /// Messages per second, first to last message.
    rate: f64,
    /// Mean instantiation time per invocation, in µs (0 when none).
    instantiation_us: f64,
    /// Records per invocation (0 when none).
    per_invocation: f64,
    /// CPU the consumer (this process, or the host) used per message, µs.
    consumer_cpu_us: f64,
    /// CPU the broker used per message, µs.
    broker_cpu_us: f64,
}

/// One reading during a run.
struct Sample {
    at: std::time::SystemTime,
    done: usize,
    host_cpu: Duration,
    broker_cpu: Duration,
}

/// CPU used per message between two readings, in µs.
fn per_message(before: Duration, after: Duration, messages: usize) -> f64 {
    (after.saturating_sub(before)).as_secs_f64() * 1e6 / messages.max(1) as f64
}

/// Native baseline: time from getting the partitions to the last of `n`
/// messages.
fn native_rate(broker: &Broker, topic: &str, n: usize, group: &str) -> Run {
    let consumer = native_consumer(broker, group, topic);
    let (me, broker_pid) = (std::process::id(), broker.pid());
    let mut seen = 0;
    let mut first = None;
    while seen < n {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    let (assigned, my_cpu, broker_cpu) = consumer
        .context()
        .at
        .lock()
        .unwrap()
        .expect("assigned before the first message");
    if std::env::var_os("BENCH_TRACE").is_some() {
        let wait = first.unwrap().duration_since(assigned);
        eprintln!(
            "{group}: first record {} ms after the assignment",
            wait.as_millis()
        );
    }
    Run {
        rate: n as f64 / assigned.elapsed().as_secs_f64(),
        instantiation_us: 0.0,
        per_invocation: 0.0,
        consumer_cpu_us: per_message(my_cpu, cpu_of(me), n),
        broker_cpu_us: per_message(broker_cpu, cpu_of(broker_pid), n),
    }
}

/// A metric's value (summed over its label sets) from the host's `/metrics`.
fn metric_sum(host: &Host, prefix: &str, label: &str) -> f64 {
    host.metrics()
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Messages handled or filtered so far.
fn done(host: &Host) -> usize {
    (metric_sum(host, "trigger_kafka_messages_total", "outcome=\"ok\"")
        + metric_sum(host, "trigger_kafka_messages_total", "outcome=\"filtered\"")) as usize
}

/// One way of running the no-op handler.
struct Variant {
    name: &'static str,
    wasm: &'static str,
    settings: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "handle-message, no-op",
        wasm: "kafka_probe.wasm",
        settings: "",
    },
    Variant {
        name: "handle-message, empty",
        wasm: "kafka_noop.wasm",
        settings: "",
    },
    Variant {
        name: "handle-batch (100), no-op",
        wasm: "kafka_batch_probe.wasm",
        settings: "batch_size = 100",
    },
    Variant {
        name: "handle-batch (100), empty",
        wasm: "kafka_batch_noop.wasm",
        settings: "batch_size = 100",
    },
    Variant {
        name: "filtered out by the host",
        wasm: "kafka_probe.wasm",
        settings: r#"filters = [{ on = "key", equals = ["nobody"] }]"#,
    },
];

/// Throughput, instantiation and CPU of one variant.
fn wasm_rate(broker: &Broker, topic: &str, n: usize, variant: &Variant, run: usize) -> Run {
    let dir = TempDir::new("bench");
    std::fs::write(
        dir.0.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "bench"
[application.trigger.kafka]
brokers = "{brokers}"
{app_extra}
[[trigger.kafka]]
component = "noop"
topics = ["{topic}"]
group_id = "wasm-bench-{run}"
{settings}
{extra}
[component.noop]
source = "{wasm}"
environment = {{ PROBE_MODE = "noop" }}
"#,
            brokers = broker.address(),
            settings = variant.settings,
            extra = std::env::var("BENCH_TRIGGER_SETTINGS").unwrap_or_default(),
            app_extra = std::env::var("BENCH_APP_SETTINGS").unwrap_or_default(),
            wasm = wasm(variant.wasm).display()
        ),
    )
    .unwrap();
    let host = Host::start(&dir.0, &[("TRIGGER_KAFKA_LOG", "info")]);
    // Messages done, and the CPU the host and the broker have used, so the
    // window can start where the partitions were assigned. Each reading
    // renders the host's whole /metrics, which costs the host CPU the
    // native consumer never pays: every 50 ms, and every 10 ms only once
    // the last burst may come, where the end is read.
    let trace = std::env::var_os("BENCH_TRACE").is_some();
    let launched = Instant::now();
    let mut printed = launched;
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        let sample = Sample {
            at: std::time::SystemTime::now(),
            done: done(&host),
            host_cpu: host.cpu(),
            broker_cpu: cpu_of(broker.pid()),
        };
        if trace && printed.elapsed() >= Duration::from_millis(50) {
            printed = Instant::now();
            eprintln!("{:>6} ms {}", launched.elapsed().as_millis(), sample.done);
        }
        let (finished, near_end) = (sample.done >= n, sample.done + 50_000 >= n);
        samples.push(sample);
        if finished {
            break;
        }
        assert!(
            launched.elapsed() < Duration::from_secs(600),
            "{} did not finish",
            variant.name
        );
        std::thread::sleep(Duration::from_millis(if near_end { 10 } else { 50 }));
    }
    // The run starts where the host got its partitions (the last
    // assignment before it took its first record), as the native
    // consumer's does: fetching the first records is part of the work.
    let logs = host.logs();
    let logged = |what: &str| -> Vec<std::time::SystemTime> {
        logs.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| std::time::SystemTime::from(t.with_timezone(&chrono::Utc)))
            .collect()
    };
    let first_taken = logged("consuming the partition from this offset")
        .into_iter()
        .min()
        .expect("the host logged the first record it took");
    let assigned = logged("partitions assigned")
        .into_iter()
        .filter(|t| *t <= first_taken)
        .max()
        .expect("the host logged its assignment");
    let end = samples.last().unwrap();
    let start = samples
        .iter()
        .rev()
        .find(|s| s.at <= assigned)
        .unwrap_or(&samples[0]);
    let seconds = end
        .at
        .duration_since(assigned)
        .unwrap_or_default()
        .as_secs_f64();
    let rate = n as f64 / seconds;
    if trace {
        let wait = first_taken.duration_since(assigned).unwrap_or_default();
        eprintln!(
            "{}: first record {} ms after the assignment",
            variant.name,
            wait.as_millis()
        );
    }
    let consumer_cpu_us = per_message(start.host_cpu, end.host_cpu, n);
    let broker_cpu_us = per_message(start.broker_cpu, end.broker_cpu, n);
    if trace {
        for line in host.logs().lines().filter(|l| !l.contains(" INFO ")) {
            eprintln!("host: {line}");
        }
    }

    let instantiations = metric_sum(&host, "trigger_kafka_instantiation_seconds_count", "");
    let instantiation_total = metric_sum(&host, "trigger_kafka_instantiation_seconds_sum", "");
    let instantiation_us = if instantiations > 0.0 {
        instantiation_total / instantiations * 1e6
    } else {
        0.0
    };
    Run {
        rate,
        instantiation_us,
        per_invocation: if instantiations > 0.0 {
            n as f64 / instantiations
        } else {
            0.0
        },
        consumer_cpu_us,
        broker_cpu_us,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// API write → event handled, for a Wasm handler and a native consumer.
fn latency(broker: &Broker) -> (Vec<f64>, Vec<f64>) {
    for (topic, partitions) in [("task-events", 3), ("reminders", 3), ("task-updates", 3)] {
        broker.create_topics(topic, partitions);
    }
    let dir = TempDir::new("latency");
    std::fs::write(
        dir.0.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "latency"
[application.trigger.kafka]
brokers = "{brokers}"
outbox_databases = ["default"]
[variables]
dev_auth = {{ default = "true" }}
[[trigger.http]]
route = "/..."
component = "api"
[[trigger.kafka]]
component = "probe"
topics = ["task-events"]
group_id = "latency-probe"
starting_position = "latest"
[component.api]
source = "{api}"
sqlite_databases = ["default"]
[component.api.variables]
dev_auth = "{{{{ dev_auth }}}}"
[component.probe]
source = "{probe}"
sqlite_databases = ["probe"]
environment = {{ PROBE_DB = "probe" }}
"#,
            brokers = broker.address(),
            api = wasm("todo_api.wasm").display(),
            probe = wasm("kafka_probe.wasm").display()
        ),
    )
    .unwrap();
    // The probe records into its own database so it never contends with the API.
    std::fs::write(
        dir.0.join("rc.toml"),
        "[sqlite_database.probe]\ntype = \"spin\"\npath = \"probe.db\"\n",
    )
    .unwrap();
    let host = Host::start_with_args(&dir.0, &[], &["--runtime-config-file", "rc.toml"]);
    let native = native_consumer(broker, "latency-native", "task-events");
    // Both groups joined: with `latest`, what is written before the
    // assignment is never seen.
    wait_for("the probe's partitions", Duration::from_secs(60), || {
        host.logs().contains("partitions assigned").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    while native.poll(Duration::from_millis(100)).is_some() {}
    let probe_db = dir.0.join("probe.db");
    let (mut wasm, mut native_ms) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let sent = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let (status, body) = host.http(
            "POST",
            "/api/tasks",
            &[("x-user-id", "bench"), ("content-type", "application/json")],
            Some(&format!(r#"{{"title": "t{i}"}}"#)),
        );
        assert_eq!(status, 201, "{body}");
        let received = loop {
            if let Some(Ok(m)) = native.poll(Duration::from_millis(50)) {
                if m.payload().is_some() {
                    break std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64()
                        * 1000.0;
                }
            }
        };
        let handled = wait_for("the Wasm handler", Duration::from_secs(30), || {
            let rows = query(
                &probe_db,
                &format!("SELECT at_ms FROM handled ORDER BY rowid LIMIT 1 OFFSET {i}"),
            );
            rows.first().map(|r| r[0].parse::<f64>().unwrap())
        });
        if i >= 10 {
            // The first writes warm up caches and connections.
            native_ms.push(received - sent);
            wasm.push(handled - sent);
        }
    }
    wasm.sort_by(f64::total_cmp);
    native_ms.sort_by(f64::total_cmp);
    (wasm, native_ms)
}

fn main() {
    let broker = Broker::start();
    broker.create_topics("bench", 3);
    let payload = "x".repeat(100);
    let count = messages();
    let messages: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("user-{}", i % 97),
                format!(r#"{{"n":{i},"p":"{payload}"}}"#),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker.send("bench", &refs);

    // `BENCH_ONLY=batch` runs only the variants whose name contains it.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let variants: Vec<&Variant> = VARIANTS
        .iter()
        .filter(|variant| variant.name.contains(only.as_str()))
        .collect();
    // Rounds of native, then every variant, then native once more: a
    // variant's ratio is its mean rate over the mean of all native runs.
    let rounds = rounds();
    let mut natives: Vec<Run> = Vec::new();
    let mut runs: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        natives.push(native_rate(
            &broker,
            "bench",
            count,
            &format!("native-{round}"),
        ));
        for (i, variant) in variants.iter().enumerate() {
            let group = round * VARIANTS.len() + i;
            runs[i].push(wasm_rate(&broker, "bench", count, variant, group));
        }
    }
    natives.push(native_rate(&broker, "bench", count, "native-last"));
    let native = mean(natives.iter().map(|r| r.rate));
    let each = |rates: &mut dyn Iterator<Item = f64>| {
        rates
            .map(|rate| format!("{rate:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("throughput ({count} messages of ~120 B, 3 partitions, tansu, {rounds} rounds):");
    println!(
        "  {:<28}{native:>10.0} msg/s   (runs: {})",
        "native rdkafka consumer",
        each(&mut natives.iter().map(|r| r.rate))
    );
    for (variant, runs) in variants.iter().zip(&runs) {
        let rate = mean(runs.iter().map(|r| r.rate));
        let ratios: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.2}", r.rate / native))
            .collect();
        println!(
            "  {:<28}{rate:>10.0} msg/s   ratio {:.2}x of native (rounds: {})",
            variant.name,
            rate / native,
            ratios.join(", ")
        );
    }
    println!("CPU per message (µs, mean of the runs; the consumer process, then the broker):");
    let rows = std::iter::once(("native rdkafka consumer", &natives[..]))
        .chain(variants.iter().zip(&runs).map(|(v, r)| (v.name, &r[..])));
    for (name, runs) in rows {
        let instantiation_us = mean(runs.iter().map(|r| r.instantiation_us));
        let instantiation = if instantiation_us > 0.0 {
            format!(
                "   instantiation {:.1} µs, {:.0} records per call",
                instantiation_us,
                mean(runs.iter().map(|r| r.per_invocation))
            )
        } else {
            String::new()
        };
        println!(
            "  {name:<28}consumer {:>5.1}   broker {:>5.1}{instantiation}",
            mean(runs.iter().map(|r| r.consumer_cpu_us)),
            mean(runs.iter().map(|r| r.broker_cpu_us))
        );
    }

    if std::env::var_os("BENCH_SKIP_LATENCY").is_some() {
        return;
    }
    let (wasm_lat, native_lat) = latency(&broker);
    println!(
        "latency API write -> handler (ms, {} writes, relay poll 100 ms + change signal):",
        wasm_lat.len()
    );
    for (name, values) in [
        ("native consumer", &native_lat),
        ("Wasm handler", &wasm_lat),
    ] {
        println!(
            "  {name:<16} p50 {:>6.1}  p95 {:>6.1}  max {:>6.1}",
            percentile(values, 0.5),
            percentile(values, 0.95),
            values[values.len() - 1]
        );
    }
    println!(
        "  Wasm/native p50 ratio {:.2}x",
        percentile(&wasm_lat, 0.5) / percentile(&native_lat, 0.5)
    );
}
