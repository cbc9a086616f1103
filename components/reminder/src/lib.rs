//! Reminder service, one component with two triggers and one store (the
//! `reminders` database):
//!
//! - Kafka (`reminders` topic): `reminder_scheduled` stores or replaces the
//!   task's schedule, `reminder_cancelled` cancels it; redelivered or
//!   out-of-date events change nothing.
//! - Timer (every second): fires due reminders exactly once (notification +
//!   `reminder_triggered` in the outbox, one transaction), records those
//!   older than the grace window as missed, then delivers email/sms/push
//!   notifications to the webhook, signed, with retries.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::too_many_arguments)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use todo_domain::incoming::IncomingEvent;
use todo_domain::reminders::{self, Notification};
use todo_domain::spin::SpinDb;

spin_sdk::wit_bindgen::generate!({
    world: "todo-chatbot:kafka-trigger/kafka-and-cron-handler",
    path: "../../kafka/wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

/// Reminders due longer ago than this when the timer sees them (the service
/// was down) are recorded as missed, not sent late.
const DEFAULT_GRACE_SECONDS: i64 = 300;
/// How far into the second after a tick the timer keeps firing reminders
/// at their own time (the next tick takes over after).
const LOOK_AHEAD_MS: i64 = 950;
/// Webhook deliveries per timer tick.
const DELIVERIES_PER_TICK: i64 = 20;

struct Reminder;

fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn open() -> Result<SpinDb, String> {
    let db = SpinDb::open("reminders").map_err(|e| e.to_string())?;
    reminders::open(&db).map_err(|e| e.to_string())?;
    Ok(db)
}

/// `X-Todo-Signature: sha256=<hex>` over `<timestamp>.<body>`, so a
/// receiver can check origin and freshness.
fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn deliver(url: &str, secret: Option<&str>, notification: &Notification) -> Result<(), String> {
    let body = reminders::webhook_body(notification).to_string();
    let timestamp = todo_domain::time::now().timestamp();
    let mut request = spin_sdk::http::Request::builder();
    request
        .method(spin_sdk::http::Method::Post)
        .uri(url)
        .header("content-type", "application/json")
        // A plain length rather than chunked encoding: any receiver reads it.
        .header("content-length", body.len().to_string())
        .header("x-todo-timestamp", timestamp.to_string())
        .header("x-todo-notification-id", notification.id.clone());
    if let Some(secret) = secret {
        request.header("x-todo-signature", signature(secret, timestamp, &body));
    }
    let request = request.body(body).build();
    let response: spin_sdk::http::Response = spin_sdk::http::run(spin_sdk::http::send(request))
        .map_err(|e| format!("webhook unreachable: {e}"))?;
    match *response.status() {
        200..=299 => Ok(()),
        status => Err(format!("webhook answered {status}")),
    }
}

impl Guest for Reminder {
    fn handle_message(message: Message) -> Result<(), Error> {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::Permanent)?;
        let db = open().map_err(Error::Retryable)?;
        reminders::apply_event(&db, &event, todo_domain::time::now()).map_err(|e| {
            if e.is_transient() {
                Error::Retryable(e.to_string())
            } else {
                Error::Permanent(e.to_string())
            }
        })?;
        Ok(())
    }

    fn handle_cron_event(metadata: Metadata) -> Result<(), CronError> {
        let db = open().map_err(CronError::Other)?;
        let grace = variable("reminder_grace_seconds")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        let fail = |e: todo_domain::DomainError| CronError::Other(e.to_string());
        // Ticks come once a second; reminders due before the next tick are
        // fired at their own time within this one.
        let horizon_ms = metadata.timestamp as i64 * 1000 + LOOK_AHEAD_MS;
        loop {
            let now = todo_domain::time::now();
            let fired = reminders::fire_due(&db, now, grace * 1000).map_err(fail)?;
            if fired.fired + fired.missed > 0 {
                println!("reminders: fired {}, missed {}", fired.fired, fired.missed);
            }
            let now_ms = todo_domain::time::to_millis(&now);
            match reminders::next_due_ms(&db, now_ms, horizon_ms).map_err(fail)? {
                Some(next_ms) => std::thread::sleep(std::time::Duration::from_millis(
                    (next_ms - now_ms).max(0) as u64,
                )),
                None => break,
            }
        }
        let now = todo_domain::time::now();
        let pending = reminders::pending_deliveries(&db, now, DELIVERIES_PER_TICK)
            .map_err(|e| CronError::Other(e.to_string()))?;
        let url = variable("notification_webhook_url");
        let secret = variable("notification_webhook_secret");
        for notification in pending {
            let outcome = match &url {
                Some(url) => deliver(url, secret.as_deref(), &notification),
                None => {
                    Err("no notification webhook is configured (notification_webhook_url)".into())
                }
            };
            if let Err(e) = &outcome {
                eprintln!("reminders: delivery of {} failed: {e}", notification.id);
            }
            reminders::record_delivery(&db, &notification.id, outcome, todo_domain::time::now())
                .map_err(|e| CronError::Other(e.to_string()))?;
        }
        Ok(())
    }
}

export!(Reminder);
