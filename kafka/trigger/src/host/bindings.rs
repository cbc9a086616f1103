//! The Spin interfaces a component imports (SQLite 2 and 3, Postgres 4,
//! key-value, variables), generated from the WIT in `kafka/wit`; their resources are
//! this folder's types.

/// Spin's SQLite, key-value and variables interfaces (imports).
pub mod spin {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "todo-chatbot:kafka-trigger/spin-imports",
        imports: {
            "fermyon:spin/sqlite": async,
            "spin:sqlite/sqlite": async | trappable,
            "spin:postgres/postgres": async,
            "fermyon:spin/key-value": async,
            default: trappable,
        },
        with: {
            "fermyon:spin/sqlite.connection": crate::host::sqlite::Connection,
            "spin:sqlite/sqlite.connection": crate::host::sqlite::Connection,
            "spin:postgres/postgres.connection": crate::host::postgres::Connection,
            "fermyon:spin/key-value.store": crate::host::key_value::Store,
        },
    });
}
