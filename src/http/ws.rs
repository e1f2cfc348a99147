//! `GET /ws`: admission checks, then the upgrade to a Session actor.
//!
//! Everything that can refuse a connection happens here, before the
//! upgrade, so a refusal is a plain HTTP answer with a JSON body; or, for a
//! browser (token in the query string), an upgrade closed at once with a
//! code that says why.

use std::any::Any;

use actix_web::dev::Extensions;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use chrono::Utc;
use serde::Deserialize;

use actix::{Actor, ActorContext, StreamHandler};

use super::client_addr::client_addr;
use super::{ApiError, AppState};
use crate::actors::conn::{ConnHandle, ConnSocket};
use crate::actors::messages::ConnectionInfo;
use crate::actors::session::Session;
use crate::auth::{AuthError, Identity};
use crate::errors::{refusal_close, Refused};
use crate::limits::{AdmitError, ConnectionGuard};
use crate::mailbox::Slot;
use crate::protocol::{timestamp, ErrorCode};

/// `HttpServer::on_connect` hook: notes where each connection's socket is.
pub fn remember_socket(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        match ConnSocket::of(stream) {
            Ok(socket) => {
                ext.insert(socket);
            }
            Err(e) => log::warn!("cannot identify a connection's socket: {e}"),
        }
    }
}

/// Longest an upgrade waits for room in the background record queue, and
/// then for a place in the registry's mailbox, before it is refused with
/// 503 and `Retry-After`.
const RECORDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const REGISTRY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// A refused handshake: counted by reason, logged (at info, at most a few
/// lines a second: `refusal_log`), answered with `code` and `message`.
fn refuse(
    state: &AppState,
    req: &HttpRequest,
    reason: Refused,
    code: ErrorCode,
    message: impl Into<String>,
) -> ApiError {
    let message = message.into();
    state.sessions.metrics.handshakes_refused.count(reason);
    if let Some(suppressed) = state.refusal_log.admit(std::time::Instant::now()) {
        let from = client_addr(req.peer_addr(), req.headers(), &state.trusted_proxies)
            .map_or_else(|| "-".to_string(), |c| c.shown);
        let more = if suppressed > 0 {
            format!(" ({suppressed} more refusals not logged in the last second)")
        } else {
            String::new()
        };
        log::info!(
            "handshake refused ({}, {}) from {from}: {message}{more}",
            code.http_status(),
            reason.label()
        );
    }
    ApiError::new(code, message)
}

/// 503 with `Retry-After: 1`: the server is behind, the client should
/// come back shortly.
fn busy(state: &AppState, req: &HttpRequest, reason: Refused, message: &str) -> ApiError {
    let mut err = refuse(state, req, reason, ErrorCode::Unavailable, message);
    err.body.retry_after_ms = Some(1000);
    err
}

/// What `admit` hands over to start a session.
struct Admitted {
    id: uuid::Uuid,
    identity: Identity,
    /// The client's address as shown in connection lists.
    shown: Option<String>,
    slot: ConnectionGuard,
    registry_slot: Slot,
}

pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<WsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let arrived = std::time::Instant::now();
    if ws::handshake(&req).is_err() {
        return Err(refuse(
            &state,
            &req,
            Refused::NotWebSocket,
            ErrorCode::BadRequest,
            "this endpoint speaks WebSocket: send a WebSocket upgrade request",
        ));
    }
    // A browser cannot set headers on a WebSocket, so its token comes in the
    // query string; and it cannot read an HTTP refusal either (every one is
    // close 1006 to it). Such a client is told why by a close frame instead
    // (docs/protocol.md, 2.2); header-authenticated clients keep the status.
    let browser = query.token.is_some() && req.headers().get(header::AUTHORIZATION).is_none();
    let admitted = match admit(&req, &query, &state).await {
        Ok(admitted) => admitted,
        Err(err) if browser => {
            let (code, reason) = refusal_close(&err.body);
            return ws::WsResponseBuilder::new(Refusal { code, reason }, &req, stream)
                .frame_size(state.settings.limits.max_frame_bytes)
                .start()
                .map_err(|e| ApiError::bad_request(format!("WebSocket handshake failed: {e}")));
        }
        Err(err) => return Err(err),
    };
    let Admitted {
        id,
        identity,
        shown,
        slot,
        registry_slot,
    } = admitted;
    let wire_id = id.to_string();
    let socket = req.conn_data::<ConnSocket>().copied();
    let info = ConnectionInfo {
        connection_id: wire_id,
        node_id: state.node_id.as_str().into(),
        user_id: identity.user_id.clone(),
        remote_addr: shown,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        connected_at: timestamp(Utc::now()),
        rooms: Vec::new(),
    };
    let session = Session::new(
        id,
        identity,
        state.sessions.clone(),
        ConnHandle::new(socket, state.sessions.metrics.clone()),
        info,
        registry_slot,
        slot,
    );
    let started = ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(state.settings.limits.max_frame_bytes)
        .start()
        .map_err(|e| ApiError::bad_request(format!("WebSocket handshake failed: {e}")));
    let metrics = &state.sessions.metrics;
    metrics.handshake_seconds.observe(arrived.elapsed());
    started
}

/// The admission checks of docs/protocol.md 2.2, in order (the upgrade
/// check aside); the first that fails decides the refusal.
async fn admit(req: &HttpRequest, query: &WsQuery, state: &AppState) -> Result<Admitted, ApiError> {
    let settings = &state.settings;
    if !settings.server.origins.is_empty() {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let allowed = match origin {
            Some(o) => settings.server.origins.iter().any(|a| a == o),
            None => settings.server.allow_missing_origin,
        };
        if !allowed {
            let refused = refuse(
                state,
                req,
                Refused::Origin,
                ErrorCode::Forbidden,
                "origin not allowed",
            );
            return Err(refused);
        }
    }
    let client = client_addr(req.peer_addr(), req.headers(), &state.trusted_proxies);
    if let Some(ip) = client.as_ref().map(|c| c.ip) {
        if let Err(wait) = state.sessions.limiters.check_connection(ip) {
            let mut err = refuse(
                state,
                req,
                Refused::AddressRate,
                ErrorCode::RateLimited,
                "too many connections from this address",
            );
            err.body.retry_after_ms = Some((wait.as_millis() as u64).max(1));
            return Err(err);
        }
    }

    let id = uuid::Uuid::new_v4();
    let wire_id = id.to_string();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = bearer.or(query.token.as_deref()).filter(|t| !t.is_empty());
    let identity = match token {
        Some(token) => match state.sessions.auth.verify(token) {
            Ok(claims) => Identity::from_claims(claims),
            Err(e) => {
                let reason = match e {
                    AuthError::Revoked(_) => Refused::Revoked,
                    _ => Refused::BadToken,
                };
                return Err(refuse(
                    state,
                    req,
                    reason,
                    ErrorCode::Unauthorized,
                    e.to_string(),
                ));
            }
        },
        None if settings.server.anonymous => Identity::anonymous(&wire_id),
        None => {
            return Err(refuse(
                state,
                req,
                Refused::NoToken,
                ErrorCode::Unauthorized,
                AuthError::Missing.to_string(),
            ))
        }
    };

    // Every connection writes background records (its row, presence, audit)
    // on the way in and out: wait for room rather than have them dropped.
    if !state.sessions.records.wait_for_room(RECORDS_WAIT).await {
        return Err(busy(
            state,
            req,
            Refused::RecordsBehind,
            "the server is behind with writing connection records; try again shortly",
        ));
    }
    let slot = state
        .counter
        .admit(&identity.user_id)
        .map_err(|e| match e {
            AdmitError::UserFull(n) => {
                let mut err = refuse(
                    state,
                    req,
                    Refused::UserLimit,
                    ErrorCode::RateLimited,
                    format!("this user already has {n} connections, the most allowed"),
                );
                // No slot frees at a known time; a second is a polite pace.
                err.body.retry_after_ms = Some(1000);
                err
            }
            AdmitError::NodeFull(n) => refuse(
                state,
                req,
                Refused::NodeFull,
                ErrorCode::Unavailable,
                format!("this node is at its limit of {n} connections"),
            ),
        })?;

    // The session's `Connect` must reach the registry before its first
    // command and must not be refused: its place is taken now.
    let registry_slot = state.registry().bound().slot();
    let Ok(registry_slot) = tokio::time::timeout(REGISTRY_WAIT, registry_slot).await else {
        return Err(busy(
            state,
            req,
            Refused::RegistryBusy,
            "the server is too busy to take the connection; try again shortly",
        ));
    };
    Ok(Admitted {
        id,
        identity,
        shown: client.map(|c| c.shown),
        slot,
        registry_slot,
    })
}

/// A refused browser handshake: the upgrade is accepted only to send the
/// close frame that says why, and nothing the client sends is read.
struct Refusal {
    code: u16,
    reason: String,
}

impl Actor for Refusal {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(self.code),
            description: Some(std::mem::take(&mut self.reason)),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Refusal {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
}
