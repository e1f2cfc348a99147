//! The admin API of managed rooms: thin handlers over
//! [`RoomService`](crate::rooms::RoomService) acting as the admin API
//! (above every role), whose changes the registry applies on every node.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use super::{ApiError, AppState};
use crate::actors::room_registry::apply_changes;
use crate::protocol::rooms::{
    check_counts, check_members, check_metadata, check_patch, check_title, check_user_id,
    MEMBER_LIST_DEFAULT_LIMIT, MEMBER_LIST_MAX_LIMIT,
};
use crate::protocol::rooms::{MemberObject, RoomObject};
use crate::protocol::{validate_room, NewRoom, Role, RoomPatch, RoomType, Visibility};
use crate::rooms::{Caller, Done};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberEntry {
    user_id: String,
    /// Default `member`.
    #[serde(default)]
    role: Option<Role>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    /// 1 to 128 of `A-Z a-z 0-9 _ - : . @`.
    #[schema(pattern = "^[A-Za-z0-9_:.@-]{1,128}$")]
    room: String,
    /// Default `channel` (`realtime-server create-room` may leave it out).
    #[serde(rename = "type", default = "channel")]
    #[schema(default = "channel")]
    kind: RoomType,
    /// Default `public`.
    #[serde(default = "public")]
    #[schema(default = "public")]
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

/// What `DELETE` answers: `{}`.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// A page of a managed room's members.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    room: String,
    /// Sorted by user id.
    members: Vec<MemberObject>,
    /// The `after` of the next page; null on the last.
    next: Option<String>,
}

/// `POST /admin/rooms`: 201 and the room object; 409 if it exists. A `dm`
/// room is made by `dm:open` only.
#[utoipa::path(post, path = "/admin/rooms", tag = "managed rooms", request_body = CreateBody,
    responses((status = 201, body = RoomObject)))]
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
#[utoipa::path(get, path = "/admin/rooms/{room}", tag = "managed rooms", params(RoomPath),
    responses((status = 200, body = RoomObject)))]
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
#[utoipa::path(patch, path = "/admin/rooms/{room}", tag = "managed rooms", params(RoomPath),
    request_body = RoomPatch, responses((status = 200, body = RoomObject)))]
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
#[utoipa::path(delete, path = "/admin/rooms/{room}", tag = "managed rooms", params(RoomPath),
    responses((status = 200, body = Empty)))]
pub async fn delete(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    room_name(&room)?;
    let done = state.sessions.rooms.delete(Caller::AdminApi, &room).await?;
    Ok(HttpResponse::Ok().json(applied(&state, done).await))
}

/// The `{room}` of a path, in the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoomPath {
    /// A room name.
    #[allow(dead_code)]
    #[param(pattern = "^[A-Za-z0-9_:.@-]{1,128}$")]
    room: String,
}

/// The `{room}` and `{userId}` of a member's path, in the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// A room name.
    #[allow(dead_code)]
    #[param(pattern = "^[A-Za-z0-9_:.@-]{1,128}$")]
    room: String,
    /// A user id.
    #[allow(dead_code)]
    #[param(rename = "userId")]
    user_id: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// The `next` of the page before.
    after: Option<String>,
    /// 1 to 200, default 100.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// `GET /admin/rooms/{room}/members[?after=&limit=]`: sorted by user id.
#[utoipa::path(get, path = "/admin/rooms/{room}/members", tag = "managed rooms",
    params(RoomPath, MembersQuery), responses((status = 200, body = MemberList)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberBody {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    muted: Option<bool>,
}

/// `PUT /admin/rooms/{room}/members/{userId}`: 201 when added, 200 when
/// changed; the member object.
#[utoipa::path(put, path = "/admin/rooms/{room}/members/{userId}", tag = "managed rooms",
    params(MemberPath), request_body = MemberBody,
    responses((status = 200, body = MemberObject, description = "changed"),
        (status = 201, body = MemberObject, description = "added")))]
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
#[utoipa::path(delete, path = "/admin/rooms/{room}/members/{userId}", tag = "managed rooms",
    params(MemberPath), responses((status = 200, body = Empty)))]
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
