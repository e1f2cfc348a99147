//! `POST /admin/rooms/{room}/messages`: a durable message from the backend
//! (order updates, deploy notices), stored with the room's next `seq` and
//! delivered like any other; `POST /admin/broadcast` is the live-only one.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::admin::Admin;
use super::{ask, ApiError, AppState};
use crate::actors::messages::{Published, ServerPublish};
use crate::protocol::lifecycle::check_content;
use crate::protocol::rooms::check_user_id;
use crate::protocol::{validate_room, DecodeLimits, MessageKind, RawJson};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishBody {
    content: String,
    /// `text`, `image`, `file`, `audio`, `video`, `location` or `system`
    /// (default).
    #[serde(default)]
    kind: Option<String>,
    /// An object, or null.
    #[serde(default)]
    metadata: Option<Value>,
    /// Default `system`.
    #[serde(default)]
    user_id: Option<String>,
}

/// 201 `{messageId, seq, timestamp}`. Default kind `system`, userId `system`.
#[utoipa::path(post, path = "/admin/rooms/{room}/messages", tag = "managed rooms",
    params(super::rooms::RoomPath), request_body = PublishBody,
    responses((status = 201, body = Published)))]
pub async fn publish(
    _: Admin,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Json<PublishBody>,
) -> Result<HttpResponse, ApiError> {
    let (room, b) = (room.into_inner(), body.into_inner());
    validate_room(&room)?;
    let kind = match b.kind.as_deref() {
        None => MessageKind::System,
        Some(k) => MessageKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(
                "unknown kind: use text, image, file, audio, video, location or system",
            )
        })?,
    };
    let user_id = b.user_id.unwrap_or_else(|| "system".into());
    check_user_id(&user_id)?;
    let metadata = match b.metadata {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            let raw = serde_json::value::to_raw_value(&m)
                .map_err(|e| ApiError::bad_request(format!("metadata: {e}")))?;
            Some(RawJson(raw))
        }
        Some(_) => return Err(ApiError::bad_request("`metadata` must be an object")),
    };
    let limits = &state.settings.limits;
    let limits = DecodeLimits {
        max_message_chars: limits.max_message_chars,
        max_metadata_bytes: limits.max_metadata_bytes,
    };
    check_content(&b.content, metadata.as_ref(), &limits)?;
    if b.content.contains('\0') {
        return Err(ApiError::bad_request(
            "`content` must not contain NUL characters",
        ));
    }
    let msg = ServerPublish {
        room,
        user_id,
        content: b.content,
        kind,
        metadata,
    };
    let published = ask(state.registry(), super::admin::REGISTRY, msg).await??;
    Ok(HttpResponse::Created().json(published))
}
