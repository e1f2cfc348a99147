//! The admin API of managed rooms: thin handlers over
//! [`RoomService`](crate::rooms::RoomService) acting as the admin API
//! (above every role), whose changes the registry applies on every node.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::Admin;
use super::{ApiError, AppState};
use crate::actors::room_registry::apply_changes;
use crate::protocol::rooms::{
    check_counts, check_members, check_metadata, check_patch, check_title, check_user_id,
    MEMBER_LIST_DEFAULT_LIMIT, MEMBER_LIST_MAX_LIMIT,
};
use crate::protocol::{validate_room, NewRoom, Role, RoomPatch, RoomType, Visibility};
use crate::rooms::{Caller, Done};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberEntry {
    user_id: String,
    #[serde(default)]
    role: Option<Role>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    room: String,
    /// Default `channel` (`realtime-server create-room` may leave it out).
    #[serde(rename = "type", default = "channel")]
    kind: RoomType,
    /// Default `public`.
    #[serde(default = "public")]
    visibility: Visibility,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    max_users: Option<u32>,
    #[serde(default)]
    rate_limit: Option<u32>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    members: Vec<MemberEntry>,
}

fn channel() -> RoomType {
    RoomType::Channel
}

fn public() -> Visibility {
    Visibility::Public
}

fn room_name(room: &str) -> Result<(), ApiError> {
    validate_room(room).map_err(|e| ApiError::bad_request(e.message))
}

/// Applies what a command changed (on every node), then answers its data.
async fn applied(state: &AppState, done: Done) -> Value {
    apply_changes(state.registry(), done.changes).await;
    done.data
}

/// `POST /admin/rooms`: 201 and the room object; 409 if it exists. A `dm`
/// room is made by `dm:open` only.
pub async fn create(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    room_name(&b.room)?;
    check_title(b.title.as_deref())?;
    check_counts(b.max_users, b.rate_limit)?;
    let metadata = b.metadata.unwrap_or_else(|| json!({}));
    check_metadata(&metadata)?;
    check_members(b.members.iter().map(|m| m.user_id.as_str()))?;
    let new = NewRoom {
        room: b.room,
        kind: b.kind,
        visibility: b.visibility,
        title: b.title,
        max_users: b.max_users,
        rate_limit: b.rate_limit,
        metadata,
        members: b
            .members
            .into_iter()
            .map(|m| (m.user_id, m.role.unwrap_or(Role::Member)))
            .collect(),
    };
    let done = state.sessions.rooms.create(Caller::AdminApi, new).await?;
    Ok(HttpResponse::Created().json(applied(&state, done).await))
}

/// `GET /admin/rooms/{room}`.
pub async fn get(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    room_name(&room)?;
    let found = state.sessions.rooms.get(&room).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// `PATCH /admin/rooms/{room}`: any of title, visibility, maxUsers,
/// rateLimit, metadata.
pub async fn update(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
    patch: web::Json<RoomPatch>,
) -> Result<HttpResponse, ApiError> {
    room_name(&room)?;
    let patch = patch.into_inner();
    check_patch(&patch)?;
    let service = &state.sessions.rooms;
    let done = service.update(Caller::AdminApi, &room, patch).await?;
    Ok(HttpResponse::Ok().json(applied(&state, done).await))
}

/// `DELETE /admin/rooms/{room}`.
pub async fn delete(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    room_name(&room)?;
    let done = state.sessions.rooms.delete(Caller::AdminApi, &room).await?;
    Ok(HttpResponse::Ok().json(applied(&state, done).await))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembersQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/rooms/{room}/members[?after=&limit=]`: sorted by user id.
pub async fn members(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<MembersQuery>,
) -> Result<HttpResponse, ApiError> {
    room_name(&room)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(MEMBER_LIST_DEFAULT_LIMIT);
    if limit == 0 || limit > MEMBER_LIST_MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MEMBER_LIST_MAX_LIMIT}"
        )));
    }
    let service = &state.sessions.rooms;
    let done = service
        .list_members(Caller::AdminApi, &room, q.after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(done.data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberBody {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    muted: Option<bool>,
}

/// `PUT /admin/rooms/{room}/members/{userId}`: 201 when added, 200 when
/// changed; the member object.
pub async fn put_member(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<MemberBody>,
) -> Result<HttpResponse, ApiError> {
    let (room, user) = path.into_inner();
    room_name(&room)?;
    check_user_id(&user)?;
    let MemberBody { role, muted } = body.into_inner();
    let service = &state.sessions.rooms;
    let (done, added) = service.put_member(&room, &user, role, muted).await?;
    let data = applied(&state, done).await;
    Ok(if added {
        HttpResponse::Created().json(data)
    } else {
        HttpResponse::Ok().json(data)
    })
}

/// `DELETE /admin/rooms/{room}/members/{userId}`.
pub async fn remove_member(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, user) = path.into_inner();
    room_name(&room)?;
    check_user_id(&user)?;
    let service = &state.sessions.rooms;
    let done = service
        .remove_member(Caller::AdminApi, &room, &user)
        .await?;
    Ok(HttpResponse::Ok().json(applied(&state, done).await))
}
