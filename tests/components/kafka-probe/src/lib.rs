//! A Kafka handler for the trigger's tests. Each message's JSON value says
//! what to do (`{"id": "...", "action": "..."}`):
//!
//! - `ok`: record the delivery (and when) in the `handled` table of `default`;
//! - `retry:N`: fail with a retryable error on attempts 1..=N, then record;
//! - `permanent`: fail permanently; `trap`: panic;
//! - `broken`: fail permanently unless the environment has `PROBE_FIXED`
//!   (a bug fixed by a redeploy), then record;
//! - `sleep:MS`: sleep, then record;
//! - `open:LABEL`, `kv:LABEL`, `http:URL`: try a database, store or host and
//!   record what happened in `note`;
//! - `env:NAME`, `var:NAME`: record an environment variable or a Spin
//!   variable (or the error) in `note`;
//! - `print:TEXT`: write TEXT to stdout and stderr, then record.
//!
//! A value that is not such JSON is a permanent error. With the environment
//! variable `PROBE_MODE=noop` every message succeeds at once (benchmarks).
#![cfg(target_arch = "wasm32")]

mod actions;

use trigger_kafka_sdk::{kafka_component, Error, Message};

#[kafka_component]
fn handle(message: Message) -> Result<(), Error> {
    if actions::noop() {
        return Ok(());
    }
    actions::act(message)
}
