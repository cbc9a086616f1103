//! A timer handler for the trigger's tests: records each tick (the
//! schedule's timestamp and when it ran) in the `ticks` table of `default`.
#![cfg(target_arch = "wasm32")]

use spin_sdk::sqlite::{Connection, Value};
use trigger_kafka_sdk::{cron, cron_component};

#[cron_component]
fn tick(metadata: cron::Metadata) -> Result<(), String> {
    let fail = |e: spin_sdk::sqlite::Error| format!("{e:?}");
    let db = Connection::open("default").map_err(fail)?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS ticks (ts INTEGER NOT NULL, ran_ms INTEGER NOT NULL)",
        &[],
    )
    .map_err(fail)?;
    let ran_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    db.execute(
        "INSERT INTO ticks (ts, ran_ms) VALUES (?, ?)",
        &[
            Value::Integer(metadata.timestamp as i64),
            Value::Integer(ran_ms),
        ],
    )
    .map_err(fail)?;
    Ok(())
}
