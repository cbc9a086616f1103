//! The recurring-task rule: when an occurrence of a series is completed,
//! create the next one.
//!
//! The next due date comes from [`crate::recurrence::rules`], counted from the
//! series anchor (`series_start`, occurrence 1), strictly after the later of
//! the completed occurrence's due date and its completion time — so
//! completing a long-overdue occurrence schedules the first occurrence still
//! ahead, never a backlog. At most one next instance exists per completed
//! occurrence, whatever the redeliveries; a deleted task, a cleared pattern
//! or a reopened task creates nothing; `COUNT` and `UNTIL` end the series.

use chrono::Duration;

use crate::error::{DomainError, Result};
use crate::model::{Status, Task};
use crate::recurrence::rules::{self, End, Next};
use crate::store::sql::{transaction, Value};
use crate::store::{new_id, TaskStore};
use crate::time::Timestamp;

pub const ACTOR: &str = "system:recurring";

/// The task that follows `completed` in its series, or why the series has
/// no next task.
pub fn next_instance(
    completed: &Task,
    id: String,
    now: Timestamp,
) -> Result<std::result::Result<Task, End>> {
    let Some(pattern) = &completed.recurrence_pattern else {
        return Ok(Err(End::NoMoreOccurrences));
    };
    let rule = rules::parse(pattern)?;
    let due = completed
        .due_date
        .ok_or_else(|| DomainError::invalid("due_date", "a recurring task has no due date"))?;
    let anchor = completed.series_start.unwrap_or(due);
    let done_at = completed.completed_at.unwrap_or(completed.updated_at);
    // A zone that no longer parses (renamed in the tz database) counts as UTC.
    let zone = completed.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let next = match rule.next(zone, anchor, due.max(done_at)) {
        Next::At(next) => next,
        Next::Ended(end) => return Ok(Err(end)),
    };
    let remind_at = match (completed.remind_before_minutes, completed.remind_at) {
        (Some(minutes), _) => Some(next.at - Duration::minutes(minutes)),
        // An absolute reminder keeps its distance from the due date.
        (None, Some(at)) => Some(next.at - (due - at)),
        (None, None) => None,
    };
    Ok(Ok(Task {
        id,
        status: Status::Pending,
        due_date: Some(next.at),
        remind_at,
        series_id: Some(
            completed
                .series_id
                .clone()
                .unwrap_or_else(|| completed.id.clone()),
        ),
        series_start: Some(anchor),
        occurrence: i64::from(next.index),
        created_at: now,
        updated_at: now,
        completed_at: None,
        version: 1,
        ..completed.clone()
    }))
}

/// What handling one `task_completed` event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(Box<Task>),
    /// The series has no next occurrence, and why: complete (`COUNT`,
    /// `UNTIL`), or unable to continue — then a `series_ended` change with
    /// the reason goes to the task's audience on `task-updates`.
    Ended(End),
    /// Nothing to do, and why (for logs and tests).
    Skipped(&'static str),
}

/// Why a completed task, as it is now, gets no next instance.
fn not_renewed(current: &Task) -> Option<&'static str> {
    if current.recurrence_pattern.is_none() {
        return Some("pattern cleared");
    }
    if current.status != Status::Completed {
        return Some("task reopened");
    }
    None
}

/// How often the task may change under us before the event is retried.
const ATTEMPTS: usize = 3;

/// What renewing a completed task will do, decided before any write: the
/// task as it was read, and its next occurrence or why there is none.
#[derive(Debug, Clone)]
pub struct Plan {
    current: Task,
    following: std::result::Result<Task, End>,
}

/// Reads the completed task as it is now and computes its next occurrence,
/// outside any transaction (evaluating a rule never holds the write lock
/// every API write waits for). `Err` is an outcome decided without a write.
pub fn plan(
    store: &TaskStore<'_>,
    completed: &Task,
    now: Timestamp,
) -> Result<std::result::Result<Plan, Outcome>> {
    if completed.recurrence_pattern.is_none() {
        return Ok(Err(Outcome::Skipped("not recurring")));
    }
    // The event may be old: decide on the task as it is now.
    let Some(current) = store.get(&completed.user_id, &completed.id)? else {
        return Ok(Err(Outcome::Skipped("task deleted")));
    };
    if let Some(reason) = not_renewed(&current) {
        return Ok(Err(Outcome::Skipped(reason)));
    }
    let following = next_instance(&current, new_id(), now)?;
    Ok(Ok(Plan { current, following }))
}

/// Carries out a plan; run it inside a transaction. `None` when the task
/// changed since it was planned (plan again).
pub fn apply(store: &TaskStore<'_>, plan: &Plan, now: Timestamp) -> Result<Option<Outcome>> {
    let (db, current) = (store.db(), &plan.current);
    if store.get(&current.user_id, &current.id)?.as_ref() != Some(current) {
        return Ok(None);
    }
    let series = current
        .series_id
        .clone()
        .unwrap_or_else(|| current.id.clone());
    let later = db.execute(
        "SELECT 1 AS found FROM tasks WHERE series_id = ? AND occurrence > ? LIMIT 1",
        &[
            Value::from(series.as_str()),
            Value::Integer(current.occurrence),
        ],
    )?;
    if !later.is_empty() {
        return Ok(Some(Outcome::Skipped("next instance exists")));
    }
    Ok(Some(match &plan.following {
        Err(end) if end.is_complete() => Outcome::Ended(*end),
        // Never silent: the series' audience hears why it stops.
        Err(end) => {
            let event = crate::events::series_ended_event(current, end.reason(), now);
            crate::events::outbox::enqueue(db, &event.by(ACTOR))?;
            Outcome::Ended(*end)
        }
        Ok(next) if store.insert_occurrence(next, now, ACTOR)? => {
            Outcome::Created(Box::new(next.clone()))
        }
        Ok(_) => Outcome::Skipped("next instance exists"),
    }))
}

/// Handles a completed task (as carried in the event) against the store, in
/// one transaction with the new instance's outbox rows: [`plan`] before the
/// transaction, [`apply`] in it, and again if the task changed meanwhile.
pub fn on_completed(store: &TaskStore<'_>, completed: &Task, now: Timestamp) -> Result<Outcome> {
    for _ in 0..ATTEMPTS {
        let plan = match plan(store, completed, now)? {
            Ok(plan) => plan,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(outcome) = transaction(store.db(), || apply(store, &plan, now))? {
            return Ok(outcome);
        }
    }
    // Retryable (a store-level condition), so the event comes back later.
    Err(DomainError::Storage(crate::store::sql::DbError::busy(
        "the task kept changing while its next occurrence was computed",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::input::TaskPatch;
    use crate::time;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        time::parse("t", s).unwrap()
    }

    fn recurring(pattern: &str, due: &str) -> Task {
        let patch = TaskPatch::from_json(
            json!({"title": "Standup", "due_date": due, "recurrence_pattern": pattern, "remind_before_minutes": 10, "tags": ["work"], "priority": "high"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        crate::model::change::new_task("alice", "first".into(), &patch, ts("2026-11-01T00:00:00Z"))
            .unwrap()
    }

    fn complete(mut task: Task, at: &str) -> Task {
        task.status = Status::Completed;
        task.completed_at = Some(ts(at));
        task
    }

    #[test]
    fn the_next_instance_copies_the_task_and_moves_the_due_date() {
        let done = complete(
            recurring("daily", "2026-12-01T09:00:00Z"),
            "2026-12-01T08:00:00Z",
        );
        let next = next_instance(&done, "second".into(), ts("2026-12-01T08:00:01Z"))
            .unwrap()
            .unwrap();
        assert_eq!(
            time::format(&next.due_date.unwrap()),
            "2026-12-02T09:00:00Z"
        );
        assert_eq!(
            time::format(&next.remind_at.unwrap()),
            "2026-12-02T08:50:00Z"
        );
        assert_eq!(
            (next.status, next.occurrence, next.series_id.as_deref()),
            (Status::Pending, 2, Some("first"))
        );
        assert_eq!(
            (next.title.as_str(), next.tags.clone(), next.priority),
            ("Standup", vec!["work".to_owned()], done.priority)
        );
        assert_eq!(next.completed_at, None);
    }

    #[test]
    fn a_long_overdue_occurrence_schedules_the_next_one_ahead() {
        let done = complete(
            recurring("daily", "2026-11-01T09:00:00Z"),
            "2026-11-20T12:00:00Z",
        );
        let next = next_instance(&done, "n".into(), ts("2026-11-20T12:00:01Z"))
            .unwrap()
            .unwrap();
        assert_eq!(
            time::format(&next.due_date.unwrap()),
            "2026-11-21T09:00:00Z"
        );
        assert_eq!(next.occurrence, 21, "skipped occurrences count");
    }

    #[test]
    fn count_ends_the_series() {
        let mut task = complete(
            recurring("RRULE:FREQ=DAILY;COUNT=2", "2026-12-01T09:00:00Z"),
            "2026-12-01T09:00:00Z",
        );
        let second = next_instance(&task, "2".into(), ts("2026-12-01T09:00:00Z"))
            .unwrap()
            .unwrap();
        task = complete(second, "2026-12-02T09:00:00Z");
        assert_eq!(
            next_instance(&task, "3".into(), ts("2026-12-02T09:00:00Z")).unwrap(),
            Err(End::Count)
        );
    }
}
