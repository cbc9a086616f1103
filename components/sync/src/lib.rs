//! Sync service: turns `task-updates` events into the per-user change feed
//! (the `sync` database) that the API serves as long-poll and SSE.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::too_many_arguments)]

use todo_domain::incoming::IncomingEvent;
use todo_domain::spin::SpinDb;

spin_sdk::wit_bindgen::generate!({
    world: "todo-chatbot:kafka-trigger/kafka-handler",
    path: "../../kafka/wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct Sync;

impl Guest for Sync {
    fn handle_message(message: Message) -> Result<(), Error> {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::Permanent)?;
        let db = SpinDb::open("sync").map_err(|e| Error::Retryable(e.to_string()))?;
        todo_sync_store::open(&db).map_err(|e| Error::Retryable(e.to_string()))?;
        todo_sync_store::append(&db, &event, todo_domain::time::now())
            .map_err(|e| Error::Retryable(e.to_string()))?;
        Ok(())
    }
}

export!(Sync);
