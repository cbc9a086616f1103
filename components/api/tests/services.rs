//! The API's service endpoints over real SQLite files, with the service
//! databases filled by the same domain code the service components run.

mod common;

use common::*;
use serde_json::{json, Value as Json};
use todo_audit_store as audit;
use todo_domain::events::incoming::IncomingEvent;
use todo_domain::store::native::NativeDb;
use todo_reminder_store as reminders;
use todo_sync_store as feed;

fn events(app: &App, topic: &str) -> Vec<IncomingEvent> {
    todo_domain::store::native::testing::outbox_events(&app.db, topic)
}

fn service_db(app: &App, label: &str) -> NativeDb {
    NativeDb::open(&app.files.0.join(format!("{label}.db"))).unwrap()
}

fn create(app: &App, user: &str, body: Json) -> String {
    let r = app.call(user, "POST", "/api/tasks", Some(body));
    assert_eq!(r.status, 201, "{}", r.json_body());
    r.json_body()["id"].as_str().unwrap().to_owned()
}

#[test]
fn sharing_and_assignment_over_rest() {
    let app = App::new();
    let id = create(&app, "alice", json!({"title": "Plan trip"}));
    assert_error(
        &app.call("bob", "GET", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
    let shared = app.call(
        "alice",
        "POST",
        &format!("/api/tasks/{id}/share"),
        Some(json!({"user_id": "bob"})),
    );
    assert_eq!(shared.status, 200);
    assert_eq!(shared.json_body()["shared_with"], json!(["bob"]));
    assert_eq!(
        app.call("bob", "GET", &format!("/api/tasks/{id}"), None)
            .status,
        200
    );
    assert_eq!(
        app.call(
            "bob",
            "PATCH",
            &format!("/api/tasks/{id}"),
            Some(json!({"priority": "high"}))
        )
        .status,
        200
    );
    assert_error(
        &app.call("bob", "DELETE", &format!("/api/tasks/{id}"), None),
        403,
        "forbidden",
    );
    assert_error(
        &app.call(
            "bob",
            "POST",
            &format!("/api/tasks/{id}/share"),
            Some(json!({"user_id": "eve"})),
        ),
        403,
        "forbidden",
    );
    let assigned = app.call(
        "alice",
        "PUT",
        &format!("/api/tasks/{id}/assignee"),
        Some(json!({"assignee": "carol"})),
    );
    assert_eq!(assigned.json_body()["assignee"], "carol");
    assert_eq!(assigned.json_body()["shared_with"], json!(["bob", "carol"]));
    assert_error(
        &app.call(
            "alice",
            "PUT",
            &format!("/api/tasks/{id}/assignee"),
            Some(json!({"who": "x"})),
        ),
        400,
        "bad_request",
    );
    let unshared = app.call(
        "alice",
        "DELETE",
        &format!("/api/tasks/{id}/share/bob"),
        None,
    );
    assert_eq!(unshared.json_body()["shared_with"], json!(["carol"]));
    assert_error(
        &app.call("bob", "GET", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
    let kinds: Vec<String> = events(&app, "task-updates")
        .iter()
        .map(|e| e.envelope.event_type.clone())
        .collect();
    assert!(kinds.contains(&"task_shared".to_owned()));
}

#[test]
fn notifications_are_listed_paged_and_marked_read() {
    let app = App::new();
    for i in 0..3 {
        create(
            &app,
            "alice",
            json!({"title": format!("n{i}"), "remind_at": "2026-11-29T10:00:05Z"}),
        );
    }
    let rdb = service_db(&app, "reminders");
    reminders::open(&rdb).unwrap();
    for e in events(&app, "reminders") {
        reminders::apply_event(&rdb, &e, None, app.now).unwrap();
    }
    let later = app.now + chrono::Duration::seconds(5);
    assert_eq!(reminders::fire_due(&rdb, later, 60_000).unwrap().fired, 3);
    let page = app
        .call("alice", "GET", "/api/notifications?limit=2", None)
        .json_body();
    assert_eq!(page["notifications"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .call(
            "alice",
            "GET",
            &format!("/api/notifications?limit=2&cursor={cursor}"),
            None,
        )
        .json_body();
    assert_eq!(rest["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Json::Null);
    let id = page["notifications"][0]["id"].as_str().unwrap();
    let read = app.call(
        "alice",
        "POST",
        &format!("/api/notifications/{id}/read"),
        None,
    );
    assert_eq!(read.json_body()["status"], "read");
    assert_error(
        &app.call(
            "bob",
            "POST",
            &format!("/api/notifications/{id}/read"),
            None,
        ),
        404,
        "not_found",
    );
    let unread = app
        .call("alice", "GET", "/api/notifications?unread=true", None)
        .json_body();
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 2);
    assert!(app
        .call("bob", "GET", "/api/notifications", None)
        .json_body()["notifications"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_error(
        &app.call("alice", "GET", "/api/notifications?cursor=zzz", None),
        400,
        "bad_request",
    );
}

/// Issue 21 item 5: a task with many changes gets its history a page at a
/// time (it was returned whole, every snapshot at once).
#[test]
fn a_long_history_is_paged_in_order() {
    let app = App::new();
    let id = create(&app, "alice", json!({"title": "Busy"}));
    for n in 0..250 {
        let r = app.call(
            "alice",
            "PATCH",
            &format!("/api/tasks/{id}"),
            Some(json!({"description": format!("edit {n}")})),
        );
        assert_eq!(r.status, 200);
    }
    let adb = service_db(&app, "audit");
    audit::open(&adb).unwrap();
    // Every event has the same timestamp here: order falls to the sequence.
    for e in events(&app, "task-events") {
        audit::record(&adb, "task-events", &e, Some("alice"), app.now).unwrap();
    }
    let first = app
        .call("alice", "GET", &format!("/api/tasks/{id}/history"), None)
        .json_body();
    assert_eq!(
        first["history"].as_array().unwrap().len(),
        50,
        "default page"
    );
    assert!(first["next_cursor"].is_string());
    let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app
            .call(
                "alice",
                "GET",
                &format!("/api/tasks/{id}/history?limit=100&cursor={cursor}"),
                None,
            )
            .json_body();
        pages += 1;
        for entry in page["history"].as_array().unwrap() {
            seen.push(entry["event_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = events(&app, "task-events")
        .into_iter()
        .map(|e| e.envelope.event_id)
        .collect();
    assert_eq!(seen, expected, "every entry once, in order");
    for bad in ["x", "1.x", "1", "limit"] {
        let r = app.call(
            "alice",
            "GET",
            &format!("/api/tasks/{id}/history?cursor={bad}"),
            None,
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.json_body());
        assert_eq!(r.json_body()["error"]["field"], "cursor");
    }
    assert_error(
        &app.call(
            "alice",
            "GET",
            &format!("/api/tasks/{id}/history?limit=101"),
            None,
        ),
        422,
        "validation_failed",
    );
}

#[test]
fn history_and_audit_trail() {
    let app = App::new();
    let id = create(&app, "alice", json!({"title": "Report"}));
    app.call(
        "alice",
        "PATCH",
        &format!("/api/tasks/{id}"),
        Some(json!({"priority": "high"})),
    );
    app.call("alice", "POST", &format!("/api/tasks/{id}/complete"), None);
    let adb = service_db(&app, "audit");
    audit::open(&adb).unwrap();
    for e in events(&app, "task-events") {
        audit::record(&adb, "task-events", &e, Some("alice"), app.now).unwrap();
    }
    let history = app
        .call("alice", "GET", &format!("/api/tasks/{id}/history"), None)
        .json_body();
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["task_created", "task_updated", "task_completed"]);
    assert_error(
        &app.call("bob", "GET", &format!("/api/tasks/{id}/history"), None),
        404,
        "not_found",
    );
    // After deletion the task's own /history goes with it (404, as for
    // any sub-resource); the audit trail, filtered by task, still has it.
    app.call("alice", "DELETE", &format!("/api/tasks/{id}"), None);
    assert_error(
        &app.call("alice", "GET", &format!("/api/tasks/{id}/history"), None),
        404,
        "not_found",
    );
    let trail = app
        .call("alice", "GET", &format!("/api/audit?task_id={id}"), None)
        .json_body();
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["task_completed", "task_updated", "task_created"]);
    assert!(app
        .call("bob", "GET", &format!("/api/audit?task_id={id}"), None)
        .json_body()["entries"]
        .as_array()
        .unwrap()
        .is_empty());
    let page = app
        .call("alice", "GET", "/api/audit?limit=2", None)
        .json_body();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = app
        .call(
            "alice",
            "GET",
            &format!("/api/audit?limit=2&cursor={next}"),
            None,
        )
        .json_body();
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn long_poll_returns_news_at_once_or_after_the_wait() {
    let app = App::new();
    let start = app.call("alice", "GET", "/api/sync", None).json_body();
    assert_eq!(start["cursor"], "0");
    let fdb = service_db(&app, "sync");
    feed::open(&fdb).unwrap();
    create(&app, "alice", json!({"title": "Sync me"}));
    for e in events(&app, "task-updates") {
        feed::append(&fdb, &e).unwrap();
    }
    let news = app
        .call("alice", "GET", "/api/sync?since=0&wait=5", None)
        .json_body();
    assert_eq!(news["changes"].as_array().unwrap().len(), 1);
    assert_eq!(
        news["changes"][0]["update_data"]["task"]["title"],
        "Sync me"
    );
    let cursor = news["cursor"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let quiet = app
        .call(
            "alice",
            "GET",
            &format!("/api/sync?since={cursor}&wait=1"),
            None,
        )
        .json_body();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "it waited"
    );
    assert_eq!(
        (
            quiet["changes"].as_array().unwrap().len(),
            quiet["cursor"].as_str().unwrap()
        ),
        (0, cursor.as_str())
    );
    assert_error(
        &app.call("alice", "GET", "/api/sync?since=abc", None),
        400,
        "bad_request",
    );
    assert_error(
        &app.call("alice", "GET", "/api/sync?since=0&wait=99", None),
        422,
        "validation_failed",
    );
    let sse = app.call("alice", "GET", "/api/events?since=0", None);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(sse.body).unwrap();
    assert!(
        text.contains(&format!("id: {cursor}\nevent: task_updated\ndata: ")),
        "{text}"
    );
}

/// Issue 21 item 1: event streams are capped per user and in all, each
/// refusal a JSON error with Retry-After; a released or expired lease
/// frees its place.
#[test]
fn event_stream_leases_are_capped_per_user_and_in_all() {
    use todo_api::streams;
    let db = NativeDb::open_in_memory().unwrap();
    let now = 1_000_000;
    let mine: Vec<String> = (0..streams::PER_USER)
        .map(|_| streams::acquire(&db, "alice", now, 25_000).unwrap())
        .collect();
    let err = streams::acquire(&db, "alice", now, 25_000).unwrap_err();
    let response = err.into_response();
    assert_eq!(response.status, 429);
    assert_eq!(response.json_body()["error"]["code"], "too_many_streams");
    assert_eq!(response.header("retry-after"), Some("5"));
    streams::release(&db, &mine[0]);
    streams::acquire(&db, "alice", now, 25_000).expect("a released place is free again");
    // Everyone's streams together.
    let mut total = streams::PER_USER;
    let mut user = 0;
    while total < streams::TOTAL {
        streams::acquire(&db, &format!("u{}", user / 4), now, 25_000).unwrap();
        user += 1;
        total += 1;
    }
    let err = streams::acquire(&db, "zoe", now, 25_000).unwrap_err();
    assert_eq!(err.into_response().status, 503);
    // Leases of streams that never gave them back expire.
    let later = now + 25_000 + streams::GRACE_MS + 1;
    streams::acquire(&db, "zoe", later, 25_000).expect("expired leases are swept");
    // Both answers are in the contract (a spec-driven fuzzer that opened
    // five streams as one user met an undocumented 429), and so is the 503
    // a busy database gives on any operation.
    let doc: Json = serde_json::from_str(todo_api::OPENAPI).unwrap();
    for status in ["429", "503"] {
        assert!(
            doc["paths"]["/api/events"]["get"]["responses"][status].is_object(),
            "GET /api/events does not document {status}"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        let operations = item.as_object().unwrap().iter();
        for (method, operation) in operations.filter(|(key, _)| *key != "parameters") {
            assert!(
                operation["responses"]["503"].is_object(),
                "{method} {path} does not document 503"
            );
        }
    }
}

/// Issue 21 item 8: a collaborator filled the owner's task quota by
/// completing occurrences of a shared recurring series one after another
/// (each next occurrence is the owner's task). Only the owner shapes a
/// series; a collaborator completes an occurrence once it is due within a
/// day.
#[test]
fn only_the_owner_shapes_a_recurring_series() {
    let app = App::new();
    // Due in three days (App's clock is 2026-11-29T10:00Z).
    let ahead = create(
        &app,
        "alice",
        json!({"title": "Water plants", "due_date": "2026-12-02T09:00:00Z", "recurrence_pattern": "daily"}),
    );
    let shared = app.call(
        "alice",
        "POST",
        &format!("/api/tasks/{ahead}/share"),
        Some(json!({"user_id": "bob"})),
    );
    assert_eq!(shared.status, 200);
    for (body, field) in [
        (
            json!({"recurrence_pattern": "weekly"}),
            "recurrence_pattern",
        ),
        (json!({"recurrence_pattern": null}), "recurrence_pattern"),
        (json!({"due_date": "2020-01-01T09:00:00Z"}), "due_date"),
        (json!({"time_zone": "Asia/Tokyo"}), "time_zone"),
    ] {
        let r = app.call("bob", "PATCH", &format!("/api/tasks/{ahead}"), Some(body));
        assert_eq!(r.status, 403, "{field}: {}", r.json_body());
        assert!(
            r.json_body()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            r.json_body()
        );
    }
    // Other fields stay editable by collaborators.
    let edited = app.call(
        "bob",
        "PATCH",
        &format!("/api/tasks/{ahead}"),
        Some(json!({"priority": "high"})),
    );
    assert_eq!(edited.status, 200);
    let early = app.call("bob", "POST", &format!("/api/tasks/{ahead}/complete"), None);
    assert_eq!(early.status, 403, "{}", early.json_body());
    let owner = app.call(
        "alice",
        "POST",
        &format!("/api/tasks/{ahead}/complete"),
        None,
    );
    assert_eq!(owner.status, 200, "the owner may complete ahead");
    // An occurrence due within a day: the collaborator completes it.
    let due = create(
        &app,
        "alice",
        json!({"title": "Feed cat", "due_date": "2026-11-30T08:00:00Z", "recurrence_pattern": "daily"}),
    );
    app.call(
        "alice",
        "POST",
        &format!("/api/tasks/{due}/share"),
        Some(json!({"user_id": "bob"})),
    );
    let done = app.call("bob", "POST", &format!("/api/tasks/{due}/complete"), None);
    assert_eq!(done.status, 200, "{}", done.json_body());
    // A collaborator may not make a one-off task recurring either.
    let once = create(&app, "alice", json!({"title": "Once"}));
    app.call(
        "alice",
        "POST",
        &format!("/api/tasks/{once}/share"),
        Some(json!({"user_id": "bob"})),
    );
    let made = app.call(
        "bob",
        "PATCH",
        &format!("/api/tasks/{once}"),
        Some(json!({"due_date": "2026-11-29T12:00:00Z", "recurrence_pattern": "daily"})),
    );
    assert_eq!(made.status, 403);
}

/// Issue 21 item 8: to the owner, `me` in `DELETE /share/{user}` is the
/// collaborator whose id is literally `me` (the owner could not unshare
/// them); to a recipient it still declines the share.
#[test]
fn the_owner_can_unshare_a_user_named_me() {
    let app = App::new();
    let id = create(&app, "alice", json!({"title": "Plan"}));
    for user in ["me", "bob"] {
        let r = app.call(
            "alice",
            "POST",
            &format!("/api/tasks/{id}/share"),
            Some(json!({"user_id": user})),
        );
        assert_eq!(r.status, 200);
    }
    let unshared = app.call(
        "alice",
        "DELETE",
        &format!("/api/tasks/{id}/share/me"),
        None,
    );
    assert_eq!(unshared.status, 200, "{}", unshared.json_body());
    assert_eq!(unshared.json_body()["shared_with"], json!(["bob"]));
    assert_error(
        &app.call("me", "GET", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
    // A recipient's `me` declines, as before.
    let declined = app.call("bob", "DELETE", &format!("/api/tasks/{id}/share/me"), None);
    assert_eq!(declined.status, 204);
    assert_error(
        &app.call("bob", "GET", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
}
