//! Several nodes sharing Redis, and a private Redis a test may stop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{scaled_ms, Server, TestDb};

/// Starts node `node_id` of a cluster sharing `db` and the Redis at
/// `redis_url` under `prefix`, with fast liveness settings (a node is
/// given up after 4 s without a heartbeat: short enough for a test to
/// wait, long enough that a busy machine does not lose a live node).
pub fn start_node(
    db: &TestDb,
    redis_url: &str,
    prefix: &str,
    node_id: &str,
    env: &[(&str, &str)],
) -> Server {
    let config = format!(
        "[redis]\nheartbeat_ms = 200\nnode_ttl_ms = {}\ngather_timeout_ms = {}\ngap_timeout_ms = 300\nreconnect_max_backoff_ms = 500\n",
        scaled_ms(4000),
        scaled_ms(3000)
    );
    let mut all = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        ("REALTIME__REDIS__PREFIX", prefix),
        ("REALTIME_NODE_ID", node_id),
    ];
    all.extend_from_slice(env);
    Server::start_with_env(&config, &all)
}

/// Two nodes (`node-a`, `node-b`) sharing `db` and the tests' Redis under
/// a prefix of their own (returned too), both ready. Bind the nodes after
/// the database: they must stop before it goes.
pub async fn two_nodes(db: &TestDb) -> (String, Server, Server) {
    let prefix = redis_prefix();
    let a = start_node(db, super::redis_url(), &prefix, "node-a", &[]);
    a.wait_ready().await;
    let b = start_node(db, super::redis_url(), &prefix, "node-b", &[]);
    b.wait_ready().await;
    (prefix, a, b)
}

/// A unique key prefix, so parallel tests share one Redis safely.
pub fn redis_prefix() -> String {
    format!("rt-test-{}", uuid::Uuid::new_v4().simple())
}

/// A port below Linux's ephemeral range (32768 and up) that is free now.
/// A private Redis that a test stops and restarts stays on one port, and
/// while it is down the nodes keep reconnecting to that port: a port in the
/// ephemeral range can then be taken by one of those very connections
/// (a TCP self-connect), and the restarted server could not listen.
fn port_outside_the_ephemeral_range() -> u16 {
    let start = 20000 + (std::process::id() % 10000) as u16;
    (start..32000)
        .chain(20000..start)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("no free port below 32000")
}

/// A redis-server of the test's own, on a free port, that it may stop.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = PrivateRedis {
            port: port_outside_the_ephemeral_range(),
            child: None,
            _dir: dir,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let log = self._dir.path().join("redis.log");
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(&log)
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{}: {e}", super::services::redis_missing("a private port"))
            });
        let deadline = std::time::Instant::now() + super::WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("private redis-server exited ({status}): {}", log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "private redis-server did not start: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
