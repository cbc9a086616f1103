//! Host bindings generated from the WIT in `kafka/wit`.

/// Spin's SQLite, key-value and variables interfaces (imports).
pub mod spin {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "todo-chatbot:kafka-trigger/spin-imports",
        imports: {
            "fermyon:spin/sqlite": async,
            "fermyon:spin/key-value": async,
            default: trappable,
        },
        with: {
            "fermyon:spin/sqlite.connection": crate::host::sqlite::Connection,
            "fermyon:spin/key-value.store": crate::host::key_value::Store,
        },
    });
}

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
