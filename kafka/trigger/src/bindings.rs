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

/// Spin's cron trigger world (export `handle-cron-event`).
pub mod cron {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}
