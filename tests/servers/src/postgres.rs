//! A private PostgreSQL server for one test: Debian's binaries, a data
//! directory in a temp dir, a spare port, no system service. As root (CI)
//! the server runs as the `postgres` user the package creates, since
//! Postgres refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{listens_on, start_on_spare_port, TempDir};

pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    _dir: TempDir,
}

/// Where `initdb` and `pg_ctl` are: `TODO_POSTGRES_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TODO_POSTGRES_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed: scripts/test.sh installs it (apt-get install postgresql)",
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// Starts a server with user `todo` (trust auth on 127.0.0.1 only).
    pub fn start() -> Postgres {
        let dir = TempDir::new("postgres");
        let data = dir.0.join("data");
        let as_postgres = is_root();
        let bin = bin_dir();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir.0)
                .status()
                .unwrap();
            assert!(status.success(), "chown to postgres failed");
        }
        let mut server = Postgres {
            port: 0,
            data,
            bin,
            as_postgres,
            _dir: dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                server.data.to_str().unwrap(),
                "-U",
                "todo",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        );
        start_on_spare_port("Postgres", |port| {
            server.port = port;
            server.launch()
        });
        server
    }

    /// Starts the server on its port and data (again, after
    /// [`Postgres::stop`]); Err when it cannot listen there.
    fn launch(&self) -> Result<(), String> {
        // TEST_POSTGRES_OPTIONS adds server options when investigating,
        // e.g. "-c log_statement=all".
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 {}",
            self.port,
            self.data.display(),
            std::env::var("TEST_POSTGRES_OPTIONS").unwrap_or_default()
        );
        let log = self.data.join("server.log");
        // -w: pg_ctl returns once the server accepts connections, or fails
        // when it exits (for one, when its port is taken).
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
        if !output.status.success() {
            return Err(format!("pg_ctl start failed: {}", server_log()));
        }
        // The first line of postmaster.pid is the server's pid.
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        match pid {
            Some(pid) if listens_on(pid, self.port) => Ok(()),
            _ => Err(format!(
                "the server does not listen on its port: {}",
                server_log()
            )),
        }
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }

    /// Starts a stopped server again on the same port and data.
    pub fn resume(&self) {
        if let Err(why) = self.launch() {
            panic!("Postgres did not start again on port {}: {why}", self.port);
        }
    }

    /// A URL for `database` (the default `postgres` one is always there).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://todo@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database, so tests sharing a server never meet.
    pub fn new_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Runs SQL through `psql`; None if it fails (a table not made yet).
    pub fn try_psql(&self, database: &str, sql: &str) -> Option<String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-d"])
            .arg(self.url(database))
            .args(["-c", sql])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs SQL through `psql`, stops the test if it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let output = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(database))
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
