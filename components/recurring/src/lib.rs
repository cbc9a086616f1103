//! Recurring-task service: on `task_completed` of a recurring task, creates
//! the next instance in the `default` database with its outbox rows (see
//! `todo_domain::recurring` for the rules).
#![cfg(target_arch = "wasm32")]

use todo_domain::incoming::{task_from_json, IncomingEvent};
use todo_domain::recurring::{self, Outcome};
use todo_domain::spin::SpinDb;
use todo_domain::TaskStore;
use trigger_kafka_sdk::{kafka_component, Error, Message};

#[kafka_component]
fn handle(message: Message) -> Result<(), Error> {
    let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
    if event.event_type != "task_completed" {
        return Ok(());
    }
    let data = event
        .field("task_data")
        .ok_or_else(|| Error::permanent("task_completed without task_data"))?;
    let task = task_from_json(data).map_err(Error::permanent)?;
    if task.recurrence_pattern.is_none() {
        return Ok(());
    }
    let db = SpinDb::open("default")?;
    let store = TaskStore::open(&db)?;
    match recurring::on_completed(&store, &task, todo_domain::time::now())? {
        Outcome::Created(next) => println!(
            "recurring: task {} -> next occurrence {} ({})",
            task.id, next.id, next.occurrence
        ),
        Outcome::Ended(end) if end.is_complete() => {
            println!(
                "recurring: task {}: series complete: {}",
                task.id,
                end.reason()
            )
        }
        // Never silent: a series that cannot go on is reported on stderr
        // (the component's error log) with the reason.
        Outcome::Ended(end) => eprintln!(
            "recurring: task {}: WARNING: the series cannot continue: {}",
            task.id,
            end.reason()
        ),
        Outcome::Skipped(reason) => println!("recurring: task {}: {reason}", task.id),
    }
    Ok(())
}
