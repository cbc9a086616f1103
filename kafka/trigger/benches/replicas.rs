//! Scale-out on one machine: the shipped app as 1, 2 and 3 `trigger-kafka
//! up` replicas on one Postgres, against one replica on SQLite, each on a
//! fresh broker and store in the same run:
//!
//! - HTTP writes/s: `POST /api/tasks` from 8 clients (10 users), spread
//!   round the replicas, as fast as they are taken;
//! - the pipeline's drain: from the first write until every outbox is
//!   empty and every consumer group has committed every event.
//!
//! - where the CPU went meanwhile: the hosts, Postgres (its server and
//!   every backend), tansu.
//!
//! Two shapes of replica: the whole app in every process (what `spin up`
//! of the manifest runs), and the split `deploy/scale-out/` runs: API
//! processes that run only `api` (`--component-id api`) beside one process
//! for the event services, so only the API is replicated.
//!
//! Ratios are against SQLite × 1 and Postgres × 1 of the same run. Run it
//! with `cargo bench --workspace --features todo-domain/native --bench
//! replicas`; `REPLICAS_WRITES` sets the burst (10,000), `REPLICAS_RUN` the
//! configurations (e.g. `split1,split3`; all seven by default) and
//! `REPLICAS_ROUNDS` how many times to run them, interleaved (1): with
//! more, every figure is the median and every ratio is paired within a
//! round, so a machine that slows down meanwhile does not skew it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use test_servers::postgres::Postgres;

const CLIENTS: usize = 8;

struct Outcome {
    label: String,
    split: bool,
    writes_per_s: f64,
    drained: Duration,
    /// CPU seconds of the hosts, Postgres and tansu during the burst.
    cpu: [f64; 3],
}

/// CPU a process and its children (running or reaped) have used, in
/// seconds: utime, stime, cutime and cstime of each.
fn tree_cpu(root: u32) -> f64 {
    let fields = |pid: &str| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        Some(
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect(),
        )
    };
    // After the name: state is [0], ppid [1], utime [11] … cstime [14].
    let own = |f: &[u64], children: bool| f[11] + f[12] + if children { f[13] + f[14] } else { 0 };
    let mut ticks = fields(&root.to_string()).map_or(0, |f| own(&f, true));
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(f) = name
            .chars()
            .all(|c| c.is_ascii_digit())
            .then(|| fields(&name))
            .flatten()
        {
            if f[1] == u64::from(root) {
                ticks += own(&f, false);
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// Outbox rows not yet published, in whichever store the app runs on.
fn unsent_rows(postgres: Option<&Postgres>, dirs: &[TempDir]) -> i64 {
    match postgres {
        Some(pg) => pg
            .try_psql(
                "postgres",
                "SELECT (SELECT COUNT(*) FROM todo_default.outbox WHERE sent_ms IS NULL)
                      + (SELECT COUNT(*) FROM todo_reminders.outbox WHERE sent_ms IS NULL)",
            )
            .and_then(|out| out.trim().parse().ok())
            .unwrap_or(i64::MAX),
        None => unsent(&[
            &dirs[0].0.join(".spin/sqlite_db.db"),
            &dirs[0].0.join(".spin/reminders.db"),
        ]),
    }
}

/// One write, which must succeed.
fn post(port: u16, user: &str, i: usize) {
    let body = json!({"title": format!("burst {i}"), "tags": ["burst"], "priority": "high"});
    let (status, text) = http(
        port,
        "POST",
        "/api/tasks",
        &[("x-user-id", user), ("content-type", "application/json")],
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{text}");
}

/// The event services' components: everything but the API.
const EVENT_SERVICES: [&str; 5] = ["reminder", "notifier", "recurring", "audit", "sync"];

/// `replicas` processes running the whole app, or (`split`) `replicas`
/// API-only processes and one for the event services.
fn start(
    name: &str,
    replicas: usize,
    split: bool,
    env: &[(&str, &str)],
) -> (Vec<TempDir>, Vec<Host>, usize) {
    if !split {
        let (dirs, hosts) = start_replicas(name, replicas, env);
        return (dirs, hosts, replicas);
    }
    let mut dirs = Vec::new();
    let mut hosts = Vec::new();
    let roles = (0..replicas)
        .map(|_| vec!["api"])
        .chain(std::iter::once(EVENT_SERVICES.to_vec()));
    for (i, components) in roles.enumerate() {
        let dir = TempDir::new(&format!("{name}-split{i}"));
        write_shipped_app(&dir.0);
        let mut args = vec!["--runtime-config-file", "runtime-config.toml"];
        for c in components {
            args.extend(["--component-id", c]);
        }
        hosts.push(Host::start_with_args(&dir.0, env, &args));
        dirs.push(dir);
    }
    (dirs, hosts, replicas)
}

fn run(replicas: usize, on_postgres: bool, split: bool, writes: usize) -> Outcome {
    let postgres = on_postgres.then(Postgres::start);
    let broker = Broker::start();
    broker.apply_project_topics();
    let brokers = broker.address();
    let store = postgres.as_ref().map(postgres_variables);
    let mut env = vec![
        ("SPIN_VARIABLE_KAFKA_BROKERS", brokers.as_str()),
        ("SPIN_VARIABLE_DEV_AUTH", "true"),
        ("SPIN_VARIABLE_MAX_TASKS_PER_USER", "1000000"),
        ("TRIGGER_KAFKA_LOG", "info"),
    ];
    env.extend(store.iter().flatten().map(|(k, v)| (*k, v.as_str())));
    let (dirs, hosts, serving) = start("bench-replica", replicas, split, &env);
    let ports: Vec<u16> = hosts[..serving].iter().map(|h| h.http_port).collect();
    // Warm up: every replica answers, every group has joined.
    for (i, port) in ports.iter().enumerate() {
        post(*port, "warmup", i);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while !all_groups_caught_up(&broker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }

    let postmaster: Option<u32> = postgres.as_ref().map(|pg| {
        std::fs::read_to_string(pg.data_dir().join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    });
    let cpu_now = || {
        [
            hosts.iter().map(|h| tree_cpu(h.pid())).sum::<f64>(),
            postmaster.map_or(0.0, tree_cpu),
            tree_cpu(broker.pid()),
        ]
    };
    let cpu_before = cpu_now();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (next, ports) = (next.clone(), ports.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= writes {
                    break;
                }
                post(
                    ports[(i + c) % ports.len()],
                    &format!("burst-{}", i % 10),
                    i,
                );
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let write_phase = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while unsent_rows(postgres.as_ref(), &dirs) > 0 || !all_groups_caught_up(&broker) {
        assert!(Instant::now() < deadline, "not drained after 10 minutes");
        std::thread::sleep(Duration::from_millis(250));
    }
    let drained = started.elapsed();
    let cpu_after = cpu_now();
    drop(hosts);
    Outcome {
        split,
        label: format!(
            "{} × {replicas}{}",
            if on_postgres { "Postgres" } else { "SQLite" },
            if split { " API + events" } else { "" }
        ),
        writes_per_s: writes as f64 / write_phase.as_secs_f64(),
        drained,
        cpu: [0, 1, 2].map(|i| cpu_after[i] - cpu_before[i]),
    }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

fn main() {
    let writes: usize = std::env::var("REPLICAS_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // `REPLICAS_RUN` picks configurations by name (sqlite1, whole1..3,
    // split1..3), to profile one without waiting for all seven.
    let only = std::env::var("REPLICAS_RUN").ok();
    // `REPLICAS_ROUNDS` runs them all that many times over, interleaved, so
    // a ratio is taken between runs minutes apart, and its median reported.
    let rounds: usize = std::env::var("REPLICAS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let configs: Vec<(usize, bool, bool)> = [
        ("sqlite1", 1, false, false),
        ("whole1", 1, true, false),
        ("whole2", 2, true, false),
        ("whole3", 3, true, false),
        ("split1", 1, true, true),
        ("split2", 2, true, true),
        ("split3", 3, true, true),
    ]
    .into_iter()
    .filter(|(name, ..)| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == *name))
    })
    .map(|(_, replicas, on_postgres, split)| (replicas, on_postgres, split))
    .collect();
    // by_round[r][c]: configuration c in round r.
    let by_round: Vec<Vec<Outcome>> = (0..rounds)
        .map(|_| {
            configs
                .iter()
                .map(|&(replicas, on_postgres, split)| run(replicas, on_postgres, split, writes))
                .collect()
        })
        .collect();
    let labels: Vec<&str> = by_round[0].iter().map(|o| o.label.as_str()).collect();
    let column = |label: &str| labels.iter().position(|l| *l == label);
    let sqlite = column("SQLite × 1");
    let (whole1, split1) = (column("Postgres × 1"), column("Postgres × 1 API + events"));
    // The median over the rounds of a per-round figure of configuration c.
    let mid =
        |c: usize, f: &dyn Fn(&Outcome) -> f64| median(by_round.iter().map(|r| f(&r[c])).collect());
    // Ratios are paired: each round's figure over the same round's baseline.
    let ratio = |c: usize, base: Option<usize>, f: &dyn Fn(&Outcome) -> f64| {
        base.map_or("—".to_owned(), |b| {
            let each: Vec<f64> = by_round.iter().map(|r| f(&r[c]) / f(&r[b])).collect();
            let (lo, hi) = each
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            if rounds == 1 {
                format!("{:.2}x", each[0])
            } else {
                format!("{:.2}x ({lo:.2}–{hi:.2})", median(each))
            }
        })
    };
    let per_s = |o: &Outcome| o.writes_per_s;
    let drain = |o: &Outcome| o.drained.as_secs_f64();
    println!(
        "{writes} API writes ({CLIENTS} clients, 10 users) spread over the replicas, tansu, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if rounds > 1 {
        println!("  medians of {rounds} rounds; a ratio's range across the rounds in brackets");
    }
    println!("  store × replicas              writes/s  vs SQLite×1  vs Postgres×1  drained (s)  vs SQLite×1");
    for (c, o) in by_round[0].iter().enumerate() {
        let same_shape = if o.split { split1 } else { whole1 };
        println!(
            "  {:<28} {:>9.0} {:>12} {:>14} {:>12.1} {:>12}",
            o.label,
            mid(c, &per_s),
            ratio(c, sqlite, &per_s),
            ratio(c, same_shape, &per_s),
            mid(c, &drain),
            ratio(c, sqlite, &drain),
        );
    }
    println!("  CPU seconds per 1000 writes, burst to drained: hosts, Postgres, tansu");
    for (c, o) in by_round[0].iter().enumerate() {
        let per = |i: usize| mid(c, &|o: &Outcome| o.cpu[i] * 1000.0 / writes as f64);
        println!(
            "  {:<28} {:>6.2} {:>6.2} {:>6.2}  total {:.2}",
            o.label,
            per(0),
            per(1),
            per(2),
            per(0) + per(1) + per(2)
        );
    }
}
