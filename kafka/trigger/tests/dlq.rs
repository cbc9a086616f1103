//! Dead-letter redrive through the real host and tansu: a handler with a
//! bug dead-letters messages; `trigger-kafka dlq list` shows them;
//! `dlq replay` republishes each once — through a filter, a dry run and a
//! run that stops after a send it had not yet recorded — and the fixed
//! handler then handles each exactly once.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::*;

const LONG: Duration = Duration::from_secs(90);

fn app(broker: &Broker, dir: &std::path::Path, fixed: bool) {
    let environment = if fixed {
        "environment = { PROBE_FIXED = \"1\" }"
    } else {
        ""
    };
    let manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "redrive-app"

[application.trigger.kafka]
brokers = "{brokers}"

[[trigger.kafka]]
component = "probe"
topics = ["jobs"]
group_id = "probe"
max_retries = 0

[component.probe]
source = "{wasm}"
sqlite_databases = ["default"]
{environment}
"#,
        brokers = broker.address(),
        wasm = wasm("kafka_probe.wasm").display(),
    );
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
}

fn dlq(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(host_bin());
    command.arg("dlq").args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn dead_letters_are_listed_and_replayed_once_each_even_when_interrupted() {
    let broker = Broker::start();
    broker.create_topics("jobs", 2);
    let dir = TempDir::new("redrive");
    app(&broker, &dir.0, false);
    let broken = |id: &str| format!(r#"{{"id": "{id}", "action": "broken"}}"#);
    broker.send(
        "jobs",
        &[
            ("u1", broken("b1")),
            ("u2", broken("b2")),
            ("u1", broken("b3")),
            ("u2", broken("b4")),
            ("u1", broken("b5")),
            ("u1", r#"{"id": "last", "action": "ok"}"#.to_owned()),
        ],
    );
    let db = dir.0.join(".spin/sqlite_db.db");
    let mut host = Host::start(&dir.0, &[]);
    wait_for("the good message", LONG, || {
        (count(&db, "SELECT COUNT(*) FROM handled WHERE id = 'last'") == 1).then_some(())
    });
    assert_eq!(broker.read("jobs.dlq", 5, LONG).len(), 5);
    host.terminate();

    // list: one line per dead letter, with kind, attempts, origin and key.
    let listed = dlq(&dir.0, &["list", "jobs"], &[]);
    assert!(listed.status.success(), "{listed:?}");
    let text = stdout(&listed);
    assert!(text.contains("5 dead letters in jobs.dlq"), "{text}");
    assert_eq!(text.matches("permanent").count(), 5, "{text}");
    assert!(
        text.contains("jobs/0/") || text.contains("jobs/1/"),
        "{text}"
    );
    assert!(text.contains("cannot take it yet"), "{text}");

    // A dry run and a filter that selects nothing send nothing.
    let dry = dlq(&dir.0, &["replay", "jobs", "--dry-run"], &[]);
    assert!(
        stdout(&dry).contains("would replay 5, 0 already replayed"),
        "{dry:?}"
    );
    let none = dlq(
        &dir.0,
        &["replay", "jobs", "--since", "2099-01-01T00:00:00Z"],
        &[],
    );
    assert!(
        stdout(&none).contains("replayed 0, 0 already replayed, 5 not selected"),
        "{none:?}"
    );

    // By key first: u2's two.
    let u2 = dlq(&dir.0, &["replay", "jobs.dlq", "--key", "u2"], &[]);
    assert!(
        stdout(&u2).contains("replayed 2, 0 already replayed, 3 not selected"),
        "{u2:?}"
    );
    // Then the rest, stopping right after a send it has not recorded.
    let crashed = dlq(
        &dir.0,
        &["replay", "jobs"],
        &[("TRIGGER_KAFKA_TEST_DLQ_CRASH_AFTER", "1")],
    );
    assert_eq!(crashed.status.code(), Some(3), "{crashed:?}");
    // The next run finds that send in `jobs` and sends only the other two.
    let resumed = dlq(&dir.0, &["replay", "jobs"], &[]);
    assert!(
        stdout(&resumed).contains("replayed 2, 3 already replayed, 0 not selected"),
        "{resumed:?}"
    );
    let again = dlq(&dir.0, &["replay", "jobs"], &[]);
    assert!(
        stdout(&again).contains("replayed 0, 5 already replayed"),
        "{again:?}"
    );

    // Each dead letter is in `jobs` once more, marked, with its key.
    let records = broker.read("jobs", 11, LONG);
    let replayed: Vec<_> = records
        .iter()
        .filter_map(|r| {
            r.header("dlq-replayed")
                .map(|h| (h.to_owned(), r.key.clone()))
        })
        .collect();
    assert_eq!(replayed.len(), 5, "{replayed:?}");
    let mut ids: Vec<_> = replayed.iter().map(|(h, _)| h.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each dead letter once: {ids:?}");
    assert!(records
        .iter()
        .filter(|r| r.header("dlq-replayed").is_some())
        .all(|r| r.header("dlq-reason").is_none()));

    // The fixed handler handles each exactly once.
    app(&broker, &dir.0, true);
    host.restart();
    wait_for("the replayed messages", LONG, || {
        (count(&db, "SELECT COUNT(*) FROM handled WHERE note = 'fixed'") >= 5).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        query(
            &db,
            "SELECT id, COUNT(*) FROM handled WHERE note = 'fixed' GROUP BY id ORDER BY id"
        ),
        ["b1", "b2", "b3", "b4", "b5"]
            .iter()
            .map(|id| vec![id.to_string(), "1".to_string()])
            .collect::<Vec<_>>()
    );
}
