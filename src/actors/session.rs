//! The Session actor: one per WebSocket connection.
//!
//! It parses each frame once into a typed command, answers with a reply or
//! an error, forwards room work to the RoomRegistry and writes the events
//! the registry hands it. Every way out (client close, protocol error,
//! heartbeat timeout, expired token, kick, slow consumer, shutdown) ends in
//! `stopped()`, which runs the one cleanup: the registry forgets the
//! connection and the connection slot is released.

mod lifecycle;
mod notifications;
mod rooms;

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

use super::conn::{ConnHandle, ConnId};
use super::messages::{
    Connect, ConnectionInfo, Disconnect, History, Join, Leave, PresenceOf, Publish, ToSession,
    Typing, UpdateIdentity, UpdatePresence,
};
use super::room_registry::RoomRegistry;
use crate::auth::{now_secs, Auth, AuthError, Identity};
use crate::errors::CloseCause;
use crate::limits::{ConnectionGuard, RateLimiters};
use crate::mailbox::{Full, Mailbox, Slot, Tracked};
use crate::metrics::{inc, Metrics};
use crate::protocol::{
    close, decode, encode, timestamp, Closing, Command, CommandError, CommandId, DecodeLimits,
    ErrorCode, Event, Request, PROTOCOL_VERSION,
};
use crate::rooms::RoomService;
use crate::store::announcements::Announcements;
use crate::store::notifications::Notifications;
use crate::store::now_ms;
use crate::store::records::{Record, Records};

/// How long a command may wait for the registry before `UNAVAILABLE`, at
/// the least: commands that wait for the database get its timeout plus
/// this (see [`SessionConfig::registry_timeout`]).
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);
/// After sending a close frame, how long the server waits for the client's
/// close frame before it drops the TCP connection. Dropping at once would
/// reset a client that is still answering pings, losing the close code.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

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
    pub registry: Mailbox<RoomRegistry>,
    pub auth: Arc<Auth>,
    pub limiters: Arc<RateLimiters>,
    pub metrics: Arc<Metrics>,
    pub notifications: Notifications,
    /// Active ones are sent right after `connected`.
    pub announcements: Announcements,
    pub records: Arc<Records>,
    /// Managed-room commands (`session/rooms.rs`) and the admin API's.
    pub rooms: RoomService,
    pub cfg: SessionConfig,
}

pub struct Session {
    id: ConnId,
    wire_id: String,
    identity: Arc<Identity>,
    deps: Arc<SessionDeps>,
    handle: Arc<ConnHandle>,
    info: Option<ConnectionInfo>,
    /// The registry mailbox place the upgrade waited for: `Connect` goes in
    /// it, so it is never refused.
    connect_slot: Option<Slot>,
    last_heard: Instant,
    last_ping: Instant,
    /// RATE_LIMITED answers in a row.
    strikes: u32,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut, usize)>,
    closing: Option<(u16, String)>,
    /// The client's close frame came before any close of ours.
    client_closed: bool,
    _slot: ConnectionGuard,
}

impl Session {
    pub fn new(
        id: ConnId,
        identity: Identity,
        deps: Arc<SessionDeps>,
        handle: Arc<ConnHandle>,
        info: ConnectionInfo,
        connect_slot: Slot,
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
            connect_slot: Some(connect_slot),
            last_heard: now,
            last_ping: now,
            strikes: 0,
            partial: None,
            closing: None,
            client_closed: false,
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
    pub(super) fn ask<M, T>(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        msg: M,
        data: impl FnOnce(T) -> Value + Send + 'static,
    ) where
        M: Message<Result = Result<T, CommandError>> + Send + 'static,
        T: Send + 'static,
        RoomRegistry: Handler<Tracked<M>>,
    {
        let request = match self.deps.registry.ask(msg) {
            Ok(request) => request.timeout(self.deps.cfg.registry_timeout),
            Err(full) => {
                self.answer(ctx, id.as_ref(), Err(registry_busy(full)));
                return;
            }
        };
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
                reply_to,
                kind,
            } => {
                let msg = Publish {
                    id: conn,
                    room,
                    content,
                    thread_id,
                    metadata,
                    client_msg_id,
                    reply_to,
                    kind,
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
            Command::PresenceGet { room, after, limit } => {
                let msg = PresenceOf {
                    id: conn,
                    room,
                    after,
                    limit,
                };
                self.ask(ctx, id, msg, |page| {
                    json!({
                        "members": page.members,
                        "memberCount": page.count,
                        "next": page.next,
                    })
                });
            }
            Command::HistoryGet {
                room,
                before,
                limit,
                reply_to,
            } => {
                let msg = History {
                    id: conn,
                    room,
                    before,
                    limit,
                    reply_to,
                };
                self.ask(ctx, id, msg, |messages| json!({ "messages": messages }));
            }
            Command::NotificationRead { read } => self.notification_read(ctx, id, read),
            Command::NotificationList(page) => self.notification_list(ctx, id, page),
            Command::Rooms(cmd) => self.room_command(ctx, id, cmd),
            Command::Lifecycle(cmd) => self.lifecycle_command(ctx, id, cmd),
            Command::AuthRefresh { token } => {
                let (result, revoked) = self.refresh(&token, ctx);
                self.answer(ctx, id.as_ref(), result);
                if revoked {
                    // A revoked token ends the connection (4001), as an
                    // expired one would; the reply above says why.
                    log::info!(
                        "conn={} user={:?}: auth:refresh with a revoked token, closing",
                        self.id,
                        self.identity.user_id
                    );
                    self.close_for(ctx, Closing::TokenRevoked);
                }
            }
        }
    }

    /// The reply to `auth:refresh`, and whether the token was revoked.
    fn refresh(
        &mut self,
        token: &str,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> (Result<Value, CommandError>, bool) {
        if self.identity.expires_at.is_none() {
            let anonymous = "anonymous connections have no token to refresh";
            return (Err(CommandError::bad_request(anonymous)), false);
        }
        match self.deps.auth.verify(token) {
            Ok(claims) => (self.take_claims(claims, ctx), false),
            Err(e) => {
                let revoked = matches!(e, AuthError::Revoked(_));
                let error = CommandError::new(ErrorCode::Unauthorized, e.to_string());
                (Err(error), revoked)
            }
        }
    }

    /// Puts a refreshed token's claims in force.
    fn take_claims(
        &mut self,
        claims: crate::auth::Claims,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Result<Value, CommandError> {
        if *claims.sub != *self.identity.user_id {
            return Err(CommandError::new(
                ErrorCode::Unauthorized,
                "the new token is for a different user (sub)",
            ));
        }
        let identity = Arc::new(Identity::from_claims(claims));
        let expires = identity.expires_at.unwrap_or_default();
        // Nothing changes unless the registry takes the new claims: the
        // client retries the refresh, its old token still in force.
        self.deps
            .registry
            .try_tell(UpdateIdentity {
                id: self.id,
                identity: identity.clone(),
            })
            .map_err(registry_busy)?;
        self.identity = identity;
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

/// The registry's mailbox is full: the command was not queued.
fn registry_busy(full: Full) -> CommandError {
    CommandError::busy("the room registry", full)
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
        // In the place the upgrade waited for: the registry learns of the
        // connection before its first command, and never loses this message.
        let slot = self.connect_slot.take().expect("started runs once");
        let connect = Connect {
            id: self.id,
            identity: self.identity.clone(),
            session: ctx.address().recipient(),
            handle: self.handle.clone(),
            info,
        };
        self.deps.registry.tell_in(slot, connect);
        self.heartbeat(ctx);
        self.schedule_expiry(ctx);
        self.replay_notifications(ctx);
        self.send_announcements(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.handle.mark_closed();
        inc(&self.deps.metrics.connections_closed);
        let server_close = self.closing.as_ref().map(|(code, _)| *code);
        let cause = CloseCause::of(server_close, self.client_closed);
        self.deps.metrics.closes.count(cause);
        let (code, reason) = self
            .closing
            .clone()
            .unwrap_or((close::NORMAL, "connection ended".into()));
        log::info!(
            "disconnect conn={} user={} code={} reason={:?} cause={}",
            self.wire_id,
            self.identity.user_id,
            code,
            reason,
            cause.label()
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
        // Cleanup must happen even when the registry is busy: a task of its
        // own waits for room in the mailbox (a stopped actor cannot).
        if let Some(wait) = self.deps.registry.tell(Disconnect { id: self.id }) {
            actix::spawn(wait);
        }
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
                self.client_closed = true;
                self.closing = Some((code, "closed by client".into()));
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
                } else if matches!(err, ws::ProtocolError::Io(_)) {
                    // The connection broke (reset, or ended inside a
                    // frame): the client went away, nothing to answer.
                    log::debug!("conn={} read failed: {text}", self.wire_id);
                    ctx.stop();
                } else {
                    self.close_for(ctx, Closing::ProtocolError);
                }
            }
        }
    }
}

impl Handler<ToSession> for Session {
    type Result = ();
    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        self.handle.dequeued();
        match msg {
            ToSession::Deliver(_) if self.handle.is_slow() => {
                self.close_for(ctx, Closing::SlowConsumer);
            }
            ToSession::Deliver(frame) => {
                if self.closing.is_none() {
                    ctx.text(frame);
                }
            }
            ToSession::Shutdown { code, reason } => self.close(ctx, code, &reason),
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

#[cfg(test)]
mod tests {
    use super::close_description;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_description("spam"), "spam");
        let long = "é".repeat(100);
        let cut = close_description(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
        assert_eq!(cut.len(), 122);
    }
}
