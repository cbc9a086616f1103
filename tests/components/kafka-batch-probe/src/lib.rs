//! A batch handler for the trigger's tests: each batch is recorded in the
//! `batches` table (size, first and last offset, each message's attempt),
//! then its messages run the kafka-probe's actions in order, stopping at
//! the first failure. `PROBE_MODE=noop` succeeds at once (benchmarks).
//! It is `async` to exercise that form of the SDK macro.
#![cfg(target_arch = "wasm32")]

#[path = "../../kafka-probe/src/actions.rs"]
mod actions;

use spin_sdk::sqlite::{Connection, Value};
use trigger_kafka_sdk::{each, kafka_batch_component, BatchItemFailure, Error, Message};

fn record_batch(messages: &[Message]) -> Result<(), Error> {
    let label = std::env::var("PROBE_DB").unwrap_or_else(|_| "default".into());
    let db = Connection::open(&label)?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS batches (
            size INTEGER NOT NULL, first_offset INTEGER, last_offset INTEGER,
            attempts TEXT NOT NULL)",
        &[],
    )?;
    let attempts: Vec<String> = messages.iter().map(|m| m.attempt.to_string()).collect();
    db.execute(
        "INSERT INTO batches (size, first_offset, last_offset, attempts) VALUES (?, ?, ?, ?)",
        &[
            Value::Integer(messages.len() as i64),
            messages
                .first()
                .map_or(Value::Null, |m| Value::Integer(m.offset)),
            messages
                .last()
                .map_or(Value::Null, |m| Value::Integer(m.offset)),
            Value::Text(attempts.join(",")),
        ],
    )?;
    Ok(())
}

#[kafka_batch_component]
async fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
    if actions::noop() {
        return Ok(());
    }
    record_batch(&messages).map_err(|e| BatchItemFailure::new(0, e))?;
    each(messages, actions::act)
}
