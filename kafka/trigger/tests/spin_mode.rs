//! The real Spin CLI with this project's plugins: installing them, `spin
//! build` of the shipped manifest, two apps on one machine, the container's
//! command line, Spin's trigger flags reaching the plugins, and the host
//! interfaces a component sees answered the same by Spin and by
//! trigger-kafka. Each test says it was skipped where there is no Spin.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::spin::{Ready, Spin, SpinUp};
use support::*;
use test_servers::postgres::Postgres;
use test_servers::redis::Redis;

/// Tests that bind the fixed default admin ports (9464, 9465) run one at
/// a time.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

fn spin_or_skip(test: &str) -> Option<&'static Spin> {
    let spin = support::spin::spin();
    if spin.is_none() {
        eprintln!("skipped (no Spin CLI): {test}");
    }
    spin
}

fn output(command: &mut Command) -> (bool, String) {
    said(command.output().unwrap())
}

/// Whether a process succeeded, and all it printed.
fn said(out: std::process::Output) -> (bool, String) {
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_plugins_install_list_and_an_incompatible_one_is_refused() {
    let Some(spin) = spin_or_skip("plugins") else {
        return;
    };
    let (ok, list) = output(spin.command().args(["plugins", "list", "--installed"]));
    assert!(ok, "{list}");
    for plugin in ["trigger-kafka", "trigger-cron"] {
        assert!(
            list.contains(&format!("{plugin} 0.1.0 [installed]")),
            "{plugin} in:\n{list}"
        );
    }
    // A build that declares it needs a later Spin: refused at install, the
    // way Spin refuses any plugin, and nothing is installed.
    let manifest: Json = serde_json::from_str(
        &std::fs::read_to_string(spin.packages.join("trigger-kafka.json")).unwrap(),
    )
    .unwrap();
    let mut future = manifest.clone();
    future["spinCompatibility"] = json!(">=4.0");
    let dir = TempDir::new("future-plugin");
    let file = dir.0.join("trigger-kafka.json");
    std::fs::write(&file, future.to_string()).unwrap();
    let (ok, text) = output(
        spin.command()
            .env("SPIN_DATA_DIR", dir.0.join("data"))
            .args(["plugins", "install", "--yes", "--file"])
            .arg(&file),
    );
    assert!(!ok, "installed anyway:\n{text}");
    assert!(
        text.contains(
            "Plugin is not compatible with this version of Spin (supported: >=4.0, actual: 3.6.3)"
        ),
        "{text}"
    );
    assert!(!dir.0.join("data/plugins/trigger-kafka").exists());
}

#[test]
fn spin_build_builds_every_component_of_the_shipped_manifest() {
    let Some(spin) = spin_or_skip("spin build") else {
        return;
    };
    let (ok, text) = output(spin.command().current_dir(repo()).arg("build"));
    assert!(ok, "spin build failed:\n{text}");
    for component in ["api", "reminder", "notifier", "recurring", "audit", "sync"] {
        assert!(
            text.contains(&format!("Building component {component} with `cargo build --target wasm32-wasip2 --release -p todo-")),
            "{component}:\n{text}"
        );
    }
    assert!(
        text.contains("Finished building all Spin components"),
        "{text}"
    );
}

/// An app of probes: a Kafka handler (`probe`, default consumer group
/// `<app>-probe`) and a timer, under its own name.
fn probe_app(dir: &Path, name: &str, topic: &str) {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "{name}"
[application.trigger.kafka]
brokers = "{{{{ kafka_brokers }}}}"
[variables]
kafka_brokers = {{ required = true }}
[[trigger.kafka]]
component = "probe"
topics = ["{topic}"]
[[trigger.cron]]
component = "tick"
cron_expression = "* * * * * *"
[component.probe]
source = "{probe}"
sqlite_databases = ["default"]
[component.tick]
source = "{tick}"
sqlite_databases = ["default"]
"#,
        probe = wasm("kafka_probe.wasm").display(),
        tick = wasm("cron_probe.wasm").display(),
    );
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
}

fn admin_ports(logs: &str) -> Vec<(String, u16)> {
    logs.lines()
        .filter_map(|line| {
            let port = port_after(line, "metrics and health on http://")?;
            let process = line.rsplit_once('(')?.1.trim_end_matches(')').to_owned();
            Some((process, port))
        })
        .collect()
}

#[test]
fn two_spin_apps_on_one_machine_do_not_collide() {
    let Some(_spin) = spin_or_skip("two apps") else {
        return;
    };
    let _fixed = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let broker = Broker::start();
    broker.apply_project_topics();
    broker.create_topics("probe-in", 2);
    let todo_dir = TempDir::new("two-todo");
    write_shipped_app(&todo_dir.0);
    let probe_dir = TempDir::new("two-probe");
    probe_app(&probe_dir.0, "probe-app", "probe-in");
    let brokers = broker.address();
    // Both with the default admin addresses: the second app's plugins find
    // them taken and use free ports, and everything keeps running.
    let todo = SpinUp::start_exactly(
        &todo_dir.0,
        &[
            "--listen",
            "127.0.0.1:0",
            "--runtime-config-file",
            "runtime-config.toml",
        ],
        &[
            ("SPIN_VARIABLE_KAFKA_BROKERS", &brokers),
            ("SPIN_VARIABLE_DEV_AUTH", "true"),
        ],
        Ready::ALL,
    );
    let mut probe = SpinUp::start_exactly(
        &probe_dir.0,
        &[],
        &[("SPIN_VARIABLE_KAFKA_BROKERS", &brokers)],
        Ready {
            http: false,
            kafka: true,
            cron: true,
        },
    );
    let mut ports: Vec<(String, u16)> = admin_ports(&todo.logs());
    ports.extend(admin_ports(&probe.logs()));
    assert_eq!(
        ports.len(),
        4,
        "four plugin processes, each with an admin port: {ports:?}"
    );
    let mut distinct: Vec<u16> = ports.iter().map(|(_, p)| *p).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "no two share a port: {ports:?}");
    for (process, port) in &ports {
        wait_for(process, Duration::from_secs(10), || {
            (http(*port, "GET", "/healthz", &[], None).0 == 200).then_some(())
        });
    }

    // Each app does its own work, in its own state directory and group.
    broker.send(
        "probe-in",
        &[
            ("a", r#"{"id": "m1"}"#.to_owned()),
            ("b", r#"{"id": "m2"}"#.to_owned()),
        ],
    );
    let probe_db = probe_dir.0.join(".spin/sqlite_db.db");
    wait_for("the probe app's messages", Duration::from_secs(60), || {
        (count(&probe_db, "SELECT COUNT(*) FROM handled") == 2).then_some(())
    });
    let (status, body) = http(
        todo.http_port,
        "POST",
        "/api/tasks",
        &[("x-user-id", "dana"), ("content-type", "application/json")],
        Some(r#"{"title": "two apps"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Json>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let audit = todo_dir.0.join(".spin/audit.db");
    wait_for("the todo app's audit row", Duration::from_secs(60), || {
        (count(
            &audit,
            &format!("SELECT COUNT(*) FROM audit_log WHERE task_id = '{id}'"),
        ) == 1)
            .then_some(())
    });
    assert!(
        probe.logs().contains("group=probe-app-probe"),
        "default group named after the app"
    );
    assert!(
        !todo_dir.0.join(".spin/sqlite_db.db").exists()
            || count(
                &todo_dir.0.join(".spin/sqlite_db.db"),
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'handled'"
            ) == 0
    );
    assert!(!probe_dir.0.join(".spin/audit.db").exists());
    assert!(probe.running());
}

/// `ENV KEY=VALUE` lines of a Dockerfile.
fn dockerfile_env(text: &str) -> Vec<(String, String)> {
    // `ARG NAME=default` values expand `${NAME}` in later ENV lines, as a
    // build without --build-arg does.
    let mut args: Vec<(String, String)> = Vec::new();
    let mut env = Vec::new();
    for line in text.lines() {
        if let Some((k, v)) = line.strip_prefix("ARG ").and_then(|kv| kv.split_once('=')) {
            args.push((k.trim().to_owned(), v.trim().to_owned()));
        } else if let Some((k, v)) = line.strip_prefix("ENV ").and_then(|kv| kv.split_once('=')) {
            let mut value = v.trim().to_owned();
            for (name, default) in &args {
                value = value.replace(&format!("${{{name}}}"), default);
            }
            env.push((k.trim().to_owned(), value));
        }
    }
    env
}

/// The container as `deploy/Dockerfile` builds it and the SpinApp runs it:
/// `spin up -f /app/spin.toml --runtime-config-file /runtime-config.toml`
/// from WORKDIR /app, with the image's ENV, the plugins as the image
/// installs them, and `runtime-config/kube.toml` with `/data` mapped to a
/// temporary directory (the PersistentVolumeClaim).
#[test]
fn the_container_command_line_runs_the_app_as_the_image_would() {
    let Some(_spin) = spin_or_skip("container layout") else {
        return;
    };
    let _fixed = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let broker = Broker::start();
    broker.apply_project_topics();
    let root = TempDir::new("container");
    let app = root.0.join("app");
    let release = app.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(repo().join("spin.toml"), app.join("spin.toml")).unwrap();
    for c in [
        "todo_api",
        "todo_reminder",
        "todo_notifier",
        "todo_recurring",
        "todo_audit",
        "todo_sync",
    ] {
        std::fs::copy(
            wasm(&format!("{c}.wasm")),
            release.join(format!("{c}.wasm")),
        )
        .unwrap();
    }
    let data = root.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let kube = std::fs::read_to_string(repo().join("runtime-config/kube.toml")).unwrap();
    let runtime_config = root.0.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        kube.replace("\"/data/", &format!("\"{}/", data.display())),
    )
    .unwrap();
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("WORKDIR /app") && dockerfile.contains("COPY spin.toml /app/spin.toml")
    );
    let image_env = dockerfile_env(&dockerfile);
    assert!(
        image_env
            .iter()
            .any(|(k, _)| k == "TRIGGER_CRON_ADMIN_LISTEN")
            && image_env
                .iter()
                .any(|(k, _)| k == "TRIGGER_KAFKA_ADMIN_LISTEN"),
        "the image gives each plugin its own admin address: {image_env:?}"
    );
    // The SpinApp's variables (deploy/spinapp.yaml): the broker and a JWT
    // key from Secrets; no development mode.
    let secret = "kube-secret";
    let mut env: Vec<(&str, &str)> = image_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let brokers = broker.address();
    env.push(("SPIN_VARIABLE_KAFKA_BROKERS", &brokers));
    env.push(("SPIN_VARIABLE_JWT_SECRET", secret));
    let runtime_config = runtime_config.display().to_string();
    let manifest = app.join("spin.toml").display().to_string();
    let pod = SpinUp::start_exactly(
        &app,
        &[
            "--listen",
            "127.0.0.1:0",
            "-f",
            &manifest,
            "--runtime-config-file",
            &runtime_config,
        ],
        &env,
        Ready::ALL,
    );
    // The probes of the SpinApp and of the plugins' admin listeners.
    assert_eq!(http(pod.http_port, "GET", "/healthz", &[], None).0, 200);
    let ports = admin_ports(&pod.logs());
    for (process, expected) in [("trigger-kafka", 9464), ("trigger-cron", 9465)] {
        assert!(
            ports.contains(&(process.to_owned(), expected)),
            "{process} on {expected}: {ports:?}"
        );
        wait_for(process, Duration::from_secs(10), || {
            (http(expected, "GET", "/healthz", &[], None).0 == 200).then_some(())
        });
    }
    // A customer walk with a token: a task, its reminder, on the volume.
    let token = format!("Bearer {}", jwt("erin", secret.as_bytes(), json!({})));
    let (status, _) = http(
        pod.http_port,
        "GET",
        "/api/tasks",
        &[("x-user-id", "erin")],
        None,
    );
    assert_eq!(status, 401, "no development mode in the image");
    let due = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, body) = http(
        pod.http_port,
        "POST",
        "/api/tasks",
        &[
            ("authorization", &token),
            ("content-type", "application/json"),
        ],
        Some(
            &json!({"title": "in the pod", "due_date": due, "remind_before_minutes": 0})
                .to_string(),
        ),
    );
    assert_eq!(status, 201, "{body}");
    wait_for("the reminder", Duration::from_secs(60), || {
        let (_, body) = http(
            pod.http_port,
            "GET",
            "/api/notifications",
            &[("authorization", &token)],
            None,
        );
        let page: Json = serde_json::from_str(&body).ok()?;
        (page["notifications"].as_array()?.len() == 1).then_some(())
    });
    // Each service creates its database when it handles its first event;
    // a consumer group may still be joining when the reminder fires.
    for file in ["sqlite_db.db", "reminders.db", "audit.db", "sync.db"] {
        wait_for(
            &format!("{file} on the volume"),
            Duration::from_secs(60),
            || data.join(file).exists().then_some(()),
        );
    }
    assert!(
        !app.join(".spin/sqlite_db.db").exists(),
        "nothing outside the volume"
    );
}

/// The probe app for comparing hosts: an HTTP component that reports what
/// it sees of variables, SQLite, key-value, outbound HTTP, its environment
/// and Spin's request headers.
fn conformance_app(dir: &Path, outbound_port: u16, postgres_port: u16, redis_port: u16) {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "conformance"
version = "1.2.3"
[variables]
greeting = {{ default = "hello" }}
from_env = {{ required = true }}
from_flag = {{ default = "unset" }}
from_dotenv = {{ default = "unset" }}
[[trigger.http]]
route = "/probe/..."
component = "probe"
[component.probe]
source = "{probe}"
sqlite_databases = ["default", "other"]
key_value_stores = ["default", "cache"]
allowed_outbound_hosts = ["http://127.0.0.1:{outbound_port}", "postgres://127.0.0.1:{postgres_port}"]
environment = {{ PROBE_FROM_MANIFEST = "manifest" }}
[component.probe.variables]
greeting = "{{{{ greeting }}}}"
from_env = "{{{{ from_env }}}}"
from_flag = "{{{{ from_flag }}}}"
from_dotenv = "{{{{ from_dotenv }}}}"
templated = "{{{{ greeting }}}}, {{{{ from_env }}}}!"
"#,
        probe = wasm("spin_probe.wasm").display(),
    );
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    std::fs::write(
        dir.join("rc.toml"),
        format!(
            "[sqlite_database.other]\ntype = \"spin\"\npath = \"other.db\"\n\
             [key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{redis_port}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "SPIN_VARIABLE_FROM_DOTENV=dotty\n").unwrap();
}

/// A loopback HTTP server answering `pong` to anything.
fn pong_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    port
}

/// Flattens a JSON value into `path -> value` pairs for a readable diff.
fn flatten(prefix: &str, value: &Json, out: &mut BTreeMap<String, String>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}/{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// The same requests, to the same app, with the same flags: the real Spin
/// and `trigger-kafka up` must answer alike.
#[test]
fn spin_and_trigger_kafka_give_a_component_the_same_host_interfaces() {
    let Some(_spin) = spin_or_skip("conformance") else {
        return;
    };
    let outbound = pong_server();
    let postgres = Postgres::start();
    let redis = Redis::start();
    let postgres_env = format!("PROBE_POSTGRES={}", postgres.url("postgres"));
    let flags = [
        "--runtime-config-file",
        "rc.toml",
        "--variable",
        "from_flag=flagged",
        "--env",
        "PROBE_FROM_FLAG=yes",
        "--env",
        &postgres_env,
        "--key-value",
        "probe:seeded=1",
    ];
    let env = [("SPIN_VARIABLE_FROM_ENV", "envy")];
    let spin_dir = TempDir::new("conformance-spin");
    conformance_app(&spin_dir.0, outbound, postgres.port, redis.port);
    let spin = SpinUp::start_waiting_for(&spin_dir.0, &flags, &env, Ready::HTTP);
    let host_dir = TempDir::new("conformance-host");
    conformance_app(&host_dir.0, outbound, postgres.port, redis.port);
    let host = Host::start_with_args(&host_dir.0, &env, &flags);

    let ask = |port: u16, path: &str, headers: &[(&str, &str)]| -> (u16, Json) {
        let (status, body) = http(port, "GET", path, headers, None);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Json::String(body)),
        )
    };
    let probe = format!("/probe?target=127.0.0.1:{outbound}");
    for (path, headers) in [
        (probe.as_str(), vec![]),
        ("/probe/headers/a/b?x=1&y=%C3%A9", vec![("x-custom", "v")]),
        ("/probe/nothing-here", vec![]),
    ] {
        let (spin_status, from_spin) = ask(spin.http_port, path, &headers);
        let (host_status, from_host) = ask(host.http_port, path, &headers);
        if path == probe {
            // The Postgres walk really ran (not two equal nulls).
            assert_eq!(
                from_host["postgres"]["execute insert every type"],
                json!({"ok": 1}),
                "{from_host:#}"
            );
            assert_eq!(
                from_host["key_value"]["cache"]["get"],
                json!({"ok": b"two"}),
                "{from_host:#}"
            );
        }
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &from_spin, &mut a);
        flatten("", &from_host, &mut b);
        let differences: Vec<String> = a
            .keys()
            .chain(b.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                format!(
                    "{k}\n    spin:          {:?}\n    trigger-kafka: {:?}",
                    a.get(k),
                    b.get(k)
                )
            })
            .collect();
        assert!(
            differences.is_empty() && spin_status == host_status,
            "{path}: status {spin_status} vs {host_status}; differences:\n{}",
            differences.join("\n")
        );
    }
    // Spin's own endpoints.
    for path in [
        "/.well-known/spin/health",
        "/.well-known/spin/info",
        "/nowhere",
    ] {
        assert_eq!(
            http(spin.http_port, "GET", path, &[], None),
            http(host.http_port, "GET", path, &[], None),
            "{path}"
        );
    }
    // A trapping component: Spin answers 500 with an empty body; so do we.
    assert_eq!(
        http(spin.http_port, "GET", "/probe/trap", &[], None),
        http(host.http_port, "GET", "/probe/trap", &[], None)
    );
}

/// A request whose header value is not UTF-8 (`clé` in Latin-1) never
/// reaches the component under either host. Spin fails it with a bare 500
/// (its HTTP trigger turns header values into strings first); this host
/// answers the client error it is, a 400 JSON error naming the header. The
/// difference is deliberate and documented; this test notices if Spin's
/// answer changes.
#[test]
fn a_non_utf8_header_never_reaches_the_component() {
    let Some(_spin) = spin_or_skip("non-UTF-8 header") else {
        return;
    };
    let raw = |port: u16| -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(
                b"POST /probe HTTP/1.1\r\nhost: x\r\nidempotency-key: cl\xe9\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let env = [("SPIN_VARIABLE_FROM_ENV", "envy")];
    let flags = ["--runtime-config-file", "rc.toml"];
    let spin_dir = TempDir::new("latin1-spin");
    conformance_app(&spin_dir.0, 9, 9, 9);
    let spin = SpinUp::start_waiting_for(&spin_dir.0, &flags, &env, Ready::HTTP);
    let host_dir = TempDir::new("latin1-host");
    conformance_app(&host_dir.0, 9, 9, 9);
    let host = Host::start_with_args(&host_dir.0, &env, &flags);
    let from_spin = raw(spin.http_port);
    assert!(
        from_spin.starts_with("HTTP/1.1 500") && from_spin.contains("content-length: 0"),
        "{from_spin}"
    );
    assert!(spin.logs().contains("incomplete utf-8 byte sequence"));
    let from_host = raw(host.http_port);
    assert!(from_host.starts_with("HTTP/1.1 400"), "{from_host}");
    assert!(
        from_host.contains(r#""field":"idempotency-key""#),
        "{from_host}"
    );
    // Neither ran the probe, whose first act is to write to SQLite.
    for dir in [&spin_dir.0, &host_dir.0] {
        assert_eq!(
            count(
                &dir.join(".spin/sqlite_db.db"),
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'probe_values'"
            ),
            0
        );
    }
}

/// Spin's trigger flags reach the plugins and mean what they mean to
/// Spin's own HTTP trigger: `-f <dir>`, `--state-dir` and `--log-dir`
/// (relative to the working directory), `--env`, `--variable`, `--sqlite`
/// and `--key-value`.
#[test]
fn spin_up_flags_reach_the_plugins() {
    let Some(_spin) = spin_or_skip("spin up flags") else {
        return;
    };
    let broker = Broker::start();
    broker.create_topics("flags-in", 1);
    let app = TempDir::new("flags-app");
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "flags"
[application.trigger.kafka]
brokers = "{{{{ kafka_brokers }}}}"
[variables]
kafka_brokers = {{ required = true }}
from_flag = {{ default = "unset" }}
[[trigger.http]]
route = "/probe/..."
component = "web"
[[trigger.kafka]]
component = "probe"
topics = ["flags-in"]
[component.web]
source = "{web}"
sqlite_databases = ["default"]
key_value_stores = ["default"]
[component.web.variables]
greeting = "hi"
from_env = "x"
from_flag = "{{{{ from_flag }}}}"
templated = "t"
from_dotenv = "d"
[component.probe]
source = "{probe}"
sqlite_databases = ["default"]
key_value_stores = ["default"]
[component.probe.variables]
from_flag = "{{{{ from_flag }}}}"
"#,
        web = wasm("spin_probe.wasm").display(),
        probe = wasm("kafka_probe.wasm").display(),
    );
    std::fs::write(app.0.join("spin.toml"), manifest).unwrap();
    let cwd = TempDir::new("flags-cwd");
    let app_dir = app.0.display().to_string();
    let brokers = broker.address();
    let up = SpinUp::start_exactly(
        &cwd.0,
        &[
            "-f",
            &app_dir,
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            "state",
            "--log-dir",
            "logs",
            "--env",
            "PROBE_FROM_FLAG=yes",
            "--variable",
            "from_flag=flagged",
            "--sqlite",
            "CREATE TABLE IF NOT EXISTS seeded (x)",
            "--key-value",
            "probe:seeded=1",
        ],
        &[
            ("SPIN_VARIABLE_KAFKA_BROKERS", &brokers),
            ("TRIGGER_KAFKA_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
        Ready {
            http: true,
            kafka: true,
            cron: false,
        },
    );
    broker.send(
        "flags-in",
        &[
            (
                "k",
                r#"{"id": "env", "action": "env:PROBE_FROM_FLAG"}"#.to_owned(),
            ),
            (
                "k",
                r#"{"id": "var", "action": "var:from_flag"}"#.to_owned(),
            ),
            (
                "k",
                r#"{"id": "print", "action": "print:hello from the plugin"}"#.to_owned(),
            ),
        ],
    );
    let db = cwd.0.join("state/sqlite_db.db");
    let notes = wait_for(
        "the probe's three messages",
        Duration::from_secs(60),
        || {
            let rows = query(&db, "SELECT id, note FROM handled ORDER BY offset");
            (rows.len() == 3).then_some(rows)
        },
    );
    assert_eq!(
        notes,
        [
            vec!["env".to_owned(), "yes".to_owned()],
            vec!["var".to_owned(), "flagged".to_owned()],
            vec!["print".to_owned(), "".to_owned()],
        ]
    );
    let stdout = std::fs::read_to_string(cwd.0.join("logs/probe_stdout.txt")).unwrap_or_default();
    let stderr = std::fs::read_to_string(cwd.0.join("logs/probe_stderr.txt")).unwrap_or_default();
    assert!(stdout.contains("hello from the plugin"), "{stdout:?}");
    assert!(stderr.contains("hello from the plugin"), "{stderr:?}");
    // Spin's HTTP trigger, on the same files.
    let (status, body) = http(up.http_port, "GET", "/probe", &[], None);
    assert_eq!(status, 200, "{body}");
    let seen: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["variables"]["get \"from_flag\""]["ok"], "flagged");
    assert_eq!(seen["environment"], json!([["PROBE_FROM_FLAG", "yes"]]));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('seeded', 'probe_values', 'handled')"),
        3,
        "--sqlite ran, and both hosts wrote the one database"
    );
    let kv = cwd.0.join("state/sqlite_key_value.db");
    assert_eq!(
        count(
            &kv,
            "SELECT COUNT(*) FROM spin_key_value WHERE key = 'probe:seeded'"
        ),
        1
    );
    assert!(
        !app.0.join(".spin").exists(),
        "--state-dir replaces <app>/.spin"
    );
}

/// The `kafka-rust` template as a Spin user meets it: installed from this
/// repository, `spin new` with the defaults (and this checkout's SDK, as
/// it is not on crates.io), `spin build`, then `spin up` with the plugin
/// against tansu, handling a message.
#[test]
fn a_project_from_the_kafka_rust_template_builds_and_handles_a_message() {
    let Some(spin) = spin_or_skip("kafka-rust template") else {
        return;
    };
    let (ok, text) = output(spin.command().current_dir(repo()).args([
        "templates",
        "install",
        "--dir",
        ".",
        "--update",
    ]));
    assert!(ok && text.contains("kafka-rust"), "{text}");
    let broker = Broker::start();
    broker.create_topics("events", 1);
    let work = TempDir::new("template");
    let (ok, text) = output(spin.command().current_dir(&work.0).args([
        "new",
        "-t",
        "kafka-rust",
        "hello-kafka",
        "--accept-defaults",
        "--value",
        &format!("kafka-brokers={}", broker.address()),
        "--value",
        &format!("sdk-path={}", repo().join("kafka/sdk").display()),
    ]));
    assert!(ok, "spin new failed:\n{text}");
    let project = work.0.join("hello-kafka");
    let manifest = std::fs::read_to_string(project.join("spin.toml")).unwrap();
    assert!(manifest.contains("[[trigger.kafka]]") && manifest.contains(r#"topics = ["events"]"#));
    // The project's own target directory, kept between runs (dependencies
    // compile once): a link, so `spin.toml`'s source path holds.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-rust-template-target");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&cache, project.join("target")).unwrap();
    let (ok, text) = output(
        spin.command()
            .current_dir(&project)
            .env_remove("CARGO_TARGET_DIR")
            .arg("build"),
    );
    assert!(ok, "spin build failed:\n{text}");
    let up = SpinUp::start_waiting_for(
        &project,
        &[],
        &[],
        Ready {
            http: false,
            kafka: true,
            cron: false,
        },
    );
    broker.send(
        "events",
        &[("greeting", "hello from the template".to_owned())],
    );
    let stdout = project.join(".spin/logs/hello-kafka_stdout.txt");
    wait_for(
        "the template's handler output",
        Duration::from_secs(60),
        || {
            let logged = std::fs::read_to_string(&stdout).unwrap_or_default() + &up.logs();
            logged
                .contains("events/0@0 key=greeting value=hello from the template")
                .then_some(())
        },
    );
}

/// Like [`output`], for a command that should exit at once: one still
/// running after 30 s (it accepted what it should refuse) is killed.
fn output_within(command: &mut Command) -> (bool, String) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    said(child.wait_with_output().unwrap())
}

/// A runtime config Spin refuses (a key it does not read, a field its
/// store type does not have) is refused by `trigger-kafka up` too, in the
/// same words, instead of being half applied.
#[test]
fn a_runtime_config_spin_refuses_is_refused_alike() {
    let Some(spin) = spin_or_skip("runtime config") else {
        return;
    };
    let dir = TempDir::new("runtime-config-refused");
    conformance_app(&dir.0, 9, 9, 9);
    for (config, said) in [
        (
            "[sqlite_databse.other]\ntype = \"spin\"\n",
            "unused runtime config key(s): sqlite_databse",
        ),
        (
            "[sqlite_database.other]\ntype = \"spin\"\npaht = \"other.db\"\n",
            "unknown field `paht`, expected `path`",
        ),
    ] {
        std::fs::write(dir.0.join("bad.toml"), config).unwrap();
        let up = [
            "--listen",
            "127.0.0.1:0",
            "--runtime-config-file",
            "bad.toml",
        ];
        let (spin_ok, from_spin) = output_within(
            spin.command()
                .current_dir(&dir.0)
                .env("SPIN_VARIABLE_FROM_ENV", "x")
                .arg("up")
                .args(up),
        );
        let (host_ok, from_host) = output_within(
            Command::new(host_bin())
                .current_dir(&dir.0)
                .env("SPIN_VARIABLE_FROM_ENV", "x")
                .args(["up", "--kafka-admin-listen", "off"])
                .args(up),
        );
        assert!(!spin_ok && from_spin.contains(said), "Spin: {from_spin}");
        assert!(
            !host_ok && from_host.contains(said),
            "trigger-kafka: {from_host}"
        );
    }
}
