//! The HTTP edge of the shipped app, tried as an attacker would, through
//! the real host over a socket: forged identities, slow and idle clients,
//! too many connections, huge bodies, unbounded lists, unicode in parsers,
//! reserved identities, and the smaller holes. Waits are bounded; nothing
//! asserts on how long something took.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::*;

const SECRET: &str = "edge-secret";

struct Edge {
    dir: TempDir,
    _broker: Broker,
    host: Host,
}

impl Edge {
    /// The shipped app under `trigger-kafka up` with `variables` set and
    /// extra host flags.
    fn start(variables: &[(&str, &str)], flags: &[&str]) -> Edge {
        let broker = Broker::start();
        broker.apply_project_topics();
        let dir = TempDir::new("edge");
        write_shipped_app(&dir.0);
        let brokers = broker.address();
        let mut env = vec![("SPIN_VARIABLE_KAFKA_BROKERS", brokers.as_str())];
        env.extend_from_slice(variables);
        let mut args = vec!["--runtime-config-file", "runtime-config.toml"];
        args.extend_from_slice(flags);
        let host = Host::start_with_args(&dir.0, &env, &args);
        Edge {
            dir,
            _broker: broker,
            host,
        }
    }

    fn tokens() -> Edge {
        Self::start(&[("SPIN_VARIABLE_JWT_SECRET", SECRET)], &[])
    }

    fn as_user(&self, user: &str, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let token = format!("Bearer {}", jwt(user, SECRET.as_bytes(), json!({})));
        let text = body.map(|b| b.to_string());
        let (status, body) = self.host.http(
            method,
            path,
            &[
                ("authorization", &token),
                ("content-type", "application/json"),
            ],
            text.as_deref(),
        );
        (
            status,
            serde_json::from_str(&body).unwrap_or(Json::String(body)),
        )
    }

    fn mcp(&self, user: &str, tool: &str, arguments: Json) -> Json {
        let (status, body) = self.as_user(
            user,
            "POST",
            "/mcp",
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": tool, "arguments": arguments}})),
        );
        assert_eq!(status, 200, "{body}");
        body["result"].clone()
    }
}

/// Every series starts at 0; none may have counted.
#[track_caller]
fn assert_nothing_dead_lettered(metrics: &str) {
    assert!(
        metrics
            .lines()
            .filter(|l| l.contains("outcome=\"dead_lettered\""))
            .all(|l| l.ends_with(" 0")),
        "no event was dead-lettered for lack of instances:\n{metrics}"
    );
}

#[track_caller]
fn assert_error(status: u16, body: &Json, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

fn status_and_json(response: &str) -> (u16, Json) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

/// Item 1: A header names nobody while tokens are configured; development mode
/// (no token key) is loud, and answers only requests addressed to this
/// machine.
#[test]
fn a_user_id_header_never_overrides_tokens() {
    let edge = Edge::start(
        &[
            ("SPIN_VARIABLE_DEV_AUTH", "true"),
            ("SPIN_VARIABLE_JWT_SECRET", SECRET),
        ],
        &[],
    );
    let (status, _) = edge.as_user(
        "victim",
        "POST",
        "/api/tasks",
        Some(json!({"title": "mine"})),
    );
    assert_eq!(status, 201);
    let (status, body) = edge
        .host
        .http("GET", "/api/tasks", &[("x-user-id", "victim")], None);
    let body: Json = serde_json::from_str(&body).unwrap();
    assert_error(status, &body, 401, "unauthorized");
    assert!(edge
        .host
        .logs()
        .contains("dev_auth is on but jwt_secret is set"));

    let dev = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    assert!(
        dev.host.logs().contains("DEVELOPMENT MODE"),
        "a loud warning"
    );
    let ok = dev
        .host
        .http("GET", "/api/tasks", &[("x-user-id", "alice")], None);
    assert_eq!(ok.0, 200, "{}", ok.1);
    // A page on another origin that points its own name at 127.0.0.1.
    let rebound = raw_http(
        dev.host.http_port,
        b"GET /api/tasks HTTP/1.1\r\nhost: evil.example:3000\r\nx-user-id: alice\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let (status, body) = status_and_json(&rebound);
    assert_error(status, &body, 403, "host_not_allowed");
    // Every route passes the same gate, the event stream included (it was
    // dispatched before the Host check and streamed the victim's feed).
    for path in [
        "/api/events",
        "/api/events?wait=1",
        "/api/sync?wait=0",
        "/mcp",
    ] {
        let method = if path == "/mcp" { "POST" } else { "GET" };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: evil.example\r\nx-user-id: alice\r\naccept: text/event-stream\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        let rebound = raw_http(
            dev.host.http_port,
            request.as_bytes(),
            Duration::from_secs(10),
        );
        let (status, body) = status_and_json(&rebound);
        assert_error(status, &body, 403, "host_not_allowed");
    }
}

/// Item 2: Slow and idle clients are cut off; too many connections get a 503;
/// HTTP can hold only its share of instances, so reminders and Kafka
/// handlers keep working while HTTP is saturated.
#[test]
fn slow_idle_and_many_clients_cannot_stall_the_server() {
    let edge = Edge::start(
        &[("SPIN_VARIABLE_DEV_AUTH", "true")],
        &[
            "--max-connections",
            "40",
            "--header-timeout-secs",
            "2",
            "--body-timeout-secs",
            "2",
            "--max-instances",
            "80",
        ],
    );
    let port = edge.host.http_port;
    // A body that never finishes: 408, and the connection is freed.
    let slow = raw_http(
        port,
        b"POST /api/tasks HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: a\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"title\":",
        Duration::from_secs(20),
    );
    let (status, body) = status_and_json(&slow);
    assert_error(status, &body, 408, "request_timeout");
    // A connection that never sends a head is closed.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(idle.read(&mut buf), Ok(0)),
        "the idle connection was closed by the server"
    );
    // More connections than allowed: the one past the limit is answered 503.
    let held: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = raw_http(
        port,
        b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(10),
    );
    let (status, body) = status_and_json(&refused);
    assert_error(status, &body, 503, "overloaded");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"));
    drop(held);
    wait_for(
        "connections to be served again",
        Duration::from_secs(20),
        || (edge.host.http("GET", "/healthz", &[], None).0 == 200).then_some(()),
    );

    // Saturate HTTP's share of instances (80 minus the triggers' 65) with
    // long-polls while a reminder comes due.
    let due = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = edge.host.http(
        "POST",
        "/api/tasks",
        &[("x-user-id", "rita"), ("content-type", "application/json")],
        Some(
            &json!({"title": "while busy", "due_date": due, "remind_before_minutes": 0})
                .to_string(),
        ),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let (_, start) = edge
        .host
        .http("GET", "/api/sync", &[("x-user-id", "poller")], None);
    let cursor = serde_json::from_str::<Json>(&start).unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let polls: Vec<_> = (0..25)
        .map(|_| {
            let path = format!("/api/sync?since={cursor}&wait=10");
            std::thread::spawn(move || http(port, "GET", &path, &[("x-user-id", "poller")], None))
        })
        .collect();
    let reminders = edge.dir.0.join(".spin/reminders.db");
    wait_for(
        "the reminder to fire while HTTP is full",
        Duration::from_secs(30),
        || (count(&reminders, "SELECT COUNT(*) FROM notifications") == 1).then_some(()),
    );
    let statuses: Vec<u16> = polls.into_iter().map(|p| p.join().unwrap().0).collect();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        busy >= 10 && statuses.iter().all(|s| *s == 200 || *s == 503),
        "15 long-polls held instances, the rest were turned away: {statuses:?}"
    );
    assert_eq!(
        http(edge.host.admin_port, "GET", "/healthz", &[], None).0,
        200
    );
    let metrics = edge.host.metrics();
    assert_nothing_dead_lettered(&metrics);
    assert!(metrics.contains("trigger_kafka_http_rejected_total{reason=\"instances\"}"));
    assert_eq!(
        edge.host
            .http("GET", "/api/tasks", &[("x-user-id", "rita")], None)
            .0,
        200,
        "HTTP serves again once the long-polls end"
    );
}

/// Sends a chunked body of `total` bytes, as fast as the server takes it,
/// and returns the answer (the server may answer and close early).
fn upload(port: u16, total: usize) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = "POST /api/tasks HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: u\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_ok() {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if stream.write_all(&framed).is_err() {
                break; // the server answered and closed
            }
            sent += chunk.len();
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Item 3: Body limits apply while the body streams, in the host (1 MiB) and in
/// the component (64 KiB): huge uploads get a 413 and the host's memory
/// stays flat.
#[test]
fn huge_bodies_get_a_413_while_they_stream() {
    let edge = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    let port = edge.host.http_port;
    let declared = raw_http(
        port,
        b"POST /api/tasks HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: u\r\ncontent-type: application/json\r\ncontent-length: 200000000\r\n\r\n",
        Duration::from_secs(10),
    );
    let (status, body) = status_and_json(&declared);
    assert_error(status, &body, 413, "payload_too_large");
    let before = edge.host.rss();
    let uploads: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || upload(port, 200 << 20)))
        .collect();
    let mut peak = before;
    let mut answers = Vec::new();
    for upload in uploads {
        while !upload.is_finished() {
            peak = peak.max(edge.host.rss());
            std::thread::sleep(Duration::from_millis(20));
        }
        answers.push(upload.join().unwrap());
    }
    for answer in &answers {
        let (status, body) = status_and_json(answer);
        assert_error(status, &body, 413, "payload_too_large");
    }
    eprintln!(
        "host RSS before {} MiB, peak during three 200 MiB uploads {} MiB",
        before >> 20,
        peak >> 20
    );
    assert!(
        peak < before + (64 << 20),
        "memory grew by {} MiB",
        (peak - before) >> 20
    );
    // Under the host's limit but over the API's own: the component counts.
    let big = json!({"title": "x".repeat(100_000)}).to_string();
    let (status, body) = edge.host.http(
        "POST",
        "/api/tasks",
        &[("x-user-id", "u"), ("content-type", "application/json")],
        Some(&big),
    );
    let body: Json = serde_json::from_str(&body).unwrap();
    assert_error(status, &body, 413, "payload_too_large");
}

/// Item 4: Every list-valued input has a cap, answered with a 422 that names
/// the field and the limit; quotas too.
#[test]
fn list_inputs_and_quotas_are_capped() {
    let edge = Edge::start(
        &[
            ("SPIN_VARIABLE_JWT_SECRET", SECRET),
            ("SPIN_VARIABLE_MAX_TASKS_PER_USER", "5"),
            ("SPIN_VARIABLE_MAX_SHARES_PER_TASK", "3"),
        ],
        &[],
    );
    let tags: Vec<String> = (0..1000).map(|i| format!("tag=t{i}")).collect();
    let (status, body) = edge.as_user(
        "ann",
        "GET",
        &format!("/api/tasks?{}", tags.join("&")),
        None,
    );
    assert_error(status, &body, 422, "validation_failed");
    assert_eq!(body["error"]["field"], "tag");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 20"));
    let many: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    let result = edge.mcp("ann", "list_tasks", json!({"tag": many}));
    assert_eq!(result["isError"], true, "{result}");
    assert!(result.to_string().contains("tag"), "{result}");
    let (status, body) = edge.as_user(
        "ann",
        "POST",
        "/api/tasks",
        Some(json!({"title": "t", "tags": many})),
    );
    assert_error(status, &body, 422, "validation_failed");
    assert_eq!(body["error"]["field"], "tags");

    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, task) = edge.as_user(
            "ann",
            "POST",
            "/api/tasks",
            Some(json!({"title": format!("t{i}")})),
        );
        assert_eq!(status, 201, "{task}");
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = edge.as_user(
        "ann",
        "POST",
        "/api/tasks",
        Some(json!({"title": "one too many"})),
    );
    assert_error(status, &body, 422, "quota_exceeded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 5 tasks"));
    for friend in ["b1", "b2", "b3"] {
        let (status, body) = edge.as_user(
            "ann",
            "POST",
            &format!("/api/tasks/{}/share", ids[0]),
            Some(json!({"user_id": friend})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = edge.as_user(
        "ann",
        "POST",
        &format!("/api/tasks/{}/share", ids[0]),
        Some(json!({"user_id": "b4"})),
    );
    assert_error(status, &body, 422, "quota_exceeded");
    assert_eq!(body["error"]["field"], "user_id");
}

/// Item 5: Unicode where a parser expects ASCII: a 422 naming the field, on
/// REST and MCP, never a 500.
#[test]
fn the_recurrence_parser_answers_unicode_with_a_422() {
    let edge = Edge::tokens();
    let (status, body) = edge.as_user(
        "uma",
        "POST",
        "/api/tasks",
        Some(json!({"title": "x", "due_date": "2099-01-01T09:00:00Z", "recurrence_pattern": "RRULE:FREQ=WEEKLY;BYDAY=€"})),
    );
    assert_error(status, &body, 422, "validation_failed");
    assert_eq!(body["error"]["field"], "recurrence_pattern");
    let result = edge.mcp(
        "uma",
        "add_task",
        json!({"title": "x", "due_date": "2099-01-01T09:00:00Z", "recurrence_pattern": "RRULE:FREQ=WEEKLY;BYDAY=€"}),
    );
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        result.to_string().contains("recurrence_pattern"),
        "{result}"
    );
}

/// Item 6: Nobody can be a service; the audit trail shows a user only what
/// happened to tasks they could see.
#[test]
fn service_identities_are_reserved_and_audit_reads_are_scoped() {
    let edge = Edge::tokens();
    for sub in ["system:reminders", "system:recurring", "SYSTEM:anything"] {
        let (status, body) = edge.as_user(sub, "GET", "/api/audit", None);
        assert_error(status, &body, 403, "reserved_identity");
    }
    let due = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (_, task) = edge.as_user(
        "alice",
        "POST",
        "/api/tasks",
        Some(json!({"title": "private", "due_date": due, "remind_before_minutes": 0})),
    );
    let id = task["id"].as_str().unwrap().to_owned();
    wait_for(
        "alice's reminder in her trail",
        Duration::from_secs(60),
        || {
            let (_, trail) = edge.as_user("alice", "GET", "/api/audit", None);
            trail["entries"]
                .as_array()?
                .iter()
                .any(|e| e["action"] == "reminder_triggered")
                .then_some(())
        },
    );
    let (status, trail) = edge.as_user("mallory", "GET", "/api/audit", None);
    assert_eq!(status, 200);
    assert_eq!(trail["entries"], json!([]), "nothing of alice's: {trail}");
    let (_, history) = edge.as_user("mallory", "GET", &format!("/api/tasks/{id}/history"), None);
    assert!(!history.to_string().contains("private"), "{history}");
    let (status, _) = edge.as_user(
        "alice",
        "POST",
        &format!("/api/tasks/{id}/share"),
        Some(json!({"user_id": "system:reminders"})),
    );
    assert_eq!(status, 422, "cannot share with a service");
}

/// Item 8: The smaller holes.
#[test]
fn smaller_holes_are_closed() {
    let edge = Edge::start(
        &[
            ("SPIN_VARIABLE_JWT_SECRET", SECRET),
            ("SPIN_VARIABLE_JWT_AUDIENCE", "todo-api"),
            ("SPIN_VARIABLE_JWT_ISSUER", "https://id.example"),
        ],
        &[],
    );
    let claims = json!({"aud": "todo-api", "iss": "https://id.example"});
    let token = |user: &str, claims: &Json| {
        format!("Bearer {}", jwt(user, SECRET.as_bytes(), claims.clone()))
    };
    let call =
        |user: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>| {
            let auth = token(user, &claims);
            let mut all = vec![("authorization", auth.as_str())];
            all.extend_from_slice(headers);
            let (status, body) = edge.host.http(method, path, &all, body);
            (
                status,
                serde_json::from_str::<Json>(&body).unwrap_or(Json::Null),
            )
        };
    // A token for another audience or issuer.
    for other in [
        json!({"aud": "billing", "iss": "https://id.example"}),
        json!({"iss": "https://id.example"}),
        json!({"aud": "todo-api"}),
    ] {
        let (status, body) = edge.host.http(
            "GET",
            "/api/tasks",
            &[("authorization", &token("pat", &other))],
            None,
        );
        assert_eq!(status, 401, "{other}: {body}");
    }
    // A body without a Content-Type.
    let (status, body) = call(
        "pat",
        "POST",
        "/api/tasks",
        &[],
        Some(r#"{"title": "untyped"}"#),
    );
    assert_error(status, &body, 415, "unsupported_media_type");
    // A recipient declines a share; the owner cannot leave their own task.
    let json_type = [("content-type", "application/json")];
    let (_, task) = call(
        "pat",
        "POST",
        "/api/tasks",
        &json_type,
        Some(r#"{"title": "shared"}"#),
    );
    let id = task["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        "pat",
        "POST",
        &format!("/api/tasks/{id}/share"),
        &json_type,
        Some(r#"{"user_id": "quinn"}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(
        call("quinn", "GET", &format!("/api/tasks/{id}"), &[], None).0,
        200
    );
    assert_eq!(
        call(
            "quinn",
            "DELETE",
            &format!("/api/tasks/{id}/share/me"),
            &[],
            None
        )
        .0,
        204
    );
    assert_eq!(
        call("quinn", "GET", &format!("/api/tasks/{id}"), &[], None).0,
        404
    );
    // To the owner, `me` is the collaborator literally named `me` (issue 21:
    // the owner could not unshare them); not shared with them, nothing changes.
    let (status, body) = call(
        "pat",
        "DELETE",
        &format!("/api/tasks/{id}/share/me"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shared_with"], json!([]));
    // Empty query values mean "not given".
    assert_eq!(
        call(
            "pat",
            "GET",
            "/api/tasks?cursor=&due_before=&tag=",
            &[],
            None
        )
        .0,
        200
    );
}

/// Item 5 (listeners): Out of file descriptors, the accept loop backs off and
/// the server keeps serving once they are free again.
#[test]
fn running_out_of_file_descriptors_is_survived() {
    let edge = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    let pid = edge.host.pid();
    let port = edge.host.http_port;
    // Lower the host's descriptor limit to just above what it holds now.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open + 20;
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:{limit}")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let admin = edge.host.admin_port;
    let flood: Vec<TcpStream> = (0..60)
        .flat_map(|_| [port, admin])
        .filter_map(|p| TcpStream::connect(("127.0.0.1", p)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    drop(flood);
    wait_for("the server to serve again", Duration::from_secs(30), || {
        (edge.host.http("GET", "/healthz", &[], None).0 == 200
            && http(admin, "GET", "/healthz", &[], None).0 == 200)
            .then_some(())
    });
    assert!(
        edge.host.logs().contains("accept failed; retrying"),
        "the accept errors were logged"
    );
}

/// Raises this process's open-file soft limit to its hard limit (a test
/// that holds a thousand sockets needs more than the usual 1024).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Issue 21 item 1: a streamed response held its instance after the
/// HTTP permit was released at the response head, so ~1000 event streams
/// whose clients do not read took the whole instance pool: HTTP answered
/// 500, Kafka partitions stalled and the reminder timer could not start.
/// Now a stream holds HTTP's permit until it ends, streams are capped per
/// user and in all, and the triggers' share of the pool stays theirs.
#[test]
fn a_thousand_event_streams_that_never_read_starve_nothing() {
    raise_open_file_limit();
    let edge = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    let port = edge.host.http_port;
    let remind = chrono::Utc::now() + chrono::Duration::seconds(20);
    let created = edge.host.http(
        "POST",
        "/api/tasks",
        &[("x-user-id", "rita"), ("content-type", "application/json")],
        Some(
            &json!({"title": "while flooded", "due_date": remind.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "remind_before_minutes": 0})
                .to_string(),
        ),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    // A thousand streams, a user each, whose clients never read a byte.
    let streams: Vec<TcpStream> = (0..1000)
        .filter_map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            let request = format!(
                "GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: flood{i}\r\naccept: text/event-stream\r\n\r\n"
            );
            s.write_all(request.as_bytes()).ok()?;
            Some(s)
        })
        .collect();
    eprintln!("{} stream requests sent, none read", streams.len());
    std::thread::sleep(Duration::from_secs(3));
    // A write meanwhile: created, or a JSON 503 that says to retry.
    let (status, body) = try_http(
        port,
        "POST",
        "/api/tasks",
        &[("x-user-id", "sam"), ("content-type", "application/json")],
        Some(r#"{"title": "during the flood"}"#),
    )
    .expect("the server answers");
    let body: Json = serde_json::from_str(&body).unwrap_or(Json::String(body));
    assert!(
        status == 201 || (status == 503 && body["error"]["code"].is_string()),
        "{status} {body}"
    );
    eprintln!("a POST during the flood: {status}");
    // The reminder fires on time while the streams are open.
    let reminders = edge.dir.0.join(".spin/reminders.db");
    let fired = wait_for(
        "the reminder to fire during the flood",
        Duration::from_secs(60),
        || {
            query(
                &reminders,
                "SELECT created_ms - remind_ms, status FROM notifications",
            )
            .into_iter()
            .next()
        },
    );
    eprintln!(
        "reminder lateness during the flood: {} ms ({})",
        fired[0], fired[1]
    );
    let late: i64 = fired[0].parse().unwrap();
    assert!(
        (0..2000).contains(&late),
        "fired {late} ms late ({})",
        fired[1]
    );
    assert_ne!(fired[1], "missed");
    let metrics = edge.host.metrics();
    assert_nothing_dead_lettered(&metrics);
    drop(streams);
    wait_for(
        "HTTP to serve again once the streams are gone",
        Duration::from_secs(60),
        || {
            (edge
                .host
                .http("GET", "/api/tasks", &[("x-user-id", "rita")], None)
                .0
                == 200)
                .then_some(())
        },
    );
}

/// Issue 21 item 10: the admin listener had no connection limit and no
/// timeouts: idle connections stayed open forever, as many as a client
/// cared to open. Past 32 a connection is closed unanswered, an idle one
/// after the header timeout, and /healthz still answers.
#[test]
fn the_admin_listener_is_bounded() {
    let edge = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    let port = edge.host.admin_port;
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            s
        })
        .collect();
    let closed_at_once = idle
        .iter()
        .filter(|s| matches!((&**s).read(&mut [0u8; 16]), Ok(0)))
        .count();
    assert!(
        closed_at_once >= 8,
        "connections past the limit are closed at once: {closed_at_once} of 40"
    );
    for s in &idle {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    let closed_later = idle
        .iter()
        .filter(|s| match (&**s).read(&mut [0u8; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        })
        .count();
    assert_eq!(closed_later, 40, "idle admin connections are closed");
    let (status, _) = http(port, "GET", "/healthz", &[], None);
    assert_eq!(status, 200);
}

/// Issue 21 item 1: a client that stops reading kept its response's
/// instance (blocked writing, where no deadline looked) and its connection
/// for ever. Now a response left untaken for the write timeout loses its
/// instance and its connection. Three hundred pipelined requests for the
/// 87 KB OpenAPI document, never read, fill the socket buffers.
#[test]
fn a_client_that_stops_reading_loses_its_response_and_connection() {
    let edge = Edge::start(&[("SPIN_VARIABLE_DEV_AUTH", "true")], &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", edge.host.http_port)).unwrap();
    let one = "GET /api/openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    stream.write_all(one.repeat(300).as_bytes()).unwrap();
    // Past the write timeout (15 s), and the watchdog's tick.
    std::thread::sleep(Duration::from_secs(20));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let ended = loop {
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false, // still open, nothing more coming
        }
    };
    let responses = received
        .windows(b"HTTP/1.1 200".len())
        .filter(|w| *w == b"HTTP/1.1 200")
        .count();
    eprintln!(
        "{responses} of 300 pipelined responses taken before the server gave up ({} KiB)",
        received.len() >> 10
    );
    assert!(ended, "the server closed the stalled connection");
    assert!(
        responses < 300,
        "it stopped writing to a client that stopped reading"
    );
    // And the server is fine.
    assert_eq!(edge.host.http("GET", "/healthz", &[], None).0, 200);
}
