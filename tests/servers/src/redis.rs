//! A private Redis server for one test: Debian's `redis-server` on a spare
//! port, nothing saved to disk, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{start_on_spare_port, wait_until_child_listens};

pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        start_on_spare_port("Redis", Redis::start_on)
    }

    /// A server on `port`; Err when it cannot listen there.
    pub fn start_on(port: u16) -> Result<Redis, String> {
        let child = Command::new(std::env::var("TODO_REDIS_SERVER").unwrap_or("redis-server".into()))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: scripts/test.sh installs it (apt-get install redis-server)");
        // Dropped on failure, which stops it.
        let mut redis = Redis { port, child };
        wait_until_child_listens(&mut redis.child, port, Duration::from_secs(20))?;
        Ok(redis)
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
