//! Reminder service, one component with two triggers and one store (the
//! `reminders` database):
//!
//! - Kafka (`reminders` topic): `reminder_scheduled` stores or replaces the
//!   task's schedule, `reminder_cancelled` cancels it; redelivered or
//!   out-of-date events change nothing.
//! - Timer (every second): fires due reminders exactly once (notification +
//!   `reminder_triggered` in the outbox, one transaction) at their own time,
//!   and records those older than the grace window as missed. Email, sms
//!   and push notifications are delivered by the `notifier` component on
//!   its own timer, so firing never waits on a webhook.
#![cfg(target_arch = "wasm32")]

use todo_domain::events::incoming::IncomingEvent;
use todo_domain::events::kafka_handler::apply_batch;
use todo_domain::store::spin;
use todo_domain::store::sql::Sql;
use todo_reminder_store as reminders;
use trigger_kafka_sdk::{
    cron, cron_component, kafka_batch_component, BatchItemFailure, Error, Message,
};

/// Reminders due longer ago than this when the timer sees them (the service
/// was down) are recorded as missed, not sent late.
const DEFAULT_GRACE_SECONDS: i64 = 300;
/// How far into the second after a tick the timer keeps firing reminders
/// at their own time (the next tick takes over after).
const LOOK_AHEAD_MS: i64 = 950;

fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn open() -> Result<Box<dyn Sql>, todo_domain::DomainError> {
    let db = spin::open("reminders")?;
    reminders::open(&db)?;
    Ok(db)
}

/// A batch of `reminders` events is one transaction.
#[kafka_batch_component]
fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
    let db = open().map_err(|e| BatchItemFailure::new(0, e))?;
    let now = todo_domain::time::now();
    apply_batch(&db, messages, |db, message| {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
        let sequence = reminders::sequence_header(
            message
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_slice())),
        );
        reminders::apply_event(db, &event, sequence, now)?;
        Ok(())
    })
}

#[cron_component]
fn tick(metadata: cron::Metadata) -> Result<(), todo_domain::DomainError> {
    let db = open()?;
    let grace = variable("reminder_grace_seconds")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    // Ticks come once a second; reminders due before the next tick are
    // fired at their own time within this one.
    let horizon_ms = metadata.timestamp as i64 * 1000 + LOOK_AHEAD_MS;
    loop {
        let now = todo_domain::time::now();
        let fired = reminders::fire_due(&db, now, grace * 1000)?;
        if fired.fired + fired.missed > 0 {
            println!("reminders: fired {}, missed {}", fired.fired, fired.missed);
        }
        let now_ms = todo_domain::time::to_millis(&now);
        match reminders::next_due_ms(&db, now_ms, horizon_ms)? {
            Some(next_ms) => std::thread::sleep(std::time::Duration::from_millis(
                (next_ms - now_ms).max(0) as u64,
            )),
            None => break,
        }
    }
    Ok(())
}
