//! The run command's own broker (`start_tansu` in `scripts/lib.sh`, which
//! `scripts/run.sh` calls with `KAFKA_PORT`, 9092 by default): a port that
//! another process holds is refused by name, and a tansu that exits because
//! it lost its port is noticed. Before, a connect() to the port counted as
//! tansu being up, so the app went on against whatever held the port.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use support::*;

/// `start_tansu DIR PORT` in bash, after `prelude`; stdout says `ready`
/// (and the broker is stopped) when it returned 0.
fn start_tansu(dir: &TempDir, port: u16, prelude: &str) -> Output {
    let script = format!(
        r#"source scripts/lib.sh
TANSU="$TEST_TANSU"
{prelude}
start_tansu "$TEST_DIR" {port}
echo ready
kill "$TANSU_PID"; wait "$TANSU_PID" || true"#
    );
    Command::new("bash")
        .current_dir(repo())
        .args(["-c", &script])
        .env("TEST_TANSU", tansu_bin())
        .env("TEST_DIR", &dir.0)
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_kafka_port_another_process_holds_is_refused_by_name() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = start_tansu(&TempDir::new("taken"), port, "");
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("ready"));
    assert!(
        stderr.contains(&format!("port {port} is taken by another process"))
            && stderr.contains("KAFKA_PORT"),
        "{stderr}"
    );
}

#[test]
fn a_tansu_that_loses_its_port_after_the_check_is_noticed() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // The port is free when checked and taken when tansu binds it: the
    // check itself is told the port is free.
    let output = start_tansu(&TempDir::new("lost"), port, "port_open() { return 1; }");
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("tansu exited"), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

#[test]
fn a_free_kafka_port_gets_a_broker() {
    let port = free_port();
    let output = start_tansu(&TempDir::new("free"), port, "");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ready"), "{stdout}{stderr}");
}
