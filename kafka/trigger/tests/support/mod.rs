//! End-to-end test support: a real tansu broker, the real trigger-kafka
//! binary running real Wasm components, Kafka clients, SQLite readers.

#![allow(dead_code)]

pub mod spin;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

pub use test_servers::free_port;

pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the first `marker` address (`marker` then `host:port`).
pub fn port_after(text: &str, marker: &str) -> Option<u16> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let address: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    address.rsplit_once(':')?.1.parse().ok()
}

pub use test_servers::TempDir;

pub fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin.into();
    }
    let cached =
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/todo-chatbot/tools/bin/tansu");
    assert!(
        cached.exists(),
        "tansu is not installed: run ./scripts/test.sh (it installs it), or set TANSU_BIN"
    );
    cached
}

/// The directory holding the built `.wasm` components.
pub fn wasm(name: &str) -> PathBuf {
    let dir = std::env::var("TODO_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/release")
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the components with ./scripts/test.sh",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The shipped app in `dir`: the repository's spin.toml with component
/// sources pointing at the built `.wasm` files (where `spin build` would
/// leave them), and `runtime-config/local.toml` as `runtime-config.toml`.
pub fn write_shipped_app(dir: &Path) {
    let manifest = std::fs::read_to_string(repo().join("spin.toml")).unwrap();
    let wasm_dir = wasm("todo_api.wasm").parent().unwrap().to_path_buf();
    let manifest = manifest.replace(
        "\"target/wasm32-wasip2/release/",
        &format!("\"{}/", wasm_dir.display()),
    );
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    std::fs::copy(
        repo().join("runtime-config/local.toml"),
        dir.join("runtime-config.toml"),
    )
    .unwrap();
}

/// Adds the index tansu's SQLite storage lacks (`kafka/tansu/indexes.sql`,
/// which says why), as `scripts/lib.sh` does for the app it runs.
/// tansu may listen a moment before it has created its tables, so this
/// waits for the `header` table first.
fn add_tansu_indexes(db: &Path) {
    let conn = wait_for("tansu's schema", Duration::from_secs(20), || {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .ok()?;
        conn.busy_timeout(Duration::from_secs(10)).ok()?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'header'",
                [],
                |row| row.get(0),
            )
            .ok()?;
        (tables == 1).then_some(conn)
    });
    conn.execute_batch(include_str!("../../../tansu/indexes.sql"))
        .expect("tansu's header index");
}

/// The shipped app (`spin.toml`, the components, its runtime config) in a
/// fresh directory under `trigger-kafka up`, on a broker of its own with
/// the project's topics: where most end-to-end tests start. `env` comes
/// after the broker address (`SPIN_VARIABLE_KAFKA_BROKERS`).
pub struct ShippedApp {
    // Dropped in this order: the host before its broker and files.
    pub host: Host,
    pub broker: Broker,
    pub dir: TempDir,
}

impl ShippedApp {
    pub fn start(name: &str, env: &[(&str, &str)]) -> ShippedApp {
        let broker = Broker::start();
        broker.apply_project_topics();
        let dir = TempDir::new(name);
        write_shipped_app(&dir.0);
        let brokers = broker.address();
        let mut all = vec![("SPIN_VARIABLE_KAFKA_BROKERS", brokers.as_str())];
        all.extend_from_slice(env);
        let host = Host::start_with_args(
            &dir.0,
            &all,
            &["--runtime-config-file", "runtime-config.toml"],
        );
        ShippedApp { host, broker, dir }
    }
}

/// The variables that put every store of the shipped app in `pg`.
pub fn postgres_variables(pg: &test_servers::postgres::Postgres) -> [(&'static str, String); 3] {
    [
        ("SPIN_VARIABLE_STORE", "postgres".to_owned()),
        ("SPIN_VARIABLE_POSTGRES_URL", pg.url("postgres")),
        (
            "SPIN_VARIABLE_POSTGRES_ORIGIN",
            format!("postgres://127.0.0.1:{}", pg.port),
        ),
    ]
}

/// The shipped app as `n` replicas, each `trigger-kafka up` in a directory
/// of its own (so each is a member of its own in every group). Drop the
/// hosts before the directories.
pub fn start_replicas(name: &str, n: usize, env: &[(&str, &str)]) -> (Vec<TempDir>, Vec<Host>) {
    let dirs: Vec<TempDir> = (0..n)
        .map(|i| TempDir::new(&format!("{name}{i}")))
        .collect();
    let hosts = dirs
        .iter()
        .map(|dir| {
            write_shipped_app(&dir.0);
            Host::start_with_args(
                &dir.0,
                env,
                &["--runtime-config-file", "runtime-config.toml"],
            )
        })
        .collect();
    (dirs, hosts)
}

/// A tansu broker with persistent SQLite storage; it can be stopped and
/// started again on the same port and data.
pub struct Broker {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        test_servers::start_on_spare_port("tansu", Broker::start_on)
    }

    /// A broker on `port`; Err when it cannot listen there.
    pub fn start_on(port: u16) -> Result<Broker, String> {
        let mut broker = Broker {
            port,
            dir: TempDir::new("tansu"),
            child: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Starts the broker again on its port and data, after [`Broker::stop`].
    pub fn resume(&mut self) {
        if let Err(why) = self.launch() {
            panic!("tansu did not start again on port {}: {why}", self.port);
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log_path = self.dir.0.join("tansu.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = Command::new(tansu_bin())
            .current_dir(&self.dir.0)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let child = self.child.insert(child);
        if let Err(why) =
            test_servers::wait_until_child_listens(child, self.port, Duration::from_secs(20))
        {
            self.stop();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("{why}; its log: {log}"));
        }
        add_tansu_indexes(&self.dir.0.join("tansu.db"));
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The project's topics (kafka/topics.toml), with `trigger-kafka topics apply`.
    pub fn apply_project_topics(&self) {
        let out = Command::new(host_bin())
            .args(["topics", "apply", "-t"])
            .arg(repo().join("kafka/topics.toml"))
            .args(["--brokers", &self.address()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A topic and its `.dlq` twin, as a Kafka trigger needs them.
    pub fn create_topics(&self, name: &str, partitions: i32) {
        self.create_topic(name, partitions);
        self.create_topic(&format!("{name}.dlq"), 1);
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let status = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &format!("tcp://{}", self.address()),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {name}");
    }

    pub fn producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .create()
            .unwrap()
    }

    /// Sends messages and waits until the broker has them all.
    pub fn send(&self, topic: &str, messages: &[(&str, String)]) {
        self.produce(topic, None, messages);
    }

    /// Sends messages to one partition and waits until the broker has them.
    pub fn send_to(&self, topic: &str, partition: i32, messages: &[(&str, String)]) {
        self.produce(topic, Some(partition), messages);
    }

    fn produce(&self, topic: &str, partition: Option<i32>, messages: &[(&str, String)]) {
        let producer = self.producer();
        for (key, value) in messages {
            let mut record = BaseRecord::to(topic).key(*key).payload(value.as_str());
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("messages delivered");
    }

    /// A consumer of `topic` from its beginning, in a group of its own that
    /// commits nothing.
    pub fn reader(&self, group: &str, topic: &str) -> BaseConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        consumer
    }

    /// Reads a whole topic from the beginning until `count` messages arrived.
    pub fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<Record> {
        let consumer = self.reader(&format!("reader-{}", free_port()), topic);
        let mut out = Vec::new();
        let started = Instant::now();
        while out.len() < count && started.elapsed() < timeout {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m
                        .payload()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn host_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trigger-kafka"))
}

/// The trigger host running `spin.toml` from an app directory.
pub struct Host {
    pub dir: PathBuf,
    pub http_port: u16,
    pub admin_port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    log: PathBuf,
}

impl Host {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Host {
        Self::start_with_args(dir, env, &[])
    }

    pub fn start_with_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Host {
        let mut host = Host {
            dir: dir.to_path_buf(),
            http_port: 0,
            admin_port: 0,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: dir.join("host.log"),
        };
        host.restart();
        host
    }

    /// Starts the host on ports the OS picks, and reads them from its log:
    /// no port can be taken by another test between choosing and binding.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let seen = self.logs().len();
        let child = Command::new(host_bin())
            .current_dir(&self.dir)
            .args([
                "up",
                "-f",
                "spin.toml",
                "--listen",
                "127.0.0.1:0",
                "--kafka-admin-listen",
                "127.0.0.1:0",
            ])
            .args(&self.args)
            // The readiness lines are at info: a caller may quieten the
            // debug lines with TRIGGER_KAFKA_LOG=info, not below.
            .env("TRIGGER_KAFKA_LOG", "info,trigger_kafka=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("trigger-kafka starts");
        self.child = Some(child);
        let (http, admin) = wait_for("the host to listen", Duration::from_secs(60), || {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("trigger-kafka exited with {status}:\n{}", self.logs());
                }
            }
            let logs = self.logs();
            let fresh = logs.get(seen..).unwrap_or("");
            if !fresh.contains("all triggers started") {
                return None;
            }
            // No HTTP port when the app has no HTTP trigger.
            let http = port_after(fresh, "Serving http://").unwrap_or(0);
            port_after(fresh, "metrics and health on http://").map(|admin| (http, admin))
        });
        self.http_port = http;
        self.admin_port = admin;
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// CPU time the host process has used (user + system).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    /// Resident memory of the host process, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.pid())
    }

    /// SIGKILL: no chance to commit or flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_sigterm(child.id());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "host did not stop on SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        http(self.http_port, method, path, headers, body)
    }

    pub fn metrics(&self) -> String {
        http(self.admin_port, "GET", "/metrics", &[], None).1
    }

    pub fn health(&self) -> u16 {
        http(self.admin_port, "GET", "/healthz", &[], None).0
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- trigger-kafka log ----\n{}", self.logs());
        }
        self.kill();
    }
}

/// The app's processes, whichever way it runs: `trigger-kafka up`, or
/// `spin up` with Spin serving HTTP and the plugins the rest.
pub enum Server {
    Host(Host),
    Spin(spin::SpinUp),
}

/// How a test runs the app.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Standalone,
    Spin,
}

impl Server {
    pub fn http_port(&self) -> u16 {
        match self {
            Server::Host(h) => h.http_port,
            Server::Spin(s) => s.http_port,
        }
    }

    /// The admin port of the process running the Kafka triggers.
    pub fn admin_port(&self) -> u16 {
        match self {
            Server::Host(h) => h.admin_port,
            Server::Spin(s) => s.admin_port,
        }
    }

    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        http(self.http_port(), method, path, headers, body)
    }

    /// SIGKILL the process running the Kafka triggers and the relay.
    pub fn kill(&mut self) {
        match self {
            Server::Host(h) => h.kill(),
            Server::Spin(s) => s.kill(),
        }
    }

    pub fn restart(&mut self) {
        match self {
            Server::Host(h) => h.restart(),
            Server::Spin(s) => s.restart(),
        }
    }

    pub fn logs(&self) -> String {
        match self {
            Server::Host(h) => h.logs(),
            Server::Spin(s) => s.logs(),
        }
    }

    pub fn metrics(&self) -> String {
        http(self.admin_port(), "GET", "/metrics", &[], None).1
    }
}

fn unsafe_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Resident memory of a process, in bytes (`VmRSS`).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) process `pid` has used, from `/proc`.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line.
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / per_second)
}

/// An HS256 JWT for `sub`, valid for an hour, with extra claims.
pub fn jwt(sub: &str, secret: &[u8], extra: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = serde_json::json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 3600});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// Sends raw bytes and reads the whole answer (until close or `wait`).
pub fn raw_http(port: u16, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// As [`http`], but `None` when nothing answers (connection refused or
/// reset: a server being restarted).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let body = body.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Some((status, body))
}

/// A minimal HTTP/1.1 client (one request per connection); status 0 when
/// nothing answers.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    try_http(port, method, path, headers, body).unwrap_or((0, String::new()))
}

pub fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// Rows of one query against a SQLite file the components wrote.
pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    if !db.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(_) => return Vec::new(), // table not created yet
    };
    let columns = stmt.column_count();
    stmt.query_map([], |row| {
        Ok((0..columns)
            .map(|i| match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
            })
            .collect())
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Outbox rows not yet published, over every database given.
pub fn unsent(dbs: &[&Path]) -> i64 {
    dbs.iter()
        .map(|db| count(db, "SELECT COUNT(*) FROM outbox WHERE sent_ms IS NULL"))
        .sum()
}

pub fn count(db: &Path, sql: &str) -> i64 {
    query(db, sql)
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every message of a topic: (key, partition, event id, ce_source, ce_sequence).
pub fn read_all(broker: &Broker, topic: &str) -> Vec<(String, i32, String, String, String)> {
    let consumer = broker.reader(&format!("reader-{topic}-{}", free_port()), topic);
    let mut out = Vec::new();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(4) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            idle_since = Instant::now();
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            out.push((
                m.key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default(),
                m.partition(),
                header("ce_id"),
                header("ce_source"),
                header("ce_sequence"),
            ));
        }
    }
    out
}

/// What `topics` hold: how often each event id was delivered, and where
/// one key's events from one source came out of `ce_sequence` order
/// (repeated deliveries are counted, not checked for order).
pub fn topic_report(
    broker: &Broker,
    topics: &[&str],
) -> (std::collections::HashMap<String, usize>, Vec<String>) {
    use std::collections::{BTreeMap, HashMap, HashSet};
    let mut on_topics: HashMap<String, usize> = HashMap::new();
    let mut order_breaks = Vec::new();
    for topic in topics {
        let messages = read_all(broker, topic);
        let mut first_seen: HashSet<String> = HashSet::new();
        let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
        for (key, _, id, source, sequence) in messages {
            *on_topics.entry(id.clone()).or_default() += 1;
            if !first_seen.insert(id.clone()) {
                continue; // a repeated delivery
            }
            let slot = (key.clone(), source);
            if let Some(before) = last.get(&slot) {
                if *before >= sequence {
                    order_breaks.push(format!("{topic} {key}: {before} then {sequence}"));
                }
            }
            last.insert(slot, sequence);
        }
    }
    (on_topics, order_breaks)
}

/// Headers for messages built by tests.
pub fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    for (k, v) in pairs {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    h
}

/// Requests a webhook received: headers (lower-case names) and body.
pub type Received = std::sync::mpsc::Receiver<(Vec<(String, String)>, String)>;

/// A webhook receiver on loopback: records each request, answers `status`.
pub fn webhook(status: u16) -> (u16, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let Some((k, v)) = line.trim_end().split_once(": ") else {
                    break;
                };
                headers.push((k.to_ascii_lowercase(), v.to_owned()));
            }
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = sender.send((headers, String::from_utf8(body).unwrap()));
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, receiver)
}

/// Groups with partitions this host sees assigned to no member.
pub fn stranded_groups(metrics: &str) -> Vec<String> {
    let mut groups: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("trigger_kafka_partitions_unassigned{"))
        .filter(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
        .filter_map(|l| {
            let rest = &l[l.find("group=\"")? + 7..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The app's consumer groups and the topics each reads.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("todo-audit", &["task-events", "reminders"]),
    ("todo-recurring", &["task-events"]),
    ("todo-reminder", &["reminders"]),
    ("todo-sync", &["task-updates"]),
];

/// Whether every group has committed up to each partition's end.
pub fn all_groups_caught_up(broker: &Broker) -> bool {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "burst-watermarks")
        .create()
        .unwrap();
    for (group, topics) in GROUPS {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.address())
            .set("group.id", *group)
            .create()
            .unwrap();
        for topic in *topics {
            let Ok(metadata) = probe.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
                return false;
            };
            let partitions = metadata.topics()[0].partitions().len() as i32;
            let mut list = rdkafka::topic_partition_list::TopicPartitionList::new();
            for p in 0..partitions {
                list.add_partition(topic, p);
            }
            let Ok(committed) = reader.committed_offsets(list, Duration::from_secs(5)) else {
                return false;
            };
            for p in 0..partitions {
                let Ok((_, high)) = probe.fetch_watermarks(topic, p, Duration::from_secs(5)) else {
                    return false;
                };
                let done = committed
                    .find_partition(topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(-1);
                if high > 0 && done < high {
                    return false;
                }
            }
        }
    }
    true
}
