//! The smallest batch handler: accepts every batch and touches nothing,
//! the `handle-batch` twin of `kafka-noop`, so a benchmark measures the
//! trigger, one instantiation per batch and the lowering of the batch, not
//! the imports of the batch probe.
#![cfg(target_arch = "wasm32")]

use trigger_kafka_sdk::{kafka_batch_component, Message};

#[kafka_batch_component]
fn handle(_messages: Vec<Message>) {}
