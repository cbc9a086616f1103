//! Traces from the chat request to every handler and the webhook, received
//! by a real OTLP/HTTP endpoint: a small receiver decoding each export with
//! OpenTelemetry's own protobuf messages (`tests/traces/otlp_receiver.py`,
//! from the test virtualenv, `TODO_VENV`; without it the test says it was
//! skipped).

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::*;

/// The chat front end's own span: the trace every span of the write joins.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

struct Receiver {
    child: Child,
    spans: PathBuf,
    port: u16,
    _dir: TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start() -> Option<Receiver> {
        let venv = PathBuf::from(std::env::var_os("TODO_VENV")?);
        let dir = TempDir::new("otlp");
        let (spans, port_file) = (dir.0.join("spans.jsonl"), dir.0.join("port"));
        let child = Command::new(venv.join("bin/python"))
            .arg(repo().join("tests/traces/otlp_receiver.py"))
            .args([&spans, &port_file])
            .spawn()
            .expect("the OTLP receiver starts");
        let port = wait_for("the OTLP receiver", Duration::from_secs(20), || {
            std::fs::read_to_string(&port_file).ok()?.parse().ok()
        });
        Some(Receiver {
            child,
            spans,
            port,
            _dir: dir,
        })
    }

    fn spans(&self) -> Vec<Json> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn attribute<'a>(span: &'a Json, name: &str) -> &'a str {
    span["attributes"][name].as_str().unwrap_or("")
}

/// The spans of one hop: `name` on `topic` (any topic if empty), for
/// `component` (any if empty).
fn hops<'a>(spans: &'a [Json], name: &str, topic: &str, component: &str) -> Vec<&'a Json> {
    spans
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| topic.is_empty() || attribute(s, "messaging.destination.name") == topic)
        .filter(|s| component.is_empty() || attribute(s, "spin.component") == component)
        .collect()
}

/// The app's variables for a walk: development auth, the webhook, traces.
fn settings(hook: u16, receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_DEV_AUTH", "true".into()),
        (
            "SPIN_VARIABLE_NOTIFICATION_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook}/notify"),
        ),
        (
            "SPIN_VARIABLE_NOTIFICATION_WEBHOOK_ORIGIN",
            format!("http://127.0.0.1:{hook}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", receiver.port),
        ),
        ("OTEL_SERVICE_NAME", "todo-chatbot".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

/// A chat request that sets a reminder, sent with the client's trace
/// context; returns the `traceparent` the webhook received and, once every
/// hop after the request has reported, the trace's spans.
fn walk(port: u16, deliveries: &Received, receiver: &Receiver) -> (String, Vec<Json>) {
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let (status, body) = http(
        port,
        "POST",
        "/api/tasks",
        &[
            ("x-user-id", "alice"),
            ("content-type", "application/json"),
            ("traceparent", &traceparent),
        ],
        Some(
            &json!({"title": "Call the bank", "due_date": due.to_rfc3339(), "remind_before_minutes": 0, "notification_type": "email"})
                .to_string(),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (headers, _) = deliveries
        .recv_timeout(Duration::from_secs(60))
        .expect("the reminder's webhook was called");
    let delivered = headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("the webhook request carries a traceparent");
    assert!(
        delivered.starts_with(&format!("00-{TRACE_ID}-")),
        "{delivered}"
    );
    // Every hop after the request: each event published; each group's
    // handler of each; the reminder firing's event; the webhook call.
    let expected: &[(&str, &str, &str)] = &[
        ("spin_trigger_kafka.publish", "task-events", ""),
        ("spin_trigger_kafka.publish", "task-updates", ""),
        ("spin_trigger_kafka.handle_message", "task-events", "audit"),
        (
            "spin_trigger_kafka.handle_message",
            "task-events",
            "recurring",
        ),
        ("spin_trigger_kafka.handle_message", "task-updates", "sync"),
        ("spin_trigger_kafka.handle_message", "reminders", "reminder"),
        ("spin_trigger_kafka.handle_message", "reminders", "audit"),
        ("spin_outbound_http.send_request", "", ""),
    ];
    let spans = wait_for("every hop's span", Duration::from_secs(30), || {
        let spans: Vec<Json> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == TRACE_ID)
            .collect();
        // reminder_scheduled, then reminder_triggered with its handlers.
        let complete = expected
            .iter()
            .all(|(name, topic, component)| !hops(&spans, name, topic, component).is_empty())
            && hops(&spans, "spin_trigger_kafka.publish", "reminders", "").len() >= 2
            && hops(
                &spans,
                "spin_trigger_kafka.handle_message",
                "reminders",
                "audit",
            )
            .len()
                >= 2;
        complete.then_some(spans)
    });
    println!(
        "one trace, {} spans: {:?}",
        spans.len(),
        spans
            .iter()
            .map(|s| format!(
                "{} {} {}",
                s["name"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .take(40)
                    .collect::<String>(),
                attribute(s, "messaging.destination.name"),
                attribute(s, "spin.component")
            ))
            .collect::<Vec<_>>()
    );
    (delivered, spans)
}

/// Checks the hops after the HTTP request: each handler continues its
/// message's publication, the webhook continues the reminder's handler (the
/// schedule kept its context) and the received `traceparent` is the
/// webhook call's span.
fn check_after_request(spans: &[Json], delivered: &str) {
    let by_id: HashMap<&str, &Json> = spans
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap(), s))
        .collect();
    let parent_name = |span: &Json| {
        by_id
            .get(span["parent_span_id"].as_str().unwrap())
            .map(|p| p["name"].clone())
            .unwrap_or_default()
    };
    for handler in hops(spans, "spin_trigger_kafka.handle_message", "", "") {
        assert_eq!(parent_name(handler), "spin_trigger_kafka.publish");
    }
    let webhook_call = hops(spans, "spin_outbound_http.send_request", "", "")[0];
    assert!(delivered.contains(webhook_call["span_id"].as_str().unwrap()));
    assert_eq!(
        parent_name(webhook_call),
        "spin_trigger_kafka.handle_message"
    );
    let triggered = hops(spans, "spin_trigger_kafka.publish", "reminders", "")
        .into_iter()
        .filter(|s| parent_name(s) == "spin_trigger_kafka.handle_message")
        .count();
    assert_eq!(
        triggered, 1,
        "reminder_triggered continues the reminder's handler"
    );
}

#[test]
fn one_write_is_one_connected_trace_from_the_request_to_the_webhook() {
    let Some(receiver) = Receiver::start() else {
        eprintln!("skipped: no TODO_VENV with opentelemetry-proto (the test command sets it)");
        return;
    };
    let (hook, deliveries) = webhook(200);
    let settings = settings(hook, &receiver);
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = ShippedApp::start("traces", &env);
    let (delivered, spans) = walk(app.host.http_port, &deliveries, &receiver);
    check_after_request(&spans, &delivered);

    // One tree: the request's span is the client's child, every other
    // span's parent is a span of the same trace, and the events the
    // request wrote continue the request's span.
    let request = hops(&spans, "spin_trigger_http.handle_http_request", "", "api")[0];
    assert_eq!(request["parent_span_id"], CLIENT_SPAN);
    assert_eq!(request["service"], "todo-chatbot");
    assert_eq!(attribute(request, "http.route"), "/...");
    let ids: HashSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    for span in &spans {
        if span["span_id"] != request["span_id"] {
            let parent = span["parent_span_id"].as_str().unwrap();
            assert!(
                ids.contains(parent),
                "{span} has a parent outside the trace"
            );
        }
    }
    for publish in hops(&spans, "spin_trigger_kafka.publish", "task-events", "") {
        assert_eq!(publish["parent_span_id"], request["span_id"]);
    }
}

/// Under the real `spin up`, Spin serves and traces HTTP (without handing
/// its span to the component), and the plugins trace the rest: the events
/// continue the caller's own context, so the trace still holds every hop.
#[test]
fn under_spin_up_a_write_is_still_one_trace() {
    if support::spin::spin().is_none() {
        eprintln!("skipped: no Spin CLI");
        return;
    }
    let Some(receiver) = Receiver::start() else {
        eprintln!("skipped: no TODO_VENV with opentelemetry-proto (the test command sets it)");
        return;
    };
    let (hook, deliveries) = webhook(200);
    let broker = Broker::start();
    broker.apply_project_topics();
    let dir = TempDir::new("traces-spin");
    write_shipped_app(&dir.0);
    let brokers = broker.address();
    let settings = settings(hook, &receiver);
    let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("SPIN_VARIABLE_KAFKA_BROKERS", &brokers));
    let spin = support::spin::SpinUp::start(
        &dir.0,
        &["--runtime-config-file", "runtime-config.toml"],
        &env,
    );
    let (delivered, spans) = walk(spin.http_port, &deliveries, &receiver);
    check_after_request(&spans, &delivered);
    for publish in hops(&spans, "spin_trigger_kafka.publish", "task-events", "") {
        assert_eq!(publish["parent_span_id"], CLIENT_SPAN);
    }
    // Spin's own HTTP server span is in the same trace, the caller's child.
    const SERVER: i64 = 2;
    assert!(
        spans
            .iter()
            .any(|s| s["parent_span_id"] == CLIENT_SPAN && s["kind"] == SERVER),
        "no server span of Spin's under the caller's"
    );
}
