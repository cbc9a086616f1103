//! Does a user's list cost the same whatever other tenants hold? The same
//! user's 100 tasks, listed (20 per page) from a database holding only them
//! and from one holding 1,000,000 tasks of 10,000 users, on real SQLite
//! files; p50 and p99 of each, and their ratio.
//!
//!     cargo bench --workspace --features todo-domain/native --bench list
//!     LIST_BENCH_TASKS=200000 cargo bench ...   # a smaller crowd

use std::time::{Duration, Instant};

use todo_domain::store::native::NativeDb;
use todo_domain::time;
use todo_domain::{ListQuery, TaskPatch, TaskStore};

const USER: &str = "bench-user";

fn fill(db: &NativeDb, crowd: usize, users: usize) {
    let store = TaskStore::open(db).unwrap();
    let now = time::parse("now", "2026-11-29T10:00:00Z").unwrap();
    // The measured user's tasks go through the store, like the API's.
    for i in 0..100 {
        let priority = ["low", "medium", "high", "urgent"][i % 4];
        let patch = TaskPatch::from_json(
            serde_json::json!({
                "title": format!("task {i}"),
                "priority": priority,
                "due_date": format!("2027-01-{:02}T09:00:00Z", 1 + i % 28),
                "tags": [format!("t{}", i % 5)],
            })
            .as_object()
            .unwrap(),
        )
        .unwrap();
        store.create(USER, &patch, now).unwrap();
    }
    if crowd == 0 {
        return;
    }
    // The crowd: bulk rows in the same table (the store's events and outbox
    // are not what is measured).
    let conn = db.connection();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO tasks (id, user_id, title, description, status, priority, priority_rank, \
                 due_ms, tags, notification_type, occurrence, created_ms, updated_ms, version) \
                 VALUES (?1, ?2, ?3, '', 'pending', 'medium', 2, ?4, '[]', 'in_app', 1, ?5, ?5, 1)",
            )
            .unwrap();
        let base = time::to_millis(&now);
        for i in 0..crowd {
            let user = format!("user-{:05}", i % users);
            let id = format!("{:08x}-crowd-{i}", i);
            let due = if i % 3 == 0 {
                None
            } else {
                Some(base + (i as i64 % 86_400_000))
            };
            insert
                .execute(rusqlite::params![
                    id,
                    user,
                    format!("crowd {i}"),
                    due,
                    base + i as i64
                ])
                .unwrap();
        }
    }
    conn.execute_batch("COMMIT;").unwrap();
    // As a long-running server's database would be: the bulk load checkpointed
    // (and, like the app, no ANALYZE).
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(db: &NativeDb, pairs: &[(&str, &str)], rounds: usize) -> (Duration, Duration) {
    let store = TaskStore::open(db).unwrap();
    let now = time::parse("now", "2026-11-29T10:00:00Z").unwrap();
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let query = ListQuery::from_pairs(&pairs).unwrap();
    for _ in 0..200 {
        assert_eq!(
            store.list(USER, &query, now).unwrap().tasks.len().min(20),
            query.limit.min(20) as usize
        );
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let page = store.list(USER, &query, now).unwrap();
            std::hint::black_box(page);
            started.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn main() {
    let crowd: usize = std::env::var("LIST_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let users = 10_000;
    let dir = std::env::temp_dir().join(format!("list-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = NativeDb::open(&dir.join("small.db")).unwrap();
    fill(&small, 0, users);
    let started = Instant::now();
    let big = NativeDb::open(&dir.join("big.db")).unwrap();
    fill(&big, crowd, users);
    eprintln!(
        "filled {crowd} crowd tasks over {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "list of one user's 100 tasks, 20 per page: 100-task database vs {crowd}-task database"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "query", "p50 small", "p99 small", "p50 big", "p99 big", "p99 x"
    );
    for (name, pairs) in [
        ("default (due date)", vec![]),
        ("sort=priority", vec![("sort", "priority")]),
        (
            "sort=created_at&status=pending",
            vec![("sort", "created_at"), ("status", "pending")],
        ),
        ("tag=t1", vec![("tag", "t1")]),
    ] {
        // Interleaved, so machine noise falls on both alike.
        let mut small_runs = Vec::new();
        let mut big_runs = Vec::new();
        for _ in 0..3 {
            small_runs.push(measure(&small, &pairs, 1000));
            big_runs.push(measure(&big, &pairs, 1000));
        }
        let best = |runs: &[(Duration, Duration)]| {
            let p50 = runs.iter().map(|r| r.0).min().unwrap();
            let p99 = runs.iter().map(|r| r.1).min().unwrap();
            (p50, p99)
        };
        if std::env::var_os("LIST_BENCH_PLAN").is_some() {
            let query = ListQuery::from_pairs(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let now = time::parse("now", "2026-11-29T10:00:00Z").unwrap();
            for (label, db) in [("small", &small), ("big", &big)] {
                let plan = TaskStore::open(db)
                    .unwrap()
                    .list_plan(USER, &query, now)
                    .unwrap();
                eprintln!("{name} {label}:\n  {}", plan.join("\n  "));
            }
        }
        let (s50, s99) = best(&small_runs);
        let (b50, b99) = best(&big_runs);
        println!(
            "{:<34} {:>8.0}µs {:>8.0}µs {:>8.0}µs {:>8.0}µs {:>6.2}x",
            name,
            s50.as_secs_f64() * 1e6,
            s99.as_secs_f64() * 1e6,
            b50.as_secs_f64() * 1e6,
            b99.as_secs_f64() * 1e6,
            b99.as_secs_f64() / s99.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
