//! Test harness: starts the real `realtime-server` binary on a free port
//! and talks to it with a real WebSocket client and a real HTTP client.
#![allow(dead_code)]

pub mod raw;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use realtime_server::auth::{now_secs, Auth, Claims};
use realtime_server::config::{Environment, Settings};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "integration-test-secret-at-least-32-bytes";
pub const ADMIN_KEY: &str = "integration-admin-key";
/// How long to wait for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for a frame that must not come.
pub const QUIET: Duration = Duration::from_millis(300);

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
            iat: None,
            name: Some(format!("{user} name")),
            rooms: Some(rooms.iter().map(|s| s.to_string()).collect()),
            role: None,
            iss: None,
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
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        if !token.is_empty() {
            req.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut()
                .insert(name, HeaderValue::from_str(v).unwrap());
        }
        Client::open(req, None).await
    }

    /// Connects with a raw URL query (e.g. `token=...`).
    pub async fn connect_query(&self, query: &str) -> Result<Client, (u16, Value)> {
        let req = format!("ws://{}/ws?{query}", self.addr)
            .into_client_request()
            .unwrap();
        Client::open(req, None).await
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

pub fn claims(user: &str, ttl_secs: i64) -> Claims {
    Claims {
        sub: user.into(),
        exp: (now_secs() as i64 + ttl_secs) as u64,
        iat: None,
        name: None,
        rooms: None,
        role: None,
        iss: None,
        aud: None,
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// The TCP connection ended without a close frame (EOF or reset).
    Dropped,
}

pub struct Client {
    ws: Ws,
    /// Frames read while waiting for a reply, in order.
    pending: VecDeque<Value>,
    next_id: u64,
    pub connected: Value,
}

impl Client {
    async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        recv_buffer: Option<u32>,
    ) -> Result<Client, (u16, Value)> {
        let host = req.uri().host().unwrap().to_string();
        let port = req.uri().port_u16().unwrap();
        let addr: SocketAddr = format!("{host}:{port}").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(addr).await.expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        match tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await {
            Ok((ws, _)) => {
                let mut client = Client {
                    ws,
                    pending: VecDeque::new(),
                    next_id: 1,
                    connected: Value::Null,
                };
                let first = client.next().await;
                assert_eq!(first["type"], "connected", "{first}");
                client.connected = first;
                Ok(client)
            }
            Err(WsError::Http(res)) => {
                let status = res.status().as_u16();
                let body = res
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, body))
            }
            Err(e) => panic!("handshake failed: {e}"),
        }
    }

    pub fn user_id(&self) -> String {
        self.connected["userId"].as_str().unwrap().to_string()
    }

    pub fn connection_id(&self) -> String {
        self.connected["connectionId"].as_str().unwrap().to_string()
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(&frame.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_message(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends `command` with a fresh id and returns the frame answering it
    /// (a reply or an error); other frames are kept for `next`.
    pub async fn request(&mut self, command: Value) -> Value {
        self.request_within(command, WAIT).await
    }

    /// Like `request`, waiting up to `wait` for the answer.
    pub async fn request_within(&mut self, mut command: Value, wait: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        command["id"] = json!(id);
        self.send(command).await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .read(left)
                .await
                .unwrap_or_else(|| panic!("no answer to command {id}"));
            if frame["id"] == json!(id) {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Like `request`, but the answer must be a successful reply: its data.
    pub async fn ok(&mut self, command: Value) -> Value {
        self.ok_within(command, WAIT).await
    }

    /// Like `ok`, waiting up to `wait` for the answer.
    pub async fn ok_within(&mut self, command: Value, wait: Duration) -> Value {
        let answer = self.request_within(command.clone(), wait).await;
        assert_eq!(answer["type"], "reply", "command {command} got {answer}");
        assert_eq!(answer["ok"], true);
        answer["data"].clone()
    }

    /// Like `request`, but the answer must be an error: its code.
    pub async fn err(&mut self, command: Value) -> String {
        let answer = self.request(command.clone()).await;
        assert_eq!(answer["type"], "error", "command {command} got {answer}");
        answer["code"].as_str().unwrap().to_string()
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.ok(json!({"type": "room:join", "room": room})).await
    }

    /// The next server frame; panics if none comes in time.
    pub async fn next(&mut self) -> Value {
        match self.pending.pop_front() {
            Some(frame) => frame,
            None => self
                .read(WAIT)
                .await
                .expect("expected a frame from the server"),
        }
    }

    /// The next frame of type `ty`, skipping none: any other frame fails.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], ty, "expected {ty}, got {frame}");
        frame
    }

    /// Asserts that no frame arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Some(frame) = self.pending.pop_front() {
            panic!("expected no frame, got {frame}");
        }
        if let Some(frame) = self.read(QUIET).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Reads one JSON text frame within `wait`.
    async fn read(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("server sent invalid JSON"))
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    panic!("connection closed while reading: {frame:?}")
                }
                Ok(Some(Ok(_))) => continue, // ping/pong: tungstenite answers pings itself
                Ok(Some(Err(e))) => panic!("read error: {e}"),
                Ok(None) => panic!("connection ended while reading"),
            }
        }
    }

    /// The next frame, or how the connection ended.
    pub async fn next_or_close(&mut self) -> Result<Value, Closed> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON"))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Closed::Code(frame.map_or(1005, |f| u16::from(f.code))))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Closed::Dropped),
            }
        }
    }

    /// Reads until the connection ends; returns how, skipping other frames.
    pub async fn closed(&mut self, wait: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("connection still open after {wait:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return match frame {
                        Some(f) => Closed::Code(u16::from(f.code)),
                        None => Closed::Code(u16::from(CloseCode::Status)),
                    }
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Closed::Dropped,
            }
        }
    }

    /// Frames already read but not yet consumed, then whatever arrives
    /// within `QUIET`: everything the server has sent so far.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut frames: Vec<Value> = self.pending.drain(..).collect();
        while let Some(frame) = self.read(QUIET).await {
            frames.push(frame);
        }
        frames
    }
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL every test database is created in. CI and this machine run
/// one at 127.0.0.1:5432; tests that need it fail (never skip) without it.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty database for one test: a SQLite file in a temporary
/// directory, or a PostgreSQL database created for the test and dropped
/// afterwards.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .expect("psql must be installed to run the PostgreSQL tests");
    assert!(
        out.status.success(),
        "PostgreSQL at 127.0.0.1:5432 is required for these tests and did not accept `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("realtime.db").display());
                TestDb {
                    backend,
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("rt_test_{}", uuid::Uuid::new_v4().simple());
                psql(&format!("CREATE DATABASE {name}"));
                TestDb {
                    backend,
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Runs `sql` on this PostgreSQL test database; rows as `a|b` lines.
    pub fn query(&self, sql: &str) -> String {
        let name = self.pg_name.as_deref().expect("PostgreSQL only");
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                name,
                "-At",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The same database reached through `host:port` (a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let name = self
            .pg_name
            .as_deref()
            .expect("only PostgreSQL goes through a proxy");
        format!("postgres://postgres@{addr}/{name}")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

impl Server {
    /// Starts a server on `db` (its `DATABASE_URL`).
    pub fn start_on(db: &TestDb, extra: &str) -> Server {
        Self::start_with_env(extra, &[("DATABASE_URL", &db.url)])
    }
}

/// A TCP proxy to a real service that a test can cut and restore, to stop
/// "the database" without stopping the shared one.
pub struct Proxy {
    pub addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    /// Runs on a thread of its own, so it keeps forwarding while the test
    /// blocks (for instance while a server starts).
    pub fn start(target: &'static str) -> Proxy {
        use std::sync::atomic::Ordering;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up2.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns2.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Proxy { addr, up, conns }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// The Redis every cluster test uses, with a prefix of its own.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Starts node `node_id` of a cluster sharing `db` and the Redis at
/// `redis_url` under `prefix`, with fast liveness settings.
pub fn start_node(
    db: &TestDb,
    redis_url: &str,
    prefix: &str,
    node_id: &str,
    env: &[(&str, &str)],
) -> Server {
    let config = "[redis]\nheartbeat_ms = 200\nnode_ttl_ms = 1500\ngather_timeout_ms = 1000\ngap_timeout_ms = 300\nreconnect_max_backoff_ms = 500\n";
    let mut all = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        ("REALTIME__REDIS__PREFIX", prefix),
        ("REALTIME_NODE_ID", node_id),
    ];
    all.extend_from_slice(env);
    Server::start_with_env(config, &all)
}

/// A unique key prefix, so parallel tests share one Redis safely.
pub fn redis_prefix() -> String {
    format!("rt-test-{}", uuid::Uuid::new_v4().simple())
}

/// A redis-server of the test's own, on a free port, that it may stop.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut redis = PrivateRedis {
            port,
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
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the cluster tests");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
