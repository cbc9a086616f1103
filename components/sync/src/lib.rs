//! Sync service: turns `task-updates` events into the per-user change feed
//! (the `sync` database) that the API serves as long-poll and SSE.
#![cfg(target_arch = "wasm32")]

use todo_domain::incoming::IncomingEvent;
use todo_domain::spin::SpinDb;
use trigger_kafka_sdk::{kafka_component, Error, Message};

#[kafka_component]
fn handle(message: Message) -> Result<(), Error> {
    let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
    let db = SpinDb::open("sync")?;
    todo_sync_store::open(&db)?;
    todo_sync_store::append(&db, &event, todo_domain::time::now())?;
    Ok(())
}
