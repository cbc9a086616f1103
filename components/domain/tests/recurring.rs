//! The recurring service's rule against real SQLite and Postgres: one next
//! instance per completed occurrence whatever the redeliveries, series
//! that end, and local times kept across DST.

use serde_json::json;
use todo_domain::events;
use todo_domain::recurrence::series::{self, Outcome};
use todo_domain::store::native::testing::{at, count, outbox_events, patch};
use todo_domain::store::sql::Sql;

#[macro_use]
mod engines;

use engines::{db, Engine};
use todo_domain::time;
use todo_domain::{Status, TaskStore};

/// The task as the last `task_completed` event carries it.
fn completed_task(db: &dyn Sql) -> todo_domain::Task {
    let completed = outbox_events(db, events::TASK_EVENTS)
        .into_iter()
        .rfind(|e| e.envelope.event_type == "task_completed")
        .expect("a task_completed event");
    todo_domain::events::incoming::task_from_json(&completed.payload["task_data"]).unwrap()
}

fn completing_a_daily_task_twice_delivered_creates_one_next_instance(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    let t = store.create("alice", &patch(json!({"title": "Standup", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "daily"})), now).unwrap();
    store.complete("alice", &t.id, now).unwrap();
    let task = completed_task(&db);
    let Outcome::Created(next) = series::on_completed(&store, &task, now).unwrap() else {
        panic!("created")
    };
    assert_eq!(
        time::format(&next.due_date.unwrap()),
        "2026-12-02T09:00:00Z"
    );
    assert_eq!(
        series::on_completed(&store, &task, now).unwrap(),
        Outcome::Skipped("next instance exists")
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tasks"), 2);
    let created: Vec<_> = outbox_events(&db, events::TASK_EVENTS)
        .into_iter()
        .filter(|e| e.envelope.event_type == "task_created")
        .collect();
    assert_eq!(created.len(), 2, "the next instance was announced once");
}

fn a_series_with_count_three_stops_and_deleting_stops_it_too(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let mut now = at("2026-12-01T08:00:00Z");
    let mut current = store.create("alice", &patch(json!({"title": "Pill", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "RRULE:FREQ=DAILY;COUNT=3"})), now).unwrap();
    let mut made = 1;
    loop {
        let done = store.complete("alice", &current.id, now).unwrap();
        match series::on_completed(&store, &done, now).unwrap() {
            Outcome::Created(next) => {
                made += 1;
                current = *next;
                now += chrono::Duration::days(1);
            }
            Outcome::Ended(end) => {
                assert_eq!(end, todo_domain::recurrence::rules::End::Count);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(made, 3);
    let t = store.create("alice", &patch(json!({"title": "Gym", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "weekly"})), now).unwrap();
    let done = store.complete("alice", &t.id, now).unwrap();
    store.delete("alice", &t.id, now).unwrap();
    assert_eq!(
        series::on_completed(&store, &done, now).unwrap(),
        Outcome::Skipped("task deleted")
    );
    assert_eq!(done.status, Status::Completed);
}

/// A user in Berlin: new tasks take the user's zone, the event carries it,
/// and the recurring service keeps 09:00 local through the change to
/// summer time (08:00Z before 29 March 2026, 07:00Z after).
fn a_users_daily_0900_task_renews_at_0900_local_across_dst(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let now = at("2026-03-28T07:00:00Z");
    store
        .set_user_time_zone("alice", "Europe/Berlin", now)
        .unwrap();
    let t = store
        .create(
            "alice",
            &patch(json!({"title": "Standup", "due_date": "2026-03-28T08:00:00Z", "recurrence_pattern": "daily"})),
            now,
        )
        .unwrap();
    assert_eq!(t.time_zone, "Europe/Berlin");
    assert!(store.set_user_time_zone("alice", "Mars/Base", now).is_err());
    store.complete("alice", &t.id, now).unwrap();
    let task = completed_task(&db);
    assert_eq!(task.time_zone, "Europe/Berlin");
    let Outcome::Created(next) = series::on_completed(&store, &task, now).unwrap() else {
        panic!("created")
    };
    assert_eq!(
        time::format(&next.due_date.unwrap()),
        "2026-03-29T07:00:00Z"
    );
    assert_eq!(next.time_zone, "Europe/Berlin");
    // A task given its own zone keeps it.
    let ny = store
        .create(
            "alice",
            &patch(json!({"title": "Call", "due_date": "2026-03-07T14:00:00Z", "time_zone": "America/New_York"})),
            now,
        )
        .unwrap();
    assert_eq!(ny.time_zone, "America/New_York");
}

/// Issue 21 item 7: a daily task due on the last day of 9999 got a next
/// instance in the year 10000, whose events every consumer dead-lettered.
/// The series ends there instead, with the reason.
fn a_series_ends_at_the_year_9999_with_the_reason(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    let task = store.create("alice", &patch(json!({"title": "Last", "due_date": "9999-12-31T09:00:00Z", "recurrence_pattern": "daily"})), now).unwrap();
    let done = store.complete("alice", &task.id, now).unwrap();
    assert_eq!(
        series::on_completed(&store, &done, now).unwrap(),
        Outcome::Ended(todo_domain::recurrence::rules::End::PastYear9999)
    );
    let events = todo_domain::store::native::testing::outbox_events(&db, "task-events");
    assert!(
        events
            .iter()
            .all(|e| !e.payload.to_string().contains("10000-")),
        "no event carries a year past 9999"
    );
    // Not silently: the task's audience is told why, on task-updates.
    let updates = todo_domain::store::native::testing::outbox_events(&db, "task-updates");
    let ended = updates.last().unwrap();
    assert_eq!(ended.payload["update_data"]["change"], "series_ended");
    assert_eq!(
        ended.payload["update_data"]["reason"],
        todo_domain::recurrence::rules::End::PastYear9999.reason()
    );
}

on_both_engines!(
    completing_a_daily_task_twice_delivered_creates_one_next_instance,
    a_series_with_count_three_stops_and_deleting_stops_it_too,
    a_users_daily_0900_task_renews_at_0900_local_across_dst,
    a_series_ends_at_the_year_9999_with_the_reason,
);
