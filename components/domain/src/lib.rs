//! The Todo Chatbot's domain: tasks, their validation and recurrence rules,
//! the events they produce, and a store that writes both in one transaction.
//! Every component uses it; it runs natively (rusqlite) and in Wasm (Spin).
//!
//! # Layout
//!
//! - `model/`: the task and its validation (`input`: what a request may
//!   set; `change`: what a change does to a task).
//! - `store/`: the task store over SQL (`sql`: the database seam and
//!   transactions, with `native` rusqlite and `spin` implementations;
//!   `migrations`, `query` for lists, `idempotency` keys).
//! - `events/`: the events of the seed's topics, the `outbox` they are
//!   written to, `incoming` events as consumers read them, the `trace`
//!   context they carry, and `kafka_handler` glue for consumers.
//! - `recurrence/`: `rules` (the next occurrence) and `series` (what
//!   completing an occurrence writes).
//! - `quick_add`: one line of text to a task; `time`: timestamps and zones.

pub mod error;
pub mod events;
pub mod model;
pub mod quick_add;
pub mod recurrence;
pub mod store;
pub mod time;

pub use error::{DomainError, Result};
pub use model::input::TaskPatch;
pub use model::{NotificationType, Priority, Status, Task};
pub use store::query::{ListQuery, Page};
pub use store::{Limits, TaskStore};
