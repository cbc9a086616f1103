//! A private Redis server for one test: Debian's `redis-server` on a spare
//! port, nothing saved to disk, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until_listening};

pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        let child = Command::new(std::env::var("TODO_REDIS_SERVER").unwrap_or("redis-server".into()))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: scripts/test.sh installs it (apt-get install redis-server)");
        wait_until_listening("Redis", port, Duration::from_secs(20));
        Redis { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
