//! Per-trigger controls through the real host and tansu: batches with
//! partial failure (the `kafka-batch-probe`, built on the SDK's async
//! batch macro), trap bisection, `max_record_age_s`, a `starting_position`
//! time, and settings refused at start.

mod support;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::*;

const LONG: Duration = Duration::from_secs(90);

struct App {
    dir: TempDir,
}

impl App {
    /// An app whose `probe` component (`wasm`) consumes `topic` in group
    /// `probe`, with `settings` added to its `[[trigger.kafka]]`.
    fn new(broker: &Broker, wasm_file: &str, topic: &str, settings: &str) -> App {
        let dir = TempDir::new("controls");
        let manifest = format!(
            r#"spin_manifest_version = 2

[application]
name = "controls"

[application.trigger.kafka]
brokers = "{brokers}"

[[trigger.kafka]]
component = "probe"
topics = ["{topic}"]
group_id = "probe"
{settings}

[component.probe]
source = "{wasm}"
sqlite_databases = ["default"]
"#,
            brokers = broker.address(),
            wasm = wasm(wasm_file).display(),
        );
        std::fs::write(dir.0.join("spin.toml"), manifest).unwrap();
        App { dir }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.0.join(".spin/sqlite_db.db")
    }

    fn ids(&self) -> Vec<String> {
        query(&self.db(), "SELECT id FROM handled ORDER BY rowid")
            .into_iter()
            .map(|row| row[0].clone())
            .collect()
    }

    fn batches(&self) -> Vec<Vec<String>> {
        query(
            &self.db(),
            "SELECT size, first_offset, last_offset, attempts FROM batches ORDER BY rowid",
        )
    }

    /// `up` that must fail at start; its stderr.
    fn refused(&self) -> String {
        let output = std::process::Command::new(host_bin())
            .args(["up", "--listen", "127.0.0.1:0"])
            .current_dir(&self.dir.0)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(!output.status.success(), "the host must refuse to start");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn msg(id: &str, action: &str) -> String {
    format!(r#"{{"id": "{id}", "action": "{action}"}}"#)
}

fn has_table(db: &std::path::Path, table: &str) -> bool {
    db.exists()
        && count(
            db,
            &format!("SELECT COUNT(*) FROM sqlite_master WHERE name = '{table}'"),
        ) == 1
}

/// The offset group `probe` committed for partition 0 of `topic`.
fn committed(broker: &Broker, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "probe")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .ok()?;
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(n) => Some(n),
        _ => None,
    }
}

/// Item 3 of 10 fails once (retryable) and item 6 for good: 0–2 are
/// committed while 3 waits out its backoff; 3 is delivered again with the
/// rest of the batch behind it, 6 goes to the dead-letter topic, and every
/// other message is handled once, in order.
#[test]
fn a_batch_commits_before_its_first_failure_and_redelivers_from_it() {
    let broker = Broker::start();
    broker.create_topics("batched", 1);
    let app = App::new(
        &broker,
        "kafka_batch_probe.wasm",
        "batched",
        "batch_size = 10\nbatch_window_ms = 2000\nmax_retries = 2\nretry_backoff_ms = 6000\nretry_backoff_max_ms = 6000",
    );
    let messages: Vec<(&str, String)> = (0..10)
        .map(|i| {
            let action = match i {
                3 => "retry:1",
                6 => "permanent",
                _ => "ok",
            };
            ("k", msg(&format!("m{i}"), action))
        })
        .collect();
    broker.send("batched", &messages);
    let host = Host::start(&app.dir.0, &[]);
    // During item 3's backoff, the group has committed items 0–2.
    wait_for("offset 3 committed during the backoff", LONG, || {
        (committed(&broker, "batched") == Some(3)).then_some(())
    });
    assert_eq!(
        app.ids(),
        ["m0", "m1", "m2"],
        "nothing past the failure ran"
    );
    wait_for("the last message handled", LONG, || {
        (app.ids().last().map(String::as_str) == Some("m9")).then_some(())
    });
    let expected: Vec<String> = [0, 1, 2, 3, 4, 5, 7, 8, 9]
        .iter()
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(app.ids(), expected, "each once, in order");
    assert_eq!(
        query(&app.db(), "SELECT attempt FROM handled WHERE id = 'm3'"),
        [["2"]],
        "item 3 on its second delivery"
    );
    // One batch of 10; from item 3 on again; after the dead letter, 7–9.
    assert_eq!(
        app.batches(),
        [
            ["10", "0", "9", "1,1,1,1,1,1,1,1,1,1"],
            ["7", "3", "9", "2,2,2,2,2,2,2"],
            ["3", "7", "9", "3,3,3"],
        ]
    );
    let dead = broker.read("batched.dlq", 1, LONG);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("dlq-error-kind"), Some("permanent"));
    assert_eq!(dead[0].header("dlq-original-offset"), Some("6"));
    wait_for("everything committed", LONG, || {
        (committed(&broker, "batched") == Some(10)).then_some(())
    });
    let metrics = host.metrics();
    assert!(
        metrics.contains(r#"trigger_kafka_instantiations_total{component="probe"} 3"#),
        "three invocations for ten messages:\n{metrics}"
    );
    assert!(metrics.contains(r#"outcome="ok"} 9"#), "{metrics}");
    assert!(metrics.contains(r#"outcome="retried"} 1"#), "{metrics}");
}

/// A trap fails a whole batch without saying which record caused it; the
/// host halves the batch until the record is alone, dead-letters it as a
/// trap, and goes on with full batches. Nothing else is lost.
#[test]
fn a_trap_in_a_batch_is_bisected_down_to_the_record_at_fault() {
    let broker = Broker::start();
    broker.create_topics("bisect", 1);
    let app = App::new(
        &broker,
        "kafka_batch_probe.wasm",
        "bisect",
        "batch_size = 8\nbatch_window_ms = 2000",
    );
    let messages: Vec<(&str, String)> = (0..8)
        .map(|i| {
            let action = if i == 5 { "trap" } else { "ok" };
            ("k", msg(&format!("m{i}"), action))
        })
        .collect();
    broker.send("bisect", &messages);
    let host = Host::start(&app.dir.0, &[]);
    let dead = broker.read("bisect.dlq", 1, LONG);
    assert_eq!(dead.len(), 1, "{}", host.logs());
    assert_eq!(dead[0].header("dlq-error-kind"), Some("trap"));
    assert_eq!(dead[0].header("dlq-original-offset"), Some("5"));
    wait_for("the last message handled", LONG, || {
        app.ids().contains(&"m7".to_owned()).then_some(())
    });
    // Records before the trap in a trapped batch ran and are delivered
    // again (handlers are idempotent); in order of first handling.
    let mut first_seen: Vec<String> = Vec::new();
    for id in app.ids() {
        if !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_eq!(first_seen, ["m0", "m1", "m2", "m3", "m4", "m6", "m7"]);
    // 8 (trap) → 4 (0–3 ok) → 4 (4–7: trap) → 2 (4–5: trap) → 1 (4 ok) →
    // 1 (5: trap, dead-lettered) → 6–7 in a full batch again.
    let sizes: Vec<String> = app.batches().into_iter().map(|b| b[0].clone()).collect();
    assert_eq!(sizes, ["8", "4", "4", "2", "1", "1", "2"]);
}

/// Records older than `max_record_age_s` go to the dead-letter topic with
/// the kind `expired`, without an instance; fresh ones are handled.
#[test]
fn records_older_than_max_record_age_are_dead_lettered_as_expired() {
    let broker = Broker::start();
    broker.create_topics("aging", 1);
    let app = App::new(&broker, "kafka_probe.wasm", "aging", "max_record_age_s = 2");
    broker.send(
        "aging",
        &[("k", msg("old-1", "ok")), ("k", msg("old-2", "ok"))],
    );
    std::thread::sleep(Duration::from_millis(3500));
    let host = Host::start(&app.dir.0, &[]);
    let dead = broker.read("aging.dlq", 2, LONG);
    assert_eq!(dead.len(), 2, "{}", host.logs());
    for record in &dead {
        assert_eq!(record.header("dlq-error-kind"), Some("expired"));
        assert!(
            record
                .header("dlq-reason")
                .unwrap()
                .contains("older than max_record_age_s (2 s)"),
            "{record:?}"
        );
        assert_eq!(record.header("dlq-attempts"), Some("0"));
    }
    broker.send("aging", &[("k", msg("fresh", "ok"))]);
    wait_for("the fresh record handled", LONG, || {
        (has_table(&app.db(), "handled") && app.ids() == ["fresh"]).then_some(())
    });
    assert!(host
        .metrics()
        .contains(r#"trigger_kafka_instantiations_total{component="probe"} 1"#));
}

/// A new group with `starting_position` = a time starts at the first
/// record at or after it.
#[test]
fn a_starting_position_time_skips_what_came_before() {
    let broker = Broker::start();
    broker.create_topics("history", 1);
    broker.send(
        "history",
        &[("k", msg("before-1", "ok")), ("k", msg("before-2", "ok"))],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let from = chrono::Utc::now() - chrono::Duration::milliseconds(200);
    std::thread::sleep(Duration::from_millis(300));
    broker.send(
        "history",
        &[("k", msg("after-1", "ok")), ("k", msg("after-2", "ok"))],
    );
    let app = App::new(
        &broker,
        "kafka_probe.wasm",
        "history",
        &format!(
            "starting_position = \"{}\"",
            from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    let host = Host::start(&app.dir.0, &[]);
    wait_for("two records handled", LONG, || {
        (has_table(&app.db(), "handled") && app.ids().len() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(app.ids(), ["after-1", "after-2"], "{}", host.logs());
}

/// Settings that cannot work stop the host at start, naming the manifest
/// and the field.
#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    let broker = Broker::start();
    broker.create_topics("refused", 1);
    for (wasm_file, setting, expected) in [
        (
            "kafka_probe.wasm",
            "batch_size = 0",
            "batch_size must be between 1 and 10000",
        ),
        (
            "kafka_probe.wasm",
            "batch_window_ms = 900000",
            "batch_window_ms must be at most 300000",
        ),
        (
            "kafka_probe.wasm",
            "max_record_age_s = 0",
            "max_record_age_s must be at least 1",
        ),
        (
            "kafka_probe.wasm",
            "concurrency = 0",
            "concurrency must be at least 1",
        ),
        (
            "kafka_probe.wasm",
            "max_buffered_messages = 0",
            "max_buffered_messages must be between 1 and 1000000",
        ),
        (
            "kafka_probe.wasm",
            "retry_backoff_ms = 500\nretry_backoff_max_ms = 100",
            "retry_backoff_max_ms (100) must be at least retry_backoff_ms (500)",
        ),
        (
            "kafka_probe.wasm",
            "starting_position = \"yesterday\"",
            "starting_position must be `earliest`, `latest` or an RFC 3339 time",
        ),
        (
            "kafka_probe.wasm",
            "batch_size = 5",
            "exports handle-message, not handle-batch",
        ),
    ] {
        let app = App::new(&broker, wasm_file, "refused", setting);
        let stderr = app.refused();
        assert!(
            stderr.contains(expected) && stderr.contains("trigger.kafka"),
            "{setting}: {stderr}"
        );
        assert!(
            stderr.contains("spin.toml") || stderr.contains(&app.dir.0.display().to_string()),
            "{setting} names the manifest: {stderr}"
        );
    }
}
