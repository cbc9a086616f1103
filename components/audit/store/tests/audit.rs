//! The audit store against real SQLite and a real Postgres: one row per event, in order.

#[path = "../../../domain/tests/engines/mod.rs"]
#[macro_use]
mod engines;
use engines::{db, Engine};

use serde_json::json;
use todo_audit_store as audit;
use todo_domain::events;
use todo_domain::store::native::testing::{at, outbox_events, patch};
use todo_domain::TaskStore;

fn the_audit_trail_has_one_row_per_event_in_order(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let adb = tasks.sibling("audit");
    audit::open(&adb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    let t = store
        .create("alice", &patch(json!({"title": "Report"})), now)
        .unwrap();
    store
        .update(
            "alice",
            &t.id,
            &patch(json!({"priority": "high"})),
            now + chrono::Duration::seconds(1),
        )
        .unwrap();
    store
        .complete("alice", &t.id, now + chrono::Duration::seconds(2))
        .unwrap();
    let events = outbox_events(&tasks, events::TASK_EVENTS);
    for e in events.iter().chain(events.iter()) {
        audit::record(&adb, events::TASK_EVENTS, e, Some("alice"), now).unwrap();
    }
    let history = audit::history(&adb, &t.id, None, 100).unwrap();
    let actions: Vec<_> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["task_created", "task_updated", "task_completed"]);
    // Paged: two, then the rest after the second's position.
    let first = audit::history(&adb, &t.id, None, 2).unwrap();
    assert_eq!(first.len(), 2);
    let after = (
        todo_domain::time::to_millis(&first[1].occurred_at),
        first[1].seq,
    );
    let rest = audit::history(&adb, &t.id, Some(after), 2).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].action, "task_completed");
    assert_eq!(history[1].snapshot["priority"], "high");
    assert_eq!(audit::trail(&adb, "alice", None, None, 2).unwrap().len(), 2);
    assert!(audit::trail(&adb, "bob", None, None, 10)
        .unwrap()
        .is_empty());
}

on_both_engines!(the_audit_trail_has_one_row_per_event_in_order,);
