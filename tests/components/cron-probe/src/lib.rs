//! A timer handler for the trigger's tests: records each tick (the
//! schedule's timestamp and when it ran) in the `ticks` table of `default`.
#![cfg(target_arch = "wasm32")]

use spin_sdk::sqlite::{Connection, Value};

spin_sdk::wit_bindgen::generate!({
    world: "fermyon:spin-cron/spin-cron",
    path: "../../../kafka/wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct Probe;

impl Guest for Probe {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let fail = |e: spin_sdk::sqlite::Error| Error::Other(format!("{e:?}"));
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
}

export!(Probe);
