//! The `/graphql` WebSocket: one actor per socket. It speaks
//! `graphql-transport-ws` (or the legacy `graphql-ws`) through
//! async-graphql's protocol machine, and it is the connection the
//! RoomRegistry delivers to, like a `/ws` session: registered (`Connect`)
//! when `connection_init` brings a valid token, its deliveries routed to
//! the subscriptions (`Router`), closed as a session is closed (slow
//! consumer, token expiry, kick, shutdown, heartbeat).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use async_graphql::http::{WebSocket, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::Data;
use serde_json::Value;
use tokio::sync::mpsc;

use super::router::Router;
use super::{GqlSchema, Viewer};
use crate::actors::conn::{ConnHandle, ConnId, ConnSocket};
use crate::actors::messages::{Connect, ConnectionInfo, Disconnect, ToSession};
use crate::actors::session::SessionDeps;
use crate::auth::{now_secs, AuthError, Identity};
use crate::errors::{close, refusal_close, Closing};
use crate::limits::{AdmitError, ConnectionCounter, ConnectionGuard};
use crate::metrics::inc;
use crate::protocol::{CommandError, ErrorCode};

/// How long a socket may stay open without `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_LINGER: Duration = Duration::from_secs(1);
const REGISTRY_WAIT: Duration = Duration::from_secs(5);

/// What a socket needs from the server.
pub struct SocketDeps {
    pub deps: Arc<SessionDeps>,
    pub counter: Arc<ConnectionCounter>,
    pub anonymous: bool,
    pub schema: GqlSchema,
    /// The connection's row before a user is known.
    pub info: ConnectionInfo,
    pub socket: Option<ConnSocket>,
}

struct Registered {
    id: ConnId,
    handle: Arc<ConnHandle>,
    _slot: ConnectionGuard,
}

pub struct GqlSocket {
    env: SocketDeps,
    protocol: Protocols,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    router: Arc<Router>,
    conn: Option<Registered>,
    expires_at: Option<u64>,
    /// Why `connection_init` was refused: its close replaces the generic one.
    refused: Option<(u16, String)>,
    closing: bool,
    last_heard: Instant,
}

impl GqlSocket {
    pub fn new(env: SocketDeps, protocol: Protocols) -> Self {
        GqlSocket {
            env,
            protocol,
            input: None,
            router: Arc::new(Router::default()),
            conn: None,
            expires_at: None,
            refused: None,
            closing: false,
            last_heard: Instant::now(),
        }
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(code),
            description: Some(reason[..end].to_string()),
        }));
        ctx.run_later(CLOSE_LINGER, |_, ctx| ctx.stop());
    }

    fn close_for(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: Closing) {
        self.close(ctx, why.code(), why.reason());
    }

    /// Who `connection_init`'s payload says the user is.
    fn identify(&self, payload: &Value) -> Result<Identity, CommandError> {
        let token = payload
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let unauthorized = |m: String| CommandError::new(ErrorCode::Unauthorized, m);
        match token {
            Some(token) => match self.env.deps.auth.verify(token) {
                Ok(claims) => Ok(Identity::from_claims(claims)),
                Err(e) => Err(unauthorized(e.to_string())),
            },
            None if self.env.anonymous => Ok(Identity::anonymous(&self.env.info.connection_id)),
            None => Err(unauthorized(format!(
                "{} (connection_init payload {{\"token\": …}})",
                AuthError::Missing
            ))),
        }
    }

    /// Closes with 4001 when the token expires (the leeway the handshake
    /// allowed included), as `/ws` does.
    fn schedule_expiry(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(exp) = self.expires_at else {
            return;
        };
        let deadline = exp + self.env.deps.auth.leeway_secs();
        let left =
            Duration::from_secs(deadline.saturating_sub(now_secs())) + Duration::from_millis(50);
        ctx.run_later(left, |act, ctx| {
            inc(&act.env.deps.metrics.token_expired_closes);
            act.close_for(ctx, Closing::TokenExpired);
        });
    }

    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let cfg = &self.env.deps.cfg;
        let (interval, timeout) = (cfg.heartbeat_interval, cfg.heartbeat_timeout);
        ctx.run_interval(interval.min(timeout / 4), move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                inc(&act.env.deps.metrics.heartbeat_closes);
                act.close_for(ctx, Closing::HeartbeatTimeout);
            } else {
                ctx.ping(b"");
            }
        });
    }
}

/// `connection_init` arrived with this payload.
#[derive(Message)]
#[rtype(result = "Result<Data, String>")]
struct Init(Value);

impl Handler<Init> for GqlSocket {
    type Result = ResponseActFuture<Self, Result<Data, String>>;
    fn handle(&mut self, Init(payload): Init, _: &mut Self::Context) -> Self::Result {
        let admitted = self.identify(&payload).and_then(|identity| {
            let slot = self
                .env
                .counter
                .admit(&identity.user_id)
                .map_err(|e| match e {
                    AdmitError::UserFull(n) => CommandError::new(
                        ErrorCode::RateLimited,
                        format!("this user already has {n} connections, the most allowed"),
                    ),
                    AdmitError::NodeFull(n) => CommandError::new(
                        ErrorCode::Unavailable,
                        format!("this node is at its limit of {n} connections"),
                    ),
                })?;
            Ok((identity, slot))
        });
        let (identity, slot) = match admitted {
            Ok(admitted) => admitted,
            Err(e) => {
                self.env
                    .deps
                    .metrics
                    .handshakes_refused
                    .count(match e.code {
                        ErrorCode::Unauthorized => crate::errors::Refused::BadToken,
                        _ => crate::errors::Refused::UserLimit,
                    });
                let refused = refusal_close(&e);
                let message = refused.1.clone();
                self.refused = Some(refused);
                return Box::pin(fut::ready(Err(message)));
            }
        };
        let wait = tokio::time::timeout(REGISTRY_WAIT, self.env.deps.registry.bound().slot());
        Box::pin(wait.into_actor(self).map(move |registry_slot, act, ctx| {
            let Ok(registry_slot) = registry_slot else {
                let busy = "the server is too busy to take the connection; try again shortly";
                act.refused = Some((close::REFUSED_UNAVAILABLE, busy.into()));
                return Err(busy.to_string());
            };
            let id = uuid::Uuid::parse_str(&act.env.info.connection_id)
                .unwrap_or_else(|_| uuid::Uuid::new_v4());
            let identity = Arc::new(identity);
            let handle = ConnHandle::new(act.env.socket, act.env.deps.metrics.clone());
            let mut info = act.env.info.clone();
            info.user_id = identity.user_id.clone();
            let connect = Connect {
                id,
                identity: identity.clone(),
                session: ctx.address().recipient(),
                handle: handle.clone(),
                info,
            };
            act.env.deps.registry.tell_in(registry_slot, connect);
            inc(&act.env.deps.metrics.connections_opened);
            log::info!(
                "graphql connect conn={} user={}",
                act.env.info.connection_id,
                identity.user_id
            );
            act.conn = Some(Registered {
                id,
                handle,
                _slot: slot,
            });
            act.expires_at = identity.expires_at;
            act.schedule_expiry(ctx);
            let viewer = Viewer::socket(identity, act.env.deps.clone(), id, act.router.clone());
            let mut data = Data::default();
            data.insert(Arc::new(viewer));
            Ok(data)
        }))
    }
}

impl Actor for GqlSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.env.deps.cfg.mailbox);
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        self.input = Some(tx);
        let input =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        let me = ctx.address();
        let init = move |payload: Value| async move {
            match me.send(Init(payload)).await {
                Ok(Ok(data)) => Ok(data),
                Ok(Err(message)) => Err(async_graphql::Error::new(message)),
                Err(_) => Err(async_graphql::Error::new("the connection is closing")),
            }
        };
        WebSocket::new(self.env.schema.clone(), input, self.protocol)
            .on_connection_init(init)
            .into_actor(self)
            .map(|out, act, ctx| match out {
                WsMessage::Text(text) => {
                    if !act.closing {
                        ctx.text(text)
                    }
                }
                WsMessage::Close(code, reason) => match act.refused.take() {
                    Some((code, reason)) => act.close(ctx, code, &reason),
                    None => act.close(ctx, code, &reason),
                },
            })
            .finish()
            .spawn(ctx);
        ctx.run_later(INIT_TIMEOUT, |act, ctx| {
            if act.conn.is_none() {
                act.close(ctx, 4408, "Connection initialisation timeout");
            }
        });
        self.heartbeat(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        conn.handle.mark_closed();
        inc(&self.env.deps.metrics.connections_closed);
        log::info!("graphql disconnect conn={}", self.env.info.connection_id);
        if let Some(wait) = self.env.deps.registry.tell(Disconnect { id: conn.id }) {
            actix::spawn(wait);
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for GqlSocket {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        if self.closing {
            if let Ok(ws::Message::Close(_)) = msg {
                ctx.stop();
            }
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => {
                if let Some(input) = &self.input {
                    let _ = input.send(text.as_bytes().to_vec());
                }
            }
            Ok(ws::Message::Binary(bytes)) => {
                if let Some(input) = &self.input {
                    let _ = input.send(bytes.to_vec());
                }
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Continuation(_)) => self.close(
                ctx,
                close::POLICY,
                "fragmented messages are not supported on /graphql",
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => self.close_for(ctx, Closing::FrameTooLarge),
            Err(_) => self.close_for(ctx, Closing::ProtocolError),
        }
    }
}

impl Handler<ToSession> for GqlSocket {
    type Result = ();
    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        let Some(conn) = &self.conn else {
            return;
        };
        conn.handle.dequeued();
        match msg {
            ToSession::Deliver(_) if conn.handle.is_slow() => {
                self.close_for(ctx, Closing::SlowConsumer)
            }
            ToSession::Deliver(frame) => {
                if !self.closing {
                    self.router.route(&frame);
                }
            }
            ToSession::Shutdown { code, reason } => self.close(ctx, code, &reason),
        }
    }
}
