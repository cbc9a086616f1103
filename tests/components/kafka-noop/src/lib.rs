//! The smallest Kafka handler: accepts every message and touches nothing,
//! so a benchmark measures the trigger and one instantiation, not the
//! handler's imports. (The probes, in `PROBE_MODE=noop`, also do nothing,
//! but import SQLite, key-value, HTTP and variables, which every
//! instantiation links.)
#![cfg(target_arch = "wasm32")]

use trigger_kafka_sdk::{kafka_component, Message};

#[kafka_component]
fn handle(_message: Message) {}
