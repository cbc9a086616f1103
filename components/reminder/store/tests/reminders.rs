//! The reminder store against real SQLite and a real Postgres: schedules kept from events in
//! commit order, due reminders fired once, missed ones recorded, webhook
//! deliveries claimed before they are sent.

#[path = "../../../domain/tests/engines/mod.rs"]
#[macro_use]
mod engines;
use engines::{db, Engine};

use serde_json::json;
use todo_domain::events;
use todo_domain::events::incoming::IncomingEvent;
use todo_domain::store::native::testing::{at, outbox_events, patch};
use todo_domain::store::sql::Sql;
use todo_domain::TaskStore;
use todo_reminder_store as reminders;

fn a_reminder_fires_once_and_never_after_cancellation_or_reschedule(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    let t = store.create("alice", &patch(json!({"title": "Call", "due_date": "2026-12-01T09:00:00Z", "remind_before_minutes": 30})), now).unwrap();
    let other = store
        .create(
            "alice",
            &patch(json!({"title": "Gone", "remind_at": "2026-12-01T08:10:00Z"})),
            now,
        )
        .unwrap();
    store.delete("alice", &other.id, now).unwrap();
    let moved_from = store
        .create(
            "alice",
            &patch(json!({"title": "Moved", "remind_at": "2026-12-01T08:20:00Z"})),
            now,
        )
        .unwrap();
    store
        .update(
            "alice",
            &moved_from.id,
            &patch(json!({"remind_at": "2026-12-01T10:00:00Z"})),
            now,
        )
        .unwrap();
    let events = outbox_events(&tasks, events::REMINDERS);
    for e in &events {
        reminders::apply_event(&rdb, e, None, now).unwrap();
    }
    // Redelivering everything, in reverse order, changes nothing.
    for e in events.iter().rev() {
        assert!(
            !reminders::apply_event(&rdb, e, None, now).unwrap(),
            "{}",
            e.envelope.event_type
        );
    }
    assert_eq!(
        reminders::fire_due(&rdb, at("2026-12-01T08:29:59Z"), 60_000).unwrap(),
        reminders::Fired::default(),
        "deleted and moved reminders never fire"
    );
    let fired = reminders::fire_due(&rdb, at("2026-12-01T08:30:00.400Z"), 60_000).unwrap();
    assert_eq!(fired.fired, 1);
    assert_eq!(
        reminders::fire_due(&rdb, at("2026-12-01T08:30:01Z"), 60_000)
            .unwrap()
            .fired,
        0,
        "exactly once"
    );
    let notes = reminders::list(&rdb, "alice", false, 10, None).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].task_id.as_str(), notes[0].status.as_str()),
        (t.id.as_str(), "unread")
    );
    let triggered = outbox_events(&rdb, events::REMINDERS);
    assert_eq!(triggered.len(), 1);
    assert_eq!(triggered[0].envelope.event_type, "reminder_triggered");
    assert_eq!(triggered[0].payload["remind_at"], "2026-12-01T08:30:00Z");
    let read = reminders::mark_read(&rdb, "alice", &notes[0].id, now).unwrap();
    assert_eq!(read.status, "read");
    assert!(reminders::mark_read(&rdb, "bob", &notes[0].id, now).is_err());
    assert!(reminders::list(&rdb, "alice", true, 10, None)
        .unwrap()
        .is_empty());
}

fn reminders_missed_beyond_the_grace_window_are_recorded_not_sent(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    store
        .create(
            "alice",
            &patch(json!({"title": "Old", "remind_at": "2026-12-01T08:05:00Z"})),
            now,
        )
        .unwrap();
    store
        .create(
            "alice",
            &patch(json!({"title": "Recent", "remind_at": "2026-12-01T08:59:30Z"})),
            now,
        )
        .unwrap();
    for e in outbox_events(&tasks, events::REMINDERS) {
        reminders::apply_event(&rdb, &e, None, now).unwrap();
    }
    // The service was down until 09:00; the grace window is five minutes.
    let result = reminders::fire_due(&rdb, at("2026-12-01T09:00:00Z"), 5 * 60_000).unwrap();
    assert_eq!(
        result,
        reminders::Fired {
            fired: 1,
            missed: 1
        }
    );
    let statuses: Vec<_> = reminders::list(&rdb, "alice", false, 10, None)
        .unwrap()
        .into_iter()
        .map(|n| (n.title, n.status))
        .collect();
    assert!(statuses.contains(&("Old".to_owned(), "missed".to_owned())));
    assert!(statuses.contains(&("Recent".to_owned(), "unread".to_owned())));
}

fn webhook_deliveries_retry_with_backoff_then_fail_visibly(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    store.create("alice", &patch(json!({"title": "Mail me", "remind_at": "2026-12-01T08:01:00Z", "notification_type": "email"})), now).unwrap();
    for e in outbox_events(&tasks, events::REMINDERS) {
        reminders::apply_event(&rdb, &e, None, now).unwrap();
    }
    let mut clock = at("2026-12-01T08:01:00Z");
    reminders::fire_due(&rdb, clock, 60_000).unwrap();
    for attempt in 1..=reminders::MAX_DELIVERY_ATTEMPTS {
        let pending = reminders::pending_deliveries(&rdb, clock, 10).unwrap();
        assert_eq!(pending.len(), 1, "attempt {attempt}");
        assert!(reminders::claim_delivery(&rdb, &pending[0].id, clock).unwrap());
        assert!(
            !reminders::claim_delivery(&rdb, &pending[0].id, clock).unwrap(),
            "claimed once"
        );
        reminders::record_delivery(&rdb, &pending[0].id, Err("503 from webhook".into()), clock)
            .unwrap();
        assert!(
            reminders::pending_deliveries(&rdb, clock, 10)
                .unwrap()
                .is_empty(),
            "backs off"
        );
        clock += chrono::Duration::seconds(1 << attempt);
    }
    let n = &reminders::list(&rdb, "alice", false, 10, None).unwrap()[0];
    assert_eq!(
        (n.status.as_str(), n.attempts, n.last_error.as_deref()),
        ("failed", 5, Some("503 from webhook"))
    );
}

/// The attempt is recorded before the webhook is called: a run that dies
/// mid-call (or whose reply comes too late) does not send again at the
/// next tick, and an attempt that never reports back still counts.
fn a_delivery_attempt_is_recorded_before_it_is_sent(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    store.create("bob", &patch(json!({"title": "Push me", "remind_at": "2026-12-01T08:01:00Z", "notification_type": "push"})), now).unwrap();
    for e in outbox_events(&tasks, events::REMINDERS) {
        reminders::apply_event(&rdb, &e, None, now).unwrap();
    }
    let mut clock = at("2026-12-01T08:01:00Z");
    reminders::fire_due(&rdb, clock, 60_000).unwrap();
    for _ in 0..reminders::MAX_DELIVERY_ATTEMPTS {
        let id = reminders::pending_deliveries(&rdb, clock, 10).unwrap()[0]
            .id
            .clone();
        assert!(reminders::claim_delivery(&rdb, &id, clock).unwrap());
        // The run dies here, before recording anything. The next tick:
        clock += chrono::Duration::milliseconds(900);
        assert!(
            reminders::pending_deliveries(&rdb, clock, 10)
                .unwrap()
                .is_empty(),
            "not sent again at the next tick"
        );
        clock += chrono::Duration::seconds(1 << 11);
    }
    assert_eq!(reminders::fail_abandoned(&rdb, clock).unwrap(), 1);
    let n = &reminders::list(&rdb, "bob", false, 10, None).unwrap()[0];
    assert_eq!((n.status.as_str(), n.attempts), ("failed", 5));
}

/// Two edits of one task race: the one stamped later commits first. The
/// schedule must follow commit order (the outbox sequence), not the
/// timestamps: the reminder the task ends up with is the one that fires.
fn reminder_events_apply_in_commit_order_not_timestamp_order(engine: Engine) {
    let tasks = db(engine);
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let store = TaskStore::open(&tasks).unwrap();
    let task = store
        .create(
            "alice",
            &patch(json!({"title": "Race", "remind_at": "2026-12-01T08:00:00Z"})),
            at("2026-11-29T10:00:00Z"),
        )
        .unwrap();
    // Stamped 10:00:09, commits first: clears the reminder.
    store
        .update(
            "alice",
            &task.id,
            &patch(json!({"remind_at": null})),
            at("2026-11-29T10:00:09Z"),
        )
        .unwrap();
    // Stamped 10:00:05 (it waited for the lock), commits second: sets it.
    let last = store
        .update(
            "alice",
            &task.id,
            &patch(json!({"remind_at": "2026-12-01T09:00:00Z"})),
            at("2026-11-29T10:00:05Z"),
        )
        .unwrap();
    assert!(last.remind_at.is_some(), "the task ends with a reminder");
    let rows = tasks
        .execute(
            "SELECT seq, payload FROM outbox WHERE topic = 'reminders' ORDER BY seq",
            &[],
        )
        .unwrap();
    let events: Vec<(i64, IncomingEvent)> = rows
        .iter()
        .map(|r| {
            (
                r.i64("seq").unwrap(),
                IncomingEvent::decode(Some(r.str("payload").unwrap().as_bytes())).unwrap(),
            )
        })
        .collect();
    for (seq, event) in &events {
        reminders::apply_event(&rdb, event, Some(*seq), at("2026-11-29T10:01:00Z")).unwrap();
    }
    // Redelivered in reverse: nothing changes.
    for (seq, event) in events.iter().rev() {
        reminders::apply_event(&rdb, event, Some(*seq), at("2026-11-29T10:02:00Z")).unwrap();
    }
    let fired = reminders::fire_due(&rdb, at("2026-12-01T09:00:00.100Z"), 60_000).unwrap();
    assert_eq!(fired.fired, 1, "the reminder the task has fires");
}

/// Issue 21 item 9: deliveries went FIFO, 20 a run, so one user with a
/// thousand email reminders due held back everyone else's for minutes.
/// Each run takes every user's oldest first.
fn one_users_backlog_does_not_hold_back_anothers_delivery(engine: Engine) {
    let tasks = db(engine);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    for i in 0..100 {
        store.create("spammer", &patch(json!({"title": format!("s{i}"), "remind_at": "2026-12-01T08:01:00Z", "notification_type": "email"})), now).unwrap();
    }
    store.create("victim", &patch(json!({"title": "mine", "remind_at": "2026-12-01T08:01:30Z", "notification_type": "email"})), now).unwrap();
    for e in outbox_events(&tasks, events::REMINDERS) {
        reminders::apply_event(&rdb, &e, None, now).unwrap();
    }
    let clock = at("2026-12-01T08:01:30Z");
    reminders::fire_due(&rdb, clock, 600_000).unwrap();
    let run = reminders::pending_deliveries(&rdb, clock, 20).unwrap();
    assert_eq!(run.len(), 20);
    assert!(
        run[..2].iter().any(|n| n.user_id == "victim"),
        "the victim's one is among the first two"
    );
    let spammer: Vec<_> = run.iter().filter(|n| n.user_id == "spammer").collect();
    assert_eq!(spammer.len(), 19);
    // The spammer's own still go oldest first.
    assert!(spammer.windows(2).all(|w| w[0].remind_at <= w[1].remind_at));
}

/// Replicas sharing one Postgres each run the timer every second: every
/// due reminder must fire once across them, not once per replica.
#[test]
fn replicas_firing_at_once_fire_each_reminder_once() {
    let tasks = db(Engine::Postgres);
    let store = TaskStore::open(&tasks).unwrap();
    let rdb = tasks.sibling("reminders");
    reminders::open(&rdb).unwrap();
    let now = at("2026-12-01T08:00:00Z");
    for i in 0..40 {
        store
            .create(
                &format!("user{}", i % 4),
                &patch(json!({"title": format!("R{i}"), "remind_at": "2026-12-01T08:30:00Z"})),
                now,
            )
            .unwrap();
    }
    for e in outbox_events(&tasks, events::REMINDERS) {
        reminders::apply_event(&rdb, &e, None, now).unwrap();
    }
    let url = tasks.postgres_url().unwrap();
    let start = std::sync::Barrier::new(4);
    let fired: usize = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let (start, url) = (&start, &url);
                s.spawn(move || {
                    let replica =
                        todo_domain::store::native_pg::NativePg::connect(url, "reminders").unwrap();
                    start.wait();
                    (0..5)
                        .map(|_| {
                            reminders::fire_due(&replica, at("2026-12-01T08:30:01Z"), 60_000)
                                .unwrap()
                                .fired
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum()
    });
    assert_eq!(fired, 40, "fired across replicas");
    assert_eq!(
        outbox_events(&rdb, events::REMINDERS).len(),
        40,
        "reminder_triggered events"
    );
}

on_both_engines!(
    a_reminder_fires_once_and_never_after_cancellation_or_reschedule,
    reminders_missed_beyond_the_grace_window_are_recorded_not_sent,
    webhook_deliveries_retry_with_backoff_then_fail_visibly,
    a_delivery_attempt_is_recorded_before_it_is_sent,
    reminder_events_apply_in_commit_order_not_timestamp_order,
    one_users_backlog_does_not_hold_back_anothers_delivery,
);
