//! The real Spin CLI for Spin-mode tests: found on `PATH`, or unpacked from
//! the compressed binary the development machines and CI keep beside the
//! repository (`../shared/tools/`). With neither, Spin-mode tests print that
//! they were skipped and pass, so a fresh machine without Spin still runs
//! everything else.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;

/// The Spin release these tests were written against (SpinKube's shim).
pub const SPIN_VERSION: &str = "3.6.3";
const SHARED_SPIN: &str = "../shared/tools/spin-3.6.3-linux-amd64.xz";

/// A Spin CLI, with a private data directory where this run's build of
/// trigger-kafka is installed as the `trigger-kafka` and `trigger-cron`
/// plugins.
pub struct Spin {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    /// What `package.sh` wrote: plugin manifests and tarballs.
    pub packages: PathBuf,
}

fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Where a Spin binary comes from, or why there is none.
fn find_spin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SPIN_BIN") {
        return Ok(PathBuf::from(bin));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("spin");
            if candidate.is_file() && version_of(&candidate).is_some() {
                return Ok(candidate);
            }
        }
    }
    let shared = repo().join(SHARED_SPIN);
    if !shared.exists() {
        return Err(format!(
            "no `spin` on PATH and no {} (set SPIN_BIN to a Spin {SPIN_VERSION} binary)",
            shared.display()
        ));
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spin-cli");
    let bin = dir.join(format!("spin-{SPIN_VERSION}"));
    if version_of(&bin).is_none() {
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join(format!("spin.partial{}", std::process::id()));
        let out = std::fs::File::create(&partial).unwrap();
        let status = Command::new("xz")
            .args(["-dc"])
            .arg(&shared)
            .stdout(out)
            .status()
            .map_err(|e| format!("cannot run xz to unpack {}: {e}", shared.display()))?;
        if !status.success() {
            return Err(format!("xz could not unpack {}", shared.display()));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&partial, &bin).unwrap();
    }
    Ok(bin)
}

/// Packages this run's trigger-kafka with the repository's script and
/// installs both plugins into a fresh data directory.
fn install(bin: PathBuf) -> Spin {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("spin-mode-{}", std::process::id()));
    // Earlier runs' directories hold stale plugin builds; start clean.
    if let Ok(entries) = std::fs::read_dir(Path::new(env!("CARGO_TARGET_TMPDIR"))) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("spin-mode-")
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let data_dir = root.join("data");
    let packages = root.join("plugins");
    std::fs::create_dir_all(&data_dir).unwrap();
    let out = Command::new("bash")
        .arg(repo().join("kafka/plugin/package.sh"))
        .env("TRIGGER_KAFKA_BIN", host_bin())
        .env("PLUGIN_OUT", &packages)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "package.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spin = Spin {
        bin,
        data_dir,
        packages,
    };
    for plugin in ["trigger-kafka", "trigger-cron"] {
        let out = spin
            .command()
            .args(["plugins", "install", "--file"])
            .arg(spin.packages.join(format!("{plugin}.json")))
            .arg("--yes")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spin plugins install {plugin}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    spin
}

/// The Spin CLI with this run's plugins, or `None` (and a line saying why
/// Spin-mode tests are skipped).
pub fn spin() -> Option<&'static Spin> {
    static SPIN: OnceLock<Option<Spin>> = OnceLock::new();
    SPIN.get_or_init(|| match find_spin() {
        Ok(bin) => {
            let version = version_of(&bin).unwrap_or_default();
            assert!(
                version.starts_with(&format!("spin {SPIN_VERSION}")),
                "{} is `{version}`; these tests need Spin {SPIN_VERSION}",
                bin.display()
            );
            Some(install(bin))
        }
        Err(why) => {
            eprintln!("Spin-mode tests skipped: {why}");
            None
        }
    })
    .as_ref()
}

/// Runs the test body with Spin, or says it was skipped.
#[macro_export]
macro_rules! with_spin {
    ($name:literal, |$spin:ident| $body:block) => {
        match support::spin::spin() {
            Some($spin) => $body,
            None => eprintln!("skipped (no Spin CLI): {}", $name),
        }
    };
}

impl Spin {
    /// A `spin` command with the private data directory.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .env("SPIN_DATA_DIR", &self.data_dir)
            // No telemetry or update checks from tests.
            .env("SPIN_DISABLE_TELEMETRY", "1")
            // Spin's own log lines on stderr would break its reading of
            // the plugins' launch metadata.
            .env_remove("RUST_LOG");
        command
    }
}

/// `spin up` running an app, in its own process group so a test can send
/// the group a Ctrl-C as a terminal would. Spin listens on a port the OS
/// picks (`--listen 127.0.0.1:0`), and so do the plugins' admin listeners
/// unless the test chooses; the ports are read from the log.
pub struct SpinUp {
    pub dir: PathBuf,
    pub http_port: u16,
    /// trigger-kafka's admin port (0 if the app has no Kafka trigger).
    pub admin_port: u16,
    pub cron_admin_port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    /// What to wait for before the app counts as started.
    ready: Ready,
}

/// What a started `spin up` must show.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub http: bool,
    pub kafka: bool,
    pub cron: bool,
}

impl Ready {
    pub const ALL: Ready = Ready {
        http: true,
        kafka: true,
        cron: true,
    };
    pub const HTTP: Ready = Ready {
        http: true,
        kafka: false,
        cron: false,
    };
}

impl SpinUp {
    /// `spin up --listen 127.0.0.1:0 ARGS` in `dir`, admin listeners on
    /// free ports.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> SpinUp {
        Self::start_waiting_for(dir, args, env, Ready::ALL)
    }

    /// As [`SpinUp::start`], for an app with only some trigger types.
    pub fn start_waiting_for(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        ready: Ready,
    ) -> SpinUp {
        let mut all_env = vec![
            ("TRIGGER_KAFKA_ADMIN_LISTEN", "127.0.0.1:0"),
            ("TRIGGER_CRON_ADMIN_LISTEN", "127.0.0.1:0"),
        ];
        all_env.extend_from_slice(env);
        let mut all_args = vec!["--listen", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        Self::start_exactly(dir, &all_args, &all_env, ready)
    }

    /// `spin up ARGS` with nothing added.
    pub fn start_exactly(dir: &Path, args: &[&str], env: &[(&str, &str)], ready: Ready) -> SpinUp {
        let mut up = SpinUp {
            dir: dir.to_path_buf(),
            http_port: 0,
            admin_port: 0,
            cron_admin_port: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            log: dir.join("spin-up.log"),
            ready,
        };
        up.restart();
        up
    }

    pub fn restart(&mut self) {
        use std::os::unix::process::CommandExt;
        let spin = spin().expect("Spin is available");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let seen = self.logs().len();
        let mut command = spin.command();
        command
            .current_dir(&self.dir)
            .arg("up")
            .args(&self.args)
            .env("TRIGGER_KAFKA_LOG", "info,trigger_kafka=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        self.child = Some(command.spawn().expect("spin up starts"));
        let ready = self.ready;
        let (http, kafka, cron) = wait_for("spin up to serve", Duration::from_secs(90), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("spin up exited with {status}:\n{}", self.logs());
            }
            let logs = self.logs();
            let fresh = logs.get(seen..).unwrap_or("");
            let admin = |process: &str| {
                fresh
                    .lines()
                    .filter(|l| l.contains(&format!("({process})")))
                    .find_map(|l| port_after(l, "metrics and health on http://"))
            };
            let http = port_after(fresh, "Serving http://");
            let kafka = admin("trigger-kafka");
            let cron = admin("trigger-cron");
            let done = (!ready.http || http.is_some())
                && (!ready.kafka || kafka.is_some())
                && (!ready.cron || cron.is_some());
            done.then(|| (http.unwrap_or(0), kafka.unwrap_or(0), cron.unwrap_or(0)))
        });
        self.http_port = http;
        self.admin_port = kafka;
        self.cron_admin_port = cron;
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every process of the app: `spin up`, its trigger processes and the
    /// plugins they run.
    pub fn processes(&self) -> Vec<(u32, String)> {
        descendants(self.pid())
    }

    /// The pid of the process running `plugin` (e.g. `trigger-kafka`).
    pub fn plugin_pid(&self, plugin: &str) -> Option<u32> {
        self.processes()
            .into_iter()
            .find(|(_, exe)| exe.ends_with(&format!("/{plugin}/{plugin}")))
            .map(|(pid, _)| pid)
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the whole process group.
    /// Returns once `spin up` has exited; panics if it takes over 30 s.
    pub fn ctrl_c(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&format!("-{}", child.id()), "INT");
        wait_exit(&mut child, Duration::from_secs(30), || self.logs())
    }

    /// SIGKILL the process running Kafka triggers (no chance to commit);
    /// Spin then stops the rest of the app, as it does for any trigger
    /// that exits.
    pub fn kill(&mut self) {
        let pid = self
            .plugin_pid("trigger-kafka")
            .expect("trigger-kafka is running");
        signal(&pid.to_string(), "KILL");
        let mut child = self.child.take().expect("running");
        let status = wait_exit(&mut child, Duration::from_secs(30), || self.logs());
        assert!(!status.success(), "Spin noticed the plugin died");
        // Anything Spin left behind goes too.
        signal(&format!("-{}", child.id()), "KILL");
    }
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("---- spin up log ----\n{}", self.logs());
            }
            // The whole group, so no plugin outlives its test.
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
        }
    }
}

fn signal(target: &str, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), "--", target])
        .status();
}

fn wait_exit(
    child: &mut Child,
    limit: Duration,
    logs: impl Fn() -> String,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "spin up did not exit:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes below `root` (and `root`), with their executable paths.
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let exe = std::fs::read_link(entry.path().join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        parents.push((pid, ppid, exe));
    }
    let mut found = vec![];
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, exe) in &parents {
            if *pid == parent && found.iter().all(|(p, _)| p != pid) {
                found.push((*pid, exe.clone()));
            }
            if *ppid == parent {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Whether any process still runs an executable under `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let exe = std::fs::read_link(entry.path().join("exe")).ok()?;
            exe.to_string_lossy().starts_with(&prefix).then_some(pid)
        })
        .collect()
}
