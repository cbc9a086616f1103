//! Audit service: appends every `task-events` and `reminders` event to the
//! `audit` database, once per `event_id`. The actor comes from the
//! CloudEvents `ce_actor` header.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::too_many_arguments)]

use todo_domain::incoming::IncomingEvent;
use todo_domain::spin::SpinDb;

spin_sdk::wit_bindgen::generate!({
    world: "todo-chatbot:kafka-trigger/kafka-handler",
    path: "../../kafka/wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct Audit;

impl Guest for Audit {
    fn handle_message(message: Message) -> Result<(), Error> {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::Permanent)?;
        let actor = message
            .headers
            .iter()
            .find(|h| h.key == "ce_actor")
            .map(|h| String::from_utf8_lossy(&h.value).into_owned());
        let db = SpinDb::open("audit").map_err(|e| Error::Retryable(e.to_string()))?;
        todo_audit_store::open(&db).map_err(|e| Error::Retryable(e.to_string()))?;
        todo_audit_store::record(
            &db,
            &message.topic,
            &event,
            actor.as_deref(),
            todo_domain::time::now(),
        )
        .map_err(|e| Error::Retryable(e.to_string()))?;
        Ok(())
    }
}

export!(Audit);
