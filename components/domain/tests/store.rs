//! The store against real databases: CRUD, isolation, filters, pagination,
//! the outbox rows each change writes, and atomicity. Every test that is
//! not about one engine runs twice: on SQLite (rusqlite) and on a private
//! PostgreSQL server (the `postgres` crate), with the same assertions.

use std::cell::Cell;

use serde_json::{json, Value as Json};
#[macro_use]
mod engines;

use engines::{db, Engine, TestDb};
use test_servers::postgres::Postgres;
use todo_domain::store::native::NativeDb;
use todo_domain::store::native_pg::NativePg;
use todo_domain::store::sql::{transaction, transaction_for, DbError, Rows, Sql, Value};
use todo_domain::store::{idempotency, migrations};
use todo_domain::time::{self, Timestamp};
use todo_domain::{DomainError, ListQuery, TaskPatch, TaskStore};

fn now() -> Timestamp {
    time::parse("now", "2026-11-29T10:00:00Z").unwrap()
}

fn at(s: &str) -> Timestamp {
    time::parse("t", s).unwrap()
}

fn patch(v: Json) -> TaskPatch {
    TaskPatch::from_json(v.as_object().unwrap()).unwrap()
}

#[derive(Debug)]
struct OutboxRow {
    topic: String,
    key: String,
    payload: Json,
    headers: Vec<(String, String)>,
}

fn outbox(db: &dyn Sql) -> Vec<OutboxRow> {
    let rows = db
        .execute(
            "SELECT topic, msg_key, payload, headers FROM outbox ORDER BY seq",
            &[],
        )
        .unwrap();
    rows.iter()
        .map(|r| OutboxRow {
            topic: r.str("topic").unwrap().to_owned(),
            key: r.str("msg_key").unwrap().to_owned(),
            payload: serde_json::from_str(r.str("payload").unwrap()).unwrap(),
            headers: serde_json::from_str(r.str("headers").unwrap()).unwrap(),
        })
        .collect()
}

fn event_types(rows: &[OutboxRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{}:{}", r.topic, r.payload["event_type"].as_str().unwrap()))
        .collect()
}

fn count(db: &dyn Sql, table: &str) -> i64 {
    db.execute(&format!("SELECT COUNT(*) AS n FROM {table}"), &[])
        .unwrap()
        .first()
        .unwrap()
        .i64("n")
        .unwrap()
}

fn keys(value: &Json) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn create_writes_the_task_and_its_events_in_the_seed_schemas(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let task = store
        .create(
            "alice",
            &patch(json!({
                "title": "Dentist",
                "description": "cleaning",
                "priority": "high",
                "due_date": "2026-12-01T09:00:00Z",
                "tags": ["health"],
                "remind_before_minutes": 60,
                "notification_type": "push"
            })),
            now(),
        )
        .unwrap();
    assert_eq!(store.get("alice", &task.id).unwrap().unwrap(), task);

    let rows = outbox(&db);
    assert_eq!(
        event_types(&rows),
        [
            "task-events:task_created",
            "reminders:reminder_scheduled",
            "task-updates:task_updated"
        ]
    );
    assert!(rows.iter().all(|r| r.key == "alice"), "keyed by user_id");

    // task-events: exactly the seed's fields plus event_id and schema_version.
    let e = &rows[0].payload;
    assert_eq!(
        keys(e),
        sorted(&[
            "event_type",
            "task_id",
            "user_id",
            "timestamp",
            "task_data",
            "event_id",
            "schema_version"
        ])
    );
    assert_eq!(e["task_id"], json!(task.id));
    assert_eq!(e["user_id"], "alice");
    assert_eq!(e["timestamp"], "2026-11-29T10:00:00Z");
    assert_eq!(e["schema_version"], 1);
    let data = &e["task_data"];
    for (field, expected) in [
        ("id", json!(task.id)),
        ("title", json!("Dentist")),
        ("description", json!("cleaning")),
        ("status", json!("pending")),
        ("priority", json!("high")),
        ("due_date", json!("2026-12-01T09:00:00Z")),
        ("created_at", json!("2026-11-29T10:00:00Z")),
        ("completed_at", Json::Null),
        ("tags", json!(["health"])),
        ("user_id", json!("alice")),
        ("recurrence_pattern", Json::Null),
    ] {
        assert_eq!(data[field], expected, "task_data.{field}");
    }
    assert_eq!(data["updated_at"], "2026-11-29T10:00:00Z");
    assert_eq!(data["remind_at"], "2026-12-01T08:00:00Z");

    // reminders: exactly the seed's reminder fields.
    let r = &rows[1].payload;
    assert_eq!(
        keys(r),
        sorted(&[
            "event_type",
            "task_id",
            "user_id",
            "timestamp",
            "title",
            "due_at",
            "remind_at",
            "notification_type",
            "event_id",
            "schema_version"
        ])
    );
    assert_eq!(r["title"], "Dentist");
    assert_eq!(r["due_at"], "2026-12-01T09:00:00Z");
    assert_eq!(r["remind_at"], "2026-12-01T08:00:00Z");
    assert_eq!(r["notification_type"], "push");

    // task-updates: the seed's fields, with the change in update_data.
    let u = &rows[2].payload;
    assert_eq!(
        keys(u),
        sorted(&[
            "event_type",
            "task_id",
            "user_id",
            "timestamp",
            "update_data",
            "event_id",
            "schema_version"
        ])
    );
    assert_eq!(u["update_data"]["change"], "created");
    assert_eq!(u["update_data"]["task"]["id"], json!(task.id));

    // CloudEvents binary-mode headers.
    let headers: std::collections::HashMap<_, _> = rows[0].headers.iter().cloned().collect();
    assert_eq!(headers["ce_specversion"], "1.0");
    assert_eq!(headers["ce_id"], e["event_id"].as_str().unwrap());
    assert_eq!(headers["ce_type"], "todo.task-events.task_created");
    assert_eq!(headers["ce_source"], "/todo-chatbot/tasks");
    assert_eq!(headers["ce_time"], "2026-11-29T10:00:00Z");
    assert_eq!(headers["ce_subject"], task.id);
    assert_eq!(headers["content-type"], "application/json");

    let ids: std::collections::HashSet<_> =
        rows.iter().map(|r| r.payload["event_id"].clone()).collect();
    assert_eq!(ids.len(), rows.len(), "event ids are unique");
}

fn lifecycle_events_complete_reopen_reschedule_delete(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let t = store
        .create(
            "alice",
            &patch(json!({"title": "Call mum", "due_date": "2026-12-01T09:00:00Z", "remind_before_minutes": 15})),
            now(),
        )
        .unwrap();
    let start = outbox(&db).len();

    let moved = store
        .update(
            "alice",
            &t.id,
            &patch(json!({"due_date": "2026-12-02T09:00:00Z"})),
            now(),
        )
        .unwrap();
    assert_eq!(moved.version, 2);
    let rows = outbox(&db);
    assert_eq!(
        event_types(&rows[start..]),
        [
            "task-events:task_updated",
            "reminders:reminder_cancelled",
            "reminders:reminder_scheduled",
            "task-updates:task_updated"
        ]
    );
    assert_eq!(
        rows[start + 1].payload["remind_at"],
        "2026-12-01T08:45:00Z",
        "cancels the old one"
    );
    assert_eq!(rows[start + 2].payload["remind_at"], "2026-12-02T08:45:00Z");
    assert_eq!(
        rows[start + 3].payload["update_data"]["changed_fields"],
        json!(["due_date", "remind_at"])
    );

    let mark = outbox(&db).len();
    let done = store.complete("alice", &t.id, now()).unwrap();
    assert_eq!(done.completed_at, Some(now()));
    assert_eq!(
        event_types(&outbox(&db)[mark..]),
        [
            "task-events:task_completed",
            "reminders:reminder_cancelled",
            "task-updates:task_updated"
        ]
    );
    let mark = outbox(&db).len();
    let again = store.complete("alice", &t.id, now()).unwrap();
    assert_eq!(again, done);
    assert_eq!(outbox(&db).len(), mark, "completing twice emits nothing");

    let reopened = store.reopen("alice", &t.id, now()).unwrap();
    assert_eq!(reopened.status, todo_domain::Status::Pending);
    assert_eq!(
        event_types(&outbox(&db)[mark..]),
        [
            "task-events:task_updated",
            "reminders:reminder_scheduled",
            "task-updates:task_updated"
        ]
    );

    let mark = outbox(&db).len();
    store.delete("alice", &t.id, now()).unwrap();
    let rows = outbox(&db);
    assert_eq!(
        event_types(&rows[mark..]),
        [
            "task-events:task_deleted",
            "reminders:reminder_cancelled",
            "task-updates:task_updated"
        ]
    );
    assert_eq!(rows[mark + 2].payload["update_data"]["change"], "deleted");
    assert_eq!(rows[mark + 2].payload["update_data"]["task"], Json::Null);
    assert!(store.get("alice", &t.id).unwrap().is_none());
}

fn reminders_in_the_past_are_not_scheduled(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    store
        .create(
            "alice",
            &patch(json!({"title": "late", "due_date": "2026-11-29T10:10:00Z", "remind_before_minutes": 60})),
            now(),
        )
        .unwrap();
    assert_eq!(
        event_types(&outbox(&db)),
        ["task-events:task_created", "task-updates:task_updated"]
    );
}

fn users_never_see_each_others_tasks(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let t = store
        .create("alice", &patch(json!({"title": "secret"})), now())
        .unwrap();
    assert!(store.get("bob", &t.id).unwrap().is_none());
    for result in [
        store.update("bob", &t.id, &patch(json!({"title": "mine"})), now()),
        store.complete("bob", &t.id, now()),
        store.delete("bob", &t.id, now()),
    ] {
        assert!(matches!(result, Err(DomainError::NotFound(_))));
    }
    let page = store.list("bob", &ListQuery::default(), now()).unwrap();
    assert!(page.tasks.is_empty());
    assert_eq!(store.require("alice", &t.id).unwrap().title, "secret");
}

/// A database that fails the statement matching `fail_on`, to prove a
/// change is all or nothing.
struct FailingDb {
    inner: TestDb,
    fail_on: &'static str,
    armed: Cell<bool>,
}

impl Sql for FailingDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        if self.armed.get() && sql.contains(self.fail_on) {
            return Err(DbError::new("disk on fire"));
        }
        self.inner.execute(sql, params)
    }

    fn dialect(&self) -> todo_domain::store::sql::Dialect {
        self.inner.dialect()
    }

    fn schema(&self) -> Option<&str> {
        self.inner.schema()
    }

    fn begin(&self) -> Result<(), DbError> {
        self.inner.begin()
    }
}

impl FailingDb {
    /// Fails statements starting with `fail_on` once armed.
    fn new(engine: Engine, fail_on: &'static str) -> FailingDb {
        FailingDb {
            inner: db(engine),
            fail_on,
            armed: Cell::new(false),
        }
    }
}

/// Alice's new task `title`, made in its own transaction.
fn created(db: &FailingDb, store: &TaskStore<'_>, title: &str) -> todo_domain::Task {
    transaction(db, || {
        store.create("alice", &patch(json!({ "title": title })), now())
    })
    .unwrap()
}

fn a_failed_outbox_write_leaves_neither_task_nor_event(engine: Engine) {
    let db = FailingDb::new(engine, "INSERT INTO outbox");
    let store = TaskStore::open(&db).unwrap();
    let kept = created(&db, &store, "kept");
    db.armed.set(true);
    let result = transaction(&db, || {
        store.create("alice", &patch(json!({"title": "lost"})), now())
    });
    assert!(matches!(result, Err(DomainError::Storage(_))));
    let result = transaction(&db, || {
        store.update(
            "alice",
            &kept.id,
            &patch(json!({"title": "changed"})),
            now(),
        )
    });
    assert!(result.is_err());
    db.armed.set(false);
    assert_eq!(count(&db, "tasks"), 1);
    assert_eq!(
        store.require("alice", &kept.id).unwrap().title,
        "kept",
        "the update rolled back"
    );
    assert_eq!(
        event_types(&outbox(&db)),
        ["task-events:task_created", "task-updates:task_updated"]
    );
}

fn a_failed_task_write_leaves_no_event(engine: Engine) {
    let db = FailingDb::new(engine, "DELETE FROM tasks");
    let store = TaskStore::open(&db).unwrap();
    let t = created(&db, &store, "x");
    let before = outbox(&db).len();
    db.armed.set(true);
    assert!(transaction(&db, || store.delete("alice", &t.id, now())).is_err());
    db.armed.set(false);
    assert_eq!(outbox(&db).len(), before);
    assert!(store.get("alice", &t.id).unwrap().is_some());
}

fn seed_tasks(store: &TaskStore<'_>) {
    let specs = [
        json!({"title": "Pay rent", "priority": "urgent", "due_date": "2026-12-01T09:00:00Z", "tags": ["home", "money"]}),
        json!({"title": "Buy milk", "priority": "low", "due_date": "2026-11-28T09:00:00Z", "tags": ["shopping"]}),
        json!({"title": "Write report", "description": "Q4 numbers, 100% done", "priority": "high", "due_date": "2026-12-05T09:00:00Z", "tags": ["work"]}),
        json!({"title": "Read book", "priority": "medium"}),
        json!({"title": "Fix sink", "priority": "high", "due_date": "2026-11-20T09:00:00Z", "tags": ["home"]}),
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        let created = now() + chrono::Duration::seconds(i as i64);
        store.create("alice", &patch(spec), created).unwrap();
    }
    let fix = list(store, &[("q", "sink")]).remove(0);
    store
        .complete("alice", &fix, now() + chrono::Duration::seconds(10))
        .unwrap();
}

fn query(pairs: &[(&str, &str)]) -> ListQuery {
    let pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ListQuery::from_pairs(&pairs).unwrap()
}

/// Ids of the listed tasks; titles via `titles`.
fn list(store: &TaskStore<'_>, pairs: &[(&str, &str)]) -> Vec<String> {
    store
        .list("alice", &query(pairs), now())
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn titles(store: &TaskStore<'_>, pairs: &[(&str, &str)]) -> Vec<String> {
    store
        .list("alice", &query(pairs), now())
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.title)
        .collect()
}

fn filters_and_sorts(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    seed_tasks(&store);
    assert_eq!(
        titles(&store, &[]),
        [
            "Fix sink",
            "Buy milk",
            "Pay rent",
            "Write report",
            "Read book"
        ],
        "due date ascending, undated last"
    );
    assert_eq!(
        titles(&store, &[("order", "desc")]),
        [
            "Write report",
            "Pay rent",
            "Buy milk",
            "Fix sink",
            "Read book"
        ],
        "undated last in both directions"
    );
    assert_eq!(titles(&store, &[("status", "completed")]), ["Fix sink"]);
    assert_eq!(
        titles(
            &store,
            &[("priority", "high,urgent"), ("status", "pending")]
        ),
        ["Pay rent", "Write report"]
    );
    assert_eq!(titles(&store, &[("tag", "home")]), ["Fix sink", "Pay rent"]);
    assert_eq!(
        titles(&store, &[("tag", "home"), ("tag", "money")]),
        ["Pay rent"]
    );
    assert_eq!(
        titles(&store, &[("overdue", "true")]),
        ["Buy milk"],
        "completed tasks are not overdue"
    );
    assert_eq!(
        titles(&store, &[("due_before", "2026-12-01")]),
        ["Fix sink", "Buy milk"]
    );
    assert_eq!(
        titles(&store, &[("due_after", "2026-12-01T09:00:00Z")]),
        ["Pay rent", "Write report"]
    );
    assert_eq!(titles(&store, &[("q", "REPORT")]), ["Write report"]);
    assert_eq!(
        titles(&store, &[("q", "100%")]),
        ["Write report"],
        "search in description, % literal"
    );
    assert_eq!(titles(&store, &[("q", "%")]), ["Write report"]);
    assert_eq!(
        titles(&store, &[("sort", "priority")]),
        [
            "Pay rent",
            "Fix sink",
            "Write report",
            "Read book",
            "Buy milk"
        ]
    );
    assert_eq!(
        titles(&store, &[("sort", "created_at"), ("order", "asc")]),
        [
            "Pay rent",
            "Buy milk",
            "Write report",
            "Read book",
            "Fix sink"
        ]
    );
    assert_eq!(
        titles(&store, &[("sort", "updated_at")])[0],
        "Fix sink",
        "last updated first"
    );
}

fn cursor_pagination_visits_every_task_once_in_every_order(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let priorities = ["low", "medium", "high", "urgent"];
    for i in 0..23 {
        let mut spec = json!({"title": format!("task {i}"), "priority": priorities[i % 4]});
        if i % 3 != 0 {
            spec["due_date"] = json!(time::format(
                &(at("2026-12-01T00:00:00Z") + chrono::Duration::hours((i % 5) as i64))
            ));
        }
        store
            .create(
                "alice",
                &patch(spec),
                now() + chrono::Duration::milliseconds(i as i64 % 4),
            )
            .unwrap();
    }
    for sort in ["due_date", "priority", "created_at", "updated_at"] {
        for order in ["asc", "desc"] {
            let all = list(
                &store,
                &[("sort", sort), ("order", order), ("limit", "100")],
            );
            assert_eq!(all.len(), 23);
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut pairs = vec![("sort", sort), ("order", order), ("limit", "4")];
                if let Some(c) = &cursor {
                    pairs.push(("cursor", c.as_str()));
                }
                let page = store.list("alice", &query(&pairs), now()).unwrap();
                seen.extend(page.tasks.iter().map(|t| t.id.clone()));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, all, "sort={sort} order={order}");
        }
    }
}

fn idempotency_keys_replay_and_refuse_a_different_request(engine: Engine) {
    let db = db(engine);
    TaskStore::open(&db).unwrap();
    let hash = idempotency::request_hash("POST", "/api/tasks", b"{\"title\":\"x\"}");
    assert_eq!(
        idempotency::lookup(&db, "alice", "k1", &hash, now()).unwrap(),
        idempotency::Lookup::Fresh
    );
    let response = idempotency::StoredResponse {
        status: 201,
        body: "{}".into(),
    };
    idempotency::remember(&db, "alice", "k1", &hash, &response, now()).unwrap();
    assert_eq!(
        idempotency::lookup(&db, "alice", "k1", &hash, now()).unwrap(),
        idempotency::Lookup::Replay(response)
    );
    assert_eq!(
        idempotency::lookup(&db, "bob", "k1", &hash, now()).unwrap(),
        idempotency::Lookup::Fresh
    );
    let other = idempotency::request_hash("POST", "/api/tasks", b"{\"title\":\"y\"}");
    let err = idempotency::lookup(&db, "alice", "k1", &other, now()).unwrap_err();
    assert_eq!(err.field(), Some("Idempotency-Key"));
    let later = now() + chrono::Duration::hours(25);
    assert_eq!(
        idempotency::lookup(&db, "alice", "k1", &hash, later).unwrap(),
        idempotency::Lookup::Fresh
    );
}

#[test]
fn migrations_are_idempotent_and_versioned() {
    let dir = std::env::temp_dir().join(format!("todo-domain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("migrate.db");
    let _ = std::fs::remove_file(&path);
    {
        let db = NativeDb::open(&path).unwrap();
        TaskStore::open(&db).unwrap();
        TaskStore::open(&db).unwrap();
        assert_eq!(
            migrations::current_version(&db).unwrap(),
            migrations::TASKS_DB.sqlite.last().unwrap().version
        );
    }
    let db = NativeDb::open(&path).unwrap();
    let store = TaskStore::open(&db).unwrap();
    store
        .create("alice", &patch(json!({"title": "survives reopen"})), now())
        .unwrap();
    assert_eq!(count(&db, "tasks"), 1);
    std::fs::remove_dir_all(&dir).ok();
}

fn a_series_occurrence_is_inserted_at_most_once(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let first = store
        .create("alice", &patch(json!({"title": "Standup", "due_date": "2026-11-30T09:00:00Z", "recurrence_pattern": "daily"})), now())
        .unwrap();
    let mut next = first.clone();
    next.id = todo_domain::store::new_id();
    next.occurrence = 2;
    next.due_date = Some(at("2026-12-01T09:00:00Z"));
    assert!(store
        .insert_occurrence(&next, now(), "system:recurring")
        .unwrap());
    let mut duplicate = next.clone();
    duplicate.id = todo_domain::store::new_id();
    assert!(!store
        .insert_occurrence(&duplicate, now(), "system:recurring")
        .unwrap());
    assert_eq!(count(&db, "tasks"), 2);
}

fn sharing_lets_another_user_see_and_change_but_not_delete_or_reshare(engine: Engine) {
    let db = db(engine);
    let store = TaskStore::open(&db).unwrap();
    let t = store
        .create("alice", &patch(json!({"title": "Plan trip"})), now())
        .unwrap();
    assert!(store.get("bob", &t.id).unwrap().is_none());
    let mark = outbox(&db).len();
    let shared = store.share("alice", &t.id, "bob", now()).unwrap();
    assert_eq!(shared.shared_with, vec!["bob"]);
    assert_eq!(
        store.share("alice", &t.id, "bob", now()).unwrap(),
        shared,
        "sharing twice changes nothing"
    );
    let rows = outbox(&db);
    assert_eq!(
        event_types(&rows[mark..]),
        ["task-events:task_updated", "task-updates:task_shared"]
    );
    assert_eq!(
        rows[mark + 1].payload["update_data"]["audience"],
        json!(["alice", "bob"])
    );
    assert_eq!(
        rows[mark]
            .headers
            .iter()
            .find(|(k, _)| k == "ce_actor")
            .unwrap()
            .1,
        "alice"
    );

    // Bob sees it in his list and may change it; the change is his.
    assert_eq!(
        store
            .list("bob", &ListQuery::default(), now())
            .unwrap()
            .tasks
            .len(),
        1
    );
    let mark = outbox(&db).len();
    store
        .update("bob", &t.id, &patch(json!({"priority": "high"})), now())
        .unwrap();
    let rows = outbox(&db);
    assert_eq!(
        rows[mark]
            .headers
            .iter()
            .find(|(k, _)| k == "ce_actor")
            .unwrap()
            .1,
        "bob"
    );
    assert_eq!(rows[mark].key, "alice", "events stay keyed by the owner");
    assert!(matches!(
        store.delete("bob", &t.id, now()),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        store.share("bob", &t.id, "carol", now()),
        Err(DomainError::Forbidden(_))
    ));

    // Assigning carol shares it with her too.
    let mark = outbox(&db).len();
    let assigned = store.assign("alice", &t.id, Some("carol"), now()).unwrap();
    assert_eq!(
        (assigned.assignee.as_deref(), assigned.shared_with.clone()),
        (Some("carol"), vec!["bob".to_owned(), "carol".to_owned()])
    );
    assert_eq!(
        event_types(&outbox(&db)[mark..]),
        ["task-events:task_updated", "task-updates:task_shared"]
    );
    let reassigned = store.assign("alice", &t.id, Some("bob"), now()).unwrap();
    assert_eq!(reassigned.assignee.as_deref(), Some("bob"));
    assert_eq!(
        event_types(&outbox(&db)[outbox(&db).len() - 1..]),
        ["task-updates:task_assigned"]
    );

    // Unsharing removes access and the assignment; the removed user hears of it.
    let mark = outbox(&db).len();
    let unshared = store.unshare("alice", &t.id, "bob", now()).unwrap();
    assert_eq!(
        (unshared.assignee.clone(), unshared.shared_with.clone()),
        (None, vec!["carol".to_owned()])
    );
    assert!(store.get("bob", &t.id).unwrap().is_none());
    let rows = outbox(&db);
    assert_eq!(
        rows[rows.len() - 1].payload["update_data"]["audience"],
        json!(["alice", "bob", "carol"])
    );
    assert!(rows.len() > mark);
    store.delete("alice", &t.id, now()).unwrap();
    assert_eq!(count(&db, "task_shares"), 0);
}

/// A list reads only the caller's rows: their own in order from a per-user
/// index (no scan, no sort of the table), merged with what is shared with
/// them; whatever the sort, direction, filters or cursor.
#[test]
fn every_list_reads_the_callers_rows_in_index_order() {
    let db = db(Engine::Sqlite);
    let store = TaskStore::open(&db).unwrap();
    let first = store
        .create("alice", &patch(json!({"title": "a"})), now())
        .unwrap();
    let cursor_for = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let query = ListQuery::from_pairs(&pairs).unwrap();
        let page = store.list("alice", &query, now()).unwrap();
        assert_eq!(page.tasks.len(), 1);
        todo_domain::store::query::Cursor {
            key: 0,
            id: first.id.clone(),
        }
        .encode()
    };
    for sort in ["due_date", "priority", "created_at", "updated_at"] {
        for order in ["asc", "desc"] {
            let cursor = cursor_for(&[("sort", sort), ("order", order)]);
            let pairs: Vec<(String, String)> = [
                ("sort", sort),
                ("order", order),
                ("status", "pending,in_progress"),
                ("tag", "home"),
                ("q", "rent"),
                ("cursor", cursor.as_str()),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let query = ListQuery::from_pairs(&pairs).unwrap();
            let plan = store.list_plan("alice", &query, now()).unwrap();
            let text = plan.join("\n");
            assert!(!text.contains("SCAN tasks"), "{sort} {order}:\n{text}");
            let left = plan.iter().position(|l| l == "LEFT").expect(&text);
            let right = plan.iter().position(|l| l == "RIGHT").expect(&text);
            let own = &plan[left..right];
            assert!(
                own.iter()
                    .any(|l| l.starts_with("SEARCH tasks USING INDEX tasks_user_")),
                "{sort} {order}: own tasks by a per-user index:\n{text}"
            );
            assert!(
                !own.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sort} {order}: own tasks already in order:\n{text}"
            );
        }
    }
}

/// The ids in the batch tests' table `t`, in order.
fn ids_in_t(db: &dyn Sql) -> Vec<i64> {
    db.execute("SELECT id FROM t ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.i64("id").unwrap())
        .collect()
}

/// A batch is one transaction with a savepoint per item: the first item
/// that fails is rolled back alone (its own nested transactions too), the
/// items before it are committed, and its index comes back; nothing after
/// it runs.
fn a_batch_commits_what_came_before_the_first_failure(engine: Engine) {
    use todo_domain::store::sql::batch;
    let db = db(engine);
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, note TEXT)", &[])
        .unwrap();
    let mut ran = Vec::new();
    let result = batch(&db, [1i64, 2, 3, 4, 5], |db, n| -> Result<(), DbError> {
        ran.push(n);
        // Each item writes through its own transaction, as the stores do.
        transaction(db, || {
            db.execute(
                "INSERT INTO t (id, note) VALUES (?, 'in')",
                &[Value::Integer(n)],
            )?;
            if n == 4 {
                return Err(DbError::new("item 4 is poison"));
            }
            Ok(())
        })
    });
    let (index, error) = result.unwrap_err();
    assert_eq!((index, error.message.as_str()), (3, "item 4 is poison"));
    assert_eq!(ran, [1, 2, 3, 4], "nothing after the failure runs");
    let ids = ids_in_t(&db);
    assert_eq!(ids, [1, 2, 3], "before it committed, it rolled back");
    // The connection is usable again, outside any transaction.
    transaction(&db, || {
        db.execute("INSERT INTO t VALUES (9, 'after')", &[])
            .map(drop)
    })
    .unwrap();
    assert!(batch(&db, [6i64, 7], |db, n| db
        .execute("INSERT INTO t (id) VALUES (?)", &[Value::Integer(n)])
        .map(drop))
    .is_ok());
    assert_eq!(
        db.execute("SELECT COUNT(*) AS n FROM t", &[])
            .unwrap()
            .first()
            .unwrap()
            .i64("n")
            .unwrap(),
        6
    );
}

/// An item whose own transaction fails, but which answers success anyway,
/// is undone and reported, and what came before it is kept. (Items share
/// the batch's savepoint, so on Postgres its failed statement has aborted
/// the transaction; committing would drop the whole batch in silence.)
fn a_batch_item_that_swallows_its_failed_write_is_undone_and_reported(engine: Engine) {
    use todo_domain::store::sql::batch;
    let db = db(engine);
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)", &[])
        .unwrap();
    let result = batch(&db, [1i64, 2, 3], |db, n| -> Result<(), DbError> {
        let insert = |id: i64| {
            db.execute("INSERT INTO t (id) VALUES (?)", &[Value::Integer(id)])
                .map(drop)
        };
        if n == 2 {
            // 2 goes in, then 1 again: a key violation, ignored.
            let _ = transaction(db, || insert(2).and_then(|()| insert(1)));
            return Ok(());
        }
        transaction(db, || insert(n))
    });
    let (index, error) = result.unwrap_err();
    assert_eq!(index, 1, "{error}");
    assert!(error.busy, "retried, not dead-lettered: {error}");
    let ids = ids_in_t(&db);
    assert_eq!(ids, [1], "the item before it kept, the item undone");
}

/// On Postgres the store makes its schema once, whoever comes first, and
/// a second connection (another replica) finds it current.
#[test]
fn the_postgres_schema_is_made_once_and_versioned() {
    let server = Postgres::start();
    let url = server.url("postgres");
    let first = NativePg::connect(&url, "default").unwrap();
    let second = NativePg::connect(&url, "default").unwrap();
    TaskStore::open(&first).unwrap();
    TaskStore::open(&second).unwrap();
    assert_eq!(
        migrations::current_version(&second).unwrap(),
        migrations::TASKS_DB.postgres.last().unwrap().version
    );
    let tables = server.psql(
        "postgres",
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'todo_default'",
    );
    assert_eq!(
        tables.trim(),
        "idempotency_keys,outbox,schema_version,stream_leases,task_shares,tasks,user_settings"
    );
    TaskStore::open(&second)
        .unwrap()
        .create("alice", &patch(json!({"title": "seen by both"})), now())
        .unwrap();
    assert_eq!(count(&first, "tasks"), 1);
}

on_both_engines!(
    create_writes_the_task_and_its_events_in_the_seed_schemas,
    lifecycle_events_complete_reopen_reschedule_delete,
    reminders_in_the_past_are_not_scheduled,
    users_never_see_each_others_tasks,
    filters_and_sorts,
    cursor_pagination_visits_every_task_once_in_every_order,
    idempotency_keys_replay_and_refuse_a_different_request,
    a_series_occurrence_is_inserted_at_most_once,
    sharing_lets_another_user_see_and_change_but_not_delete_or_reshare,
    a_failed_outbox_write_leaves_neither_task_nor_event,
    a_failed_task_write_leaves_no_event,
    a_batch_commits_what_came_before_the_first_failure,
    a_batch_item_that_swallows_its_failed_write_is_undone_and_reported,
);

/// Four replicas creating one user's tasks at once, each on its own
/// connection: the quota holds exactly, because every write transaction
/// takes the store's lock first (without it both would count the same
/// rows and insert past the limit).
#[test]
fn a_quota_holds_across_connections_writing_at_once() {
    quota_across_connections(|db, f| transaction(db, f));
}

/// The same with the API's per-owner locks (`transaction_for`).
#[test]
fn a_quota_holds_across_connections_locking_only_the_owner() {
    quota_across_connections(|db, f| transaction_for(db, &["alice"], f));
}

/// Two per-owner writers for different owners go on side by side; one for
/// an owner already locked waits, and so does a writer of the whole store
/// (a plain `begin`) while any owner is locked. Waits here give up after
/// 200 ms (`lock_timeout`) and say the store is busy.
#[test]
fn owner_locks_leave_other_owners_free_and_hold_off_whole_store_writes() {
    let server = Postgres::start();
    let url = server.url("postgres");
    let holder = NativePg::connect(&url, "default").unwrap();
    TaskStore::open(&holder).unwrap();
    let other = NativePg::connect(&url, "default").unwrap();
    for db in [&holder, &other] {
        db.execute("SET lock_timeout = '200ms'", &[]).unwrap();
    }
    holder.begin_for(&["alice", "bob"]).unwrap();
    other.begin_for(&["carol"]).unwrap();
    other.commit().unwrap();
    let waited = other.begin_for(&["dave", "bob"]).unwrap_err();
    assert!(waited.busy, "{waited}");
    other.rollback();
    let waited = other.begin().unwrap_err();
    assert!(waited.busy, "{waited}");
    other.rollback();
    holder.commit().unwrap();
    other.begin_for(&["bob"]).unwrap();
    other.commit().unwrap();
    other.begin().unwrap();
    // And a whole-store writer holds off every owner's.
    let waited = holder.begin_for(&["erin"]).unwrap_err();
    assert!(waited.busy, "{waited}");
    holder.rollback();
    other.commit().unwrap();
}

/// How a quota test runs one create in a transaction.
type Created = Result<todo_domain::Task, DomainError>;
type Write = fn(&NativePg, &mut dyn FnMut() -> Created) -> Created;

fn quota_across_connections(write: Write) {
    use todo_domain::store::Limits;
    let server = Postgres::start();
    let url = server.url("postgres");
    TaskStore::open(&NativePg::connect(&url, "default").unwrap()).unwrap();
    let limits = Limits {
        tasks_per_user: 20,
        ..Limits::default()
    };
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let db = NativePg::connect(&url, "default").unwrap();
                let store = TaskStore::open(&db).unwrap().with_limits(limits);
                let mut made = 0;
                for i in 0..20 {
                    let title = format!("task {i}");
                    match write(&db, &mut || {
                        store.create("alice", &patch(json!({ "title": title })), now())
                    }) {
                        Ok(_) => made += 1,
                        Err(DomainError::QuotaExceeded { .. }) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
                made
            })
        })
        .collect();
    let made: i32 = replicas.into_iter().map(|r| r.join().unwrap()).sum();
    let db = NativePg::connect(&url, "default").unwrap();
    assert_eq!((made, count(&db, "tasks")), (20, 20));
}
