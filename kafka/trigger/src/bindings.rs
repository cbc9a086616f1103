//! The trigger worlds a component exports, generated from the WIT in
//! `kafka/wit`. The Spin interfaces it imports are `host::bindings`.

/// The Kafka handler world (export `handle-message`).
pub mod kafka {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "todo-chatbot:kafka-trigger/kafka-handler",
        exports: { default: async },
    });
}

/// The Kafka batch handler world (export `handle-batch`), on the same types.
pub mod kafka_batch {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "todo-chatbot:kafka-trigger/kafka-batch-handler",
        exports: { default: async },
        with: {
            "todo-chatbot:kafka-trigger/types": crate::bindings::kafka::todo_chatbot::kafka_trigger::types,
        },
    });
}

/// Spin's cron trigger world (export `handle-cron-event`).
pub mod cron {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}
