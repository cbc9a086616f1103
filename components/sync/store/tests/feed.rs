//! The change feed against real SQLite and a real Postgres: each change reaches everyone who
//! sees the task, once.

#[path = "../../../domain/tests/engines/mod.rs"]
#[macro_use]
mod engines;
use engines::{db, Engine};

use serde_json::json;
use todo_domain::events;
use todo_domain::store::native::testing::{at, outbox_events, patch};
use todo_domain::TaskStore;
use todo_sync_store as feed;

fn the_feed_reaches_everyone_who_sees_the_task_once(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let fdb = tasks.sibling("sync");
    feed::open(&fdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    let t = store
        .create("alice", &patch(json!({"title": "Trip"})), now)
        .unwrap();
    store.share("alice", &t.id, "bob", now).unwrap();
    store
        .update("bob", &t.id, &patch(json!({"title": "Trip to Oslo"})), now)
        .unwrap();
    let events = outbox_events(&tasks, events::TASK_UPDATES);
    for e in events.iter().chain(events.iter()) {
        feed::append(&fdb, e).unwrap();
    }
    let alice = feed::since(&fdb, "alice", 0, 100).unwrap();
    let bob = feed::since(&fdb, "bob", 0, 100).unwrap();
    assert_eq!(alice.len(), 3);
    assert_eq!(
        bob.iter()
            .map(|c| c.event_type.as_str())
            .collect::<Vec<_>>(),
        ["task_shared", "task_updated"]
    );
    assert_eq!(
        feed::since(&fdb, "alice", alice[1].cursor, 100)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(feed::head(&fdb, "bob").unwrap(), bob[1].cursor);
    assert_eq!(bob[1].update_data["task"]["title"], "Trip to Oslo");
}

/// Changes older than the retention go when the feed is pruned, newer
/// ones stay.
fn pruning_drops_only_changes_past_the_retention(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let fdb = tasks.sibling("sync");
    feed::open(&fdb).unwrap();
    let old = at("2026-11-01T08:00:00Z");
    let new = at("2026-11-07T08:00:00Z");
    store
        .create("alice", &patch(json!({"title": "Old"})), old)
        .unwrap();
    store
        .create("alice", &patch(json!({"title": "New"})), new)
        .unwrap();
    for e in outbox_events(&tasks, events::TASK_UPDATES) {
        feed::append(&fdb, &e).unwrap();
    }
    assert_eq!(feed::since(&fdb, "alice", 0, 100).unwrap().len(), 2);
    // A week and a minute after the old change, six days after the new.
    let now = at("2026-11-08T08:01:00Z");
    assert_eq!(feed::prune(&fdb, now).unwrap(), 1);
    let left = feed::since(&fdb, "alice", 0, 100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].update_data["task"]["title"], "New");
    assert_eq!(feed::prune(&fdb, now).unwrap(), 0);
}

on_both_engines!(
    the_feed_reaches_everyone_who_sees_the_task_once,
    pruning_drops_only_changes_past_the_retention,
);
