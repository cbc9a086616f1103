//! The API's service endpoints over real SQLite files, with the service
//! databases filled by the same domain code the service components run.

mod common;

use common::*;
use serde_json::{json, Value as Json};
use todo_audit_store as audit;
use todo_domain::incoming::IncomingEvent;
use todo_domain::native::NativeDb;
use todo_reminder_store as reminders;
use todo_sync_store as feed;

fn events(app: &App, topic: &str) -> Vec<IncomingEvent> {
    todo_domain::native::testing::outbox_events(&app.db, topic)
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
        .map(|e| e.event_type.clone())
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
        feed::append(&fdb, &e, app.now).unwrap();
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
