//! One server process: start, stop, tokens, HTTP calls.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use realtime_server::auth::{now_secs, Auth, Claims};
use realtime_server::config::{Environment, Settings};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use super::{Client, ADMIN_KEY, SECRET, WAIT};

/// Settings the tests rely on; each test may add more TOML after these.
const BASE: &str = r#"
[server]
workers = 2
[rooms]
public = ["lobby", "public:*"]
[rate_limits]
commands_per_second = 100000
commands_burst = 100000
connections_per_ip_per_second = 1000
connections_per_ip_burst = 1000
"#;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    auth: Auth,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with the base settings plus `extra` TOML (tables in
    /// `extra` must not repeat those in BASE; use dotted keys for those).
    pub fn start(extra: &str) -> Server {
        Self::start_with_env(extra, &[])
    }

    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("test.toml");
        std::fs::write(&config, format!("{BASE}\n{extra}")).expect("write config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_realtime-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REALTIME_CONFIG", &config)
            .env("REALTIME_PORT", "0")
            .env("REALTIME_JWT_SECRET", SECRET)
            .env("REALTIME_ADMIN_TOKEN", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start realtime-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("realtime-server listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("server did not start; its log:\n{log}");
            }
        };
        let mut settings = Settings::load_from(&[]).unwrap().auth;
        settings.jwt_secret = SECRET.into();
        let auth = Auth::from_settings(&settings, Environment::Production).unwrap();
        Server {
            child,
            addr,
            auth,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: asks the process to shut down cleanly.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A token for `user` allowed into `rooms` (patterns), valid an hour.
    pub fn token(&self, user: &str, rooms: &[&str]) -> String {
        self.mint(Claims {
            sub: user.into(),
            exp: now_secs() + 3600,
            iat: Some(now_secs()),
            jti: None,
            name: Some(format!("{user} name")),
            rooms: Some(rooms.iter().map(|s| s.to_string()).collect()),
            role: None,
            iss: None,
            roles: None,
            aud: None,
        })
    }

    pub fn admin_jwt(&self) -> String {
        self.mint(Claims {
            role: Some("admin".into()),
            ..claims("root", 3600)
        })
    }

    pub fn mint(&self, claims: Claims) -> String {
        self.auth.mint(&claims).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connects with the token in the Authorization header.
    pub async fn connect(&self, user: &str, rooms: &[&str]) -> Client {
        let token = self.token(user, rooms);
        self.connect_with(&token, &[]).await.expect("connect")
    }

    /// Connects with `token` (header) and extra headers; the upgrade's
    /// HTTP refusal comes back as `Err((status, body))`.
    pub async fn connect_with(
        &self,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, (u16, Value)> {
        let bearer = format!("Bearer {token}");
        let mut all = headers.to_vec();
        if !token.is_empty() {
            all.push(("Authorization", &bearer));
        }
        self.connect_request("", &all).await
    }

    /// Connects with a raw URL query (e.g. `token=...`).
    pub async fn connect_query(&self, query: &str) -> Result<Client, (u16, Value)> {
        self.connect_request(query, &[]).await
    }

    /// Connects to `/ws?{query}` (no `?` when empty) with these headers.
    pub async fn connect_request(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, (u16, Value)> {
        let url = if query.is_empty() {
            format!("ws://{}/ws", self.addr)
        } else {
            format!("ws://{}/ws?{query}", self.addr)
        };
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut()
                .insert(name, HeaderValue::from_str(v).unwrap());
        }
        Client::open(req, None).await
    }

    /// Sends a WebSocket upgrade request for `/ws` with `token` as an HTTP
    /// request, for the refusals: status, the `Retry-After` header if any,
    /// and the JSON body.
    pub async fn refused_upgrade(&self, token: &str) -> (u16, Option<String>, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {token}\r\n\r\n",
            self.addr
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head, then as much body as Content-Length says.
        let (head, body_start) = loop {
            let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
                .await
                .expect("no answer to the upgrade")
                .unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buf[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&answer[..end]).to_string(), end + 4);
            }
        };
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert_ne!(status, 101, "the upgrade was accepted");
        let length: usize = header("Content-Length").map_or(0, |v| v.parse().unwrap());
        while answer.len() < body_start + length {
            let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
                .await
                .expect("body")
                .unwrap();
            assert!(n > 0, "body cut short");
            answer.extend_from_slice(&buf[..n]);
        }
        let body =
            serde_json::from_slice(&answer[body_start..body_start + length]).unwrap_or(Value::Null);
        (status, header("Retry-After"), body)
    }

    /// Connects over a socket with a tiny receive buffer (for slow-consumer tests).
    pub async fn connect_small_buffer(&self, user: &str, rooms: &[&str]) -> Client {
        let token = self.token(user, rooms);
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        Client::open(req, Some(4096)).await.expect("connect")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = awc::Client::default().get(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send().await.expect("GET");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (
            status,
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into())),
        )
    }

    /// This node's value of the `/metrics` series `name`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, 200, "{text}");
        series(&text, name, "")
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut res = awc::Client::default()
            .get(self.url(path))
            .send()
            .await
            .expect("GET");
        let body = res.body().await.expect("body");
        (res.status().as_u16(), String::from_utf8_lossy(&body).into())
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = awc::Client::default().post(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_json(&body).await.expect("POST");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Any method with the admin key and an optional JSON body: the
    /// status and the JSON answer (Null when there is none).
    pub async fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = awc::Client::default()
            .request(method, self.url(path))
            .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")));
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("admin request");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = awc::Client::default().delete(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send().await.expect("DELETE");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// POST with the admin key.
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.post(path, Some(ADMIN_KEY), body).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let (status, body) = self.get(path, Some(ADMIN_KEY)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Waits until `/ready` answers 200 (a cluster node has synced).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.get("/ready", None).await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /admin/stats` until `check` holds (cleanup is asynchronous).
    pub async fn wait_stats(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.admin_get("/admin/stats").await;
            if check(&stats) {
                return stats;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last stats: {stats}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failing test shows what the server said (the end of it).
            let log = self.log();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains(" INFO "))
                .rev()
                .take(40)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- server log (last 40 lines above INFO) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

/// The `userId` of each object in a JSON list (members, connections), in
/// order.
pub fn user_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| m["userId"].as_str().unwrap().to_string())
        .collect()
}

/// The value of the first line of series `name` in `/metrics` text whose
/// labels contain `labels` (`""`: any); panics when there is none.
pub fn series(text: &str, name: &str, labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {labels} in /metrics:\n{text}"))
}

pub fn claims(user: &str, ttl_secs: i64) -> Claims {
    Claims {
        sub: user.into(),
        exp: (now_secs() as i64 + ttl_secs) as u64,
        iat: Some(now_secs()),
        jti: None,
        name: None,
        rooms: None,
        role: None,
        iss: None,
        roles: None,
        aud: None,
    }
}

/// Runs the server binary to its exit with `args`, only PATH and `env` in
/// its environment, in `dir`, and at most `WAIT` (a regression that starts a
/// server instead of exiting is killed and fails the test). Returns whether
/// it succeeded and what it wrote to stderr (its log).
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_realtime-server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REALTIME_PORT", "0")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start realtime-server");
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("realtime-server {args:?} still running after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}
