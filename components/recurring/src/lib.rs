//! Recurring-task service: on `task_completed` of a recurring task, creates
//! the next instance in the `default` database with its outbox rows (see
//! `todo_domain::recurrence::series` for the rules). A batch of events is planned
//! first (reads, and the rules evaluated, outside any transaction), then
//! applied in one transaction, each event in a savepoint.
#![cfg(target_arch = "wasm32")]

use todo_domain::events::incoming::{task_from_json, IncomingEvent};
use todo_domain::events::kafka_handler::traceparent;
use todo_domain::model::Task;
use todo_domain::recurrence::series::{self, Outcome, Plan};
use todo_domain::store::spin;
use todo_domain::time::Timestamp;
use todo_domain::TaskStore;
use trigger_kafka_sdk::{kafka_batch_component, BatchItemFailure, Error, Message};

/// What one message asks of the service.
enum Work {
    /// Not a completed recurring task: nothing to do.
    Nothing,
    /// Decided without a write.
    Decided(Task, Outcome),
    Planned(Task, Box<Plan>),
}

/// Reads a message and, for a completed recurring task, plans its renewal.
fn work(store: &TaskStore<'_>, message: &Message, now: Timestamp) -> Result<Work, Error> {
    let event = IncomingEvent::decode(message.value.as_deref()).map_err(Error::permanent)?;
    if event.envelope.event_type != "task_completed" {
        return Ok(Work::Nothing);
    }
    let data = event
        .field("task_data")
        .ok_or_else(|| Error::permanent("task_completed without task_data"))?;
    let task = task_from_json(data).map_err(Error::permanent)?;
    if task.recurrence_pattern.is_none() {
        return Ok(Work::Nothing);
    }
    Ok(match series::plan(store, &task, now)? {
        Ok(plan) => Work::Planned(task, Box::new(plan)),
        Err(outcome) => Work::Decided(task, outcome),
    })
}

fn report(task: &Task, outcome: Outcome) {
    match outcome {
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
        // (the component's error log) with the reason, and a series_ended
        // change goes to the task's audience.
        Outcome::Ended(end) => eprintln!(
            "recurring: task {}: WARNING: the series cannot continue: {}",
            task.id,
            end.reason()
        ),
        Outcome::Skipped(reason) => println!("recurring: task {}: {reason}", task.id),
    }
}

#[kafka_batch_component]
fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
    let db = spin::open("default").map_err(|e| BatchItemFailure::new(0, e))?;
    let store = TaskStore::open(&db).map_err(|e| BatchItemFailure::new(0, e))?;
    let now = todo_domain::time::now();
    // Planned before the transaction; a message that cannot be read fails
    // at its own place when the batch gets there.
    let planned: Vec<(Option<String>, Result<Work, Error>)> = messages
        .iter()
        .map(|m| (traceparent(m), work(&store, m, now)))
        .collect();
    // Most events are not a recurring task's completion: with nothing to
    // write, no transaction (nor its write lock) is taken.
    if planned
        .iter()
        .all(|(_, work)| matches!(work, Ok(Work::Nothing | Work::Decided(..))))
    {
        for (_, work) in planned {
            if let Ok(Work::Decided(task, outcome)) = work {
                report(&task, outcome);
            }
        }
        return Ok(());
    }
    let mut outcomes = Vec::new();
    let applied = todo_domain::store::sql::batch(&db, planned, |db, (trace, work)| {
        todo_domain::events::trace::with(trace.as_deref(), || -> Result<(), Error> {
            match work? {
                Work::Nothing => {}
                Work::Decided(task, outcome) => outcomes.push((task, outcome)),
                Work::Planned(task, plan) => {
                    let store = TaskStore::migrated(db);
                    let outcome = match series::apply(&store, &plan, now)? {
                        Some(outcome) => outcome,
                        // Changed since it was planned: decide again, here.
                        None => series::on_completed(&store, &task, now)?,
                    };
                    outcomes.push((task, outcome));
                }
            }
            Ok(())
        })
    });
    for (task, outcome) in outcomes {
        report(&task, outcome);
    }
    applied.map_err(|(index, error)| BatchItemFailure::new(index, error))
}
