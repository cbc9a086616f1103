//! The operations console in a real browser: headless Chromium from
//! Debian's packages, driven through Selenium (`tests/console/drive.py`),
//! against the shipped app on a real broker. Skipped, saying so, without
//! Chromium, chromedriver or the test virtualenv (`TODO_VENV`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use support::*;

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

#[test]
fn an_operator_sees_a_write_and_a_poison_message_and_replays_it() {
    let (chromium, driver) = (
        tool("CHROMIUM", "/usr/bin/chromium"),
        tool("CHROMEDRIVER", "/usr/bin/chromedriver"),
    );
    let Some(venv) = std::env::var_os("TODO_VENV").map(PathBuf::from) else {
        eprintln!("skipped: no TODO_VENV with Selenium (the test command sets it)");
        return;
    };
    if !chromium.exists() || !driver.exists() {
        eprintln!("skipped: no {} or {}", chromium.display(), driver.display());
        return;
    }
    let app = ShippedApp::start("console", &[("SPIN_VARIABLE_DEV_AUTH", "true")]);
    let (broker, host, dir) = (&app.broker, &app.host, &app.dir);
    // A message no service can read: each consuming group dead-letters it.
    broker.send(
        "task-events",
        &[("mallory", "{this is not an event".to_owned())],
    );

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new(venv.join("bin/python"))
        .arg(repo().join("tests/console/drive.py"))
        .arg(format!("http://127.0.0.1:{}/console", host.admin_port))
        .arg(format!("http://127.0.0.1:{}", host.http_port))
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .env("CHROMEDRIVER", &driver)
        .output()
        .expect("the browser driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the console walk failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Json = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    println!("console walk: {summary:#}");
    let id = summary["dead_letter"].as_str().unwrap().to_owned();
    assert!(id.starts_with("task-events.dlq/"), "{id}");
    assert!(!summary["reason"].as_str().unwrap().is_empty());
    assert_eq!(summary["replayed_after_refresh"], true);
    for shot in summary["screenshots"].as_array().unwrap() {
        let path = PathBuf::from(shot.as_str().unwrap());
        assert!(
            std::fs::metadata(&path).unwrap().len() > 10_000,
            "{}",
            path.display()
        );
    }
    // The replay reached the topic once, marked as the dead letter's.
    let replayed = wait_for("the replayed record", Duration::from_secs(20), || {
        let records = broker.read("task-events", usize::MAX, Duration::from_secs(3));
        let hits: Vec<_> = records
            .iter()
            .filter(|r| r.header("dlq-replayed") == Some(id.as_str()))
            .cloned()
            .collect();
        (!hits.is_empty()).then_some(hits)
    });
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].value, "{this is not an event");
    // The replay is recorded where `trigger-kafka dlq replay` records it.
    let progress = std::fs::read_to_string(dir.0.join(".spin/dlq-replay/task-events.dlq.json"))
        .expect("replay progress beside the app");
    assert!(progress.contains(&id), "{progress}");

    // Not for other origins: a foreign Host is refused, and so is a
    // replay that is not a same-origin JSON POST.
    let admin = host.admin_port;
    let rebound = raw_http(
        admin,
        b"GET /console HTTP/1.1\r\nhost: evil.example\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let body = format!(r#"{{"id": "{id}"}}"#);
    let (status, _) = http(
        admin,
        "POST",
        "/console/api/replay",
        &[("content-type", "text/plain")],
        Some(&body),
    );
    assert_eq!(status, 415);
    let (status, _) = http(
        admin,
        "POST",
        "/console/api/replay",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        Some(&body),
    );
    assert_eq!(status, 403);
    // Replaying it again sends nothing.
    let (status, again) = http(
        admin,
        "POST",
        "/console/api/replay",
        &[("content-type", "application/json")],
        Some(&body),
    );
    assert_eq!(status, 200, "{again}");
    assert!(again.contains(r#""sent":0"#), "{again}");
    println!("screenshots in {}", shots.display());
}
