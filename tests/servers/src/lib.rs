//! Private database servers for tests, one per test, stopped when dropped:
//! PostgreSQL (initdb + pg_ctl in a temp dir) and Redis, both from
//! Debian's packages (`scripts/test.sh` installs them), on spare ports,
//! never a system service.

pub mod postgres;
pub mod redis;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server on a spare port. A spare port is only spare when it is
/// chosen: another process may bind it, or a client may take it as its own
/// source port, before the server binds it. A server that lost its port
/// is started again on another one.
pub fn start_on_spare_port<T>(what: &str, start: impl FnMut(u16) -> Result<T, String>) -> T {
    start_on_ports(what, std::iter::repeat_with(free_port).take(3), start)
}

/// [`start_on_spare_port`] with the ports given, first to last.
pub fn start_on_ports<T>(
    what: &str,
    ports: impl IntoIterator<Item = u16>,
    mut start: impl FnMut(u16) -> Result<T, String>,
) -> T {
    let mut failures = Vec::new();
    for port in ports {
        match start(port) {
            Ok(server) => return server,
            Err(why) => {
                eprintln!("{what} did not start on port {port}, trying another: {why}");
                failures.push(format!("port {port}: {why}"));
            }
        }
    }
    panic!("{what} did not start: {}", failures.join("; "))
}

/// Waits until `child` listens on `port`; Err says why not: it exited
/// (the port was taken), or the time ran out.
pub fn wait_until_child_listens(
    child: &mut Child,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited ({status})"));
        }
        if listens_on(child.id(), port) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!("not listening after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` holds a TCP socket listening on `port`. A
/// connect() cannot tell: it may reach another process that took the port,
/// or connect to itself when the kernel picks `port` as its source port.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let sockets = listening_sockets(port);
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
    })
}

/// `socket:[inode]` of every TCP socket listening on `port`, as
/// /proc/net/tcp{,6} list them (local address `hex-ip:hex-port`, state
/// 0A = LISTEN, inode in the tenth column).
fn listening_sockets(port: u16) -> Vec<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let columns: Vec<&str> = line.split_whitespace().collect();
                    let local_port = columns.get(1)?.rsplit_once(':')?.1;
                    let listening = u16::from_str_radix(local_port, 16).ok()? == port
                        && *columns.get(3)? == "0A";
                    if !listening {
                        return None;
                    }
                    Some(format!("socket:[{}]", columns.get(9)?))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("ts-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::Command;

    #[test]
    fn a_listener_of_another_process_is_not_taken_for_the_server() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut idle = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(listens_on(std::process::id(), port));
        assert!(!listens_on(idle.id(), port));
        let waited = wait_until_child_listens(&mut idle, port, Duration::from_millis(300));
        assert!(waited.unwrap_err().contains("not listening"));
        idle.kill().unwrap();
        idle.wait().unwrap();
        let waited = wait_until_child_listens(&mut idle, port, Duration::from_secs(5));
        assert!(waited.unwrap_err().contains("exited"));
    }

    #[test]
    fn a_server_whose_port_was_taken_is_started_on_another() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let why = redis::Redis::start_on(taken_port)
            .err()
            .expect("port taken");
        assert!(why.contains("exited"), "{why}");

        let redis = start_on_ports("Redis", [taken_port, free_port()], redis::Redis::start_on);
        assert_ne!(redis.port, taken_port);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        stream.write_all(b"PING\r\n").unwrap();
        let mut reply = [0; 7];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
    }
}
