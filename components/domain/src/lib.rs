//! The Todo Chatbot's domain: tasks, their validation and recurrence rules,
//! the events they produce, and a store that writes both in one transaction.
//! Every component uses it; it runs natively (rusqlite) and in Wasm (Spin).

pub mod change;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod incoming;
pub mod input;
pub mod migrations;
pub mod model;
pub mod outbox;
pub mod query;
pub mod quick_add;
pub mod recurrence;
pub mod recurring;
pub mod sql;
pub mod store;
pub mod time;
pub mod trace;

#[cfg(feature = "kafka-handler")]
pub mod kafka_handler;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "spin")]
pub mod spin;

pub use error::{DomainError, Result};
pub use input::TaskPatch;
pub use model::{NotificationType, Priority, Status, Task};
pub use query::{ListQuery, Page};
pub use store::{Limits, TaskStore};
