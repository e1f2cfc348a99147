//! The admin API. The [`Admin`] extractor in each handler's signature is
//! the permission check: the configured admin key (constant-time compare)
//! or a JWT with `role: admin`.

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ask, revocations, ApiError, AppState};
use crate::actors::messages::{
    Broadcast, ClusterStats, GetMembers, Kick, ListConnections, ListRooms, NodeFigures, Notify,
};
use crate::auth::now_secs;
use crate::protocol::{
    validate_room, ErrorCode, Notification, NotificationKind, Priority, PRESENCE_MAX_LIMIT,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KickBody {
    user_id: String,
    #[serde(default)]
    reason: Option<String>,
    /// Also refuse every token of the user issued so far.
    #[serde(default)]
    revoke: bool,
    /// Refuse every token of the user, even new ones, this long.
    #[serde(default)]
    ban_seconds: Option<u64>,
}

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
    let made = revocation.as_ref().map(revocations::to_json);
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
    let mut answer = json!({ "disconnected": disconnected });
    if let Some(made) = made {
        answer["revocation"] = made;
    }
    let detail = json!({ "reason": reason, "disconnected": disconnected });
    state
        .sessions
        .records
        .audit("kick", Some(&body.user_id), None, detail);
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyBody {
    user_id: String,
    #[serde(default = "default_kind")]
    kind: NotificationKind,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    action_url: Option<String>,
    #[serde(default)]
    action_text: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
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
    Ok(HttpResponse::Ok()
        .json(json!({ "notificationId": notification_id, "delivered": delivered })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastBody {
    #[serde(default)]
    room: Option<String>,
    event: String,
    #[serde(default)]
    data: Value,
}

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
    Ok(HttpResponse::Ok().json(json!({ "delivered": delivered })))
}

pub async fn stats(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (nodes, missing) = ask(state.registry(), REGISTRY, ClusterStats).await?;
    let total = |of: fn(&NodeFigures) -> u64| nodes.iter().map(of).sum::<u64>();
    Ok(HttpResponse::Ok().json(json!({
        "connections": total(|n| n.connections as u64),
        "users": total(|n| n.users as u64),
        "rooms": total(|n| n.rooms as u64),
        "messagesIn": total(|n| n.messages_in),
        "messagesOut": total(|n| n.messages_out),
        "nodes": nodes,
        "nodesNotAnswering": missing,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsQuery {
    user_id: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({ "connections": list })))
}

pub async fn rooms(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rooms = ask(state.registry(), REGISTRY, ListRooms).await?;
    Ok(HttpResponse::Ok().json(json!({ "rooms": rooms })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// A page of a room's members (`presence:get`'s paging, `limit` up to 1000,
/// default 1000).
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
    Ok(HttpResponse::Ok().json(json!({
        "room": room,
        "members": page.members,
        "memberCount": page.count,
        "next": page.next,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    user_id: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

/// The newest audit events (at most 1000), newest first.
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
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "kind": e.kind,
                "userId": e.user_id,
                "connectionId": e.connection_id,
                "nodeId": e.node_id,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
                "createdAt": ms_to_rfc3339(e.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}
