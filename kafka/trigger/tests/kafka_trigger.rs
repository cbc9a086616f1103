//! The Kafka trigger end to end: the real host runs the `kafka-probe` Wasm
//! component against a real tansu broker and real SQLite files.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

const LONG: Duration = Duration::from_secs(90);

struct ProbeApp {
    dir: TempDir,
}

impl ProbeApp {
    /// An app whose `probe` component consumes `topic`.
    fn new(broker: &Broker, topic: &str, extra_trigger: &str, extra_component: &str) -> ProbeApp {
        let dir = TempDir::new("app");
        let manifest = format!(
            r#"spin_manifest_version = 2

[application]
name = "probe-app"

[application.trigger.kafka]
brokers = "{{{{ kafka_brokers }}}}"

[variables]
kafka_brokers = {{ default = "{brokers}" }}

[[trigger.kafka]]
component = "probe"
topics = ["{topic}"]
group_id = "probe"
max_retries = 2
retry_backoff_ms = 20
retry_backoff_max_ms = 100
{extra_trigger}

[component.probe]
source = "{wasm}"
sqlite_databases = ["default"]
{extra_component}
"#,
            brokers = broker.address(),
            wasm = wasm("kafka_probe.wasm").display(),
        );
        std::fs::write(dir.0.join("spin.toml"), manifest).unwrap();
        ProbeApp { dir }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.0.join(".spin/sqlite_db.db")
    }

    fn handled(&self) -> i64 {
        count(&self.db(), "SELECT COUNT(*) FROM handled")
    }

    fn distinct(&self) -> i64 {
        count(&self.db(), "SELECT COUNT(DISTINCT id) FROM handled")
    }
}

fn ok(id: &str) -> String {
    format!(r#"{{"id": "{id}", "action": "ok"}}"#)
}

#[test]
fn every_message_is_handled_once_and_in_order_within_a_key() {
    let broker = Broker::start();
    broker.create_topics("orders", 3);
    let app = ProbeApp::new(&broker, "orders", "", "");
    let messages: Vec<(String, String)> = (0..300)
        .map(|i| (format!("user-{}", i % 10), ok(&format!("m{i:04}"))))
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker.send("orders", &refs);
    let host = Host::start(&app.dir.0, &[]);
    wait_for("300 messages handled", LONG, || {
        (app.handled() >= 300).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        app.handled(),
        300,
        "each message exactly once:\n{}",
        host.logs()
    );
    assert_eq!(app.distinct(), 300);
    // Within a key, messages were handled in the order they were sent.
    let rows = query(&app.db(), "SELECT msg_key, id FROM handled ORDER BY rowid");
    let mut per_key: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        per_key
            .entry(row[0].clone())
            .or_default()
            .push(row[1].clone());
    }
    assert_eq!(per_key.len(), 10);
    for (key, ids) in per_key {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "order within key {key}");
    }
    let metrics = host.metrics();
    assert!(metrics.contains(
        r#"trigger_kafka_messages_total{component="probe",topic="orders",outcome="ok"} 300"#
    ));
    // Outcomes that never happened are there too, at 0 (a dashboard's
    // rate() needs the series before the first event).
    assert!(
        metrics.contains(
            r#"trigger_kafka_messages_total{component="probe",topic="orders",outcome="dead_lettered"} 0"#
        ),
        "{metrics}"
    );
}

#[test]
fn a_retryable_failure_is_retried_then_succeeds() {
    let broker = Broker::start();
    broker.create_topics("flaky", 1);
    let app = ProbeApp::new(&broker, "flaky", "", "");
    broker.send(
        "flaky",
        &[("u", r#"{"id": "f1", "action": "retry:2"}"#.to_owned())],
    );
    let host = Host::start(&app.dir.0, &[]);
    wait_for("the flaky message handled", LONG, || {
        (app.handled() >= 1).then_some(())
    });
    let rows = query(&app.db(), "SELECT id, attempt FROM handled");
    assert_eq!(
        rows,
        vec![vec!["f1".to_owned(), "3".to_owned()]],
        "succeeded on the third attempt"
    );
    assert!(host.metrics().contains(r#"outcome="retried"} 2"#));
    assert!(
        broker
            .read("flaky.dlq", 1, Duration::from_secs(2))
            .is_empty(),
        "nothing dead-lettered"
    );
}

#[test]
fn poison_messages_go_to_the_dead_letter_topic_and_the_partition_keeps_flowing() {
    let broker = Broker::start();
    broker.create_topics("jobs", 1);
    let app = ProbeApp::new(&broker, "jobs", "", "");
    broker.send(
        "jobs",
        &[
            ("u", ok("first")),
            ("u", r#"{"id": "bad", "action": "permanent"}"#.to_owned()),
            ("u", r#"{"id": "boom", "action": "trap"}"#.to_owned()),
            ("u", "this is not JSON".to_owned()),
            ("u", r#"{"id": "tired", "action": "retry:99"}"#.to_owned()),
            ("u", ok("last")),
        ],
    );
    let host = Host::start(&app.dir.0, &[]);
    wait_for("the last message handled", LONG, || {
        (count(&app.db(), "SELECT COUNT(*) FROM handled WHERE id = 'last'") == 1).then_some(())
    });
    assert_eq!(
        query(&app.db(), "SELECT id FROM handled ORDER BY rowid"),
        vec![vec!["first".to_owned()], vec!["last".to_owned()]]
    );
    let dead = broker.read("jobs.dlq", 4, LONG);
    assert_eq!(dead.len(), 4, "{dead:?}");
    let kinds: Vec<_> = dead
        .iter()
        .map(|r| r.header("dlq-error-kind").unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["permanent", "trap", "permanent", "retries_exhausted"]
    );
    assert!(dead[0]
        .header("dlq-reason")
        .unwrap()
        .contains("can never succeed"));
    assert!(
        dead[1].header("dlq-reason").unwrap().contains("trap")
            || dead[1]
                .header("dlq-reason")
                .unwrap()
                .contains("unreachable"),
        "{:?}",
        dead[1]
    );
    assert!(dead[2]
        .header("dlq-reason")
        .unwrap()
        .contains("undecodable"));
    assert_eq!(
        dead[3].header("dlq-attempts"),
        Some("3"),
        "first attempt plus max_retries = 2"
    );
    for (record, offset) in dead.iter().zip(["1", "2", "3", "4"]) {
        assert_eq!(record.header("dlq-original-topic"), Some("jobs"));
        assert_eq!(record.header("dlq-original-partition"), Some("0"));
        assert_eq!(record.header("dlq-original-offset"), Some(offset));
        assert_eq!(record.header("dlq-component"), Some("probe"));
        assert_eq!(record.key.as_deref(), Some("u"), "the key is kept");
    }
    assert_eq!(
        dead[2].value, "this is not JSON",
        "the payload is kept as it was"
    );
    assert!(host.metrics().contains(r#"outcome="dead_lettered"} 4"#));
}

#[test]
fn a_host_killed_mid_stream_loses_nothing_after_restart() {
    let broker = Broker::start();
    broker.create_topics("stream", 3);
    let app = ProbeApp::new(&broker, "stream", "", "");
    let messages: Vec<(String, String)> = (0..1000)
        .map(|i| {
            (
                format!("user-{}", i % 7),
                format!(r#"{{"id": "s{i:05}", "action": "sleep:2"}}"#),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker.send("stream", &refs);
    let mut host = Host::start(&app.dir.0, &[]);
    wait_for("some messages handled", LONG, || {
        (app.handled() >= 150).then_some(())
    });
    host.kill();
    let before_restart = app.handled();
    assert!(before_restart < 1000, "killed mid-stream");
    host.restart();
    wait_for("every message handled", Duration::from_secs(180), || {
        (app.distinct() >= 1000).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let total = app.handled();
    assert_eq!(app.distinct(), 1000, "nothing lost");
    eprintln!(
        "SIGKILL after {before_restart} handled: {} of 1000 reprocessed after restart",
        total - 1000
    );
    assert!(
        total - 1000 <= before_restart,
        "only uncommitted work is reprocessed"
    );
}

#[test]
fn sigterm_finishes_in_flight_work_and_commits() {
    let broker = Broker::start();
    broker.create_topics("graceful", 2);
    let app = ProbeApp::new(&broker, "graceful", "", "");
    let messages: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{}", i % 4), ok(&format!("g{i:03}"))))
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker.send("graceful", &refs);
    let mut host = Host::start(&app.dir.0, &[]);
    wait_for("100 handled", LONG, || (app.handled() >= 100).then_some(()));
    let status = host.terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        host.logs()
    );
    host.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        app.handled(),
        100,
        "committed offsets: nothing is handled twice after a clean stop"
    );
}

#[test]
fn a_component_gets_only_what_the_manifest_grants() {
    let broker = Broker::start();
    broker.create_topics("grants", 1);
    // A tiny HTTP server the component may call, and a port it may not.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in server.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let denied_port = free_port();
    let app = ProbeApp::new(
        &broker,
        "grants",
        "",
        &format!(r#"allowed_outbound_hosts = ["http://127.0.0.1:{allowed_port}"]"#),
    );
    broker.send(
        "grants",
        &[
            (
                "u",
                r#"{"id": "own-db", "action": "open:default"}"#.to_owned(),
            ),
            (
                "u",
                r#"{"id": "other-db", "action": "open:audit"}"#.to_owned(),
            ),
            ("u", r#"{"id": "kv", "action": "kv:default"}"#.to_owned()),
            (
                "u",
                format!(
                    r#"{{"id": "allowed-host", "action": "http:http://127.0.0.1:{allowed_port}/"}}"#
                ),
            ),
            (
                "u",
                format!(
                    r#"{{"id": "denied-host", "action": "http:http://127.0.0.1:{denied_port}/"}}"#
                ),
            ),
        ],
    );
    let _host = Host::start(&app.dir.0, &[]);
    wait_for("five probes", LONG, || (app.handled() >= 5).then_some(()));
    let notes: HashMap<String, String> = query(&app.db(), "SELECT id, note FROM handled")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(notes["own-db"], "ok");
    assert_eq!(
        notes["other-db"], "Error::AccessDenied",
        "a database not in sqlite_databases"
    );
    assert_eq!(
        notes["kv"], "Error::AccessDenied",
        "a store not in key_value_stores"
    );
    assert_eq!(notes["allowed-host"], "status 200");
    assert!(
        notes["denied-host"].starts_with("error"),
        "{}",
        notes["denied-host"]
    );
}

#[test]
fn the_timer_trigger_fires_every_second() {
    let dir = TempDir::new("cron");
    std::fs::write(
        dir.0.join("spin.toml"),
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"cron-app\"\n\n[[trigger.cron]]\ncomponent = \"tick\"\ncron_expression = \"* * * * * *\"\n\n[component.tick]\nsource = \"{}\"\nsqlite_databases = [\"default\"]\n",
            wasm("cron_probe.wasm").display()
        ),
    )
    .unwrap();
    let host = Host::start(&dir.0, &[]);
    let db = dir.0.join(".spin/sqlite_db.db");
    wait_for("three ticks", Duration::from_secs(30), || {
        (count(&db, "SELECT COUNT(*) FROM ticks") >= 3).then_some(())
    });
    let rows = query(&db, "SELECT ts, ran_ms FROM ticks ORDER BY ts");
    let ts: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    for pair in ts.windows(2) {
        assert_eq!(pair[1] - pair[0], 1, "one tick per second: {ts:?}");
    }
    for row in &rows {
        let late = row[1].parse::<i64>().unwrap() - row[0].parse::<i64>().unwrap() * 1000;
        assert!(
            (0..1000).contains(&late),
            "fired {late} ms after its second"
        );
    }
    assert_eq!(host.health(), 200, "no Kafka configured: healthy");
}

#[test]
fn a_rebalance_hands_partitions_over_without_losing_messages() {
    let broker = Broker::start();
    broker.create_topics("shared", 6);
    let app = ProbeApp::new(&broker, "shared", "", "");
    let messages: Vec<(String, String)> = (0..600)
        .map(|i| {
            (
                format!("user-{}", i % 12),
                format!(r#"{{"id": "r{i:04}", "action": "sleep:50"}}"#),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker.send("shared", &refs);
    let first = Host::start(&app.dir.0, &[]);
    wait_for("the first member at work", LONG, || {
        (app.handled() >= 60).then_some(())
    });
    // A second member joins the same group: partitions move between them.
    // Two members of one app on one host: each its own static identity.
    let second = Host::start(&app.dir.0, &[("TRIGGER_KAFKA_INSTANCE_ID", "second")]);
    wait_for("every message handled", Duration::from_secs(180), || {
        (app.distinct() >= 600).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(app.distinct(), 600, "nothing lost across the rebalance");
    assert!(
        first.logs().contains("partitions revoked"),
        "the first member gave partitions up:\n{}",
        first.logs()
    );
    assert!(
        second.logs().contains("partitions assigned"),
        "the second member took some"
    );
    let reprocessed = app.handled() - 600;
    assert!(
        reprocessed <= 12,
        "in-flight work finished and committed before hand-over; {reprocessed} handled twice"
    );
}

/// A trigger whose dead-letter topic is missing would retry a poison
/// message forever: the host refuses to start, naming the topic.
#[test]
fn a_missing_dead_letter_topic_is_refused_at_start() {
    let broker = Broker::start();
    broker.create_topic("lonely", 1);
    let app = ProbeApp::new(&broker, "lonely", "", "");
    let out = std::process::Command::new(host_bin())
        .current_dir(&app.dir.0)
        .args([
            "up",
            "-f",
            "spin.toml",
            "--listen",
            "127.0.0.1:0",
            "--kafka-admin-listen",
            "off",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway:\n{stderr}");
    assert!(
        stderr.contains("needs topics that do not exist: lonely.dlq"),
        "{stderr}"
    );
}

/// A partition whose handler is slow fills its queue; the consumer pauses
/// that partition and keeps polling, so the other partitions' messages are
/// handled at once instead of waiting behind it.
#[test]
fn a_slow_partition_is_paused_and_the_others_keep_flowing() {
    let broker = Broker::start();
    broker.create_topics("mixed", 2);
    let app = ProbeApp::new(&broker, "mixed", "max_buffered_messages = 256", "");
    let host = Host::start(&app.dir.0, &[]);
    let slow: Vec<(&str, String)> = (0..700)
        .map(|i| {
            (
                "slow",
                format!(r#"{{"id": "slow-{i}", "action": "sleep:15"}}"#),
            )
        })
        .collect();
    broker.send_to("mixed", 0, &slow);
    wait_for("the slow partition to start", LONG, || {
        (app.handled() > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let fast: Vec<(&str, String)> = (0..50)
        .map(|i| ("fast", ok(&format!("fast-{i}"))))
        .collect();
    broker.send_to("mixed", 1, &fast);
    wait_for(
        "the fast partition's messages",
        Duration::from_secs(30),
        || {
            (count(
                &app.db(),
                "SELECT COUNT(*) FROM handled WHERE id LIKE 'fast-%'",
            ) == 50)
                .then_some(())
        },
    );
    let slow_done = count(
        &app.db(),
        "SELECT COUNT(*) FROM handled WHERE id LIKE 'slow-%'",
    );
    eprintln!("fast partition done while the slow one had handled {slow_done} of 700");
    assert!(
        slow_done < 500,
        "the fast partition waited for the slow one ({slow_done})"
    );
    assert!(
        host.metrics().contains(
            "trigger_kafka_partition_paused{group=\"probe\",topic=\"mixed\",partition=\"0\"}"
        ),
        "the slow partition was paused"
    );
    wait_for("everything", LONG, || (app.distinct() == 750).then_some(()));
    assert_eq!(app.handled(), 750, "nothing twice");
    assert!(
        !host.logs().contains("revoked"),
        "the consumer kept its partitions"
    );
}

/// Storage that stays locked longer than the retry budget is the host's
/// failure, not the message's: the partition waits and retries without
/// limit (visible in metrics and /healthz) instead of dead-lettering good
/// messages, and carries on once storage is back.
#[test]
fn storage_failures_pause_the_partition_instead_of_dead_lettering() {
    let broker = Broker::start();
    broker.create_topics("ledger", 1);
    let app = ProbeApp::new(&broker, "ledger", "", "");
    let host = Host::start(&app.dir.0, &[]);
    broker.send("ledger", &[("k", ok("before"))]);
    wait_for("the first message", LONG, || {
        (app.handled() == 1).then_some(())
    });
    // Another writer holds the database for 20 s: longer than the probe's
    // three attempts of 5 s busy-waiting each.
    let db = app.db();
    let locker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(Duration::from_secs(20));
        conn.execute_batch("COMMIT").unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    broker.send("ledger", &[("k", ok("during")), ("k", ok("after"))]);
    let health = wait_for(
        "the partition to show as stalled",
        Duration::from_secs(30),
        || {
            let (_, body) = http(host.admin_port, "GET", "/healthz", &[], None);
            let body: serde_json::Value = serde_json::from_str(&body).ok()?;
            (body["status"] == "degraded").then_some(body)
        },
    );
    assert_eq!(
        health["stalled_partitions"][0]["topic"], "ledger",
        "{health}"
    );
    assert!(host.metrics().contains(
        "trigger_kafka_partition_stalled{group=\"probe\",topic=\"ledger\",partition=\"0\"} 1"
    ));
    locker.join().unwrap();
    wait_for("both messages once storage is back", LONG, || {
        (app.handled() == 3).then_some(())
    });
    assert!(
        broker
            .read("ledger.dlq", 1, Duration::from_secs(3))
            .is_empty(),
        "nothing dead-lettered"
    );
    let (_, body) = http(host.admin_port, "GET", "/healthz", &[], None);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

/// The poll loop commits a filtered record itself only when nothing before
/// it in its partition is pending. Records filtered while an earlier one
/// is still in the handler wait their turn, so a host killed then loses
/// nothing: the earlier record is delivered again after the restart.
#[test]
fn filtered_records_never_commit_past_a_record_in_the_handler() {
    let broker = Broker::start();
    broker.create_topics("in-flight", 1);
    let app = ProbeApp::new(
        &broker,
        "in-flight",
        r#"filters = [{ on = "key", equals = ["keep"] }]"#,
        "",
    );
    broker.send(
        "in-flight",
        &[
            ("drop", r#"{"id": "dropped-first"}"#.to_owned()),
            ("keep", r#"{"id": "first", "action": "ok"}"#.to_owned()),
            (
                "keep",
                r#"{"id": "slow", "action": "sleep:6000"}"#.to_owned(),
            ),
        ],
    );
    let mut host = Host::start(&app.dir.0, &[]);
    wait_for("the first kept record", LONG, || {
        (app.handled() == 1).then_some(())
    });
    // Filtered records arrive while `slow` is in the handler; offsets are
    // committed every second: let two commits pass before the kill.
    let dropped: Vec<(&str, String)> = (0..50)
        .map(|i| ("drop", format!(r#"{{"id": "dropped-{i}"}}"#)))
        .collect();
    broker.send("in-flight", &dropped);
    std::thread::sleep(Duration::from_millis(2500));
    host.kill();
    assert_eq!(app.handled(), 1, "killed while `slow` was in the handler");
    host.restart();
    wait_for("`slow` again after the restart", LONG, || {
        (count(&app.db(), "SELECT COUNT(*) FROM handled WHERE id = 'slow'") == 1).then_some(())
    });
    assert_eq!(
        query(&app.db(), "SELECT id FROM handled ORDER BY rowid"),
        vec![vec!["first".to_owned()], vec!["slow".to_owned()]]
    );
}

/// Filters run in the host: records that do not pass are committed without
/// an instance (the guest records nothing for them) and counted; a filter
/// that cannot work stops the host at start, naming the manifest.
#[test]
fn filtered_records_never_reach_the_component() {
    let broker = Broker::start();
    broker.create_topics("filtered", 1);
    let app = ProbeApp::new(
        &broker,
        "filtered",
        r#"filters = [{ on = "header:ce_type", equals = ["keep", "also"] }, { on = "/kind", prefix = "job." }]"#,
        "",
    );
    let producer = broker.producer();
    let send = |id: &str, ce_type: Option<&str>, kind: &str| {
        let value = format!(r#"{{"id": "{id}", "action": "ok", "kind": "{kind}"}}"#);
        let mut record = rdkafka::producer::BaseRecord::to("filtered")
            .key("k")
            .payload(&value);
        if let Some(t) = ce_type {
            record = record.headers(headers(&[("ce_type", t)]));
        }
        producer.send(record).unwrap();
    };
    send("kept-1", Some("keep"), "job.a");
    send("wrong-type", Some("drop"), "job.a");
    send("no-header", None, "job.a");
    send("wrong-kind", Some("keep"), "other");
    send("kept-2", Some("also"), "job.b");
    send("last", Some("keep"), "job.z");
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();
    let host = Host::start(&app.dir.0, &[]);
    wait_for("the last kept record", LONG, || {
        (count(&app.db(), "SELECT COUNT(*) FROM handled WHERE id = 'last'") == 1).then_some(())
    });
    assert_eq!(
        query(&app.db(), "SELECT id FROM handled ORDER BY rowid"),
        vec![
            vec!["kept-1".to_owned()],
            vec!["kept-2".to_owned()],
            vec!["last".to_owned()]
        ]
    );
    let metrics = host.metrics();
    assert!(
        metrics.contains(r#"outcome="filtered",topic="filtered"} 3"#)
            || metrics.contains(r#"outcome="filtered"} 3"#),
        "{metrics}"
    );
    // Three instances for six records: the filtered ones made none.
    assert!(
        metrics.contains(r#"trigger_kafka_instantiations_total{component="probe"} 3"#),
        "{metrics}"
    );
    drop(host);

    let bad = ProbeApp::new(
        &broker,
        "filtered",
        r#"filters = [{ on = "body", equals = ["x"] }]"#,
        "",
    );
    let output = std::process::Command::new(host_bin())
        .args(["up", "--listen", "127.0.0.1:0"])
        .current_dir(&bad.dir.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("spin.toml")
            && stderr.contains("filters[0]")
            && stderr.contains("`on` must be"),
        "{stderr}"
    );
}
