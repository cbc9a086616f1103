//! Sync service: turns `task-updates` events into the per-user change feed
//! (the `sync` database) that the API serves as long-poll and SSE. A batch
//! of messages is one transaction.
#![cfg(target_arch = "wasm32")]

use todo_domain::events::incoming::IncomingEvent;
use todo_domain::events::kafka_handler::apply_batch;
use todo_domain::store::spin;
use todo_domain::store::sql::Sql;
use trigger_kafka_sdk::{kafka_batch_component, BatchItemFailure, Error, Message};

#[kafka_batch_component]
fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
    let open = || -> Result<Box<dyn Sql>, Error> {
        let db = spin::open("sync")?;
        todo_sync_store::open(&db)?;
        Ok(db)
    };
    let db = open().map_err(|e| BatchItemFailure::new(0, e))?;
    let now = todo_domain::time::now();
    let mut pruned = false;
    apply_batch(&db, messages, |db, message| {
        if !pruned {
            todo_sync_store::prune(db, now)?;
            pruned = true;
        }
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
        todo_sync_store::append(db, &event)?;
        Ok(())
    })
}
