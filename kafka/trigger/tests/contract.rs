//! The ecosystem's own clients against the app as shipped (the real host,
//! every component, tansu, JWT authentication): the official MCP Python SDK
//! calls every tool, and Schemathesis checks the OpenAPI document against
//! the server with every check and phase, for two users.
//!
//! The Python tools come from the virtualenv the test command prepares
//! (`TODO_VENV`); without it the test says it was skipped.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

const SECRET: &str = "contract-test-secret";

fn venv_python() -> Option<PathBuf> {
    let venv = PathBuf::from(std::env::var_os("TODO_VENV")?);
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

fn start() -> ShippedApp {
    ShippedApp::start("contract", &[("SPIN_VARIABLE_JWT_SECRET", SECRET)])
}

fn run(what: &str, command: &mut Command) {
    eprintln!("running {what}: {command:?}");
    let output = command.output().expect("start the Python tool");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn the_official_mcp_sdk_and_schemathesis_find_nothing_wrong() {
    let Some(python) = venv_python() else {
        eprintln!(
            "skipped: no TODO_VENV with the MCP SDK and Schemathesis (the test command sets it)"
        );
        return;
    };
    let app = start();
    let base = format!("http://127.0.0.1:{}", app.host.http_port);
    let contract = repo().join("tests/contract");
    run(
        "the MCP Python SDK client",
        Command::new(&python)
            .arg(contract.join("mcp_client.py"))
            .arg(format!("{base}/mcp"))
            .arg(jwt("mcp-agent", SECRET.as_bytes(), serde_json::json!({}))),
    );
    let st = python.with_file_name("st");
    // Fixed seeds keep the test command reproducible; TODO_CONTRACT_SEED=random
    // explores new cases (how every failure fixed so far was found).
    let random = std::env::var("TODO_CONTRACT_SEED").is_ok_and(|s| s == "random");
    for (user, seed) in [("alice", "20261129"), ("bob", "20261130")] {
        let token = jwt(user, SECRET.as_bytes(), serde_json::json!({}));
        let mut command = Command::new(&st);
        command
            .arg("--config-file")
            .arg(contract.join("schemathesis.toml"))
            .arg("run")
            .arg(format!("{base}/api/openapi.json"))
            .arg("--header")
            .arg(format!("Authorization: Bearer {token}"))
            .arg("--workers")
            .arg("1")
            .env("NO_COLOR", "1")
            .current_dir(&app.dir.0);
        if !random {
            command.arg("--seed").arg(seed);
        }
        run(&format!("Schemathesis as {user}"), &mut command);
    }
}
