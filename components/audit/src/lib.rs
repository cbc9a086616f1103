//! Audit service: appends every `task-events` and `reminders` event to the
//! `audit` database, once per `event_id`. The actor comes from the
//! CloudEvents `ce_actor` header.
#![cfg(target_arch = "wasm32")]

use todo_domain::incoming::IncomingEvent;
use todo_domain::spin::SpinDb;
use trigger_kafka_sdk::{kafka_component, Error, Message};

#[kafka_component]
fn handle(message: Message) -> Result<(), Error> {
    let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
    let actor = message.header_str("ce_actor");
    let db = SpinDb::open("audit")?;
    todo_audit_store::open(&db)?;
    todo_audit_store::record(&db, &message.topic, &event, actor, todo_domain::time::now())?;
    Ok(())
}
