//! The REST API end to end through `handle`, over a real SQLite file.

mod common;

use common::*;
use serde_json::{json, Value as Json};

#[test]
fn create_get_list_update_complete_reopen_delete() {
    let app = App::new();
    let created = app.call(
        "alice",
        "POST",
        "/api/tasks",
        Some(json!({"title": "Pay rent", "priority": "high", "due_date": "2026-12-01T09:00:00+01:00", "tags": ["Home"]})),
    );
    assert_eq!(created.status, 201, "{}", created.json_body());
    let task = created.json_body();
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/tasks/{id}").as_str())
    );
    assert_eq!(task["due_date"], "2026-12-01T08:00:00Z");
    assert_eq!(task["tags"], json!(["home"]));
    assert_eq!(task["status"], "pending");
    assert_eq!(task["user_id"], "alice");

    let got = app.call("alice", "GET", &format!("/api/tasks/{id}"), None);
    assert_eq!((got.status, got.json_body()), (200, task.clone()));

    let list = app
        .call("alice", "GET", "/api/tasks?tag=home&priority=high", None)
        .json_body();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_cursor"], Json::Null);

    let updated = app.call(
        "alice",
        "PATCH",
        &format!("/api/tasks/{id}"),
        Some(json!({"description": "by transfer", "due_date": null})),
    );
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json_body()["description"], "by transfer");
    assert_eq!(updated.json_body()["due_date"], Json::Null);
    assert_eq!(updated.json_body()["version"], 2);

    let done = app
        .call("alice", "POST", &format!("/api/tasks/{id}/complete"), None)
        .json_body();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["completed_at"], "2026-11-29T10:00:00Z");
    let reopened = app
        .call(
            "alice",
            "POST",
            &format!("/api/tasks/{id}/reopen"),
            Some(json!({})),
        )
        .json_body();
    assert_eq!(
        (reopened["status"].clone(), reopened["completed_at"].clone()),
        (json!("pending"), Json::Null)
    );

    let deleted = app.call("alice", "DELETE", &format!("/api/tasks/{id}"), None);
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    assert_error(
        &app.call("alice", "GET", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
    assert_error(
        &app.call("alice", "DELETE", &format!("/api/tasks/{id}"), None),
        404,
        "not_found",
    );
}

#[test]
fn reminders_set_follow_and_clear() {
    let app = App::new();
    let id = app
        .call(
            "alice",
            "POST",
            "/api/tasks",
            Some(json!({"title": "Call", "due_date": "2026-12-01T09:00:00Z"})),
        )
        .json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let set = app.call(
        "alice",
        "PUT",
        &format!("/api/tasks/{id}/reminder"),
        Some(json!({"remind_before_minutes": 30, "notification_type": "sms"})),
    );
    assert_eq!(set.status, 200, "{}", set.json_body());
    assert_eq!(set.json_body()["remind_at"], "2026-12-01T08:30:00Z");
    assert_eq!(set.json_body()["notification_type"], "sms");
    let missing = app.call(
        "alice",
        "PUT",
        &format!("/api/tasks/{id}/reminder"),
        Some(json!({"notification_type": "sms"})),
    );
    assert_error(&missing, 422, "validation_failed");
    let extra = app.call(
        "alice",
        "PUT",
        &format!("/api/tasks/{id}/reminder"),
        Some(json!({"remind_at": "2026-12-01T08:00:00Z", "title": "x"})),
    );
    assert_eq!(
        assert_error(&extra, 400, "bad_request")["error"]["field"],
        "title"
    );
    let cleared = app
        .call(
            "alice",
            "DELETE",
            &format!("/api/tasks/{id}/reminder"),
            None,
        )
        .json_body();
    assert_eq!(
        (
            cleared["remind_at"].clone(),
            cleared["remind_before_minutes"].clone()
        ),
        (Json::Null, Json::Null)
    );
}

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = App::new();
    let raw = |body: &[u8], content_type: &str| {
        app.request(request(
            "POST",
            "/api/tasks",
            vec![auth("alice"), ("content-type".into(), content_type.into())],
            body.to_vec(),
        ))
    };
    assert_error(
        &raw(b"{\"title\": ", "application/json"),
        400,
        "invalid_json",
    );
    assert_error(&raw(b"[1,2]", "application/json"), 400, "invalid_json");
    assert_error(&raw(b"", "application/json"), 400, "invalid_json");
    assert_error(
        &raw(b"title=x", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    );
    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_error(
        &raw(big.as_bytes(), "application/json"),
        413,
        "payload_too_large",
    );

    // Fields the schema does not have (400), then values it does not allow (422).
    let unknown = [
        (json!({"title": "x", "colour": "red"}), "colour"),
        (json!({"title": "x", "id": "mine"}), "id"),
    ];
    let invalid = [
        (json!({"description": "no title"}), "title"),
        (json!({"title": "x", "due_date": "friday"}), "due_date"),
        (
            json!({"title": "x", "due_date": "2026-12-01T09:00:00"}),
            "due_date",
        ),
        (
            json!({"title": "x", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "every blue moon"}),
            "recurrence_pattern",
        ),
        (
            json!({"title": "x", "recurrence_pattern": "daily"}),
            "recurrence_pattern",
        ),
        (json!({"title": "x", "priority": "asap"}), "priority"),
        (json!({"title": "x", "tags": "a"}), "tags"),
        (json!({"title": 7}), "title"),
        (json!({"title": "x", "status": "completed"}), "status"),
    ];
    let cases = unknown
        .into_iter()
        .map(|(body, field)| (body, 400, "bad_request", field))
        .chain(
            invalid
                .into_iter()
                .map(|(body, field)| (body, 422, "validation_failed", field)),
        );
    for (body, status, code, field) in cases {
        let response = app.call("alice", "POST", "/api/tasks", Some(body.clone()));
        let error = assert_error(&response, status, code);
        assert_eq!(error["error"]["field"], field, "{body}");
    }
    for (query, field) in [
        ("status=done", "status"),
        ("limit=1000", "limit"),
        ("cursor=xyz", "cursor"),
        ("sorted=1", "sorted"),
        ("due_before=soon", "due_before"),
    ] {
        let response = app.call("alice", "GET", &format!("/api/tasks?{query}"), None);
        assert!(matches!(response.status, 400 | 422), "{query}");
        assert_eq!(response.json_body()["error"]["field"], field, "{query}");
    }
    assert_eq!(app.count("tasks"), 0);
    assert_eq!(app.count("outbox"), 0);
}

#[test]
fn unknown_routes_and_methods() {
    let app = App::new();
    assert_error(
        &app.call("alice", "GET", "/api/nothing", None),
        404,
        "not_found",
    );
    let response = app.call("alice", "PUT", "/api/tasks", None);
    assert_error(&response, 405, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("GET, POST"));
}

#[test]
fn authentication_and_isolation() {
    let app = App::new();
    // No credentials.
    let anonymous = app.request(request("GET", "/api/tasks", vec![], vec![]));
    assert_error(&anonymous, 401, "unauthorized");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));

    // A bearer token works; an expired or forged one does not.
    let now = app.now.timestamp();
    let bearer = |t: String| vec![("authorization".to_owned(), format!("Bearer {t}"))];
    let ok = app.request(request(
        "GET",
        "/api/tasks",
        bearer(token("carol", now + 600)),
        vec![],
    ));
    assert_eq!(ok.status, 200);
    assert_error(
        &app.request(request(
            "GET",
            "/api/tasks",
            bearer(token("carol", now - 600)),
            vec![],
        )),
        401,
        "unauthorized",
    );
    let forged = todo_api::auth::sign_jwt(&json!({"sub": "carol", "exp": now + 600}), b"guess");
    assert_error(
        &app.request(request("GET", "/api/tasks", bearer(forged), vec![])),
        401,
        "unauthorized",
    );

    // Another user's task is not found, whatever the verb.
    let id = app
        .call(
            "alice",
            "POST",
            "/api/tasks",
            Some(json!({"title": "private"})),
        )
        .json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, uri, body) in [
        ("GET", format!("/api/tasks/{id}"), None),
        (
            "PATCH",
            format!("/api/tasks/{id}"),
            Some(json!({"title": "hijacked"})),
        ),
        ("DELETE", format!("/api/tasks/{id}"), None),
        ("POST", format!("/api/tasks/{id}/complete"), None),
        (
            "PUT",
            format!("/api/tasks/{id}/reminder"),
            Some(json!({"remind_at": "2027-01-01T00:00:00Z"})),
        ),
    ] {
        assert_error(&app.call("mallory", method, &uri, body), 404, "not_found");
    }
    assert!(
        app.call("mallory", "GET", "/api/tasks", None).json_body()["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.call("alice", "GET", &format!("/api/tasks/{id}"), None)
            .json_body()["title"],
        "private"
    );
}

#[test]
fn the_user_id_header_is_refused_unless_development_mode_is_on() {
    let header = |app: &App| {
        app.request(request(
            "GET",
            "/api/tasks",
            vec![("x-user-id".into(), "victim".into())],
            vec![],
        ))
    };
    let app = App::with_config(todo_api::config::Config {
        jwt_secret: Some(SECRET.into()),
        ..Default::default()
    });
    assert_error(&header(&app), 401, "unauthorized");
    // Development mode with a token key configured: still tokens only, so
    // nobody can be the victim by naming them in a header.
    let mixed = App::new();
    assert!(mixed.config.dev_auth && mixed.config.jwt_secret.is_some());
    assert_error(&header(&mixed), 401, "unauthorized");
    let dev = App::with_config(todo_api::config::Config {
        dev_auth: true,
        ..Default::default()
    });
    assert_eq!(header(&dev).status, 200);
    let no_secret = App::with_config(Default::default());
    let response = no_secret.request(request(
        "GET",
        "/api/tasks",
        vec![(
            "authorization".into(),
            format!("Bearer {}", token("a", 2_000_000_000)),
        )],
        vec![],
    ));
    assert_error(&response, 503, "auth_not_configured");
}

#[test]
fn idempotency_key_replays_the_first_result() {
    let app = App::new();
    let post = |key: &str, title: &str| {
        app.request(request(
            "POST",
            "/api/tasks",
            vec![
                auth("alice"),
                ("content-type".into(), "application/json".into()),
                ("idempotency-key".into(), key.into()),
            ],
            serde_json::to_vec(&json!({"title": title})).unwrap(),
        ))
    };
    let first = post("key-1", "Buy milk");
    assert_eq!(first.status, 201);
    let outbox_after_first = app.count("outbox");
    let retry = post("key-1", "Buy milk");
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json_body(), first.json_body());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(app.count("tasks"), 1);
    assert_eq!(
        app.count("outbox"),
        outbox_after_first,
        "a replay publishes nothing"
    );
    // 409: the key's state, not the input, is what stands in the way.
    let error = assert_error(&post("key-1", "Buy bread"), 409, "conflict");
    assert_eq!(error["error"]["field"], "Idempotency-Key");
    assert_eq!(post("key-2", "Buy bread").status, 201);
    assert_eq!(app.count("tasks"), 2);
    // A failed request is not remembered: fixing it under the same key works.
    let bad = app.request(request(
        "POST",
        "/api/tasks",
        vec![
            auth("alice"),
            ("content-type".into(), "application/json".into()),
            ("idempotency-key".into(), "key-3".into()),
        ],
        b"{\"title\": \"\"}".to_vec(),
    ));
    assert_eq!(bad.status, 422);
}

#[test]
fn pagination_over_http() {
    let app = App::new();
    for i in 0..7 {
        app.call(
            "alice",
            "POST",
            "/api/tasks",
            Some(json!({"title": format!("t{i}")})),
        );
    }
    let mut titles = Vec::new();
    let mut uri = "/api/tasks?sort=created_at&order=asc&limit=3".to_owned();
    loop {
        let page = app.call("alice", "GET", &uri, None).json_body();
        titles.extend(
            page["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                uri = format!("/api/tasks?sort=created_at&order=asc&limit=3&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(titles, ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
}

#[test]
fn every_route_is_in_the_openapi_document_and_nothing_else() {
    let app = App::new();
    let response = app.request(request("GET", "/api/openapi.json", vec![], vec![]));
    assert_eq!(response.status, 200);
    let doc = response.json_body();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut routed: Vec<String> = todo_api::router::ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // Every $ref resolves.
    let text = serde_json::to_string(&doc).unwrap();
    for reference in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &reference[..reference.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
    let health = app.request(request("GET", "/healthz", vec![], vec![]));
    assert_eq!(
        (health.status, health.json_body()),
        (200, json!({"status": "ok"}))
    );
}

/// What the OpenAPI document allows is accepted (Schemathesis found each of
/// these refused): whole-number floats, an empty recurrence pattern, an
/// empty Idempotency-Key, a reminder time already past.
#[test]
fn inputs_the_contract_allows_are_accepted() {
    let app = App::new();
    let created = app.call(
        "alice",
        "POST",
        "/api/tasks",
        Some(json!({"title": "x", "due_date": "2026-12-01T09:00:00Z", "remind_before_minutes": 30.0, "recurrence_pattern": ""})),
    );
    assert_eq!(created.status, 201, "{:?}", created.json_body());
    let task = created.json_body();
    assert_eq!(task["remind_before_minutes"], 30);
    assert_eq!(task["recurrence_pattern"], Json::Null);
    let id = task["id"].as_str().unwrap().to_owned();
    let past = app.call(
        "alice",
        "PUT",
        &format!("/api/tasks/{id}/reminder"),
        Some(json!({"remind_at": "2000-01-01T00:00:00Z"})),
    );
    assert_eq!(past.status, 200, "{:?}", past.json_body());
    let empty_key = request(
        "POST",
        "/api/tasks",
        vec![
            auth("alice"),
            ("content-type".into(), "application/json".into()),
            ("idempotency-key".into(), String::new()),
        ],
        br#"{"title": "y"}"#.to_vec(),
    );
    assert_eq!(app.request(empty_key).status, 201);
    // A change that leaves a recurring task without a due date conflicts
    // with the task's state: 409 naming the field, not a 422.
    let daily = app.call(
        "alice",
        "POST",
        "/api/tasks",
        Some(json!({"title": "d", "due_date": "2026-12-01T09:00:00Z", "recurrence_pattern": "daily"})),
    );
    let daily_id = daily.json_body()["id"].as_str().unwrap().to_owned();
    let error = assert_error(
        &app.call(
            "alice",
            "PATCH",
            &format!("/api/tasks/{daily_id}"),
            Some(json!({"due_date": null})),
        ),
        409,
        "conflict",
    );
    assert_eq!(error["error"]["field"], "recurrence_pattern");
}

/// Replaying the creation of a task deleted since would hand out a
/// `Location` that is gone: a 409 tells the client to use a new key.
#[test]
fn replaying_the_creation_of_a_deleted_task_is_a_conflict() {
    let app = App::new();
    let post = || {
        app.request(request(
            "POST",
            "/api/tasks",
            vec![
                auth("alice"),
                ("content-type".into(), "application/json".into()),
                ("idempotency-key".into(), "k-1".into()),
            ],
            br#"{"title": "once"}"#.to_vec(),
        ))
    };
    let first = post();
    assert_eq!(first.status, 201);
    let id = first.json_body()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call("alice", "DELETE", &format!("/api/tasks/{id}"), None)
            .status,
        204
    );
    let error = assert_error(&post(), 409, "conflict");
    assert_eq!(error["error"]["field"], "Idempotency-Key");
    assert_eq!(app.count("tasks"), 0);
}

/// Quick Add over REST in the user's zone, and `/api/me`.
#[test]
fn quick_add_reads_the_line_in_the_users_time_zone() {
    let app = App::new();
    let me = app.call("alice", "GET", "/api/me", None);
    assert_eq!(
        me.json_body(),
        json!({"user_id": "alice", "time_zone": "UTC"})
    );
    let set = app.call(
        "alice",
        "PUT",
        "/api/me",
        Some(json!({"time_zone": "Europe/Berlin"})),
    );
    assert_eq!(set.json_body()["time_zone"], "Europe/Berlin");
    let bad = assert_error(
        &app.call(
            "alice",
            "PUT",
            "/api/me",
            Some(json!({"time_zone": "Berlin"})),
        ),
        422,
        "validation_failed",
    );
    assert_eq!(bad["error"]["field"], "time_zone");
    let created = app.call(
        "alice",
        "POST",
        "/api/tasks/quick",
        Some(json!({"text": "Dentist 2027-01-15 at 9am remind me 1 hour before #health p2"})),
    );
    assert_eq!(created.status, 201, "{:?}", created.json_body());
    let body = created.json_body();
    let task = &body["task"];
    assert_eq!(task["title"], "Dentist");
    assert_eq!(task["due_date"], "2027-01-15T08:00:00Z", "09:00 in Berlin");
    assert_eq!(task["time_zone"], "Europe/Berlin");
    assert_eq!(task["remind_before_minutes"], 60);
    assert_eq!(task["tags"], json!(["health"]));
    assert_eq!(task["priority"], "high");
    let fields: Vec<&str> = body["understood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["due_date", "due_date", "reminder", "tags", "priority"]
    );
    let location = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    assert_eq!(created.header("location"), Some(location.as_str()));
    // A zone in the request wins over the user's.
    let ny = app
        .call(
            "alice",
            "POST",
            "/api/tasks/quick",
            Some(json!({"text": "call 2027-01-15 9am", "time_zone": "America/New_York"})),
        )
        .json_body();
    assert_eq!(ny["task"]["due_date"], "2027-01-15T14:00:00Z");
    for (body, field) in [
        (json!({}), "text"),
        (json!({"text": "x", "time_zone": "Nowhere"}), "time_zone"),
        (json!({"text": "x", "time_zone": null}), "time_zone"),
        (json!({"text": "x", "colour": 1}), "colour"),
    ] {
        let response = app.call("alice", "POST", "/api/tasks/quick", Some(body));
        assert!(matches!(response.status, 400 | 422));
        assert_eq!(response.json_body()["error"]["field"], field);
    }
}
