//! Audit service: appends every `task-events` and `reminders` event to the
//! `audit` database, once per `event_id`. The actor comes from the
//! CloudEvents `ce_actor` header. A batch of messages is one transaction.
#![cfg(target_arch = "wasm32")]

use todo_domain::events::incoming::IncomingEvent;
use todo_domain::events::kafka_handler::apply_batch;
use todo_domain::store::spin;
use todo_domain::store::sql::Sql;
use trigger_kafka_sdk::{kafka_batch_component, BatchItemFailure, Error, Message};

#[kafka_batch_component]
fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
    let open = || -> Result<Box<dyn Sql>, Error> {
        let db = spin::open("audit")?;
        todo_audit_store::open(&db)?;
        Ok(db)
    };
    let db = open().map_err(|e| BatchItemFailure::new(0, e))?;
    let now = todo_domain::time::now();
    apply_batch(&db, messages, |db, message| {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
        let actor = message.header_str("ce_actor");
        todo_audit_store::record(db, &message.topic, &event, actor, now)?;
        Ok(())
    })
}
