//! The Session actor: one per WebSocket connection.
//!
//! It parses each frame once into a typed command, answers with a reply or
//! an error, forwards room work to the RoomRegistry and writes the events
//! the registry hands it. Every way out (client close, protocol error,
//! heartbeat timeout, expired token, kick, slow consumer, shutdown) ends in
//! `stopped()`, which runs the one cleanup: the registry forgets the
//! connection and the connection slot is released.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::{CloseCode, CloseReason, Item};
use actix_web::web::{Bytes, BytesMut};
use actix_web_actors::ws;
use bytestring::ByteString;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};

use super::room_registry::{
    Connect, ConnectionInfo, Disconnect, History, Join, Leave, PresenceOf, Publish, RoomRegistry,
    Typing, UpdateIdentity, UpdatePresence,
};
use crate::auth::{now_secs, Auth, AuthError, Identity};
use crate::limits::{ConnectionGuard, RateLimiters};
use crate::metrics::{inc, Metrics};
use crate::protocol::{
    close, decode, encode, timestamp, Closing, Command, CommandError, CommandId, DecodeLimits,
    ErrorCode, Event, Request, PROTOCOL_VERSION,
};
use crate::store::notifications::{Notifications, ReadOutcome};
use crate::store::now_ms;
use crate::store::records::{Record, Records};

pub type ConnId = uuid::Uuid;

/// How long a command may wait for the registry before `UNAVAILABLE`, at
/// the least: commands that wait for the database get its timeout plus
/// this (see [`SessionConfig::registry_timeout`]).
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);
/// After sending a close frame, how long the server waits for the client's
/// close frame before it drops the TCP connection. Dropping at once would
/// reset a client that is still answering pings, losing the close code.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Where a connection's socket is, noted when it is accepted, so that a
/// jammed WebSocket can be shut down from outside its session without
/// holding a second descriptor. The descriptor number alone could name a
/// later connection once this one closes; the socket's inode tells them
/// apart.
#[derive(Debug, Clone, Copy)]
pub struct ConnSocket {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

impl ConnSocket {
    pub fn of(socket: &impl AsRawFd) -> std::io::Result<Self> {
        let fd = socket.as_raw_fd();
        let meta = Self::borrow(fd).metadata()?;
        Ok(ConnSocket {
            fd,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The descriptor as a `File` that never closes it.
    fn borrow(fd: RawFd) -> ManuallyDrop<File> {
        // SAFETY: the `File` is never dropped, so it never closes `fd`; the
        // calls made on it (fstat, shutdown) are harmless on a descriptor
        // that is closed (EBADF) or names something else (checked first).
        ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
    }

    /// Shuts the socket down if the descriptor still names it; true if it
    /// did. Must run on the worker thread that owns the connection: only
    /// that thread closes it, so it cannot close between the check and the
    /// shutdown.
    fn shut_down(&self) -> bool {
        let same = Self::borrow(self.fd)
            .metadata()
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if !same {
            return false;
        }
        // SAFETY: as in `borrow`; the stream is never dropped.
        let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(self.fd) });
        stream.shutdown(SocketShutdown::Both).is_ok()
    }
}

/// State shared between a session and the registry that does not need the
/// session to run: the registry marks a slow consumer here, and a timer
/// shuts the socket down if the session is too jammed to close itself.
pub struct ConnHandle {
    slow: AtomicBool,
    closed: AtomicBool,
    /// Messages in this session's mailbox; what is left when the handle
    /// drops was discarded with the session, and leaves the depth gauge.
    queued: AtomicU64,
    metrics: Arc<Metrics>,
    /// The connection's socket and the worker thread that owns it.
    socket: Option<(ConnSocket, ArbiterHandle)>,
}

impl ConnHandle {
    /// `socket` is the connection's, and this runs on its worker thread.
    pub fn new(socket: Option<ConnSocket>, metrics: Arc<Metrics>) -> Arc<Self> {
        let socket = socket.and_then(|s| Arbiter::try_current().map(|worker| (s, worker)));
        Arc::new(ConnHandle {
            slow: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            metrics,
            socket,
        })
    }

    /// A message was put in the session's mailbox.
    pub fn enqueued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.metrics.session_mailbox.sent();
    }

    /// The session took a message from its mailbox.
    fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.metrics.session_mailbox.handled();
    }

    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }

    /// Marks the connection slow; true only the first time.
    pub fn mark_slow(&self) -> bool {
        !self.slow.swap(true, Ordering::AcqRel)
    }

    /// Shuts the TCP connection down unless the session already ended. The
    /// blocked write then fails, the connection is dropped and the session
    /// stops, running its cleanup. The shutdown itself runs on the
    /// connection's worker thread (see `ConnSocket::shut_down`).
    pub fn shut_down_socket(&self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Some((socket, worker)) = &self.socket {
            let socket = *socket;
            worker.spawn_fn(move || {
                if socket.shut_down() {
                    log::warn!("shut down a jammed connection's socket");
                }
            });
        }
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        let left = self.queued.load(Ordering::Relaxed);
        self.metrics.session_mailbox.discarded(left);
    }
}

/// The session's share of the settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub mailbox: usize,
    pub max_frame_bytes: usize,
    /// Most frames one fragmented message may arrive in.
    pub max_fragments: usize,
    /// How long a command waits for the registry's answer: longer than any
    /// database wait behind it, so the sender gets the documented answer
    /// (e.g. the commit timeout), never a bare "registry did not answer".
    pub registry_timeout: Duration,
    pub decode: DecodeLimits,
    pub flood_close_after: u32,
    /// Unread notifications replayed right after `connected`.
    pub notifications_on_connect: usize,
}

/// What every session needs, built once at start-up.
pub struct SessionDeps {
    pub registry: Addr<RoomRegistry>,
    pub auth: Arc<Auth>,
    pub limiters: Arc<RateLimiters>,
    pub metrics: Arc<Metrics>,
    pub notifications: Notifications,
    pub records: Arc<Records>,
    pub cfg: SessionConfig,
}

pub struct Session {
    id: ConnId,
    wire_id: String,
    identity: Arc<Identity>,
    deps: Arc<SessionDeps>,
    handle: Arc<ConnHandle>,
    info: Option<ConnectionInfo>,
    last_heard: Instant,
    last_ping: Instant,
    /// RATE_LIMITED answers in a row.
    strikes: u32,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut, usize)>,
    closing: Option<(u16, String)>,
    _slot: ConnectionGuard,
}

impl Session {
    pub fn new(
        id: ConnId,
        identity: Identity,
        deps: Arc<SessionDeps>,
        handle: Arc<ConnHandle>,
        info: ConnectionInfo,
        slot: ConnectionGuard,
    ) -> Self {
        let now = Instant::now();
        Session {
            wire_id: info.connection_id.clone(),
            id,
            identity: Arc::new(identity),
            deps,
            handle,
            info: Some(info),
            last_heard: now,
            last_ping: now,
            strikes: 0,
            partial: None,
            closing: None,
            _slot: slot,
        }
    }

    fn send_event(&self, ctx: &mut ws::WebsocketContext<Self>, event: &Event<'_>) {
        ctx.text(encode(event));
    }

    /// Closes the connection with `code`; the first reason given wins.
    /// Closes for one of the server's own reasons (the table in `errors`).
    fn close_for(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: Closing) {
        self.close(ctx, why.code(), why.reason());
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some((code, reason.to_string()));
        ctx.close(Some(CloseReason {
            code: CloseCode::from(code),
            description: Some(close_description(reason)),
        }));
        ctx.run_later(CLOSE_LINGER, |_, ctx| ctx.stop());
    }

    fn answer(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<&CommandId>,
        result: Result<Value, CommandError>,
    ) {
        match result {
            Ok(data) => {
                if let Some(id) = id {
                    self.send_event(ctx, &Event::Reply { id, ok: true, data });
                }
            }
            Err(error) => {
                inc(&self.deps.metrics.command_errors);
                if matches!(error.code, ErrorCode::Internal | ErrorCode::Unavailable) {
                    let detail = json!({ "code": error.code, "message": error.message });
                    let user = Some(&*self.identity.user_id);
                    self.deps
                        .records
                        .audit("error", user, Some(&self.wire_id), detail);
                }
                self.send_event(ctx, &Event::Error { id, error: &error });
            }
        }
    }

    /// Sends `msg` to the registry and answers the command when it replies.
    fn ask<M, T>(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        msg: M,
        data: impl FnOnce(T) -> Value + Send + 'static,
    ) where
        M: Message<Result = Result<T, CommandError>> + Send + 'static,
        T: Send + 'static,
        RoomRegistry: Handler<M>,
    {
        self.deps.metrics.registry_mailbox.sent();
        let request = self
            .deps
            .registry
            .send(msg)
            .timeout(self.deps.cfg.registry_timeout);
        // The wait is a task of its own that hands the answer back as a
        // message, not a future spawned in this context: actix polls every
        // future in a context whenever the session wakes (each delivered
        // frame), so a client with many commands in flight made every
        // delivery cost that many polls.
        let session = ctx.address();
        actix::spawn(async move {
            let result = match request.await {
                Ok(r) => r.map(data),
                Err(MailboxError::Timeout) => Err(CommandError::new(
                    ErrorCode::Unavailable,
                    "the room registry did not answer in time",
                )),
                Err(MailboxError::Closed) => Err(CommandError::new(
                    ErrorCode::Internal,
                    "the room registry is not running",
                )),
            };
            session.do_send(Answered { id, result });
        });
    }

    /// Charges one frame to the user's command budget. Every frame a client
    /// sends is charged (commands, binary frames, pings, pongs; a fragmented
    /// message once, when it is whole), so nothing keeps a core busy for free.
    /// Over budget, answers `RATE_LIMITED` (with the command's id, if any),
    /// closes with 4008 after `flood_close_after` refusals in a row, and
    /// returns false: the frame is then not acted on.
    fn charge(&mut self, ctx: &mut ws::WebsocketContext<Self>, id: Option<&CommandId>) -> bool {
        let Err(wait) = self.deps.limiters.check_command(&self.identity.user_id) else {
            self.strikes = 0;
            return true;
        };
        let metrics = self.deps.metrics.clone();
        inc(&metrics.rate_limited);
        self.strikes += 1;
        if self.strikes == 1 {
            let user = Some(&*self.identity.user_id);
            self.deps
                .records
                .audit("rate_limited", user, Some(&self.wire_id), json!({}));
        }
        let ms = (wait.as_millis() as u64).max(1);
        self.answer(ctx, id, Err(CommandError::rate_limited(ms)));
        if self.strikes >= self.deps.cfg.flood_close_after {
            inc(&metrics.flood_closes);
            self.close_for(ctx, Closing::Flood);
        }
        false
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        inc(&self.deps.metrics.commands);
        let decoded = decode(text, &self.deps.cfg.decode);
        let id = match &decoded {
            Ok(r) => r.id.as_ref(),
            Err(r) => r.id.as_ref(),
        };
        if !self.charge(ctx, id) {
            return;
        }
        match decoded {
            Ok(request) => self.dispatch(request, ctx),
            Err(rejected) => self.answer(ctx, rejected.id.as_ref(), Err(rejected.error)),
        }
    }

    fn dispatch(&mut self, request: Request, ctx: &mut ws::WebsocketContext<Self>) {
        let Request { id, command } = request;
        let conn = self.id;
        match command {
            Command::Ping => {
                let server_time = timestamp(Utc::now());
                self.send_event(
                    ctx,
                    &Event::Pong {
                        id: id.as_ref(),
                        server_time,
                    },
                );
            }
            Command::Join { room, since } => {
                self.ask(
                    ctx,
                    id,
                    Join {
                        id: conn,
                        room,
                        since,
                    },
                    to_value,
                );
            }
            Command::Leave { room } => {
                let data = json!({ "room": room });
                self.ask(ctx, id, Leave { id: conn, room }, move |()| data);
            }
            Command::Send {
                room,
                content,
                thread_id,
                metadata,
                client_msg_id,
            } => {
                let msg = Publish {
                    id: conn,
                    room,
                    content,
                    thread_id,
                    metadata,
                    client_msg_id,
                };
                self.ask(ctx, id, msg, to_value);
            }
            Command::Typing {
                room,
                thread_id,
                active,
            } => {
                let msg = Typing {
                    id: conn,
                    room,
                    thread_id,
                    active,
                };
                self.ask(ctx, id, msg, |()| json!({}));
            }
            Command::PresenceUpdate {
                status,
                custom_status,
            } => {
                let msg = UpdatePresence {
                    id: conn,
                    status,
                    custom_status,
                };
                self.ask(ctx, id, msg, |()| json!({}));
            }
            Command::PresenceGet { room } => {
                self.ask(
                    ctx,
                    id,
                    PresenceOf { id: conn, room },
                    |members| json!({ "members": members }),
                );
            }
            Command::HistoryGet {
                room,
                before,
                limit,
            } => {
                let msg = History {
                    id: conn,
                    room,
                    before,
                    limit,
                };
                self.ask(ctx, id, msg, |messages| json!({ "messages": messages }));
            }
            Command::NotificationRead { notification_id } => {
                let store = self.deps.notifications.clone();
                let user = self.identity.user_id.clone();
                let read = async move { store.mark_read(&user, &notification_id).await };
                ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
                    let result = match res {
                        Ok(ReadOutcome::Marked | ReadOutcome::AlreadyRead) => Ok(json!({})),
                        Ok(ReadOutcome::Unknown) => Err(CommandError::bad_request(
                            "no such notification for this user",
                        )),
                        Err(e) => Err(CommandError::new(ErrorCode::Unavailable, e.to_string())),
                    };
                    act.answer(ctx, id.as_ref(), result);
                }));
            }
            Command::AuthRefresh { token } => {
                let result = self.refresh(&token, ctx);
                self.answer(ctx, id.as_ref(), result);
            }
        }
    }

    fn refresh(
        &mut self,
        token: &str,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Result<Value, CommandError> {
        if self.identity.expires_at.is_none() {
            return Err(CommandError::bad_request(
                "anonymous connections have no token to refresh",
            ));
        }
        let claims = self.deps.auth.verify(token).map_err(|e| match e {
            AuthError::Expired => CommandError::new(ErrorCode::Unauthorized, "token has expired"),
            other => CommandError::new(ErrorCode::Unauthorized, other.to_string()),
        })?;
        if *claims.sub != *self.identity.user_id {
            return Err(CommandError::new(
                ErrorCode::Unauthorized,
                "the new token is for a different user (sub)",
            ));
        }
        let identity = Arc::new(Identity::from_claims(claims));
        let expires = identity.expires_at.unwrap_or_default();
        self.identity = identity.clone();
        self.deps.metrics.registry_mailbox.sent();
        self.deps.registry.do_send(UpdateIdentity {
            id: self.id,
            identity,
        });
        self.schedule_expiry(ctx);
        let expires_at = chrono::DateTime::from_timestamp(crate::store::db_int(expires), 0)
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        Ok(json!({ "expiresAt": timestamp(expires_at) }))
    }

    /// Closes with 4001 when the current token expires, unless refreshed.
    fn schedule_expiry(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(exp) = self.identity.expires_at else {
            return;
        };
        // The same leeway the handshake allowed, so a token accepted late is
        // not closed at once.
        let leeway = self.deps.auth.leeway_secs();
        let deadline = exp + leeway;
        let left =
            Duration::from_secs(deadline.saturating_sub(now_secs())) + Duration::from_millis(50);
        ctx.run_later(left, move |act, ctx| {
            if act
                .identity
                .expires_at
                .is_some_and(|exp| now_secs() >= exp + leeway)
            {
                inc(&act.deps.metrics.token_expired_closes);
                act.close_for(ctx, Closing::TokenExpired);
            }
        });
    }

    /// Unread notifications, right after `connected`: an offline user gets
    /// what was sent meanwhile, each connection once.
    fn replay_notifications(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let limit = self.deps.cfg.notifications_on_connect;
        if limit == 0 {
            return;
        }
        let store = self.deps.notifications.clone();
        let user = self.identity.user_id.clone();
        let unread = async move { store.unread(&user, limit).await };
        ctx.spawn(unread.into_actor(self).map(|res, act, ctx| match res {
            Ok(list) if !list.is_empty() => {
                for n in &list {
                    act.send_event(ctx, &Event::Notification(n));
                }
                act.deps.records.send(Record::NotificationsDelivered {
                    ids: list.into_iter().map(|n| n.notification_id).collect(),
                    at: now_ms(),
                });
            }
            Ok(_) => {}
            // They stay unread and come with the next connection.
            Err(e) => log::warn!("conn={}: unread notifications not loaded: {e}", act.wire_id),
        }));
    }

    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let cfg = &self.deps.cfg;
        let (interval, timeout) = (cfg.heartbeat_interval, cfg.heartbeat_timeout);
        let tick = interval.min(timeout / 4).max(Duration::from_millis(10));
        ctx.run_interval(tick, move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                inc(&act.deps.metrics.heartbeat_closes);
                act.close_for(ctx, Closing::HeartbeatTimeout);
                return;
            }
            if act.last_ping.elapsed() >= interval {
                act.last_ping = Instant::now();
                ctx.ping(b"");
            }
        });
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let max = self.deps.cfg.max_frame_bytes;
        let (first, bytes, last): (Option<bool>, Bytes, bool) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (first, self.partial.as_mut()) {
            (Some(is_text), None) => self.partial = Some((is_text, BytesMut::from(&bytes[..]), 1)),
            (None, Some((_, buf, count))) => {
                buf.extend_from_slice(&bytes);
                *count += 1;
            }
            _ => {
                self.close_for(ctx, Closing::UnexpectedContinuation);
                return;
            }
        }
        if self.partial.as_ref().is_some_and(|(_, b, _)| b.len() > max) {
            self.partial = None;
            self.close_for(ctx, Closing::MessageTooLarge);
            return;
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|(_, _, n)| *n > self.deps.cfg.max_fragments)
        {
            self.partial = None;
            self.close_for(ctx, Closing::TooManyFragments);
            return;
        }
        if last {
            let (is_text, buf, _) = self.partial.take().expect("checked above");
            if !is_text {
                self.on_binary(ctx);
                return;
            }
            match ByteString::try_from(buf.freeze()) {
                Ok(text) => self.on_text(&text, ctx),
                Err(_) => self.close_for(ctx, Closing::InvalidUtf8Message),
            }
        }
    }

    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.charge(ctx, None) {
            return;
        }
        let error =
            CommandError::bad_request("binary frames are not supported: send JSON in text frames");
        self.answer(ctx, None, Err(error));
    }
}

/// A close frame's reason is limited to 123 bytes (RFC 6455, 5.5.1).
fn close_description(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

fn to_value<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.deps.cfg.mailbox);
        inc(&self.deps.metrics.connections_opened);
        let connected = Event::Connected {
            connection_id: &self.wire_id,
            user_id: &self.identity.user_id,
            server_time: timestamp(Utc::now()),
            protocol_version: PROTOCOL_VERSION,
            heartbeat_interval_ms: self.deps.cfg.heartbeat_interval.as_millis() as u64,
        };
        self.send_event(ctx, &connected);
        let info = self.info.take().expect("started runs once");
        let records = &self.deps.records;
        records.send(Record::ConnectionOpened {
            connection_id: self.wire_id.clone(),
            user_id: self.identity.user_id.to_string(),
            remote_addr: info.remote_addr.clone(),
            user_agent: info.user_agent.clone(),
            at: now_ms(),
        });
        // A new connection starts online, like the tracker's entry.
        records.send(Record::Presence {
            user_id: self.identity.user_id.to_string(),
            status: "online".into(),
            custom_status: None,
            at: now_ms(),
        });
        let detail = json!({ "remoteAddr": info.remote_addr });
        records.audit(
            "connect",
            Some(&self.identity.user_id),
            Some(&self.wire_id),
            detail,
        );
        log::info!(
            "connect conn={} user={} addr={}",
            self.wire_id,
            self.identity.user_id,
            info.remote_addr.as_deref().unwrap_or("-")
        );
        // do_send on purpose: the registry must learn of the connection
        // before its first command, and must never lose this message.
        self.deps.metrics.registry_mailbox.sent();
        self.deps.registry.do_send(Connect {
            id: self.id,
            identity: self.identity.clone(),
            addr: ctx.address(),
            handle: self.handle.clone(),
            info,
        });
        self.heartbeat(ctx);
        self.schedule_expiry(ctx);
        self.replay_notifications(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.handle.mark_closed();
        inc(&self.deps.metrics.connections_closed);
        let (code, reason) = self
            .closing
            .clone()
            .unwrap_or((close::NORMAL, "connection ended".into()));
        log::info!(
            "disconnect conn={} user={} code={} reason={:?}",
            self.wire_id,
            self.identity.user_id,
            code,
            reason
        );
        let records = &self.deps.records;
        records.send(Record::ConnectionClosed {
            connection_id: self.wire_id.clone(),
            user_id: self.identity.user_id.to_string(),
            code,
            at: now_ms(),
        });
        let detail = json!({ "code": code, "reason": reason });
        records.audit(
            "disconnect",
            Some(&self.identity.user_id),
            Some(&self.wire_id),
            detail,
        );
        // do_send on purpose: cleanup must happen even when the registry
        // is busy, and a stopped actor cannot wait for mailbox space.
        self.deps.metrics.registry_mailbox.sent();
        self.deps.registry.do_send(Disconnect { id: self.id });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        if self.closing.is_some() {
            // Our close frame is out: wait only for the client's answer.
            if let Ok(ws::Message::Close(_)) = msg {
                ctx.stop();
            }
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.on_binary(ctx),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => {
                if self.charge(ctx, None) {
                    ctx.pong(&payload);
                }
            }
            Ok(ws::Message::Pong(_)) => {
                self.charge(ctx, None);
            }
            Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                let code = reason.as_ref().map_or(close::NORMAL, |r| u16::from(r.code));
                self.closing
                    .get_or_insert((code, "closed by client".into()));
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                self.close_for(ctx, Closing::FrameTooLarge);
            }
            Err(err) => {
                let text = err.to_string();
                if text.to_ascii_lowercase().contains("utf-8") {
                    self.close_for(ctx, Closing::InvalidUtf8Frame);
                } else {
                    self.close_for(ctx, Closing::ProtocolError);
                }
            }
        }
    }
}

/// An event for the client, already serialised (shared by all receivers).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub ByteString);

impl Handler<Deliver> for Session {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.handle.dequeued();
        if self.handle.is_slow() {
            self.close_for(ctx, Closing::SlowConsumer);
            return;
        }
        if self.closing.is_none() {
            ctx.text(msg.0);
        }
    }
}

/// The registry's answer to one of this session's commands (see `ask`).
#[derive(Message)]
#[rtype(result = "()")]
struct Answered {
    id: Option<CommandId>,
    result: Result<Value, CommandError>,
}

impl Handler<Answered> for Session {
    type Result = ();
    fn handle(&mut self, msg: Answered, ctx: &mut Self::Context) {
        self.answer(ctx, msg.id.as_ref(), msg.result);
    }
}

/// Close the connection with `code` (kick, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub code: u16,
    pub reason: String,
}

impl Handler<Shutdown> for Session {
    type Result = ();
    fn handle(&mut self, msg: Shutdown, ctx: &mut Self::Context) {
        self.handle.dequeued();
        self.close(ctx, msg.code, &msg.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::{close_description, ConnSocket};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_description("spam"), "spam");
        let long = "é".repeat(100);
        let cut = close_description(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
        assert_eq!(cut.len(), 122);
    }

    #[test]
    fn a_socket_is_shut_down_only_while_its_descriptor_still_names_it() {
        use std::io::{Read, Write};
        use std::net::TcpListener;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let first = TcpStream::connect(addr).unwrap();
        let noted = ConnSocket::of(&first).unwrap();
        let fd = first.as_raw_fd();
        drop(first);
        assert!(!noted.shut_down(), "a closed descriptor is left alone");

        // Open sockets until one reuses the descriptor number (the lowest
        // free number is taken, so this is quick unless other tests race).
        let mut held = Vec::new();
        let reused = loop {
            let s = TcpStream::connect(addr).unwrap();
            if s.as_raw_fd() == fd {
                break s;
            }
            assert!(held.len() < 200, "descriptor {fd} never came back");
            held.push(s);
        };
        let (mut peer, _) = listener.accept().unwrap();
        while peer.peer_addr().unwrap() != reused.local_addr().unwrap() {
            peer = listener.accept().unwrap().0;
        }
        assert!(!noted.shut_down(), "another socket on the same number");
        (&reused).write_all(b"still open").unwrap();
        let mut buf = [0u8; 10];
        peer.read_exact(&mut buf).unwrap();

        assert!(ConnSocket::of(&reused).unwrap().shut_down());
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "the peer sees the end");
    }
}
