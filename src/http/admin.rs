//! The admin API. The [`Admin`] extractor in each handler's signature is
//! the permission check: the configured admin key (constant-time compare)
//! or a JWT with `role: admin`.

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::revocations::{self, RevocationView};
use super::{answer, ask, ApiError, AppState};
use crate::actors::messages::{
    Broadcast, ClusterStats, ConnectionInfo, GetMembers, Kick, ListConnections, ListRooms,
    NodeFigures, Notify, RoomInfo,
};
use crate::auth::now_secs;
use crate::protocol::{
    validate_room, ErrorCode, Member, Notification, NotificationKind, Priority, PRESENCE_MAX_LIMIT,
};
use crate::store::records::{audit_events, Record};
use crate::store::{ms_to_rfc3339, now_ms, StoreError};

/// Proof that the request comes from an administrator.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(check_admin(req))
    }
}

fn check_admin(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "send `Authorization: Bearer <admin token>`",
            )
        })?;
    let auth = &state.sessions.auth;
    if auth.is_admin_key(token) {
        return Ok(Admin);
    }
    match auth.verify(token) {
        Ok(claims) if claims.role.as_deref() == Some("admin") => Ok(Admin),
        Ok(_) => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this token does not have role admin",
        )),
        Err(e) => Err(ApiError::new(ErrorCode::Unauthorized, e.to_string())),
    }
}

pub(super) const REGISTRY: &str = "the room registry";

pub(super) fn store_down(e: StoreError) -> ApiError {
    e.to_command_error().into()
}

fn non_empty(value: &str, field: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        Err(ApiError::bad_request(format!(
            "`{field}` must not be empty"
        )))
    } else {
        no_nul(value, field)
    }
}

/// A user id as tokens may carry it (`sub`): no user with another could exist.
pub(super) fn user_id(value: &str) -> Result<(), ApiError> {
    if crate::auth::valid_user_id(value) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "`userId` must be non-empty text without control or invisible characters",
        ))
    }
}

/// Databases refuse NUL characters in text; refuse them here, clearly.
fn no_nul(value: &str, field: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        Err(ApiError::bad_request(format!(
            "`{field}` must not contain NUL characters"
        )))
    } else {
        Ok(())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KickBody {
    user_id: String,
    /// The close reason; default `kicked by an administrator`.
    #[serde(default)]
    reason: Option<String>,
    /// Also refuse every token of the user issued so far.
    #[serde(default)]
    revoke: bool,
    /// Refuse every token of the user, even new ones, this long (at most
    /// ten years).
    #[serde(default)]
    ban_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct KickAnswer {
    /// Connections closed, on the nodes that answered in time.
    disconnected: usize,
    /// The revocation made, with `revoke` or `banSeconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation: Option<RevocationView>,
}

/// Closes every connection of a user with 4003.
#[utoipa::path(post, path = "/admin/kick", tag = "connections", request_body = KickBody,
    responses((status = 200, body = KickAnswer)))]
pub async fn kick(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<KickBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    user_id(&body.user_id)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "kicked by an administrator".into());
    // A revocation is stored before anyone is kicked, and travels with the
    // kick, so the kicked user cannot reconnect in between, on any node.
    let revocation = if body.revoke || body.ban_seconds.is_some_and(|s| s > 0) {
        let request = revocations::Request {
            user_id: Some(body.user_id.clone()),
            ban_seconds: body.ban_seconds,
            reason: reason.clone(),
            ..Default::default()
        };
        let ttl = state.settings.auth.revocation_ttl.as_secs();
        let r = request.build(now_secs(), ttl)?;
        revocations::store(&state, &r).await?;
        Some(r)
    } else {
        None
    };
    let made = revocation.as_ref().map(RevocationView::from);
    let disconnected = ask(
        state.registry(),
        REGISTRY,
        Kick {
            user_id: body.user_id.clone(),
            reason: reason.clone(),
            revocation,
        },
    )
    .await?;
    let kicked = KickAnswer {
        disconnected,
        revocation: made,
    };
    let detail = json!({ "reason": reason, "disconnected": disconnected });
    state
        .sessions
        .records
        .audit("kick", Some(&body.user_id), None, detail);
    Ok(answer(StatusCode::OK, &kicked))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyBody {
    user_id: String,
    #[serde(default = "default_kind")]
    #[schema(default = "info")]
    kind: NotificationKind,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    #[schema(default = "medium")]
    priority: Priority,
    /// 1 to 2048 bytes.
    #[serde(default)]
    action_url: Option<String>,
    /// Up to 200 characters.
    #[serde(default)]
    action_text: Option<String>,
    /// RFC 3339, in the future.
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyAnswer {
    /// Connections that took it live; 0 does not mean it is lost.
    delivered: usize,
    notification_id: String,
}

/// Longest `actionUrl` of a notification, in bytes.
const MAX_ACTION_URL: usize = 2048;
/// Longest `actionText` of a notification, in characters.
const MAX_ACTION_TEXT: usize = 200;

/// `expiresAt` in milliseconds; it must be in the future.
fn expiry(at: Option<&str>, now: i64) -> Result<Option<i64>, ApiError> {
    let Some(at) = at else { return Ok(None) };
    let ms = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| ApiError::bad_request(format!("`expiresAt` is not an RFC 3339 time: {e}")))?
        .timestamp_millis();
    if ms <= now {
        return Err(ApiError::bad_request("`expiresAt` is in the past"));
    }
    Ok(Some(ms))
}

fn default_kind() -> NotificationKind {
    NotificationKind::Info
}

/// Stores a notification for a user and delivers it to their connections.
#[utoipa::path(post, path = "/admin/notify", tag = "notifications", request_body = NotifyBody,
    responses((status = 200, body = NotifyAnswer)))]
pub async fn notify(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<NotifyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    user_id(&body.user_id)?;
    no_nul(&body.title, "title")?;
    no_nul(&body.body, "body")?;
    let created_ms = now_ms();
    let expires_ms = expiry(body.expires_at.as_deref(), created_ms)?;
    if let Some(url) = &body.action_url {
        no_nul(url, "actionUrl")?;
        if url.is_empty() || url.len() > MAX_ACTION_URL {
            let why = format!("`actionUrl` must be 1 to {MAX_ACTION_URL} bytes");
            return Err(ApiError::bad_request(why));
        }
    }
    if let Some(text) = &body.action_text {
        no_nul(text, "actionText")?;
        if text.chars().count() > MAX_ACTION_TEXT {
            let why = format!("`actionText` is limited to {MAX_ACTION_TEXT} characters");
            return Err(ApiError::bad_request(why));
        }
    }
    let notification = Notification {
        notification_id: uuid::Uuid::new_v4().to_string(),
        kind: body.kind,
        title: body.title,
        body: body.body,
        data: body.data,
        created_at: ms_to_rfc3339(created_ms),
        priority: body.priority,
        action_url: body.action_url,
        action_text: body.action_text,
        expires_at: expires_ms.map(ms_to_rfc3339),
    };
    let notification_id = notification.notification_id.clone();
    // Stored first: an offline user gets it on their next connection, and
    // nothing is acknowledged that was not stored.
    state
        .sessions
        .notifications
        .save(&body.user_id, &notification, created_ms, expires_ms)
        .await
        .map_err(store_down)?;
    let delivered = ask(
        state.registry(),
        REGISTRY,
        Notify {
            user_id: body.user_id.clone(),
            notification,
        },
    )
    .await?;
    let records = &state.sessions.records;
    if delivered > 0 {
        records.send(Record::NotificationsDelivered {
            ids: vec![notification_id.clone()],
            at: now_ms(),
        });
    }
    let detail = json!({ "notificationId": notification_id, "delivered": delivered });
    records.audit("notify", Some(&body.user_id), None, detail);
    let notified = NotifyAnswer {
        delivered,
        notification_id,
    };
    Ok(answer(StatusCode::OK, &notified))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastBody {
    /// Absent: every connection on every node.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_:.@-]{1,128}$")]
    room: Option<String>,
    event: String,
    #[serde(default)]
    data: Value,
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastAnswer {
    /// Connections that got the event, on the nodes that answered in time.
    delivered: usize,
}

/// Sends a live event to a room's connections, or to every connection.
#[utoipa::path(post, path = "/admin/broadcast", tag = "connections", request_body = BroadcastBody,
    responses((status = 200, body = BroadcastAnswer)))]
pub async fn broadcast(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<BroadcastBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    non_empty(&body.event, "event")?;
    if let Some(room) = &body.room {
        validate_room(room).map_err(|e| ApiError::bad_request(e.message))?;
    }
    let detail = json!({ "room": body.room, "event": body.event });
    let delivered = ask(
        state.registry(),
        REGISTRY,
        Broadcast {
            room: body.room,
            event: body.event,
            data: body.data,
        },
    )
    .await?;
    state
        .sessions
        .records
        .audit("broadcast", None, None, detail);
    Ok(answer(StatusCode::OK, &BroadcastAnswer { delivered }))
}

/// `GET /admin/stats`: the totals are sums over `nodes`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsAnswer {
    connections: u64,
    users: u64,
    rooms: u64,
    messages_in: u64,
    messages_out: u64,
    /// This node first, then the others in the order they answered.
    nodes: Vec<NodeFigures>,
    /// Nodes known to be alive that did not answer in time.
    nodes_not_answering: usize,
}

/// Figures of every node, and their totals.
#[utoipa::path(get, path = "/admin/stats", tag = "connections",
    responses((status = 200, body = StatsAnswer)))]
pub async fn stats(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (nodes, missing) = ask(state.registry(), REGISTRY, ClusterStats).await?;
    let total = |of: fn(&NodeFigures) -> u64| nodes.iter().map(of).sum::<u64>();
    let figures = StatsAnswer {
        connections: total(|n| n.connections as u64),
        users: total(|n| n.users as u64),
        rooms: total(|n| n.rooms as u64),
        messages_in: total(|n| n.messages_in),
        messages_out: total(|n| n.messages_out),
        nodes_not_answering: missing,
        nodes,
    };
    Ok(answer(StatusCode::OK, &figures))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ConnectionsQuery {
    /// Only this user's connections.
    user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionsAnswer {
    /// Oldest first.
    connections: Vec<ConnectionInfo>,
}

/// The live connections of every node.
#[utoipa::path(get, path = "/admin/connections", tag = "connections", params(ConnectionsQuery),
    responses((status = 200, body = ConnectionsAnswer)))]
pub async fn connections(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ConnectionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ask(
        state.registry(),
        REGISTRY,
        ListConnections {
            user_id: query.into_inner().user_id,
        },
    )
    .await?;
    let listed = ConnectionsAnswer { connections: list };
    Ok(answer(StatusCode::OK, &listed))
}

#[derive(Serialize, ToSchema)]
pub struct RoomsAnswer {
    /// Sorted by name, personal rooms included.
    rooms: Vec<RoomInfo>,
}

/// The rooms with at least one connection, on any node.
#[utoipa::path(get, path = "/admin/rooms", tag = "rooms",
    responses((status = 200, body = RoomsAnswer)))]
pub async fn rooms(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rooms = ask(state.registry(), REGISTRY, ListRooms).await?;
    Ok(answer(StatusCode::OK, &RoomsAnswer { rooms }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    /// The `next` of the page before.
    after: Option<String>,
    /// 1 to 1000, default 1000.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceAnswer {
    room: String,
    members: Vec<Member>,
    /// Every user in the room, on every node.
    member_count: usize,
    /// The `after` of the next page; null on the last.
    next: Option<String>,
}

/// A page of a room's members (`presence:get`'s paging, `limit` up to 1000,
/// default 1000).
#[utoipa::path(get, path = "/admin/rooms/{room}/presence", tag = "rooms",
    params(super::rooms::RoomPath, PresenceQuery),
    responses((status = 200, body = PresenceAnswer)))]
pub async fn room_presence(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<PresenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    validate_room(&room).map_err(|e| ApiError::bad_request(e.message))?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(PRESENCE_MAX_LIMIT);
    if limit == 0 || limit > PRESENCE_MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {PRESENCE_MAX_LIMIT}"
        )));
    }
    let get = GetMembers {
        room: room.as_str().into(),
        after: q.after,
        limit,
        including: None,
    };
    let page = ask(&state.presence, "the presence tracker", get).await?;
    let presence = PresenceAnswer {
        room,
        members: page.members,
        member_count: page.count,
        next: page.next.map(|n| n.to_string()),
    };
    Ok(answer(StatusCode::OK, &presence))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events of this user.
    user_id: Option<String>,
    /// Only events of this kind.
    kind: Option<String>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Grows with each event written.
    id: i64,
    kind: String,
    user_id: Option<String>,
    connection_id: Option<String>,
    /// The node that recorded it.
    node_id: String,
    /// By kind (docs/protocol.md 9.2).
    detail: Value,
    /// RFC 3339.
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditAnswer {
    /// Newest first.
    events: Vec<AuditEntry>,
}

/// The newest audit events (at most 1000), newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditAnswer)))]
pub async fn audit(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let events = audit_events(&state.db, q.user_id.as_deref(), q.kind.as_deref(), limit)
        .await
        .map_err(store_down)?;
    let events = events
        .into_iter()
        .map(|e| AuditEntry {
            id: e.id,
            kind: e.kind,
            user_id: e.user_id,
            connection_id: e.connection_id,
            node_id: e.node_id,
            detail: serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
            created_at: ms_to_rfc3339(e.created_at),
        })
        .collect();
    Ok(answer(StatusCode::OK, &AuditAnswer { events }))
}
