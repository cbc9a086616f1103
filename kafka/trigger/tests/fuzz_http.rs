//! A fuzz run against the running host: 20,000 generated requests
//! (random methods, paths, headers, query strings, bodies and JSON shapes,
//! unicode throughout, valid tokens mixed with forged ones) to the shipped
//! app under `trigger-kafka up`, with a real broker. Every answer must be
//! below 500, every 4xx the documented JSON error, the host's memory must
//! stay bounded, and the app must be healthy and working afterwards. The
//! generator is seeded (`FUZZ_SEED`), so a failure can be replayed; the
//! counts are printed.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::*;

const SECRET: &str = "fuzz-secret";
const REQUESTS: usize = 20_000;
const THREADS: usize = 4;

/// xorshift64*: small, seedable, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const UNICODE: &[&str] = &[
    "é",
    "€",
    "𝄞",
    "😀",
    "ß",
    "中文",
    "\u{202e}",
    "\u{feff}",
    "\u{0301}",
    "ﷺ",
    "\u{10ffff}",
    "𐍈",
];

fn text(rng: &mut Rng, max: usize) -> String {
    let len = rng.below(max + 1);
    let mut out = String::new();
    while out.chars().count() < len {
        match rng.below(10) {
            0..=4 => out.push((b'a' + rng.below(26) as u8) as char),
            5 => out.push_str(rng.pick(UNICODE)),
            6 => out.push_str(rng.pick(&[
                "%", "\\", "\"", "'", ";", ",", "&", "=", "?", "#", "/", "..",
            ])),
            7 => out.push_str(&rng.next().to_string()),
            8 => out.push(' '),
            _ => out.push_str(rng.pick(&[
                "RRULE:FREQ=",
                "BYDAY=",
                "2026-",
                "T09:00:00Z",
                "every ",
                "monday",
            ])),
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json_value(rng: &mut Rng, depth: usize) -> Json {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Json::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 7.0),
        4 | 5 => json!(text(rng, 30)),
        6 => Json::Array(
            (0..rng.below(5))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => Json::Object(
            (0..rng.below(5))
                .map(|_| (text(rng, 8), json_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

const FIELDS: &[&str] = &[
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "tags",
    "recurrence_pattern",
    "remind_at",
    "remind_before_minutes",
    "notification_type",
    "user_id",
    "assignee",
    "id",
    "version",
    "text",
];

fn field_value(rng: &mut Rng, field: &str) -> Json {
    if rng.chance(35) {
        return json_value(rng, 0);
    }
    match field {
        "status" => json!(rng.pick(&["pending", "in_progress", "completed", "done", ""])),
        "priority" => json!(rng.pick(&["low", "medium", "high", "urgent", "p1"])),
        "due_date" | "remind_at" => json!(rng.pick(&[
            "2099-01-01T09:00:00Z",
            "2026-13-40T25:61:00Z",
            "tomorrow",
            "",
            "2027-02-29T00:00:00+02:00",
            // The ends of the range (issue 21).
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:00:00Z",
            "-0001-12-31T00:00:00Z",
            "+10000-01-01T00:00:00Z",
        ])),
        "tags" => Json::Array((0..rng.below(30)).map(|_| json!(text(rng, 12))).collect()),
        "recurrence_pattern" => json!(rng.pick(&[
            "daily",
            "every 2 weeks",
            "RRULE:FREQ=WEEKLY;BYDAY=€",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=99999999999",
            "every monday and 𝄞",
            "",
            "RRULE:FREQ=YEARLY;UNTIL=20270229T000000Z",
            "RRULE:FREQ=YEARLY;BYMONTHDAY=30",
            "RRULE:FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31",
        ])),
        "remind_before_minutes" => {
            json!(rng.pick(&[0i64, 30, -5, 525_600, 525_601, 1441, i64::MAX]))
        }
        "notification_type" => json!(rng.pick(&["in_app", "email", "sms", "push", "pigeon"])),
        _ => json!(text(rng, 60)),
    }
}

/// Quick Add lines, the shapes that once panicked among them (issue 21).
fn quick_body(rng: &mut Rng) -> Json {
    let text = match rng.below(3) {
        0 => text(rng, 60),
        _ => rng
            .pick(&[
                "x 2027-03-28 1:30am",
                "x 2011-12-30",
                "x +262142-12-31 11pm",
                "remind me 30 min before",
                "x 9999-12-31 11pm every day remind me 1 day before",
                "x 0000-01-01 12:30am remind me 30 min before",
                "pay rent on the 1st every month 9am remind me the day before #home p1",
            ])
            .to_owned(),
    };
    let mut body = json!({ "text": text });
    if rng.chance(60) {
        body["time_zone"] = json!(rng.pick(&[
            "Antarctica/Troll",
            "Pacific/Apia",
            "Pacific/Kiritimati",
            "Etc/GMT+12",
            "UTC",
            "Mars/Olympus",
        ]));
    }
    body
}

fn task_body(rng: &mut Rng) -> Json {
    let mut object = serde_json::Map::new();
    for _ in 0..rng.below(6) {
        let field = rng.pick(FIELDS);
        object.insert(field.to_owned(), field_value(rng, field));
    }
    if rng.chance(60) {
        object.insert("title".into(), json!(text(rng, 40)));
    }
    Json::Object(object)
}

fn mcp_body(rng: &mut Rng, ids: &[String]) -> Json {
    let tools = [
        "add_task",
        "list_tasks",
        "get_task",
        "update_task",
        "complete_task",
        "delete_task",
        "set_reminder",
        "share_task",
        "list_notifications",
        "get_task_history",
        "nope",
    ];
    let method = rng.pick(&[
        "tools/call",
        "tools/list",
        "initialize",
        "ping",
        "resources/list",
        "x",
    ]);
    let mut arguments = task_body(rng);
    if rng.chance(50) && !ids.is_empty() {
        arguments["id"] = json!(rng.pick_ref(ids));
    }
    let params = match method {
        "tools/call" => json!({"name": rng.pick(&tools), "arguments": arguments}),
        "initialize" => {
            json!({"protocolVersion": rng.pick(&["2025-06-18", "1999-01-01", ""]), "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}})
        }
        _ => json_value(rng, 2),
    };
    let mut message =
        json!({"jsonrpc": "2.0", "id": rng.next() % 1000, "method": method, "params": params});
    if rng.chance(10) {
        message = json_value(rng, 0);
    }
    message
}

struct Generated {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The route template, for the counts.
    route: &'static str,
}

fn generate(rng: &mut Rng, ids: &[String], tokens: &[String]) -> Generated {
    let id = if !ids.is_empty() && rng.chance(60) {
        rng.pick_ref(ids).clone()
    } else {
        percent_encode(&text(rng, 20))
    };
    let (route, path): (&'static str, String) = match rng.below(19) {
        16 => ("/api/tasks/quick", "/api/tasks/quick".into()),
        17 => (
            "/api/events",
            format!("/api/events?wait={}", rng.pick(&["0", "1", "26", "x"])),
        ),
        18 => (
            "/api/tasks/{id}/history?page",
            format!(
                "/api/tasks/{id}/history?limit={}&cursor={}",
                rng.pick(&["1", "50", "100", "101", "", "0"]),
                percent_encode(rng.pick(&[
                    "",
                    "0.0",
                    "1.2",
                    "-5.9",
                    "1.x",
                    "x",
                    "9999999999999999999.9999999999999999999"
                ]))
            ),
        ),
        0..=2 => ("/api/tasks", "/api/tasks".into()),
        3..=4 => ("/api/tasks/{id}", format!("/api/tasks/{id}")),
        5 => (
            "/api/tasks/{id}/complete",
            format!("/api/tasks/{id}/complete"),
        ),
        6 => ("/api/tasks/{id}/reopen", format!("/api/tasks/{id}/reopen")),
        7 => (
            "/api/tasks/{id}/reminder",
            format!("/api/tasks/{id}/reminder"),
        ),
        8 => ("/api/tasks/{id}/share", format!("/api/tasks/{id}/share")),
        9 => (
            "/api/tasks/{id}/share/{user}",
            format!("/api/tasks/{id}/share/{}", percent_encode(&text(rng, 8))),
        ),
        10 => (
            "/api/tasks/{id}/history",
            format!("/api/tasks/{id}/history"),
        ),
        11 => ("/mcp", "/mcp".into()),
        12 => (
            "/api/audit|notifications",
            (rng.pick(&[
                "/api/audit",
                "/api/notifications",
                "/api/notifications/x/read",
            ]))
            .to_owned(),
        ),
        13 => ("/api/sync", "/api/sync".into()),
        14 => (
            "/healthz|openapi",
            (rng.pick(&["/healthz", "/api/openapi.json", "/.well-known/spin/info"])).to_owned(),
        ),
        _ => (
            "(random)",
            format!("/{}", percent_encode(&text(rng, 40)).replace("%2F", "/")),
        ),
    };
    let method = match (route, rng.below(10)) {
        (_, 0) => {
            (rng.pick(&["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"])).to_owned()
        }
        (
            "/api/tasks"
            | "/api/tasks/quick"
            | "/mcp"
            | "/api/tasks/{id}/complete"
            | "/api/tasks/{id}/reopen"
            | "/api/tasks/{id}/share",
            n,
        ) if n < 7 => "POST".into(),
        ("/api/tasks/{id}", 1..=3) => "PATCH".into(),
        ("/api/tasks/{id}", 4) => "DELETE".into(),
        ("/api/tasks/{id}/share/{user}", 1..=7) => "DELETE".into(),
        ("/api/tasks/{id}/reminder", 1..=6) => "PUT".into(),
        ("/api/tasks/{id}/reminder", 7) => "DELETE".into(),
        _ => "GET".into(),
    };
    let mut query = Vec::new();
    if rng.chance(50) {
        let params = [
            "status",
            "priority",
            "tag",
            "due_before",
            "due_after",
            "overdue",
            "q",
            "sort",
            "order",
            "limit",
            "cursor",
            "unread",
            "since",
            "zzz",
        ];
        for _ in 0..rng.below(6) {
            let key = rng.pick(&params);
            let value = match rng.below(4) {
                0 => String::new(),
                1 => rng
                    .pick(&[
                        "pending,completed",
                        "high",
                        "due_date",
                        "desc",
                        "5",
                        "0",
                        "101",
                        "true",
                        "2026-12-01",
                    ])
                    .to_string(),
                _ => text(rng, 20),
            };
            query.push(format!("{key}={}", percent_encode(&value)));
        }
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    match rng.below(10) {
        0 => {}
        1 => headers.push((
            "authorization".into(),
            format!("Bearer {}", text(rng, 40)).into_bytes(),
        )),
        2 => headers.push(("authorization".into(), b"Basic YWxpY2U6cHc=".to_vec())),
        3 => headers.push(("x-user-id".into(), text(rng, 20).into_bytes())),
        _ => headers.push((
            "authorization".into(),
            format!("Bearer {}", rng.pick_ref(tokens)).into_bytes(),
        )),
    }
    if rng.chance(5) {
        // Latin-1, not UTF-8: refused before any component runs.
        headers.push(("idempotency-key".into(), b"cl\xe9".to_vec()));
    } else if rng.chance(20) {
        headers.push(("idempotency-key".into(), text(rng, 30).into_bytes()));
    }
    if route == "/mcp" {
        if rng.chance(80) {
            headers.push((
                "accept".into(),
                b"application/json, text/event-stream".to_vec(),
            ));
        }
        if rng.chance(20) {
            headers.push((
                "origin".into(),
                rng.pick(&["https://chat.example", "https://evil.example", "null"])
                    .as_bytes()
                    .to_vec(),
            ));
        }
        if rng.chance(20) {
            headers.push((
                "mcp-protocol-version".into(),
                rng.pick(&["2025-06-18", "2025-03-26", "2030-01-01", ""])
                    .as_bytes()
                    .to_vec(),
            ));
        }
    }
    let body: Vec<u8> = if matches!(method.as_str(), "GET" | "HEAD") && rng.chance(90) {
        Vec::new()
    } else {
        match rng.below(10) {
            0 => Vec::new(),
            1 => text(rng, 200).into_bytes(),
            2 => b"{\"title\": ".to_vec(),
            3 => json_value(rng, 0).to_string().into_bytes(),
            _ if route == "/mcp" => mcp_body(rng, ids).to_string().into_bytes(),
            _ if route == "/api/tasks/quick" => quick_body(rng).to_string().into_bytes(),
            _ => task_body(rng).to_string().into_bytes(),
        }
    };
    if !body.is_empty() && rng.chance(90) {
        let content_type = rng.pick(&[
            "application/json",
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/merge-patch+json",
        ]);
        headers.push(("content-type".into(), content_type.as_bytes().to_vec()));
    }
    Generated {
        method,
        target,
        headers,
        body,
        route,
    }
}

/// Sends one request; returns (status, content-type, body).
fn send(port: u16, request: &Generated) -> (u16, String, String) {
    let mut raw = format!(
        "{} {} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n",
        request.method, request.target
    )
    .into_bytes();
    for (name, value) in &request.headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(format!("content-length: {}\r\n\r\n", request.body.len()).as_bytes());
    raw.extend_from_slice(&request.body);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(&raw).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head_lower = head.to_ascii_lowercase();
    let content_type = head_lower
        .lines()
        .find_map(|l| l.strip_prefix("content-type:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let body = if head_lower.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, content_type, body)
}

/// Whether a 4xx answer is the documented error: REST's
/// `{"error": {"code", "message", "field"?}}`, or on /mcp a JSON-RPC error.
fn documented_error(route: &str, content_type: &str, body: &str) -> bool {
    if !content_type.starts_with("application/json") {
        return false;
    }
    let Ok(value) = serde_json::from_str::<Json>(body) else {
        return false;
    };
    let error = &value["error"];
    let message = error["message"].as_str().is_some_and(|m| !m.is_empty());
    let rest = error["code"].is_string();
    let rpc = route == "/mcp" && value["jsonrpc"] == "2.0" && error["code"].is_i64();
    message && (rest || rpc)
}

#[test]
fn twenty_thousand_generated_requests_get_no_5xx_and_only_documented_errors() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_d00d);
    let app = ShippedApp::start(
        "fuzz",
        &[
            ("SPIN_VARIABLE_JWT_SECRET", SECRET),
            ("SPIN_VARIABLE_MCP_ALLOWED_ORIGINS", "https://chat.example"),
        ],
    );
    let host = &app.host;
    let port = host.http_port;
    let users = ["fuzz-a", "fuzz-b", "fuzz-ü"];
    let tokens: Vec<String> = users
        .iter()
        .map(|u| jwt(u, SECRET.as_bytes(), json!({})))
        .collect();
    // Some real tasks, so ids hit existing rows as well as missing ones.
    let mut ids = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        for n in 0..5 {
            let (status, body) = http(
                port,
                "POST",
                "/api/tasks",
                &[("authorization", &format!("Bearer {token}")), ("content-type", "application/json")],
                Some(&json!({"title": format!("seed {i}-{n}"), "due_date": "2099-01-01T09:00:00Z", "recurrence_pattern": "daily"}).to_string()),
            );
            assert_eq!(status, 201, "{body}");
            ids.push(
                serde_json::from_str::<Json>(&body).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    // Tokens not valid yet, with a `nbf` no integer parser reads (issue
    // 21): refused with a 401, never let through.
    let mut tokens = tokens;
    tokens.push(jwt("fuzz-a", SECRET.as_bytes(), json!({"nbf": 4.0e12})));
    tokens.push(jwt("fuzz-b", SECRET.as_bytes(), json!({"nbf": "later"})));
    let rss_before = host.rss();
    let counts: Arc<Mutex<BTreeMap<(String, u16), usize>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let peak = Arc::new(Mutex::new(rss_before));
    let pid = host.pid();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ids, tokens, counts, failures, peak) = (
                ids.clone(),
                tokens.clone(),
                counts.clone(),
                failures.clone(),
                peak.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ ((t as u64 + 1) * 0x9E37_79B9_7F4A_7C15));
                for n in 0..REQUESTS / THREADS {
                    let request = generate(&mut rng, &ids, &tokens);
                    let (status, content_type, body) = send(port, &request);
                    *counts
                        .lock()
                        .unwrap()
                        .entry((request.route.to_owned(), status))
                        .or_default() += 1;
                    let bad = if status == 0 || status >= 500 {
                        Some("a 5xx or no answer")
                    } else if (400..500).contains(&status)
                        && request.method != "HEAD"
                        && !documented_error(request.route, &content_type, &body)
                    {
                        Some("a 4xx that is not the documented JSON error")
                    } else {
                        None
                    };
                    if let Some(what) = bad {
                        failures.lock().unwrap().push(format!(
                            "{what}: {} {} {:?} body {:?} -> {status} {content_type} {body:.300}",
                            request.method,
                            request.target,
                            request
                                .headers
                                .iter()
                                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
                                .collect::<Vec<_>>(),
                            String::from_utf8_lossy(&request.body)
                                .chars()
                                .take(300)
                                .collect::<String>(),
                        ));
                    }
                    if n % 250 == 0 {
                        let rss = rss_of(pid);
                        let mut peak = peak.lock().unwrap();
                        *peak = (*peak).max(rss);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let counts = counts.lock().unwrap();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for ((_, status), n) in counts.iter() {
        *by_status.entry(*status).or_default() += n;
    }
    let total: usize = by_status.values().sum();
    let peak = *peak.lock().unwrap();
    eprintln!("fuzz seed {seed:#x}: {total} requests; by status {by_status:?}");
    for ((route, status), n) in counts.iter() {
        eprintln!("    {route:<32} {status} x{n}");
    }
    eprintln!(
        "host RSS {} MiB before, {} MiB peak",
        rss_before >> 20,
        peak >> 20
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} bad answers; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(total >= REQUESTS);
    assert!(
        peak < rss_before + (200 << 20),
        "memory grew from {} to {} MiB",
        rss_before >> 20,
        peak >> 20
    );
    // Still healthy and working.
    assert_eq!(host.http("GET", "/healthz", &[], None).0, 200);
    assert_eq!(http(host.admin_port, "GET", "/healthz", &[], None).0, 200);
    let (status, body) = http(
        port,
        "POST",
        "/api/tasks",
        &[
            ("authorization", &format!("Bearer {}", tokens[0])),
            ("content-type", "application/json"),
        ],
        Some(r#"{"title": "after the storm"}"#),
    );
    assert_eq!(status, 201, "{body}");
}
