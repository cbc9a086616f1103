//! The Todo Chatbot end to end, as shipped: the repository's spin.toml and
//! runtime config, every Wasm component, the real host and a real tansu
//! broker, driven over HTTP as a chat front end would.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use support::*;
use test_servers::postgres::Postgres;

const LONG: Duration = Duration::from_secs(90);

struct TodoApp {
    // Dropped in this order: the host before its broker, store and files.
    host: Server,
    broker: Broker,
    postgres: Option<Postgres>,
    dir: TempDir,
}

/// How a test runs the app: under which host, on which store.
#[derive(Debug, Clone, Copy)]
struct Run {
    mode: Mode,
    /// Every store in a private Postgres (`store = "postgres"`), instead
    /// of the SQLite files.
    postgres: bool,
}

/// Runs an app test three times: under `trigger-kafka up` on SQLite and on
/// Postgres, and under the real `spin up` with the plugins (skipped,
/// saying so, where there is no Spin).
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::{Mode, Run};
            #[test]
            fn standalone() {
                super::$name(Run { mode: Mode::Standalone, postgres: false })
            }
            #[test]
            fn standalone_on_postgres() {
                super::$name(Run { mode: Mode::Standalone, postgres: true })
            }
            #[test]
            fn spin_up() {
                if super::support::spin::spin().is_some() {
                    super::$name(Run { mode: Mode::Spin, postgres: false })
                } else {
                    eprintln!("skipped: no Spin CLI");
                }
            }
        }
    )*};
}

/// The customer walk once more under the real `spin up`, on Postgres.
#[test]
fn spin_up_on_postgres_fires_a_reminder_once() {
    if support::spin::spin().is_some() {
        a_reminder_arrives_once_on_time_and_never_for_a_completed_or_deleted_task(Run {
            mode: Mode::Spin,
            postgres: true,
        })
    } else {
        eprintln!("skipped: no Spin CLI");
    }
}

in_both_modes!(
    a_reminder_arrives_once_on_time_and_never_for_a_completed_or_deleted_task,
    a_completed_daily_task_renews_once_even_when_the_event_is_delivered_twice,
    a_series_with_count_three_stops_after_three,
    the_audit_history_is_complete_after_the_host_is_killed_mid_stream,
    a_second_clients_long_poll_returns_the_first_clients_change,
    email_reminders_are_posted_to_the_webhook_signed_and_failures_are_visible,
    a_webhook_that_never_answers_delays_no_reminder,
);

impl TodoApp {
    fn start(run: Run) -> TodoApp {
        Self::start_with(run, &[])
    }

    /// Starts the app with extra `SPIN_VARIABLE_*` settings.
    fn start_with(run: Run, variables: &[(&str, &str)]) -> TodoApp {
        let postgres = run.postgres.then(Postgres::start);
        let store = postgres.as_ref().map(postgres_variables);
        let broker = Broker::start();
        broker.apply_project_topics();
        let dir = TempDir::new("todo");
        write_shipped_app(&dir.0);
        let brokers = broker.address();
        let mut env = vec![
            ("SPIN_VARIABLE_KAFKA_BROKERS", brokers.as_str()),
            ("SPIN_VARIABLE_DEV_AUTH", "true"),
        ];
        env.extend(store.iter().flatten().map(|(k, v)| (*k, v.as_str())));
        env.extend_from_slice(variables);
        let host = match run.mode {
            Mode::Standalone => Server::Host(Host::start_with_args(
                &dir.0,
                &env,
                &["--runtime-config-file", "runtime-config.toml"],
            )),
            Mode::Spin => Server::Spin(support::spin::SpinUp::start(
                &dir.0,
                &["--runtime-config-file", "runtime-config.toml"],
                &env,
            )),
        };
        let app = TodoApp {
            host,
            broker,
            postgres,
            dir,
        };
        app.wait_until_consuming();
        app
    }

    fn db(&self, name: &str) -> PathBuf {
        self.dir.0.join(".spin").join(name)
    }

    /// A count from database `label` (`default`, `reminders`, `audit`,
    /// `sync`) in whichever store the app runs on; 0 before it exists.
    fn count(&self, label: &str, sql: &str) -> i64 {
        match &self.postgres {
            Some(pg) => pg
                .try_psql(
                    "postgres",
                    &format!("SET search_path TO todo_{label}; {sql}"),
                )
                .and_then(|out| out.trim().parse().ok())
                .unwrap_or(0),
            None => {
                let file = match label {
                    "default" => "sqlite_db.db".to_owned(),
                    other => format!("{other}.db"),
                };
                count(&self.db(&file), sql)
            }
        }
    }

    /// Every consumer group has joined once an event went all the way round.
    fn wait_until_consuming(&self) {
        let id = self.create(
            "warmup",
            json!({"title": "warm up", "remind_at": "2099-01-01T00:00:00Z"}),
        );
        wait_for("the services to consume", LONG, || {
            let scheduled = self.count(
                "reminders",
                &format!("SELECT COUNT(*) FROM schedules WHERE task_id = '{id}'"),
            ) == 1;
            let audited = self.count(
                "audit",
                &format!("SELECT COUNT(*) FROM audit_log WHERE task_id = '{id}'"),
            ) >= 2;
            let synced = self.count(
                "sync",
                &format!("SELECT COUNT(*) FROM changes WHERE task_id = '{id}'"),
            ) == 1;
            (scheduled && audited && synced).then_some(())
        });
    }

    fn call(&self, user: &str, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let text = body.map(|b| b.to_string());
        let (status, response) = self.host.http(
            method,
            path,
            &[("x-user-id", user), ("content-type", "application/json")],
            text.as_deref(),
        );
        (
            status,
            serde_json::from_str(&response).unwrap_or(Json::Null),
        )
    }

    fn create(&self, user: &str, body: Json) -> String {
        let (status, task) = self.call(user, "POST", "/api/tasks", Some(body));
        assert_eq!(status, 201, "{task}");
        task["id"].as_str().unwrap().to_owned()
    }

    fn tasks(&self, user: &str) -> Vec<Json> {
        let (_, page) = self.call(user, "GET", "/api/tasks?limit=100", None);
        page["tasks"].as_array().cloned().unwrap_or_default()
    }
}

fn iso(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn millis(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Alice's first notification with `status`, once there is one.
fn notification_with(app: &TodoApp, status: &str, within: Duration) -> Json {
    wait_for(&format!("a {status} notification"), within, || {
        let (_, page) = app.call("alice", "GET", "/api/notifications", None);
        page["notifications"]
            .as_array()?
            .iter()
            .find(|n| n["status"] == status)
            .cloned()
    })
}

fn a_reminder_arrives_once_on_time_and_never_for_a_completed_or_deleted_task(run: Run) {
    let app = TodoApp::start(run);
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut on_time = Vec::new();
    for i in 0..5 {
        let at = due + chrono::Duration::milliseconds(i * 150);
        on_time.push(app.create(
            "alice",
            json!({"title": format!("call {i}"), "due_date": iso(at), "remind_before_minutes": 0}),
        ));
    }
    let completed = app.create(
        "alice",
        json!({"title": "done early", "due_date": iso(due), "remind_before_minutes": 0}),
    );
    assert_eq!(
        app.call(
            "alice",
            "POST",
            &format!("/api/tasks/{completed}/complete"),
            None
        )
        .0,
        200
    );
    let deleted = app.create(
        "alice",
        json!({"title": "deleted", "due_date": iso(due), "remind_before_minutes": 0}),
    );
    assert_eq!(
        app.call("alice", "DELETE", &format!("/api/tasks/{deleted}"), None)
            .0,
        204
    );

    wait_for("five notifications", Duration::from_secs(10), || {
        let (_, page) = app.call("alice", "GET", "/api/notifications", None);
        (page["notifications"].as_array().map_or(0, Vec::len) >= 5).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let (_, page) = app.call("alice", "GET", "/api/notifications", None);
    let notes = page["notifications"].as_array().unwrap();
    let by_task: HashMap<&str, &Json> = notes
        .iter()
        .map(|n| (n["task_id"].as_str().unwrap(), n))
        .collect();
    assert_eq!(
        notes.len(),
        5,
        "exactly one each, none for the completed or deleted task: {notes:#?}"
    );
    let mut lateness: Vec<i64> = on_time
        .iter()
        .map(|id| {
            let n = by_task[id.as_str()];
            assert_eq!(
                (n["status"].as_str(), n["notification_type"].as_str()),
                (Some("unread"), Some("in_app"))
            );
            millis(n["created_at"].as_str().unwrap()) - millis(n["remind_at"].as_str().unwrap())
        })
        .collect();
    lateness.sort();
    eprintln!(
        "reminder lateness ms: {lateness:?} (p50 {}, max {})",
        lateness[2], lateness[4]
    );
    assert!(
        lateness.iter().all(|l| (0..1000).contains(l)),
        "within a second of remind_at: {lateness:?}"
    );
    // The services saw it too: reminder_triggered is on Kafka and audited.
    let triggered = app.broker.read("reminders", 100, Duration::from_secs(5));
    let fired = triggered
        .iter()
        .filter(|r| r.value.contains("reminder_triggered"))
        .count();
    assert_eq!(fired, 5);
}

fn a_completed_daily_task_renews_once_even_when_the_event_is_delivered_twice(run: Run) {
    let app = TodoApp::start(run);
    let id = app.create("alice", json!({"title": "Stand-up", "due_date": "2099-03-01T09:00:00Z", "recurrence_pattern": "daily", "tags": ["work"]}));
    assert_eq!(
        app.call("alice", "POST", &format!("/api/tasks/{id}/complete"), None)
            .0,
        200
    );
    wait_for("the next instance", LONG, || {
        (app.tasks("alice").len() == 2).then_some(())
    });
    // Publish the task_completed event again, byte for byte.
    let events = app.broker.read("task-events", 100, Duration::from_secs(5));
    let completed = events
        .iter()
        .find(|r| r.value.contains("\"task_completed\"") && r.value.contains(&id))
        .expect("the completion event");
    let producer = app.broker.producer();
    let mut headers = rdkafka::message::OwnedHeaders::new();
    for (k, v) in &completed.headers {
        headers = headers.insert(rdkafka::message::Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    use rdkafka::producer::Producer;
    producer
        .send(
            rdkafka::producer::BaseRecord::to("task-events")
                .key(completed.key.as_deref().unwrap())
                .payload(&completed.value)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let tasks = app.tasks("alice");
    let series: Vec<&Json> = tasks
        .iter()
        .filter(|t| t["series_id"] == json!(id))
        .collect();
    assert_eq!(series.len(), 2, "one next instance: {series:#?}");
    let next = series.iter().find(|t| t["id"] != json!(id)).unwrap();
    assert_eq!(next["due_date"], "2099-03-02T09:00:00Z");
    assert_eq!(
        (
            next["status"].as_str(),
            next["occurrence"].as_i64(),
            next["tags"].clone()
        ),
        (Some("pending"), Some(2), json!(["work"]))
    );
}

fn a_series_with_count_three_stops_after_three(run: Run) {
    let app = TodoApp::start(run);
    let mut current = app.create("alice", json!({"title": "Pill", "due_date": "2099-03-01T08:00:00Z", "recurrence_pattern": "RRULE:FREQ=DAILY;COUNT=3"}));
    for expected in 2..=3 {
        assert_eq!(
            app.call(
                "alice",
                "POST",
                &format!("/api/tasks/{current}/complete"),
                None
            )
            .0,
            200
        );
        current = wait_for("the next occurrence", LONG, || {
            app.tasks("alice")
                .into_iter()
                .find(|t| t["occurrence"] == json!(expected))
                .map(|t| t["id"].as_str().unwrap().to_owned())
        });
    }
    assert_eq!(
        app.call(
            "alice",
            "POST",
            &format!("/api/tasks/{current}/complete"),
            None
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_secs(3));
    let pills = app
        .tasks("alice")
        .into_iter()
        .filter(|t| t["title"] == "Pill")
        .count();
    assert_eq!(pills, 3);
}

fn the_audit_history_is_complete_after_the_host_is_killed_mid_stream(run: Run) {
    let mut app = TodoApp::start(run);
    let mut ids = Vec::new();
    let mut api_to_audit = Vec::new();
    for i in 0..25 {
        let id = app.create("alice", json!({"title": format!("audit {i}")}));
        assert_eq!(
            app.call(
                "alice",
                "PATCH",
                &format!("/api/tasks/{id}"),
                Some(json!({"priority": "high"}))
            )
            .0,
            200
        );
        let written = Instant::now();
        assert_eq!(
            app.call("alice", "POST", &format!("/api/tasks/{id}/complete"), None)
                .0,
            200
        );
        if i < 5 {
            // Latency from an API write to its audit row, before the kill.
            wait_for("the audit row", LONG, || {
                (app.count("audit", &format!("SELECT COUNT(*) FROM audit_log WHERE task_id = '{id}' AND action = 'task_completed'")) == 1).then_some(())
            });
            api_to_audit.push(written.elapsed().as_millis());
        }
        ids.push(id);
    }
    app.host.kill();
    app.host.restart();
    for id in &ids {
        let history = wait_for("a complete history", LONG, || {
            let (_, body) = app.call("alice", "GET", &format!("/api/tasks/{id}/history"), None);
            let actions: Vec<String> = body["history"]
                .as_array()?
                .iter()
                .map(|e| e["action"].as_str().unwrap().to_owned())
                .collect();
            (actions.iter().filter(|a| a.starts_with("task_")).count() >= 3).then_some(actions)
        });
        let task_actions: Vec<&str> = history
            .iter()
            .map(String::as_str)
            .filter(|a| a.starts_with("task_"))
            .collect();
        assert_eq!(
            task_actions,
            ["task_created", "task_updated", "task_completed"],
            "task {id}"
        );
    }
    api_to_audit.sort();
    eprintln!("API write -> audit row ms: {api_to_audit:?}");
}

fn a_second_clients_long_poll_returns_the_first_clients_change(run: Run) {
    let app = TodoApp::start(run);
    let (_, start) = app.call("alice", "GET", "/api/sync", None);
    let cursor = start["cursor"].as_str().unwrap().to_owned();
    let port = app.host.http_port();
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let (status, body) = http(
            port,
            "GET",
            &format!("/api/sync?since={cursor}&wait=20"),
            &[("x-user-id", "alice")],
            None,
        );
        (status, body, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let id = app.create("alice", json!({"title": "from the phone"}));
    let (status, body, waited) = poller.join().unwrap();
    assert_eq!(status, 200);
    let body: Json = serde_json::from_str(&body).unwrap();
    let change = &body["changes"][0];
    assert_eq!(
        (
            change["task_id"].as_str(),
            change["update_data"]["change"].as_str()
        ),
        (Some(id.as_str()), Some("created"))
    );
    assert!(
        waited < Duration::from_secs(15),
        "answered when the change arrived, after {waited:?}"
    );

    // A shared task reaches the other user's feed.
    let (_, bob_start) = app.call("bob", "GET", "/api/sync", None);
    assert_eq!(
        app.call(
            "alice",
            "POST",
            &format!("/api/tasks/{id}/share"),
            Some(json!({"user_id": "bob"}))
        )
        .0,
        200
    );
    let (_, bob) = app.call(
        "bob",
        "GET",
        &format!(
            "/api/sync?since={}&wait=20",
            bob_start["cursor"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(bob["changes"][0]["event_type"], "task_shared");
    assert_eq!(
        bob["changes"][0]["update_data"]["task"]["title"],
        "from the phone"
    );

    // And the same feed as Server-Sent Events.
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: alice\r\naccept: text/event-stream\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    app.call(
        "alice",
        "PATCH",
        &format!("/api/tasks/{id}"),
        Some(json!({"title": "edited on the laptop"})),
    );
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !seen.contains("edited on the laptop") {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(
        seen.contains("event: task_updated") && seen.contains("edited on the laptop"),
        "{seen}"
    );
}

fn email_reminders_are_posted_to_the_webhook_signed_and_failures_are_visible(run: Run) {
    use hmac::{Hmac, Mac};
    let (good, requests) = webhook(200);
    let url = format!("http://127.0.0.1:{good}/notify");
    let origin = format!("http://127.0.0.1:{good}");
    let app = TodoApp::start_with(
        run,
        &[
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_URL", &url),
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_ORIGIN", &origin),
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_SECRET", "s3cret"),
        ],
    );
    let due = iso(chrono::Utc::now() + chrono::Duration::seconds(2));
    let id = app.create("alice", json!({"title": "Pay rent", "due_date": due, "remind_before_minutes": 0, "notification_type": "email"}));
    let (headers, body) = requests
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook was called");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let payload: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            payload["task_id"].as_str(),
            payload["notification_type"].as_str(),
            payload["user_id"].as_str()
        ),
        (Some(id.as_str()), Some("email"), Some("alice"))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{}.{}", header("x-todo-timestamp"), body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header("x-todo-signature"), format!("sha256={expected}"));
    let delivered = notification_with(&app, "delivered", Duration::from_secs(10));
    assert_eq!(delivered["attempts"], 1);
    assert!(
        requests.recv_timeout(Duration::from_secs(2)).is_err(),
        "delivered once"
    );

    // A webhook that keeps failing: retried with backoff, then failed, visibly.
    drop(app);
    let (bad, bad_requests) = webhook(503);
    let url = format!("http://127.0.0.1:{bad}/notify");
    let origin = format!("http://127.0.0.1:{bad}");
    let app = TodoApp::start_with(
        run,
        &[
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_URL", &url),
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_ORIGIN", &origin),
        ],
    );
    let due = iso(chrono::Utc::now() + chrono::Duration::seconds(2));
    app.create("alice", json!({"title": "Call bank", "due_date": due, "remind_before_minutes": 0, "notification_type": "sms"}));
    let failed = notification_with(&app, "failed", Duration::from_secs(60));
    assert_eq!(failed["attempts"], 5);
    assert!(
        failed["last_error"].as_str().unwrap().contains("503"),
        "{failed}"
    );
    assert_eq!(
        bad_requests.try_iter().count(),
        5,
        "five attempts reached the webhook"
    );
}

/// Ctrl-C in the terminal running `spin up`: every process of the app
/// stops (Spin, its HTTP trigger, both plugins), and writes made just
/// before it are not lost: after a restart every event reaches the audit
/// trail.
#[test]
fn ctrl_c_stops_every_process_of_spin_up_and_loses_nothing() {
    if support::spin::spin().is_none() {
        eprintln!("skipped: no Spin CLI");
        return;
    }
    let mut app = TodoApp::start(Run {
        mode: Mode::Spin,
        postgres: false,
    });
    let Server::Spin(up) = &mut app.host else {
        unreachable!()
    };
    let processes = up.processes();
    assert!(
        processes.len() >= 4,
        "spin up, its HTTP trigger and the two plugin processes: {processes:?}"
    );
    for plugin in ["trigger-kafka", "trigger-cron"] {
        assert!(
            up.plugin_pid(plugin).is_some(),
            "{plugin} runs: {processes:?}"
        );
    }
    let ids: Vec<String> = (0..20)
        .map(|i| app.create("carol", json!({"title": format!("before ctrl-c {i}")})))
        .collect();
    let Server::Spin(up) = &mut app.host else {
        unreachable!()
    };
    let stopping = Instant::now();
    let status = up.ctrl_c();
    assert!(
        status.code().is_some(),
        "spin up exited by itself: {status}"
    );
    // Spin returns once one trigger process has exited; the plugins finish
    // their in-flight work and commit, then exit too, within their grace.
    let still_running = || -> Vec<(u32, String)> {
        processes
            .iter()
            .filter(|(pid, _)| std::path::Path::new(&format!("/proc/{pid}")).exists())
            .cloned()
            .collect()
    };
    let mut left = still_running();
    while !left.is_empty() && stopping.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        left = still_running();
    }
    assert!(left.is_empty(), "still running 20 s after Ctrl-C: {left:?}");
    eprintln!(
        "every process of spin up gone {:?} after Ctrl-C",
        stopping.elapsed()
    );
    let logs = up.logs();
    assert!(
        logs.contains("kafka trigger stopped"),
        "the Kafka plugin shut down cleanly:\n{logs}"
    );
    up.restart();
    for id in &ids {
        wait_for("the audit row", LONG, || {
            (count(
                &app.db("audit.db"),
                &format!("SELECT COUNT(*) FROM audit_log WHERE task_id = '{id}'"),
            ) >= 1)
                .then_some(())
        });
    }
}

/// A webhook receiver that reads each request and never answers.
fn silent_webhook() -> (u16, Received) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let Some((k, v)) = line.trim_end().split_once(": ") else {
                        break;
                    };
                    headers.push((k.to_ascii_lowercase(), v.to_owned()));
                }
                let _ = sender.send((headers, String::new()));
                // Hold the connection, say nothing.
                std::thread::sleep(Duration::from_secs(120));
            });
        }
    });
    (port, receiver)
}

/// A webhook that never answers delays no reminder (firing and in-app
/// notifications never wait on it), is not hammered (each attempt is
/// recorded before it is sent and waits out its timeout and backoff), and
/// gets an `Idempotency-Key` so it could drop a repeat.
fn a_webhook_that_never_answers_delays_no_reminder(run: Run) {
    let (port, requests) = silent_webhook();
    let url = format!("http://127.0.0.1:{port}/notify");
    let origin = format!("http://127.0.0.1:{port}");
    let app = TodoApp::start_with(
        run,
        &[
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_URL", &url),
            ("SPIN_VARIABLE_NOTIFICATION_WEBHOOK_ORIGIN", &origin),
            ("SPIN_VARIABLE_NOTIFICATION_TIMEOUT_MS", "1500"),
        ],
    );
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    let email = app.create(
        "alice",
        json!({"title": "Mail me", "due_date": iso(due), "remind_before_minutes": 0, "notification_type": "email"}),
    );
    let mut in_app = Vec::new();
    for i in 0..5 {
        let at = due + chrono::Duration::milliseconds(300 + i * 200);
        in_app.push(app.create(
            "bob",
            json!({"title": format!("ping {i}"), "due_date": iso(at), "remind_before_minutes": 0}),
        ));
    }
    let notes = wait_for("bob's five reminders", Duration::from_secs(20), || {
        let (_, page) = app.call("bob", "GET", "/api/notifications", None);
        let notes = page["notifications"].as_array()?.clone();
        (notes.len() == 5).then_some(notes)
    });
    let lateness: Vec<i64> = notes
        .iter()
        .map(|n| {
            millis(n["created_at"].as_str().unwrap()) - millis(n["remind_at"].as_str().unwrap())
        })
        .collect();
    eprintln!("in-app lateness ms with a silent webhook: {lateness:?}");
    assert!(
        lateness.iter().all(|l| (0..1000).contains(l)),
        "{lateness:?}"
    );
    let (headers, _) = requests
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook was called");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (_, page) = app.call("alice", "GET", "/api/notifications", None);
    let note = page["notifications"][0].clone();
    assert_eq!(note["task_id"], json!(email));
    assert_eq!(
        header("idempotency-key"),
        note["id"].as_str().map(str::to_owned)
    );
    // Within the next 4 s: the 1.5 s timeout and a 1 s then 2 s backoff
    // allow at most two more attempts, never one per tick.
    std::thread::sleep(Duration::from_secs(4));
    let more = requests.try_iter().count();
    let (_, page) = app.call("alice", "GET", "/api/notifications", None);
    let note = &page["notifications"][0];
    assert!(more <= 2, "{more} more requests in 4 s: {note}");
    assert!(
        note["attempts"].as_i64().unwrap() > more as i64,
        "every attempt recorded: {note}"
    );
    assert!(
        note["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable")
            || note["status"] == "pending",
        "{note}"
    );
}
