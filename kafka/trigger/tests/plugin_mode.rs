//! Spin's plugin protocol, as `spin up` 3.6 drives it: the locked app in
//! `SPIN_LOCKED_URL`, the app directory in `SPIN_LOCAL_APP_DIR`, Spin's
//! trigger flags, `--launch-metadata-only`, and the binary installed under
//! another trigger's name. (The Spin CLI itself cannot be installed here;
//! this drives the binary exactly as it would.)

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

fn locked_app(dir: &Path, broker: &Broker) -> std::path::PathBuf {
    let url = |p: &Path| format!("file://{}", p.display());
    let lock = serde_json::json!({
        "spin_lock_version": 1,
        "metadata": {
            "name": "plugin-app",
            "origin": url(&dir.join("spin.toml")),
            "triggers": { "kafka": { "brokers": "{{ kafka_brokers }}" } }
        },
        "host_requirements": {},
        "variables": { "kafka_brokers": { "default": broker.address() } },
        "triggers": [
            { "id": "trigger--api", "trigger_type": "http", "trigger_config": { "component": "api", "route": "/..." } },
            { "id": "trigger--probe", "trigger_type": "kafka", "trigger_config": { "component": "probe", "topics": ["plugin-in"], "group_id": "plugin" } },
            { "id": "trigger--tick", "trigger_type": "cron", "trigger_config": { "component": "tick", "cron_expression": "* * * * * *" } }
        ],
        "components": [
            {
                "id": "api",
                "metadata": { "databases": ["default"], "allowed_outbound_hosts": [] },
                "source": { "content_type": "application/wasm", "source": url(&wasm("todo_api.wasm")) }
            },
            {
                "id": "probe",
                "metadata": { "databases": ["default"], "allowed_outbound_hosts": [], "key_value_stores": [] },
                "source": { "content_type": "application/wasm", "source": url(&wasm("kafka_probe.wasm")), "digest": "sha256:0" },
                "env": {}
            },
            {
                "id": "tick",
                "metadata": { "databases": ["default"] },
                "source": { "content_type": "application/wasm", "source": url(&wasm("cron_probe.wasm")) }
            }
        ]
    });
    let path = dir.join("work/spin.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    path
}

fn spawn_plugin(binary: &Path, app_dir: &Path, lock: &Path, admin_port: u16) -> Child {
    let log = std::fs::File::create(app_dir.join(format!(
        "{}.log",
        binary.file_name().unwrap().to_string_lossy()
    )))
    .unwrap();
    Command::new(binary)
        .current_dir(app_dir)
        .env("SPIN_LOCKED_URL", format!("file://{}", lock.display()))
        .env("SPIN_WORKING_DIR", lock.parent().unwrap())
        .env("SPIN_LOCAL_APP_DIR", app_dir)
        .env("SPIN_VERSION", "3.6.3")
        .args([
            "--runtime-config-file",
            "rc.toml",
            "-L",
            "logs",
            "--kafka-admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn launch_metadata_lists_the_flags_spin_may_pass() {
    let out = Command::new(host_bin())
        .arg("--launch-metadata-only")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("JSON on stderr, as Spin reads it");
    let longs: Vec<&str> = meta["all_flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["long"].as_str())
        .collect();
    for flag in [
        "--runtime-config-file",
        "--state-dir",
        "--log-dir",
        "--disable-cache",
        "--follow",
        "--quiet",
    ] {
        assert!(longs.contains(&flag), "{flag} in {longs:?}");
    }
    assert!(
        !longs.contains(&"--listen"),
        "--listen belongs to Spin's HTTP trigger"
    );
    let help = Command::new(host_bin())
        .arg("--help-args-only")
        .output()
        .unwrap();
    assert!(help.status.success());
}

#[test]
fn started_by_spin_it_runs_the_kafka_triggers_of_the_locked_app() {
    let broker = Broker::start();
    broker.create_topics("plugin-in", 2);
    let dir = TempDir::new("plugin");
    std::fs::write(
        dir.0.join("rc.toml"),
        "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n",
    )
    .unwrap();
    let lock = locked_app(&dir.0, &broker);
    let admin = free_port();
    let mut child = spawn_plugin(&host_bin(), &dir.0, &lock, admin);
    broker.send(
        "plugin-in",
        &[
            ("u", r#"{"id": "p1", "action": "ok"}"#.to_owned()),
            ("v", r#"{"id": "p2", "action": "ok"}"#.to_owned()),
        ],
    );
    let db = dir.0.join(".spin/sqlite_db.db");
    wait_for("both messages handled", Duration::from_secs(60), || {
        (count(&db, "SELECT COUNT(*) FROM handled") == 2).then_some(())
    });
    // Spin serves HTTP and Spin's cron plugin (or our trigger-cron) the timers.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ticks"),
        0,
        "trigger-kafka does not run timers"
    );
    assert_eq!(http(admin, "GET", "/healthz", &[], None).0, 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    // The same binary installed as trigger-cron runs only the timers.
    let cron_bin = dir.0.join("trigger-cron");
    std::fs::copy(host_bin(), &cron_bin).unwrap();
    let mut cron = spawn_plugin(&cron_bin, &dir.0, &lock, free_port());
    wait_for("a tick", Duration::from_secs(30), || {
        (count(&db, "SELECT COUNT(*) FROM ticks") >= 1).then_some(())
    });
    std::process::Command::new("kill")
        .args(["-TERM", &cron.id().to_string()])
        .status()
        .unwrap();
    assert!(cron.wait().unwrap().success());
}
