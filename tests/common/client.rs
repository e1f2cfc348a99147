//! One WebSocket connection to the server.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{QUIET, WAIT};

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
    pub(super) async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        recv_buffer: Option<u32>,
    ) -> Result<Client, (u16, Value)> {
        Self::open_from(req, recv_buffer, None).await
    }

    /// Like `open`, from a local address of the caller's choice (another
    /// loopback address, e.g. 127.0.0.2, stands for another machine).
    pub async fn open_from(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        recv_buffer: Option<u32>,
        local: Option<std::net::IpAddr>,
    ) -> Result<Client, (u16, Value)> {
        let host = req.uri().host().unwrap().to_string();
        let port = req.uri().port_u16().unwrap();
        let addr: SocketAddr = format!("{host}:{port}").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        if let Some(ip) = local {
            socket
                .bind(SocketAddr::new(ip, 0))
                .expect("bind the local address");
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

    /// Waits until the server has sent something this client has not read
    /// yet, without reading it.
    pub async fn wait_unread(&self) {
        let MaybeTlsStream::Plain(socket) = self.ws.get_ref() else {
            unreachable!("the tests use plain TCP")
        };
        tokio::time::timeout(WAIT, socket.readable())
            .await
            .expect("the server sent nothing")
            .unwrap();
    }

    /// Closes with `code` and `reason`, and returns the server's answering
    /// close frame (code and reason), skipping other frames before it.
    pub async fn close_with(&mut self, code: u16, reason: &str) -> (u16, String) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        self.ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            }))
            .await
            .expect("close");
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("no close frame in answer within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return (u16::from(f.code), f.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("read error instead of a close frame: {e}"),
                Ok(None) => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// The close frame the server sent (code and reason), reading past
    /// any other frames; panics if the connection ends without one.
    pub async fn close_frame(&mut self) -> (u16, String, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("connection still open after {WAIT:?}"),
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return (u16::from(f.code), f.reason.to_string(), before)
                }
                Ok(Some(Ok(Message::Text(t)))) => before.push(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame: {other:?}"),
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
