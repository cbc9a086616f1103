//! The SDK for Kafka handlers on trigger-kafka (Spin components).
//!
//! ```ignore
//! use trigger_kafka_sdk::{kafka_component, Error, Message};
//!
//! #[kafka_component]
//! fn handle(message: Message) -> Result<(), Error> {
//!     let event: MyEvent = message.json()?; // not JSON: permanent, dead-lettered at once
//!     let db = spin_sdk::sqlite::Connection::open_default()?; // busy: retryable
//!     …
//!     Ok(())
//! }
//! ```
//!
//! `Ok` commits the message. [`Error::retryable`] is retried with backoff
//! (`max_retries`, `retry_backoff_ms`), then dead-lettered;
//! [`Error::permanent`] is dead-lettered at once. A panic is a trap:
//! dead-lettered with the kind `trap`. Batches: [`kafka_batch_component`]
//! and [`each`]. Timers: [`cron_component`].

mod batch;
pub mod cron;
mod error;
mod message;

pub use batch::each;
pub use trigger_kafka_macro::{cron_component, kafka_batch_component, kafka_component};

#[doc(hidden)]
pub mod wit {
    #![allow(missing_docs)]
    spin_sdk::wit_bindgen::generate!({
        world: "todo-chatbot:kafka-trigger/sdk-types",
        path: "wit",
        runtime_path: "spin_sdk::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

#[doc(inline)]
pub use types::{BatchItemFailure, Error, Header, Message};
/// The WIT types of trigger-kafka, shared by every handler's bindings.
pub use wit::todo_chatbot::kafka_trigger::types;

#[doc(hidden)]
pub use spin_sdk::wit_bindgen;

/// What the macros call; not a stable interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::batch::{batch_result, IntoBatchResult};
    pub use crate::cron::{cron_result, IntoCronResult};
    pub use crate::error::{message_result, IntoMessageResult};
    pub use spin_sdk::http::run;
}
