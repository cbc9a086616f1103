//! A write burst through the whole app, on a real tansu broker, against a
//! native producer on the same broker in the same run:
//!
//! - 10,000 API writes (`POST /api/tasks`, 8 clients, 10 users) as fast as
//!   the API takes them;
//! - the time until every event is handled by every consumer group (their
//!   committed offsets at the high-water marks, the outboxes empty);
//! - the relay's events/s beside a native idempotent producer's (same
//!   settings, same broker, same event sizes);
//! - the lateness (p50/p99) of reminders of other users due during the
//!   burst;
//! - whether any group was left with unassigned partitions;
//! - the API's latency (p50/p99) during the burst.
//!
//! Run it with `cargo bench --workspace --features
//! todo-domain/native --bench burst`; `BURST_WRITES=2000` for a smaller
//! burst (the 20 reminders fall due 3 to 10.6 s after the burst begins and
//! their `reminder_triggered` events count, so a burst shorter than that
//! is timed against them), `BURST_LOG=<file>` to keep the host's log (each relay batch at
//! debug).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value as Json};
use support::*;

const CLIENTS: usize = 8;

/// A native idempotent producer, configured as the relay's: events/s for
/// `n` messages like the relay's (a payload of `size` bytes and the same
/// CloudEvents headers), from the first send to the last ack.
fn native_producer_rate(
    broker: &Broker,
    n: usize,
    size: usize,
    headers: &[(String, String)],
) -> f64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let payload = "x".repeat(size);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let sends: Vec<_> = (0..n)
            .map(|i| {
                let key = format!("user-{}", i % 10);
                let payload = payload.clone();
                let producer = producer.clone();
                let mut owned = rdkafka::message::OwnedHeaders::new();
                for (k, v) in headers {
                    owned = owned.insert(rdkafka::message::Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                async move {
                    producer
                        .send(
                            FutureRecord::to("native-burst")
                                .key(&key)
                                .payload(&payload)
                                .headers(owned),
                            Duration::from_secs(60),
                        )
                        .await
                        .map(drop)
                        .map_err(|(e, _)| e)
                }
            })
            .collect();
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
        n as f64 / started.elapsed().as_secs_f64()
    })
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let writes: usize = std::env::var("BURST_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let app = ShippedApp::start(
        "burst",
        &[
            ("SPIN_VARIABLE_DEV_AUTH", "true"),
            ("SPIN_VARIABLE_MAX_TASKS_PER_USER", "1000000"),
            ("TRIGGER_KAFKA_LOG", "info,trigger_kafka::relay=debug"),
        ],
    );
    let (broker, host, dir) = (&app.broker, &app.host, &app.dir);
    broker.create_topic("native-burst", 6);
    let port = host.http_port;
    let post = |user: &str, body: Json| {
        let (status, text) = http(
            port,
            "POST",
            "/api/tasks",
            &[("x-user-id", user), ("content-type", "application/json")],
            Some(&body.to_string()),
        );
        assert_eq!(status, 201, "{text}");
        serde_json::from_str::<Json>(&text).unwrap()
    };
    // Warm up: every group has joined once an event went round.
    post("warmup", json!({"title": "warm up"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_groups_caught_up(broker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }

    // Other users' reminders, due while the burst runs.
    let burst_start = chrono::Utc::now();
    for i in 0..20 {
        let due = burst_start + chrono::Duration::milliseconds(3000 + i * 400);
        post(
            &format!("reminded-{i}"),
            json!({"title": format!("reminder {i}"), "due_date": due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "remind_before_minutes": 0}),
        );
    }

    // The burst.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut took_ms = Vec::new();
                loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= writes {
                    break took_ms;
                }
                let sent = Instant::now();
                let (status, text) = http(
                    port,
                    "POST",
                    "/api/tasks",
                    &[("x-user-id", &format!("burst-{}", i % 10)), ("content-type", "application/json")],
                    Some(&json!({"title": format!("burst {i}"), "tags": ["burst"], "priority": "high"}).to_string()),
                );
                assert_eq!(status, 201, "{text}");
                took_ms.push(sent.elapsed().as_millis() as i64);
                }
            })
        })
        .collect();
    let mut api_ms: Vec<i64> = clients
        .into_iter()
        .flat_map(|client| client.join().unwrap())
        .collect();
    api_ms.sort();
    let api_took = started.elapsed();
    let default_db = dir.0.join(".spin/sqlite_db.db");
    let reminders_db = dir.0.join(".spin/reminders.db");
    let deadline = Instant::now() + Duration::from_secs(600);
    // When the outboxes first emptied: what is left after is the consumers'.
    let mut published = None;
    loop {
        let unsent = unsent(&[&default_db, &reminders_db]);
        if unsent == 0 && published.is_none() {
            published = Some(started.elapsed());
        }
        if unsent == 0 && all_groups_caught_up(broker) {
            break;
        }
        assert!(Instant::now() < deadline, "not drained after 10 minutes");
        std::thread::sleep(Duration::from_millis(250));
    }
    let drained = started.elapsed();

    // The relay's capacity: the burst's events again, as one backlog, to a
    // topic nothing consumes (so consumers take no CPU from it), against a
    // native producer sending as many events of the same size.
    broker.create_topic("relay-burst", 6);
    let size: f64 = query(
        &default_db,
        "SELECT AVG(LENGTH(payload)) FROM outbox WHERE payload LIKE '%burst %'",
    )[0][0]
        .parse()
        .unwrap();
    let mut headers: Vec<(String, String)> = serde_json::from_str::<Vec<(String, String)>>(
        &query(
            &default_db,
            "SELECT headers FROM outbox WHERE payload LIKE '%burst %' LIMIT 1",
        )[0][0],
    )
    .unwrap();
    headers.push(("ce_sequence".into(), format!("{:020}", 1)));
    let backlog_started = Instant::now();
    // At least 30,000 rows, so batching effects are amortised.
    let copied = {
        let conn = rusqlite::Connection::open(&default_db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut copied = 0;
        let mut round = 0;
        conn.execute_batch("BEGIN").unwrap();
        while copied < 30_000 {
            copied += conn
                .execute(
                    &format!(
                        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers, created_ms)
                         SELECT event_id || '-again-{round}', 'relay-burst', msg_key, payload, headers, created_ms
                         FROM outbox WHERE payload LIKE '%burst %' AND topic <> 'relay-burst'"
                    ),
                    [],
                )
                .unwrap();
            round += 1;
        }
        conn.execute_batch("COMMIT").unwrap();
        copied
    };
    while unsent(&[&default_db]) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let relay_rate = copied as f64 / backlog_started.elapsed().as_secs_f64();
    // The host's log (the relay logs each batch at debug), for a closer
    // look at where a run spent its time.
    if let Some(path) = std::env::var_os("BURST_LOG") {
        std::fs::write(path, host.logs()).unwrap();
    }
    let events = copied as f64;
    let native_rate = native_producer_rate(broker, copied, size as usize, &headers);

    let mut lateness: Vec<i64> = query(
        &reminders_db,
        "SELECT created_ms - remind_ms FROM notifications WHERE user_id LIKE 'reminded-%'",
    )
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    lateness.sort();
    let metrics = host.metrics();
    let unassigned: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("trigger_kafka_partitions_unassigned") && !l.ends_with(" 0"))
        .collect();

    println!("burst of {writes} API writes (8 clients, 10 users), tansu, 2 cores");
    if let Some(published) = published {
        println!(
            "  every outbox row published after {:.1} s ({:.1}x the write phase); every group done after {:.1} s ({:.1}x)",
            published.as_secs_f64(),
            published.as_secs_f64() / api_took.as_secs_f64(),
            drained.as_secs_f64(),
            drained.as_secs_f64() / api_took.as_secs_f64()
        );
    }
    println!(
        "  API: {:.1} s, {:.0} writes/s, latency p50 {} ms, p99 {} ms, max {} ms; every event handled by every group after {:.1} s",
        api_took.as_secs_f64(),
        writes as f64 / api_took.as_secs_f64(),
        percentile(&api_ms, 0.5),
        percentile(&api_ms, 0.99),
        api_ms.last().copied().unwrap_or_default(),
        drained.as_secs_f64()
    );
    println!(
        "  relay draining a backlog: {:.0} events/s vs native idempotent producer {:.0} events/s ({:.0} events of ~{:.0} B): {:.2}x",
        relay_rate,
        native_rate,
        events,
        size,
        relay_rate / native_rate
    );
    println!(
        "  other users' reminders due during the burst: {} fired, lateness p50 {} ms, p99 {} ms",
        lateness.len(),
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99)
    );
    println!(
        "  groups with unassigned partitions after the burst: {}",
        if unassigned.is_empty() {
            "none".to_owned()
        } else {
            unassigned.join("; ")
        }
    );
}
