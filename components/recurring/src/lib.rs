//! Recurring-task service: on `task_completed` of a recurring task, creates
//! the next instance in the `default` database with its outbox rows (see
//! `todo_domain::recurring` for the rules).
#![cfg(target_arch = "wasm32")]
#![allow(clippy::too_many_arguments)]

use todo_domain::incoming::{task_from_json, IncomingEvent};
use todo_domain::recurring::{self, Outcome};
use todo_domain::spin::SpinDb;
use todo_domain::TaskStore;

spin_sdk::wit_bindgen::generate!({
    world: "todo-chatbot:kafka-trigger/kafka-handler",
    path: "../../kafka/wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct Recurring;

fn failure(e: todo_domain::DomainError) -> Error {
    if e.is_transient() {
        Error::Retryable(e.to_string())
    } else {
        Error::Permanent(e.to_string())
    }
}

impl Guest for Recurring {
    fn handle_message(message: Message) -> Result<(), Error> {
        let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::Permanent)?;
        if event.event_type != "task_completed" {
            return Ok(());
        }
        let data = event
            .field("task_data")
            .ok_or_else(|| Error::Permanent("task_completed without task_data".into()))?;
        let task = task_from_json(data).map_err(Error::Permanent)?;
        if task.recurrence_pattern.is_none() {
            return Ok(());
        }
        let db = SpinDb::open("default").map_err(|e| Error::Retryable(e.to_string()))?;
        let store = TaskStore::open(&db).map_err(failure)?;
        match recurring::on_completed(&store, &task, todo_domain::time::now()).map_err(failure)? {
            Outcome::Created(next) => println!(
                "recurring: task {} -> next occurrence {} ({})",
                task.id, next.id, next.occurrence
            ),
            Outcome::Skipped(reason) => println!("recurring: task {}: {reason}", task.id),
        }
        Ok(())
    }
}

export!(Recurring);
